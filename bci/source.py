"""Where the loop's data come from: one interface for every source.

An LSL inlet (:mod:`bci.devices.lsl_source`), a recording file
(:class:`bci.recording.RecordingSource`), and later other device SDKs all hand
:class:`bci.runner.Loop` the same thing: chunks of samples and the markers that came
with them. Everything that does not depend on the kind of source (gap, stall, NaN and
clock checks, recording, windowing, decoding) happens once, in the loop. Plug-in
sources are found by kind through :data:`bci.registry.sources`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import mne
import numpy as np

from bci.chunk import Chunk, Markers


@dataclass(slots=True)
class SourceEvent:
    """Something the loop or a source noticed about the stream.

    ``kind`` is ``gap``, ``stalled``, ``resumed``, ``clock`` or ``late_marker`` (a
    marker that came after data past its timestamp; found by the loop), or ``lost``,
    ``reconnected`` (told by a source); ``time`` is the source's clock.
    """

    kind: str
    time: float
    detail: dict = field(default_factory=dict)


@dataclass(slots=True)
class Pull:
    """What one :meth:`Source.pull` brought: new samples, new markers, either or neither.

    Attributes
    ----------
    chunk : Chunk | None
        Samples in time order, ``data`` float32 in volts; no flags (the loop sets them).
    markers : Markers
        Markers that arrived, on the data's clock, in any order.
    """

    chunk: Chunk | None = None
    markers: Markers = field(default_factory=Markers)


class Source(ABC):
    """A stream of samples (and markers) for :class:`bci.runner.Loop`.

    Attributes
    ----------
    live : bool
        The data arrive in real time with timestamps on :meth:`clock`: the loop looks
        for stalls and clock faults and decodes on its decode threads. A source that is
        not live (a file) can be replayed as fast as possible, deterministically.
    info : mne.Info
        The channels and nominal rate, set by :meth:`open`.
    name, source_id : str
        What the stream is called, for the session's recording.
    events : list of SourceEvent
        What the source itself noticed (``lost``, ``reconnected``), appended as it
        happens; the loop reports them with its own.
    """

    live: bool = False

    def __init__(self) -> None:
        self.info: mne.Info | None = None
        self.name = ""
        self.source_id = ""
        self.events: list[SourceEvent] = []

    @classmethod
    def from_config(cls, config: Any) -> Source:
        """A source for a session's ``[source]`` table (:class:`bci.session.SourceConfig`)."""
        raise NotImplementedError(f"{cls.__name__} is not built from a session's [source]")

    @staticmethod
    @abstractmethod
    def clock() -> float:
        """Seconds: the clock of the data's timestamps live, else a performance counter."""

    @abstractmethod
    def open(self) -> mne.Info:
        """Connect and return the stream's channel metadata."""

    @abstractmethod
    def pull(self, timeout: float) -> Pull | None:
        """Wait up to ``timeout`` s for data; return what arrived, or ``None`` once the
        source has ended for good (a recording played out; a live stream never ends)."""

    @abstractmethod
    def close(self) -> None:
        """Release the stream; safe to call twice."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CuedSource(Source):
    """Another source plus the markers the application itself gives with :meth:`mark`.

    A protocol knows its own cues: it sends them to its cue outlet and here, and the
    loop records them and hands them over with the data like any marker stream.

    Parameters
    ----------
    source : Source
        Where the samples (and any markers of its own) come from.
    """

    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source
        self.live = source.live
        self.events = source.events
        self._lock = threading.Lock()
        self._times: list[float] = []
        self._values: list[str] = []

    def clock(self) -> float:  # type: ignore[override]
        return self.source.clock()

    def open(self) -> mne.Info:
        self.info = self.source.open()
        self.name, self.source_id = self.source.name, self.source.source_id
        return self.info

    def mark(self, value: object, timestamp: float) -> None:
        """Add a marker stamped on the data's clock (thread-safe)."""
        with self._lock:
            self._times.append(float(timestamp))
            self._values.append(str(value))

    def pull(self, timeout: float) -> Pull | None:
        pulled = self.source.pull(timeout)
        with self._lock:
            times, values = self._times, self._values
            self._times, self._values = [], []
        if not values:
            return pulled
        if pulled is None:
            pulled = Pull()
        own = pulled.markers
        pulled.markers = Markers(
            np.concatenate([np.asarray(own.timestamps, np.float64), np.asarray(times)]),
            [*own.values, *values])
        return pulled

    def close(self) -> None:
        self.source.close()
