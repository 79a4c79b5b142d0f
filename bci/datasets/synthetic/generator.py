"""The seeded generator :class:`SyntheticEEG` and its trial schedule."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bci.datasets.synthetic.background import Background
from bci.datasets.synthetic.mi import MotorImageryRhythms
from bci.datasets.synthetic.montage import (
    pick_channels,
    site_position,
    site_positions,
    standard_montage,
)
from bci.datasets.synthetic.options import (
    DEFAULT_ITI,
    DEFAULT_MI_N_CHANNELS,
    DEFAULT_SFREQ,
    DEFAULT_SSVEP_CHANNELS,
    DEFAULT_TRIAL_DURATION,
    MIN_SFREQ,
    RNG_ORDER,
    RNG_TRIAL,
    as_non_negative,
    as_positive,
    check_paradigm,
)
from bci.datasets.synthetic.ssvep import SSVEP_AMPLITUDE, SSVEPResponse

#: Samples generated per internal block; fixed so that the output never depends on
#: how reads are sized.
BLOCK_SIZE = 4096


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


class SyntheticEEG(Background, SSVEPResponse, MotorImageryRhythms):
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
        ssvep_amplitude: float = SSVEP_AMPLITUDE, amplitude_jitter: float = 0.25,
        erd_depth: float = 0.6, line_freq: float | None = 50.0, noise_scale: float = 1.0,
        external_cues: bool = False,
    ) -> None:
        check_paradigm(paradigm)
        self.paradigm = paradigm
        self.sfreq = as_positive("sfreq", DEFAULT_SFREQ[paradigm] if sfreq is None else sfreq)
        # the alpha band (and for MI the beta band) must lie below Nyquist
        lowest = MIN_SFREQ[paradigm]
        if self.sfreq < lowest:
            raise ValueError(f"expected sfreq of at least {lowest:g} Hz for paradigm "
                             f"{paradigm!r}, found {self.sfreq:g}")
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"expected a non-negative integer seed, found {seed!r}")
        self.seed = int(seed)
        self.ch_names = self._channel_names(ch_names, n_channels)
        import mne  # on first use: importing the package (`bci --help`) stays cheap

        self.info = mne.create_info(self.ch_names, self.sfreq, "eeg")
        self.info.set_montage(standard_montage().copy(), match_case=False)
        self._xyz = np.stack([site_position(n) for n in self.ch_names])

        duration = DEFAULT_TRIAL_DURATION[paradigm] if trial_duration is None else trial_duration
        self.trial_duration = as_positive("trial_duration", duration)
        self.iti = as_non_negative("iti", DEFAULT_ITI[paradigm] if iti is None else iti)
        first = self.iti if first_onset is None else first_onset
        self.first_onset = as_non_negative("first_onset", first)
        self._n_trial = max(1, round(self.trial_duration * self.sfreq))
        self._n_period = self._n_trial + round(self.iti * self.sfreq)
        self._n_first = round(self.first_onset * self.sfreq)
        self.latency = as_non_negative("latency", latency)
        self.amplitude_jitter = as_non_negative("amplitude_jitter", amplitude_jitter)
        self.noise_scale = as_non_negative("noise_scale", noise_scale)
        nyquist = self.sfreq / 2
        if line_freq in (None, 0):
            self.line_freq = None
        else:
            self.line_freq = as_positive("line_freq", line_freq)
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
        unknown = [n for n in names if n.lower() not in site_positions()]
        if unknown:
            raise ValueError(f"expected channel names of the 10-05 system (e.g. Oz, C3, "
                             f"FCC3h), found unknown names {unknown}")
        lowered = [n.lower() for n in names]
        dupes = sorted({n for n in names if lowered.count(n.lower()) > 1})
        if dupes:
            raise ValueError(f"expected distinct channel names, found duplicates {dupes}")
        return names

    def reset(self) -> None:
        """Go back to sample 0 (the filters restart from rest)."""
        n_ch = len(self.ch_names)
        self._zi_pink = np.zeros((self._pink_sos.shape[0], n_ch, 2))
        self._zi_alpha = [np.zeros((s.shape[0], 2)) for s in self._alpha_sos]
        if self.paradigm == "mi":
            self._zi_mu = [np.zeros((s.shape[0], 2)) for s in self._mu_sos]
            self._zi_beta = [np.zeros((s.shape[0], 2)) for s in self._beta_sos]
        self._next_block = 0
        # the current block: samples (own schedule), or background parts (external cues)
        self._block: np.ndarray | dict[str, np.ndarray] | None = None
        self._block_start = 0
        self.position = 0
        self._cues = []

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
            rng = np.random.default_rng([self.seed, RNG_ORDER, round_index])
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
        onset = self._n_first + index * self._n_period
        return Trial(index, onset, label, self._n_trial, self._strength(index))

    def _strength(self, index: int) -> float:
        """Trial ``index``'s seeded SSVEP gain or MI ERD depth (see :class:`Trial`)."""
        rng = np.random.default_rng([self.seed, RNG_TRIAL, index])
        if self.paradigm == "ssvep":
            return float(np.exp(rng.normal(0.0, self.amplitude_jitter)))
        return float(np.clip(
            self.erd_depth + rng.normal(0.0, self.amplitude_jitter * 0.4), 0.0, 1.0))

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

    def _response_spans(self, start: int, n: int, delay: float, *, tail: int = 0
                        ) -> Iterator[tuple[Trial, slice, np.ndarray]]:
        """The responses that meet samples ``[start, start + n)``.

        A response begins ``delay`` seconds after its cue and lasts the trial plus
        ``tail`` samples (plus two of margin for the rounding of ``delay``).

        Yields
        ------
        trial : Trial
        span : slice
            The samples of the response, relative to ``start``.
        t : ndarray, shape (span length,)
            Seconds since the response began.
        """
        lead = math.floor(delay * self.sfreq)
        length = self._n_trial + tail + 2
        for trial in self._trials_touching(start, start + n, lead, length):
            lo = max(start, trial.onset + lead)
            hi = min(start + n, trial.onset + lead + length + trial.n_samples - self._n_trial)
            yield trial, slice(lo - start, hi - start), \
                (np.arange(lo, hi) - trial.onset) / self.sfreq - delay

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
            out = self._read_blocks(n_samples, self._generate_parts, self._compose)
        else:
            out = self._read_blocks(n_samples, self._generate_block,
                                    lambda block, span, _: block[:, span])
        markers = [(t.onset, t.label) for t in self.trials_between(start, self.position)]
        return out, markers

    def _read_blocks(self, n_samples: int, generate: Callable[[int], Any],
                     take: Callable[[Any, slice, int], np.ndarray]) -> np.ndarray:
        """The next ``n_samples`` samples, block by block.

        ``generate(index)`` makes block ``index`` (kept until read past);
        ``take(block, span, first_sample)`` gives the samples of ``span`` of it.
        """
        out = np.empty((self.n_channels, n_samples), np.float32)
        done = 0
        while done < n_samples:
            offset = self.position - self._block_start
            if self._block is None or offset >= BLOCK_SIZE:
                self._block_start = self._next_block * BLOCK_SIZE
                self._block = generate(self._next_block)
                self._next_block += 1
                offset = self.position - self._block_start
            n = min(n_samples - done, BLOCK_SIZE - offset)
            out[:, done:done + n] = take(self._block, slice(offset, offset + n), self.position)
            done += n
            self.position += n
        return out

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
        trial = Trial(index, int(onset), str(label), n, self._strength(index))
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

    def _compose(self, parts: dict[str, np.ndarray], span: slice, start: int) -> np.ndarray:
        """Background parts of ``span`` plus the cued responses, composed at read."""
        n = span.stop - span.start
        x = parts["base"][:, span].copy()
        if self.paradigm == "ssvep":
            response, blocking = self._ssvep(start, n)
            x += parts["alpha"][:, span] * (1.0 - 0.5 * blocking)
            x += np.outer(self._ssvep_topo, response)
        else:
            x += self._mi_mix(parts["mu"][:, span], parts["beta"][:, span],
                              self._erd_gain(start, n))
        return x

    # -- block generation -----------------------------------------------------------
    def _generate_block(self, index: int) -> np.ndarray:
        """Block ``index`` with the schedule's responses, float32 (n_channels, BLOCK_SIZE)."""
        start = index * BLOCK_SIZE
        n = BLOCK_SIZE
        x, alpha, mi_white = self._noise(index, n)
        if self.paradigm == "ssvep":
            response, blocking = self._ssvep(start, n)
            # visual stimulation blocks the posterior alpha rhythm in part
            alpha *= 1.0 - 0.5 * blocking
        x += self._alpha_topo @ alpha
        if self.line_freq is not None:
            x += self._line(start, n)
        x *= self.noise_scale
        if self.paradigm == "ssvep":
            x += np.outer(self._ssvep_topo, response)
        else:
            x += self._mi(start, n, mi_white)
        return x.astype(np.float32)

    def _generate_parts(self, index: int) -> dict[str, np.ndarray]:
        """Block ``index``'s background, split so that cued responses can be added later."""
        start = index * BLOCK_SIZE
        base, alpha, mi_white = self._noise(index, BLOCK_SIZE)
        if self.line_freq is not None:
            base += self._line(start, BLOCK_SIZE)
        parts = {"base": base * self.noise_scale,
                 "alpha": (self._alpha_topo @ alpha) * self.noise_scale}
        if self.paradigm == "ssvep":
            return parts
        parts["base"] += parts.pop("alpha")
        parts["mu"], parts["beta"] = self._mi_rhythms(mi_white)
        return parts
