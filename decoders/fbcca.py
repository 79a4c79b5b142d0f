"""Filter-bank canonical correlation analysis for SSVEP (Chen et al., J. Neural Eng. 2015).

Training-free: each sub-band of the window is correlated (CCA) with sine/cosine
references at each stimulation frequency and its harmonics, and the squared
correlations are summed over sub-bands with weights ``w_n = n^-a + b``. It runs in numpy
behind the same interface as the ONNX decoders, because a per-window CCA (a QR and an
SVD) has no ONNX operator.

One estimator, :class:`FBCCAClassifier`, built from one set of options by
:func:`from_options`, serves both ends: :func:`serve` puts it behind the runtime's
decoder interface (``[decoder] kind = "fbcca"`` in ``bci run``/``bci replay``) and
:func:`build` hands it to ``bci evaluate``, so what is evaluated is what is served.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import mne
import numpy as np

from bci.decoder import NumpyDecoder
from bci.errors import ConfigError
from bci.spec import DecoderSpec, WindowSpec

log = logging.getLogger(__name__)

#: Harmonics in the references (the fundamental counts as the first). `bci evaluate` on
#: the SSVEP-exo recordings (4 subjects × 2 sessions, 13/17/21 Hz at 256 Hz, windows from
#: 2 s after the event): 3 harmonics 0.812 (1 s windows) and 0.849 (2 s); 5 harmonics
#: 0.786 and 0.854. Above 88 Hz the filter bank passes nothing, so the 5th harmonic of
#: 21 Hz (105 Hz) adds only noise.
N_HARMONICS = 3


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
        self, frequencies: Sequence[float], *, sfreq: float, n_harmonics: int = N_HARMONICS,
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
    """FBCCA with named classes and its filter bank declared.

    Training-free: ``fit`` only builds the references for the windows' shape. The same
    object answers ``bci evaluate`` and, behind :class:`bci.decoder.NumpyDecoder`, the
    live loop (see :func:`serve`); it has no ONNX form.

    Parameters
    ----------
    sfreq : float
        Sampling rate of the stream, in Hz.
    frequencies : mapping of str to float
        Stimulation frequency of each class; its order is the order of ``classes_``.
    n_bands : int
        Chen et al.'s sub-bands ``[8n, min(88, 0.45·sfreq)]`` Hz for n = 1 … n_bands.
    bands : sequence of (float, float) | None
        Sub-bands in Hz instead of Chen et al.'s.
    n_harmonics : int
        Harmonics in the references.
    phases : sequence of float | None
        Stimulation phase of each class, in the order of ``frequencies`` (see
        :class:`FBCCA`).
    filter_order : int
        Order of the filter bank's Chebyshev I filters.
    temperature : float
        See :class:`FBCCA`.
    ch_names : sequence of str | None
        Channels to decode (default: every EEG, sEEG and ECoG channel of the stream).
    pre_nodes : sequence of dict | None
        Runtime nodes run on the picked channels before the filter bank.
    """

    _estimator_type = "classifier"
    _PARAMS = ("sfreq", "frequencies", "n_bands", "bands", "n_harmonics", "phases",
               "filter_order", "temperature", "ch_names", "pre_nodes")

    def __init__(self, *, sfreq: float, frequencies: Mapping[str, float], n_bands: int = 5,
                 bands: Sequence[Sequence[float]] | None = None,
                 n_harmonics: int = N_HARMONICS, phases: Sequence[float] | None = None,
                 filter_order: int = 4, temperature: float = 0.02,
                 ch_names: Sequence[str] | None = None,
                 pre_nodes: Sequence[Mapping[str, Any]] | None = None) -> None:
        self.sfreq = sfreq
        self.frequencies = frequencies
        self.n_bands = n_bands
        self.bands = bands
        self.n_harmonics = n_harmonics
        self.phases = phases
        self.filter_order = filter_order
        self.temperature = temperature
        self.ch_names = ch_names
        self.pre_nodes = pre_nodes

    def get_params(self, deep: bool = True) -> dict:
        return {k: getattr(self, k) for k in self._PARAMS}

    def set_params(self, **params) -> FBCCAClassifier:
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def filter_bands(self) -> list[list[float]]:
        """The sub-bands in Hz, in the order of the windows' band axis."""
        if self.bands is not None:
            return [[float(lo), float(hi)] for lo, hi in self.bands]
        return [b for b in chen_bands(int(self.n_bands), high=min(88.0, 0.45 * self.sfreq))
                if b[0] < b[1]]

    def preprocessing(self) -> list[dict]:
        return [*(dict(n) for n in self.pre_nodes or ()),
                {"kind": "filterbank", "bands": self.filter_bands(),
                 "order": int(self.filter_order), "ftype": "cheby1", "rp": 0.5}]

    def fit(self, X: np.ndarray | None = None, y: np.ndarray | None = None, *,
            n_times: int | None = None) -> FBCCAClassifier:
        """Build the references; no training data are needed.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_bands, n_channels, n_times) | None
            Used only for its shape; or give ``n_times``.
        y : ndarray of str | None
            Checked against the classes, when given.
        """
        if not self.frequencies:
            raise ConfigError("fbcca: expected the stimulation frequency of each class "
                              "([decoder] frequencies, or [training] frequencies = "
                              "{ class = Hz }), found none")
        n_bands = len(self.filter_bands())
        if X is not None:
            X = np.asarray(X)
            if X.ndim != 4 or X.shape[1] != n_bands:
                raise ValueError(f"FBCCA: expected windows of shape (n_windows, {n_bands}, "
                                 f"n_channels, n_times), found {X.shape}")
            n_times = X.shape[-1]
        if n_times is None:
            raise ValueError("fit needs X or n_times")
        self.classes_ = np.asarray(list(self.frequencies), str)
        unknown = sorted(set(np.asarray(y, str)) - set(self.classes_)) if y is not None else []
        if unknown:
            raise ValueError(f"FBCCA: classes {unknown} have no stimulation frequency; "
                             f"frequencies are given for {list(self.classes_)}")
        self.fbcca_ = FBCCA([float(f) for f in self.frequencies.values()], sfreq=self.sfreq,
                            n_harmonics=int(self.n_harmonics), phases=self.phases,
                            temperature=float(self.temperature),
                            ).fit(n_times=int(n_times), n_bands=n_bands)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.fbcca_.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.fbcca_.decision_function(X), axis=-1)]

    def to_onnx(self):
        raise NotImplementedError(
            "FBCCA's per-window CCA (QR and SVD) has no ONNX form; serve it with "
            '[decoder] kind = "fbcca" in the session file')


