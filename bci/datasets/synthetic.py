"""Synthetic EEG with known ground truth: SSVEP and motor-imagery paradigms.

Pure numpy/scipy; nothing here touches LSL (:mod:`bci.devices.simulated_amplifier` streams
it). The signal is a sum of

- background: 1/f ("pink") noise per channel, mixed across channels through a fixed
  matrix so that neighbouring electrodes correlate as volume conduction makes them;
- a posterior alpha rhythm (~10 Hz) from two parieto-occipital sources;
- line noise (50 Hz by default) with a fixed amplitude and phase per channel;
- the paradigm's responses, placed by a seeded trial schedule:

  * ``"ssvep"``: a steady-state response at the attended target's frequency and its
    harmonics, with the target's stimulation phase, an occipital topography centred on
    Oz, a visual latency and a per-trial amplitude jitter;
  * ``"mi"``: mu (8–13 Hz) and beta (18–26 Hz) rhythms from sources under C3, C4 and
    Cz, desynchronised (ERD) during imagery: left hand → C4, right hand → C3,
    feet → Cz.

Determinism: the noise of fixed blocks of :data:`BLOCK_SIZE` samples is drawn from a
generator seeded by ``(seed, block index)`` and filtered with filters whose state
carries over from block to block; the responses depend only on the absolute sample
index. So the same seed gives the same samples however they are pulled: reading
``0..N`` in chunks of any sizes returns exactly the array that one read of ``N`` returns.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import mne
import numpy as np
from scipy import signal

from bci.chunk import Markers
from bci.devices.recording import Recording

PARADIGMS = ("ssvep", "mi")
#: Samples generated per internal block; fixed so that the output never depends on
#: how reads are sized.
BLOCK_SIZE = 4096

DEFAULT_SSVEP_CHANNELS = ("Oz", "O1", "O2", "PO3", "POz", "PO7", "PO8", "PO4")
DEFAULT_FREQUENCIES = (8.0, 10.0, 12.0, 15.0)
#: Phase step between consecutive SSVEP targets (joint frequency-phase coding).
PHASE_STEP = 0.5 * math.pi
MI_CLASSES = ("left", "right", "feet")
DEFAULT_MI_CLASSES = ("left", "right")
DEFAULT_MI_N_CHANNELS = 16
DEFAULT_SFREQ = {"ssvep": 256.0, "mi": 160.0}
DEFAULT_TRIAL_DURATION = {"ssvep": 2.0, "mi": 4.0}
DEFAULT_ITI = {"ssvep": 1.0, "mi": 2.0}
_MIN_SFREQ = {"ssvep": 32.0, "mi": 64.0}

# Streams of the seeded generators, so that no two draws share a seed.
_RNG_NOISE, _RNG_ORDER, _RNG_TRIAL, _RNG_FIXED = 0, 1, 2, 3

# Names of the 10-20 and 10-10 systems in the 10-05 montage (the rest are 10-05 only);
# "T3", "T4", "T5", "T6" duplicate T7, T8, P7, P8 and the mastoid/ear sites are not
# scalp EEG, so neither is picked when only a channel count is given.
_N_1010 = 86
_NOT_PICKED = {"t3", "t4", "t5", "t6", "m1", "m2", "a1", "a2"}

# Amplitudes, in volts (amplitude spectral density in V/√Hz for the pink noise).
_PINK_ASD_10HZ = 1.5e-6
_ALPHA_RMS = 6e-6
_MU_RMS = 6e-6
_BETA_RMS = 2.5e-6
_LINE_AMPLITUDE = 2e-6
_SSVEP_AMPLITUDE = 5e-6
_HARMONIC_DECAY = 0.6
# Spatial scales, in metres on the 10-05 montage (head radius ≈ 0.095 m).
_CORRELATION_LENGTH = 0.07
_SSVEP_SPREAD = 0.04
_ALPHA_SPREAD = 0.05
_MU_SPREAD = 0.03
# Classic 1/f filter (J. O. Smith, "Spectral Audio Signal Processing"): −10 dB/decade
# from about 2e-4·sfreq to Nyquist, whatever the sampling rate.
_PINK_B = (0.049922035, -0.095993537, 0.050612699, -0.004408786)
_PINK_A = (1.0, -2.494956002, 2.017265875, -0.522189400)


def ssvep_label(frequency: float) -> str:
    """The marker value and class label of an SSVEP target, e.g. ``8 → "8Hz"``."""
    return f"{float(frequency):g}Hz"


_LABEL_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*hz\s*$", re.IGNORECASE)


def label_frequency(label: str) -> float:
    """The stimulation frequency of an SSVEP label (``"12.5Hz" → 12.5``).

    Raises
    ------
    ValueError
        If the label is not a number followed by ``Hz``.
    """
    match = _LABEL_RE.match(str(label))
    if match is None:
        raise ValueError(f"expected an SSVEP label such as '8Hz' or '12.5Hz', found {label!r}")
    return float(match.group(1))


def label_frequencies(labels: Sequence[str]) -> list[float]:
    """Map SSVEP labels to their frequencies, in order (see :func:`label_frequency`)."""
    return [label_frequency(label) for label in labels]


@dataclass(frozen=True, slots=True)
class Trial:
    """One cue of the schedule: the ground truth of what the data contain.

    Attributes
    ----------
    index : int
        Trial number from 0.
    onset : int
        Sample index of the cue (stimulation or imagery onset); the marker's sample.
    label : str
        Class label and marker value (``"8Hz"``, ``"left"`` …).
    n_samples : int
        Length of the stimulation or imagery, in samples.
    strength : float
        SSVEP: the trial's response gain (1 = nominal amplitude). MI: the depth of the
        contralateral desynchronisation (fraction of the rhythm's amplitude removed).
    """

    index: int
    onset: int
    label: str
    n_samples: int
    strength: float


@functools.lru_cache(maxsize=1)
def _montage() -> mne.channels.DigMontage:
    # MNE 1.13 renamed the template; the positions are identical.
    name = "colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages() \
        else "standard_1005"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return mne.channels.make_standard_montage(name)


@functools.lru_cache(maxsize=1)
def _positions() -> dict[str, tuple[str, np.ndarray]]:
    """Lower-cased name → (name as the montage spells it, position in metres)."""
    pos = _montage().get_positions()["ch_pos"]
    return {name.lower(): (name, np.asarray(xyz, float)) for name, xyz in pos.items()}


def _position(name: str) -> np.ndarray:
    return _positions()[name.lower()][1]


def pick_channels(n_channels: int, *, paradigm: str = "ssvep") -> list[str]:
    """Choose ``n_channels`` names of the 10-05 system for a paradigm.

    SSVEP takes the default occipital set (Oz, O1, O2, PO3, POz, PO7, PO8, PO4) first,
    then the remaining 10-10 sites nearest to Oz; MI takes C3, Cz, C4 first, then the
    10-10 sites nearest to any of them. 10-05-only sites follow once the 10-10 ones run
    out, in the same order of distance.

    Raises
    ------
    ValueError
        If the count is not a positive integer no larger than the available sites.
    """
    _check_paradigm(paradigm)
    names = [name for name, _ in _positions().values() if name.lower() not in _NOT_PICKED]
    if isinstance(n_channels, bool) or not isinstance(n_channels, int | np.integer) \
            or not 1 <= n_channels <= len(names):
        raise ValueError(
            f"expected a channel count between 1 and {len(names)}, found {n_channels!r}"
        )
    if paradigm == "ssvep":
        first = list(DEFAULT_SSVEP_CHANNELS)
        centres = [_position("Oz")]
    else:
        first = ["C3", "Cz", "C4"]
        centres = [_position(n) for n in first]
    tier = {name: 0 if i < _N_1010 else 1 for i, name in enumerate(_montage().ch_names)}
    rest = [n for n in names if n not in first]
    dist = {n: min(np.linalg.norm(_position(n) - c) for c in centres) for n in rest}
    rest.sort(key=lambda n: (tier[n], round(dist[n], 6)))
    return (first + rest)[: int(n_channels)]


def _check_paradigm(paradigm: str) -> None:
    if paradigm not in PARADIGMS:
        raise ValueError(f"expected paradigm 'ssvep' or 'mi', found {paradigm!r}")


def _envelope(t: np.ndarray, duration: float, ramp: float) -> np.ndarray:
    """Raised-cosine on/off envelope: 0 outside ``[0, duration]``, 1 in the plateau.

    Parameters
    ----------
    t : ndarray, shape (n,)
        Seconds since the start of the response.
    """
    rise = np.clip(t / ramp, 0.0, 1.0)
    fall = np.clip((duration - t) / ramp, 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * rise)) * (0.5 - 0.5 * np.cos(np.pi * fall))


def _noise_gain(sos: np.ndarray, n: int) -> float:
    """RMS of the filter's output for unit white noise (√ of its impulse energy)."""
    impulse = np.zeros(n)
    impulse[0] = 1.0
    return float(np.sqrt(np.sum(signal.sosfilt(sos, impulse) ** 2)))


def _as_positive(name: str, value: float) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a positive number for {name}, found {value!r}") from None
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"expected a positive number for {name}, found {value!r}")
    return out


