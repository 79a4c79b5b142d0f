"""Riemannian decoders on spatial covariance matrices, trained with pyriemann, served by numpy.

:class:`RiemannMDM` (minimum distance to the Riemannian class means), :class:`RiemannFgMDM`
(MDM after Fisher geodesic filtering), :class:`TangentSpaceLR` and :class:`TangentSpaceSVM`
(logistic regression or a linear SVM in the tangent space at the Riemannian mean) are the
reference pipelines of MOABB and of most SSVEP and motor-imagery benchmarks.

They are fitted with pyriemann and scikit-learn, and then **served live by a numpy
forward pass** (:class:`CovarianceModel`): covariance with the configured estimator and
shrinkage, eigh-based matrix square root, logarithm and exponential, tangent vectors with
the √2 off-diagonal weighting, Riemannian distances. ONNX has no operator for these, so
the trained decoder is not an ``.onnx`` file but one ``.npz`` file (below) that
:func:`bci.decoder.open_model` serves where an ``.onnx`` goes (``[decoder] path``,
``bci replay --model``). ``predict_proba`` of the fitted estimators runs that same numpy
forward pass, so ``bci evaluate`` scores exactly what ``bci run`` serves; serving needs
neither pyriemann nor scikit-learn.

Re-centering (Zanini et al. 2018)
---------------------------------
``recenter = "none" | "session" | "online"`` re-centres each window's covariance ``C`` to
``M^{-1/2} C M^{-1/2}`` at a reference ``M`` (the identity is then the reference of every
session). Training re-centres each training file (``groups``) at its own Riemannian mean.
At test time ``session`` uses the Riemannian mean of all the target file's windows
(offline only: an unsupervised upper bound) and ``online`` updates the reference from the
incoming windows only: ``M ← M^{1/2} (M^{-1/2} C M^{-1/2})^t M^{1/2}`` with
``t = max(1/n, forget)`` after ``n`` windows (a running mean that turns into exponential
forgetting). During the first ``recenter_warmup`` windows the decision uses the training
files' pooled Riemannian mean instead. Labels are never used and no window is looked
ahead of.

Model file (``.npz``, read with ``np.load(allow_pickle=False)``)
----------------------------------------------------------------
``bci``
    The decoder's spec, JSON (:class:`bci.spec.DecoderSpec`; its ``preprocessing`` holds
    the band-pass or filter-bank settings, ``extra["decoder"]`` the decoder's name).
``format``
    ``"bci-riemann"``; ``format_version``: 1.
``kind``
    ``mdm``, ``fgmdm``, ``ts-lr`` or ``ts-svm``.
``classes`` (n_classes,), ``estimator`` (``scm``, ``lwf``, ``oas`` or ``shrinkage``),
``shrinkage`` (the value for ``shrinkage``, else NaN), ``n_bands`` (0 without a filter
bank), ``n_channels`` (stacked channels), ``recenter``, ``recenter_warmup``,
``recenter_forget``, ``train_mean`` (n, n).
``class_means`` (n_classes, n, n)
    ``mdm`` and ``fgmdm``.
``fg_reference`` (n, n), ``fg_filter`` (d, d)
    ``fgmdm``: the FGDA tangent-space reference and projection, ``d = n(n+1)/2``.
``reference`` (n, n), ``coef`` (k, d), ``intercept`` (k,)
    ``ts-lr`` and ``ts-svm``: tangent-space reference and the linear model (``k = 1`` for
    two classes). LR probabilities are scikit-learn's (logistic / softmax); SVM
    probabilities are ``softmax`` of the one-vs-rest scores (for two classes
    ``sigmoid(score)``): a ranking, not calibrated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from bci.decoders.base import check_windows
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

FORMAT = "bci-riemann"
FORMAT_VERSION = 1
KINDS = ("mdm", "fgmdm", "ts-lr", "ts-svm")
ESTIMATORS = ("scm", "lwf", "oas")
RECENTER = ("none", "session", "online")


# ---------------------------------------------------------------------------------------
# numpy forward pass (no pyriemann, no scikit-learn)


def covariances(X: np.ndarray, estimator: str | float = "lwf") -> np.ndarray:
    """Spatial covariance of each window, as pyriemann's ``Covariances`` computes it.

    Parameters
    ----------
    X : ndarray, shape (..., n_channels, n_times)
    estimator : str | float
        ``"scm"`` (centred sample covariance, divided by ``n_times``), ``"lwf"``
        (Ledoit-Wolf shrinkage), ``"oas"`` (oracle approximating shrinkage), or a
        shrinkage value in [0, 1] applied to the sample covariance:
        ``(1 − a) S + a · trace(S)/n · I``.

    Returns
    -------
    C : ndarray, shape (..., n_channels, n_channels)
    """
    X = np.asarray(X, np.float64)
    n, n_t = X.shape[-2], X.shape[-1]
    Xc = X - X.mean(axis=-1, keepdims=True)
    S = Xc @ Xc.swapaxes(-1, -2) / n_t
    if isinstance(estimator, str) and estimator == "scm":
        return S
    trace = np.trace(S, axis1=-2, axis2=-1)
    mu = trace / n
    if isinstance(estimator, str) and estimator == "lwf":  # sklearn's ledoit_wolf
        X2 = Xc**2
        beta_ = (X2 @ X2.swapaxes(-1, -2)).sum(axis=(-1, -2))
        delta_ = ((Xc @ Xc.swapaxes(-1, -2)) ** 2).sum(axis=(-1, -2)) / n_t**2
        beta = 1.0 / (n * n_t) * (beta_ / n_t - delta_)
        delta = (delta_ - 2.0 * mu * trace + n * mu**2) / n
        beta = np.minimum(beta, delta)
        a = np.where(beta == 0, 0.0, beta / np.where(delta == 0, 1.0, delta))
    elif isinstance(estimator, str) and estimator == "oas":  # sklearn's oas
        alpha = np.mean(S**2, axis=(-1, -2))
        num = alpha + mu**2
        den = (n_t + 1) * (alpha - mu**2 / n)
        a = np.where(den == 0, 1.0, np.minimum(num / np.where(den == 0, 1.0, den), 1.0))
    elif isinstance(estimator, int | float) and not isinstance(estimator, bool):
        a = np.full(trace.shape, float(estimator))
    else:
        raise ValueError(f"covariance estimator: expected one of {ESTIMATORS} or a shrinkage "
                         f"value in [0, 1], found {estimator!r}")
    out = (1.0 - a)[..., None, None] * S
    out += (a * mu)[..., None, None] * np.eye(n)
    return out


def _eigfun(C: np.ndarray, fn: Any) -> np.ndarray:
    """``V fn(Λ) Vᵀ`` of symmetric matrices ``C = V Λ Vᵀ``, shape (..., n, n)."""
    w, V = np.linalg.eigh(C)
    return (V * fn(w)[..., None, :]) @ V.swapaxes(-1, -2)


def sqrtm(C: np.ndarray) -> np.ndarray:
    """Matrix square root of SPD matrices, shape (..., n, n)."""
    return _eigfun(C, np.sqrt)


def invsqrtm(C: np.ndarray) -> np.ndarray:
    """Inverse matrix square root of SPD matrices, shape (..., n, n)."""
    return _eigfun(C, lambda w: 1.0 / np.sqrt(w))


def logm(C: np.ndarray) -> np.ndarray:
    """Matrix logarithm of SPD matrices, shape (..., n, n)."""
    return _eigfun(C, np.log)


def expm(C: np.ndarray) -> np.ndarray:
    """Matrix exponential of symmetric matrices, shape (..., n, n)."""
    return _eigfun(C, np.exp)


def powm(C: np.ndarray, t: float) -> np.ndarray:
    """``C^t`` of SPD matrices, shape (..., n, n)."""
    return _eigfun(C, lambda w: w**t)


def _triu(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, cols = np.triu_indices(n)
    weights = np.where(rows == cols, 1.0, np.sqrt(2.0))
    return rows, cols, weights


def upper(S: np.ndarray) -> np.ndarray:
    """Upper triangle of symmetric matrices, off-diagonal terms weighted by √2.

    Shape (..., n, n) → (..., n(n+1)/2), pyriemann's order (``np.triu_indices``).
    """
    rows, cols, weights = _triu(S.shape[-1])
    return S[..., rows, cols] * weights


def unupper(T: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`upper`: (..., n(n+1)/2) → symmetric (..., n, n)."""
    rows, cols, weights = _triu(n)
    S = np.zeros((*T.shape[:-1], n, n))
    S[..., rows, cols] = T / weights
    S[..., cols, rows] = T / weights
    return S


