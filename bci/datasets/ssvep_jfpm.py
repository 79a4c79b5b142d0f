"""Phase-locked many-target SSVEP (joint frequency-phase modulation, JFPM): a hybrid set
built on real background EEG, and the loader of the published ``.mat`` sets.

**Hybrid set** (:func:`make_hybrid_jfpm`). No phase-locked 12-target recording can be
fetched here, so the set is *hybrid*: the background is real EEG, cut from the rest
periods (event code 1) of the shared SSVEP-exo recordings (Kalunga et al. 2016,
``$BCI_DATA/ssvep-exo``: 8 occipital channels, 256 Hz) with their own noise, alpha and
artefacts; the responses are synthetic and phase-locked to the stimulus onset, at 12
targets 8–13.5 Hz in 0.5 Hz steps with phases ``k · 0.35π`` (as in the published
12-target and 40-target JFPM sets). Each subject has its own spatial pattern per harmonic,
its own harmonic phase lags and visual latency (about 0.14 s); trials vary in gain and
phase. Trials come in blocks, each block holding every target once, as the published
sets do.

**Published format** (:func:`load_mat`): a MATLAB file holding one array laid out
``[channels, samples, targets, blocks]`` (the Tsinghua benchmark's ``data``; Nakanishi et
al.'s 12-target set stores ``eeg`` as ``[targets, channels, samples, blocks]``, read it
with ``axes=("targets", "channels", "samples", "blocks")``). :func:`read_mat_trials`
turns such a file into one recording per trial, so that ``bci evaluate SESSION.toml
--train X.mat --split leave-one-block-out`` holds one block out at a time.

What a file does not say (sampling rate, channel names, stimulus onset, unit, axes) is
taken, in this order, from the keyword arguments, from variables of the same name in the
file, and from a JSON sidecar ``X.json`` beside ``X.mat``; see :func:`load_mat`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mne
import numpy as np

from bci.chunk import Markers
from bci.errors import RecordingError
from bci.recording import Recording

#: The 12 stimulation frequencies of the hybrid set, in Hz.
FREQUENCIES = tuple(8.0 + 0.5 * k for k in range(12))
#: Phase step between consecutive targets, radians (the published JFPM sets' 0.35π).
PHASE_STEP = 0.35 * math.pi
#: The stimulation phase of each target, radians in [0, 2π).
PHASES = tuple((k * PHASE_STEP) % (2 * math.pi) for k in range(12))
#: Channels of the SSVEP-exo recordings, in their order.
EXO_CHANNELS = ("Oz", "O1", "O2", "PO3", "POz", "PO7", "PO8", "PO4")
#: SSVEP-exo event code of the rest periods.
REST_CODE = 1
#: SSVEP-exo trial length after its event, seconds.
EXO_TRIAL_SECONDS = 5.0
#: Published layout of the ``.mat`` arrays.
DEFAULT_AXES = ("channels", "samples", "targets", "blocks")
#: Variable names tried, in order, when none is given (Nakanishi et al., Tsinghua).
DEFAULT_VARIABLES = ("eeg", "data")

# relative weight of each channel in the SSVEP pattern before per-subject variation
_BASE_PATTERN = {"oz": 1.0, "o1": 0.9, "o2": 0.9, "poz": 0.7, "po3": 0.6, "po4": 0.6,
                 "po7": 0.5, "po8": 0.5}
_UNITS = {"v": 1.0, "mv": 1e-3, "uv": 1e-6, "µv": 1e-6, "μv": 1e-6, "nv": 1e-9}


@dataclass(slots=True)
class JFPMSet:
    """Trials of a many-target SSVEP set, cut around the stimulus onsets.

    Attributes
    ----------
    X : ndarray of float64, shape (n_trials, n_channels, n_samples)
        Volts; sample ``onset`` of each trial is the stimulus onset.
    y : ndarray of int, shape (n_trials,)
        Target index, 0 … n_targets − 1, in the order of ``frequencies``.
    blocks : ndarray of int, shape (n_trials,)
        Block index; every block holds each target once.
    sfreq : float
    ch_names : list of str
    frequencies : list of float
        Stimulation frequency of each target, Hz (empty when unknown).
    phases : list of float
        Stimulation phase of each target, radians (empty when unknown).
    onset : int
        Sample of the stimulus onset in each trial.
    source : str
        Where the set came from, for messages.
    meta : dict
        How the set was made (generator parameters, background origin …).
    """

    X: np.ndarray
    y: np.ndarray
    blocks: np.ndarray
    sfreq: float
    ch_names: list[str]
    frequencies: list[float] = field(default_factory=list)
    phases: list[float] = field(default_factory=list)
    onset: int = 0
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_targets(self) -> int:
        return int(self.y.max()) + 1 if self.y.size else 0

    @property
    def n_blocks(self) -> int:
        return int(np.unique(self.blocks).size)

    @property
    def labels(self) -> list[str]:
        """Class label of each target: ``"<f>Hz"``, or ``"target<k>"`` without frequencies."""
        if len(self.frequencies) == self.n_targets:
            return [f"{f:g}Hz" for f in self.frequencies]
        return [f"target{k + 1}" for k in range(self.n_targets)]

    def event_map(self) -> dict[str, str]:
        """Marker value → class label, for a session's ``[window] events``."""
        return {str(k + 1): label for k, label in enumerate(self.labels)}

    def to_array(self) -> np.ndarray:
        """The published layout: shape (n_channels, n_samples, n_targets, n_blocks)."""
        n_t, n_b = self.n_targets, self.n_blocks
        out = np.full((self.X.shape[1], self.X.shape[2], n_t, n_b), np.nan)
        block_ids = np.unique(self.blocks)
        for i in range(self.y.size):
            out[:, :, self.y[i], int(np.searchsorted(block_ids, self.blocks[i]))] = self.X[i]
        if np.isnan(out).any():
            raise ValueError("expected every block to hold each target once, found gaps")
        return out

    def to_epochs(self) -> mne.EpochsArray:
        """The trials as MNE epochs (event id = target number, ``tmin`` at −onset)."""
        info = mne.create_info(list(self.ch_names), self.sfreq, "eeg")
        events = np.column_stack([np.arange(self.y.size) * self.X.shape[2],
                                  np.zeros(self.y.size, int), self.y + 1]).astype(int)
        event_id = {label: k + 1 for k, label in enumerate(self.labels)}
        return mne.EpochsArray(self.X, info, events=events, tmin=-self.onset / self.sfreq,
                               event_id=event_id, verbose="error")

    def save_mat(self, path: str | Path, *, variable: str = "eeg") -> Path:
        """Write the published layout plus the metadata :func:`load_mat` reads back.

        The file holds ``variable`` (n_channels, n_samples, n_targets, n_blocks) in volts,
        and ``sfreq``, ``ch_names``, ``freqs``, ``phases``, ``onset`` (seconds) and
        ``unit`` (``"V"``).
        """
        from scipy.io import savemat

        path = Path(path)
        content: dict[str, Any] = {
            variable: self.to_array(), "sfreq": float(self.sfreq),
            "ch_names": np.array(self.ch_names, dtype=object),
            "onset": self.onset / self.sfreq, "unit": "V",
        }
        if self.frequencies:
            content["freqs"] = np.asarray(self.frequencies, float)
        if self.phases:
            content["phases"] = np.asarray(self.phases, float)
        savemat(path, content)
        return path

    def recordings(self) -> list[tuple[int, Recording]]:
        """One :class:`~bci.recording.Recording` per trial, with its block index.

        Each holds the trial's samples (timestamps from 0) and one marker at the stimulus
        onset whose value is the target number (``"1"`` … ``"n_targets"``; see
        :meth:`event_map`).
        """
        info = mne.create_info(list(self.ch_names), self.sfreq, "eeg")
        n = self.X.shape[2]
        timestamps = np.arange(n) / self.sfreq
        out = []
        for i in range(self.y.size):
            markers = Markers(np.array([self.onset / self.sfreq]), [str(int(self.y[i]) + 1)])
            where = (f"{self.source or 'set'} (block {int(self.blocks[i]) + 1}, target "
                     f"{int(self.y[i]) + 1})")
            out.append((int(self.blocks[i]), Recording(
                info, self.X[i].astype(np.float32), timestamps, markers, where)))
        return out


