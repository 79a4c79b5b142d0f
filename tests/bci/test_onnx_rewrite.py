"""The spatial-first rewrite of EEGNet-style first blocks: exact, and only where it applies."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from bci.decoders.base import classifier_graph
from bci.decoders.onnx_graphs import eegnet_sized_model
from onnx import TensorProto, helper, numpy_helper

from bci.decoder import OnnxDecoder
from bci.onnx_rewrite import spatial_first
from bci.spec import DecoderSpec, WindowSpec, write_spec

RTOL, ATOL = 1e-4, 1e-6


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _expose(model: onnx.ModelProto, *names: str) -> onnx.ModelProto:
    """A copy with tensors ``names`` added as graph outputs (type from shape inference).

    Softmax outputs hide most of an error in the logits; comparing the spatial block's
    output itself is the strict check.
    """
    out = onnx.shape_inference.infer_shapes(model)
    known = {v.name: v for v in out.graph.value_info}
    out.graph.output.extend(known[n] for n in names)
    return out


def _outputs(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    return _session(model).run(None, {"x": x})


def _assert_same(original: onnx.ModelProto, rewritten: onnx.ModelProto, x: np.ndarray) -> None:
    for a, b in zip(_outputs(original, x), _outputs(rewritten, x), strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL)


def _with_biases(model: onnx.ModelProto, seed: int) -> onnx.ModelProto:
    """``model`` with random, non-zero conv biases (eegnet_sized_model's are all zero)."""
    rng = np.random.default_rng(seed)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for tensor in out.graph.initializer:
        if tensor.name in ("b_temporal", "b_spatial"):
            b = rng.standard_normal(tensor.dims[0]).astype(np.float32)
            tensor.CopyFrom(numpy_helper.from_array(b, tensor.name))
    return out


@pytest.mark.parametrize("n_channels", [8, 64])
@pytest.mark.parametrize("kernel", [64, 33])
def test_eegnet_sized_model_is_rewritten_exactly(n_channels, kernel):
    n_times = 125
    model = _with_biases(eegnet_sized_model(n_channels, n_times, 4, kernel=kernel), seed=kernel)
    model = _expose(model, "c2", "logits")
    rewritten, count = spatial_first(model)
    assert count == 1
    onnx.checker.check_model(rewritten, full_check=True)
    ops = [n.op_type for n in rewritten.graph.node]
    assert ops == [n.op_type for n in model.graph.node]  # one Conv pair for another
    convs = [n for n in rewritten.graph.node if n.op_type == "Conv"][:2]
    inits = {t.name: numpy_helper.to_array(t) for t in rewritten.graph.initializer}
    assert inits[convs[0].input[1]].shape == (16, 1, n_channels, 1)  # channels mixed first
    assert inits[convs[1].input[1]].shape == (16, 1, 1, kernel)  # then filtered, depthwise
    assert "w_temporal" not in inits and "w_spatial" not in inits
    rng = np.random.default_rng(n_channels + kernel)
    for batch in (1, 5):
        x = rng.standard_normal((batch, n_channels, n_times)).astype(np.float32)
        _assert_same(model, rewritten, x)


def test_metadata_and_the_input_model_are_kept(tmp_path):
    model = eegnet_sized_model(8, 64, 2, kernel=16)
    spec = DecoderSpec(paradigm="mi", classes=["a", "b"], ch_names=[f"E{i}" for i in range(8)],
                       sfreq=128.0, window=WindowSpec(mode="sliding", length=0.5, step=0.25))
    write_spec(model, spec, tmp_path / "m.onnx", optimize=False)
    model = onnx.load(str(tmp_path / "m.onnx"))
    before = model.SerializeToString()
    rewritten, count = spatial_first(model)
    assert count == 1
    assert model.SerializeToString() == before  # the argument is not modified
    assert {p.key: p.value for p in rewritten.metadata_props} == \
        {p.key: p.value for p in model.metadata_props}


def _two_convs(*, between: str | None = None, constant_weight: bool = True,
               bn: dict[str, np.ndarray] | None = None, temporal_pads=(0, 3, 0, 4),
               seed: int = 0) -> onnx.ModelProto:
    """x (N, C, T) → temporal Conv (F1=4, 1×8) → [between] → depthwise spatial Conv (D=2).

    ``between`` names an elementwise op ("Relu") or "BatchNormalization" (with ``bn``'s
    gamma, beta, mean, var); ``constant_weight=False`` computes the spatial weight from
    an initializer (Identity), so it is not a constant initializer.
    """
    rng = np.random.default_rng(seed)
    c, t, f1, d, k = 6, 40, 4, 2, 8
    inits = {
        "axes": np.array([1], np.int64),
        "wt": rng.standard_normal((f1, 1, 1, k)).astype(np.float32),
        "bt": rng.standard_normal(f1).astype(np.float32),
        "ws": rng.standard_normal((f1 * d, 1, c, 1)).astype(np.float32),
        "bs": rng.standard_normal(f1 * d).astype(np.float32),
        "flat": np.array([-1, f1 * d * t], np.int64),
    }
    nodes = [helper.make_node("Unsqueeze", ["x", "axes"], ["x4"]),
             helper.make_node("Conv", ["x4", "wt", "bt"], ["c1"], pads=list(temporal_pads))]
    link = "c1"
    if between == "BatchNormalization":
        for key, value in (bn or {}).items():
            inits[key] = value.astype(np.float32)
        nodes.append(helper.make_node("BatchNormalization", ["c1", "gamma", "beta", "mean",
                                                             "var"], ["n1"], epsilon=1e-3))
        link = "n1"
    elif between:
        nodes.append(helper.make_node(between, ["c1"], ["n1"]))
        link = "n1"
    ws = "ws"
    if not constant_weight:
        nodes.append(helper.make_node("Identity", ["ws"], ["ws_run"]))
        ws = "ws_run"
    nodes += [helper.make_node("Conv", [link, ws, "bs"], ["c2"], group=f1),
              helper.make_node("Reshape", ["c2", "flat"], ["y"])]
    model = classifier_graph(nodes, inits, (c, t), f1 * d * t, "two_convs")
    return model


def test_batch_norm_between_the_convs_is_folded():
    rng = np.random.default_rng(3)
    bn = {"gamma": rng.standard_normal(4), "beta": rng.standard_normal(4),
          "mean": rng.standard_normal(4), "var": rng.uniform(0.5, 2.0, 4)}
    model = _two_convs(between="BatchNormalization", bn=bn)
    rewritten, count = spatial_first(model)
    assert count == 1
    assert [n.op_type for n in rewritten.graph.node] == ["Unsqueeze", "Conv", "Conv", "Reshape"]
    onnx.checker.check_model(rewritten, full_check=True)
    for batch in (1, 5):
        x = rng.standard_normal((batch, 6, 40)).astype(np.float32)
        _assert_same(model, rewritten, x)


@pytest.mark.parametrize("case", ["relu_between", "weight_not_constant", "weight_is_input",
                                  "pads_across_channels", "intermediate_also_read"])
def test_graphs_outside_the_pattern_are_left_unchanged(case):
    if case == "relu_between":
        model = _two_convs(between="Relu")
    elif case == "weight_not_constant":
        model = _two_convs(constant_weight=False)
    elif case == "pads_across_channels":
        model = _two_convs(temporal_pads=(1, 3, 1, 4))
        # the spatial kernel then spans C of the C + 2 padded rows: still a valid graph
    elif case == "weight_is_input":
        # An initializer listed as a graph input may be fed at run time.
        model = _two_convs()
        ws = helper.make_tensor_value_info("ws", TensorProto.FLOAT, [8, 1, 6, 1])
        model.graph.input.append(ws)
    else:
        model = _two_convs()
        c1 = helper.make_tensor_value_info("c1", TensorProto.FLOAT, None)
        model.graph.output.append(c1)
    before = model.SerializeToString()
    rewritten, count = spatial_first(model)
    assert count == 0
    assert rewritten.SerializeToString() == before


def test_a_trained_eegnet_export_is_rewritten():
    if importlib.util.find_spec("torch") is None or \
            importlib.util.find_spec("onnxscript") is None:
        pytest.skip("torch and onnxscript are needed to export an EEGNet")
    import torch
    from bci.decoders.eegnet import EEGNet
    from bci.decoders.torch_export import export_module

    torch.manual_seed(0)
    net = EEGNet(8, 128, 3, kernel_length=33)
    # Batch norms with non-trivial statistics, as after training, so that folding them
    # (into the convs by the exporter, or by the rewrite) is exercised.
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.normal_()
            module.bias.data.normal_()
    model = export_module(net, (8, 128), output_names=("logits",))
    rewritten, count = spatial_first(model)
    if count == 0:
        ops = [n.op_type for n in model.graph.node]
        pytest.skip(f"the exported EEGNet has no temporal → spatial conv pair: {ops}")
    assert count >= 1
    x = np.random.default_rng(1).standard_normal((5, 8, 128)).astype(np.float32)
    _assert_same(model, rewritten, x)
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_outputs(rewritten, x)[0], expected, rtol=1e-3, atol=1e-4)


