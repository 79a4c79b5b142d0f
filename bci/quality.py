"""Signal quality, checked once in the loop whatever the source.

:class:`TimestampCheck` finds gaps and clock faults from the data's timestamps,
:class:`StallCheck` notices a live stream that stops delivering, and
:class:`NonFiniteGuard` (the first node of every pipeline) keeps NaN/Inf out of the
chain. Each works sample by sample, so the result does not depend on how the data were
cut into chunks: a live session and the replay of its recording flag the same samples.
"""

from __future__ import annotations

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
