"""What every trainable decoder provides, so that training, evaluation and the live
runtime treat them alike.

A trainable decoder is a scikit-learn classifier (hyperparameters only in ``__init__``,
keyword-only; fitted attributes end in ``_``) with three more things:

``preprocessing() -> list[dict]``
    The causal nodes (``bci.filters``/``bci.spatial`` configurations such as
    ``{"kind": "bandpass", "l_freq": 8.0, "h_freq": 30.0}`` or ``{"kind": "filterbank",
    "bands": [[8, 90], [16, 90]], "order": 4, "ftype": "cheby1", "rp": 0.5}``) the runtime
    runs on the stream, after picking the decoder's channels and before cutting windows.
    ``fit`` and ``predict_proba`` receive windows that went through exactly these nodes
    (``bci.training_data.extract_windows`` cuts them with the live code), and the list is
    stored in the ONNX file's ``bci`` spec, so the live loop repeats them.

``fit(X, y)``, ``predict_proba(X)``
    ``X`` has shape ``(n_windows, n_channels, n_times)``, or ``(n_windows, n_bands,
    n_channels, n_times)`` after a filter bank, float32, in volts. ``y`` holds class
    labels (strings). ``predict_proba`` returns ``(n_windows, n_classes)`` in the order of
    ``classes_``.

``to_onnx() -> onnx.ModelProto``
    The fitted decoder as one ONNX graph: one float32 input named ``"x"`` of shape
    ``("batch", *window_shape)`` (dynamic batch), one output ``(batch, n_classes)`` of
    probabilities in the order of ``classes_``. Its output matches ``predict_proba``
    within 1e-4. :func:`bci.spec.write_spec` then adds the ``bci`` spec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: ONNX opset every exporter in this package targets.
OPSET = 17


@runtime_checkable
class TrainableDecoder(Protocol):
    classes_: np.ndarray

    def preprocessing(self) -> list[dict[str, Any]]: ...

    def fit(self, X: np.ndarray, y: np.ndarray) -> TrainableDecoder: ...

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def to_onnx(self) -> Any: ...


def check_windows(X: Any, *, ndim: tuple[int, ...] = (3,), who: str = "decoder") -> np.ndarray:
    """Validate a batch of windows: finite float array with the expected rank.

    Raises
    ------
    ValueError
        Naming the expected and the found shape, or the non-finite values found.
    """
    X = np.asarray(X)
    if X.ndim not in ndim:
        names = {3: "(n_windows, n_channels, n_times)",
                 4: "(n_windows, n_bands, n_channels, n_times)"}
        expected = " or ".join(names[n] for n in ndim)
        raise ValueError(f"{who}: expected windows of shape {expected}, found {X.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        raise ValueError(f"{who}: expected floating-point windows, found dtype {X.dtype}")
    if not np.isfinite(X).all():
        raise ValueError(f"{who}: expected finite samples, found "
                         f"{int((~np.isfinite(X)).sum())} NaN/Inf")
    return X


def encode_labels(y: Any, n: int, *, who: str,
                  known: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class indices of ``y`` (labels as strings): in ``known``, or in sorted order.

    Returns
    -------
    classes : ndarray of str, shape (n_classes,)
        ``known``, or the sorted distinct labels (at least 2).
    indices : ndarray of int64, shape (n,)

    Raises
    ------
    ValueError
        Not one label per window; fewer than 2 classes; a label outside ``known``.
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{who}: expected one label per window, shape ({n},), "
                         f"found {y.shape}")
    labels = [str(v) for v in y.astype(str)]
    if known is None:
        classes, idx = np.unique(np.asarray(labels), return_inverse=True)
        if classes.size < 2:
            raise ValueError(f"{who}: expected at least 2 classes, found {classes.tolist()}")
        return classes, idx.astype(np.int64)
    unknown = sorted(set(labels) - set(known.tolist()))
    if unknown:
        raise ValueError(f"{who}: expected labels among {known.tolist()}, found {unknown}")
    lookup = {c: i for i, c in enumerate(known.tolist())}
    return known, np.array([lookup[c] for c in labels], np.int64)


def classifier_graph(
    nodes: Sequence[onnx.NodeProto],
    initializers: Mapping[str, np.ndarray] | Sequence[onnx.TensorProto],
    window_shape: Sequence[int], n_classes: int, name: str, *, doc: str = "",
) -> onnx.ModelProto:
    """Wrap graph nodes into a checked decoder model with the contract's input and output.

    Parameters
    ----------
    nodes : sequence of onnx.NodeProto
        Reading ``"x"`` and writing ``"y"``.
    initializers : mapping of name to ndarray, or sequence of onnx.TensorProto
    window_shape : sequence of int
        Shape of one window without the batch axis.
    n_classes : int
    name, doc : str
        Graph name and the model's doc string.

    Returns
    -------
    model : onnx.ModelProto
        Float32 input ``"x"`` ``("batch", *window_shape)``, float32 output ``"y"``
        ``("batch", n_classes)``, opset :data:`OPSET`, IR version 8.
    """
    if isinstance(initializers, Mapping):
        initializers = [numpy_helper.from_array(np.asarray(v), k)
                        for k, v in initializers.items()]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *window_shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n_classes])
    graph = helper.make_graph(list(nodes), name, [x], [y], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="bci-runtime")
    model.ir_version = 8  # readable by older onnxruntime releases too
    if doc:
        model.doc_string = doc
    onnx.checker.check_model(model)
    return model
