"""LSL inlets as sources: data into preallocated buffers, markers alongside.

Time correction is always on (timestamps land on this machine's ``local_clock()``);
dejittering is optional. A stream that disappears keeps the session alive: the loss is
reported, and the inlet resumes when the stream returns (liblsl recovers streams that
carry a ``source_id``; others are re-resolved by the same query). Gaps, stalls and clock
faults are found by the loop (:class:`bci.runner.Loop`), the same way for every source.

:class:`LSLInput` is the session's source (registered as ``"lsl"``): a data inlet
(:class:`LSLSource`) and an optional marker inlet (:class:`MarkerSource`).
"""

from __future__ import annotations

import ctypes
import logging
import time

import mne
import numpy as np
from bci.devices.units import volt_factor

from bci.chunk import Chunk, Markers
from bci.errors import ConfigError, StreamMismatchError, StreamNotFoundError
from bci.lslconfig import configure_lsl, get_pylsl
from bci.source import Pull, Source, SourceEvent

log = logging.getLogger(__name__)

#: Seconds of one slice of a resolve wait (the longest a signal waits to be handled).
RESOLVE_SLICE = 0.2

MNE_TYPES = {"eeg", "eog", "ecg", "emg", "seeg", "ecog", "dbs", "mag", "grad", "stim",
             "misc", "resp", "bio", "fnirs_cw_amplitude"}


def _predicate(name: str | None, type: str | None, source_id: str | None) -> str:
    parts = []
    for key, value in (("name", name), ("type", type), ("source_id", source_id)):
        if value is not None:
            if "'" in value:
                raise ConfigError(f"stream {key} must not contain a quote, found {value!r}")
            parts.append(f"{key}='{value}'")
    if not parts:
        raise ConfigError("give a stream name, type or source_id to resolve")
    return " and ".join(parts)


def describe_streams(timeout: float = 1.0) -> str:
    """A one-line-per-stream list of the LSL streams visible from here."""
    pylsl = get_pylsl()
    found = pylsl.resolve_streams(wait_time=timeout)
    if not found:
        return "no LSL streams at all"
    return "; ".join(
        f"name={s.name()!r} type={s.type()!r} source_id={s.source_id()!r} "
        f"channels={s.channel_count()} rate={s.nominal_srate():g} Hz"
        for s in found
    )


def resolve_stream(*, name: str | None = None, type: str | None = None,
                   source_id: str | None = None, timeout: float = 10.0):
    """Find one stream by name, type and/or source_id.

    Returns
    -------
    info : pylsl.StreamInfo

    Raises
    ------
    StreamNotFoundError
        After ``timeout`` seconds, listing the streams that were found instead.

    Notes
    -----
    The wait is cut into slices (see :func:`wait_for_stream`), so Ctrl-C and SIGTERM
    end it at once.
    """
    pred = _predicate(name, type, source_id)
    found = wait_for_stream(pred, timeout)
    if not found:
        raise StreamNotFoundError(
            f"no LSL stream matching {pred} within {timeout:g} s; found: "
            f"{describe_streams()}"
        )
    return found[0]


def wait_for_stream(predicate: str, timeout: float) -> list:
    """The streams matching an LSL predicate, as soon as one is seen (empty: none).

    A background resolver is polled every :data:`RESOLVE_SLICE` s rather than one
    blocking resolve: liblsl holds the calling thread for the whole of a resolve call,
    and Python runs signal handlers (Ctrl-C, SIGTERM) only between calls.
    """
    pylsl = get_pylsl()
    deadline = time.monotonic() + timeout
    resolver = pylsl.ContinuousResolver(pred=predicate)
    try:
        while True:
            found = resolver.results()
            if found or time.monotonic() >= deadline:
                return list(found)
            time.sleep(min(RESOLVE_SLICE, max(deadline - time.monotonic(), 0.0)))
    finally:
        del resolver


def info_from_lsl(stream_info, *, ch_names: list[str] | None = None) -> tuple[mne.Info, np.ndarray]:
    """An ``mne.Info`` and per-channel scale factors to volts from an LSL stream header."""
    n = stream_info.channel_count()
    labels, types, units = [], [], []
    ch = stream_info.desc().child("channels").child("channel")
    while not ch.empty() and len(labels) < n:
        labels.append(ch.child_value("label"))
        types.append(ch.child_value("type").lower())
        units.append(ch.child_value("unit").lower())
        ch = ch.next_sibling("channel")
    if ch_names:
        if len(ch_names) != n:
            raise StreamMismatchError(
                f"source.ch_names names {len(ch_names)} channels; the stream "
                f"{stream_info.name()!r} has {n}"
            )
        labels = list(ch_names)
    elif len(labels) != n or not all(labels):
        log.warning("stream %r has no channel labels; naming them Ch1…Ch%d (set "
                    "source.ch_names to name them)", stream_info.name(), n)
        labels = [f"Ch{i + 1}" for i in range(n)]
    stream_type = "eeg" if stream_info.type().lower() == "eeg" else "misc"
    types = [t if t in MNE_TYPES else stream_type for t in types] + [stream_type] * (n - len(types))
    units = units + [""] * (n - len(units))
    sfreq = stream_info.nominal_srate()
    if not sfreq > 0:
        raise StreamMismatchError(
            f"stream {stream_info.name()!r} has an irregular rate; a data source needs a "
            f"nominal sampling rate, found {sfreq}"
        )
    info = mne.create_info(labels, sfreq, types)
    scale = np.array([volt_factor(u) for u in units], np.float32)
    return info, scale