def _as_non_negative(name: str, value: float) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"expected a non-negative number for {name}, found {value!r}"
        ) from None
    if not math.isfinite(out) or out < 0:
        raise ValueError(f"expected a non-negative number for {name}, found {value!r}")
    return out


class SyntheticEEG:
    """An endless, seeded EEG source with a known trial schedule.

    Parameters
    ----------
    paradigm : "ssvep" | "mi"
    ch_names : sequence of str | None
        Channel names of the 10-05 system (case-insensitive). Default: Oz, O1, O2,
        PO3, POz, PO7, PO8, PO4 for SSVEP, the :data:`DEFAULT_MI_N_CHANNELS` sites
        nearest to C3/Cz/C4 for MI.
    n_channels : int | None
        Instead of names, a count: that many sites picked by :func:`pick_channels`
        (occipital first for SSVEP, central first for MI).
    sfreq : float | None
        Sampling rate in Hz (default 256 for SSVEP, 160 for MI).
    seed : int | None
        Seed of every random draw; ``None`` draws one (read it back from ``seed``).
    frequencies : sequence of float | None
        SSVEP target frequencies in Hz (default 8, 10, 12, 15).
    phases : sequence of float | None
        SSVEP target phases in radians (default ``k · π/2`` for target k).
    n_harmonics : int
        SSVEP harmonics in the response, the fundamental included (default 3); the
        amplitude of harmonic h is ``0.6^(h-1)`` of the fundamental's.
    classes : sequence of str | None
        MI classes among "left", "right", "feet" (default "left", "right").
    trial_duration : float | None
        Stimulation or imagery length in seconds (default 2.0 SSVEP, 4.0 MI).
    iti : float | None
        Rest between the end of a trial and the next cue, in seconds (default 1.0
        SSVEP, 2.0 MI).
    first_onset : float | None
        Time of the first cue in seconds (default: one ``iti``).
    latency : float
        SSVEP: visual latency of the response after the stimulation, in seconds.
    ssvep_amplitude : float
        SSVEP fundamental amplitude at Oz, in volts.
    amplitude_jitter : float
        SD of the log of the per-trial SSVEP gain, or of the MI ERD depth.
    erd_depth : float
        MI: mean fraction of the contralateral mu/beta amplitude removed in imagery.
    line_freq : float | None
        Power-line frequency in Hz (default 50); ``None`` or 0 leaves it out.
    noise_scale : float
        Multiplies the background (pink noise, alpha, line noise); lower it for an
        easier signal.
    external_cues : bool
        Opt-in: no schedule of its own; trials come from :meth:`add_cue` (and end early
        at :meth:`end_cue`), e.g. from an experiment's cue markers. Responses are added
        when samples are read, so a cue added before its onset sample is read shapes
        every sample from its onset on, however far ahead noise blocks were generated.
        ``iti`` and ``first_onset`` are then unused; ``trial_duration`` is the length
        of a cued response that no :meth:`end_cue` cuts short.

    Attributes
    ----------
    info : mne.Info
        Channel names (EEG type), sampling rate and 10-05 montage.
    labels : list of str
        The class labels, which are also the marker values.
    position : int
        Index of the next sample :meth:`read` returns.
    """

    def __init__(
        self, *, paradigm: str = "ssvep", ch_names: Sequence[str] | None = None,
        n_channels: int | None = None, sfreq: float | None = None, seed: int | None = None,
        frequencies: Sequence[float] | None = None, phases: Sequence[float] | None = None,
        n_harmonics: int = 3, classes: Sequence[str] | None = None,
        trial_duration: float | None = None, iti: float | None = None,
        first_onset: float | None = None, latency: float = 0.14,
        ssvep_amplitude: float = _SSVEP_AMPLITUDE, amplitude_jitter: float = 0.25,
        erd_depth: float = 0.6, line_freq: float | None = 50.0, noise_scale: float = 1.0,
        external_cues: bool = False,
    ) -> None:
        _check_paradigm(paradigm)
        self.paradigm = paradigm
        self.sfreq = _as_positive("sfreq", DEFAULT_SFREQ[paradigm] if sfreq is None else sfreq)
        # the alpha band (and for MI the beta band) must lie below Nyquist
        lowest = _MIN_SFREQ[paradigm]
        if self.sfreq < lowest:
            raise ValueError(f"expected sfreq of at least {lowest:g} Hz for paradigm "
                             f"{paradigm!r}, found {self.sfreq:g}")
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"expected a non-negative integer seed, found {seed!r}")
        self.seed = int(seed)
        self.ch_names = self._channel_names(ch_names, n_channels)
        self.info = mne.create_info(self.ch_names, self.sfreq, "eeg")
        self.info.set_montage(_montage().copy(), match_case=False)
        self._xyz = np.stack([_position(n) for n in self.ch_names])

        duration = DEFAULT_TRIAL_DURATION[paradigm] if trial_duration is None else trial_duration
        self.trial_duration = _as_positive("trial_duration", duration)
        self.iti = _as_non_negative("iti", DEFAULT_ITI[paradigm] if iti is None else iti)
        first = self.iti if first_onset is None else first_onset
        self.first_onset = _as_non_negative("first_onset", first)
        self._n_trial = max(1, round(self.trial_duration * self.sfreq))
        self._n_period = self._n_trial + round(self.iti * self.sfreq)
        self._n_first = round(self.first_onset * self.sfreq)
        self.latency = _as_non_negative("latency", latency)
        self.amplitude_jitter = _as_non_negative("amplitude_jitter", amplitude_jitter)
        self.noise_scale = _as_non_negative("noise_scale", noise_scale)
        nyquist = self.sfreq / 2
        if line_freq in (None, 0):
            self.line_freq = None
        else:
            self.line_freq = _as_positive("line_freq", line_freq)
            if self.line_freq >= nyquist:
                raise ValueError(f"line_freq must be below Nyquist ({nyquist:g} Hz at "
                                 f"sfreq {self.sfreq:g}), found {self.line_freq:g}")

        if paradigm == "ssvep":
            if classes is not None:
                raise ValueError("classes apply to the 'mi' paradigm; for 'ssvep' give "
                                 f"frequencies, found classes={classes!r}")
            self._setup_ssvep(frequencies, phases, n_harmonics, ssvep_amplitude)
        else:
            if frequencies is not None or phases is not None:
                raise ValueError("frequencies and phases apply to the 'ssvep' paradigm, "
                                 f"found them with paradigm {paradigm!r}")
            self._setup_mi(classes, erd_depth)
        self._orders: dict[int, np.ndarray] = {}
        self.external_cues = bool(external_cues)
        self._cues: list[Trial] = []
        self._setup_background()
        self.reset()

    # -- set-up ---------------------------------------------------------------------
    def _channel_names(self, ch_names: Sequence[str] | None,
                       n_channels: int | None) -> list[str]:
        if ch_names is not None and n_channels is not None:
            raise ValueError(f"give ch_names or n_channels, not both (found {len(ch_names)} "
                             f"names and n_channels={n_channels!r})")
        if ch_names is None:
            if n_channels is None:
                if self.paradigm == "ssvep":
                    return list(DEFAULT_SSVEP_CHANNELS)
                n_channels = DEFAULT_MI_N_CHANNELS
            return pick_channels(n_channels, paradigm=self.paradigm)
        if isinstance(ch_names, str):
            raise ValueError(f"expected a sequence of channel names, found the string "
                             f"{ch_names!r}")
        names = [str(n) for n in ch_names]
        if not names:
            raise ValueError("expected at least one channel name, found none")
        unknown = [n for n in names if n.lower() not in _positions()]
        if unknown:
            raise ValueError(f"expected channel names of the 10-05 system (e.g. Oz, C3, "
                             f"FCC3h), found unknown names {unknown}")
        lowered = [n.lower() for n in names]
        dupes = sorted({n for n in names if lowered.count(n.lower()) > 1})
        if dupes:
            raise ValueError(f"expected distinct channel names, found duplicates {dupes}")
        return names

    def _setup_ssvep(self, frequencies: Sequence[float] | None,
                     phases: Sequence[float] | None, n_harmonics: int,
                     amplitude: float) -> None:
        freqs = DEFAULT_FREQUENCIES if frequencies is None else frequencies
        freqs = [_as_positive("an SSVEP frequency", f) for f in freqs]
        if not freqs:
            raise ValueError("expected at least one SSVEP frequency, found none")
        nyquist = self.sfreq / 2
        too_high = [f for f in freqs if f >= nyquist]
        if too_high:
            raise ValueError(f"SSVEP frequencies must be below Nyquist ({nyquist:g} Hz), "
                             f"found {too_high}")
        labels = [ssvep_label(f) for f in freqs]
        if len(set(labels)) != len(labels):
            raise ValueError(f"expected distinct SSVEP frequencies, found {freqs}")
        if phases is None:
            phases = [(k * PHASE_STEP) % (2 * math.pi) for k in range(len(freqs))]
        phases = [float(p) for p in phases]
        if len(phases) != len(freqs):
            raise ValueError(f"expected one phase per frequency ({len(freqs)}), "
                             f"found {len(phases)}")
        if isinstance(n_harmonics, bool) or not isinstance(n_harmonics, int) \
                or n_harmonics < 1:
            raise ValueError(f"expected n_harmonics ≥ 1, found {n_harmonics!r}")
        self.frequencies = freqs
        self.phases = phases
        self.n_harmonics = n_harmonics
        self.labels = labels
        self.ssvep_amplitude = _as_non_negative("ssvep_amplitude", amplitude)
        rng = np.random.default_rng([self.seed, _RNG_FIXED, 1])
        # phase lag of each harmonic's generator, beyond the latency's own lag
        self._harmonic_phase = rng.uniform(0, 2 * np.pi, n_harmonics)
        dist = np.linalg.norm(self._xyz - _position("Oz"), axis=1)
        self._ssvep_topo = np.exp(-0.5 * (dist / _SSVEP_SPREAD) ** 2)

    def _setup_mi(self, classes: Sequence[str] | None, erd_depth: float) -> None:
        classes = DEFAULT_MI_CLASSES if classes is None else classes
        if isinstance(classes, str):
            raise ValueError(f"expected a sequence of MI classes, found the string {classes!r}")
        classes = [str(c) for c in classes]
        bad = [c for c in classes if c not in MI_CLASSES]
        if bad or len(classes) < 1 or len(set(classes)) != len(classes):
            raise ValueError(f"expected distinct MI classes among {list(MI_CLASSES)}, "
                             f"found {classes}")
        depth = _as_non_negative("erd_depth", erd_depth)
        if depth > 1:
            raise ValueError(f"expected erd_depth between 0 and 1, found {erd_depth!r}")
        self.labels = classes
        self.frequencies = None
        self.erd_depth = depth
        rng = np.random.default_rng([self.seed, _RNG_FIXED, 2])
        sites = ("C3", "C4", "Cz")
        # hand areas sit under C3/C4, the feet area on the midline (Cz)
        self._mu_topo = np.stack([
            np.exp(-0.5 * (np.linalg.norm(self._xyz - _position(s), axis=1) / _MU_SPREAD) ** 2)
            for s in sites
        ], axis=1) * np.array([1.0, 1.0, 0.7])
        mu_freqs = 10.5 + rng.uniform(-0.7, 0.7, 3)
        beta_freqs = 22.0 + rng.uniform(-1.5, 1.5, 3)
        nyquist = self.sfreq / 2
        self._mu_sos = [self._band(f - 1.5, f + 1.5) for f in mu_freqs]
        self._beta_sos = [self._band(f - 4.0, min(f + 4.0, 0.95 * nyquist))
                          for f in beta_freqs]
        self._mu_scale = np.array([_MU_RMS / _noise_gain(s, 20 * int(self.sfreq))
                                   for s in self._mu_sos])
        self._beta_scale = np.array([_BETA_RMS / _noise_gain(s, 20 * int(self.sfreq))
                                     for s in self._beta_sos])
        # ERD per class on the (C3, C4, Cz) sources: contralateral hand area, or the
        # midline for the feet, with a weak ipsilateral/bilateral share
        self._erd_pattern = {
            "left": np.array([0.2, 1.0, 0.2]),
            "right": np.array([1.0, 0.2, 0.2]),
            "feet": np.array([0.15, 0.15, 1.0]),
        }

    def _band(self, low: float, high: float) -> np.ndarray:
        return signal.butter(2, [low, high], "bandpass", fs=self.sfreq, output="sos")

    def _setup_background(self) -> None:
        rng = np.random.default_rng([self.seed, _RNG_FIXED, 0])
        n_ch = len(self.ch_names)
        # volume conduction: exponential decay of correlation with electrode distance;
        # its symmetric square root mixes independent sources into channels
        dist = np.linalg.norm(self._xyz[:, None] - self._xyz[None], axis=-1)
        eigval, eigvec = np.linalg.eigh(np.exp(-dist / _CORRELATION_LENGTH))
        root = (eigvec * np.sqrt(np.clip(eigval, 0, None))) @ eigvec.T
        gains = rng.uniform(0.85, 1.15, n_ch)
        self._mix = gains[:, None] * root

        pink = signal.tf2sos(_PINK_B, _PINK_A)
        highpass = signal.butter(1, 0.5, "highpass", fs=self.sfreq, output="sos")
        self._pink_sos = np.concatenate([pink, highpass])
        # white noise of variance σ² has a one-sided PSD 2σ²/sfreq; scale σ so that the
        # pink noise has the same density at 10 Hz whatever the sampling rate
        _, h10 = signal.sosfreqz(self._pink_sos, worN=[10.0], fs=self.sfreq)
        self._pink_scale = _PINK_ASD_10HZ * math.sqrt(self.sfreq / 2) / abs(h10[0])

        alpha_freqs = 10.0 + rng.uniform(-0.4, 0.4, 2)
        self._alpha_sos = [self._band(f - 1.2, f + 1.2) for f in alpha_freqs]
        self._alpha_scale = np.array([_ALPHA_RMS / _noise_gain(s, 20 * int(self.sfreq))
                                      for s in self._alpha_sos])
        self._alpha_topo = np.stack([
            np.exp(-0.5 * (np.linalg.norm(self._xyz - _position(s), axis=1)
                           / _ALPHA_SPREAD) ** 2)
            for s in ("PO3", "PO4")
        ], axis=1)

        if self.line_freq is not None:
            amp = rng.uniform(0.5, 1.5, n_ch) * _LINE_AMPLITUDE
            phase = rng.uniform(0, 2 * np.pi, n_ch)
            # a·sin(ωt + φ) = a·cos φ·sin ωt + a·sin φ·cos ωt
            self._line_weights = np.stack([amp * np.cos(phase), amp * np.sin(phase)], axis=1)

    def reset(self) -> None:
        """Go back to sample 0 (the filters restart from rest)."""
        n_ch = len(self.ch_names)
        self._zi_pink = np.zeros((self._pink_sos.shape[0], n_ch, 2))
        self._zi_alpha = [np.zeros((s.shape[0], 2)) for s in self._alpha_sos]
        if self.paradigm == "mi":
            self._zi_mu = [np.zeros((s.shape[0], 2)) for s in self._mu_sos]
            self._zi_beta = [np.zeros((s.shape[0], 2)) for s in self._beta_sos]
        self._next_block = 0
        self._block = np.empty((n_ch, 0), np.float32)
        self._block_start = 0
        self.position = 0
        self._cues = []
        self._parts: dict | None = None

    # -- schedule -------------------------------------------------------------------
    @property
    def n_channels(self) -> int:
        return len(self.ch_names)

    @property
    def trial_samples(self) -> int:
        """Length of a stimulation/imagery period, in samples."""
        return self._n_trial

    @property
    def period_samples(self) -> int:
        """Samples from one cue to the next."""
        return self._n_period

    @property
    def class_frequencies(self) -> dict[str, float]:
        """SSVEP: label → stimulation frequency (empty for MI)."""
        if self.frequencies is None:
            return {}
        return dict(zip(self.labels, self.frequencies, strict=True))

    def _round_order(self, round_index: int) -> np.ndarray:
        order = self._orders.get(round_index)
        if order is None:
            if len(self._orders) > 64:
                self._orders.clear()
            rng = np.random.default_rng([self.seed, _RNG_ORDER, round_index])
            order = self._orders[round_index] = rng.permutation(len(self.labels))
        return order

    def trial(self, index: int) -> Trial:
        """The ``index``-th trial of the schedule (each class once per round)."""
        if index < 0:
            raise ValueError(f"expected a trial index ≥ 0, found {index}")
        if self.external_cues:
            if index >= len(self._cues):
                raise ValueError(f"trial {index} was not cued yet ({len(self._cues)} cues)")
            return self._cues[index]
        n_cls = len(self.labels)
        label = self.labels[self._round_order(index // n_cls)[index % n_cls]]
        rng = np.random.default_rng([self.seed, _RNG_TRIAL, index])
        if self.paradigm == "ssvep":
            strength = float(np.exp(rng.normal(0.0, self.amplitude_jitter)))
        else:
            strength = float(np.clip(
                self.erd_depth + rng.normal(0.0, self.amplitude_jitter * 0.4), 0.0, 1.0))
        onset = self._n_first + index * self._n_period
        return Trial(index, onset, label, self._n_trial, strength)

    def trials_between(self, start: int, stop: int) -> list[Trial]:
        """Trials whose cue falls in samples ``[start, stop)``."""
        if self.external_cues:
            return [t for t in self._cues if start <= t.onset < stop]
        lo = max(0, -(-(start - self._n_first) // self._n_period))
        hi = -(-(stop - self._n_first) // self._n_period)  # first index at or past stop
        return [self.trial(k) for k in range(lo, max(lo, hi))]

    @property
    def trials(self) -> list[Trial]:
        """Ground truth of everything read so far: trials cued before ``position``."""
        return self.trials_between(0, self.position)

    def _trials_touching(self, start: int, stop: int, lead: int, length: int) -> list[Trial]:
        """Trials whose response ``[onset + lead, onset + lead + length)`` meets the span."""
        if self.external_cues:
            extra = length - self._n_trial  # each cued trial has its own length
            return [t for t in self._cues if t.onset + lead < stop
                    and t.onset + lead + t.n_samples + extra > start]
        first = start - lead - length - self._n_first
        lo = max(0, first // self._n_period)
        hi = (stop - 1 - self._n_first) // self._n_period
        out = []
        for k in range(lo, hi + 1):
            onset = self._n_first + k * self._n_period
            if onset + lead < stop and onset + lead + length > start:
                out.append(self.trial(k))
        return out

    # -- generation -----------------------------------------------------------------
    def read(self, n_samples: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """The next ``n_samples`` samples and the cues among them.

        Returns
        -------
        data : ndarray of float32, shape (n_channels, n_samples)
            Volts.
        markers : list of (int, str)
            ``(sample index, label)`` of every cue in the samples read, in order.
        """
        if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) \
                or n_samples < 0:
            raise ValueError(f"expected a non-negative sample count, found {n_samples!r}")
        n_samples = int(n_samples)
        start = self.position
        if self.external_cues:
            out = self._read_external(n_samples)
            markers = [(t.onset, t.label) for t in self.trials_between(start, self.position)]
            return out, markers
        out = np.empty((self.n_channels, n_samples), np.float32)
        done = 0
        while done < n_samples:
            offset = self.position - self._block_start
            if offset >= self._block.shape[1]:
                self._block_start = self._next_block * BLOCK_SIZE
                self._block = self._generate_block(self._next_block)
                self._next_block += 1
                offset = self.position - self._block_start
            take = min(n_samples - done, self._block.shape[1] - offset)
            out[:, done:done + take] = self._block[:, offset:offset + take]
            done += take
            self.position += take
        markers = [(t.onset, t.label) for t in self.trials_between(start, self.position)]
        return out, markers

    def _duration(self, trial: Trial) -> float:
        if trial.n_samples == self._n_trial:
            return self.trial_duration
        return trial.n_samples / self.sfreq

    # -- external cues --------------------------------------------------------------
    def add_cue(self, label: str, onset: int, *, n_samples: int | None = None) -> Trial:
        """Cue ``label`` at sample ``onset`` (external-cue mode only).

        The response starts at the cue (after the visual latency, or the ERD's delay)
        and lasts ``n_samples`` (default ``trial_duration``) unless :meth:`end_cue`
        ends it sooner. Samples already read are not changed: a cue whose onset lies
        before :attr:`position` shapes only what is read from now on.

        Returns
        -------
        Trial
            The cue as the ground truth records it (``index`` counts cues from 0).
        """
        if not self.external_cues:
            raise ValueError("add_cue needs SyntheticEEG(external_cues=True); this source "
                             "follows its own schedule")
        if label not in self.labels:
            raise ValueError(f"expected a cue among {self.labels}, found {label!r}")
        if isinstance(onset, bool) or not isinstance(onset, int | np.integer) or onset < 0:
            raise ValueError(f"expected a non-negative sample index, found {onset!r}")
        n = self._n_trial if n_samples is None else int(n_samples)
        if n < 1:
            raise ValueError(f"expected a positive response length, found {n_samples!r}")
        index = len(self._cues)
        rng = np.random.default_rng([self.seed, _RNG_TRIAL, index])
        if self.paradigm == "ssvep":
            strength = float(np.exp(rng.normal(0.0, self.amplitude_jitter)))
        else:
            strength = float(np.clip(
                self.erd_depth + rng.normal(0.0, self.amplitude_jitter * 0.4), 0.0, 1.0))
        trial = Trial(index, int(onset), str(label), n, strength)
        self._cues.append(trial)
        return trial

    def end_cue(self, sample: int) -> Trial | None:
        """End the latest cued response that began before ``sample`` at that sample.

        Returns the shortened trial, or ``None`` when no response was running then.
        """
        if not self.external_cues:
            raise ValueError("end_cue needs SyntheticEEG(external_cues=True)")
        for i in range(len(self._cues) - 1, -1, -1):
            trial = self._cues[i]
            if trial.onset < sample:
                if sample >= trial.onset + trial.n_samples:
                    return None
                short = Trial(trial.index, trial.onset, trial.label,
                              max(1, int(sample) - trial.onset), trial.strength)
                self._cues[i] = short
                return short
        return None

    def _read_external(self, n_samples: int) -> np.ndarray:
        """Background from cached blocks plus the cued responses, composed at read."""
        out = np.empty((self.n_channels, n_samples), np.float32)
        done = 0
        while done < n_samples:
            offset = self.position - self._block_start
            if self._parts is None or offset >= BLOCK_SIZE:
                self._block_start = self._next_block * BLOCK_SIZE
                self._parts = self._generate_parts(self._next_block)
                self._next_block += 1
                offset = self.position - self._block_start
            take = min(n_samples - done, BLOCK_SIZE - offset)
            sl = slice(offset, offset + take)
            start = self.position
            x = self._parts["base"][:, sl].copy()
            if self.paradigm == "ssvep":
                response, blocking = self._ssvep(start, take)
                x += self._parts["alpha"][:, sl] * (1.0 - 0.5 * blocking)
                x += np.outer(self._ssvep_topo, response)
            else:
                x += self._mi_mix(self._parts["mu"][:, sl], self._parts["beta"][:, sl],
                                  self._erd_gain(start, take))
            out[:, done:done + take] = x
            done += take
            self.position += take
        return out

    def _generate_parts(self, index: int) -> dict[str, np.ndarray]:
        """One block's background, split so that responses can be added later."""
        start = index * BLOCK_SIZE
        n = BLOCK_SIZE
        rng = np.random.default_rng([self.seed, _RNG_NOISE, index])
        white = rng.standard_normal((self.n_channels, n))
        alpha_white = rng.standard_normal((2, n))
        mi_white = rng.standard_normal((6, n))
        pink, self._zi_pink = signal.sosfilt(self._pink_sos, white * self._pink_scale,
                                             axis=-1, zi=self._zi_pink)
        base = self._mix @ pink
        alpha = np.empty((2, n))
        for i, sos in enumerate(self._alpha_sos):
            alpha[i], self._zi_alpha[i] = signal.sosfilt(
                sos, alpha_white[i] * self._alpha_scale[i], zi=self._zi_alpha[i])
        if self.line_freq is not None:
            arg = 2 * np.pi * self.line_freq * (start + np.arange(n)) / self.sfreq
            base += self._line_weights @ np.stack([np.sin(arg), np.cos(arg)])
        parts = {"base": base * self.noise_scale,
                 "alpha": (self._alpha_topo @ alpha) * self.noise_scale}
        if self.paradigm == "ssvep":
            return parts
        parts["base"] += parts.pop("alpha")
        mu = np.empty((3, n))
        beta = np.empty((3, n))
        for i in range(3):
            mu[i], self._zi_mu[i] = signal.sosfilt(
                self._mu_sos[i], mi_white[i] * self._mu_scale[i], zi=self._zi_mu[i])
            beta[i], self._zi_beta[i] = signal.sosfilt(
                self._beta_sos[i], mi_white[3 + i] * self._beta_scale[i],
                zi=self._zi_beta[i])
        parts["mu"], parts["beta"] = mu, beta
        return parts

    def _generate_block(self, index: int) -> np.ndarray:
        start = index * BLOCK_SIZE
        n = BLOCK_SIZE
        rng = np.random.default_rng([self.seed, _RNG_NOISE, index])
        # every draw happens whatever the options, so the noise depends on the seed only
        white = rng.standard_normal((self.n_channels, n))
        alpha_white = rng.standard_normal((2, n))
        mi_white = rng.standard_normal((6, n))

        pink, self._zi_pink = signal.sosfilt(self._pink_sos, white * self._pink_scale,
                                             axis=-1, zi=self._zi_pink)
        x = self._mix @ pink
        alpha = np.empty((2, n))
        for i, sos in enumerate(self._alpha_sos):
            alpha[i], self._zi_alpha[i] = signal.sosfilt(
                sos, alpha_white[i] * self._alpha_scale[i], zi=self._zi_alpha[i])
        t_sec = (start + np.arange(n)) / self.sfreq
        if self.paradigm == "ssvep":
            response, blocking = self._ssvep(start, n)
            # visual stimulation blocks the posterior alpha rhythm in part
            alpha *= 1.0 - 0.5 * blocking
        x += self._alpha_topo @ alpha
        if self.line_freq is not None:
            arg = 2 * np.pi * self.line_freq * t_sec
            x += self._line_weights @ np.stack([np.sin(arg), np.cos(arg)])
        x *= self.noise_scale
        if self.paradigm == "ssvep":
            x += np.outer(self._ssvep_topo, response)
        else:
            x += self._mi(start, n, mi_white)
        return x.astype(np.float32)

    def _ssvep(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """SSVEP waveform at Oz and the stimulation envelope, shape (n,) each."""
        response = np.zeros(n)
        blocking = np.zeros(n)
        ramp = 0.1
        lead = math.floor(self.latency * self.sfreq)
        length = self._n_trial + 2
        nyquist = self.sfreq / 2
        for trial in self._trials_touching(start, start + n, lead, length):
            lo = max(start, trial.onset + lead)
            hi = min(start + n, trial.onset + lead + length + trial.n_samples - self._n_trial)
            # seconds since the response began (latency after the cue)
            t = (np.arange(lo, hi) - trial.onset) / self.sfreq - self.latency
            env = _envelope(t, self._duration(trial), ramp)
            k = self.labels.index(trial.label)
            freq, phase = self.frequencies[k], self.phases[k]
            wave = np.zeros(hi - lo)
            for h in range(1, self.n_harmonics + 1):
                if h * freq >= nyquist:
                    break
                wave += _HARMONIC_DECAY ** (h - 1) * np.sin(
                    2 * np.pi * h * freq * t + h * phase + self._harmonic_phase[h - 1])
            response[lo - start:hi - start] += (self.ssvep_amplitude * trial.strength
                                                * env * wave)
            blocking[lo - start:hi - start] = np.maximum(blocking[lo - start:hi - start], env)
        return response, blocking

    def _mi(self, start: int, n: int, white: np.ndarray) -> np.ndarray:
        """Sensorimotor rhythms with their ERD, shape (n_channels, n)."""
        mu = np.empty((3, n))
        beta = np.empty((3, n))
        for i in range(3):
            mu[i], self._zi_mu[i] = signal.sosfilt(
                self._mu_sos[i], white[i] * self._mu_scale[i], zi=self._zi_mu[i])
            beta[i], self._zi_beta[i] = signal.sosfilt(
                self._beta_sos[i], white[3 + i] * self._beta_scale[i], zi=self._zi_beta[i])
        return self._mi_mix(mu, beta, self._erd_gain(start, n))

    def _erd_gain(self, start: int, n: int) -> np.ndarray:
        """Gain of the (C3, C4, Cz) mu sources under the trials' ERD, shape (3, n)."""
        # ERD begins 0.3 s after the cue, is full 0.5 s later and recovers after imagery
        delay, ramp = 0.3, 0.5
        lead = math.floor(delay * self.sfreq)
        length = self._n_trial + math.ceil(ramp * self.sfreq) + 2
        loss = np.zeros((3, n))
        for trial in self._trials_touching(start, start + n, lead, length):
            lo = max(start, trial.onset + lead)
            hi = min(start + n, trial.onset + lead + length + trial.n_samples - self._n_trial)
            t = (np.arange(lo, hi) - trial.onset) / self.sfreq - delay
            env = _envelope(t, self._duration(trial) + ramp, ramp)
            pattern = self._erd_pattern[trial.label] * trial.strength
            loss[:, lo - start:hi - start] += pattern[:, None] * env[None]
        return np.clip(1.0 - loss, 0.0, 1.0)

    def _mi_mix(self, mu: np.ndarray, beta: np.ndarray, gain: np.ndarray) -> np.ndarray:
        # beta desynchronises less deeply than mu
        beta_gain = 1.0 - 0.7 * (1.0 - gain)
        return self._mu_topo @ (mu * gain + beta * beta_gain)


def make_recording(duration: float, *, t0: float = 0.0, **options) -> Recording:
    """A :class:`~bci.devices.recording.Recording` of synthetic EEG from sample 0.

    Parameters
    ----------
    duration : float
        Seconds of data (rounded to whole samples).
    t0 : float
        Timestamp of the first sample; sample i is at ``t0 + i / sfreq``.
    **options
        Keyword options of :class:`SyntheticEEG` (paradigm, n_channels, sfreq, seed …).

    Returns
    -------
    Recording
        Data float32 (n_channels, n_samples) in volts, timestamps, and one marker per
        cue with the class label as value.
    """
    eeg = SyntheticEEG(**options)
    seconds = _as_non_negative("duration", duration)
    n = round(seconds * eeg.sfreq)
    data, cues = eeg.read(n)
    timestamps = t0 + np.arange(n) / eeg.sfreq
    onsets = np.array([s for s, _ in cues], dtype=np.int64)
    markers = Markers(t0 + onsets / eeg.sfreq, [label for _, label in cues])
    return Recording(eeg.info, data, timestamps, markers,
                     source=f"synthetic:{eeg.paradigm}:seed={eeg.seed}")