@pytest.fixture
def eegnet_file(tmp_path):
    model = _with_biases(eegnet_sized_model(8, 64, 2, kernel=16), seed=5)
    spec = DecoderSpec(paradigm="mi", classes=["a", "b"], ch_names=[f"E{i}" for i in range(8)],
                       sfreq=128.0, window=WindowSpec(mode="sliding", length=0.5, step=0.25))
    path = tmp_path / "eegnet.onnx"
    write_spec(model, spec, path, optimize=False)  # a file exported elsewhere, as it is
    return path, model


def test_onnx_decoder_serves_the_rewritten_graph(eegnet_file):
    path, model = eegnet_file
    optimized = OnnxDecoder(path, optimize=True)
    plain = OnnxDecoder(path)
    assert optimized.rewrites_ == 1 and plain.rewrites_ == 0
    assert optimized.spec == plain.spec and optimized.input_shape() == (8, 64)
    x = np.random.default_rng(2).standard_normal((8, 64)).astype(np.float32)
    np.testing.assert_array_equal(plain.run(x), _outputs(model, x[None])[0][0])
    np.testing.assert_allclose(optimized.run(x), plain.run(x), rtol=RTOL, atol=ATOL)
    stack = np.random.default_rng(3).standard_normal((4, 8, 64)).astype(np.float32)
    np.testing.assert_allclose(optimized.run_batch(stack), plain.run_batch(stack),
                               rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("table", "rewrites"), [("", 0), ("optimize = true\n", 1)])
