"""sEEG and ECoG recordings for speech decoding: a loader and a synthetic generator.

Loader
------
:func:`read_seeg_raw` reads intracranial recordings from any file MNE reads (FIF, EDF,
BrainVision, ...) or from a BIDS-iEEG dataset through mne-bids, keeps the ``seeg`` and
``ecog`` channels that are not marked bad, re-references each contact to its neighbour on
the same electrode shaft (:func:`bipolar_pairs`, applied with
:func:`mne.set_bipolar_reference`; the bipolar channel is placed at the midpoint of its
two contacts) and resamples to 1000 Hz. :func:`read_seeg_epochs` then hands the
continuous signal to the runtime itself (:func:`bci.training_data.extract_windows`): its
causal nodes (a decoder's ``preprocessing()``) and its epoch windower cut marker-locked
epochs ``(X, y, info)``, ``round((tmax - tmin) · sfreq)`` samples starting ``round(tmin ·
sfreq)`` after the marker's sample. :func:`continuous_windows` cuts unlabelled windows
for pre-training with the runtime's sliding windower.

Two routes lead to a served decoder. Offline research reads bipolar epochs here and
trains on them; the model then expects a stream of bipolar channels (``"A1-A2"``). For a
live amplifier, which streams contacts, read the recording with ``bipolar=False`` and
give the decoder the pairs (:class:`bci.decoders.duin.DuINClassifier` ``bipolar=``): the
derivation is then a fixed matrix at the front of the exported network.

Generator
---------
:func:`make_seeg_words` simulates word-reading sessions with a planted structure:
latent neural sources carry, for each word, a high-gamma burst plus an evoked deflection
at a word-specific time (so in word-specific 100 ms tokens) in a word-specific source;
each subject sees the sources through its own contacts, mixed by a per-subject matrix
that decays with the distance between the source and the contact, on top of 1/f²
background activity, waxing and waning theta-alpha rhythms, per-contact activity and a
reference signal common to all contacts (which bipolar re-referencing removes).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mne
import numpy as np

from bci.chunk import Markers
from bci.errors import RecordingError, TrainingError
from bci.recording import Recording
from bci.session import SessionConfig
from bci.spec import DecoderSpec, WindowSpec
from bci.training_data import TrainingWindows, extract_windows

#: Sampling rate Du-IN was published at; :func:`read_seeg_raw` resamples to it.
SEEG_SFREQ = 1000.0
#: Channel types treated as intracranial contacts.
IEEG_TYPES = ("seeg", "ecog")
# Annotations that mark segments of a recording rather than events (as bci.devices.files).
_SEGMENT_PREFIXES = ("bad", "edge", "boundary", "new segment/")
# A contact name is a shaft name (letters, primes, anything) followed by its number.
_CONTACT = re.compile(r"^(?P<shaft>.*\D)(?P<number>\d+)$")


class SEEGError(RecordingError):
    """An intracranial recording cannot be used as asked (the message says why)."""


# --- contacts and bipolar pairs --------------------------------------------------------


def parse_contact(name: str) -> tuple[str, int] | None:
    """Split a contact name into its shaft and its number.

    ``"LA3"`` → ``("LA", 3)``, ``"TI'12"`` → ``("TI'", 12)``, ``"G1"`` → ``("G", 1)``;
    ``None`` for a name that does not end in a number after a non-digit.
    """
    m = _CONTACT.match(name.strip())
    if m is None:
        return None
    return m.group("shaft"), int(m.group("number"))


def bipolar_pairs(ch_names: Sequence[str]) -> list[tuple[str, str]]:
    """Neighbouring contacts of each electrode shaft, as (anode, cathode) pairs.

    Contacts ``n`` and ``n + 1`` of one shaft form a pair when both are present, so a
    missing (or excluded bad) contact breaks the chain rather than pairing contacts
    that lie two spacings apart. Names that do not parse as contacts are ignored. For
    ECoG grids this pairs consecutive numbers, i.e. neighbours along a strip or a row.

    Parameters
    ----------
    ch_names : sequence of str
        Contact names, e.g. ``["A1", "A2", "A3", "B1", "B2"]``.

    Returns
    -------
    pairs : list of (str, str)
        ``[("A1", "A2"), ("A2", "A3"), ("B1", "B2")]``: shafts in order of first
        appearance, contacts by number. The bipolar channel of a pair is named
        ``"anode-cathode"`` (MNE's default).
    """
    shafts: dict[str, dict[int, str]] = {}
    for name in ch_names:
        parsed = parse_contact(name)
        if parsed is not None:
            shafts.setdefault(parsed[0], {})[parsed[1]] = name
    pairs = []
    for contacts in shafts.values():
        for number in sorted(contacts):
            if number + 1 in contacts:
                pairs.append((contacts[number], contacts[number + 1]))
    return pairs


def bipolar_matrix(ch_names: Sequence[str], pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """The matrix that turns contacts into bipolar channels: ``M @ X``.

    Parameters
    ----------
    ch_names : sequence of str
        Contacts, in the order of the rows of ``X``.
    pairs : sequence of (anode, cathode)

    Returns
    -------
    M : ndarray of float32, shape (n_pairs, n_contacts)
        +1 at the anode, -1 at the cathode of each pair.
    """
    index = {n: i for i, n in enumerate(ch_names)}
    missing = sorted({n for p in pairs for n in p} - set(index))
    if missing:
        raise SEEGError(f"bipolar pairs name contacts {missing} that are not among the "
                        f"channels {list(ch_names)}")
    m = np.zeros((len(pairs), len(ch_names)), np.float32)
    for row, (anode, cathode) in enumerate(pairs):
        if anode == cathode:
            raise SEEGError(f"a bipolar pair needs two contacts, found ({anode!r}, {cathode!r})")
        m[row, index[anode]] = 1.0
        m[row, index[cathode]] = -1.0
    return m


# --- loader ----------------------------------------------------------------------------


def _open(source: Any) -> mne.io.BaseRaw:
    """A preloaded copy of the recording ``source`` names."""
    if isinstance(source, mne.io.BaseRaw):
        return source.copy().load_data(verbose="error")
    if type(source).__name__ == "BIDSPath":
        from mne_bids import read_raw_bids

        raw = read_raw_bids(source, verbose="error")
        return raw.load_data(verbose="error")
    path = Path(source)
    if not path.exists():
        raise SEEGError(f"{path}: no such file; expected a recording MNE reads, a "
                        f"mne_bids.BIDSPath or an mne.io.Raw")
    try:
        return mne.io.read_raw(path, preload=True, verbose="error")
    except Exception as err:  # MNE raises many types for unreadable files
        raise SEEGError(f"{path}: MNE cannot read it: {str(err).strip()[:300]}") from None


def read_seeg_raw(
    source: Any, *, bipolar: bool = True, picks: Sequence[str] | None = None,
    sfreq: float | None = SEEG_SFREQ, ch_types: Sequence[str] = IEEG_TYPES,
) -> mne.io.BaseRaw:
    """Read an intracranial recording: good contacts, bipolar derivations, 1000 Hz.

    Parameters
    ----------
    source : str | Path | mne_bids.BIDSPath | mne.io.BaseRaw
        A file MNE reads, a BIDS-iEEG recording (read with
        :func:`mne_bids.read_raw_bids`, which sets channel types, bad channels and
        electrode positions from the sidecars), or a Raw (copied, not modified).
    bipolar : bool
        Re-reference each contact to its neighbour on the same shaft
        (:func:`bipolar_pairs`, :func:`mne.set_bipolar_reference`). Contacts marked bad
        are left out before pairing. ``False`` keeps the contacts as recorded.
    picks : sequence of str | None
        Channels to keep after re-referencing (bipolar names such as ``"A1-A2"`` when
        ``bipolar``), in this order; ``None`` keeps all.
    sfreq : float | None
        Resample to this rate (MNE's FFT resampling, offline only); ``None`` keeps the
        recording's rate.
    ch_types : sequence of str
        Channel types taken as contacts.

    Returns
    -------
    raw : mne.io.BaseRaw
        Preloaded; channels of ``ch_types`` only; annotations kept.

    Raises
    ------
    SEEGError
        When the recording has no good contact of ``ch_types``, no neighbouring pair,
        or lacks a channel of ``picks``.
    """
    raw = _open(source)
    types = raw.get_channel_types()
    keep = [n for n, t in zip(raw.ch_names, types, strict=True)
            if t in ch_types and n not in raw.info["bads"]]
    if not keep:
        found = sorted(set(types))
        raise SEEGError(f"{_name(source)}: expected good channels of type {list(ch_types)}, "
                        f"found types {found} (bads: {raw.info['bads']})")
    raw.pick(keep)
    if bipolar:
        pairs = bipolar_pairs(raw.ch_names)
        if not pairs:
            raise SEEGError(f"{_name(source)}: no two neighbouring contacts of one shaft "
                            f"among {raw.ch_names}; expected names such as A1, A2")
        raw = _set_bipolar(raw, pairs)
    if picks is not None:
        missing = [p for p in picks if p not in raw.ch_names]
        if missing:
            raise SEEGError(f"{_name(source)}: picks {missing} not found among "
                            f"{raw.ch_names}")
        raw.pick(list(picks))
    if sfreq is not None and not math.isclose(raw.info["sfreq"], sfreq, rel_tol=1e-9):
        raw.resample(float(sfreq), verbose="error")
    return raw


def _name(source: Any) -> str:
    if isinstance(source, mne.io.BaseRaw):
        return str(source.filenames[0]) if source.filenames and source.filenames[0] else "raw"
    return str(source)


def _set_bipolar(raw: mne.io.BaseRaw, pairs: Sequence[tuple[str, str]]) -> mne.io.BaseRaw:
    """Bipolar channels only, each at the midpoint of its two contacts."""
    infos = []
    for anode, cathode in pairs:
        a = raw.info["chs"][raw.ch_names.index(anode)]["loc"]
        c = raw.info["chs"][raw.ch_names.index(cathode)]["loc"]
        loc = a.copy()
        if np.isfinite(a[:3]).all() and np.isfinite(c[:3]).all():
            loc[:3] = (a[:3] + c[:3]) / 2
        infos.append({"loc": loc})
    anodes, cathodes = [p[0] for p in pairs], [p[1] for p in pairs]
    names = [f"{a}-{c}" for a, c in pairs]
    out = mne.set_bipolar_reference(raw, anodes, cathodes, ch_name=names, ch_info=infos,
                                    drop_refs=True, copy=True, verbose="error")
    return out.pick(names)


def _events(raw: mne.io.BaseRaw, event_id: Mapping[str, str] | None) -> list[tuple[int, str]]:
    """(sample from the first sample, label) of every event to cut, in time order."""
    descs = sorted({str(d) for d in raw.annotations.description
                    if not str(d).lower().startswith(_SEGMENT_PREFIXES)
                    and (event_id is None or str(d) in event_id)})
    if not descs:
        return []
    codes = {d: i + 1 for i, d in enumerate(descs)}
    # MNE places each annotation on its nearest sample, whatever the meas_date/orig_time
    events, _ = mne.events_from_annotations(raw, event_id=codes, verbose="error")
    names = {c: d for d, c in codes.items()}
    found = []
    for sample, _, code in events:
        desc = names[int(code)]
        found.append((int(sample) - raw.first_samp,
                      desc if event_id is None else str(event_id[desc])))
    return sorted(found, key=lambda e: e[0])


def _cut(raw: mne.io.BaseRaw, name: str, *, window: dict[str, Any],
         preprocessing: Sequence[Mapping[str, Any]], markers: Markers) -> TrainingWindows:
    """Windows of ``raw`` cut by the runtime itself (:func:`bci.training_data.extract_windows`).

    The recording goes through the live loop: the runtime's causal ``preprocessing``
    nodes, then its windower (``window`` is a session's ``[window]`` table). Sample ``i``
    is stamped ``i / sfreq``, so a marker at ``sample / sfreq`` opens the epoch at that
    sample.
    """
    kinds = [n.get("kind") for n in preprocessing]
    if "decimate" in kinds or "filterbank" in kinds:
        raise SEEGError(f"preprocessing: nodes that change the rate or add bands are not "
                        f"supported here, found kinds {kinds}")
    sfreq = float(raw.info["sfreq"])
    data = raw.get_data().astype(np.float32)
    recording = Recording(raw.info, data, np.arange(data.shape[1]) / sfreq, markers,
                          source=name)
    config = SessionConfig.from_dict({"window": window, "training": {"paradigm": "seeg"}})
    spec = DecoderSpec(paradigm="seeg", classes=[], ch_names=list(raw.ch_names), sfreq=sfreq,
                       window=WindowSpec(**{k: window[k] for k in ("mode", "length", "step",
                                                                   "tmin", "tmax")
                                            if k in window}),
                       preprocessing=[dict(n) for n in preprocessing])
    return extract_windows(config, spec, recording)


def read_seeg_epochs(
    source: Any, *, event_id: Mapping[str, str] | Sequence[str] | None = None,
    tmin: float = 0.0, tmax: float = 3.0, bipolar: bool = True,
    picks: Sequence[str] | None = None, sfreq: float | None = SEEG_SFREQ,
    preprocessing: Sequence[Mapping[str, Any]] = (), ch_types: Sequence[str] = IEEG_TYPES,
) -> tuple[np.ndarray, np.ndarray, mne.Info]:
    """Marker-locked epochs of an intracranial recording, cut by the runtime itself.

    The recording goes through :func:`bci.training_data.extract_windows`, the live loop
    with its epoch windower: what a decoder trained on these epochs sees live is what it
    was trained on.

    Parameters
    ----------
    source, bipolar, picks, sfreq, ch_types
        As in :func:`read_seeg_raw`.
    event_id : mapping of str to str | sequence of str | None
        Annotation description → class label (like a session's ``[window] events``);
        a sequence keeps those descriptions as labels; ``None`` takes every annotation
        except segment marks (``BAD…``, ``EDGE…``, ``boundary``). Recordings without
        annotations have their stim-channel events turned into annotations first (the
        code as a decimal string).
    tmin, tmax : float
        Epoch limits in seconds around each marker.
    preprocessing : sequence of dict
        Runtime node configurations (e.g. a decoder's ``preprocessing()``) run causally
        over the continuous signal before cutting, as the live chain would; nodes that
        change the rate or add bands are refused.

    Returns
    -------
    X : ndarray of float32, shape (n_epochs, n_channels, n_times)
        Volts; ``n_times = round((tmax - tmin) · sfreq)``, starting ``round(tmin ·
        sfreq)`` samples after the marker's sample.
    y : ndarray of str, shape (n_epochs,)
    info : mne.Info
        The channels of ``X`` (types, positions) and the rate.

    Raises
    ------
    SEEGError
        When no epoch fits in the recording, naming the markers found.
    """
    raw = _open(source)
    if len(raw.annotations) == 0:
        _stim_to_annotations(raw)
    raw = read_seeg_raw(raw, bipolar=bipolar, picks=picks, sfreq=sfreq, ch_types=ch_types)
    if event_id is not None and not isinstance(event_id, Mapping):
        event_id = {str(e): str(e) for e in event_id}
    if round((tmax - tmin) * raw.info["sfreq"]) < 1:
        raise SEEGError(f"expected tmax > tmin, found tmin={tmin}, tmax={tmax}")
    events = _events(raw, event_id)
    labels = [label for _, label in events]
    markers = Markers(np.array([sample for sample, _ in events], np.float64)
                      / raw.info["sfreq"], labels)
    window = {"mode": "epoch", "tmin": float(tmin), "tmax": float(tmax),
              "events": {v: v for v in labels}}
    try:
        if not events:
            raise TrainingError("no event to cut")
        epochs = _cut(raw, _name(source), window=window, preprocessing=preprocessing,
                      markers=markers)
    except TrainingError:
        descs = sorted(set(map(str, raw.annotations.description)))[:20]
        raise SEEGError(f"{_name(source)}: no epoch of {tmin}…{tmax} s fits; markers found: "
                        f"{descs}, wanted: {None if event_id is None else sorted(event_id)}"
                        ) from None
    dropped = len(events) - len(epochs)
    if dropped:
        warnings.warn(f"{_name(source)}: {dropped} epochs run past the recording and were "
                      f"left out", stacklevel=2)
    return epochs.X, epochs.y.astype(str), raw.info


def _stim_to_annotations(raw: mne.io.BaseRaw) -> None:
    if not any(t == "stim" for t in raw.get_channel_types()):
        return
    events = mne.find_events(raw, shortest_event=1, consecutive=True, verbose="error")
    if len(events):
        onsets = (events[:, 0] - raw.first_samp) / raw.info["sfreq"]
        raw.set_annotations(mne.Annotations(
            onsets + raw.first_time if raw.info["meas_date"] is not None else onsets,
            0.0, [str(int(c)) for c in events[:, 2]],
            orig_time=raw.info["meas_date"]))


def continuous_windows(
    raw: mne.io.BaseRaw, *, length: float = 3.0, step: float | None = None,
    preprocessing: Sequence[Mapping[str, Any]] = (),
) -> np.ndarray:
    """Unlabelled windows tiling a recording, for self-supervised pre-training.

    Cut by the runtime's sliding windower (:func:`bci.training_data.extract_windows`):
    windows end on the multiples of ``step`` (in samples from the first one) at which a
    whole window is available.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        E.g. from :func:`read_seeg_raw`.
    length, step : float
        Window length and hop in seconds (``step`` defaults to ``length``).
    preprocessing : sequence of dict
        Runtime nodes run causally over the recording first.

    Returns
    -------
    X : ndarray of float32, shape (n_windows, n_channels, round(length · sfreq))
    """
    rate = raw.info["sfreq"]
    step = length if step is None else step
    n = round(length * rate)
    if n < 1 or round(step * rate) < 1:
        raise SEEGError(f"expected positive length and step, found {length}, {step}")
    if n > raw.n_times:
        raise SEEGError(f"the recording ({raw.n_times} samples) is shorter than one "
                        f"window of {n}")
    # the runtime keeps windows that a marker labels: one at the first sample labels all
    markers = Markers(np.zeros(1), ["window"])
    window = {"mode": "sliding", "length": float(length), "step": float(step),
              "events": {"window": "window"}}
    return _cut(raw, _name(raw), window=window, preprocessing=preprocessing,
                markers=markers).X


# --- synthetic sessions ------------------------------------------------------------------


@dataclass(slots=True)
class SEEGWords:
    """One synthetic subject reading words, with its ground truth.

    Attributes
    ----------
    X : ndarray of float32, shape (n_trials, n_contacts, n_times)
        Monopolar contacts in volts, one epoch per trial (``0 … tmax`` s after the cue),
        cut from :attr:`data`.
    y : ndarray of str, shape (n_trials,)
        The word of each trial.
    data : ndarray of float32, shape (n_contacts, n_samples)
        The continuous session; trial ``i`` starts at sample ``onsets[i]``.
    onsets : ndarray of int, shape (n_trials,)
    info : mne.Info
        Contacts (type ``seeg``) with positions in MNI coordinates (``mni_tal``).
    pairs : list of (str, str)
        Neighbouring contacts of each shaft (:func:`bipolar_pairs`).
    mixing : ndarray, shape (n_contacts, n_sources)
        Gain of each latent source at each contact (this subject's matrix).
    code : dict of str to (int, float)
        Word → (source, burst onset in seconds): the planted structure.
    subject : int
    """

    X: np.ndarray
    y: np.ndarray
    data: np.ndarray
    onsets: np.ndarray
    info: mne.Info
    pairs: list[tuple[str, str]]
    mixing: np.ndarray
    code: dict[str, tuple[int, float]]
    subject: int = 0

    @property
    def ch_names(self) -> list[str]:
        return list(self.info["ch_names"])

    def bipolar(self) -> tuple[np.ndarray, list[str]]:
        """The epochs re-referenced along the shafts.

        Returns
        -------
        X : ndarray of float32, shape (n_trials, n_pairs, n_times)
        names : list of str
            ``"anode-cathode"`` per row.
        """
        m = bipolar_matrix(self.ch_names, self.pairs)
        return np.einsum("pc,nct->npt", m, self.X).astype(np.float32), \
            [f"{a}-{c}" for a, c in self.pairs]

    def to_raw(self) -> mne.io.RawArray:
        """The continuous session as an MNE Raw with one annotation per cue (the word)."""
        raw = mne.io.RawArray(self.data.astype(np.float64), self.info.copy(), verbose="error")
        raw.set_annotations(mne.Annotations(self.onsets / self.info["sfreq"], 0.0,
                                            [str(w) for w in self.y]))
        return raw


def word_labels(n_words: int) -> list[str]:
    """Labels of the synthetic words: ``word00``, ``word01``, …"""
    return [f"word{k:02d}" for k in range(n_words)]


def word_code(n_words: int, *, n_sources: int, tmax: float,
              burst: float = 0.2) -> dict[str, tuple[int, float]]:
    """Which source bursts when, for each word: the same for every subject and seed.

    Word ``k`` gets a distinct (source, onset) pair drawn from a fixed permutation of
    ``n_sources`` sources × enough onsets spread over ``0.3 … tmax - 0.3 - burst`` s, so
    words differ both in where (channels) and when (tokens) their burst occurs.
    """
    n_slots = max(2, math.ceil(n_words / n_sources))
    last = max(0.3, tmax - 0.3 - burst)
    times = np.linspace(0.3, last, n_slots)
    combos = [(k, float(t)) for t in times for k in range(n_sources)]
    order = np.random.default_rng(20240523).permutation(len(combos))
    return {w: combos[i] for w, i in zip(word_labels(n_words), order, strict=False)}


def _colored(rng: np.random.Generator, shape: tuple[int, int], sfreq: float,
             exponent: float) -> np.ndarray:
    """Unit-variance noise of power ∝ 1/f^exponent along the last axis (flat below 1 Hz)."""
    n = shape[-1]
    spec = rng.standard_normal((shape[0], n // 2 + 1)) \
        + 1j * rng.standard_normal((shape[0], n // 2 + 1))
    f = np.fft.rfftfreq(n, 1 / sfreq)
    spec *= np.maximum(f, 1.0) ** (-exponent / 2)
    spec[:, 0] = 0
    x = np.fft.irfft(spec, n=n, axis=-1)
    return x / x.std(axis=-1, keepdims=True)


def _rhythms(rng: np.random.Generator, n: int, n_samples: int, sfreq: float) -> np.ndarray:
    """Theta-alpha rhythms (4-12 Hz, one per source) that wax and wane: on and off
    states lasting ~0.8 s on average, switched with 100 ms ramps; unit amplitude."""
    out = np.zeros((n, n_samples))
    ramp = np.hanning(round(0.2 * sfreq))
    ramp /= ramp.sum()
    t = np.arange(n_samples) / sfreq
    for k in range(n):
        state, gate, i = rng.random() < 0.5, np.zeros(n_samples), 0
        while i < n_samples:
            dwell = max(1, round(rng.exponential(0.8) * sfreq))
            gate[i:i + dwell] = float(state)
            state, i = not state, i + dwell
        gate = np.convolve(gate, ramp, mode="same")
        freq = rng.uniform(4.0, 12.0)
        out[k] = gate * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    return out


def _shafts(subject: int, n_shafts: int, contacts: int, rng: np.random.Generator
            ) -> tuple[list[str], np.ndarray]:
    """Contact names and positions (m, MNI) of straight shafts, 3.5 mm pitch."""
    names, pos = [], []
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    for s in range(n_shafts):
        letter = letters[(subject * 3 + s) % len(letters)]
        side = 1.0 if (subject + s) % 2 == 0 else -1.0
        # entry on the lateral surface, pointing medially, with a random tilt
        entry = np.array([side * 0.065, rng.uniform(-0.03, 0.03), rng.uniform(0.0, 0.04)])
        direction = np.array([-side, rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3)])
        direction /= np.linalg.norm(direction)
        shaft = f"{'L' if side < 0 else 'R'}{letter}{'' if side > 0 else chr(39)}"
        for c in range(contacts):
            names.append(f"{shaft}{c + 1}")
            pos.append(entry + direction * 0.0035 * (contacts - 1 - c))
    return names, np.asarray(pos)


def make_seeg_words(
    *, n_subjects: int = 1, n_words: int = 4, n_trials: int = 20,
    n_shafts: int | Sequence[int] = 2, contacts_per_shaft: int = 5, n_sources: int = 4,
    sfreq: float = SEEG_SFREQ, tmax: float = 3.0, iti: float = 0.5,
    amplitude: float = 100e-6, background: float = 20e-6, rhythm: float = 20e-6,
    noise: float = 2e-6,
    reference_noise: float = 40e-6, jitter: float = 0.015, seed: int = 0,
) -> list[SEEGWords]:
    """Synthetic word-reading sessions with a planted, subject-independent code.

    For each subject, ``n_sources`` latent sources carry background activity: 1/f²
    ("brown") noise of ``background`` V RMS plus a theta-alpha rhythm (4-12 Hz, one per
    source) of ``rhythm`` V that switches on and off every ~0.8 s. In every trial the
    word read adds its burst: a 200 ms Hann-windowed 110 Hz high-gamma packet of random
    phase plus an evoked deflection of fixed polarity (each ``amplitude`` V peak,
    log-normal gain jitter, onset jitter ``jitter`` s), in the word's source at the
    word's time (:func:`word_code`), so in word-specific tokens and channels. Contacts on
    ``n_shafts`` straight shafts (3.5 mm pitch, MNI coordinates) see each source with a
    gain ``exp(-d / 5 mm)`` of their distance to it: the subject's own mixing matrix, as
    the sources sit near random contacts of this subject's shafts. Each contact adds its
    own 1/f² activity (``noise``) and a tenth of that as white amplifier noise, and all
    contacts share a reference signal (``reference_noise``, 1/f²) that bipolar
    re-referencing removes.

    Parameters
    ----------
    n_subjects : int
        Subjects, each with its own shafts (names, positions) and mixing matrix.
    n_words : int
        Words (classes), labelled :func:`word_labels`.
    n_trials : int
        Trials per word and subject, in random order.
    n_shafts : int | sequence of int
        Shafts per subject (one count, or one per subject), so subjects may differ in
        their number of channels.
    contacts_per_shaft, n_sources : int
    sfreq, tmax, iti : float
        Rate (Hz), epoch length after each cue and rest between epochs (s).
    amplitude, background, rhythm, noise, reference_noise : float
        Volts, as above.
    jitter : float
        SD of the burst onset across trials, in seconds.
    seed : int
        Seeds everything but the word code.

    Returns
    -------
    subjects : list of SEEGWords
    """
    if n_words < 2 or n_trials < 1 or n_subjects < 1 or n_sources < 1:
        raise ValueError(f"expected n_words ≥ 2 and positive n_trials, n_subjects, n_sources; "
                         f"found {n_words}, {n_trials}, {n_subjects}, {n_sources}")
    counts = [n_shafts] * n_subjects if isinstance(n_shafts, int) else list(n_shafts)
    if len(counts) != n_subjects or min(counts) < 1 or contacts_per_shaft < 2:
        raise ValueError(f"expected n_shafts as one positive count or one per subject "
                         f"({n_subjects}) and contacts_per_shaft ≥ 2, found {n_shafts!r}, "
                         f"{contacts_per_shaft}")
    code = word_code(n_words, n_sources=n_sources, tmax=tmax)
    words = word_labels(n_words)
    root = np.random.SeedSequence(seed)
    return [_subject(s, np.random.default_rng(child), counts[s], contacts_per_shaft,
                     n_sources, sfreq, tmax, iti, amplitude, background, rhythm,
                     noise, reference_noise, jitter, n_trials, words, code)
            for s, child in enumerate(root.spawn(n_subjects))]


def _subject(subject: int, rng: np.random.Generator, n_shafts: int, contacts: int,
             n_sources: int, sfreq: float, tmax: float, iti: float, amplitude: float,
             background: float, rhythm: float, noise: float, reference_noise: float,
             jitter: float,
             n_trials: int, words: list[str], code: dict[str, tuple[int, float]]
             ) -> SEEGWords:
    names, pos = _shafts(subject, n_shafts, contacts, rng)
    # sources sit 2-4 mm off random contacts: a dipole-like gain that decays with distance
    near = rng.choice(len(names), size=n_sources, replace=n_sources > len(names))
    src = pos[near] + rng.normal(0, 0.002, (n_sources, 3))
    dist = np.linalg.norm(pos[:, None, :] - src[None, :, :], axis=-1)
    mixing = np.exp(-dist / 0.005)
    mixing /= mixing.max(axis=0, keepdims=True)

    labels = np.repeat(np.asarray(words), n_trials)
    labels = labels[rng.permutation(labels.size)]
    n_epoch = round(tmax * sfreq)
    period = n_epoch + round(iti * sfreq)
    first = round(iti * sfreq)
    n_samples = first + period * labels.size
    onsets = first + period * np.arange(labels.size)

    sources = background * _colored(rng, (n_sources, n_samples), sfreq, 2.0)
    sources += rhythm * _rhythms(rng, n_sources, n_samples, sfreq)
    t = np.arange(round(0.2 * sfreq)) / sfreq
    hann = np.sin(np.pi * t / t[-1]) ** 2
    for onset, word in zip(onsets, labels, strict=True):
        k, when = code[str(word)]
        start = onset + round((when + rng.normal(0, jitter)) * sfreq)
        gain = amplitude * math.exp(rng.normal(0, 0.2))
        packet = np.sin(2 * np.pi * 110.0 * t + rng.uniform(0, 2 * np.pi)) + 1.0
        stop = min(start + t.size, n_samples)
        sources[k, start:stop] += (gain * hann * packet)[:stop - start]
    data = mixing @ sources
    data += noise * _colored(rng, (len(names), n_samples), sfreq, 2.0)
    data += 0.1 * noise * rng.standard_normal((len(names), n_samples))
    data += reference_noise * _colored(rng, (1, n_samples), sfreq, 2.0)
    data = data.astype(np.float32)

    info = mne.create_info(names, sfreq, "seeg")
    montage = mne.channels.make_dig_montage(dict(zip(names, pos, strict=True)),
                                            coord_frame="mni_tal")
    with warnings.catch_warnings():
        # MNI coordinates come without head fiducials; MNE says so, and that is fine here
        warnings.simplefilter("ignore", RuntimeWarning)
        info.set_montage(montage)
    X = np.stack([data[:, o:o + n_epoch] for o in onsets])
    return SEEGWords(X=X, y=labels, data=data, onsets=onsets, info=info,
                     pairs=bipolar_pairs(names), mixing=mixing, code=code, subject=subject)