# --------------------------------------------------------------------------- hybrid set

def _exo_folder(subject: int, data_dir: str | Path | None) -> Path:
    root = Path(data_dir) if data_dir is not None else \
        Path(os.environ.get("BCI_DATA", "")) / "ssvep-exo"
    folder = root / f"subject{subject:02d}"
    if not folder.is_dir():
        raise RecordingError(
            f"hybrid SSVEP set: expected the SSVEP-exo recordings of subject {subject} in "
            f"{folder} (set BCI_DATA or data_dir), found no such folder; "
            "background='synthetic' needs no data")
    return folder


def rest_spans(raw_path: str | Path, events: np.ndarray, sfreq: float
               ) -> list[tuple[int, int]]:
    """Sample spans ``[start, stop)`` of the rest periods of one SSVEP-exo recording.

    A rest period runs from a rest event (code 1) to the next event when that one is a
    rest event too (the inter-trial pause between two rest trials is rest), else for the
    5 s of a trial. Contiguous periods are merged.
    """
    order = np.argsort(events[:, 0], kind="stable")
    samples, codes = events[order, 0], events[order, 2]
    spans: list[tuple[int, int]] = []
    for i, (s, c) in enumerate(zip(samples, codes, strict=True)):
        if c != REST_CODE:
            continue
        stop = int(s + round(EXO_TRIAL_SECONDS * sfreq))
        if i + 1 < samples.size:
            stop = int(samples[i + 1]) if codes[i + 1] == REST_CODE else \
                min(stop, int(samples[i + 1]))
        if spans and spans[-1][1] == int(s):
            spans[-1] = (spans[-1][0], stop)
        else:
            spans.append((int(s), stop))
    if not spans:
        raise RecordingError(f"{raw_path}: expected rest periods (event code {REST_CODE}), "
                             f"found event codes {sorted(set(codes.tolist()))}")
    return spans


