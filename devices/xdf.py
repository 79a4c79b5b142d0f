"""An incremental XDF 1.0 writer that survives being killed mid-recording.

XDF (https://github.com/sccn/xdf/wiki/Specifications) is a sequence of chunks, each
``[NumLengthBytes][Length][Tag][Content]``, after the magic ``XDF:``. This writer uses
the file header (tag 1), stream headers (2), samples (3), clock offsets (4), boundaries
(5) and stream footers (6). Every sample carries its own float64 timestamp, so readers
get the timestamps exactly as written.

Durability
----------
Chunks are assembled in memory and handed to the OS only whole, one ``os.write`` per
:meth:`XDFWriter.flush`; ``flush(fsync=True)`` also forces them to disk. A process killed
between flushes therefore leaves a file that ends on a chunk boundary, and one killed
*during* a flush (or a machine losing power) leaves a file cut at a multiple of the page
size, because the kernel copies and writes back whole pages. ``pyxdf.load_xdf`` reads
such a file up to its last complete chunk, except where the cut falls on a few bytes
that pyxdf does not guard (the 2-byte tag of a chunk, the payload of a clock offset) or
inside the last sample of a chunk (pyxdf then returns that sample with stale values).
The writer lays chunks out so that none of those bytes sits on a page boundary: it picks
the width of the length field, ends a samples chunk one sample early, or inserts a
boundary chunk. Cuts that only a corrupted disk produces (arbitrary bytes in the middle)
are handled by pyxdf's resync on boundary chunks, which the writer adds every
``boundary_bytes`` and every ``boundary_interval`` seconds. Stream headers are written
and synced when a stream is added; a cut inside one is not recoverable with pyxdf.
"""

from __future__ import annotations

import datetime
import math
import os
import socket
import struct
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bci.errors import RecordingError
from bci.lslconfig import get_pylsl

#: Numeric channel formats and their little-endian dtypes.
NUMERIC_FORMATS: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "double64": np.dtype("<f8"),
    "int8": np.dtype("<i1"),
    "int16": np.dtype("<i2"),
    "int32": np.dtype("<i4"),
    "int64": np.dtype("<i8"),
}
CHANNEL_FORMATS = (*NUMERIC_FORMATS, "string")

#: The 16 bytes that make up a boundary chunk; readers scan for them to resync.
BOUNDARY_UUID = bytes([0x43, 0xA5, 0x46, 0xDC, 0xCB, 0xF5, 0x41, 0x0F,
                       0xB3, 0x0E, 0xD5, 0x46, 0x73, 0x83, 0xCB, 0xE4])

#: Granularity at which the kernel can leave a write cut short (a page, a disk block).
PAGE = 4096

TAG_FILE_HEADER, TAG_STREAM_HEADER, TAG_SAMPLES = 1, 2, 3
TAG_CLOCK_OFFSET, TAG_BOUNDARY, TAG_STREAM_FOOTER = 4, 5, 6

_MAX_CHUNK_BYTES = 1 << 16  # samples chunks stay small: a torn chunk loses little
_MAX_PENDING = 1 << 23  # bytes held in memory before they go to the OS unasked
_MAX_PADDING = 64  # boundary chunks tried before giving up on a safe placement


class XDFError(RecordingError):
    """A stream or a write does not fit what the XDF file declares."""


def _varlen(n: int) -> bytes:
    """XDF's variable-length integer: a width byte (1, 4 or 8), then the value."""
    if n < 1 << 8:
        return b"\x01" + n.to_bytes(1, "little")
    if n < 1 << 32:
        return b"\x04" + n.to_bytes(4, "little")
    return b"\x08" + n.to_bytes(8, "little")