class LSLSource:
    """Pulls a data stream into preallocated buffers and hands out :class:`Chunk`s.

    Parameters
    ----------
    name, type, source_id : str | None
        How to find the stream.
    resolve_timeout : float
        Seconds to wait for the stream at :meth:`open`.
    dejitter : bool
        Smooth timestamps with liblsl's dejitter (off: gaps stay visible exactly).
    ch_names : list of str | None
        Names for a stream whose header carries no channel labels.
    max_buffered : float
        Seconds liblsl buffers for us while we are busy.
    wait : {"block", "poll"} | None
        How a pull waits for data when none is there: ``"block"`` waits inside liblsl
        for the first sample (woken by the sample itself), then takes whatever else has
        arrived; ``"poll"`` asks without blocking every ``poll_interval`` s. Default:
        :attr:`WAIT`.
    poll_interval : float | None
        Seconds between polls with ``wait="poll"`` (default: :attr:`POLL_INTERVAL`).

    Notes
    -----
    Samples and timestamps land in buffers allocated once at :meth:`open` (liblsl
    writes straight into them); the only array made per chunk is the chunk's own
    float32 ``(n_channels, n_samples)`` copy, which the chain and the recorder may keep.
    liblsl's blocking pull returns when ``max_samples`` have come or the timeout has
    passed, so a blocking pull of a whole buffer waits out its timeout; waiting for one
    sample, then draining, returns as soon as data arrive. liblsl's receiving thread
    queues a chunk sample by sample, so a pull woken by a chunk's first sample sometimes
    drains before the rest is queued (about 1.5 % of 10-sample chunks here); a live
    window ending on that sample would carry a chunk period of latency. So when a
    pull got a number of samples that is not a multiple of the stream's usual chunk
    (the median of the last pulls), it waits for the rest of the chunk, at most
    :attr:`REST_WAIT` s.
    """

    #: Default of ``wait`` (benchmarks/decision_latency.py ``--pull`` compares them).
    WAIT = "block"
    #: Default of ``poll_interval``.
    POLL_INTERVAL = 2e-4
    #: Seconds a blocking pull waits for the rest of a chunk it was woken by (see Notes).
    REST_WAIT = 5e-4
    #: Pulls whose sizes give the stream's usual chunk.
    _SIZES = 31

    def __init__(
        self, *, name: str | None = None, type: str | None = None,
        source_id: str | None = None, resolve_timeout: float = 10.0, dejitter: bool = False,
        ch_names: list[str] | None = None, max_buffered: float = 360.0,
        wait: str | None = None, poll_interval: float | None = None,
    ) -> None:
        self.query = {"name": name, "type": type, "source_id": source_id}
        _predicate(name, type, source_id)
        self.resolve_timeout = resolve_timeout
        self.dejitter = dejitter
        self.ch_names = ch_names
        self.max_buffered = max_buffered
        self.wait = self.WAIT if wait is None else wait
        if self.wait not in ("block", "poll"):
            raise ConfigError(f"wait: expected 'block' or 'poll', found {self.wait!r}")
        self.poll_interval = self.POLL_INTERVAL if poll_interval is None else poll_interval
        self.events: list[SourceEvent] = []
        self.n_samples = 0
        self._inlet = None
        self._next_retry = 0.0

    def open(self) -> mne.Info:
        """Resolve the stream and open it; return its channel metadata."""
        found = resolve_stream(**self.query, timeout=self.resolve_timeout)
        self._open_inlet(found)
        # a resolved StreamInfo lacks the header's <desc>; the inlet fetches all of it
        self.stream_info = self._inlet.info(timeout=self.resolve_timeout)
        self.info, self._scale = info_from_lsl(self.stream_info, ch_names=self.ch_names)
        self._unit_scaled = bool(np.any(self._scale != 1))
        self.sfreq = float(self.info["sfreq"])
        n = self.stream_info.channel_count()
        self._max_samples = max(64, int(self.sfreq))  # one pull takes at most 1 s of data
        dtype = self._inlet.np_dtype
        if dtype is None:
            raise StreamMismatchError(
                f"stream {self.stream_info.name()!r} carries strings; a data source needs "
                "numeric samples (is this a marker stream?)"
            )
        self._buf = np.empty((self._max_samples, n), dtype=dtype)
        self._ts = np.empty(self._max_samples, np.float64)
        self._n_channels = n
        self._row_bytes = self._buf.itemsize * n
        self._buf_addr, self._ts_addr = self._buf.ctypes.data, self._ts.ctypes.data
        self._err = ctypes.c_int()
        self._sizes = np.zeros(self._SIZES, np.int64)
        self._n_pulls, self._usual = 0, 1
        return self.info

    def _open_inlet(self, stream_info) -> None:
        pylsl = get_pylsl()
        flags = pylsl.proc_clocksync | (pylsl.proc_dejitter if self.dejitter else 0)
        self._inlet = pylsl.StreamInlet(
            stream_info, max_buflen=int(self.max_buffered), recover=True,
            processing_flags=flags,
        )
        self._inlet.open_stream(timeout=self.resolve_timeout)
        # liblsl's numeric pull, called with the preallocated buffers (see _pull_into)
        self._pull_fn = getattr(self._inlet, "do_pull_chunk", None)

    def _event(self, kind: str, now: float, **detail) -> None:
        self.events.append(SourceEvent(kind, now, detail))
        log.warning("stream %r %s %s", self.query, kind, detail or "")

    def pull(self, timeout: float = 0.05) -> Chunk | None:
        """Wait up to ``timeout`` s for new samples, then take all that are available.

        Returns
        -------
        chunk : Chunk | None
            ``data`` float32 (n_channels, n_samples) in volts; ``None`` when nothing
            arrived.
        """
        pylsl = get_pylsl()
        now = pylsl.local_clock()
        if self._inlet is None:
            self._try_reconnect(now, timeout)
            return None
        try:
            if self.wait == "block":
                n = self._pull_into(0, 0.0)
                if n == 0:
                    # liblsl wakes on the first sample; the rest of its chunk follows
                    n = self._pull_into(0, timeout, max_samples=1)
                    if n:
                        n += self._pull_into(n, 0.0)
                if n:
                    # a chunk caught while liblsl was still queueing it: take its rest
                    if rest := -n % self._usual:
                        n += self._pull_into(n, self.REST_WAIT, max_samples=rest)
                    self._note_size(n)
            else:
                deadline = now + timeout
                while not (n := self._pull_into(0, 0.0)) and pylsl.local_clock() < deadline:
                    time.sleep(self.poll_interval)
        except pylsl.util.LostError:  # pylsl 1.18 exports it from pylsl.util only
            self._event("lost", now)
            self._inlet = None
            self._next_retry = now
            return None
        if n == 0:
            return None
        data = self._buf[:n].T.astype(np.float32)
        if self._unit_scaled:
            data *= self._scale[:, None]
        self.n_samples += n
        return Chunk(data, self._ts[:n].copy())

    def _note_size(self, n: int) -> None:
        """Keep the stream's usual chunk: the median of the last pulls' sizes, renewed
        once per :attr:`_SIZES` pulls (1 until then: no waiting for a rest)."""
        self._sizes[self._n_pulls % self._SIZES] = n
        self._n_pulls += 1
        if self._n_pulls % self._SIZES == 0:
            self._usual = int(np.median(self._sizes))

    def _pull_into(self, offset: int, timeout: float, *, max_samples: int | None = None) -> int:
        """Pull up to ``max_samples`` samples into the buffers from row ``offset`` on.

        Returns the number of samples pulled; liblsl writes into the preallocated
        buffers directly (no array is made).
        """
        room = self._max_samples - offset
        if max_samples is not None:
            room = min(room, max_samples)
        if room <= 0:
            return 0
        if self._pull_fn is None:  # a pylsl without the raw binding: its public pull
            view = memoryview(self._buf.reshape(-1)).cast("B")[
                offset * self._row_bytes:]
            _, ts = self._inlet.pull_chunk(timeout=timeout, max_samples=room,
                                           dest_obj=view, as_numpy=True)
            self._ts[offset:offset + ts.shape[0]] = ts
            return int(ts.shape[0])
        err = self._err
        got = self._pull_fn(
            self._inlet.obj, ctypes.c_void_p(self._buf_addr + offset * self._row_bytes),
            ctypes.c_void_p(self._ts_addr + 8 * offset),
            ctypes.c_size_t(room * self._n_channels), ctypes.c_size_t(room),
            ctypes.c_double(timeout), ctypes.byref(err),
        )
        if err.value:
            get_pylsl().util.handle_error(err)
        return got // self._n_channels

    def _try_reconnect(self, now: float, timeout: float) -> None:
        if now < self._next_retry:
            time.sleep(min(timeout, self._next_retry - now))
            return
        self._next_retry = now + 0.5
        pylsl = get_pylsl()
        found = pylsl.resolve_bypred(_predicate(**self.query), 1, min(timeout, 0.2))
        if found:
            self._open_inlet(found[0])
            self._event("reconnected", pylsl.local_clock())

    def close(self) -> None:
        if self._inlet is not None:
            self._inlet.close_stream()
            self._inlet = None