def _rest_background(subject: int, data_dir: str | Path | None, highpass: float
                     ) -> tuple[list[np.ndarray], list[str], float, list[str]]:
    """High-passed rest spans of a subject's sessions: data, origins, sfreq, channels."""
    folder = _exo_folder(subject, data_dir)
    paths = sorted(folder.glob("session*_raw.fif"))
    if not paths:
        raise RecordingError(f"{folder}: expected session*_raw.fif recordings, found none")
    spans, origins = [], []
    sfreq, ch_names = None, None
    for path in paths:
        events_path = path.with_name(path.name.replace("_raw.fif", "-eve.fif"))
        if not events_path.exists():
            raise RecordingError(f"{path}: expected its events file {events_path.name}, "
                                 "found none")
        raw = mne.io.read_raw_fif(path, preload=True, verbose="error")
        raw.pick("eeg")
        if sfreq is None:
            sfreq, ch_names = float(raw.info["sfreq"]), list(raw.ch_names)
        elif float(raw.info["sfreq"]) != sfreq or list(raw.ch_names) != ch_names:
            raise RecordingError(f"{path}: expected {sfreq:g} Hz and channels {ch_names} "
                                 "like the subject's other sessions, found "
                                 f"{raw.info['sfreq']:g} Hz and {raw.ch_names}")
        # offline, zero-phase: removes the amplifier's DC offset and drift, which the
        # runtime's causal filters (starting from rest) would otherwise ring on
        data = mne.filter.filter_data(raw.get_data(), sfreq, highpass, None,
                                      verbose="error")
        events = mne.read_events(events_path, verbose="error")
        for start, stop in rest_spans(path, events, sfreq):
            spans.append(data[:, start:stop])
            origins.append(f"{path.name}:{start}")
    return spans, origins, float(sfreq), list(ch_names)


def _synthetic_background(subject: int, seed: int, n_samples: int, sfreq: float
                          ) -> tuple[list[np.ndarray], list[str], float, list[str]]:
    from bci.datasets.synthetic.recording import make_recording

    rec = make_recording(n_samples / sfreq, paradigm="ssvep", ch_names=list(EXO_CHANNELS),
                         sfreq=sfreq, seed=int(np.random.SeedSequence([seed, subject])
                                                .generate_state(1)[0]),
                         ssvep_amplitude=0.0)
    data = rec.data.astype(np.float64)
    data -= data.mean(axis=1, keepdims=True)
    return [data], [f"synthetic:{rec.source}:0"], sfreq, list(EXO_CHANNELS)


