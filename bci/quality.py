"""Signal quality at the door: non-finite samples are flagged and kept out of the chain."""

from __future__ import annotations

import numpy as np

from bci.chain import Node
from bci.chunk import FLAG_NONFINITE, Chunk


class NonFiniteGuard(Node):
    """Flag samples holding NaN or Inf and replace those values by zero.

    Zeroing keeps every downstream filter's state finite (one NaN would otherwise poison
    an IIR filter for good); the flag makes the windower skip, and count, every window
    that touches the sample, so the zeros never reach a decoder as if they were data.
    """

    kind = "nonfinite_guard"

    def __init__(self) -> None:
        self.n_flagged_ = 0

    def process(self, chunk: Chunk) -> Chunk:
        data = chunk.data
        finite = np.isfinite(data)
        if finite.all():
            return chunk
        bad = ~finite.reshape(-1, data.shape[-1]).all(axis=0)
        self.n_flagged_ += int(bad.sum())
        flags = chunk.sample_flags() | np.where(bad, FLAG_NONFINITE, np.uint8(0))
        return Chunk(np.where(finite, data, np.float32(0)), chunk.timestamps, flags)

    def reset(self) -> None:
        self.n_flagged_ = 0