class MarkerSource:
    """A marker stream (string or numeric) read alongside the data, without blocking.

    Parameters
    ----------
    name, type, source_id : str | None
        How to find the stream.
    resolve_timeout : float
        Seconds to wait for it at :meth:`open`.
    """

    def __init__(self, *, name: str | None = None, type: str | None = None,
                 source_id: str | None = None, resolve_timeout: float = 10.0) -> None:
        self.query = {"name": name, "type": type, "source_id": source_id}
        self.resolve_timeout = resolve_timeout
        self._inlet = None

    def open(self) -> None:
        pylsl = get_pylsl()
        info = resolve_stream(**self.query, timeout=self.resolve_timeout)
        self._inlet = pylsl.StreamInlet(info, recover=True, processing_flags=pylsl.proc_clocksync)
        self._inlet.open_stream(timeout=self.resolve_timeout)
        self._numeric = self._inlet.np_dtype is not None

    def pull(self) -> Markers:
        """Every marker that has arrived; values as strings (first channel)."""
        pylsl = get_pylsl()
        values: list[str] = []
        times: list[float] = []
        while True:  # a burst may hold more markers than one pull takes
            try:
                samples, ts = self._inlet.pull_chunk(timeout=0.0, max_samples=256,
                                                     as_numpy=False)
            except pylsl.util.LostError:  # pylsl 1.18 exports it from pylsl.util only
                break
            values += [_marker_text(s[0]) for s in samples]
            times += ts
            if len(ts) < 256:
                break
        if not times:
            return Markers()
        return Markers(np.asarray(times, np.float64), values)

    def close(self) -> None:
        if self._inlet is not None:
            self._inlet.close_stream()
            self._inlet = None


