"""A session's own recording: raw input, markers and decisions in one XDF file.

``bci replay`` reads it back (:func:`bci.devices.files.read_recording`) and reproduces
the session's decisions; the decisions themselves are kept beside the data for audit.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from pathlib import Path

import mne
import numpy as np
from bci.devices.files import WINDOWS_TYPE
from bci.devices.recorder import SessionRecorder

from bci.chunk import Chunk, Markers
from bci.decision import Decision


class SessionRecording:
    """Writes what the loop received (:meth:`data`, :meth:`markers`) and what was decided.

    Parameters
    ----------
    path : str | Path
        The XDF file to write.
    info : mne.Info
        The data stream's channels and rate.
    classes : list of str
        Labels of the decisions' outputs (none: decisions are not recorded).
    stream_name, source_id : str
        The data stream's header; markers and decisions are named after it.
    on_error : callable | None
        Called once, as ``on_error(path, message)``, when writing fails (disk full,
        unwritable): the recording stops there, the file keeps what was written before
        and the session goes on. Without it, the failed write raises.
    window : mapping | None
        The session's sliding window (``length``, ``step`` in seconds, ``align``): the
        end of every window that fell due (:meth:`windows`, skipped ones included) is
        then kept in a ``Windows`` stream, stamped with the window's last sample, so that
        a replay cuts and skips the windows the live session cut and skipped
        (:class:`bci.recording.RecordedWindows`).
    """

    def __init__(self, path: str | Path, info: mne.Info, *, classes: list[str],
                 stream_name: str, source_id: str,
                 on_error: Callable[[str, str], None] | None = None,
                 window: Mapping[str, float | str] | None = None) -> None:
        self.path = Path(path)
        report = None if on_error is None else (
            lambda err: on_error(str(self.path), _describe(err)))
        self._rec = SessionRecorder(self.path, on_error=report)
        types = info.get_channel_types()
        self.data_id = self._rec.add_stream(
            name=stream_name, type="EEG", channel_count=len(info["ch_names"]),
            nominal_srate=float(info["sfreq"]), channel_format="float32",
            source_id=source_id, ch_names=list(info["ch_names"]), ch_types=types,
            ch_units=["volts"] * len(types),
        )
        self.marker_id = self._rec.add_stream(
            name=f"{stream_name}-markers", type="Markers", channel_count=1, nominal_srate=0.0,
            channel_format="string", source_id=f"{source_id}-markers",
        )
        labels = ["index", *[f"p_{c}" for c in classes]]
        self.decision_id = self._rec.add_stream(
            name=f"{stream_name}-decisions", type="Decisions", channel_count=len(labels),
            nominal_srate=0.0, channel_format="double64", source_id=f"{source_id}-decisions",
            ch_names=labels,
        )
        self._classes = list(classes)
        self.window_id = None
        if window is not None:
            self.window_id = self._rec.add_stream(
                name=f"{stream_name}-windows", type=WINDOWS_TYPE, channel_count=1,
                nominal_srate=0.0, channel_format="double64",
                source_id=f"{source_id}-windows", ch_names=["stop"],
                desc={"window": {k: window[k] for k in ("length", "step", "align")}},
            )

    @property
    def failed(self) -> bool:
        return self._rec.failed

    # SessionRecorder is thread-safe and syncs to disk from its own timer thread.
    def data(self, chunk: Chunk) -> None:
        self._rec.write(self.data_id, chunk.data, chunk.timestamps)

    def markers(self, markers: Markers) -> None:
        self._rec.write(self.marker_id, list(markers.values), markers.timestamps)

    def windows(self, due: list[tuple[int, float]]) -> None:
        """Keep where due sliding windows ended: ``(stop, last timestamp)`` pairs."""
        if self.window_id is not None and due:
            stops, stamps = zip(*due, strict=True)
            self._rec.write(self.window_id, np.array([stops], np.float64),
                            np.array(stamps, np.float64))

    def __call__(self, d: Decision) -> None:
        if not self._classes:
            return
        row = np.array([[self._classes.index(d.label), *d.output]], np.float64).T
        self._rec.write(self.decision_id, row, np.array([d.last_sample_time]))

    def close(self) -> None:
        self._rec.close()


def _describe(err: OSError) -> str:
    """The OS error as people read it, with its symbol: ``No space left on device (ENOSPC)``."""
    name = errno.errorcode.get(err.errno or 0)
    text = err.strerror or str(err)
    return f"{text} ({name})" if name else text
