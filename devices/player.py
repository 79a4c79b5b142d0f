"""Play a recording back as LSL streams in real time: ``bci play FILE``.

:class:`FilePlayer` opens a float32 data outlet (channel labels, types and units in
``desc/channels/channel``, nominal rate = the recording's sampling rate) and a string
marker outlet, then pushes the recording in chunks from a background thread, paced
against ``local_clock()``. Sample ``i`` of loop ``k`` is stamped
``t_start + (t_i - t_0 + k * period) / speed`` where ``t`` are the recording's own
timestamps and ``period`` is its duration plus one sample, so timestamps keep growing
across loops and the schedule never drifts (every deadline derives from ``t_start``).
A chunk is pushed once the clock reaches its last sample's timestamp, like an
amplifier that sends what it has acquired; each marker is pushed, stamped with its
onset sample's timestamp, just before the chunk holding that sample.

Data are sent as they are in the recording (volts for MNE formats), and the unit in
the header says so.
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path

import mne
import numpy as np
from bci.devices.files import read_recording

from bci.lslconfig import get_pylsl
from bci.recording import Recording

logger = logging.getLogger(__name__)

# How long a chunk lasts by default: small enough for a live-like latency, large enough
# that a 2-core machine is not busy pushing.
DEFAULT_CHUNK_SECONDS = 0.02

_UNIT_NAMES = {
    mne.io.constants.FIFF.FIFF_UNIT_V: "volts",
    mne.io.constants.FIFF.FIFF_UNIT_T: "tesla",
    mne.io.constants.FIFF.FIFF_UNIT_T_M: "tesla/meter",
    mne.io.constants.FIFF.FIFF_UNIT_CEL: "celsius",
    mne.io.constants.FIFF.FIFF_UNIT_S: "siemens",
}


def default_chunk_size(sfreq: float) -> int:
    """Samples in about 20 ms of data at ``sfreq`` (at least one)."""
    return max(1, round(DEFAULT_CHUNK_SECONDS * sfreq))


class FilePlayer:
    """Rebroadcast a recording as an LSL data stream and an LSL marker stream.

    The outlets exist from construction, so consumers can resolve and subscribe before
    :meth:`start`; samples pushed before a consumer subscribes are not seen by it.

    Parameters
    ----------
    source : Recording | str | Path
        The recording, or a file for :func:`bci.devices.files.read_recording`.
    name : str | None
        Data stream name; default the file's stem (``"session1_raw"``).
    marker_name : str | None
        Marker stream name; default ``name + "-markers"``.
    chunk_size : int | None
        Samples per pushed chunk; default about 20 ms of data.
    speed : float
        Playback speed factor (2.0 plays twice as fast, with timestamps twice as dense).
    loop : bool
        Start over at the end, forever (until :meth:`stop`).
    stream, events : str | None
        Passed to :func:`~bci.devices.files.read_recording` when ``source`` is a file.
    source_id : str | None
        LSL source_id of the data stream; default derived from the file name. The
        marker stream gets ``source_id + "-markers"``.
    wait_for_consumers : float
        Seconds to wait, once started, for a consumer on each outlet before the first
        sample is scheduled (0: start at once).

    Attributes
    ----------
    recording : Recording
    samples_pushed, markers_pushed, loops_completed : int
        Progress counters, updated by the playing thread.
    markers_dropped : int
        Markers outside the data's time span, which have no sample to travel with.
    error : BaseException | None
        What stopped the playing thread, if it failed.
    """

    def __init__(self, source: Recording | str | Path, *, name: str | None = None,
                 marker_name: str | None = None, chunk_size: int | None = None,
                 speed: float = 1.0, loop: bool = False, stream: str | None = None,
                 events: str | Path | None = None, source_id: str | None = None,
                 wait_for_consumers: float = 0.0) -> None:
        if isinstance(source, Recording):
            recording = source
        else:
            recording = read_recording(source, stream=stream, events=events)
        if not (isinstance(speed, int | float) and math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a finite number > 0, found {speed!r}")
        if chunk_size is None:
            chunk_size = default_chunk_size(recording.sfreq)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be an integer >= 1, found {chunk_size!r}")
        shape = recording.data.shape
        n_info = len(recording.info.ch_names)
        if (len(shape) != 2 or shape[0] != n_info or shape[1] == 0
                or recording.timestamps.shape != shape[1:]):
            raise ValueError(
                f"recording must hold data of shape ({n_info} channels, n_samples > 0) with "
                f"one timestamp per sample, found data of shape {shape} and timestamps of "
                f"shape {recording.timestamps.shape}")
        if not recording.sfreq > 0:
            raise ValueError(f"recording must have a sampling rate > 0, found "
                             f"{recording.sfreq}")

        self.recording = recording
        self.speed = float(speed)
        self.loop = bool(loop)
        self.chunk_size = chunk_size
        self.wait_for_consumers = float(wait_for_consumers)
        stem = _stem(recording.source) or "recording"
        self.name = name or stem
        self.marker_name = marker_name or f"{self.name}-markers"
        self.source_id = source_id or f"bci-play-{stem}"

        self._relative = recording.timestamps - recording.timestamps[0]
        self._period = float(self._relative[-1]) + 1.0 / recording.sfreq
        self._marker_samples, self._marker_values = self._place_markers()

        pylsl = get_pylsl()
        self._clock = pylsl.local_clock
        self._outlet = pylsl.StreamOutlet(self._data_info(pylsl))
        marker_info = pylsl.StreamInfo(self.marker_name, "Markers", 1, pylsl.IRREGULAR_RATE,
                                       pylsl.cf_string, f"{self.source_id}-markers")
        self._marker_outlet = pylsl.StreamOutlet(marker_info)

        self.samples_pushed = 0
        self.markers_pushed = 0
        self.loops_completed = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ public control
    def start(self) -> FilePlayer:
        """Start playing in a background thread (once)."""
        if self._thread is not None:
            raise RuntimeError("this FilePlayer was already started")
        if self._outlet is None:
            raise RuntimeError("this FilePlayer was stopped; create a new one")
        self._thread = threading.Thread(target=self._run, name=f"bci-play-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the end of playback; ``True`` if it ended (never, when looping)."""
        if self._thread is None:
            raise RuntimeError("this FilePlayer was not started")
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop playing and close both outlets (consumers see the streams end)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._outlet = None
        self._marker_outlet = None

    def __enter__(self) -> FilePlayer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --------------------------------------------------------------------- internals
    def _data_info(self, pylsl):
        info = self.recording.info
        types = info.get_channel_types()
        kind = "EEG" if "eeg" in types else types[0].upper()
        out = pylsl.StreamInfo(self.name, kind, len(types), self.recording.sfreq,
                               pylsl.cf_float32, self.source_id)
        channels = out.desc().append_child("channels")
        for ch, ch_type in zip(info["chs"], types, strict=True):
            channel = channels.append_child("channel")
            channel.append_child_value("label", ch["ch_name"])
            channel.append_child_value("unit", _UNIT_NAMES.get(ch["unit"], "none"))
            channel.append_child_value("type", ch_type.upper())
        out.desc().append_child("acquisition").append_child_value(
            "manufacturer", f"bci play {self.recording.source}")
        return out

    def _place_markers(self) -> tuple[np.ndarray, list[str]]:
        """Each marker's nearest sample; markers beyond half a sample outside are dropped."""
        ts = self.recording.timestamps
        markers = self.recording.markers
        stamps = np.asarray(markers.timestamps, dtype=np.float64)
        half = 0.5 / self.recording.sfreq
        inside = (stamps >= ts[0] - half) & (stamps <= ts[-1] + half)
        self.markers_dropped = int((~inside).sum())
        if self.markers_dropped:
            logger.warning("%s: %d marker(s) outside the data's time span are not played",
                           self.recording.source, self.markers_dropped)
        stamps = stamps[inside]
        values = [v for v, keep in zip(markers.values, inside, strict=True) if keep]
        if ts.shape[0] == 1:
            return np.zeros(stamps.shape[0], np.int64), values
        right = np.clip(np.searchsorted(ts, stamps), 1, ts.shape[0] - 1)
        nearer_left = (stamps - ts[right - 1]) <= (ts[right] - stamps)
        samples = np.where(nearer_left, right - 1, right)
        order = np.argsort(samples, kind="stable")
        return samples[order], [values[i] for i in order]

    @property
    def n_markers(self) -> int:
        """Markers played per loop."""
        return len(self._marker_values)

    def _wait_until(self, deadline: float) -> bool:
        """Sleep until ``local_clock() >= deadline``; ``False`` if stopped meanwhile."""
        while True:
            delay = deadline - self._clock()
            if delay <= 0:
                return not self._stop.is_set()
            if self._stop.wait(delay):
                return False

    def _wait_for_consumers(self) -> None:
        deadline = self._clock() + self.wait_for_consumers
        for outlet in (self._outlet, self._marker_outlet):
            remaining = deadline - self._clock()
            if remaining <= 0 or not outlet.wait_for_consumers(remaining):
                return

    def _run(self) -> None:
        try:
            if self.wait_for_consumers > 0:
                self._wait_for_consumers()
            self._play()
        except BaseException as err:  # reported through .error, the thread must not die silently
            self.error = err
            logger.exception("playing %s failed", self.recording.source)

    def _play(self) -> None:
        data = self.recording.data
        n_samples = data.shape[1]
        t_start = self._clock()
        loop = 0
        while not self._stop.is_set():
            offset = loop * self._period
            next_marker = 0
            for start in range(0, n_samples, self.chunk_size):
                stop = min(start + self.chunk_size, n_samples)
                stamps = t_start + (self._relative[start:stop] + offset) / self.speed
                if not self._wait_until(stamps[-1]):
                    return
                while (next_marker < len(self._marker_values)
                       and self._marker_samples[next_marker] < stop):
                    sample = int(self._marker_samples[next_marker])
                    stamp = t_start + (self._relative[sample] + offset) / self.speed
                    self._marker_outlet.push_sample([self._marker_values[next_marker]],
                                                    float(stamp))
                    next_marker += 1
                    self.markers_pushed += 1
                chunk = np.ascontiguousarray(data[:, start:stop].T, dtype=np.float32)
                # A list makes pylsl send one explicit timestamp per sample.
                self._outlet.push_chunk(chunk, stamps.tolist())
                self.samples_pushed += stop - start
            self.loops_completed += 1
            loop += 1
            if not self.loop:
                return


def _stem(source: str) -> str:
    name = Path(source).name if source else ""
    for ext in (".fif.gz", ".xdf.gz"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem if name else ""
