"""Exact graph rewrites: applied by :func:`bci.spec.write_spec` when a model is saved
(so the runtime serves the cheap graph with onnxruntime alone), and by the decoder host
on request (``[decoder] optimize = true``) for models exported elsewhere.

:func:`spatial_first` reorders EEGNet's first block. EEGNet (and every network built like
it) convolves each of the C channels with F1 temporal kernels, then mixes the channels
with a depthwise spatial convolution that makes D outputs per temporal filter. Both
steps are linear with nothing but (inference-mode) batch norm between them, one acts
along time only and the other along channels only, so they commute: mixing the
channels first and filtering the D·F1 spatial signals afterwards computes the same
function with ~C/D times fewer multiply-adds in the temporal convolution (64 channels,
D = 2: 4.1 M → 0.26 M per window of 125 samples and kernel 64). The rewrite is exact in
real arithmetic; in float32 the outputs differ by rounding only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["spatial_first"]

#: BatchNormalization attributes whose values keep it a per-channel affine map.
_BN_INFERENCE = {"epsilon": None, "momentum": None, "training_mode": 0, "spatial": 1,
                 "is_test": 1}


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Nodes of ``graph`` and of every subgraph (If/Loop/Scan bodies), depth first."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _all_nodes(sub)


class _Graph:
    """What the matcher needs to know about the main graph: constants and consumers."""

    def __init__(self, model: onnx.ModelProto) -> None:
        graph = model.graph
        # An initializer also listed as a graph input may be overridden at run time, so
        # it is not a constant.
        overridable = {i.name for i in graph.input}
        self.constants = {t.name: t for t in graph.initializer if t.name not in overridable}
        # Subgraphs may read outer-scope tensors by name: count those reads too, so a
        # tensor an If branch uses is never treated as private to the pair.
        self.uses = Counter(name for node in _all_nodes(graph) for name in node.input if name)
        self.outputs = {o.name for o in graph.output}
        #: A node of the main graph reading each tensor (the only one where ``private``).
        self.reader: dict[str, onnx.NodeProto] = {}
        for node in graph.node:
            for name in node.input:
                self.reader.setdefault(name, node)

    def array(self, name: str) -> np.ndarray | None:
        """The float32 constant called ``name``, or None (not a constant, or another type)."""
        tensor = self.constants.get(name)
        if tensor is None or tensor.data_type != onnx.TensorProto.FLOAT:
            return None
        return numpy_helper.to_array(tensor).astype(np.float64)

    def private(self, name: str) -> bool:
        """Whether ``name`` is read by exactly one node and is not a graph output."""
        return self.uses[name] == 1 and name not in self.outputs


def _conv_geometry(node: onnx.NodeProto, weight: np.ndarray) -> dict[str, object] | None:
    """Group and pads of a 2-D Conv with unit strides and dilations, else None."""
    attrs = _attrs(node)
    if set(attrs) - {"group", "pads", "strides", "dilations", "kernel_shape", "auto_pad"}:
        return None
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad not in ("NOTSET", "VALID"):
        return None  # SAME_* pads depend on the input's length; not worth the case
    if list(attrs.get("strides", [1, 1])) != [1, 1]:
        return None
    if list(attrs.get("dilations", [1, 1])) != [1, 1]:
        return None
    if "kernel_shape" in attrs and list(attrs["kernel_shape"]) != list(weight.shape[2:]):
        return None
    pads = [0, 0, 0, 0] if auto_pad == "VALID" else list(attrs.get("pads", [0, 0, 0, 0]))
    if len(pads) != 4:
        return None
    return {"group": int(attrs.get("group", 1)), "pads": [int(p) for p in pads]}


def _bias(g: _Graph, node: onnx.NodeProto, n_out: int) -> np.ndarray | None:
    """The Conv's bias as float64 (zeros when it has none), or None if not a constant."""
    if len(node.input) < 3 or not node.input[2]:
        return np.zeros(n_out)
    b = g.array(node.input[2])
    return b if b is not None and b.shape == (n_out,) else None