#: Options of :func:`from_options` that are passed on to :class:`FBCCAClassifier` as
#: they are (``frequencies`` and ``classes`` are paired first, ``preprocessing`` becomes
#: ``pre_nodes``).
_PASSED = ("n_bands", "bands", "n_harmonics", "phases", "filter_order", "temperature",
           "ch_names")


def from_options(options: Mapping[str, Any], *, sfreq: float,
                 frequencies: Mapping[str, float] | None = None,
                 where: str = "decoder") -> FBCCAClassifier:
    """The FBCCA that a session's options describe, unfitted.

    Parameters
    ----------
    options : mapping
        A ``[decoder] kind = "fbcca"`` table without ``kind``/``threads``, or
        ``[training.decoders.fbcca]``: ``frequencies`` (a list of Hz, or a table class →
        Hz), ``classes`` (labels of a list of frequencies; default ``"<f>Hz"``),
        ``n_bands`` or ``bands``, ``n_harmonics``, ``phases``, ``filter_order``,
        ``temperature``, ``ch_names``, ``preprocessing`` (nodes before the filter bank).
    sfreq : float
        The stream's sampling rate, in Hz.
    frequencies : mapping of str to float | None
        Class → Hz when ``options`` has no ``frequencies`` (``[training] frequencies``).
    where : str
        The table ``options`` came from, for messages.

    Raises
    ------
    ConfigError
        Unknown options, or labels that do not pair with the frequencies.
    """
    opts = dict(options)
    freqs = opts.pop("frequencies", None)
    classes = opts.pop("classes", None)
    pre_nodes = opts.pop("preprocessing", None)
    unknown = sorted(set(opts) - set(_PASSED))
    if unknown:
        raise ConfigError(f"{where}: unknown fbcca option{'s' if len(unknown) > 1 else ''} "
                          f"{unknown}; expected some of "
                          f"{sorted({*_PASSED, 'frequencies', 'classes', 'preprocessing'})}")
    if freqs is None:
        if classes is not None:
            raise ConfigError(f"{where}.classes: expected with a list of frequencies, found "
                              "no frequencies")
        mapping = {str(c): float(f) for c, f in (frequencies or {}).items()}
    elif isinstance(freqs, Mapping):
        mapping = {str(c): float(f) for c, f in freqs.items()}
    else:
        labels = [str(c) for c in classes] if classes else [f"{float(f):g}Hz" for f in freqs]
        if len(labels) != len(freqs) or len(set(labels)) != len(labels):
            raise ConfigError(f"{where}.classes: expected one distinct label per frequency "
                              f"({len(freqs)}), found {labels}")
        mapping = {c: float(f) for c, f in zip(labels, freqs, strict=True)}
    return FBCCAClassifier(sfreq=float(sfreq), frequencies=mapping, pre_nodes=pre_nodes,
                           **opts)


