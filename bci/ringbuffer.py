"""A fixed-capacity ring buffer over the time axis that hands out contiguous windows."""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Keeps the most recent ``capacity`` samples of a multichannel signal.

    Every sample is stored twice (at ``i`` and ``i + capacity``), so the latest ``n``
    samples are always one contiguous slice: reading a window never wraps or copies in
    pieces.

    Parameters
    ----------
    shape : tuple of int
        Shape of one sample, e.g. ``(n_channels,)`` or ``(n_bands, n_channels)``.
    capacity : int
        Number of samples kept.
    dtype : numpy dtype
        Element type.
    """

    def __init__(self, shape: tuple[int, ...], capacity: int, *, dtype=np.float32) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 sample, found {capacity}")
        self.shape = tuple(shape)
        self.capacity = int(capacity)
        self._buf = np.zeros((*self.shape, 2 * self.capacity), dtype=dtype)
        self._pos = 0  # where the next sample goes, in [0, capacity)
        self.n_written = 0  # samples written since creation (absolute sample index)

    def write(self, data: np.ndarray) -> None:
        """Append samples.

        Parameters
        ----------
        data : ndarray, shape (*shape, n_samples)
        """
        n = data.shape[-1]
        if data.shape[:-1] != self.shape:
            raise ValueError(
                f"ring buffer holds samples of shape {self.shape}, found {data.shape[:-1]}"
            )
        if n > self.capacity:
            # only the last `capacity` samples survive; slot of absolute index i is i % cap
            skipped = n - self.capacity
            self.n_written += skipped
            self._pos = (self._pos + skipped) % self.capacity
            data = data[..., skipped:]
            n = self.capacity
        cap, pos = self.capacity, self._pos
        first = min(n, cap - pos)
        self._buf[..., pos : pos + first] = data[..., :first]
        self._buf[..., pos + cap : pos + cap + first] = data[..., :first]
        rest = n - first
        if rest:
            self._buf[..., :rest] = data[..., first:]
            self._buf[..., cap : cap + rest] = data[..., first:]
        self._pos = (pos + n) % cap
        self.n_written += n

    @property
    def first_index(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(0, self.n_written - self.capacity)

    def get(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start`` to ``stop`` (absolute indices, stop exclusive), as a view.

        Returns
        -------
        view : ndarray, shape (*shape, stop - start)
            Valid until the buffer is written again; copy it to keep it.
        """
        if start < self.first_index or stop > self.n_written or stop < start:
            raise IndexError(
                f"samples {start}:{stop} requested; buffer holds "
                f"{self.first_index}:{self.n_written}"
            )
        # the slot of absolute index i is i % cap; [start, stop) fits below 2*cap
        offset = start % self.capacity
        return self._buf[..., offset : offset + (stop - start)]

    def latest(self, n: int) -> np.ndarray:
        """The most recent ``n`` samples, as a view (see :meth:`get`)."""
        return self.get(self.n_written - n, self.n_written)

    def reset(self) -> None:
        self._buf[...] = 0
        self._pos = 0
        self.n_written = 0