def _batch_norm(g: _Graph, node: onnx.NodeProto, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Scale and shift of an inference-mode BatchNormalization over ``n`` channels."""
    if len(node.input) != 5 or len(node.output) != 1:
        return None  # the extra outputs exist only in training mode
    attrs = _attrs(node)
    for key, value in attrs.items():
        if key not in _BN_INFERENCE:
            return None
        if _BN_INFERENCE[key] is not None and value != _BN_INFERENCE[key]:
            return None
    params = [g.array(name) for name in node.input[1:]]
    if any(p is None or p.shape != (n,) for p in params):
        return None
    gamma, beta, mean, var = params
    scale = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    return scale, beta - mean * scale


def _match(g: _Graph, temporal: onnx.NodeProto) -> dict[str, object] | None:
    """The temporal → [batch norm →] spatial pattern starting at ``temporal``, or None."""
    if temporal.op_type != "Conv" or temporal.domain not in ("", "ai.onnx"):
        return None
    if len(temporal.input) < 2 or len(temporal.output) != 1:
        return None
    w_t = g.array(temporal.input[1])
    # (F1, 1, 1, K): one input channel, a kernel along time only
    if w_t is None or w_t.ndim != 4 or w_t.shape[1] != 1 or w_t.shape[2] != 1:
        return None
    f1 = w_t.shape[0]
    geom_t = _conv_geometry(temporal, w_t)
    if geom_t is None or geom_t["group"] != 1:
        return None
    pads_t = geom_t["pads"]
    if pads_t[0] != 0 or pads_t[2] != 0:
        return None  # padding across channels would not commute with the spatial mix
    b_t = _bias(g, temporal, f1)
    if b_t is None:
        return None

    consumed = [temporal]
    link = temporal.output[0]
    nxt = g.reader.get(link)
    if nxt is None or not g.private(link):
        return None
    if nxt.op_type == "BatchNormalization" and nxt.domain in ("", "ai.onnx") \
            and nxt.input[0] == link:
        affine = _batch_norm(g, nxt, f1)
        if affine is None:
            return None
        scale, shift = affine
        w_t = w_t * scale[:, None, None, None]
        b_t = b_t * scale + shift
        consumed.append(nxt)
        link = nxt.output[0]
        nxt = g.reader.get(link)
        if nxt is None or not g.private(link):
            return None

    spatial = nxt
    if spatial.op_type != "Conv" or spatial.domain not in ("", "ai.onnx"):
        return None
    if len(spatial.input) < 2 or spatial.input[0] != link or len(spatial.output) != 1:
        return None
    w_s = g.array(spatial.input[1])
    # (F1·D, 1, C, 1): a kernel across channels only, one input channel per group
    if w_s is None or w_s.ndim != 4 or w_s.shape[1] != 1 or w_s.shape[3] != 1:
        return None
    n_out, n_channels = w_s.shape[0], w_s.shape[2]
    geom_s = _conv_geometry(spatial, w_s)
    if geom_s is None or geom_s["group"] != f1 or n_out % f1 or geom_s["pads"] != [0] * 4:
        return None
    d = n_out // f1
    if d >= n_channels:
        return None  # channels-first would cost as much or more; leave it alone
    b_s = _bias(g, spatial, n_out)
    if b_s is None:
        return None
    consumed.append(spatial)
    return {"nodes": consumed, "w_t": w_t, "b_t": b_t, "pads": pads_t, "w_s": w_s,
            "b_s": b_s, "d": d, "input": temporal.input[0], "output": spatial.output[0]}


def _fresh(taken: set[str], base: str) -> str:
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


def spatial_first(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Mix channels before the temporal convolution in EEGNet-style first blocks.

    Finds every ``Conv`` with weight ``(F1, 1, 1, K)`` (group 1, one input channel, pads
    along time only), optionally followed by an inference-mode ``BatchNormalization``,
    feeding a depthwise ``Conv`` with weight ``(F1·D, 1, C, 1)`` and group F1 (no pads),
    where the tensors between them have no other reader. Each such pair becomes

    - ``Conv`` with the spatial weight ``(F1·D, 1, C, 1)``, group 1, no bias:
      ``(N, 1, C, T) → (N, F1·D, 1, T)``;
    - ``Conv`` with the temporal kernel of each output's parent filter, weight
      ``(F1·D, 1, 1, K)``, group F1·D, the original pads, bias
      ``b_s[g] + b_t[g // D] · Σ_c w_s[g, c]``: ``→ (N, F1·D, 1, T')``.

    Zero padding commutes with the spatial mix (a mix of zeros is zero), so the result
    equals the original up to float32 rounding, for any window length and batch.

    Parameters
    ----------
    model : onnx.ModelProto
        Not modified.

    Returns
    -------
    model : onnx.ModelProto
        A rewritten copy, or ``model`` itself when nothing matched.
    n_rewrites : int
        Pairs rewritten.

    Notes
    -----
    Only constant float32 initializers are folded (an initializer that is also a graph
    input may be fed at run time and is left alone), strides and dilations must be 1,
    and a pair is skipped when ``D ≥ C`` (no saving). Anything else the matcher does not
    recognise is left unchanged. Only the main graph is searched, not subgraphs.
    ``metadata_props`` (the ``bci`` spec) and everything outside the pair are copied.
    """
    g = _Graph(model)
    nodes = list(model.graph.node)
    matches = []
    claimed: set[int] = set()
    for node in nodes:
        found = _match(g, node)
        if found is None or any(id(n) in claimed for n in found["nodes"]):
            continue
        claimed.update(id(n) for n in found["nodes"])
        matches.append(found)
    if not matches:
        return model, 0

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    taken = {t.name for t in graph.initializer} | {i.name for i in graph.input}
    taken |= {name for node in _all_nodes(graph) for name in (*node.input, *node.output)}
    taken |= {node.name for node in _all_nodes(graph) if node.name}
    replaced: dict[int, list[onnx.NodeProto]] = {}  # index of the temporal conv → new nodes
    dropped: set[int] = set()
    gone: set[str] = set()  # intermediate tensors that no longer exist
    index = {id(n): k for k, n in enumerate(nodes)}
    new_inits = []
    for m in matches:
        w_t, b_t, w_s, b_s, d = m["w_t"], m["b_t"], m["w_s"], m["b_s"], m["d"]
        n_out = w_s.shape[0]
        parent = np.arange(n_out) // d  # group g of the depthwise conv reads filter g // D
        w_depth = w_t[parent]  # (F1·D, 1, 1, K)
        b_depth = b_s + b_t[parent] * w_s.reshape(n_out, -1).sum(axis=1)
        first = m["nodes"][0]
        stem = first.name or "temporal"
        names = {k: _fresh(taken, f"{stem}_spatial_first_{k}")
                 for k in ("w_mix", "mix", "w_depth", "b_depth")}
        new_inits += [numpy_helper.from_array(w_s.astype(np.float32), names["w_mix"]),
                      numpy_helper.from_array(w_depth.astype(np.float32), names["w_depth"]),
                      numpy_helper.from_array(b_depth.astype(np.float32), names["b_depth"])]
        mix = helper.make_node(
            "Conv", [m["input"], names["w_mix"]], [names["mix"]],
            name=_fresh(taken, f"{stem}_mix"), group=1, kernel_shape=list(w_s.shape[2:]),
            pads=[0, 0, 0, 0], strides=[1, 1], dilations=[1, 1])
        depth = helper.make_node(
            "Conv", [names["mix"], names["w_depth"], names["b_depth"]], [m["output"]],
            name=_fresh(taken, f"{stem}_depthwise"), group=int(n_out),
            kernel_shape=list(w_depth.shape[2:]), pads=m["pads"], strides=[1, 1],
            dilations=[1, 1])
        replaced[index[id(first)]] = [mix, depth]
        dropped.update(index[id(n)] for n in m["nodes"][1:])
        gone.update(n.output[0] for n in m["nodes"][:-1])

    # The new pair sits where the temporal conv was: its input exists there, and the
    # pair's output is produced no later than before, so the order stays topological.
    del graph.node[:]
    for k, node in enumerate(model.graph.node):
        if k in replaced:
            graph.node.extend(replaced[k])
        elif k not in dropped:
            graph.node.append(node)
    graph.initializer.extend(new_inits)
    still_read = {name for node in _all_nodes(graph) for name in node.input}
    graph_inputs = {i.name for i in graph.input}
    keep = [t for t in graph.initializer if t.name in still_read or t.name in graph_inputs]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    info = [v for v in graph.value_info if v.name not in gone]
    del graph.value_info[:]
    graph.value_info.extend(info)
    return out, len(matches)
