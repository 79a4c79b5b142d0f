"""Euclidean alignment (He & Wu 2019): re-centering for decoders that work on signals.

The covariance decoders (:mod:`bci.decoders.riemann`) re-centre covariances at a
Riemannian mean. Decoders that take the windows themselves (CSP+LDA, FBCSP, EEGNet,
RL-EEGNet) get the Euclidean counterpart: each window ``X`` (channels × times) of a
session is multiplied by ``R^{-1/2}``, ``R`` the arithmetic mean of that session's window
covariances ``X Xᵀ / n_times``, so that every session's mean covariance is the identity.
Filter-bank windows (bands × channels × times) are aligned band by band. The aligned
windows are multiplied by one constant fixed at ``fit`` (the square root of the training
windows' mean channel power), so that a decoder that expects volts still gets volts.

:class:`EuclideanAlignment` wraps any such decoder, offering the three modes of the
covariance decoders (``recenter = "none" | "session" | "online"``):

- training aligns each training file (``groups``) at its own mean;
- ``session`` aligns each test file at the mean of all its windows (offline only: an
  unsupervised upper bound);
- ``online`` keeps a running mean of the incoming windows' covariances, ``R ← (1 − t) R
  + t C`` with ``t = max(1/n, forget)`` after ``n`` windows (a running mean that turns
  into exponential forgetting); the first ``warmup`` windows are aligned at the training
  files' pooled mean instead. Labels are never used, and a window's decision depends on
  that window and the ones before it only.

``bci evaluate --recenter MODE`` applies this to any decoder that has no re-centering of
its own (:func:`with_recentering`). It is an evaluation stage: the runtime serves the
wrapped decoders' ``.onnx`` files without it.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from bci.decoders.riemann import check_recenter  # one definition of the modes
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted


def window_covariances(X: np.ndarray) -> np.ndarray:
    """``X Xᵀ / n_times`` of each window (He & Wu's, not centred).

    Parameters
    ----------
    X : ndarray, shape (n_windows, [n_bands,] n_channels, n_times)

    Returns
    -------
    C : ndarray, shape (n_windows, [n_bands,] n_channels, n_channels)
    """
    X = np.asarray(X, np.float64)
    return X @ X.swapaxes(-1, -2) / X.shape[-1]


def inverse_sqrt(R: np.ndarray) -> np.ndarray:
    """``R^{-1/2}`` of symmetric positive semi-definite matrices, shape (..., n, n).

    Eigenvalues below ``1e-10 ×`` the largest are floored there, so that a rank-deficient
    mean (an average reference removes one dimension) does not blow up.
    """
    w, V = np.linalg.eigh(R)
    w = np.maximum(w, 1e-10 * w.max(axis=-1, keepdims=True))
    return (V / np.sqrt(w)[..., None, :]) @ V.swapaxes(-1, -2)


def align(X: np.ndarray, R: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``scale · R^{-1/2} X``: windows aligned at reference ``R``.

    Parameters
    ----------
    X : ndarray, shape (n_windows, [n_bands,] n_channels, n_times)
    R : ndarray, shape ([n_bands,] n_channels, n_channels)
    scale : float

    Returns
    -------
    ndarray, shape of ``X``, float32
    """
    P = inverse_sqrt(R) * scale
    return (P @ np.asarray(X, np.float64)).astype(np.float32)


class OnlineReference:
    """The running mean covariance of the windows seen so far (causal, label-free).

    Parameters
    ----------
    warm_reference : ndarray, shape ([n_bands,] n_channels, n_channels)
        The reference of the first ``warmup`` windows (the training files' pooled mean).
    warmup : int
    forget : float
        The smallest weight of each new window, in (0, 1].
    """

    def __init__(self, warm_reference: np.ndarray, *, warmup: int, forget: float) -> None:
        self.warm_reference = np.asarray(warm_reference, np.float64)
        self.warmup = int(warmup)
        self.forget = float(forget)
        self.reset()

    def reset(self) -> None:
        """Forget the windows seen: the next one starts a new session."""
        self.mean: np.ndarray | None = None
        self.n = 0

    def update(self, C: np.ndarray) -> np.ndarray:
        """Add one window's covariance; the reference that window is aligned at."""
        self.n += 1
        t = max(1.0 / self.n, self.forget)
        self.mean = C.copy() if self.mean is None else (1.0 - t) * self.mean + t * C
        return self.warm_reference if self.n <= self.warmup else self.mean


class EuclideanAlignment(ClassifierMixin, BaseEstimator):
    """A signal decoder behind Euclidean alignment (see the module docstring).

    Parameters
    ----------
    estimator : object
        A trainable decoder (:mod:`bci.decoders.base`); cloned at ``fit``.
    recenter : str
        ``"none"`` (the decoder alone), ``"session"`` or ``"online"``.
    recenter_warmup : int
        Online: windows aligned at the training mean before the running mean is used.
    recenter_forget : float
        Online: the smallest weight of each new window in the running mean, in (0, 1].

    Attributes
    ----------
    estimator_ : object
        The decoder fitted on the aligned training windows.
    classes_ : ndarray of str, shape (n_classes,)
    train_mean_ : ndarray, shape ([n_bands,] n_channels, n_channels)
        Pooled mean covariance of the (unaligned) training windows.
    scale_ : float
        Factor of the aligned windows: √(mean channel power of the training windows).
    """

    def __init__(self, estimator: Any, *, recenter: str = "online", recenter_warmup: int = 10,
                 recenter_forget: float = 0.05) -> None:
        self.estimator = estimator
        self.recenter = recenter
        self.recenter_warmup = recenter_warmup
        self.recenter_forget = recenter_forget

    def preprocessing(self) -> list[dict[str, Any]]:
        return self.estimator.preprocessing()

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None
            ) -> EuclideanAlignment:
        """Align each training file at its own mean, then fit the decoder.

        Parameters
        ----------
        X : ndarray, shape (n_windows, [n_bands,] n_channels, n_times)
        y : array-like of str, shape (n_windows,)
        groups : array-like of int, shape (n_windows,) | None
            The training file of each window; ``None``: one file.
        """
        check_recenter(self.recenter, self.recenter_warmup, self.recenter_forget,
                       where=f"{type(self).__name__}: recenter")
        X = np.asarray(X)
        groups = np.zeros(len(X), np.int64) if groups is None else np.asarray(groups)
        if groups.shape != (len(X),):
            raise ValueError(f"{type(self).__name__}.fit: expected one group per window "
                             f"({len(X)}), found groups of shape {groups.shape}")
        C = window_covariances(X)
        self.train_mean_ = C.mean(axis=0)
        n = self.train_mean_.shape[-1]
        self.scale_ = float(np.sqrt(np.trace(self.train_mean_, axis1=-2, axis2=-1).mean() / n))
        if self.recenter != "none":
            X = X.astype(np.float32, copy=True)
            for g in np.unique(groups):
                idx = groups == g
                X[idx] = align(X[idx], C[idx].mean(axis=0), self.scale_)
        try:
            self.estimator_ = clone(self.estimator)
        except (TypeError, RuntimeError):
            self.estimator_ = copy.deepcopy(self.estimator)
        self.estimator_.fit(X, y)
        self.classes_ = self.estimator_.classes_
        return self

    def transform(self, X: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """The windows as the fitted decoder sees them, aligned by ``recenter``.

        Parameters
        ----------
        X : ndarray, shape (n_windows, [n_bands,] n_channels, n_times)
            In time order within each group.
        groups : ndarray of int, shape (n_windows,) | None
            The session (file) of each window; ``online`` starts each one afresh.

        Returns
        -------
        ndarray, shape of ``X``
        """
        check_is_fitted(self, "estimator_")
        X = np.asarray(X)
        if self.recenter == "none":
            return X
        groups = np.zeros(len(X), np.int64) if groups is None else np.asarray(groups)
        C = window_covariances(X)
        out = np.empty(X.shape, np.float32)
        for g in np.unique(groups):
            idx = np.flatnonzero(groups == g)
            if self.recenter == "session":
                out[idx] = align(X[idx], C[idx].mean(axis=0), self.scale_)
                continue
            ref = OnlineReference(self.train_mean_, warmup=self.recenter_warmup,
                                  forget=self.recenter_forget)
            for i in idx:
                out[i] = align(X[i:i + 1], ref.update(C[i]), self.scale_)[0]
        return out

    def predict_proba(self, X: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities, shape (n_windows, n_classes), in the order of ``classes_``."""
        return np.asarray(self.estimator_.predict_proba(self.transform(X, groups)))

    def predict(self, X: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Most likely class label of each window, shape (n_windows,)."""
        return np.asarray(self.classes_)[np.argmax(self.predict_proba(X, groups), axis=1)]


def with_recentering(estimator: Any, mode: str, *, warmup: int | None = None,
                     forget: float | None = None) -> Any:
    """``estimator`` re-centred by ``mode``: its own (Riemannian) re-centering when it has
    a ``recenter`` parameter, else behind :class:`EuclideanAlignment`.

    ``mode = "none"`` sets a covariance decoder's re-centering off and leaves a signal
    decoder as it is. ``warmup`` and ``forget`` (None: the decoder's own, else 10 and
    0.05) apply to ``online``.
    """
    params = estimator.get_params(deep=False) if hasattr(estimator, "get_params") else {}
    own = {"recenter_warmup": warmup, "recenter_forget": forget}
    own = {k: v for k, v in own.items() if v is not None}
    if "recenter" in params:
        merged = {"recenter_warmup": 10, "recenter_forget": 0.05, **params, **own}
        check_recenter(mode, merged["recenter_warmup"], merged["recenter_forget"])
        return estimator.set_params(recenter=mode, **own)
    merged = {"recenter_warmup": 10, "recenter_forget": 0.05, **own}
    check_recenter(mode, merged["recenter_warmup"], merged["recenter_forget"])
    if mode == "none":
        return estimator
    return EuclideanAlignment(estimator, recenter=mode, **merged)
