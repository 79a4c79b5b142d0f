"""Task-related component analysis for SSVEP, with a filter bank (Nakanishi et al., IEEE
Trans. Biomed. Eng. 2018).

For each sub-band and class, TRCA finds the spatial filter ``w`` that makes the filtered
training trials of that class most alike: the leading eigenvector of ``S w = λ Q w``,
where ``S`` sums the cross-covariances between different trials and ``Q`` is the
covariance of the trials side by side. A window is scored against each class by the
correlation between its projection and the projection of the class template (the mean
training trial). Ensemble TRCA projects with the filters of all classes at once.

Everything after the fit is a fixed linear projection followed by normalised inner
products, so the decoder exports to a plain ONNX graph (:meth:`TRCA.to_onnx`) that the
runtime serves like any other model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from bci.decoders.base import check_windows, classifier_graph
from bci.decoders.fbcca import chen_bands
from onnx import TensorProto, helper
from scipy import linalg
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

#: Ridge added to ``Q``, relative to its mean eigenvalue: keeps the generalised
#: eigenproblem solvable when channels are linearly dependent (e.g. average reference)
#: while changing well-conditioned problems by far less than float32 round-off.
_RIDGE = 1e-9

#: Floor of the norms that divide the correlations, so that an all-zero window (a
#: flat-lined amplifier) scores 0 instead of NaN, in numpy and in ONNX alike.
_TINY = 1e-30


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class TRCA(ClassifierMixin, BaseEstimator):
    """Filter-bank (ensemble) TRCA classifier for SSVEP.

    Parameters
    ----------
    sfreq : float
        Sampling rate of the windows, in Hz.
    n_bands : int
        Number of Chen et al. sub-bands ``[8n, min(88, 0.45·sfreq)]`` Hz, n = 1 … n_bands
        (sub-bands whose lower edge is not below the upper one are dropped). Ignored when
        ``bands`` is given.
    bands : sequence of (float, float) | None
        Explicit sub-bands in Hz, in order of decreasing weight.
    ensemble : bool
        ``False``: TRCA, each class scored with its own filter. ``True``: ensemble TRCA,
        every class scored with the filters of all classes stacked.
    filter_order : int
        Prototype order of each Chebyshev-I band-pass of the filter bank.
    a, b : float
        Sub-band weights ``w_n = n^-a + b`` (Chen et al.: 1.25 and 0.25).
    temperature : float
        Probabilities are ``softmax(score / temperature)``. They rank the classes and
        sharpen as the scores separate, but are not calibrated: use them for argmax and
        thresholds tuned on held-out data, not as posterior probabilities.

    Attributes
    ----------
    classes_ : ndarray of str, shape (n_classes,)
    templates_ : ndarray, shape (n_bands, n_classes, n_channels, n_times)
        Mean training trial of each class in each sub-band, each channel centred.
    filters_ : ndarray, shape (n_bands, n_classes, n_channels)
        TRCA spatial filter of each class in each sub-band, scaled so that
        ``w^T Q w = 1``.
    weights_ : ndarray, shape (n_bands,)
        Sub-band weights.
    projected_templates_ : ndarray
        Templates after projection, centred and scaled to unit norm: shape
        (n_bands, n_classes, n_times) for TRCA, (n_bands, n_classes, n_classes, n_times)
        for ensemble TRCA (axis 2 runs over the stacked filters).
    """

    def __init__(
        self, *, sfreq: float, n_bands: int = 5, bands: Sequence[Sequence[float]] | None = None,
        ensemble: bool = False, filter_order: int = 4, a: float = 1.25, b: float = 0.25,
        temperature: float = 0.02,
    ) -> None:
        self.sfreq = sfreq
        self.n_bands = n_bands
        self.bands = bands
        self.ensemble = ensemble
        self.filter_order = filter_order
        self.a = a
        self.b = b
        self.temperature = temperature

    # -- contract -------------------------------------------------------------------------

    def _bands(self) -> list[list[float]]:
        if self.bands is not None:
            bands = [[float(lo), float(hi)] for lo, hi in self.bands]
        else:
            high = min(88.0, 0.45 * float(self.sfreq))
            bands = [bd for bd in chen_bands(int(self.n_bands), high=high) if bd[0] < bd[1]]
        if not bands:
            raise ValueError(
                f"TRCA: no sub-band fits below {0.45 * float(self.sfreq):g} Hz at "
                f"sfreq={self.sfreq}; give bands explicitly"
            )
        nyquist = float(self.sfreq) / 2
        bad = [bd for bd in bands if not 0 < bd[0] < bd[1] < nyquist]
        if bad:
            raise ValueError(
                f"TRCA: expected bands [low, high] with 0 < low < high < Nyquist "
                f"({nyquist:g} Hz), found {bad}"
            )
        return bands

    def preprocessing(self) -> list[dict[str, Any]]:
        """The causal filter bank the windows must go through (``bci.filters.FilterBank``)."""
        return [{
            "kind": "filterbank", "bands": self._bands(), "order": int(self.filter_order),
            "ftype": "cheby1", "rp": 0.5,
        }]

    def fit(self, X: np.ndarray, y: np.ndarray) -> TRCA:
        """Learn templates and spatial filters.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_bands, n_channels, n_times)
            Windows after :meth:`preprocessing`.
        y : array-like of str, shape (n_windows,)
            Class labels; every class needs at least two windows.

        Returns
        -------
        self : TRCA
        """
        X = check_windows(X, ndim=(4,), who="TRCA.fit").astype(np.float64)
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(
                f"TRCA.fit: expected one label per window ({X.shape[0]}), found labels of "
                f"shape {y.shape}"
            )
        n_bands = len(self._bands())
        if X.shape[1] != n_bands:
            raise ValueError(
                f"TRCA.fit: expected {n_bands} sub-bands (the filter bank of "
                f"preprocessing()), found {X.shape[1]} in windows of shape {X.shape}"
            )
        y = y.astype(str)
        classes, counts = np.unique(y, return_counts=True)
        if classes.size < 2:
            raise ValueError(
                f"TRCA.fit: expected at least 2 classes, found {classes.size}: "
                f"{classes.tolist()}"
            )
        if counts.min() < 2:
            few = [str(c) for c, n in zip(classes, counts, strict=True) if n < 2]
            raise ValueError(
                f"TRCA.fit: expected at least 2 windows per class (TRCA correlates trials "
                f"with each other), found 1 for {few}"
            )
        if not float(self.temperature) > 0:
            raise ValueError(f"TRCA: temperature must be positive, found {self.temperature!r}")

        Xc = X - X.mean(axis=-1, keepdims=True)
        n_ch, n_times = X.shape[2], X.shape[3]
        templates = np.empty((n_bands, classes.size, n_ch, n_times))
        filters = np.empty((n_bands, classes.size, n_ch))
        for k, label in enumerate(classes):
            trials = Xc[y == label]  # (n_k, n_bands, C, T)
            for band in range(n_bands):
                xb = trials[:, band]
                total = xb.sum(axis=0)
                # Σ_i Σ_j≠i X_i X_j^T = (Σ_i X_i)(Σ_j X_j)^T − Σ_i X_i X_i^T
                q = np.einsum("nct,ndt->cd", xb, xb)
                s = total @ total.T - q
                q = q + _RIDGE * np.trace(q) / n_ch * np.eye(n_ch)
                # eigh returns ascending eigenvalues and Q-normalised vectors
                _, vecs = linalg.eigh(s, q, subset_by_index=[n_ch - 1, n_ch - 1])
                filters[band, k] = vecs[:, 0]
                templates[band, k] = xb.mean(axis=0)
        self.classes_ = classes
        self.templates_ = templates
        self.filters_ = filters
        n = np.arange(1, n_bands + 1, dtype=np.float64)
        self.weights_ = n ** (-float(self.a)) + float(self.b)
        if self.ensemble:
            # v[b, k, j] = w_{b,j}^T template_{b,k}
            proj = np.einsum("bjc,bkct->bkjt", filters, templates)
            norm = np.sqrt((proj**2).sum(axis=(2, 3), keepdims=True))
        else:
            proj = np.einsum("bkc,bkct->bkt", filters, templates)
            norm = np.sqrt((proj**2).sum(axis=-1, keepdims=True))
        self.projected_templates_ = proj / np.maximum(norm, _TINY)
        return self

    def _check(self, X: np.ndarray, who: str) -> np.ndarray:
        check_is_fitted(self, "filters_")
        X = check_windows(X, ndim=(4,), who=who)
        expected = (self.templates_.shape[0], *self.templates_.shape[2:])
        if X.shape[1:] != expected:
            raise ValueError(
                f"{who}: expected windows of shape (n_windows, {expected[0]}, {expected[1]}, "
                f"{expected[2]}) (n_bands, n_channels, n_times of the training windows), "
                f"found {X.shape}"
            )
        return X.astype(np.float64)

    def correlations(self, X: np.ndarray) -> np.ndarray:
        """Correlation of each window with each class template, per sub-band.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_bands, n_channels, n_times)

        Returns
        -------
        r : ndarray, shape (n_windows, n_bands, n_classes)
        """
        X = self._check(X, "TRCA.correlations")
        # centring each channel makes every projection zero-mean, so the Pearson
        # correlation is the cosine of the projections (also for the flattened ensemble)
        Xc = X - X.mean(axis=-1, keepdims=True)
        proj = np.einsum("bkc,nbct->nbkt", self.filters_, Xc)
        if self.ensemble:
            num = np.einsum("bkjt,nbjt->nbk", self.projected_templates_, proj)
            den = np.sqrt((proj**2).sum(axis=(2, 3)))[..., None]
        else:
            num = np.einsum("bkt,nbkt->nbk", self.projected_templates_, proj)
            den = np.sqrt((proj**2).sum(axis=-1))
        return num / np.maximum(den, _TINY)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Scores ``Σ_n w_n · sign(r_n)·r_n²`` summed over sub-bands.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_bands, n_channels, n_times)

        Returns
        -------
        scores : ndarray, shape (n_windows, n_classes)
        """
        r = self.correlations(X)
        return np.einsum("b,nbk->nk", self.weights_, np.sign(r) * r**2)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``softmax(scores / temperature)``: a ranking of the classes, not calibrated.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_bands, n_channels, n_times)

        Returns
        -------
        proba : ndarray, shape (n_windows, n_classes), in the order of ``classes_``
        """
        return _softmax(self.decision_function(X) / float(self.temperature))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most likely class label of each window, shape (n_windows,)."""
        return self.classes_[np.argmax(self.decision_function(X), axis=-1)]

    # -- export ---------------------------------------------------------------------------

    def to_onnx(self) -> onnx.ModelProto:
        """The fitted decoder as an ONNX graph computing :meth:`predict_proba`.

        Input ``"x"``: float32, shape (batch, n_bands, n_channels, n_times). Output
        ``"y"``: float32 probabilities, shape (batch, n_classes). The graph computes in
        float64 (one cast in, one out) so that its output matches :meth:`predict_proba`
        to round-off whatever the temperature.

        Returns
        -------
        model : onnx.ModelProto
        """
        check_is_fitted(self, "filters_")
        n_bands, n_classes, n_ch, n_times = self.templates_.shape
        inits = {
            "filters": self.filters_,  # (B, K, C)
            "templates": self.projected_templates_,
            "band_weights": self.weights_[:, None],  # (B, 1), broadcast over classes
            "inv_temperature": np.array(1.0 / float(self.temperature)),
            "tiny": np.array(_TINY),
            "axis_band": np.array([1], np.int64),
        }
        nodes = [
            helper.make_node("Cast", ["x"], ["x64"], to=TensorProto.DOUBLE),
            helper.make_node("ReduceMean", ["x64"], ["mean"], axes=[3], keepdims=1),
            helper.make_node("Sub", ["x64", "mean"], ["xc"]),
            # (B, K, C) @ (N, B, C, T) -> (N, B, K, T): row k is w_k^T X_b
            helper.make_node("MatMul", ["filters", "xc"], ["proj"]),
            helper.make_node("Mul", ["proj", "proj"], ["proj_sq"]),
        ]
        if self.ensemble:
            inits["templates"] = self.projected_templates_.reshape(
                n_bands, n_classes, n_classes * n_times)  # (B, K, J·T)
            inits["flat_shape"] = np.array([-1, n_bands, n_classes * n_times, 1], np.int64)
            inits["out_shape"] = np.array([-1, n_bands, n_classes], np.int64)
            inits["axes_jt"] = np.array([2, 3], np.int64)
            nodes += [
                helper.make_node("Reshape", ["proj", "flat_shape"], ["proj_flat"]),
                # (B, K, J·T) @ (N, B, J·T, 1) -> (N, B, K, 1)
                helper.make_node("MatMul", ["templates", "proj_flat"], ["num4"]),
                helper.make_node("Reshape", ["num4", "out_shape"], ["num"]),
                helper.make_node("ReduceSum", ["proj_sq", "axes_jt"], ["sq"], keepdims=0),
                helper.make_node("Sqrt", ["sq"], ["norm_b"]),
                # (N, B) -> (N, B, 1): one norm shared by every class of the band
                helper.make_node("Reshape", ["norm_b", "norm_shape"], ["norm"]),
            ]
            inits["norm_shape"] = np.array([-1, n_bands, 1], np.int64)
        else:
            inits["axis_time"] = np.array([3], np.int64)
            nodes += [
                helper.make_node("Mul", ["proj", "templates"], ["prod"]),
                helper.make_node("ReduceSum", ["prod", "axis_time"], ["num"], keepdims=0),
                helper.make_node("ReduceSum", ["proj_sq", "axis_time"], ["sq"], keepdims=0),
                helper.make_node("Sqrt", ["sq"], ["norm"]),
            ]
        nodes += [
            helper.make_node("Max", ["norm", "tiny"], ["den"]),
            helper.make_node("Div", ["num", "den"], ["r"]),  # (N, B, K)
            helper.make_node("Sign", ["r"], ["sign"]),
            helper.make_node("Mul", ["r", "r"], ["r_sq"]),
            helper.make_node("Mul", ["sign", "r_sq"], ["signed_sq"]),
            helper.make_node("Mul", ["signed_sq", "band_weights"], ["weighted"]),
            helper.make_node("ReduceSum", ["weighted", "axis_band"], ["scores"], keepdims=0),
            helper.make_node("Mul", ["scores", "inv_temperature"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["p64"], axis=-1),
            helper.make_node("Cast", ["p64"], ["y"], to=TensorProto.FLOAT),
        ]
        doc = (f"{'Ensemble ' if self.ensemble else ''}TRCA (Nakanishi et al. 2018), "
               f"{n_bands} sub-bands, classes {self.classes_.tolist()}; softmax(score / "
               f"{float(self.temperature):g}) ranks classes and is not calibrated")
        return classifier_graph(nodes, inits, (n_bands, n_ch, n_times), n_classes,
                                "etrca" if self.ensemble else "trca", doc=doc)
