"""Signal quality, checked once in the loop whatever the source.

:class:`TimestampCheck` finds gaps and clock faults from the data's timestamps,
:class:`StallCheck` notices a live stream that stops delivering, and
:class:`NonFiniteGuard` (the first node of every pipeline) keeps NaN/Inf out of the
chain; :class:`RateCheck` and :class:`AmplitudeCheck` look once at the first seconds for
a declared rate the timestamps contradict and for microvolts sent as volts. Each works
sample by sample, so the result does not depend on how the data were cut into chunks: a
live session and the replay of its recording flag the same samples.
"""

from __future__ import annotations

import itertools

import mne
import numpy as np

from bci.chain import Node
from bci.chunk import FLAG_GAP, FLAG_NONFINITE, Chunk
from bci.source import SourceEvent


class NonFiniteGuard(Node):
    """Flag samples holding NaN or Inf and replace those values by zero.

    Zeroing keeps every downstream filter's state finite (one NaN would otherwise poison
    an IIR filter for good); the flag makes the windower skip, and count, every window
    that touches the sample, so the zeros never reach a decoder as if they were data.
    """

    kind = "nonfinite_guard"

    def __init__(self) -> None:
        self.n_flagged_ = 0

    def process(self, chunk: Chunk) -> Chunk:
        data = chunk.data
        finite = np.isfinite(data)
        if finite.all():
            return chunk
        bad = ~finite.reshape(-1, data.shape[-1]).all(axis=0)
        self.n_flagged_ += int(bad.sum())
        flags = chunk.sample_flags() | np.where(bad, FLAG_NONFINITE, np.uint8(0))
        return Chunk(np.where(finite, data, np.float32(0)), chunk.timestamps, flags)

    def reset(self) -> None:
        self.n_flagged_ = 0


class TimestampCheck:
    """Flag the sample after a gap: timestamps too far apart, or not increasing.

    Parameters
    ----------
    sfreq : float
        Nominal sampling rate.
    gap_tolerance : float
        Seconds beyond one sample period that consecutive timestamps may be apart.
    """

    def __init__(self, sfreq: float, *, gap_tolerance: float) -> None:
        if not sfreq > 0:
            raise ValueError(f"a gap check needs a positive sampling rate, found {sfreq}")
        self.sfreq = float(sfreq)
        self.threshold = 1.0 / self.sfreq + gap_tolerance
        self.last: float | None = None

    def check(self, chunk: Chunk, now: float) -> tuple[Chunk, list[SourceEvent]]:
        """The chunk with :data:`FLAG_GAP` on each sample a gap precedes, and the gaps.

        Each event says where (``at``: the timestamp after the gap), how long
        (``seconds`` between the two samples, negative when time went backwards) and
        ``missing_samples`` at the nominal rate.
        """
        ts = chunk.timestamps
        prev, self.last = self.last, float(ts[-1])
        # the usual chunk, regular and after the previous one, in three reductions (a NaN
        # fails every comparison and takes the full check below)
        steps = np.diff(ts)
        if ((prev is None or 0 < ts[0] - prev <= self.threshold)
                and (not steps.size or (steps.min() > 0 and steps.max() <= self.threshold))):
            return chunk, []
        # the very first sample follows no gap: its difference is -inf, left out below
        dts = np.diff(ts, prepend=np.inf if prev is None else prev)
        bad = ((dts > self.threshold) | (dts <= 0)) & np.isfinite(dts)
        if not bad.any():
            return chunk, []
        events = [
            SourceEvent("gap", now, {"at": float(ts[i]), "seconds": float(dts[i]),
                                     "missing_samples": max(0, round(dts[i] * self.sfreq) - 1)})
            for i in np.flatnonzero(bad)
        ]
        flags = chunk.sample_flags() | np.where(bad, FLAG_GAP, np.uint8(0))
        return Chunk(chunk.data, ts, flags), events