class LSLInput(Source):
    """A session's live source: an LSL data stream and, optionally, its marker stream.

    Each pull takes the data first and then the markers, so a marker sent just before
    the samples it points at comes with them. Timestamps are on this machine's
    ``local_clock()``, which is the source's clock.

    Parameters
    ----------
    name, type, source_id : str | None
        How to find the data stream.
    markers : str | None
        Name of the marker stream.
    resolve_timeout : float
        Seconds to wait for each stream at :meth:`open`.
    dejitter : bool
        Smooth the data's timestamps with liblsl's dejitter.
    ch_names : list of str | None
        Names for a stream whose header carries no channel labels.
    """

    live = True

    def __init__(self, *, name: str | None = None, type: str | None = None,
                 source_id: str | None = None, markers: str | None = None,
                 resolve_timeout: float = 10.0, dejitter: bool = False,
                 ch_names: list[str] | None = None) -> None:
        super().__init__()
        self.data = LSLSource(name=name, type=type, source_id=source_id,
                              resolve_timeout=resolve_timeout, dejitter=dejitter,
                              ch_names=ch_names)
        self.events = self.data.events
        self.marker_inlet = None if markers is None else MarkerSource(
            name=markers, resolve_timeout=resolve_timeout)

    @classmethod
    def from_config(cls, config) -> LSLInput:
        """The source a session's ``[source]`` table names (LSL scope chosen first)."""
        configure_lsl(config.scope)
        return cls(name=config.stream, type=config.type, source_id=config.source_id,
                   markers=config.markers, resolve_timeout=config.resolve_timeout,
                   dejitter=config.dejitter, ch_names=config.ch_names or None)

    @staticmethod
    def clock() -> float:
        return get_pylsl().local_clock()

    def open(self) -> mne.Info:
        self.info = self.data.open()
        self.name = self.data.stream_info.name()
        self.source_id = self.data.stream_info.source_id()
        if self.marker_inlet is not None:
            self.marker_inlet.open()
        return self.info

    @property
    def n_samples(self) -> int:
        return self.data.n_samples

    def pull(self, timeout: float) -> Pull:
        chunk = self.data.pull(timeout)
        markers = self.marker_inlet.pull() if self.marker_inlet is not None else Markers()
        return Pull(chunk, markers)

    def close(self) -> None:
        self.data.close()
        if self.marker_inlet is not None:
            self.marker_inlet.close()


def _marker_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
