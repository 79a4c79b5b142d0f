"""ONNX decoders written directly as graphs, without torch.

Two uses: a linear softmax decoder (a transparent model whose output numpy can
reproduce exactly, used to test the decoder host), and a network with EEGNet's layer
sizes (Lawhern et al. 2018) and random weights, used to load the runtime with a
realistic inference cost in benchmarks. Trained EEGNets come from ``decoders/`` with
torch; this one only has the right shape and cost.
"""

from __future__ import annotations

import numpy as np
import onnx
from bci.decoders.base import classifier_graph
from onnx import helper


def linear_softmax_model(weights: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """``softmax(W · vec(x) + b)`` for windows ``x`` of shape (n_channels, n_times).

    Parameters
    ----------
    weights : ndarray, shape (n_classes, n_channels, n_times)
    bias : ndarray, shape (n_classes,)
    """
    n_classes, n_channels, n_times = weights.shape
    inits = {
        "w": weights.reshape(n_classes, -1).astype(np.float32),
        "b": bias.astype(np.float32),
        "shape": np.array([-1, n_channels * n_times], np.int64),
    }
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], axis=-1),
    ]
    return classifier_graph(nodes, inits, (n_channels, n_times), n_classes, "linear_softmax")


def linear_softmax_reference(weights: np.ndarray, bias: np.ndarray, x: np.ndarray) -> np.ndarray:
    """What :func:`linear_softmax_model` computes, in numpy (float64)."""
    z = np.tensordot(x.astype(np.float64), weights.astype(np.float64), axes=([-2, -1], [1, 2]))
    z = z + bias
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def eegnet_sized_model(
    n_channels: int, n_times: int, n_classes: int, *, kernel: int = 64, f1: int = 8,
    d: int = 2, f2: int = 16, seed: int = 0,
) -> onnx.ModelProto:
    """A network with EEGNet-8,2's layers and sizes, random weights.

    temporal conv (F1, 1×kernel) → depthwise spatial conv (D·F1, C×1) → ELU → avg-pool 1×4
    → separable conv (depthwise 1×16 + pointwise F2) → ELU → avg-pool 1×8 → dense →
    softmax (batch norms folded into the convolutions, as in an exported model).
    """
    rng = np.random.default_rng(seed)
    f = lambda *s: (rng.standard_normal(s) / np.sqrt(np.prod(s[1:]))).astype(np.float32)  # noqa: E731
    t1 = n_times // 4
    t2 = t1 // 8
    inits = {
        "axes1": np.array([1], np.int64),
        "w_temporal": f(f1, 1, 1, kernel), "b_temporal": np.zeros(f1, np.float32),
        "w_spatial": f(d * f1, 1, n_channels, 1), "b_spatial": np.zeros(d * f1, np.float32),
        "w_depth": f(d * f1, 1, 1, 16), "b_depth": np.zeros(d * f1, np.float32),
        "w_point": f(f2, d * f1, 1, 1), "b_point": np.zeros(f2, np.float32),
        "w_dense": f(n_classes, f2 * t2), "b_dense": np.zeros(n_classes, np.float32),
        "flat_shape": np.array([-1, f2 * t2], np.int64),
    }
    pad_t = [0, (kernel - 1) // 2, 0, kernel // 2]
    nodes = [
        helper.make_node("Unsqueeze", ["x", "axes1"], ["x4"]),
        helper.make_node("Conv", ["x4", "w_temporal", "b_temporal"], ["c1"], pads=pad_t),
        helper.make_node("Conv", ["c1", "w_spatial", "b_spatial"], ["c2"], group=f1),
        helper.make_node("Elu", ["c2"], ["e1"]),
        helper.make_node("AveragePool", ["e1"], ["p1"], kernel_shape=[1, 4], strides=[1, 4]),
        helper.make_node("Conv", ["p1", "w_depth", "b_depth"], ["c3"], group=d * f1,
                         pads=[0, 7, 0, 8]),
        helper.make_node("Conv", ["c3", "w_point", "b_point"], ["c4"]),
        helper.make_node("Elu", ["c4"], ["e2"]),
        helper.make_node("AveragePool", ["e2"], ["p2"], kernel_shape=[1, 8], strides=[1, 8]),
        helper.make_node("Reshape", ["p2", "flat_shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w_dense", "b_dense"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], axis=-1),
    ]
    return classifier_graph(nodes, inits, (n_channels, n_times), n_classes, "eegnet_sized")
