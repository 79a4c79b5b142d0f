"""Filter-bank canonical correlation analysis for SSVEP (Chen et al., J. Neural Eng. 2015).

Training-free: each sub-band of the window is correlated (CCA) with sine/cosine
references at each stimulation frequency and its harmonics, and the squared
correlations are summed over sub-bands with weights ``w_n = n^-a + b``. It runs in numpy
behind the same interface as the ONNX decoders, because a per-window CCA (a QR and an
SVD) has no ONNX operator.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def chen_bands(n_bands: int = 5, *, spacing: float = 8.0, high: float = 88.0) -> list[list[float]]:
    """Chen et al.'s sub-bands ``[n·spacing, high]`` Hz for n = 1 … n_bands."""
    return [[spacing * n, high] for n in range(1, n_bands + 1)]


class FBCCA:
    """FBCCA classifier in scikit-learn's style.

    Parameters
    ----------
    frequencies : sequence of float
        Stimulation frequency of each class, in Hz.
    sfreq : float
        Sampling rate of the windows, in Hz.
    n_harmonics : int
        Harmonics in the references (the fundamental counts as the first).
    phases : sequence of float | None
        Stimulation phase of each class in radians (joint frequency-phase coding); the
        references are shifted by ``h·phase`` for harmonic ``h``. CCA is invariant to a
        phase shift of a sine/cosine pair, so this matters only for documentation and
        reproducibility of the references.
    a, b : float
        Sub-band weights ``w_n = n^-a + b`` (Chen et al.: 1.25 and 0.25).
    temperature : float
        Scores ``ρ̃_k`` are turned into probabilities by ``softmax(ρ̃ / temperature)``;
        the probabilities rank classes but are not calibrated.

    Attributes
    ----------
    references_ : ndarray, shape (n_classes, n_times, 2 * n_harmonics)
        Orthonormal bases of the centred references, set by :meth:`fit`.
    weights_ : ndarray, shape (n_bands,)
    """

    def __init__(
        self, frequencies: Sequence[float], *, sfreq: float, n_harmonics: int = 5,
        phases: Sequence[float] | None = None, a: float = 1.25, b: float = 0.25,
        temperature: float = 0.02,
    ) -> None:
        self.frequencies = frequencies
        self.sfreq = sfreq
        self.n_harmonics = n_harmonics
        self.phases = phases
        self.a = a
        self.b = b
        self.temperature = temperature

    def fit(self, X: np.ndarray | None = None, y: np.ndarray | None = None, *,
            n_times: int | None = None, n_bands: int | None = None) -> FBCCA:
        """Build the references; no training data are needed.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_bands, n_channels, n_times) | None
            Used only for its shape; or give ``n_times`` and ``n_bands``.
        y : ignored
        """
        if X is not None:
            n_bands, n_times = X.shape[-3], X.shape[-1]
        if n_times is None or n_bands is None:
            raise ValueError("fit needs X or both n_times and n_bands")
        freqs = np.asarray(self.frequencies, float)
        phases = np.zeros_like(freqs) if self.phases is None else np.asarray(self.phases, float)
        if phases.shape != freqs.shape:
            raise ValueError(
                f"expected one phase per frequency ({freqs.size}), found {phases.size}"
            )
        if 2 * self.n_harmonics > n_times:
            raise ValueError(f"windows of {n_times} samples are too short for "
                             f"{self.n_harmonics} harmonics")
        t = np.arange(n_times) / self.sfreq
        h = np.arange(1, self.n_harmonics + 1)[:, None]
        refs = []
        for f, p in zip(freqs, phases, strict=True):
            arg = 2 * np.pi * h * f * t[None] + h * p
            y_ref = np.concatenate([np.sin(arg), np.cos(arg)]).T  # (n_times, 2H)
            y_ref -= y_ref.mean(axis=0)
            refs.append(np.linalg.qr(y_ref)[0])
        self.references_ = np.stack(refs)
        n = np.arange(1, n_bands + 1)
        self.weights_ = n ** (-float(self.a)) + float(self.b)
        self.classes_ = np.arange(freqs.size)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Weighted squared canonical correlations ``ρ̃_k``.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_bands, n_channels, n_times)
            Or a single window, shape (n_bands, n_channels, n_times).

        Returns
        -------
        scores : ndarray, shape (n_windows, n_classes) or (n_classes,)
        """
        single = X.ndim == 3
        X = np.asarray(X, np.float64)
        if single:
            X = X[None]
        n_bands, n_times = X.shape[1], X.shape[3]
        if n_times != self.references_.shape[1] or n_bands != self.weights_.size:
            raise ValueError(
                f"FBCCA was set up for windows of {self.weights_.size} bands × "
                f"{self.references_.shape[1]} samples, found {n_bands} × {n_times}"
            )
        Xc = X - X.mean(axis=-1, keepdims=True)
        # orthonormal basis of each band's channel space, (n_win, n_bands, n_times, n_ch)
        qx = np.linalg.qr(np.swapaxes(Xc, -1, -2))[0]
        # canonical correlations are the singular values of Qx^T Qy
        m = np.einsum("wbtc,ktr->wbkcr", qx, self.references_)
        rho = np.linalg.svd(m, compute_uv=False)[..., 0]  # (n_win, n_bands, n_classes)
        scores = np.einsum("b,wbk->wk", self.weights_, rho**2)
        return scores[0] if single else scores

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        scores = self.decision_function(X)
        z = scores / self.temperature
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(self.decision_function(X), axis=-1)


class FBCCAClassifier:
    """FBCCA with named classes and its filter bank declared, for ``bci evaluate``.

    Training-free: ``fit`` only builds the references for the windows' shape. It is served
    live as a numpy decoder (``[decoder] kind = "fbcca"``), not exported to ONNX.

    Parameters
    ----------
    sfreq : float
        Sampling rate of the stream, in Hz.
    frequencies : mapping of str to float
        Stimulation frequency of each class; its order is the order of ``classes_``.
    n_bands, n_harmonics, filter_order : int
        Chen et al.'s sub-bands ``[8n, min(88, 0.45·sfreq)]`` Hz, references' harmonics,
        Chebyshev I order.
    temperature : float
        See :class:`FBCCA`.
    """

    _estimator_type = "classifier"

    def __init__(self, *, sfreq: float, frequencies: dict[str, float], n_bands: int = 5,
                 n_harmonics: int = 3, filter_order: int = 4, temperature: float = 0.02) -> None:
        self.sfreq = sfreq
        self.frequencies = frequencies
        self.n_bands = n_bands
        self.n_harmonics = n_harmonics
        self.filter_order = filter_order
        self.temperature = temperature

    def get_params(self, deep: bool = True) -> dict:
        return {k: getattr(self, k) for k in ("sfreq", "frequencies", "n_bands",
                                              "n_harmonics", "filter_order", "temperature")}

    def set_params(self, **params) -> FBCCAClassifier:
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def preprocessing(self) -> list[dict]:
        bands = [b for b in chen_bands(self.n_bands, high=min(88.0, 0.45 * self.sfreq))
                 if b[0] < b[1]]
        return [{"kind": "filterbank", "bands": bands, "order": self.filter_order,
                 "ftype": "cheby1", "rp": 0.5}]

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> FBCCAClassifier:
        if not self.frequencies:
            raise ValueError("FBCCA needs the stimulation frequency of each class "
                             "([training] frequencies = { class = Hz }), found none")
        X = np.asarray(X)
        if X.ndim != 4:
            raise ValueError(f"FBCCA: expected windows of shape (n_windows, n_bands, "
                             f"n_channels, n_times), found {X.shape}")
        self.classes_ = np.asarray(list(self.frequencies), str)
        unknown = sorted(set(np.asarray(y, str)) - set(self.classes_)) if y is not None else []
        if unknown:
            raise ValueError(f"FBCCA: classes {unknown} have no stimulation frequency; "
                             f"frequencies are given for {list(self.classes_)}")
        self.fbcca_ = FBCCA(list(self.frequencies.values()), sfreq=self.sfreq,
                            n_harmonics=self.n_harmonics,
                            temperature=self.temperature).fit(X[:1])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.fbcca_.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.fbcca_.decision_function(X), axis=-1)]

    def to_onnx(self):
        raise NotImplementedError(
            "FBCCA's per-window CCA (QR and SVD) has no ONNX form; serve it with "
            '[decoder] kind = "fbcca" in the session file')
