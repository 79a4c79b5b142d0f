"""CSP + LDA (Blankertz et al. 2008) and filter-bank CSP (Ang et al. 2008) for motor
imagery, each exported as one ONNX graph built with ``onnx.helper``.

CSP+LDA: one band-pass, CSP log relative variances, shrinkage LDA. FBCSP: a filter
bank, CSP in every band, the ``k_best`` features of highest mutual information with
the class (estimated on the training windows only), shrinkage LDA. The LDA is
scikit-learn's (``solver="lsqr", shrinkage="auto"``, Ledoit-Wolf); the graph repeats its
``predict_proba``: ``[1−σ(d), σ(d)]`` for two classes, ``softmax(d)`` for more, with
``d = features · coef_ᵀ + intercept_``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from bci.decoders.base import check_windows, classifier_graph
from bci.decoders.csp import CSP, append_csp, check_labels, log_relative_variance
from onnx import TensorProto, helper, numpy_helper
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.feature_selection import mutual_info_classif

FB_BANDS = ((4, 8), (8, 12), (12, 16), (16, 20), (20, 24), (24, 28), (28, 32), (32, 36),
            (36, 40))


def _check_band(who: str, lo: float, hi: float, sfreq: float) -> None:
    if not 0 < lo < hi < sfreq / 2:
        raise ValueError(f"{who}: expected 0 < low < high < Nyquist ({sfreq / 2:g} Hz), "
                         f"found band [{lo:g}, {hi:g}] Hz")


def _fit_lda(features: np.ndarray, y: np.ndarray) -> LinearDiscriminantAnalysis:
    return LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(features, y)


def _lda_proba(lda: LinearDiscriminantAnalysis, features: np.ndarray) -> np.ndarray:
    """LDA's ``predict_proba``, written out so that the graph demonstrably repeats it."""
    d = features @ lda.coef_.T + lda.intercept_
    if lda.classes_.size == 2:
        p = expit(d[:, 0])
        return np.stack([1.0 - p, p], axis=1)
    return softmax(d, axis=1)


def _append_lda(nodes: list[Any], inits: list[Any], features: str,
                lda: LinearDiscriminantAnalysis, *, out: str = "y") -> None:
    """LDA probabilities from float64 ``features``, cast to float32 ``out``."""
    inits += [numpy_helper.from_array(lda.coef_.astype(np.float64), "lda_coef"),
              numpy_helper.from_array(lda.intercept_.astype(np.float64), "lda_intercept")]
    nodes.append(helper.make_node("Gemm", [features, "lda_coef", "lda_intercept"],
                                  ["lda_decision"], transB=1))
    if lda.classes_.size > 2:
        nodes.append(helper.make_node("Softmax", ["lda_decision"], ["lda_proba"], axis=-1))
    else:
        inits.append(numpy_helper.from_array(np.array(1.0), "lda_one"))
        nodes += [
            helper.make_node("Sigmoid", ["lda_decision"], ["lda_p1"]),
            helper.make_node("Sub", ["lda_one", "lda_p1"], ["lda_p0"]),
            helper.make_node("Concat", ["lda_p0", "lda_p1"], ["lda_proba"], axis=1),
        ]
    nodes.append(helper.make_node("Cast", ["lda_proba"], [out], to=TensorProto.FLOAT))


def _check_fitted_shape(who: str, X: np.ndarray, fitted: tuple[int, ...], names: str) -> None:
    """Windows must match the fitted channels (and bands); any length is accepted."""
    found = X.shape[1:-1]
    if found != fitted:
        raise ValueError(f"{who}: fitted on windows of {names} {fitted}, found {found} "
                         f"(shape {X.shape})")


