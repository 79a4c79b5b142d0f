"""A recording in memory, and the source that feeds it to the loop chunk by chunk.

:class:`Recording` is what the file readers (:func:`bci.devices.files.read_recording`)
and the synthetic generators return; :class:`RecordingSource` hands it to
:class:`bci.runner.Loop` as a live stream would, so that replay, training-window
extraction and evaluation run the live loop's code on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import mne
import numpy as np

from bci.chunk import Chunk, Markers
from bci.source import Pull, Source


@dataclass(slots=True)
class RecordedWindows:
    """Where a live session's sliding windows ended, so that a replay cuts the same ones.

    Live, a window ends on the newest sample of the chunk that made it due, so where it
    ends depends on how the stream was chunked; the session recording keeps the end of
    every window that fell due, skipped ones included (see
    :class:`bci.windowing.SlidingWindower`).

    Attributes
    ----------
    stops : ndarray of int64, shape (n_windows,)
        One past each window's last sample, counted from the recording's first sample.
    length, step : float
        The sliding window (seconds) the stops were cut with.
    align : str
        How the live session aligned its windows (``"newest"`` or ``"grid"``).
    """

    stops: np.ndarray
    length: float
    step: float
    align: str

    def fits(self, length: float, step: float) -> bool:
        """Whether the stops were cut for windows of this length and step."""
        return (abs(self.length - length) <= 1e-9 * max(1.0, length)
                and abs(self.step - step) <= 1e-9 * max(1.0, step))


@dataclass(slots=True)
class Recording:
    """Continuous data with its channel metadata and markers.

    Attributes
    ----------
    info : mne.Info
        Channel names, types and the nominal sampling rate.
    data : ndarray of float32, shape (n_channels, n_samples)
    timestamps : ndarray of float64, shape (n_samples,)
        Seconds; for XDF files the LSL timestamps as recorded, for other formats the
        recording's sample times (``first_samp / sfreq`` onwards).
    markers : Markers
        Events as ``(timestamp, value)``; event codes become their decimal strings,
        annotations their description.
    source : str
        Where it came from (a path), for messages.
    note : str
        How the reader interpreted the file (e.g. which XDF stream it chose), for the
        user; empty when there is nothing to say.
    windows : RecordedWindows | None
        Where a live session recorded by this runtime ended its sliding windows.
    """

    info: mne.Info
    data: np.ndarray
    timestamps: np.ndarray
    markers: Markers
    source: str = ""
    note: str = ""
    windows: RecordedWindows | None = None

    @property
    def sfreq(self) -> float:
        return float(self.info["sfreq"])

    def to_raw(self) -> mne.io.RawArray:
        """The recording as an MNE Raw, its markers as annotations (onsets from sample 0).

        Save it with ``raw.save("name_raw.fif")``; :func:`bci.devices.files.read_recording`
        reads it back with the same markers.
        """
        raw = mne.io.RawArray(self.data.astype(np.float64), self.info.copy(), verbose="error")
        onsets = np.asarray(self.markers.timestamps, np.float64) - self.timestamps[0]
        raw.set_annotations(mne.Annotations(onsets, 0.0, [str(v) for v in self.markers.values]))
        return raw


class RecordingSource(Source):
    """A :class:`Recording` handed out in chunks of ``chunk_size`` samples.

    Each marker comes with the chunk that holds its timestamp (markers after the last
    sample come with a last, empty pull), as a marker stream sent just ahead of its
    data would arrive live. The recording's timestamps are not on this machine's clock:
    the source is not ``live``, and its clock is a performance counter.

    Parameters
    ----------
    recording : Recording
    chunk_size : int
        Samples per chunk (the loop's output does not depend on it).
    """

    live = False

    def __init__(self, recording: Recording, *, chunk_size: int = 32) -> None:
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, found {chunk_size!r}")
        super().__init__()
        self.recording = recording
        self.chunk_size = chunk_size
        self.name = recording.source
        m_times = np.asarray(recording.markers.timestamps, dtype=np.float64)
        order = np.argsort(m_times, kind="stable")
        self._m_times = m_times[order]
        self._m_values = [recording.markers.values[i] for i in order]
        self._next_sample = self._next_marker = 0

    @staticmethod
    def clock() -> float:
        return time.perf_counter()

    def open(self) -> mne.Info:
        self._next_sample = self._next_marker = 0
        self.info = self.recording.info
        return self.info

    def pull(self, timeout: float = 0.0) -> Pull | None:
        rec, start = self.recording, self._next_sample
        n = rec.timestamps.shape[0]
        if start >= n and self._next_marker >= len(self._m_values):
            return None
        if start >= n:  # markers after the last sample
            end = len(self._m_values)
            chunk = None
        else:
            stop = min(start + self.chunk_size, n)
            self._next_sample = stop
            chunk = Chunk(rec.data[:, start:stop], rec.timestamps[start:stop])
            end = int(np.searchsorted(self._m_times, chunk.timestamps[-1], side="right"))
        markers = Markers()
        if end > self._next_marker:
            markers = Markers(self._m_times[self._next_marker:end],
                              self._m_values[self._next_marker:end])
            self._next_marker = end
        return Pull(chunk, markers)

    def close(self) -> None:
        """Nothing to release: the recording stays in memory."""
