"""Cutting the processed signal into the windows a decoder sees.

Two ways: :class:`SlidingWindower` (a window of ``length`` seconds every ``step``
seconds, counted in samples from the first sample of the session; offline on a grid that
chunk boundaries never move, live on the newest sample) and :class:`EpochWindower`
(``tmin`` … ``tmax`` around each marker, cut as soon as its data have arrived, whether
the marker came before or after them).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from bci.chunk import FLAG_GAP, FLAG_NONFINITE, Chunk, Markers
from bci.ringbuffer import RingBuffer


@dataclass(slots=True)
class Window:
    """The array a decoder sees, and where it came from.

    Attributes
    ----------
    data : ndarray of float32, shape (n_channels, n_times) or (n_bands, n_channels, n_times)
        A copy, safe to keep.
    last_timestamp : float
        Timestamp of the last sample in the window.
    stop : int
        Absolute index (from the session's first sample) one past the last sample.
    marker : tuple of (float, str) | None
        The marker that opened an epoch, or for sliding windows the latest marker at or
        before the window's last sample.
    label : str | None
        The true class named by that marker through the session's event map, if any.
    timings : dict of str to float
        Clock readings the latency accounting fills in as the window moves on.
    """

    data: np.ndarray
    last_timestamp: float
    stop: int
    marker: tuple[float, str] | None = None
    label: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class WindowCounts:
    """What the windower produced and what it skipped, and why."""

    windows: int = 0
    skipped_nonfinite: int = 0
    skipped_gap: int = 0
    markers_late: int = 0
    markers_ignored: int = 0

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


class _Windower:
    """Shared buffering: processed samples, their timestamps and flags."""

    def __init__(
        self, *, events: Mapping[str, str] | None = None, flag_margin: float = 0.0,
        history: float = 10.0, decimation: int = 1,
    ) -> None:
        if not isinstance(decimation, int) or decimation < 1:
            raise ValueError(f"decimation must be an integer ≥ 1, found {decimation!r}")
        self.decimation = decimation
        self.events = None if events is None else {str(k): str(v) for k, v in events.items()}
        self.flag_margin = float(flag_margin)
        self.history = float(history)
        self.counts = WindowCounts()
        self.sfreq_: float | None = None
        self._markers_t: list[float] = []
        self._markers_v: list[str] = []

    def n_times(self) -> int:
        """Samples in a window, at the output rate (after decimation)."""
        raise NotImplementedError

    def span(self) -> int:
        """Input samples a window spans: its last sample and every ``decimation``-th before."""
        return (self.n_times() - 1) * self.decimation + 1

    def setup(self, sfreq: float, sample_shape: tuple[int, ...]) -> None:
        """Allocate buffers for samples of ``sample_shape`` at ``sfreq`` Hz."""
        self.sfreq_ = float(sfreq)
        self._margin = round(self.flag_margin * self.sfreq_)
        capacity = self.span() + self._margin + round(self.history * self.sfreq_) + 1
        self._data = RingBuffer(sample_shape, capacity, dtype=np.float32)
        self._times = RingBuffer((), capacity, dtype=np.float64)
        self._flags = RingBuffer((), capacity, dtype=np.uint8)
        self.counts = WindowCounts()

    def _pieces(self, chunk: Chunk):
        """Split a chunk longer than the history into pieces the buffer can hold."""
        step = max(1, self._data.capacity - self.span() - self._margin)
        if chunk.n_samples <= step:
            yield chunk
            return
        for i in range(0, chunk.n_samples, step):
            f = None if chunk.flags is None else chunk.flags[i : i + step]
            yield Chunk(chunk.data[..., i : i + step], chunk.timestamps[i : i + step], f)

    def _append(self, chunk: Chunk) -> None:
        self._data.write(chunk.data)
        self._times.write(chunk.timestamps)
        self._flags.write(chunk.sample_flags())

    def add_markers(self, markers: Markers) -> None:
        """Take markers (any order relative to their data); they are sorted by time."""
        for t, v in markers:
            i = bisect.bisect_right(self._markers_t, t)
            self._markers_t.insert(i, t)
            self._markers_v.insert(i, v)

    def _label(self, value: str) -> str | None:
        if self.events is None:
            return value
        return self.events.get(value)

    def _window(self, start: int, stop: int, marker: tuple[float, str] | None) -> Window | None:
        """Cut samples ``start:stop``, or count why not and return None."""
        flags = self._flags.get(max(start - self._margin, self._flags.first_index), stop)
        if flags.any():
            if (flags & FLAG_NONFINITE).any():
                self.counts.skipped_nonfinite += 1
            elif (flags & FLAG_GAP).any():
                self.counts.skipped_gap += 1
            return None
        self.counts.windows += 1
        label = None if marker is None else self._label(marker[1])
        data = self._data.get(start, stop)
        if self.decimation > 1:
            data = data[..., :: self.decimation]
        last_time = float(self._times.get(stop - 1, stop)[0])
        return Window(data.copy(), last_time, stop, marker, label)

    def reset(self) -> None:
        if self.sfreq_ is not None:
            self._data.reset()
            self._times.reset()
            self._flags.reset()
        self._markers_t.clear()
        self._markers_v.clear()
        self.counts = WindowCounts()


#: Where sliding windows end: on a fixed grid of samples, or on the newest sample.
ALIGNS = ("grid", "newest")


class SlidingWindower(_Windower):
    """A window of ``length`` s every ``step`` s.

    Windows fall due at the samples whose index, counted from the session's first sample,
    is a multiple of the step (the first one that holds a whole window, then every step).
    Where a due window ends depends on ``align``, or on ``stops`` when given.

    Parameters
    ----------
    length, step : float
        Seconds; converted to samples with ``round(x * sfreq)``.
    events : mapping of str to str | None
        Marker value → true label, used to label windows with the latest marker. Without
        it sliding windows carry no label: a window long after a cue (rest, the next
        trial's preparation) is not that cue's trial, and scoring it as one would print
        an accuracy that means nothing.
    flag_margin : float
        Seconds before a window in which a flagged sample (NaN/Inf, gap) also skips it,
        to keep filter transients out.
    decimation : int
        Keep every ``decimation``-th sample counting back from the window's last one, so
        the newest sample is always in the window (the chain has already low-passed).
        Windows hold ``round(length · sfreq / decimation)`` samples; ``step`` is counted
        at the input rate.
    align : {"grid", "newest"}
        ``"grid"``: a due window ends on its grid sample, whatever the chunking, so any
        replay cuts the same windows (offline work: replay, training, evaluation).
        ``"newest"``: a due window ends on the newest sample of the chunk that made it
        due, so a live decision never waits for the rest of a chunk; when one chunk makes
        several windows due they end ``step`` apart, the last on the newest sample. The
        number of windows is the grid's; where they end depends on the chunking, which is
        why a live session records them (:attr:`due_log`).
    stops : array-like of int | None
        Cut exactly these windows instead, each ending before the sample of that index
        (a replay reproducing a live session's recorded stops); ``align`` is then unused.
    """

    def __init__(
        self, *, length: float, step: float, events: Mapping[str, str] | None = None,
        flag_margin: float = 0.0, decimation: int = 1, align: str = "grid",
        stops: np.ndarray | list[int] | None = None,
    ) -> None:
        super().__init__(events=events, flag_margin=flag_margin, history=1.0,
                         decimation=decimation)
        if not length > 0 or not step > 0:
            raise ValueError(f"length and step must be positive, found {length}, {step}")
        if align not in ALIGNS:
            raise ValueError(f"align must be one of {ALIGNS}, found {align!r}")
        self.length, self.step = float(length), float(step)
        self.align = align
        self.stops = None if stops is None else np.unique(np.asarray(stops, np.int64))
        #: Set to a list to collect ``(stop, last timestamp)`` of every due window, cut
        #: or skipped (a live session records them; see :attr:`stops`).
        self.due_log: list[tuple[int, float]] | None = None

    def n_times(self) -> int:
        return round(self.length * self.sfreq_ / self.decimation)

    def _label(self, value: str) -> str | None:
        return None if self.events is None else self.events.get(value)

    def setup(self, sfreq: float, sample_shape: tuple[int, ...]) -> None:
        super().setup(sfreq, sample_shape)
        self._n_step = max(1, round(self.step * self.sfreq_))
        self._next_stop = self._first_stop()
        self._i_stop = 0
        if self.stops is not None and self.stops.size and self.stops[0] < self.span():
            raise ValueError(f"stops: a window of {self.span()} samples cannot end before "
                             f"sample {self.span()}, found a stop at {int(self.stops[0])}")

    def _first_stop(self) -> int:
        # windows end on multiples of the step: with an amplifier whose chunks divide the
        # step, every window ends on the newest sample of a chunk
        return -(-self.span() // self._n_step) * self._n_step

    def push(self, chunk: Chunk) -> list[Window]:
        """Buffer a processed chunk and return the windows it completes."""
        out: list[Window] = []
        for piece in self._pieces(chunk):
            out += self._push(piece)
        return out

    def _due(self, written: int) -> list[int]:
        """Where the windows that ``written`` samples make due end."""
        if self.stops is not None:
            i = self._i_stop
            self._i_stop = int(np.searchsorted(self.stops, written, side="right"))
            return self.stops[i : self._i_stop].tolist()
        grid = []
        while self._next_stop <= written:
            grid.append(self._next_stop)
            self._next_stop += self._n_step
        if self.align == "newest":
            return [written - k * self._n_step for k in range(len(grid) - 1, -1, -1)]
        return grid

    def _push(self, chunk: Chunk) -> list[Window]:
        self._append(chunk)
        out = []
        n_len, written = self.span(), self._data.n_written
        for stop in self._due(written):
            last_t = float(self._times.get(stop - 1, stop)[0])
            if self.due_log is not None:
                self.due_log.append((stop, last_t))
            i = bisect.bisect_right(self._markers_t, last_t)
            marker = (self._markers_t[i - 1], self._markers_v[i - 1]) if i else None
            window = self._window(stop - n_len, stop, marker)
            if window is not None:
                out.append(window)
        return out

    def reset(self) -> None:
        super().reset()
        if self.sfreq_ is not None:
            self._next_stop = self._first_stop()
            self._i_stop = 0


class EpochWindower(_Windower):
    """``tmin`` … ``tmax`` seconds around each marker named in ``events``.

    The marker's sample is the first sample at or after the marker's timestamp (less half
    a sample period, so a marker stamped with its sample's own time lands on it).

    Parameters
    ----------
    tmin, tmax : float
        Seconds relative to the marker; the epoch has ``round((tmax - tmin) * sfreq)``
        samples.
    events : mapping of str to str | None
        Marker value → true label. Only markers named here open an epoch; ``None`` opens
        one for every marker.
    flag_margin, decimation
        See :class:`SlidingWindower`.
    history : float
        Seconds of data kept for markers that arrive after their data.
    """

    def __init__(
        self, *, tmin: float, tmax: float, events: Mapping[str, str] | None = None,
        flag_margin: float = 0.0, history: float = 10.0, decimation: int = 1,
    ) -> None:
        super().__init__(events=events, flag_margin=flag_margin,
                         history=history + max(0, -tmin), decimation=decimation)
        if not tmax > tmin:
            raise ValueError(f"tmax must be greater than tmin, found tmin={tmin}, tmax={tmax}")
        self.tmin, self.tmax = float(tmin), float(tmax)
        self._pending: list[tuple[float, str]] = []

    def n_times(self) -> int:
        return round((self.tmax - self.tmin) * self.sfreq_ / self.decimation)

    def add_markers(self, markers: Markers) -> None:
        super().add_markers(markers)
        for t, v in markers:
            if self._label(v) is None:
                self.counts.markers_ignored += 1
            else:
                self._pending.append((t, v))
        self._pending.sort()

    def push(self, chunk: Chunk | None) -> list[Window]:
        """Buffer a processed chunk (or none, after new markers) and cut due epochs."""
        if chunk is None or not chunk.n_samples:
            return self._cut()
        out: list[Window] = []
        for piece in self._pieces(chunk):
            self._append(piece)
            out += self._cut()
        return out

    def _cut(self) -> list[Window]:
        out, waiting = [], []
        first, written = self._times.first_index, self._times.n_written
        times = self._times.get(first, written)
        half = 0.5 / self.sfreq_
        for t, v in self._pending:
            i = int(np.searchsorted(times, t - half))
            if i == 0 and times.shape[0] and times[0] - half > t:
                # its sample precedes everything held: evicted, or before the session began
                self.counts.markers_late += 1
                continue
            if i >= times.shape[0]:
                waiting.append((t, v))  # its sample has not arrived yet
                continue
            start = first + i + round(self.tmin * self.sfreq_)
            stop = start + self.span()
            if start < first:
                self.counts.markers_late += 1
            elif stop > written:
                waiting.append((t, v))
            else:
                window = self._window(start, stop, (t, v))
                if window is not None:
                    out.append(window)
        self._pending = waiting
        return out

    def reset(self) -> None:
        super().reset()
        self._pending.clear()