class CSPLDA(ClassifierMixin, BaseEstimator):
    """Band-pass, CSP log relative variances, shrinkage LDA.

    Parameters
    ----------
    sfreq : float
        Sampling rate of the windows, in Hz (checks the band against Nyquist).
    l_freq, h_freq : float
        Band-pass edges in Hz, run by the runtime before windows are cut.
    filter_order : int
        Butterworth prototype order of the band-pass.
    n_components, multiclass, reg
        Passed to :class:`bci.decoders.csp.CSP`.

    Attributes
    ----------
    csp_ : CSP
    lda_ : LinearDiscriminantAnalysis
    classes_ : ndarray, shape (n_classes,)
        The labels as given, sorted.
    window_shape_ : tuple (n_channels, n_times)
        Shape of the training windows; the ONNX input takes exactly this shape.
    """

    def __init__(
        self, *, sfreq: float, l_freq: float = 8.0, h_freq: float = 30.0,
        filter_order: int = 4, n_components: int = 4, multiclass: str = "ovr",
        reg: float | None = None,
    ) -> None:
        self.sfreq = sfreq
        self.l_freq = l_freq
        self.h_freq = h_freq
        self.filter_order = filter_order
        self.n_components = n_components
        self.multiclass = multiclass
        self.reg = reg

    def preprocessing(self) -> list[dict[str, Any]]:
        """The runtime's band-pass: ``[{"kind": "bandpass", ...}]``."""
        _check_band("CSPLDA", float(self.l_freq), float(self.h_freq), float(self.sfreq))
        return [{"kind": "bandpass", "l_freq": float(self.l_freq),
                 "h_freq": float(self.h_freq), "order": int(self.filter_order)}]

    def fit(self, X: np.ndarray, y: np.ndarray) -> CSPLDA:
        """Fit CSP, then LDA on the CSP features.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_channels, n_times)
            Band-passed windows (see :meth:`preprocessing`).
        y : ndarray, shape (n_windows,)
        """
        self.preprocessing()
        X = check_windows(X, who="CSPLDA")
        y = check_labels(y, X.shape[0], who="CSPLDA")
        self.csp_ = CSP(self.n_components, multiclass=self.multiclass,
                        transform_into="log_var", reg=self.reg).fit(X, y)
        self.lda_ = _fit_lda(self.csp_.transform(X), y)
        self.classes_ = self.lda_.classes_
        self.window_shape_ = tuple(X.shape[1:])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_channels, n_times)

        Returns
        -------
        proba : ndarray, shape (n_windows, n_classes)
            In the order of ``classes_``.
        """
        X = check_windows(X, who="CSPLDA")
        _check_fitted_shape("CSPLDA", X, self.window_shape_[:1], "(n_channels,)")
        return _lda_proba(self.lda_, self.csp_.transform(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def to_onnx(self) -> onnx.ModelProto:
        """The fitted decoder as one graph, input ``x`` (batch, n_channels, n_times)."""
        nodes: list[Any] = []
        inits: list[Any] = []
        feats = append_csp(nodes, inits, self.csp_.filters_, x="x", transform_into="log_var",
                           dtype=np.float64)
        _append_lda(nodes, inits, feats, self.lda_)
        return classifier_graph(nodes, inits, self.window_shape_, self.classes_.size, "csp_lda")


class FBCSP(ClassifierMixin, BaseEstimator):
    """Filter-bank CSP: CSP per band, mutual-information feature selection, LDA.

    Parameters
    ----------
    sfreq : float
        Sampling rate of the windows, in Hz.
    bands : sequence of (float, float)
        Filter-bank pass-bands in Hz (default: 4–40 Hz in 4 Hz steps, Ang et al.).
    filter_order : int
        Butterworth prototype order of each band-pass.
    n_components : int
        CSP filters per band (per class and band with three classes or more).
    k_best : int
        Features kept by mutual information (at most the number of features).
    random_state : int | None
        Seed of the noise ``mutual_info_classif`` adds to break ties.
    reg : float | None
        CSP covariance shrinkage in every band (see :class:`bci.decoders.csp.CSP`).

    Attributes
    ----------
    csps_ : list of CSP
        One per band.
    mutual_info_ : ndarray, shape (n_bands * n_filters,)
        Mutual information of each feature (band-major) with the class.
    selected_ : ndarray of int, shape (k,)
        Indices (ascending) of the kept features in the band-major feature vector; band
        ``selected_ // n_filters``, filter ``selected_ % n_filters``.
    lda_ : LinearDiscriminantAnalysis
    classes_ : ndarray, shape (n_classes,)
    window_shape_ : tuple (n_bands, n_channels, n_times)
    """

    def __init__(
        self, *, sfreq: float, bands: Sequence[Sequence[float]] = FB_BANDS,
        filter_order: int = 4, n_components: int = 4, k_best: int = 8,
        random_state: int | None = 0, reg: float | None = None,
    ) -> None:
        self.sfreq = sfreq
        self.bands = bands
        self.filter_order = filter_order
        self.n_components = n_components
        self.k_best = k_best
        self.random_state = random_state
        self.reg = reg

    def preprocessing(self) -> list[dict[str, Any]]:
        """The runtime's filter bank: ``[{"kind": "filterbank", ...}]``."""
        bands = [[float(lo), float(hi)] for lo, hi in self.bands]
        if not bands:
            raise ValueError("FBCSP: expected at least one band, found none")
        for lo, hi in bands:
            _check_band("FBCSP", lo, hi, float(self.sfreq))
        return [{"kind": "filterbank", "bands": bands, "order": int(self.filter_order),
                 "ftype": "butter"}]

    def _features(self, X: np.ndarray) -> np.ndarray:
        z = np.matmul(np.stack([c.filters_ for c in self.csps_]), X.astype(np.float64))
        return log_relative_variance(z).reshape(X.shape[0], -1)

    def fit(self, X: np.ndarray, y: np.ndarray) -> FBCSP:
        """Fit a CSP per band, select features, fit LDA.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_bands, n_channels, n_times)
            Filter-bank windows (see :meth:`preprocessing`).
        y : ndarray, shape (n_windows,)
        """
        n_bands = len(self.preprocessing()[0]["bands"])
        X = check_windows(X, ndim=(4,), who="FBCSP")
        y = check_labels(y, X.shape[0], who="FBCSP")
        if X.shape[1] != n_bands:
            raise ValueError(f"FBCSP: expected {n_bands} bands (one per entry of bands), "
                             f"found {X.shape[1]} (shape {X.shape})")
        if not isinstance(self.k_best, int | np.integer) or self.k_best < 1:
            raise ValueError(f"FBCSP: k_best must be a positive integer, found {self.k_best!r}")
        self.csps_ = [CSP(self.n_components, transform_into="log_var", reg=self.reg)
                      .fit(X[:, b], y)
                      for b in range(n_bands)]
        self.window_shape_ = tuple(X.shape[1:])
        feats = self._features(X)
        self.mutual_info_ = mutual_info_classif(feats, y, random_state=self.random_state)
        k = min(int(self.k_best), feats.shape[1])
        self.selected_ = np.sort(np.argsort(-self.mutual_info_, kind="stable")[:k])
        self.lda_ = _fit_lda(feats[:, self.selected_], y)
        self.classes_ = self.lda_.classes_
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_bands, n_channels, n_times)

        Returns
        -------
        proba : ndarray, shape (n_windows, n_classes)
            In the order of ``classes_``.
        """
        X = check_windows(X, ndim=(4,), who="FBCSP")
        _check_fitted_shape("FBCSP", X, self.window_shape_[:2], "(n_bands, n_channels)")
        return _lda_proba(self.lda_, self._features(X)[:, self.selected_])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def to_onnx(self) -> onnx.ModelProto:
        """The fitted decoder as one graph, input ``x`` (batch, n_bands, n_channels,
        n_times)."""
        nodes: list[Any] = []
        inits: list[Any] = []
        filters = np.stack([c.filters_ for c in self.csps_])
        logvar = append_csp(nodes, inits, filters, x="x", transform_into="log_var",
                            dtype=np.float64)
        n_features = filters.shape[0] * filters.shape[1]
        inits += [numpy_helper.from_array(np.array([-1, n_features], np.int64), "fb_flat"),
                  numpy_helper.from_array(self.selected_.astype(np.int64), "fb_selected")]
        nodes += [helper.make_node("Reshape", [logvar, "fb_flat"], ["fb_features"]),
                  helper.make_node("Gather", ["fb_features", "fb_selected"], ["fb_kept"],
                                   axis=1)]
        _append_lda(nodes, inits, "fb_kept", self.lda_)
        return classifier_graph(nodes, inits, self.window_shape_, self.classes_.size, "fbcsp")
