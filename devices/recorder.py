"""Record LSL streams to one XDF file (``bci record``), and a session's own recording.

:class:`Recorder` opens an inlet per stream with clock synchronisation on, so every
timestamp in the file is already on this machine's LSL clock (the headers say so in
``desc/bci/time_corrected`` and no clock offsets are written). Each inlet is polled
without blocking by its own thread, numeric streams straight into preallocated arrays,
and another thread syncs the file to disk every ``flush_interval`` seconds: a recorder
killed outright loses at most the samples of the last interval (plus what was still in
flight).

A stream that vanishes does not stop the recording. Streams with a ``source_id`` are
recovered by liblsl when they come back; the others are looked for again by name, type
and shape and resumed into the same XDF stream. Each of these events is
logged, reported to ``on_event`` and written into the stream's footer.

:class:`SessionRecorder` is the same file format and durability for the runtime, which
writes what it received and decided without LSL inlets.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from bci.devices.lsl_source import describe_streams, wait_for_stream
from bci.devices.xdf import XDFWriter

from bci.errors import ConfigError, StreamNotFoundError
from bci.lslconfig import get_pylsl

log = logging.getLogger(__name__)

# liblsl's channel_format codes (pylsl.cf_*) and their XDF names
_FORMAT_NAMES = {1: "float32", 2: "double64", 3: "string", 4: "int32", 5: "int16",
                 6: "int8", 7: "int64"}
ALL_WAIT = 1.0  # seconds to listen for streams when recording all of them


@dataclass(frozen=True, slots=True)
class StreamQuery:
    """Which streams to record: every stream matching all the given fields."""

    name: str | None = None
    type: str | None = None
    source_id: str | None = None

    def __post_init__(self) -> None:
        fields = {"name": self.name, "type": self.type, "source_id": self.source_id}
        if all(v is None for v in fields.values()):
            raise ConfigError("a stream query needs a name, type or source_id; found none")
        for key, value in fields.items():
            if value is not None and "'" in value:
                raise ConfigError(f"stream {key} must not contain a quote, found {value!r}")

    def predicate(self) -> str:
        """The query as an LSL (XPath) predicate."""
        return " and ".join(f"{k}='{v}'" for k, v in (
            ("name", self.name), ("type", self.type), ("source_id", self.source_id))
            if v is not None)

    def __str__(self) -> str:
        return self.predicate().replace(" and ", ", ")


@dataclass(slots=True)
class RecorderEvent:
    """Something that happened to a stream: ``stalled``, ``resumed``, ``lost``,
    ``reconnected``. ``time`` is on the LSL clock."""

    time: float
    stream: str
    kind: str
    detail: str = ""

    def __str__(self) -> str:
        return f"stream {self.stream!r} {self.kind}" + (f": {self.detail}" if self.detail
                                                         else "")


@dataclass(slots=True, eq=False)
class RecordedStream:
    """One stream being recorded, and how it is doing.

    Attributes
    ----------
    stream_id : int
        Its number in the XDF file.
    name, type, source_id, channel_format : str
    channel_count : int
    nominal_srate : float
    n_samples : int
        Samples written so far.
    status : str
        ``recording``, ``stalled`` (no samples for a while) or ``lost`` (gone, being
        looked for).
    """

    stream_id: int
    name: str
    type: str
    source_id: str
    channel_count: int
    channel_format: str
    nominal_srate: float
    n_samples: int = 0
    status: str = "recording"
    events: list[RecorderEvent] = field(default_factory=list)
    _inlet: object = None
    _buffer: np.ndarray | None = None
    _last_data: float = 0.0
    _resolver: object = None

    def describe(self) -> str:
        rate = f"{self.nominal_srate:g} Hz" if self.nominal_srate > 0 else "irregular rate"
        source = f", source_id {self.source_id!r}" if self.source_id else ""
        return (f"[{self.stream_id}] {self.name!r} (type {self.type!r}, "
                f"{self.channel_count} x {self.channel_format}, {rate}{source})")


class Recorder:
    """Records LSL streams into one XDF file from background threads.

    Each inlet has its own pulling thread, because liblsl can block inside a
    non-blocking pull (for its first clock offset on a new inlet, about 0.6 s here,
    and while it reconnects a recovered stream, over a second) and one stream must not
    hold up the others; a separate thread syncs the file to disk on schedule.

    Parameters
    ----------
    path : str | Path
        The XDF file to write.
    streams : sequence of pylsl.StreamInfo | StreamQuery | str
        What to record: resolved streams, queries (every stream that matches is
        recorded) or stream names.
    flush_interval : float
        Seconds between syncs of the file to disk.
    resolve_timeout : float
        Seconds to wait for queried streams (and to open each inlet).
    poll_interval : float
        Seconds between polls of an inlet.
    stall_timeout : float
        A regularly sampled stream that sends nothing for this long is reported stalled.
    max_buffered : float
        Seconds of data liblsl keeps for each inlet while the recorder is busy.
    overwrite : bool
        Replace an existing file; ``False`` raises :class:`FileExistsError`.
    skip_unavailable : bool
        Record the others when a stream that was found cannot be opened (it vanished
        meanwhile); by default that is an error.
    on_event : callable | None
        Called (from a recording thread) with every :class:`RecorderEvent`; without
        it, events are logged as warnings.
    on_error : callable | None
        Called once with the error that stopped the recording (a write that failed:
        disk full, unwritable; the file keeps every whole chunk written before);
        without it, the error is logged. It is in :attr:`error` either way.
    """

    def __init__(
        self, path: str | Path, streams: Sequence, *, flush_interval: float = 0.5,
        resolve_timeout: float = 5.0, poll_interval: float = 0.015,
        stall_timeout: float = 2.0, max_buffered: float = 360.0, overwrite: bool = True,
        skip_unavailable: bool = False,
        on_event: Callable[[RecorderEvent], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.on_error = on_error
        self.skip_unavailable = skip_unavailable
        self.requested = [StreamQuery(name=s) if isinstance(s, str) else s for s in streams]
        if not self.requested:
            raise ConfigError("expected at least one stream or query to record, found none")
        self.flush_interval = float(flush_interval)
        self.resolve_timeout = float(resolve_timeout)
        self.poll_interval = float(poll_interval)
        self.stall_timeout = float(stall_timeout)
        self.max_buffered = float(max_buffered)
        self.overwrite = overwrite
        self.on_event = on_event
        self.streams: list[RecordedStream] = []
        self.events: list[RecorderEvent] = []
        self.error: BaseException | None = None
        self._writer: XDFWriter | None = None
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # --------------------------------------------------------------------- lifecycle

    def start(self) -> list[RecordedStream]:
        """Resolve the streams, open the file and start recording.

        Raises
        ------
        StreamNotFoundError
            When a query matched nothing within ``resolve_timeout`` (the message lists
            the streams found on this machine), or a stream could not be opened.
        """
        infos = self._resolve()
        # liblsl takes ~0.6 s for an inlet's first clock offset: open them side by side
        with ThreadPoolExecutor(max_workers=min(8, len(infos))) as pool:
            opening = [pool.submit(self._inlet, info) for info in infos]
        inlets = []
        for info, future in zip(infos, opening, strict=True):
            err = future.exception()
            if err is None:
                inlets.append(future.result())
                continue
            message = (f"stream {info.name()!r} (source_id {info.source_id()!r}) was found "
                       f"but could not be opened within {self.resolve_timeout:g} s: {err}")
            if self.skip_unavailable:
                log.warning("%s; recording the others", message)
                continue
            for f in opening:
                if f.exception() is None:
                    f.result().close_stream()
            raise StreamNotFoundError(message)
        if not inlets:
            raise StreamNotFoundError("none of the streams found could be opened")
        self._writer = XDFWriter(self.path, overwrite=self.overwrite)
        try:
            for stream_id, inlet in enumerate(inlets, start=1):
                self.streams.append(self._open(stream_id, inlet))
        except BaseException:
            for inlet in inlets:
                inlet.close_stream()
            self._writer.close()
            raise
        for stream in self.streams:
            self._threads.append(threading.Thread(
                target=self._pull_loop, args=(stream,), daemon=True,
                name=_thread_name(stream)))
        self._threads.append(threading.Thread(target=self._flush_loop, daemon=True,
                                              name="bci-recorder-sync"))
        for thread in self._threads:
            thread.start()
        return self.streams

    def stop(self, timeout: float = 3.0) -> None:
        """Record what has arrived, write the footers and close the file.

        Parameters
        ----------
        timeout : float
            Seconds to wait for the recording threads; one still stuck inside liblsl
            (reconnecting a stream) is left behind and its late samples are dropped.
        """
        if self._writer is None or self._writer.closed:
            return
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        try:
            with self._lock:
                for stream in self.streams:
                    extra = None
                    if stream.events:
                        extra = {"recorder_events": {"event": [
                            {"time": e.time, "kind": e.kind, "detail": e.detail}
                            for e in stream.events]}}
                    self._writer.write_footer(stream.stream_id, extra=extra)
                self._writer.close()
        except OSError as err:
            # the file keeps its whole chunks (the writer cut a partial one off)
            self._fail(err)
        finally:
            if not self._writer.closed:
                with contextlib.suppress(OSError):
                    self._writer.close()
            self._close_inlets()

    close = stop

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def __enter__(self) -> Recorder:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------- resolution

    def _resolve(self) -> list:
        found: dict[str, object] = {}  # by uid: a stream matched twice is recorded once
        missing: list[StreamQuery] = []
        deadline = time.monotonic() + self.resolve_timeout
        for item in self.requested:
            if isinstance(item, StreamQuery):
                wait = max(deadline - time.monotonic(), 1.0)
                matches = wait_for_stream(item.predicate(), wait)  # Ctrl-C ends it at once
                if not matches:
                    missing.append(item)
                for info in matches:
                    found.setdefault(info.uid(), info)
            elif hasattr(item, "uid"):
                found.setdefault(item.uid(), item)
            else:
                raise TypeError(f"expected a pylsl.StreamInfo, StreamQuery or stream name "
                                f"to record, found {type(item).__name__}")
        if missing:
            wanted = "; ".join(str(q) for q in missing)
            raise StreamNotFoundError(
                f"no LSL stream matching {wanted} within {self.resolve_timeout:g} s; "
                f"found on this machine: {describe_streams()}")
        return list(found.values())

    def _open(self, stream_id: int, inlet) -> RecordedStream:
        pylsl = get_pylsl()
        full = inlet.info(timeout=self.resolve_timeout)  # the resolved info lacks <desc>
        stream = RecordedStream(
            stream_id=stream_id, name=full.name(), type=full.type(),
            source_id=full.source_id(), channel_count=full.channel_count(),
            channel_format=_FORMAT_NAMES.get(full.channel_format(), "?"),
            nominal_srate=full.nominal_srate(), _inlet=inlet,
        )
        if inlet.np_dtype is not None:
            rows = max(1024, int(np.ceil(full.nominal_srate())))
            stream._buffer = np.empty((rows, stream.channel_count), dtype=inlet.np_dtype)
        root = ET.fromstring(full.as_xml())
        desc = root.find("desc")
        if desc is None:
            desc = ET.SubElement(root, "desc")
        bci = ET.SubElement(desc, "bci")
        # timestamps are corrected by the inlet (proc_clocksync): readers must not
        # apply clock offsets again, and there are none in the file
        ET.SubElement(bci, "time_corrected").text = "1"
        ET.SubElement(bci, "recorded_at").text = repr(pylsl.local_clock())
        with self._lock:
            self._writer.add_stream_header(stream_id, root)
        return stream

    def _inlet(self, info):
        pylsl = get_pylsl()
        inlet = pylsl.StreamInlet(info, max_buflen=max(1, round(self.max_buffered)),
                                  recover=True, processing_flags=pylsl.proc_clocksync)
        inlet.open_stream(timeout=self.resolve_timeout)
        # the first clock offset is measured here rather than inside the first pull
        inlet.time_correction(timeout=self.resolve_timeout)
        return inlet

    # -------------------------------------------------------------------- recording

    def _pull_loop(self, stream: RecordedStream) -> None:
        stream._last_data = get_pylsl().local_clock()
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                self._pull(stream)
                self._stop.wait(max(0.0, self.poll_interval - (time.monotonic() - started)))
            self._pull(stream)  # what arrived before the stop
        except BaseException as err:  # surfaced through .error; the file stays valid
            self._fail(err)

    def _flush_loop(self) -> None:
        try:
            while not self._stop.wait(self.flush_interval):
                with self._lock:
                    if not self._writer.closed:
                        self._writer.flush(fsync=True)
        except BaseException as err:
            self._fail(err)

    def _fail(self, err: BaseException) -> None:
        with self._lock:
            first = self.error is None
            if first:
                self.error = err
        self._stop.set()
        if not first:
            return
        if self.on_error is not None:
            self.on_error(err)
        elif isinstance(err, OSError):  # disk full, unwritable: one line, no traceback
            log.error("recording to %s failed: %s", self.path, err.strerror or err)
        else:
            log.error("recording to %s failed: %s", self.path, err, exc_info=err)

    def _pull(self, stream: RecordedStream) -> None:
        pylsl = get_pylsl()
        if stream._inlet is None:
            self._reconnect(stream)
            return
        n_total = 0
        try:
            while True:
                if stream._buffer is not None:
                    _, ts = stream._inlet.pull_chunk(
                        timeout=0.0, max_samples=stream._buffer.shape[0],
                        dest_obj=stream._buffer, as_numpy=True)
                    n = ts.shape[0]
                    if n:
                        self._write(stream, stream._buffer[:n].T, ts)
                    more = n == stream._buffer.shape[0]
                else:
                    # raw bytes: written exactly as sent, whatever their encoding
                    values, ts = stream._inlet.pull_chunk(timeout=0.0, max_samples=1024,
                                                          as_numpy=True)
                    n = ts.shape[0]
                    if n:
                        self._write(stream, values.tolist(), ts)
                    more = n == 1024
                n_total += n
                stream.n_samples += n
                if not more:
                    break
        except pylsl.util.LostError:  # pylsl 1.18 exports it from pylsl.util only
            # liblsl drops what was still buffered for a stream it cannot recover
            stream._inlet = None
            stream.status = "lost"
            self._event(stream, "lost", "no source_id to recover it by; looking for a "
                        "stream of the same name, type and shape")
            return
        now = pylsl.local_clock()  # after the pull, which may have blocked
        if n_total:
            stream._last_data = now
            if stream.status != "recording":
                stream.status = "recording"
                self._event(stream, "resumed")
        elif (stream.status == "recording" and stream.nominal_srate > 0
              and now - stream._last_data > self.stall_timeout):
            stream.status = "stalled"
            self._event(stream, "stalled", f"no samples for {self.stall_timeout:g} s")

    def _write(self, stream: RecordedStream, data, timestamps: np.ndarray) -> None:
        with self._lock:
            if not self._writer.closed:  # else a thread stuck past stop() woke up late
                self._writer.write_samples(stream.stream_id, data, timestamps)

    def _reconnect(self, stream: RecordedStream) -> None:
        # A background resolver: a one-shot resolve can block for seconds while liblsl
        # recovers another stream of this process.
        pylsl = get_pylsl()
        if stream._resolver is None:
            query = (f"name={_literal(stream.name)} and type={_literal(stream.type)} and "
                     f"channel_count={stream.channel_count} and "
                     f"channel_format='{stream.channel_format}'")
            stream._resolver = pylsl.ContinuousResolver(pred=query)
        found = stream._resolver.results()
        if not found:
            return
        stream._resolver = None
        stream._inlet = self._inlet(found[0])
        stream.status = "recording"
        stream._last_data = pylsl.local_clock()
        self._event(stream, "reconnected", f"new source uid {found[0].uid()}")

    def _event(self, stream: RecordedStream, kind: str, detail: str = "") -> None:
        event = RecorderEvent(get_pylsl().local_clock(), stream.name, kind, detail)
        stream.events.append(event)
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)
        else:
            log.warning("%s", event)

    def _close_inlets(self) -> None:
        busy = {thread.name for thread in self._threads if thread.is_alive()}
        for stream in self.streams:
            stream._resolver = None
            # an inlet that a stuck thread is still pulling from is not touched
            if stream._inlet is not None and _thread_name(stream) not in busy:
                stream._inlet.close_stream()
                stream._inlet = None


def _thread_name(stream: RecordedStream) -> str:
    return f"bci-recorder-{stream.stream_id}"


def _literal(value: str) -> str:
    """An XPath string literal (XPath 1.0 has no escapes: pick the other quote)."""
    return f'"{value}"' if "'" in value else f"'{value}'"


def resolve_all(wait: float = ALL_WAIT) -> list:
    """Every LSL stream visible from here (within the configured scope)."""
    return get_pylsl().resolve_streams(wait_time=wait)


# ------------------------------------------------------------------ session recording

class SessionRecorder:
    """The runtime's own recording: streams written in-process, synced like a recorder.

    Parameters
    ----------
    path : str | Path
        The XDF file to write.
    flush_interval : float
        Seconds between syncs to disk by a background timer (``None``: only when
        :meth:`flush` is called).
    overwrite : bool
        Replace an existing file (default).
    on_error : callable | None
        Called once, with the error, when writing fails (disk full, device gone,
        permission): the recording then stops, keeping every whole chunk written
        before, and later writes are dropped. Without it, the next :meth:`write`
        raises the error.

    Notes
    -----
    Thread-safe: data, markers and decisions may be written from different threads.
    Timestamps are taken as already on this machine's LSL clock (the headers say
    ``desc/bci/time_corrected = 1`` unless told otherwise).
    """

    def __init__(self, path: str | Path, *, flush_interval: float | None = 0.5,
                 overwrite: bool = True,
                 on_error: Callable[[OSError], None] | None = None) -> None:
        self.path = Path(path)
        self._writer = XDFWriter(self.path, overwrite=overwrite)
        self.on_error = on_error
        self.failed = False
        self._lock = threading.Lock()
        self._next_id = 1
        self._dirty = False
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        if flush_interval is not None:
            self._timer = threading.Thread(target=self._flush_loop, args=(flush_interval,),
                                           name="bci-session-recorder", daemon=True)
            self._timer.start()

    def add_stream(
        self, *, name: str, type: str, channel_count: int, nominal_srate: float,
        channel_format: str = "float32", source_id: str = "",
        ch_names: Sequence[str] | None = None, ch_types: str | Sequence[str] | None = None,
        ch_units: str | Sequence[str] | None = None, desc: Mapping | None = None,
        time_corrected: bool = True,
    ) -> int:
        """Declare a stream (see :meth:`XDFWriter.add_stream`); return its id."""
        extra = {"bci": {"time_corrected": int(time_corrected)}}
        if desc:
            extra.update(desc)
        with self._lock:
            stream_id = self._next_id
            self._writer.add_stream(
                stream_id, name=name, type=type, channel_count=channel_count,
                nominal_srate=nominal_srate, channel_format=channel_format,
                source_id=source_id, ch_names=ch_names, ch_types=ch_types,
                ch_units=ch_units, desc=extra,
            )
            self._next_id += 1
        return stream_id

    def write(self, stream_id: int, data, timestamps) -> None:
        """Append samples: data (n_channels, n_samples), or strings for a string stream.

        Raises the error of a failed write or sync (e.g. a full disk), if any, unless
        ``on_error`` took it (the samples are then dropped).
        """
        if self.failed:
            if self.on_error is None:
                raise self.error
            return
        try:
            with self._lock:
                self._writer.write_samples(stream_id, data, timestamps)
                self._dirty = True
        except OSError as err:
            self._fail(err)
            if self.on_error is None:
                raise

    def flush(self, fsync: bool = True) -> None:
        """Write what is pending and (by default) force it to disk.

        A failed write is handled as in :meth:`write`.
        """
        if self.failed:
            return
        try:
            with self._lock:
                if not self._writer.closed:
                    self._writer.flush(fsync=fsync)
                    self._dirty = False
        except OSError as err:
            self._fail(err)
            if self.on_error is None:
                raise

    def _flush_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                with self._lock:
                    synced = self._dirty and not self._writer.closed
                    if synced:
                        self._writer.flush(fsync=False)
                        self._dirty = False
                # fsync outside the lock: the live loop's writes must not wait on the disk.
                if synced:
                    self._writer.sync()
            except OSError as err:
                self._fail(err)
                return

    def _fail(self, err: OSError) -> None:
        """Stop recording: keep the whole chunks written so far, report the error once."""
        with self._lock:
            if self.failed:
                return
            self.failed = True
            self.error = err
            # the writer cut the file back to whole chunks; footers are optional in XDF,
            # and writing them would most likely fail the same way
            with contextlib.suppress(OSError):
                self._writer.close()
        self._stop.set()
        log.error("recording %s stopped: %s; what was written before is kept", self.path,
                  err.strerror or err)
        if self.on_error is not None:
            self.on_error(err)

    def close(self) -> None:
        """Write the footers, sync and close. Safe to call twice.

        Raises the write error, if writing failed and no ``on_error`` took it.
        """
        self._stop.set()
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.join()
        if not self.failed:
            try:
                with self._lock:
                    self._writer.close()
            except OSError as err:
                self._fail(err)
        if self.failed and self.on_error is None:
            raise self.error

    def __enter__(self) -> SessionRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