def tangent_vectors(C: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``upper(log(R^{-1/2} C R^{-1/2}))``: (..., n, n) → (..., n(n+1)/2)."""
    P = invsqrtm(reference)
    return upper(logm(P @ C @ P))


def distances(C: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Affine-invariant Riemannian distance of each matrix to each mean.

    Parameters
    ----------
    C : ndarray, shape (n_matrices, n, n)
    means : ndarray, shape (n_means, n, n)

    Returns
    -------
    d : ndarray, shape (n_matrices, n_means)
    """
    P = invsqrtm(means)  # (k, n, n)
    inner = P[None] @ C[:, None] @ P[None]  # (m, k, n, n)
    w = np.linalg.eigvalsh(inner)
    return np.sqrt(np.sum(np.log(w) ** 2, axis=-1))


def geodesic(A: np.ndarray, B: np.ndarray, t: float) -> np.ndarray:
    """Point at ``t`` on the affine-invariant geodesic from ``A`` (t=0) to ``B`` (t=1)."""
    A12, Am12 = sqrtm(A), invsqrtm(A)
    return A12 @ powm(Am12 @ B @ Am12, t) @ A12


def recenter(C: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``R^{-1/2} C R^{-1/2}``: covariances re-centred so that ``reference`` maps to I."""
    P = invsqrtm(reference)
    return P @ C @ P


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _scalar(arrays: Mapping[str, np.ndarray], key: str, kind: type) -> Any:
    value = np.asarray(arrays[key])
    if value.ndim != 0:
        raise ValueError(f"'{key}': expected a scalar, found an array of shape {value.shape}")
    return kind(value.item())


class CovarianceModel:
    """The numpy forward pass of a fitted covariance decoder, and its model file.

    Stateless except for the online re-centering reference, which :meth:`reset` clears
    and :meth:`run` (one window at a time, as live) advances.

    Parameters
    ----------
    arrays : mapping of str to ndarray
        The fitted arrays (the keys of the module's model-file description, ``bci``
        excepted).
    recenter, recenter_warmup, recenter_forget : optional
        Override the re-centering the model was trained with (``[decoder] recenter``).

    Raises
    ------
    ValueError
        Naming the key whose array is missing or has the wrong shape.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], *, recenter: str | None = None,
                 recenter_warmup: int | None = None,
                 recenter_forget: float | None = None) -> None:
        need = ["format", "format_version", "kind", "classes", "estimator", "shrinkage",
                "n_bands", "n_channels", "recenter", "recenter_warmup", "recenter_forget",
                "train_mean"]
        missing = [k for k in need if k not in arrays]
        if missing:
            raise ValueError(f"missing arrays {missing}; found {sorted(arrays)}")
        if _scalar(arrays, "format", str) != FORMAT:
            raise ValueError(f"'format': expected {FORMAT!r}, found "
                             f"{_scalar(arrays, 'format', str)!r}")
        version = _scalar(arrays, "format_version", int)
        if version > FORMAT_VERSION:
            raise ValueError(f"'format_version': expected at most {FORMAT_VERSION}, found "
                             f"{version}; upgrade the runtime")
        self.kind = _scalar(arrays, "kind", str)
        if self.kind not in KINDS:
            raise ValueError(f"'kind': expected one of {KINDS}, found {self.kind!r}")
        self.classes = np.asarray(arrays["classes"]).astype(str)
        est = _scalar(arrays, "estimator", str)
        self.estimator: str | float = (_scalar(arrays, "shrinkage", float)
                                       if est == "shrinkage" else est)
        covariances(np.zeros((2, 4)), self.estimator)  # refuses an unknown estimator
        self.n_bands = _scalar(arrays, "n_bands", int)
        self.n_channels = _scalar(arrays, "n_channels", int)
        n, k = self.n_channels, self.classes.size
        d = n * (n + 1) // 2
        shapes: dict[str, tuple[int, ...]] = {"train_mean": (n, n)}
        if self.kind in ("mdm", "fgmdm"):
            shapes["class_means"] = (k, n, n)
        if self.kind == "fgmdm":
            shapes.update(fg_reference=(n, n), fg_filter=(d, d))
        if self.kind in ("ts-lr", "ts-svm"):
            kk = 1 if k == 2 else k
            shapes.update(reference=(n, n), coef=(kk, d), intercept=(kk,))
        self.arrays: dict[str, np.ndarray] = {}
        for key, shape in shapes.items():
            if key not in arrays:
                raise ValueError(f"missing array '{key}' (kind {self.kind}); found "
                                 f"{sorted(arrays)}")
            value = np.asarray(arrays[key], np.float64)
            if value.shape != shape:
                raise ValueError(f"'{key}': expected shape {shape}, found {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"'{key}': expected finite values, found NaN or Inf")
            self.arrays[key] = value
        self.recenter = recenter or _scalar(arrays, "recenter", str)
        self.recenter_warmup = (recenter_warmup if recenter_warmup is not None
                                else _scalar(arrays, "recenter_warmup", int))
        self.recenter_forget = (recenter_forget if recenter_forget is not None
                                else _scalar(arrays, "recenter_forget", float))
        check_recenter(self.recenter, self.recenter_warmup, self.recenter_forget)
        # precomputed once: the inverse square roots of the fixed references
        if "class_means" in self.arrays:
            self._means_isqrt = invsqrtm(self.arrays["class_means"])
        for key in ("reference", "fg_reference"):
            if key in self.arrays:
                setattr(self, f"_{key}_isqrt", invsqrtm(self.arrays[key]))
        if "fg_reference" in self.arrays:
            self._fg_sqrt = sqrtm(self.arrays["fg_reference"])
        self._train_isqrt = invsqrtm(self.arrays["train_mean"])
        self.reset()

    # -- the file ---------------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays of the model file (without the spec)."""
        est = self.estimator
        out = {
            "format": np.array(FORMAT), "format_version": np.array(FORMAT_VERSION),
            "kind": np.array(self.kind), "classes": np.asarray(self.classes, str),
            "estimator": np.array("shrinkage" if not isinstance(est, str) else est),
            "shrinkage": np.array(float(est) if not isinstance(est, str) else np.nan),
            "n_bands": np.array(self.n_bands), "n_channels": np.array(self.n_channels),
            "recenter": np.array(self.recenter),
            "recenter_warmup": np.array(int(self.recenter_warmup)),
            "recenter_forget": np.array(float(self.recenter_forget)),
        }
        out.update(self.arrays)
        return out

    def save(self, path: str | Path, spec_json: str) -> None:
        """Write the model file: the arrays and, under ``bci``, the spec's JSON."""
        with open(path, "wb") as f:
            np.savez(f, bci=np.array(spec_json), **self.to_arrays())

    # -- forward pass -----------------------------------------------------------------

    def input_shape(self) -> tuple[int | None, ...]:
        if self.n_bands:
            return (self.n_bands, self.n_channels // self.n_bands, None)
        return (self.n_channels, None)

    def covariances(self, X: np.ndarray) -> np.ndarray:
        """Windows (n, [n_bands,] n_channels, n_times) → covariances (n, c, c)."""
        X = np.asarray(X, np.float64)
        if self.n_bands:
            X = X.reshape(X.shape[0], -1, X.shape[-1])  # bands stacked, band-major
        if X.shape[1] != self.n_channels:
            raise ValueError(f"expected {self.n_channels} (stacked) channels, found "
                             f"{X.shape[1]}")
        return covariances(X, self.estimator)

    def classify(self, C: np.ndarray) -> np.ndarray:
        """Class probabilities of (re-centred) covariances, (n, c, c) → (n, n_classes)."""
        a = self.arrays
        if self.kind in ("ts-lr", "ts-svm"):
            P = self._reference_isqrt
            T = upper(logm(P @ C @ P))
            z = T @ a["coef"].T + a["intercept"]
            if self.classes.size == 2:
                # softmax([−z/2, z/2]) = [1 − σ(z), σ(z)]: scikit-learn's binary LR
                z = np.concatenate([-z, z], axis=1) / 2
            return _softmax(z)
        if self.kind == "fgmdm":
            P = self._fg_reference_isqrt
            T = upper(logm(P @ C @ P)) @ a["fg_filter"]
            S = self._fg_sqrt
            C = S @ expm(unupper(T, self.n_channels)) @ S
        P = self._means_isqrt
        w = np.linalg.eigvalsh(P[None] @ C[:, None] @ P[None])
        d2 = np.sum(np.log(w) ** 2, axis=-1)
        return _softmax(-d2)

    def reset(self) -> None:
        """Forget the online reference: the next window starts a new session."""
        self._ref: np.ndarray | None = None
        self._n = 0

    def _online(self, C: np.ndarray) -> np.ndarray:
        """Advance the online reference by one covariance; the re-centred covariance."""
        self._n += 1
        if self._ref is None:
            self._ref = C
        else:
            t = max(1.0 / self._n, float(self.recenter_forget))
            self._ref = geodesic(self._ref, C, t)
        if self._n <= self.recenter_warmup:
            P = self._train_isqrt
        else:
            P = invsqrtm(self._ref)
        return P @ C @ P

    def run(self, window: np.ndarray) -> np.ndarray:
        """Decode one window, shape ([n_bands,] n_channels, n_times), as live."""
        C = self.covariances(np.asarray(window)[None])
        if self.recenter == "online":
            C = self._online(C[0])[None]
        elif self.recenter == "session":
            raise ValueError("recenter = 'session' needs all of a session's windows "
                             "(offline evaluation only); serve with recenter = 'online'")
        return self.classify(C)[0]

    def predict_proba(self, X: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Probabilities of a batch of windows, offline.

        Parameters
        ----------
        X : ndarray, shape (n_windows, [n_bands,] n_channels, n_times)
            In time order within each group.
        groups : ndarray of int, shape (n_windows,) | None
            The session (file) of each window; ``None``: one session. ``session``
            re-centres each group at its own mean; ``online`` runs each group from a
            fresh reference, window by window, exactly as :meth:`run` does live.

        Returns
        -------
        proba : ndarray, shape (n_windows, n_classes)
        """
        C = self.covariances(X)
        groups = np.zeros(len(C), np.int64) if groups is None else np.asarray(groups)
        if self.recenter == "none":
            return self.classify(C)
        out = np.empty((len(C), self.classes.size))
        for g in np.unique(groups):
            idx = np.flatnonzero(groups == g)
            if self.recenter == "session":
                out[idx] = self.classify(recenter(C[idx], riemann_mean(C[idx])))
                continue
            saved = (self._ref, self._n)
            self.reset()
            for i in idx:
                out[i] = self.classify(self._online(C[i])[None])[0]
            self._ref, self._n = saved
        return out


def check_recenter(mode: Any, warmup: Any, forget: Any, where: str = "recenter") -> None:
    """Refuse a re-centering setting with a message naming the option.

    Raises
    ------
    ValueError
    """
    if mode not in RECENTER:
        raise ValueError(f"{where}: expected one of {RECENTER}, found {mode!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int | np.integer) or warmup < 0:
        raise ValueError(f"{where}_warmup: expected a number of windows ≥ 0, found {warmup!r}")
    if (isinstance(forget, bool) or not isinstance(forget, int | float | np.floating)
            or not 0.0 < float(forget) <= 1.0):
        raise ValueError(f"{where}_forget: expected a weight in (0, 1], found {forget!r}")


def load_model(arrays: Mapping[str, np.ndarray], *, options: Mapping[str, Any] | None = None
               ) -> CovarianceModel:
    """The served decoder of a ``.npz`` model file (:func:`bci.decoder.open_model`).

    ``options`` may override ``recenter``, ``recenter_warmup`` and ``recenter_forget``.
    """
    options = dict(options or {})
    model = CovarianceModel(arrays, recenter=options.get("recenter"),
                            recenter_warmup=options.get("recenter_warmup"),
                            recenter_forget=options.get("recenter_forget"))
    if model.recenter == "session":
        raise ValueError("recenter = 'session' re-centres at the mean of all of a session's "
                         "windows, which a live decoder has not seen; expected 'online' or "
                         "'none' (set [decoder] recenter = \"online\")")
    return model


def riemann_mean(C: np.ndarray) -> np.ndarray:
    """Riemannian (Karcher) mean of SPD matrices (n, c, c) → (c, c); pyriemann's."""
    from pyriemann.geometry.mean import mean_riemann

    return np.asarray(mean_riemann(C), np.float64)


# ---------------------------------------------------------------------------------------
# estimators (training: pyriemann and scikit-learn)


class _CovarianceClassifier(ClassifierMixin, BaseEstimator):
    """Band-pass or filter bank → covariance → [re-centering] → a covariance classifier.

    With ``bands`` the windows are ``(n_windows, n_bands, n_channels, n_times)`` and the
    sub-band signals are stacked along the channel axis (band-major) before the
    covariance, as MOABB's ``ExtendedSSVEPSignal`` does, so that a covariance of size
    ``n_bands·n_channels`` also holds the cross-band terms.

    Parameters
    ----------
    sfreq : float
        Sampling rate of the stream, in Hz.
    l_freq, h_freq : float
        Band-pass edges in Hz when ``bands`` is None.
    bands : sequence of (float, float) | None
        Filter bank pass-bands in Hz; replaces the band-pass.
    filter_order : int
        Butterworth prototype order.
    estimator : str | float
        Covariance estimator: ``"lwf"`` (Ledoit-Wolf), ``"oas"``, ``"scm"``, or a
        shrinkage value in [0, 1] (see :func:`covariances`).
    recenter : str
        ``"none"``, ``"session"`` or ``"online"`` (see the module docstring).
    recenter_warmup : int
        Online: windows decided at the training mean before the online reference is used.
    recenter_forget : float
        Online: the smallest geodesic step towards each new window, in (0, 1].

    Attributes
    ----------
    classes_ : ndarray of str, shape (n_classes,)
    model_ : CovarianceModel
        The fitted arrays and the numpy forward pass ``predict_proba`` runs.
    pipeline_ : object
        The fitted pyriemann / scikit-learn classifier of (re-centred) covariances, kept
        to check the numpy forward pass against.
    """

    kind = ""

    def __init__(
        self, *, sfreq: float, l_freq: float = 8.0, h_freq: float = 30.0,
        bands: Sequence[Sequence[float]] | None = None, filter_order: int = 4,
        estimator: str | float = "lwf", recenter: str = "none", recenter_warmup: int = 10,
        recenter_forget: float = 0.05,
    ) -> None:
        self.sfreq = sfreq
        self.l_freq = l_freq
        self.h_freq = h_freq
        self.bands = bands
        self.filter_order = filter_order
        self.estimator = estimator
        self.recenter = recenter
        self.recenter_warmup = recenter_warmup
        self.recenter_forget = recenter_forget

    def _bands(self) -> list[list[float]] | None:
        nyquist = float(self.sfreq) / 2
        if self.bands is None:
            if not 0 < float(self.l_freq) < float(self.h_freq) < nyquist:
                raise ValueError(
                    f"{type(self).__name__}: expected 0 < l_freq < h_freq < Nyquist "
                    f"({nyquist:g} Hz), found l_freq={self.l_freq}, h_freq={self.h_freq}"
                )
            return None
        bands = [[float(lo), float(hi)] for lo, hi in self.bands]
        bad = [bd for bd in bands if not 0 < bd[0] < bd[1] < nyquist]
        if not bands or bad:
            raise ValueError(
                f"{type(self).__name__}: expected bands [low, high] with 0 < low < high < "
                f"Nyquist ({nyquist:g} Hz), found {bad or bands}"
            )
        return bands

    def _check_params(self) -> None:
        est = self.estimator
        if isinstance(est, str):
            if est not in ESTIMATORS:
                raise ValueError(f"{type(self).__name__}: estimator: expected one of "
                                 f"{ESTIMATORS} or a shrinkage value in [0, 1], found {est!r}")
        elif isinstance(est, bool) or not isinstance(est, int | float) or not 0 <= est <= 1:
            raise ValueError(f"{type(self).__name__}: estimator: expected one of "
                             f"{ESTIMATORS} or a shrinkage value in [0, 1], found {est!r}")
        check_recenter(self.recenter, self.recenter_warmup, self.recenter_forget,
                       where=f"{type(self).__name__}: recenter")

    def preprocessing(self) -> list[dict[str, Any]]:
        """A causal Butterworth band-pass, or a filter bank when ``bands`` is given."""
        bands = self._bands()
        if bands is None:
            return [{"kind": "bandpass", "l_freq": float(self.l_freq),
                     "h_freq": float(self.h_freq), "order": int(self.filter_order),
                     "ftype": "butter"}]
        return [{"kind": "filterbank", "bands": bands, "order": int(self.filter_order),
                 "ftype": "butter"}]

    def _stack(self, X: Any, who: str) -> np.ndarray:
        bands = self._bands()
        X = check_windows(X, ndim=(3,) if bands is None else (4,), who=who)
        if bands is not None:
            if X.shape[1] != len(bands):
                raise ValueError(
                    f"{who}: expected {len(bands)} sub-bands (the filter bank of "
                    f"preprocessing()), found {X.shape[1]} in windows of shape {X.shape}"
                )
            X = X.reshape(X.shape[0], -1, X.shape[-1])
        # float64: the eigendecompositions run in the input's dtype, and float32 loses
        # the small eigenvalues of ill-conditioned (e.g. stacked-band) covariances
        return X.astype(np.float64)

    def _fit_classifier(self, C: np.ndarray, y: np.ndarray) -> tuple[Any, dict]:
        """Fit on covariances; the fitted object and the arrays of the model file."""
        raise NotImplementedError

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None
            ) -> _CovarianceClassifier:
        """Fit the covariance pipeline.

        Parameters
        ----------
        X : ndarray, shape (n_windows, [n_bands,] n_channels, n_times)
            Windows after :meth:`preprocessing` (with the band axis exactly when ``bands``
            is given).
        y : array-like of str, shape (n_windows,)
        groups : array-like of int, shape (n_windows,) | None
            The training file (session) of each window; with re-centering each file is
            re-centred at its own mean. ``None``: one session.

        Returns
        -------
        self
        """
        who = f"{type(self).__name__}.fit"
        self._check_params()
        X = self._stack(X, who)
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(
                f"{who}: expected one label per window ({X.shape[0]}), found labels of "
                f"shape {y.shape}"
            )
        y = y.astype(str)
        classes = np.unique(y)
        if classes.size < 2:
            raise ValueError(
                f"{who}: expected at least 2 classes, found {classes.size}: {classes.tolist()}"
            )
        groups = np.zeros(len(y), np.int64) if groups is None else np.asarray(groups)
        if groups.shape != y.shape:
            raise ValueError(f"{who}: expected one group per window ({y.size}), found "
                             f"groups of shape {groups.shape}")
        C = covariances(X, self.estimator)
        train_mean = riemann_mean(C)
        if self.recenter != "none":
            C = C.copy()
            for g in np.unique(groups):
                idx = groups == g
                C[idx] = recenter(C[idx], riemann_mean(C[idx]))
        self.pipeline_, arrays = self._fit_classifier(C, y)
        est = self.estimator
        arrays.update(
            format=np.array(FORMAT), format_version=np.array(FORMAT_VERSION),
            kind=np.array(self.kind), classes=classes,
            estimator=np.array(est if isinstance(est, str) else "shrinkage"),
            shrinkage=np.array(np.nan if isinstance(est, str) else float(est)),
            n_bands=np.array(0 if self.bands is None else len(self.bands)),
            n_channels=np.array(X.shape[1]), recenter=np.array(self.recenter),
            recenter_warmup=np.array(int(self.recenter_warmup)),
            recenter_forget=np.array(float(self.recenter_forget)), train_mean=train_mean,
        )
        self.model_ = CovarianceModel(arrays)
        self.classes_ = classes
        self.n_channels_in_ = X.shape[1]
        self.n_times_in_ = X.shape[2]
        return self

    def _check(self, X: Any, who: str) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = self._stack(X, who)
        if X.shape[1] != self.n_channels_in_:
            raise ValueError(
                f"{who}: expected {self.n_channels_in_} (stacked) channels as in training, "
                f"found {X.shape[1]}"
            )
        return X

    def predict_proba(self, X: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities, shape (n_windows, n_classes), in the order of ``classes_``.

        The numpy forward pass the runtime serves (:meth:`CovarianceModel.predict_proba`).

        Parameters
        ----------
        X : ndarray, shape (n_windows, [n_bands,] n_channels, n_times)
            In time order within each session.
        groups : ndarray of int, shape (n_windows,) | None
            The session of each window (re-centering); ``None``: one session.
        """
        X = self._check(X, f"{type(self).__name__}.predict_proba")
        return self.model_.predict_proba(X, groups)

    def predict(self, X: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Most likely class label of each window, shape (n_windows,)."""
        return self.classes_[np.argmax(self.predict_proba(X, groups), axis=-1)]

    def save(self, path: str | Path, spec: Any) -> None:
        """Write the ``.npz`` model file (arrays and ``spec``, a :class:`DecoderSpec`)."""
        check_is_fitted(self, "model_")
        spec.validate()
        self.model_.save(path, spec.to_json())

    def to_onnx(self) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} cannot be exported to ONNX: it needs a matrix "
            "eigendecomposition/logarithm per window (no ONNX operator). It is served "
            "from its .npz model file instead (bci train --output MODEL.npz)"
        )


def _linear_arrays(model: Any) -> dict[str, np.ndarray]:
    return {"coef": np.asarray(model.coef_, np.float64),
            "intercept": np.asarray(model.intercept_, np.float64).ravel()}


class RiemannMDM(_CovarianceClassifier):
    """Minimum distance to mean on covariance matrices (Barachant et al. 2012).

    Each window's covariance is assigned to the class whose Riemannian mean is nearest
    (``pyriemann.classification.MDM``). Probabilities are pyriemann's
    ``softmax(-distance²)``: a ranking, not calibrated.

    For SSVEP give ``bands`` around each stimulation frequency (MOABB's
    ``FilterBankSSVEP`` uses ``[f - 0.5, f + 0.5]``): the sub-band signals are stacked
    along the channels before the covariance (MOABB's SSVEP MDM pipeline). MOABB filters
    offline and zero-phase; here the filters are causal, as the live runtime's, and a
    causal band-pass takes about 1/bandwidth seconds to build up and to die out: windows
    must be long compared to that (on synthetic 1-s windows ±0.5 Hz bands decoded at
    chance and ±1 Hz bands did not).

    Parameters are those of the covariance classifiers (see
    :class:`_CovarianceClassifier`).
    """

    kind = "mdm"

    def _fit_classifier(self, C: np.ndarray, y: np.ndarray) -> tuple[Any, dict]:
        from pyriemann.classification import MDM

        mdm = MDM(metric="riemann").fit(C, y)
        return mdm, {"class_means": np.asarray(mdm.covmeans_, np.float64)}


class RiemannFgMDM(_CovarianceClassifier):
    """MDM after Fisher geodesic discriminant filtering (Barachant et al. 2010).

    ``pyriemann.classification.FgMDM``: covariances are mapped to the tangent space at
    their Riemannian mean, filtered by the projection onto the LDA discriminant subspace,
    mapped back to the manifold and classified by MDM. Parameters are those of
    :class:`RiemannMDM`.
    """

    kind = "fgmdm"

    def _fit_classifier(self, C: np.ndarray, y: np.ndarray) -> tuple[Any, dict]:
        from pyriemann.classification import FgMDM

        fg = FgMDM(metric="riemann").fit(C, y)
        return fg, {"class_means": np.asarray(fg._mdm.covmeans_, np.float64),
                    "fg_reference": np.asarray(fg._fgda._ts.reference_, np.float64),
                    "fg_filter": np.asarray(fg._fgda._W, np.float64)}


class TangentSpaceLR(_CovarianceClassifier):
    """Tangent-space logistic regression on covariance matrices (Barachant et al. 2013).

    Covariances are mapped to the tangent space at their Riemannian mean
    (``pyriemann.tangentspace.TangentSpace``) and classified by an L2-regularised
    (multinomial) logistic regression. The usual motor-imagery baseline.

    Parameters
    ----------
    C : float
        Inverse regularisation strength of the logistic regression.
    **params
        Those of the covariance classifiers (see :class:`_CovarianceClassifier`).
    """

    kind = "ts-lr"

    def __init__(
        self, *, sfreq: float, l_freq: float = 8.0, h_freq: float = 30.0,
        bands: Sequence[Sequence[float]] | None = None, filter_order: int = 4,
        estimator: str | float = "lwf", recenter: str = "none", recenter_warmup: int = 10,
        recenter_forget: float = 0.05, C: float = 1.0,
    ) -> None:
        super().__init__(sfreq=sfreq, l_freq=l_freq, h_freq=h_freq, bands=bands,
                         filter_order=filter_order, estimator=estimator, recenter=recenter,
                         recenter_warmup=recenter_warmup, recenter_forget=recenter_forget)
        self.C = C

    def _linear(self) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=float(self.C), max_iter=1000)

    def _fit_classifier(self, C: np.ndarray, y: np.ndarray) -> tuple[Any, dict]:
        from pyriemann.tangentspace import TangentSpace
        from sklearn.pipeline import make_pipeline

        pipe = make_pipeline(TangentSpace(metric="riemann"), self._linear()).fit(C, y)
        ts, linear = pipe.steps[0][1], pipe.steps[1][1]
        return pipe, {"reference": np.asarray(ts.reference_, np.float64),
                      **_linear_arrays(linear)}


class TangentSpaceSVM(TangentSpaceLR):
    """Tangent-space linear SVM (one-vs-rest ``sklearn.svm.LinearSVC``).

    As :class:`TangentSpaceLR` with a linear support vector machine; its probabilities
    are the softmax of the one-vs-rest scores (for two classes ``sigmoid(score)``), a
    ranking, not calibrated.
    """

    kind = "ts-svm"

    def _linear(self) -> Any:
        from sklearn.svm import LinearSVC

        return LinearSVC(C=float(self.C), max_iter=10000)
