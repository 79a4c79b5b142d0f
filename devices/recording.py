"""An in-memory recording: what the file readers return and the file player sends."""

from __future__ import annotations

from dataclasses import dataclass

import mne
import numpy as np

from bci.chunk import Chunk, Markers


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
    """

    info: mne.Info
    data: np.ndarray
    timestamps: np.ndarray
    markers: Markers
    source: str = ""

    @property
    def sfreq(self) -> float:
        return float(self.info["sfreq"])

    def chunks(self, chunk_size: int = 32):
        """Yield consecutive :class:`Chunk` objects of ``chunk_size`` samples."""
        n = self.timestamps.shape[0]
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            yield Chunk(self.data[:, start:stop], self.timestamps[start:stop])

    def to_raw(self) -> mne.io.RawArray:
        """The recording as an MNE Raw, its markers as annotations (onsets from sample 0).

        Save it with ``raw.save("name_raw.fif")``; :func:`bci.devices.files.read_recording`
        reads it back with the same markers.
        """
        raw = mne.io.RawArray(self.data.astype(np.float64), self.info.copy(), verbose="error")
        onsets = np.asarray(self.markers.timestamps, np.float64) - self.timestamps[0]
        raw.set_annotations(mne.Annotations(onsets, 0.0, [str(v) for v in self.markers.values]))
        return raw