def check_rate(clf: FBCCAClassifier, *, where: str) -> None:
    """Refuse frequencies and sub-bands the stream's rate cannot carry.

    A stimulation frequency at or above Nyquist, or a sub-band reaching it, is a
    :class:`~bci.errors.ConfigError` naming the key and the stream's rate; harmonics
    above Nyquist (their references alias onto unrelated frequencies) are a warning.
    """
    nyquist = clf.sfreq / 2
    freqs = {c: float(f) for c, f in clf.frequencies.items()}
    high = {c: f for c, f in freqs.items() if not f < nyquist}
    if high:
        raise ConfigError(
            f"{where}.frequencies: expected frequencies below the Nyquist frequency "
            f"{nyquist:g} Hz of the stream ({clf.sfreq:g} Hz), found {high}")
    bands = clf.filter_bands()
    if not bands:
        raise ConfigError(
            f"{where}.n_bands: no sub-band [8n, {min(88.0, 0.45 * clf.sfreq):g}] Hz fits a "
            f"stream at {clf.sfreq:g} Hz; expected a stream of at least ~36 Hz, or give "
            f"{where}.bands")
    bad = [b for b in bands if not 0 < b[0] < b[1] < nyquist]
    if bad:
        raise ConfigError(
            f"{where}.bands: expected sub-bands [low, high] with 0 < low < high < "
            f"{nyquist:g} Hz (Nyquist at {clf.sfreq:g} Hz), found {bad}")
    aliased = sorted({f"{h * f:g} Hz ({c} × {h})" for c, f in freqs.items()
                      for h in range(2, int(clf.n_harmonics) + 1) if h * f >= nyquist})
    if aliased:
        log.warning("%s.n_harmonics: harmonics %s lie above the Nyquist frequency %g Hz of "
                    "the stream; their references alias onto other frequencies", where,
                    ", ".join(aliased), nyquist)


def build(training: Any, sfreq: float, options: dict) -> FBCCAClassifier:
    """The ``fbcca`` builder of the decoder registry (``bci evaluate``).

    ``options`` are the session's FBCCA options (see
    :func:`bci.decoders.training.decoder_options`); ``[training] frequencies`` name the
    classes when they give no frequencies.
    """
    return from_options(options, sfreq=sfreq, frequencies=training.frequencies,
                        where="training.decoders.fbcca")


def serve(options: Mapping[str, Any], *, info: mne.Info, window: WindowSpec) -> NumpyDecoder:
    """The FBCCA decoder a ``[decoder] kind = "fbcca"`` table serves on a stream.

    The runtime builder of ``fbcca`` in the decoder registry: the same estimator as
    :func:`build` makes for ``bci evaluate``, set up for the session's window.

    Parameters
    ----------
    options : mapping
        See :func:`from_options`.
    info : mne.Info
        The stream's channels and sampling rate.
    window : WindowSpec
        The session's window.
    """
    sfreq = float(info["sfreq"])
    clf = from_options(options, sfreq=sfreq)
    check_rate(clf, where="decoder")
    ch_names = list(clf.ch_names or [
        info["ch_names"][i] for i in mne.pick_types(info, eeg=True, seeg=True, ecog=True,
                                                    exclude=[])] or info["ch_names"])
    spec = DecoderSpec(
        paradigm="ssvep", classes=list(clf.frequencies), ch_names=ch_names, sfreq=sfreq,
        window=window, preprocessing=clf.preprocessing(), output="probabilities",
        name="fbcca", extra={"decoder": "fbcca",
                             "frequencies": list(clf.frequencies.values())},
    )
    spec.validate()
    n_times = round(window.duration * sfreq)
    try:
        clf.fit(n_times=n_times)
    except ValueError as err:
        raise ConfigError(f"decoder: {err} (a {window.duration:g} s window at {sfreq:g} Hz)"
                          ) from None
    return NumpyDecoder(clf, spec, (len(clf.filter_bands()), len(ch_names), n_times))
