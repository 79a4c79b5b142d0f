"""A BrainFlow board on LSL (``bci stream brainflow``): LabRecorder, ``bci record``,
``bci scope`` and any LSL program see the board as two streams.

The data outlet (float32, type ``"EEG"``) carries the channels of
:class:`~bci.devices.brainflow_source.BrainFlowSource` in volts, with their labels,
types and units in the stream description; the marker outlet (strings, type
``"Markers"``, irregular rate) carries the board's marker channel. Every sample keeps
the timestamp the source gave it: BrainFlow's wall-clock stamp mapped onto
``local_clock()`` (see :class:`~bci.devices.brainflow_source.UnixClockMap`), so no
"now" stamp is put on data that waited in BrainFlow's buffer. Markers go out just before
the chunk holding their sample. A lost board is prepared again by the source; the
outlets stay, and consumers see a gap in the timestamps.
"""

from __future__ import annotations

import threading

from bci.devices.brainflow_source import BrainFlowSource

from bci.errors import ConfigError, DeviceError
from bci.lslconfig import get_pylsl
from bci.source import SourceEvent


class BrainFlowBridge:
    """Pull a BrainFlow board and push it to LSL from a background thread.

    Parameters
    ----------
    source : BrainFlowSource
        The board (not yet opened; :meth:`start` opens it, :meth:`stop` closes it).
    name : str | None
        Data stream name (default: the source's, ``brainflow-<board>``).
    marker_name : str | None
        Marker stream name (default ``<name>-markers``).
    source_id : str | None
        LSL source id of the data stream (default: the source's, e.g.
        ``brainflow:cyton:/dev/ttyUSB0``); the marker stream gets ``<source_id>-markers``.
        Inlets use it to recover a restarted bridge.
    duration : float | None
        Stop after this many seconds of data (``None``: until :meth:`stop`).
    """

    def __init__(self, source: BrainFlowSource, *, name: str | None = None,
                 marker_name: str | None = None, source_id: str | None = None,
                 duration: float | None = None) -> None:
        self.source = source
        self.name = name or source.name
        self.marker_name = marker_name or f"{self.name}-markers"
        if self.name == self.marker_name:
            raise ConfigError(f"the data and marker streams need different names, found "
                              f"{self.name!r} for both")
        self.source_id = source_id or source.source_id
        if duration is not None and not duration > 0:
            raise ConfigError(f"duration: expected a positive number of seconds, found "
                              f"{duration!r}")
        self.duration = duration
        self.n_samples_sent = 0
        self.n_markers_sent = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outlet = None
        self._marker_outlet = None

    @property
    def events(self) -> list[SourceEvent]:
        """What the board did (``lost``, ``reconnected``, ``clock``)."""
        return self.source.events

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _data_info(self, pylsl):
        info = self.source.info
        sinfo = pylsl.StreamInfo(self.name, "EEG", len(info["ch_names"]), info["sfreq"],
                                 pylsl.cf_float32, self.source_id)
        desc = sinfo.desc()
        chans = desc.append_child("channels")
        for ch_name, ch_type in zip(info["ch_names"], info.get_channel_types(), strict=True):
            c = chans.append_child("channel")
            c.append_child_value("label", ch_name)
            c.append_child_value("type", ch_type.upper())
            c.append_child_value("unit", "volts" if ch_type in ("eeg", "ecg", "emg", "eog")
                                 else "")
        acq = desc.append_child("acquisition")
        acq.append_child_value("manufacturer", "BrainFlow")
        acq.append_child_value("model", self.source.label)
        return sinfo

    def start(self) -> BrainFlowBridge:
        """Open the board and the outlets and start pushing; returns once both are up."""
        if self._thread is not None:
            raise DeviceError(f"the bridge {self.name!r} was already started")
        pylsl = get_pylsl()
        self.source.open()
        try:
            # markers first, so that a client that resolved the data can find them too
            self._marker_outlet = pylsl.StreamOutlet(pylsl.StreamInfo(
                self.marker_name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
                f"{self.source_id}-markers"))
            self._outlet = pylsl.StreamOutlet(self._data_info(pylsl))
        except Exception:
            self.source.close()
            raise
        self._thread = threading.Thread(target=self._run, name=f"brainflow-bridge-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        limit = None if self.duration is None else round(self.duration * self.source.sfreq)
        try:
            while not self._stop.is_set():
                pulled = self.source.pull(0.05)
                if pulled is None:  # a playback file played out
                    return
                for t, value in pulled.markers:
                    self._marker_outlet.push_sample([value], float(t))
                    self.n_markers_sent += 1
                chunk = pulled.chunk
                if chunk is None:
                    continue
                n = chunk.data.shape[1]
                if limit is not None:
                    n = min(n, limit - self.n_samples_sent)
                self._outlet.push_chunk(chunk.data[:, :n].T.copy(),
                                        chunk.timestamps[:n].tolist())
                self.n_samples_sent += n
                if limit is not None and self.n_samples_sent >= limit:
                    return
        except BaseException as err:  # handed to the caller by stop()
            self.error = err

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the bridge ends (``duration`` over, file played, :meth:`stop`).

        Returns
        -------
        finished : bool
            ``False`` if the timeout ran out first.
        """
        if self._thread is None:
            raise DeviceError(f"the bridge {self.name!r} was not started")
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop pushing, close the board and withdraw the streams; re-raise the thread's
        error as :class:`DeviceError`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise DeviceError(f"the bridge {self.name!r} did not stop within {timeout} s")
        self.source.close()
        self._outlet = None  # the last reference: liblsl withdraws the stream
        self._marker_outlet = None
        if self.error is not None:
            error, self.error = self.error, None
            raise DeviceError(f"the bridge {self.name!r} failed: {type(error).__name__}: "
                              f"{error}") from error

    def __enter__(self) -> BrainFlowBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