class StallCheck:
    """A live stream that delivered nothing for ``timeout`` s is stalled until it resumes.

    Parameters
    ----------
    timeout : float
        Seconds without samples, on the source's clock, counted from the last data.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = float(timeout)
        self.stalled = False
        self._last_data: float | None = None
        self._last_timestamp: float | None = None

    def data(self, now: float, last_timestamp: float) -> SourceEvent | None:
        """Samples arrived at ``now``; the ``resumed`` event if the stream was stalled."""
        self._last_data, self._last_timestamp = now, last_timestamp
        if self.stalled:
            self.stalled = False
            return SourceEvent("resumed", now)
        return None

    def idle(self, now: float) -> SourceEvent | None:
        """Nothing arrived by ``now``; the ``stalled`` event when the timeout has passed."""
        if (not self.stalled and self._last_data is not None
                and now - self._last_data > self.timeout):
            self.stalled = True
            return SourceEvent("stalled", now, {"last_timestamp": self._last_timestamp})
        return None


class ClockCheck:
    """Live timestamps must be on the source's clock: a sample cannot come from the future.

    A stream stamped on another clock (Unix time, a device's own counter) would put
    every latency and every marker alignment off; the first chunk stamped more than
    ``tolerance`` s after its arrival is reported as a ``clock`` event, once, and again
    only after the stamps have come back into line.
    """

    def __init__(self, tolerance: float = 0.25) -> None:
        self.tolerance = float(tolerance)
        self.faulty = False

    def check(self, last_timestamp: float, now: float) -> SourceEvent | None:
        ahead = last_timestamp - now
        if ahead > self.tolerance:
            if not self.faulty:
                self.faulty = True
                return SourceEvent("clock", now, {"ahead_s": ahead})
        else:
            self.faulty = False
        return None


class RateCheck:
    """Measure the sampling rate over the first ``span`` s of timestamps, once.

    A stream declared at 256 Hz that sends 250 Hz puts every window's duration, every
    filter's cut-off and every marker alignment off by the same 2.4 %. The measured rate
    is the number of sample intervals from the first sample to the first one stamped
    ``span`` s or more after it, divided by that time: it depends on the timestamps
    alone, so a live session and the replay of its recording measure the same rate.

    Parameters
    ----------
    sfreq : float
        Declared sampling rate.
    span : float
        Seconds of data to measure over.
    tolerance : float
        Relative difference above which a ``rate`` event is returned (default 1 %).
    """

    def __init__(self, sfreq: float, *, span: float = 5.0, tolerance: float = 0.01,
                 gap_threshold: float | None = None) -> None:
        self.sfreq, self.span, self.tolerance = float(sfreq), float(span), float(tolerance)
        self.gap_threshold = 1.0 / self.sfreq + 0.02 if gap_threshold is None else gap_threshold
        self.measured: float | None = None
        self._first: float | None = None
        self._last: float | None = None
        self._seen = 0

    def check(self, timestamps: np.ndarray, now: float) -> SourceEvent | None:
        """Feed a chunk's timestamps; the ``rate`` event when the measure is off.

        A gap (see :class:`TimestampCheck`) restarts the measure after it: an outage is
        reported as a gap, not as a slow clock.
        """
        if self.measured is not None or not len(timestamps):
            return None
        ts = np.asarray(timestamps, np.float64)
        dts = np.diff(ts, prepend=ts[0] if self._last is None else self._last)
        self._last = float(ts[-1])
        bad = np.flatnonzero((dts > self.gap_threshold) | (dts < 0))
        bounds = [0, *bad.tolist(), ts.size]
        for a, b in itertools.pairwise(bounds):
            if a == b:
                continue
            if self._first is None or a > 0 or (bad.size and bad[0] == 0):
                self._first, self._seen = float(ts[a]), 0
            seg = ts[a:b]
            past = np.flatnonzero(seg - self._first >= self.span)
            if past.size:
                return self._measure(self._seen + int(past[0]), float(seg[past[0]]), now)
            self._seen += seg.size
        return None

    def _measure(self, k: int, t: float, now: float) -> SourceEvent | None:
        # k intervals from the first sample to the one at t
        self.measured = k / (t - self._first)
        if abs(self.measured - self.sfreq) <= self.tolerance * self.sfreq:
            return None
        return SourceEvent("rate", now, {
            "declared_hz": self.sfreq, "measured_hz": round(self.measured, 3),
            "over_s": self.span,
            "message": f"the stream declares {self.sfreq:g} Hz but its timestamps give "
                       f"{self.measured:.2f} Hz over the first {self.span:g} s",
        })


#: Standard deviation (V) above which EEG-like data are likely in µV, not V.
MAX_STD_V = 1e-2
#: Peak-to-peak (V) above which EEG-like data are likely in µV, not V.
MAX_PTP_V = 1.0


class AmplitudeCheck:
    """Look at the first ``span`` s of EEG/sEEG/ECoG channels for a unit mix-up, once.

    The runtime works in volts: scalp EEG has a standard deviation around 1e-5 V. Data
    whose median channel has a standard deviation above :data:`MAX_STD_V` or a
    peak-to-peak above :data:`MAX_PTP_V` are almost surely microvolts sent as volts, a
    mistake a model trained in volts would otherwise take silently. The first
    ``round(span · sfreq)`` samples are used, so the check depends on the data alone.

    Parameters
    ----------
    picks : array of int
        Rows to check (EEG-like channels); none: the check is off.
    n_samples : int
        Samples to look at.
    """

    def __init__(self, picks: np.ndarray, *, n_samples: int) -> None:
        self.picks = np.asarray(picks, int)
        self.n_samples = int(n_samples)
        self.done = not self.picks.size or self.n_samples < 2
        self._parts: list[np.ndarray] = []
        self._seen = 0

    @classmethod
    def for_info(cls, info: mne.Info, *, span: float = 5.0) -> AmplitudeCheck:
        """The check of a stream's EEG, sEEG and ECoG channels over its first ``span`` s."""
        picks = mne.pick_types(info, eeg=True, seeg=True, ecog=True, exclude=[])
        return cls(picks, n_samples=round(span * float(info["sfreq"])))

    def check(self, data: np.ndarray, now: float) -> SourceEvent | None:
        """Feed a chunk's data ``(n_channels, n)``; the ``amplitude`` event when suspect."""
        if self.done:
            return None
        take = min(self.n_samples - self._seen, data.shape[-1])
        self._parts.append(np.asarray(data[self.picks, :take], np.float64))
        self._seen += take
        if self._seen < self.n_samples:
            return None
        self.done = True
        x = np.concatenate(self._parts, axis=-1)
        self._parts = []
        std = float(np.median(np.nanstd(x, axis=-1)))
        ptp = float(np.median(np.nanmax(x, axis=-1) - np.nanmin(x, axis=-1)))
        if not (std > MAX_STD_V or ptp > MAX_PTP_V):
            return None
        return SourceEvent("amplitude", now, {
            "median_std": std, "median_ptp": ptp,
            "message": f"EEG channels have a median standard deviation of {std:.3g} and a "
                       f"peak-to-peak of {ptp:.3g} in volts over the first "
                       f"{self.n_samples} samples: likely microvolts sent as volts (the "
                       "runtime and its models work in volts; scale by 1e-6)",
        })
