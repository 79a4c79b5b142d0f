"""Spatial nodes: channel selection by name, common average and bipolar reference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mne
import numpy as np

from bci.chain import Node
from bci.chunk import Chunk
from bci.errors import ChannelMismatchError


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
        # every channel in stream order: nothing to pick (no node writes into its input)
        self._identity = np.array_equal(self.indices_, np.arange(len(info["ch_names"])))
        return mne.pick_info(info, self.indices_.tolist())

    def process(self, chunk: Chunk) -> Chunk:
        if self._identity:
            return chunk
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
        # what data.mean(axis=-2) computes, bit for bit, without its Python overhead
        mean = np.add.reduce(data, axis=-2, keepdims=True)
        mean /= data.shape[-2]
        return chunk.with_data(data - mean)


class BipolarReference(Node):
    """Bipolar montage: each output channel is ``anode − cathode``, sample by sample.

    The usual reference for sEEG/ECoG: neighbouring contacts of one electrode shaft,
    so that what is common to both (the far field, the original reference) cancels.
    Same as :func:`mne.set_bipolar_reference`, but causal and chunk by chunk.

    Parameters
    ----------
    anodes, cathodes : sequence of str
        Channel names, paired in order (matching ignores case).
    names : sequence of str | None
        Output names; default ``"anode-cathode"``.
    """

    kind = "bipolar"

    def __init__(self, *, anodes: Sequence[str], cathodes: Sequence[str],
                 names: Sequence[str] | None = None) -> None:
        for what, value in (("anodes", anodes), ("cathodes", cathodes)):
            if isinstance(value, str) or not value:
                raise ValueError(f"{what} must be a non-empty list of names, found {value!r}")
        if len(anodes) != len(cathodes):
            raise ValueError(f"expected one cathode per anode ({len(anodes)}), found "
                             f"{len(cathodes)}")
        same = [a for a, c in zip(anodes, cathodes, strict=True) if a.lower() == c.lower()]
        if same:
            raise ValueError(f"a bipolar pair needs two different contacts, found {same} "
                             "paired with themselves")
        self.anodes = list(anodes)
        self.cathodes = list(cathodes)
        self.names = (None if names is None else list(names))
        if self.names is not None and len(self.names) != len(self.anodes):
            raise ValueError(f"expected {len(self.anodes)} names, found {len(self.names)}")
        self.anode_idx_: np.ndarray | None = None
        self.cathode_idx_: np.ndarray | None = None

    def output_names(self) -> list[str]:
        if self.names is not None:
            return list(self.names)
        return [f"{a}-{c}" for a, c in zip(self.anodes, self.cathodes, strict=True)]

    def setup(self, info: mne.Info) -> mne.Info:
        self.anode_idx_ = match_channels(self.anodes, info["ch_names"])
        self.cathode_idx_ = match_channels(self.cathodes, info["ch_names"])
        out = mne.pick_info(info, self.anode_idx_.tolist())
        with out._unlock():
            for ch, name in zip(out["chs"], self.output_names(), strict=True):
                ch["ch_name"] = name
            out._update_redundant()
        return out

    def process(self, chunk: Chunk) -> Chunk:
        data = chunk.data
        return chunk.with_data(np.take(data, self.anode_idx_, axis=-2)
                               - np.take(data, self.cathode_idx_, axis=-2))

    def get_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"anodes": self.anodes, "cathodes": self.cathodes}
        if self.names is not None:
            params["names"] = self.names
        return params


class Standardize(Node):
    """Per-channel fixed affine scaling, ``(x − center) / scale``, optionally clipped.

    The parameters are fitted offline on training data (a z-score: mean and standard
    deviation; a robust scaler: median and interquartile range) and travel in the
    decoder's spec, so the live chain scales exactly as training did.

    Parameters
    ----------
    center, scale : sequence of float, length n_channels
        Per channel, in the order of the stream reaching this node.
    clip : float | None
        Clamp the result to ``[−clip, clip]`` (e.g. 20 after robust scaling).
    """

    kind = "standardize"

    def __init__(self, *, center: Sequence[float], scale: Sequence[float],
                 clip: float | None = None) -> None:
        c = np.asarray(center, np.float64)
        s = np.asarray(scale, np.float64)
        if c.ndim != 1 or c.size == 0 or c.shape != s.shape:
            raise ValueError(f"center and scale must be lists of one number per channel, "
                             f"found {c.size} centers and {s.size} scales")
        if not (np.isfinite(c).all() and np.isfinite(s).all() and (s > 0).all()):
            raise ValueError("center must be finite and scale finite and > 0 for every "
                             "channel")
        if clip is not None and not (np.isfinite(clip) and clip > 0):
            raise ValueError(f"clip must be a number > 0 or None, found {clip!r}")
        self.center = c.tolist()
        self.scale = s.tolist()
        self.clip = None if clip is None else float(clip)
        self._c = c.astype(np.float32)[:, None]
        self._inv = (1.0 / s).astype(np.float32)[:, None]

    def setup(self, info: mne.Info) -> mne.Info:
        if info["nchan"] != len(self.center):
            raise ChannelMismatchError(f"standardize: expected {len(self.center)} channels "
                                       f"(one center and scale each), found {info['nchan']}")
        return info

    def process(self, chunk: Chunk) -> Chunk:
        out = (chunk.data - self._c) * self._inv
        if self.clip is not None:
            np.clip(out, -self.clip, self.clip, out=out)
        return chunk.with_data(out.astype(np.float32, copy=False))

    def get_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"center": self.center, "scale": self.scale}
        if self.clip is not None:
            params["clip"] = self.clip
        return params