def _place_trials(lengths: Sequence[int], n_blocks: int, n_targets: int, n: int
                  ) -> tuple[list[tuple[int, int, int]], float]:
    """Where each block's trials sit: ``(span, start, block)``, and the overlap.

    Spans get whole blocks in proportion to their length, so that no two blocks share a
    background sample; within a block, trials are spread evenly over its share and
    overlap only when the share is shorter than its trials. Returns the placements in
    block order and the largest overlap between neighbouring trials, as a fraction of a
    trial.
    """
    lengths = [int(s) for s in lengths]
    usable = [i for i, s in enumerate(lengths) if s >= n]
    total = sum(lengths[i] for i in usable)
    if not usable or n_blocks > len(usable) * max(1, total // n):
        raise RecordingError(f"hybrid SSVEP set: expected at least {n} samples of rest per "
                             f"block for {n_blocks} blocks, found {total} in spans "
                             f"{lengths}")
    # largest remainder: blocks per span in proportion to its length
    quota = np.array([lengths[i] / total * n_blocks for i in usable])
    count = np.floor(quota).astype(int)
    for i in np.argsort(count - quota)[: n_blocks - count.sum()]:
        count[i] += 1
    placements, overlap, block = [], 0.0, 0
    for span, k in zip(usable, count, strict=True):
        share = lengths[span] // k if k else 0
        for j in range(k):
            first = j * share
            starts = np.linspace(first, first + share - n, n_targets).round().astype(int)
            if n_targets > 1:
                overlap = max(overlap, max(0.0, 1 - float(np.diff(starts).min()) / n))
            placements.extend((span, int(s), block) for s in starts)
            block += 1
    return placements, overlap


def _pattern(ch_names: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    base = np.array([_BASE_PATTERN.get(c.lower(), 0.4) for c in ch_names])
    p = base * rng.lognormal(0.0, 0.3, base.size) + rng.normal(0.0, 0.15, base.size)
    return p / np.sqrt(np.mean(p**2))


def make_hybrid_jfpm(subject: int = 1, *, snr_db: float = -10.0, n_blocks: int = 6,
                     seed: int = 0, background: str = "rest",
                     data_dir: str | Path | None = None,
                     frequencies: Sequence[float] = FREQUENCIES,
                     phases: Sequence[float] | None = None, n_harmonics: int = 3,
                     harmonic_decay: float = 0.5, latency: float = 0.14,
                     latency_spread: float = 0.01, gain_jitter: float = 0.2,
                     phase_jitter: float = 0.1, pre: float = 0.25, post: float = 1.15,
                     highpass: float = 1.0, ramp: float = 0.05) -> JFPMSet:
    """A hybrid JFPM set: real rest EEG plus synthetic phase-locked SSVEP responses.

    Parameters
    ----------
    subject : int
        SSVEP-exo subject whose rest periods give the background (1–4 here); also seeds
        the subject's spatial pattern, harmonic lags and latency.
    snr_db : float
        Broadband signal-to-noise ratio in dB: the response's power (every harmonic,
        averaged over channels, before the per-trial gain) over the background's power
        (median over channels, after the high-pass). ``-inf`` leaves the responses out.
    n_blocks : int
        Blocks, each holding every target once, in random order.
    seed : int
        With ``subject``, seeds every random draw; the draws do not depend on
        ``snr_db``, so sets differing only in SNR have the same background, patterns and
        trial order.
    background : {"rest", "synthetic"}
        ``"rest"``: the subject's SSVEP-exo rest periods (``data_dir``, default
        ``$BCI_DATA/ssvep-exo``). ``"synthetic"``: the package's simulated EEG (pink
        noise, alpha, line noise) on the same channels at 256 Hz, for machines without
        the data.
    frequencies, phases : sequences of float
        Stimulation frequency (Hz) and phase (radians) of each target; phases default to
        ``k · 0.35π``.
    n_harmonics, harmonic_decay : int, float
        Harmonic h has amplitude ``harmonic_decay ** (h − 1)``.
    latency, latency_spread : float
        The subject's visual latency is drawn uniformly in ``latency ± latency_spread``
        seconds; the response starts then, with a raised-cosine ``ramp``.
    gain_jitter, phase_jitter : float
        SD of the log gain and of the phase (radians, fundamental) of each trial.
    pre, post : float
        Seconds of each trial before and after the stimulus onset.
    highpass : float
        Cut-off (Hz) of the zero-phase high-pass applied to the whole rest recordings
        before cutting (removes the amplifier's offset and drift).
    ramp : float
        Seconds of the response's onset ramp.

    Returns
    -------
    JFPMSet
        ``X`` (n_blocks · n_targets, n_channels, n_samples) in volts, ``y``, ``blocks``;
        ``meta`` records the parameters, the subject's latency and harmonic lags
        (``latency_s``, ``harmonic_phase``), the response amplitude, the background
        origin of every trial (``origin``: ``"file:start_sample"``) and the largest
        overlap between neighbouring trials' backgrounds within a block (blocks never
        share background samples).
    """
    freqs = [float(f) for f in frequencies]
    n_targets = len(freqs)
    phs = [float(p) for p in (phases if phases is not None else
                              [(k * PHASE_STEP) % (2 * math.pi) for k in range(n_targets)])]
    if n_targets < 2 or len(phs) != n_targets:
        raise ValueError(f"expected at least 2 frequencies and one phase each, found "
                         f"{n_targets} frequencies and {len(phs)} phases")
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or n_blocks < 2:
        raise ValueError(f"expected n_blocks ≥ 2 (leave-one-block-out), found {n_blocks!r}")
    if isinstance(n_harmonics, bool) or not isinstance(n_harmonics, int) or n_harmonics < 1:
        raise ValueError(f"expected n_harmonics ≥ 1, found {n_harmonics!r}")
    if background == "rest":
        spans, origins, sfreq, ch_names = _rest_background(subject, data_dir, highpass)
    elif background == "synthetic":
        sfreq = 256.0
        n_trial = round(pre * sfreq) + round(post * sfreq)
        spans, origins, sfreq, ch_names = _synthetic_background(
            subject, seed, n_blocks * n_targets * n_trial, sfreq)
    else:
        raise ValueError(f"background: expected 'rest' or 'synthetic', found {background!r}")
    if max(freqs) * n_harmonics >= sfreq / 2:
        raise ValueError(f"harmonics up to {max(freqs) * n_harmonics:g} Hz must lie below "
                         f"Nyquist ({sfreq / 2:g} Hz)")
    onset = round(pre * sfreq)
    n = onset + round(post * sfreq)
    placements, overlap = _place_trials([s.shape[1] for s in spans], n_blocks, n_targets, n)

    rng = np.random.default_rng([seed, subject])
    patterns = np.stack([_pattern(ch_names, rng) for _ in range(n_harmonics)])  # (H, C)
    harmonic_phase = rng.uniform(0, 2 * np.pi, n_harmonics)
    subject_latency = latency + rng.uniform(-latency_spread, latency_spread)
    amps = harmonic_decay ** np.arange(n_harmonics)
    bg_power = float(np.median(np.concatenate(spans, axis=1).var(axis=1)))
    response_power = float(np.sum(amps**2) / 2)  # unit-RMS patterns
    scale = 0.0 if snr_db == -np.inf else math.sqrt(bg_power * 10 ** (snr_db / 10)
                                                    / response_power)
    orders = [rng.permutation(n_targets) for _ in range(n_blocks)]
    gains = rng.lognormal(0.0, gain_jitter, (n_blocks, n_targets))
    jitter = rng.normal(0.0, phase_jitter, (n_blocks, n_targets))

    t = (np.arange(n) - onset) / sfreq - subject_latency
    envelope = np.clip(t / ramp, 0.0, 1.0) if ramp > 0 else (t >= 0).astype(float)
    envelope = 0.5 - 0.5 * np.cos(np.pi * envelope)
    X = np.empty((n_blocks * n_targets, len(ch_names), n))
    y = np.empty(n_blocks * n_targets, int)
    blocks = np.empty(n_blocks * n_targets, int)
    origin = []
    for i, (span, start, block) in enumerate(placements):
        j = i % n_targets
        k = int(orders[block][j])
        bg = spans[span][:, start:start + n]
        wave = np.zeros((len(ch_names), n))
        for h in range(n_harmonics):
            phase = (h + 1) * (2 * np.pi * freqs[k] * t + phs[k] + jitter[block, j]) \
                + harmonic_phase[h]
            wave += amps[h] * patterns[h][:, None] * np.sin(phase)[None]
        X[i] = bg - bg.mean(axis=1, keepdims=True) + scale * gains[block, j] * envelope * wave
        y[i], blocks[i] = k, block
        file, _, first = origins[span].rpartition(":")
        origin.append(f"{file}:{int(first) + start}")
    meta = {
        "subject": subject, "seed": seed, "snr_db": snr_db, "background": background,
        "n_harmonics": n_harmonics, "harmonic_decay": harmonic_decay,
        "latency_s": subject_latency, "harmonic_phase": harmonic_phase.tolist(),
        "amplitude": scale, "background_power": bg_power, "highpass_hz": highpass,
        "origin": origin, "overlap": overlap, "patterns": patterns.tolist(),
    }
    return JFPMSet(X, y, blocks, sfreq, ch_names, freqs, phs, onset,
                   source=f"hybrid-jfpm:subject{subject:02d}:snr={snr_db:g}dB", meta=meta)


# --------------------------------------------------------------------------- .mat loader

def _mat_value(content: dict, *names: str) -> Any:
    """The first of ``names`` in a loaded .mat file: a list of str for text, else an array."""
    for name in names:
        if name in content:
            value = np.asarray(content[name])
            if value.dtype.kind in "US" or value.dtype == object:
                return [str(np.asarray(v).squeeze()).strip() for v in value.ravel()]
            return value.squeeze()
    return None


def load_mat(path: str | Path, *, sfreq: float | None = None,
             frequencies: Sequence[float] | None = None,
             phases: Sequence[float] | None = None, ch_names: Sequence[str] | None = None,
             variable: str | None = None, axes: Sequence[str] | None = None,
             onset: float | None = None, unit: str | None = None) -> JFPMSet:
    """Read a published many-target SSVEP ``.mat`` file.

    Parameters
    ----------
    path : str | Path
        A MATLAB (v4–v7.2) file holding the trials as one 4-D array.
    sfreq : float | None
        Sampling rate in Hz (Nakanishi et al.: 256; Tsinghua benchmark: 250).
    frequencies, phases : sequences of float | None
        Stimulation frequency (Hz) and phase (radians) of each target, in the array's
        target order; optional, but their length is checked against the array.
    ch_names : sequence of str | None
        Channel names, in the array's channel order (default ``EEG001`` …).
    variable : str | None
        Name of the array (default: the first of ``eeg``, ``data`` in the file).
    axes : sequence of str | None
        Meaning of the array's axes, a permutation of ``("channels", "samples",
        "targets", "blocks")`` (the default, the published layout).
    onset : float | None
        Seconds from each trial's first sample to the stimulus onset (default 0; the
        Tsinghua benchmark: 0.5).
    unit : str | None
        Unit of the array: ``"V"``, ``"mV"``, ``"uV"`` (default ``"uV"``, as published).

    Every ``None`` argument is looked up as a variable of the file (``sfreq``/``fs``/
    ``srate``, ``freqs``/``frequencies``, ``phases``, ``ch_names``/``channels``,
    ``onset``, ``unit``, ``axes``) and then as a key of a JSON sidecar ``X.json`` beside
    ``X.mat`` (``sfreq``, ``frequencies``, ``phases``, ``ch_names``, ``variable``,
    ``axes``, ``onset``, ``unit``).

    Returns
    -------
    JFPMSet
        Trials in block order, targets in file order within a block.

    Raises
    ------
    RecordingError
        Missing or unreadable file, no such variable, an array that is not 4-D, a shape
        that disagrees with the channel names, frequencies or phases, no sampling rate,
        or an onset outside the trials.
    """
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"{path}: no such file (expected a .mat file of SSVEP trials)")
    try:
        content = loadmat(path)
    except NotImplementedError:
        raise RecordingError(f"{path}: expected a MATLAB v7.2 or older .mat file, found a "
                             "v7.3 (HDF5) one; save it with save(..., '-v7')") from None
    except Exception as err:  # scipy raises several types on corrupt input
        raise RecordingError(f"{path}: expected a readable .mat file, found "
                             f"{type(err).__name__}: {err}") from None
    sidecar_path = path.with_suffix(".json")
    sidecar: dict[str, Any] = {}
    if sidecar_path.exists():
        try:
            sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise RecordingError(f"{sidecar_path}: expected a JSON object, found "
                                 f"{err}") from None

    def pick(given: Any, key: str, *names: str) -> Any:
        if given is not None:
            return given
        found = _mat_value(content, *names)
        return found if found is not None else sidecar.get(key)

    variable = variable or sidecar.get("variable")
    arrays = [k for k in content if not k.startswith("__")]
    if variable is None:
        variable = next((v for v in DEFAULT_VARIABLES if v in content), None)
        if variable is None:
            raise RecordingError(f"{path}: expected an array named {' or '.join(DEFAULT_VARIABLES)}"
                                 f" (or give variable=), found variables {arrays}")
    elif variable not in content:
        raise RecordingError(f"{path}: expected a variable {variable!r}, found {arrays}")
    data = np.asarray(content[variable])
    if data.ndim != 4 or data.dtype.kind not in "fiu":
        raise RecordingError(
            f"{path}: {variable}: expected a numeric 4-D array [channels, samples, targets, "
            f"blocks], found shape {data.shape} ({data.dtype})")
    axes = pick(axes, "axes", "axes")
    axes = tuple(str(a) for a in (DEFAULT_AXES if axes is None else np.atleast_1d(axes)))
    if sorted(axes) != sorted(DEFAULT_AXES):
        raise RecordingError(f"{path}: axes: expected a permutation of {DEFAULT_AXES}, "
                             f"found {axes}")
    data = np.transpose(data, [axes.index(a) for a in DEFAULT_AXES])
    n_ch, n_samples, n_targets, n_blocks = data.shape
    shape = ", ".join(f"{a} {s}" for a, s in zip(DEFAULT_AXES, data.shape, strict=True))

    sfreq = pick(sfreq, "sfreq", "sfreq", "fs", "srate", "Fs")
    if sfreq is None:
        raise RecordingError(f"{path}: expected the sampling rate (sfreq=, a variable "
                             f"'sfreq' or 'fs' in the file, or {sidecar_path.name} "
                             '{"sfreq": …}), found none')
    sfreq = float(np.asarray(sfreq).squeeze())
    if not sfreq > 0:
        raise RecordingError(f"{path}: expected a positive sampling rate, found {sfreq}")
    names = pick(ch_names, "ch_names", "ch_names", "channels")
    names = [f"EEG{i + 1:03d}" for i in range(n_ch)] if names is None else \
        [str(c).strip() for c in np.atleast_1d(names)]
    if len(names) != n_ch:
        raise RecordingError(f"{path}: {variable} has {n_ch} channels ({shape}); expected "
                             f"one name each, found {len(names)} channel names")
    freqs = pick(frequencies, "frequencies", "freqs", "frequencies")
    freqs = [] if freqs is None else [float(f) for f in np.atleast_1d(freqs).ravel()]
    phs = pick(phases, "phases", "phases", "phase")
    phs = [] if phs is None else [float(p) for p in np.atleast_1d(phs).ravel()]
    for what, values in (("frequencies", freqs), ("phases", phs)):
        if values and len(values) != n_targets:
            raise RecordingError(f"{path}: {variable} has {n_targets} targets ({shape}); "
                                 f"expected one of the {what} each, found {len(values)}")
    onset_s = pick(onset, "onset", "onset")
    onset_s = 0.0 if onset_s is None else float(np.asarray(onset_s).squeeze())
    first = round(onset_s * sfreq)
    if not 0 <= first < n_samples:
        raise RecordingError(f"{path}: onset {onset_s:g} s is outside the trials of "
                             f"{n_samples} samples at {sfreq:g} Hz")
    unit_name = pick(unit, "unit", "unit")
    if isinstance(unit_name, list):
        unit_name = unit_name[0] if len(unit_name) == 1 else str(unit_name)
    unit_name = "uV" if unit_name is None else str(unit_name)
    factor = _UNITS.get(unit_name.strip().lower())
    if factor is None:
        raise RecordingError(f"{path}: unit: expected one of V, mV, uV, nV, found "
                             f"{unit_name!r}")
    X = np.ascontiguousarray(np.transpose(data, (3, 2, 0, 1)).reshape(
        n_blocks * n_targets, n_ch, n_samples), dtype=np.float64) * factor
    y = np.tile(np.arange(n_targets), n_blocks)
    blocks = np.repeat(np.arange(n_blocks), n_targets)
    return JFPMSet(X, y, blocks, sfreq, names, freqs, phs, first, source=str(path),
                   meta={"variable": variable, "axes": list(axes), "unit": unit_name})


def read_mat_trials(path: str | Path) -> list[tuple[int, Recording]]:
    """The trials of a published ``.mat`` set as recordings, with their block index.

    What ``bci train``/``bci evaluate`` read for a ``.mat`` file given as ``--train`` or
    ``--test``: see :func:`load_mat` (metadata from the file or its JSON sidecar) and
    :meth:`JFPMSet.recordings` (marker values are the target numbers ``"1"`` …).
    """
    return load_mat(path).recordings()
