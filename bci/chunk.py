"""The unit of data that flows from a source through the chain: :class:`Chunk`.

Markers (cues, labels, events) travel separately as :class:`Markers` and are aligned to
data by timestamp, never by arrival order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Sample flag: the sample held NaN or Inf in at least one channel (it was zeroed).
FLAG_NONFINITE = np.uint8(1)
#: Sample flag: a gap (missing samples, a reconnect) precedes this sample.
FLAG_GAP = np.uint8(2)


@dataclass(slots=True)
class Chunk:
    """A block of consecutive samples.

    Attributes
    ----------
    data : ndarray of float32, shape (n_channels, n_samples) or (n_bands, n_channels, n_samples)
        The samples, time on the last axis (MNE's order).
    timestamps : ndarray of float64, shape (n_samples,)
        Seconds on the LSL clock (``local_clock()``), already time-corrected. In replay,
        the recording's own timestamps.
    flags : ndarray of uint8, shape (n_samples,) | None
        Per-sample quality flags (:data:`FLAG_NONFINITE`, :data:`FLAG_GAP`); ``None``
        means every sample is clean.
    """

    data: np.ndarray
    timestamps: np.ndarray
    flags: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        return self.timestamps.shape[0]

    def with_data(self, data: np.ndarray) -> Chunk:
        """The same samples in time with new values (a node's output)."""
        return Chunk(data, self.timestamps, self.flags)

    def sample_flags(self) -> np.ndarray:
        """Flags as an array (zeros when the chunk is clean)."""
        if self.flags is None:
            return np.zeros(self.n_samples, np.uint8)
        return self.flags


@dataclass(slots=True)
class Markers:
    """Events as a stream of ``(timestamp, value)`` pairs.

    Attributes
    ----------
    timestamps : ndarray of float64, shape (n_markers,)
        Seconds on the same clock as the data.
    values : list of str, length n_markers
        Marker values (integer markers are carried as their decimal string).
    """

    timestamps: np.ndarray = field(default_factory=lambda: np.empty(0))
    values: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self):
        return zip(self.timestamps.tolist(), self.values, strict=True)
