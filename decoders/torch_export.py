"""The one path from a torch module to an ONNX decoder graph.

Every torch decoder in this package (EEGNet, the SSVEP DNN, RL-EEGNet) is exported by
:func:`export_module`, so they share the input name, the dynamic batch dimension, the
opset and the checks.

The exporter is torch's dynamo-based one (``torch.onnx.export(..., dynamo=True)``,
which needs ``onnxscript``): it traces the module with ``torch.export`` and translates
the ATen graph with onnxscript. Its lowest implemented opset is 18, so a request for
:data:`bci.decoders.base.OPSET` (17) would go through onnx's version converter, which has
no down-adapter for operators such as ``Pad`` and then silently leaves the model at 18.
The graphs are therefore exported at ``max(OPSET, 18)`` — opset 18 in practice, which
every onnxruntime this project supports (≥ 1.18) runs.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import onnx
import torch
from bci.decoders.base import OPSET

#: Lowest opset the dynamo exporter has translations for (checked with torch 2.11, 2.13).
DYNAMO_MIN_OPSET = 18
#: The opset the exported graphs carry.
EXPORT_OPSET = max(OPSET, DYNAMO_MIN_OPSET)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    # The exporter logs a warning per missing optional package (torchvision ops) and
    # emits deprecation warnings from torch.export internals; none concern the result,
    # which export_module checks itself.
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_module(
    module: torch.nn.Module, input_shape: tuple[int, ...], *,
    output_names: Sequence[str] = ("probabilities",),
) -> onnx.ModelProto:
    """Export a torch module as a self-contained ONNX graph with a dynamic batch.

    Parameters
    ----------
    module : torch.nn.Module
        Takes a float32 tensor of shape ``(batch, *input_shape)``. It is exported in
        evaluation mode (dropout off, batch norm on running statistics), from a CPU
        copy, so the caller's module keeps its device and its training mode.
    input_shape : tuple of int
        Shape of one input without the batch axis, e.g. ``(n_channels, n_times)`` or
        ``(n_bands, n_channels, n_times)``.
    output_names : sequence of str
        Names of the graph outputs, in the order the module returns them.

    Returns
    -------
    model : onnx.ModelProto
        One float32 input ``"x"`` of shape ``("batch", *input_shape)``, opset
        :data:`EXPORT_OPSET`, weights stored inside the proto (no external data).

    Raises
    ------
    ValueError
        If ``input_shape`` is not a tuple of positive integers.
    RuntimeError
        If the exported graph does not have the promised input, or fails the ONNX
        checker.
    """
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, int | np.integer) and d > 0 for d in shape):
        raise ValueError(f"expected input_shape as positive integers without the batch "
                         f"axis, e.g. (n_channels, n_times), found {input_shape!r}")
    shape = tuple(int(d) for d in shape)
    cpu = copy.deepcopy(module).cpu().eval()
    # A batch of 2, not 1: torch.export specialises size-0/1 dimensions to constants,
    # which would pin the batch axis despite the dynamic_shapes declaration.
    example = torch.zeros((2, *shape), dtype=torch.float32)
    batch = torch.export.Dim("batch")
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            cpu, (example,), dynamo=True, input_names=["x"],
            output_names=list(output_names), opset_version=EXPORT_OPSET,
            dynamic_shapes=({0: batch},), external_data=False, optimize=True,
            verbose=False, report=False,
        )
    model = program.model_proto
    _check_exported(model, shape, list(output_names))
    return model


def _check_exported(model: onnx.ModelProto, shape: tuple[int, ...], outputs: list[str]) -> None:
    """The exporter's promises that the runtime relies on; fail loudly if one breaks."""
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise RuntimeError(f"exported graph keeps weight {tensor.name!r} in external "
                               f"data; expected one self-contained proto")
    inputs = [i for i in model.graph.input]
    if [i.name for i in inputs] != ["x"]:
        raise RuntimeError(f"exported graph: expected one input 'x', found "
                           f"{[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    found = tuple(d.dim_param or d.dim_value for d in dims)
    if found != ("batch", *shape):
        raise RuntimeError(f"exported graph: expected input shape {('batch', *shape)}, "
                           f"found {found}")
    names = [o.name for o in model.graph.output]
    if names != outputs:
        raise RuntimeError(f"exported graph: expected outputs {outputs}, found {names}")
    onnx.checker.check_model(model)
