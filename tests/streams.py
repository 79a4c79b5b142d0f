"""A real LSL outlet that plays known samples in real time, for the live tests."""

from __future__ import annotations

import threading
import time

import numpy as np

from bci.lslconfig import get_pylsl


def make_outlet(name: str, ch_names: list[str], sfreq: float, *, source_id: str = "",
                fmt: str = "float32", chunk: int = 8):
    pylsl = get_pylsl()
    cf = {"float32": pylsl.cf_float32, "double64": pylsl.cf_double64}[fmt]
    info = pylsl.StreamInfo(name, "EEG", len(ch_names), sfreq, cf, source_id)
    chans = info.desc().append_child("channels")
    for ch in ch_names:
        c = chans.append_child("channel")
        c.append_child_value("label", ch)
        c.append_child_value("unit", "volts")
        c.append_child_value("type", "EEG")
    return pylsl.StreamOutlet(info, chunk_size=chunk)


def make_marker_outlet(name: str):
    pylsl = get_pylsl()
    info = pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
                            f"{name}-src")
    return pylsl.StreamOutlet(info)


class Player(threading.Thread):
    """Pushes ``data`` (n_channels, n_samples) in chunks at its real pace.

    Sample ``i`` is stamped ``t0 + i / sfreq`` (or ``t0 + offsets[i]``: an amplifier
    outage is a jump in the offsets, during which nothing is pushed) and pushed once its
    time has come; markers ``(sample_index, value)`` go out with their sample's timestamp,
    ``marker_lead`` seconds before that sample is pushed.
    """

    def __init__(self, outlet, data, sfreq, *, chunk=8, markers=(), marker_outlet=None,
                 t0=None, start_delay=0.2, offsets=None, marker_lead=0.0):
        super().__init__(daemon=True)
        self.outlet, self.data, self.sfreq, self.chunk = outlet, data, sfreq, chunk
        self.markers, self.marker_outlet = list(markers), marker_outlet
        self.t0, self.start_delay = t0, start_delay
        self.offsets = (np.arange(data.shape[1]) / sfreq if offsets is None
                        else np.asarray(offsets, np.float64))
        self.marker_lead = marker_lead
        self.stop_event = threading.Event()

    def start(self):
        """Start playing; unless ``t0`` was given, the first sample is due after the delay."""
        if self.t0 is None:
            self.t0 = get_pylsl().local_clock() + self.start_delay
        self.timestamps = self.t0 + self.offsets
        super().start()

    def _push_markers(self, pending, until):
        while pending and self.timestamps[pending[0][0]] <= until:
            i, value = pending.pop(0)
            self.marker_outlet.push_sample([value], self.timestamps[i])

    def run(self):
        pylsl = get_pylsl()
        n = self.data.shape[1]
        pending = sorted(self.markers) if self.marker_outlet is not None else []
        for start in range(0, n, self.chunk):
            stop = min(start + self.chunk, n)
            due = self.timestamps[stop - 1]
            while (wait := due - pylsl.local_clock()) > 0:
                self._push_markers(pending, pylsl.local_clock() + self.marker_lead)
                time.sleep(min(wait, 0.01))
            if self.stop_event.is_set():
                return
            self._push_markers(pending, max(due, pylsl.local_clock() + self.marker_lead))
            self.outlet.push_chunk(np.ascontiguousarray(self.data[:, start:stop].T),
                                   self.timestamps[start:stop].tolist())
