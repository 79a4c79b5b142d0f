"""Causal processing nodes and the chain that runs them in order.

Every node is causal and stateful: ``process(chunk) -> chunk`` and ``reset()``. A node
keeps its state between chunks, so a recording processed in chunks of any size gives the
same samples as processed whole. Nodes are described by plain dictionaries
(``{"kind": "bandpass", "l_freq": 1.0, "h_freq": 40.0}``), which is how session files and
decoder specs declare a preprocessing chain.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import mne

from bci.chunk import Chunk
from bci.errors import ConfigError


class Node:
    """Base class of causal processing steps.

    Subclasses set ``kind`` (the name used in configuration), take their options as
    keyword-only ``__init__`` arguments, and implement :meth:`setup`, :meth:`process`
    and :meth:`reset`.
    """

    kind: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[Node]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Node.registry[cls.kind] = cls

    def setup(self, info: mne.Info) -> mne.Info:
        """Prepare for a stream described by ``info``; return the output's ``mne.Info``."""
        return info

    def process(self, chunk: Chunk) -> Chunk:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget all state, as if no sample had been seen."""

    def get_params(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this node."""
        return {}

    def to_config(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.get_params()}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def make_node(config: Mapping[str, Any], *, where: str = "chain") -> Node:
    """Build a node from its configuration dictionary.

    Parameters
    ----------
    config : mapping
        ``kind`` plus the node's keyword options.
    where : str
        Where the configuration came from, for error messages (e.g. ``"chain[2]"``).
    """
    import bci.filters
    import bci.spatial  # noqa: F401  (importing registers the nodes)

    if not isinstance(config, Mapping):
        raise ConfigError(f"{where}: expected a table with a 'kind' key, found {config!r}")
    kind = config.get("kind")
    if kind not in Node.registry:
        known = ", ".join(sorted(Node.registry))
        raise ConfigError(f"{where}.kind: expected one of {known}, found {kind!r}")
    options = {k: v for k, v in config.items() if k != "kind"}
    try:
        return Node.registry[kind](**options)
    except TypeError as err:
        raise ConfigError(f"{where} ({kind}): {err}") from None
    except ValueError as err:
        raise ConfigError(f"{where} ({kind}): {err}") from None


class Chain(Node):
    """Nodes applied in order.

    Parameters
    ----------
    nodes : iterable of Node
    """

    kind = ""

    def __init__(self, nodes: Iterable[Node] = ()) -> None:
        self.nodes = list(nodes)
        #: Seconds each node took per chunk, once :meth:`time_nodes` is called.
        self.node_times: list | None = None

    def time_nodes(self) -> None:
        """Measure each node's time per chunk from now on (``bci run --stats``).

        Costs two clock readings per node and chunk; summaries in bounded memory
        (:class:`bci.latency.StreamingQuantiles`), read with :meth:`node_summary`.
        """
        from bci.latency import StreamingQuantiles

        self.node_times = [StreamingQuantiles() for _ in self.nodes]

    def node_summary(self) -> list[tuple[str, dict[str, float]]]:
        """``(node, percentiles in ms)`` per node, in chain order (empty when not timed)."""
        if self.node_times is None:
            return []
        return [(n.kind or type(n).__name__, q.summary_ms())
                for n, q in zip(self.nodes, self.node_times, strict=True) if q.n]

    @classmethod
    def from_config(cls, configs: Iterable[Mapping[str, Any]], *, where: str = "chain") -> Chain:
        return cls(make_node(c, where=f"{where}[{i}]") for i, c in enumerate(configs))

    def setup(self, info: mne.Info) -> mne.Info:
        for node in self.nodes:
            info = node.setup(info)
        return info

    def process(self, chunk: Chunk) -> Chunk:
        if self.node_times is None:
            for node in self.nodes:
                chunk = node.process(chunk)
            return chunk
        t = time.perf_counter()
        for node, times in zip(self.nodes, self.node_times, strict=True):
            chunk = node.process(chunk)
            now = time.perf_counter()
            times.add(now - t)
            t = now
        return chunk

    def reset(self) -> None:
        for node in self.nodes:
            node.reset()

    def to_config(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [node.to_config() for node in self.nodes]

    def __repr__(self) -> str:
        return f"Chain({self.nodes!r})"


def check_positive(name: str, value: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be a positive number, found {value!r}")
    return float(value)

