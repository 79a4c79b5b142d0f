"""Spatial nodes: channel selection by name and common average reference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mne
import numpy as np

from bci.chain import Node
from bci.chunk import Chunk


class ChannelMismatchError(ValueError):
    """The stream's channels do not provide what a node or decoder needs."""


class PickChannels(Node):
    """Select and reorder channels by name.

    Parameters
    ----------
    ch_names : sequence of str
        The output channels, in this order. Matching ignores case.
    """

    kind = "pick"

    def __init__(self, *, ch_names: Sequence[str]) -> None:
        if isinstance(ch_names, str) or not ch_names:
            raise ValueError(f"ch_names must be a non-empty list of names, found {ch_names!r}")
        self.ch_names = list(ch_names)
        self.indices_: np.ndarray | None = None

    def setup(self, info: mne.Info) -> mne.Info:
        self.indices_ = match_channels(self.ch_names, info["ch_names"])
        return mne.pick_info(info, self.indices_.tolist())

    def process(self, chunk: Chunk) -> Chunk:
        return chunk.with_data(np.take(chunk.data, self.indices_, axis=-2))

    def get_params(self) -> dict[str, Any]:
        return {"ch_names": self.ch_names}


def match_channels(wanted: Sequence[str], available: Sequence[str]) -> np.ndarray:
    """Indices into ``available`` of each name in ``wanted`` (case-insensitive).

    Raises
    ------
    ChannelMismatchError
        Naming the channels that are missing and those that were found.
    """
    lookup: dict[str, int] = {}
    for i, name in enumerate(available):
        lookup.setdefault(name.lower(), i)
    missing = [n for n in wanted if n.lower() not in lookup]
    if missing:
        raise ChannelMismatchError(
            f"expected channels {list(wanted)}; missing {missing} "
            f"from the stream's {len(available)} channels {list(available)}"
        )
    return np.array([lookup[n.lower()] for n in wanted], dtype=np.intp)


class CommonAverageReference(Node):
    """Subtract the mean over channels from every channel, sample by sample."""

    kind = "car"

    def process(self, chunk: Chunk) -> Chunk:
        data = chunk.data
        return chunk.with_data(data - data.mean(axis=-2, keepdims=True))