def test_session_decoder_optimize_key(eegnet_file, tmp_path, table, rewrites):
    import mne

    from bci.pipeline import Pipeline
    from bci.session import SessionConfig

    path, _ = eegnet_file
    session = tmp_path / "s.toml"
    session.write_text(f'[source]\nstream = "x"\n\n[decoder]\npath = "{path}"\n{table}')
    config = SessionConfig.load(session)
    info = mne.create_info([f"E{i}" for i in range(8)], 128.0, "eeg")
    assert Pipeline(config, info, clock=lambda: 0.0).decoder.rewrites_ == rewrites
    assert config.with_model(path).decoder.optimize is (rewrites == 1)


def test_files_written_by_the_project_hold_the_rewritten_graph(tmp_path):
    """write_spec rewrites before saving: the host serves the cheap graph as it is."""
    model = _with_biases(eegnet_sized_model(8, 64, 2, kernel=16), seed=6)
    spec = DecoderSpec(paradigm="mi", classes=["a", "b"], ch_names=[f"E{i}" for i in range(8)],
                       sfreq=128.0, window=WindowSpec(mode="sliding", length=0.5, step=0.25))
    write_spec(model, spec, tmp_path / "m.onnx")
    written = onnx.load(str(tmp_path / "m.onnx"))
    assert spatial_first(written)[1] == 0  # nothing left to rewrite
    assert spatial_first(model)[1] == 1
    x = np.random.default_rng(4).standard_normal((3, 8, 64)).astype(np.float32)
    _assert_same(model, written, x)
    served = OnnxDecoder(tmp_path / "m.onnx", optimize=True)
    assert served.rewrites_ == 0