def _hits_page(first: int, last: int) -> bool:
    """Whether a file length in ``[first, last]`` is a multiple of :data:`PAGE`."""
    return first <= last and -(-first // PAGE) * PAGE <= last


def _xml_bytes(root: ET.Element) -> bytes:
    return b'<?xml version="1.0"?>' + ET.tostring(root, encoding="utf-8",
                                                 xml_declaration=False)


def _fmt(x: float) -> str:
    """Shortest text that reads back as the same float64."""
    return repr(float(x))


def _add_children(parent: ET.Element, content: Mapping) -> None:
    """Nested mappings become nested elements; sequences repeat their element."""
    for key, value in content.items():
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            child = ET.SubElement(parent, str(key))
            if isinstance(item, Mapping):
                _add_children(child, item)
            elif isinstance(item, float):
                child.text = _fmt(item)
            elif item is not None:
                child.text = str(item)


def _per_channel(values: str | Sequence[str] | None, n: int, what: str) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        return [values] * n
    values = [str(v) for v in values]
    if len(values) != n:
        raise XDFError(f"expected {n} channel {what} (one per channel), found {len(values)}")
    return values


@dataclass(slots=True)
class _Stream:
    name: str
    channel_format: str
    channel_count: int
    nominal_srate: float
    dtype: np.dtype | None
    sample_count: int = 0
    first_timestamp: float | None = None
    last_timestamp: float | None = None
    clock_offsets: list[tuple[float, float]] = field(default_factory=list)
    footer_written: bool = False


class XDFWriter:
    """Writes an XDF 1.0 file chunk by chunk, flushing whole chunks only.

    Parameters
    ----------
    path : str | Path
        The file to write.
    overwrite : bool
        Replace an existing file (default); ``False`` raises :class:`FileExistsError`.
    boundary_bytes : int
        A boundary chunk follows whenever this many bytes were written since the last.
    boundary_interval : float
        Seconds after which :meth:`flush` adds a boundary chunk if anything was written.
    header : Mapping | None
        Extra elements for the file header's ``<info>`` (beside version and datetime).

    Notes
    -----
    Not thread-safe: use one writer from one thread, or lock around it.
    """

    def __init__(self, path: str | Path, *, overwrite: bool = True,
                 boundary_bytes: int = 1 << 20, boundary_interval: float = 10.0,
                 header: Mapping | None = None) -> None:
        self.path = Path(path)
        flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0)
        flags |= os.O_TRUNC if overwrite else os.O_EXCL
        self._fd: int | None = os.open(self.path, flags, 0o644)
        self._streams: dict[int, _Stream] = {}
        self._pending = bytearray()
        self._offset = 0  # file length once everything pending is written
        self.boundary_bytes = int(boundary_bytes)
        self.boundary_interval = float(boundary_interval)
        self._last_boundary_offset = 0
        self._last_boundary_time = time.monotonic()
        self._pending.extend(b"XDF:")
        self._offset = 4
        info = ET.Element("info")
        _add_children(info, {"version": "1.0",
                             "datetime": datetime.datetime.now().astimezone().isoformat()})
        if header:
            _add_children(info, header)
        self._chunk(TAG_FILE_HEADER, _xml_bytes(info))
        self.flush(fsync=True)
        _sync_directory(self.path)

    # ----------------------------------------------------------------------- streams

    def add_stream(
        self, stream_id: int, *, name: str, type: str, channel_count: int,
        nominal_srate: float, channel_format: str = "float32", source_id: str = "",
        ch_names: Sequence[str] | None = None, ch_types: str | Sequence[str] | None = None,
        ch_units: str | Sequence[str] | None = None, desc: Mapping | None = None,
        created_at: float | None = None,
    ) -> None:
        """Declare a stream and write its header (synced to disk at once).

        Parameters
        ----------
        stream_id : int
            The stream's number in the file, 0 to 2**32 - 1, unique.
        name, type, source_id : str
            As in LSL.
        channel_count : int
        nominal_srate : float
            Samples per second; 0 for an irregular stream (markers, decisions).
        channel_format : str
            One of ``float32``, ``double64``, ``int8``, ``int16``, ``int32``, ``int64``,
            ``string``.
        ch_names, ch_types, ch_units : sequence of str | str | None
            Written as ``desc/channels/channel/{label,type,unit}``; a single string
            applies to every channel.
        desc : Mapping | None
            More elements under ``<desc>`` (nested mappings nest).
        created_at : float | None
            LSL clock time the stream was created (default: now, on the LSL clock).
        """
        if channel_format not in CHANNEL_FORMATS:
            raise XDFError(f"channel_format must be one of {', '.join(CHANNEL_FORMATS)}; "
                           f"found {channel_format!r}")
        channel_count = int(channel_count)
        labels = _per_channel(ch_names, channel_count, "names")
        types = _per_channel(ch_types, channel_count, "types")
        units = _per_channel(ch_units, channel_count, "units")
        if created_at is None:
            created_at = get_pylsl().local_clock()
        info = ET.Element("info")
        _add_children(info, {
            "name": name, "type": type, "channel_count": channel_count,
            "channel_format": channel_format, "source_id": source_id,
            "nominal_srate": float(nominal_srate), "version": "1.1",
            "created_at": float(created_at), "hostname": socket.gethostname(),
        })
        desc_el = ET.SubElement(info, "desc")
        if labels or types or units:
            channels = ET.SubElement(desc_el, "channels")
            for i in range(channel_count):
                channel = ET.SubElement(channels, "channel")
                for key, values in (("label", labels), ("unit", units), ("type", types)):
                    if values is not None:
                        ET.SubElement(channel, key).text = values[i]
        if desc:
            _add_children(desc_el, desc)
        self._add_header(stream_id, info)

    def add_stream_header(self, stream_id: int, header: str | bytes | ET.Element) -> None:
        """Declare a stream from a whole ``<info>`` header (e.g. ``StreamInfo.as_xml()``).

        The header must hold ``name``, ``channel_count``, ``channel_format`` and
        ``nominal_srate``; it is written as given.
        """
        root = header if isinstance(header, ET.Element) else ET.fromstring(header)
        self._add_header(stream_id, root)

    def _add_header(self, stream_id: int, info: ET.Element) -> None:
        self._check_open()
        if not isinstance(stream_id, int | np.integer) or not 0 <= stream_id < 1 << 32:
            raise XDFError(f"stream_id must be an integer in [0, 2**32), found {stream_id!r}")
        stream_id = int(stream_id)
        if stream_id in self._streams:
            raise XDFError(f"stream_id {stream_id} is already used by stream "
                           f"{self._streams[stream_id].name!r}")
        if info.tag != "info":
            raise XDFError(f"a stream header must be an <info> element, found <{info.tag}>")
        missing = [k for k in ("name", "channel_count", "channel_format", "nominal_srate")
                   if info.findtext(k) is None]
        if missing:
            raise XDFError(f"a stream header needs {', '.join(missing)}; found only "
                           f"{', '.join(child.tag for child in info) or 'nothing'}")
        fmt = info.findtext("channel_format")
        if fmt not in CHANNEL_FORMATS:
            raise XDFError(f"channel_format must be one of {', '.join(CHANNEL_FORMATS)}; "
                           f"found {fmt!r}")
        try:
            count = int(info.findtext("channel_count"))
            srate = float(info.findtext("nominal_srate"))
        except ValueError as err:
            raise XDFError(f"channel_count and nominal_srate must be numbers: {err}") from None
        if count < 1:
            raise XDFError(f"channel_count must be at least 1, found {count}")
        if not (math.isfinite(srate) and srate >= 0):
            raise XDFError(f"nominal_srate must be finite and >= 0, found {srate}")
        self._streams[stream_id] = _Stream(
            name=info.findtext("name"), channel_format=fmt, channel_count=count,
            nominal_srate=srate, dtype=NUMERIC_FORMATS.get(fmt),
        )
        self._chunk(TAG_STREAM_HEADER, struct.pack("<I", stream_id) + _xml_bytes(info))
        self.flush(fsync=True)

    @property
    def stream_ids(self) -> list[int]:
        return list(self._streams)

    def sample_count(self, stream_id: int) -> int:
        """Samples written so far to ``stream_id``."""
        return self._stream(stream_id).sample_count

    # ----------------------------------------------------------------------- samples

    def write_samples(self, stream_id: int, data, timestamps) -> None:
        """Append samples to a stream.

        Parameters
        ----------
        stream_id : int
        data : array of shape (n_channels, n_samples) | sequence of str
            Numeric streams: values in MNE's order, cast to the stream's format (an
            integer format accepts integer data only). String streams: one entry per
            sample, a ``str``/``bytes`` (one channel) or a sequence of ``n_channels``
            of them.
        timestamps : array of float64, shape (n_samples,)
            Seconds; written exactly.
        """
        stream = self._stream(stream_id)
        if stream.footer_written:
            raise XDFError(f"stream {stream_id} ({stream.name!r}) already has its footer; "
                           "no samples may follow")
        ts = np.asarray(timestamps, dtype=np.float64)
        if ts.ndim != 1:
            raise XDFError(f"timestamps must have shape (n_samples,), found {ts.shape}")
        if stream.dtype is None:
            rows = self._string_rows(stream, data, ts.shape[0])
            if not rows:
                return
            self._write_strings(stream_id, rows, ts)
        else:
            values = self._numeric_values(stream, data, ts.shape[0])
            if ts.shape[0] == 0:
                return
            self._write_numeric(stream_id, stream, values, ts)
        if stream.first_timestamp is None:
            stream.first_timestamp = float(ts[0])
        stream.last_timestamp = float(ts[-1])
        stream.sample_count += ts.shape[0]
        if self._offset - self._last_boundary_offset >= self.boundary_bytes:
            self.write_boundary()
        if len(self._pending) >= _MAX_PENDING:
            self.flush(fsync=False)

    def _numeric_values(self, stream: _Stream, data, n: int) -> np.ndarray:
        arr = np.asarray(data)
        if arr.ndim == 1 and stream.channel_count == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape != (stream.channel_count, n):
            raise XDFError(f"stream {stream.name!r}: expected data of shape "
                           f"(n_channels={stream.channel_count}, n_samples={n}) matching "
                           f"the timestamps, found {arr.shape}")
        if stream.dtype.kind == "i" and arr.dtype.kind not in "iub":
            raise XDFError(f"stream {stream.name!r} is {stream.channel_format}; expected "
                           f"integer data, found {arr.dtype}")
        if arr.dtype.kind not in "iubf":
            raise XDFError(f"stream {stream.name!r}: expected numeric data, found {arr.dtype}")
        return arr

    def _string_rows(self, stream: _Stream, data, n: int) -> list[list[bytes]]:
        if isinstance(data, str | bytes):
            raise XDFError(f"stream {stream.name!r}: expected a sequence of samples, found "
                           f"a single {type(data).__name__}")
        rows = []
        for sample in data:
            values = [sample] if isinstance(sample, str | bytes) else list(sample)
            if len(values) != stream.channel_count:
                raise XDFError(f"stream {stream.name!r}: expected {stream.channel_count} "
                               f"value(s) per sample, found {len(values)}")
            rows.append([v if isinstance(v, bytes) else str(v).encode("utf-8")
                         for v in values])
        if len(rows) != n:
            raise XDFError(f"stream {stream.name!r}: expected one timestamp per sample, "
                           f"found {n} timestamps for {len(rows)} samples")
        return rows

    def _write_numeric(self, stream_id: int, stream: _Stream, values: np.ndarray,
                       ts: np.ndarray) -> None:
        n_ch, n = values.shape
        layout = np.dtype([("bytes", "u1"), ("ts", "<f8"), ("values", stream.dtype, (n_ch,))])
        rows = np.empty(n, layout)
        rows["bytes"] = 8
        rows["ts"] = ts
        rows["values"] = values.T
        raw = memoryview(rows.tobytes())
        size = layout.itemsize
        # a cut after a chunk's last timestamp reads back stale values (pyxdf reuses its
        # read buffer), so the values of the last sample are what must not be cut
        value_at = size - n_ch * stream.dtype.itemsize
        per_chunk = max(1, _MAX_CHUNK_BYTES // size)
        start = 0
        while start < n:
            k = min(per_chunk, n - start)
            start += self._samples_chunk(stream_id, raw[start * size:(start + k) * size],
                                         range(size, (k + 1) * size, size), [value_at] * k)

    def _write_strings(self, stream_id: int, rows: list[list[bytes]], ts: np.ndarray) -> None:
        samples, value_at = [], []
        for row, t in zip(rows, ts.tolist(), strict=True):
            parts = [b"\x08", struct.pack("<d", t)]
            for value in row:
                parts.append(_varlen(len(value)))
                parts.append(value)
            sample = b"".join(parts)
            samples.append(sample)
            # a cut inside the last value's bytes reads back a shortened string
            value_at.append(len(sample) - len(row[-1]))
        start = 0
        while start < len(samples):
            ends, size = [], 0
            while start + len(ends) < len(samples) and (not ends or size < _MAX_CHUNK_BYTES):
                size += len(samples[start + len(ends)])
                ends.append(size)
            k = len(ends)
            start += self._samples_chunk(stream_id, b"".join(samples[start:start + k]), ends,
                                         value_at[start:start + k])

    def _samples_chunk(self, stream_id: int, body: bytes | memoryview, ends: Sequence[int],
                       value_at: Sequence[int]) -> int:
        """Write the first k samples of ``body`` as one chunk; return k.

        Sample i ends at ``ends[i]`` in ``body``; pyxdf reads its bytes from
        ``value_at[i]`` (relative to the sample) on without noticing a cut. The chunk
        ends one sample early (and again, if need be) when those bytes of its last
        sample would cover a page boundary; a single sample is padded instead.
        """
        k = len(ends)
        while True:
            head = struct.pack("<I", stream_id) + _varlen(k)
            last_start = ends[k - 2] if k > 1 else 0
            first = len(head) + last_start + value_at[k - 1]
            last = len(head) + ends[k - 1] - 1
            # a window as wide as a page always covers a boundary: nothing to choose
            danger = [(first, last)] if last - first + 1 < PAGE else []
            if k == 1 or not danger or self._layout(last + 1, danger, pad=False):
                break
            k -= 1
        self._chunk(TAG_SAMPLES, head, body[:ends[k - 1]], danger=danger, pad=True)
        return k

    # -------------------------------------------------------------------- other chunks

    def write_clock_offset(self, stream_id: int, time: float, value: float) -> None:
        """Record one clock offset measurement for a stream.

        Parameters
        ----------
        time : float
            When it was measured, on the clock of the stream's timestamps (the sending
            computer's LSL clock), as LabRecorder stores it (seconds).
        value : float
            Offset to add to the stream's timestamps to reach the recording computer's
            clock (seconds); readers fit it over time and apply it (pyxdf's clock sync).
        """
        stream = self._stream(stream_id)
        stream.clock_offsets.append((float(time), float(value)))
        content = struct.pack("<Idd", stream_id, time, value)
        # pyxdf does not guard reading the two doubles: keep them off a page boundary
        self._chunk(TAG_CLOCK_OFFSET, content, danger=[(4, 19)], pad=True)

    def write_boundary(self) -> None:
        """Write a boundary chunk, where a reader can resync after corruption."""
        self._check_open()
        self._chunk(TAG_BOUNDARY, BOUNDARY_UUID)
        self._last_boundary_offset = self._offset
        self._last_boundary_time = time.monotonic()

    def write_footer(self, stream_id: int, *, extra: Mapping | None = None) -> None:
        """Write a stream's footer: first/last timestamp, sample count, clock offsets.

        Parameters
        ----------
        extra : Mapping | None
            More elements for the footer's ``<info>``.
        """
        stream = self._stream(stream_id)
        if stream.footer_written:
            raise XDFError(f"stream {stream_id} ({stream.name!r}) already has its footer")
        info = ET.Element("info")
        content: dict = {"sample_count": stream.sample_count}
        if stream.first_timestamp is not None:
            content = {"first_timestamp": stream.first_timestamp,
                       "last_timestamp": stream.last_timestamp, **content}
        content["clock_offsets"] = {"offset": [{"time": t, "value": v}
                                               for t, v in stream.clock_offsets]}
        _add_children(info, content)
        if extra:
            _add_children(info, extra)
        self._chunk(TAG_STREAM_FOOTER, struct.pack("<I", stream_id) + _xml_bytes(info))
        stream.footer_written = True

    # ----------------------------------------------------------------------- layout

    def _layout(self, content_len: int, danger: Sequence[tuple[int, int]], *,
                pad: bool) -> tuple[list[int], int] | None:
        """Where pyxdf's unguarded bytes stay off page boundaries, if anywhere.

        ``danger`` lists ranges of file lengths, relative to the start of the chunk's
        content, at which pyxdf fails or reads stale values; the chunk's own 2-byte tag
        is always such a range. Returns the widths of the boundary chunks to write first
        (none unless ``pad``) and the width of the chunk's length field; ``None`` when
        no placement within :data:`_MAX_PADDING` boundary chunks works.
        """
        length = 2 + content_len
        offset = self._offset
        padding: list[int] = []
        for _ in range(_MAX_PADDING + 1 if pad else 1):
            for width in (1, 4, 8):
                if length >= 1 << (8 * width):
                    continue
                tag_at = offset + 1 + width
                content_at = tag_at + 2
                if not _hits_page(tag_at, tag_at + 1) and not any(
                        _hits_page(content_at + a, content_at + b) for a, b in danger):
                    return padding, width
            width = self._tag_safe_width(offset, 2 + len(BOUNDARY_UUID))
            padding.append(width)
            offset += 1 + width + 2 + len(BOUNDARY_UUID)
        return None

    @staticmethod
    def _tag_safe_width(offset: int, length: int) -> int:
        """A length-field width that keeps the tag off a page boundary (one always does)."""
        for width in (1, 4, 8):
            if length < 1 << (8 * width) and not _hits_page(offset + 1 + width,
                                                              offset + 2 + width):
                return width
        return 8

    def _chunk(self, tag: int, *content: bytes | memoryview,
               danger: Sequence[tuple[int, int]] = (), pad: bool = False) -> None:
        self._check_open()
        content_len = sum(len(c) for c in content)
        placed = self._layout(content_len, danger, pad=pad)
        if placed is None:  # unavoidable (e.g. a value wider than a page)
            padding, width = [], self._tag_safe_width(self._offset, 2 + content_len)
        else:
            padding, width = placed
        for pad_width in padding:
            self._put(pad_width, TAG_BOUNDARY, (BOUNDARY_UUID,))
        self._put(width, tag, content)

    def _put(self, width: int, tag: int, content: Sequence[bytes | memoryview]) -> None:
        length = 2 + sum(len(c) for c in content)
        self._pending.append(width)
        self._pending += length.to_bytes(width, "little")
        self._pending += struct.pack("<H", tag)
        for part in content:
            self._pending += part
        self._offset += 1 + width + length

    # ----------------------------------------------------------------------- file

    def flush(self, fsync: bool = True) -> None:
        """Hand every complete chunk to the OS; with ``fsync``, force it to disk."""
        self._check_open()
        if (self._offset != self._last_boundary_offset
                and time.monotonic() - self._last_boundary_time >= self.boundary_interval):
            self.write_boundary()
        view = memoryview(self._pending)
        whole = self._offset - len(self._pending)  # the file's length: whole chunks only
        written = 0
        try:
            while written < len(view):
                written += os.write(self._fd, view[written:])
        except OSError:
            # disk full mid-chunk: a cut chunk would end the file in garbage, so cut back
            # to the last whole one (what is pending stays pending)
            try:
                os.ftruncate(self._fd, whole)
                os.lseek(self._fd, whole, os.SEEK_SET)
            except OSError:
                pass
            written = 0
            raise
        finally:
            view.release()
            del self._pending[:written]
        if fsync:
            os.fsync(self._fd)

    def sync(self) -> None:
        """Force what was handed to the OS onto the disk (no new chunks are written).

        Safe to call from another thread while samples are being written, so a caller
        can hold its lock only for :meth:`flush` without ``fsync``.
        """
        self._check_open()
        os.fsync(self._fd)

    def close(self) -> None:
        """Write the missing footers, sync and close. Safe to call twice."""
        if self._fd is None:
            return
        try:
            for stream_id, stream in self._streams.items():
                if not stream.footer_written:
                    self.write_footer(stream_id)
            self.flush(fsync=True)
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __enter__(self) -> XDFWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._fd is None:
            raise XDFError(f"{self.path}: the XDF writer is closed")

    def _stream(self, stream_id: int) -> _Stream:
        self._check_open()
        try:
            return self._streams[stream_id]
        except KeyError:
            raise XDFError(f"no stream with id {stream_id!r}; streams are "
                           f"{sorted(self._streams) or 'none yet'}") from None


def _sync_directory(path: Path) -> None:
    """Make the new file's directory entry durable too (POSIX only)."""
    if os.name != "posix":
        return
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
