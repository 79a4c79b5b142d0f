"""Riemannian baselines on spatial covariance matrices (pyriemann), for evaluation only.

:class:`RiemannMDM` (minimum distance to the Riemannian class means) and
:class:`TangentSpaceLR` (logistic regression in the tangent space at the Riemannian mean)
are the reference pipelines of MOABB and of most SSVEP and motor-imagery benchmarks. They
follow the decoder contract of :mod:`bci.decoders.base` so that the same windows and the same
cross-validation score them next to the exported decoders, but they are **not served
live**: both need a matrix square root, logarithm or eigendecomposition per window, which
ONNX has no operator for, and pyriemann has no ONNX export, so :meth:`to_onnx` raises
:class:`NotImplementedError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from bci.decoders.base import check_windows
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.utils.validation import check_is_fitted


class _CovarianceClassifier(ClassifierMixin, BaseEstimator):
    """Band-pass or filter bank → covariance → a pyriemann classifier.

    With ``bands`` the windows are ``(n_windows, n_bands, n_channels, n_times)`` and the
    sub-band signals are stacked along the channel axis (band-major) before the
    covariance, as MOABB's ``ExtendedSSVEPSignal`` does, so that a covariance of size
    ``n_bands·n_channels`` also holds the cross-band terms. The parameters are those of
    :class:`RiemannMDM`.
    """

    def __init__(
        self, *, sfreq: float, l_freq: float = 8.0, h_freq: float = 30.0,
        bands: Sequence[Sequence[float]] | None = None, filter_order: int = 4,
        estimator: str = "lwf",
    ) -> None:
        self.sfreq = sfreq
        self.l_freq = l_freq
        self.h_freq = h_freq
        self.bands = bands
        self.filter_order = filter_order
        self.estimator = estimator

    def _pipeline(self) -> Pipeline:
        raise NotImplementedError

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
        # float64: pyriemann's eigendecompositions run in the input's dtype, and float32
        # loses the small eigenvalues of ill-conditioned (e.g. stacked-band) covariances
        return X.astype(np.float64)

    def fit(self, X: np.ndarray, y: np.ndarray) -> _CovarianceClassifier:
        """Fit the covariance pipeline.

        Parameters
        ----------
        X : ndarray, shape (n_windows, [n_bands,] n_channels, n_times)
            Windows after :meth:`preprocessing` (with the band axis exactly when ``bands``
            is given).
        y : array-like of str, shape (n_windows,)

        Returns
        -------
        self
        """
        who = f"{type(self).__name__}.fit"
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
        self.pipeline_ = self._pipeline().fit(X, y)
        self.classes_ = classes
        self.n_channels_in_ = X.shape[1]
        self.n_times_in_ = X.shape[2]
        return self

    def _check(self, X: Any, who: str) -> np.ndarray:
        check_is_fitted(self, "pipeline_")
        X = self._stack(X, who)
        if X.shape[1] != self.n_channels_in_:
            raise ValueError(
                f"{who}: expected {self.n_channels_in_} (stacked) channels as in training, "
                f"found {X.shape[1]}"
            )
        return X

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n_windows, n_classes), in the order of ``classes_``.

        Parameters
        ----------
        X : ndarray, shape (n_windows, [n_bands,] n_channels, n_times)
        """
        X = self._check(X, f"{type(self).__name__}.predict_proba")
        proba = self.pipeline_.predict_proba(X)
        # the pipeline's own class order is np.unique of the same strings, i.e. ours
        return np.asarray(proba, np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most likely class label of each window, shape (n_windows,)."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=-1)]

    def to_onnx(self) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} cannot be exported to ONNX: it needs a matrix "
            "eigendecomposition/logarithm per window (no ONNX operator) and pyriemann has "
            "no ONNX export. It is an offline evaluation baseline, not served live; "
            "export TRCA/eTRCA (bci.decoders.trca) or serve FBCCA instead"
        )


class RiemannMDM(_CovarianceClassifier):
    """Minimum distance to mean on covariance matrices (Barachant et al. 2012).

    Each window's covariance (``pyriemann.estimation.Covariances``) is assigned to the
    class whose Riemannian mean is nearest (``pyriemann.classification.MDM``).
    Probabilities are pyriemann's ``softmax(-distance²)``: a ranking, not calibrated.

    For SSVEP give ``bands`` around each stimulation frequency (MOABB's
    ``FilterBankSSVEP`` uses ``[f - 0.5, f + 0.5]``): the sub-band signals are stacked
    along the channels before the covariance (MOABB's SSVEP MDM pipeline). MOABB filters
    offline and zero-phase; here the filters are causal, as the live runtime's, and a
    causal band-pass takes about 1/bandwidth seconds to build up and to die out: windows
    must be long compared to that (on synthetic 1-s windows ±0.5 Hz bands decoded at
    chance and ±1 Hz bands did not).

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
    estimator : str
        Covariance estimator of ``pyriemann.estimation.Covariances`` (``"lwf"``:
        Ledoit-Wolf shrinkage, ``"oas"``, ``"scm"`` …).

    Attributes
    ----------
    classes_ : ndarray of str, shape (n_classes,)
    pipeline_ : sklearn.pipeline.Pipeline
        ``Covariances → MDM``.
    """

    def _pipeline(self) -> Pipeline:
        from pyriemann.classification import MDM
        from pyriemann.estimation import Covariances

        return make_pipeline(Covariances(estimator=self.estimator), MDM(metric="riemann"))


class TangentSpaceLR(_CovarianceClassifier):
    """Tangent-space logistic regression on covariance matrices (Barachant et al. 2013).

    Covariances are mapped to the tangent space at their Riemannian mean
    (``pyriemann.tangentspace.TangentSpace``) and classified by an L2-regularised
    multinomial logistic regression. The usual motor-imagery baseline.

    Parameters
    ----------
    sfreq : float
        Sampling rate of the stream, in Hz.
    l_freq, h_freq : float
        Band-pass edges in Hz (default 8–30 Hz: mu and beta rhythms).
    bands : sequence of (float, float) | None
        Filter bank pass-bands in Hz; replaces the band-pass (sub-bands stacked along the
        channels).
    filter_order : int
        Butterworth prototype order.
    estimator : str
        Covariance estimator of ``pyriemann.estimation.Covariances``.
    C : float
        Inverse regularisation strength of the logistic regression.

    Attributes
    ----------
    classes_ : ndarray of str, shape (n_classes,)
    pipeline_ : sklearn.pipeline.Pipeline
        ``Covariances → TangentSpace → LogisticRegression``.
    """

    def __init__(
        self, *, sfreq: float, l_freq: float = 8.0, h_freq: float = 30.0,
        bands: Sequence[Sequence[float]] | None = None, filter_order: int = 4,
        estimator: str = "lwf", C: float = 1.0,
    ) -> None:
        super().__init__(sfreq=sfreq, l_freq=l_freq, h_freq=h_freq, bands=bands,
                         filter_order=filter_order, estimator=estimator)
        self.C = C

    def _pipeline(self) -> Pipeline:
        from pyriemann.estimation import Covariances
        from pyriemann.tangentspace import TangentSpace

        return make_pipeline(
            Covariances(estimator=self.estimator), TangentSpace(metric="riemann"),
            LogisticRegression(C=float(self.C), max_iter=1000),
        )
