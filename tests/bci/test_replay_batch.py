"""Replay with windows batched into one onnxruntime call, and filtering in a second
thread: the decisions file is byte-for-byte the one of one window at a time."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from bci.decoders.base import classifier_graph
from bci.decoders.onnx_graphs import eegnet_sized_model, linear_softmax_model
from onnx import helper

from bci.datasets.synthetic import make_recording, pick_channels
from bci.decoder import OnnxDecoder
from bci.runner import _prefetched, run_replay
from bci.session import SessionConfig
from bci.spec import DecoderSpec, WindowSpec, write_spec

SFREQ = 250.0
CH = pick_channels(8, paradigm="mi")
CLASSES = ["left", "right", "feet", "rest"]


def _spec(n_channels: int) -> DecoderSpec:
    return DecoderSpec(
        paradigm="mi", classes=CLASSES, ch_names=CH[:n_channels], sfreq=SFREQ,
        window=WindowSpec(mode="sliding", length=1.0, step=0.1),
        preprocessing=[{"kind": "bandpass", "l_freq": 1.0, "h_freq": 40.0},
                       {"kind": "car"}, {"kind": "decimate", "factor": 2}])


def _batch_dependent_model(weights: np.ndarray) -> object:
    """softmax(z + mean of z over the batch): batch 1 and batch n differ, for real."""
    n_classes, n_channels, n_times = weights.shape
    inits = {"w": weights.reshape(n_classes, -1), "b": np.zeros(n_classes, np.float32),
             "shape": np.array([-1, n_channels * n_times], np.int64)}
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["z"], transB=1),
        helper.make_node("ReduceMean", ["z"], ["m"], axes=[0], keepdims=1),
        helper.make_node("Add", ["z", "m"], ["zm"]),
        helper.make_node("Softmax", ["zm"], ["y"], axis=-1),
    ]
    return classifier_graph(nodes, inits, (n_channels, n_times), n_classes, "batch_mean")


def _batch_size_dependent_model(weights: np.ndarray, *, exact: tuple[int, int]) -> object:
    """softmax(z + 1e-3·((n − a)(n − b))²), n the batch size: exact only at n = a or b."""
    n_classes, n_channels, n_times = weights.shape
    a, b = exact
    inits = {"w": weights.reshape(n_classes, -1), "b": np.zeros(n_classes, np.float32),
             "shape": np.array([-1, n_channels * n_times], np.int64),
             "zero": np.array([0], np.int64), "a": np.array([a], np.float32),
             "bb": np.array([b], np.float32), "eps": np.array([1e-3], np.float32)}
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["z"], transB=1),
        helper.make_node("Shape", ["x"], ["dims"]),
        helper.make_node("Gather", ["dims", "zero"], ["n_int"], axis=0),
        helper.make_node("Cast", ["n_int"], ["n"], to=1),
        helper.make_node("Sub", ["n", "a"], ["na"]),
        helper.make_node("Sub", ["n", "bb"], ["nb"]),
        helper.make_node("Mul", ["na", "nb"], ["p"]),
        helper.make_node("Mul", ["p", "p"], ["p2"]),
        helper.make_node("Mul", ["p2", "eps"], ["shift"]),
        helper.make_node("Add", ["z", "shift"], ["zs"]),
        helper.make_node("Softmax", ["zs"], ["y"], axis=-1),
    ]
    return classifier_graph(nodes, inits, (n_channels, n_times), n_classes, "batch_size")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(0)
    n_times = 125  # 1 s at 125 Hz after decimation
    w = (rng.standard_normal((4, 8, n_times)) * 3e3).astype(np.float32)
    graphs = {
        "eegnet": eegnet_sized_model(8, n_times, 4, kernel=32),
        "linear": linear_softmax_model(w, np.zeros(4)),
        "batch_mean": _batch_dependent_model(w),
        "batch_size": _batch_size_dependent_model(w, exact=(1, 32)),
    }
    paths = {}
    for name, graph in graphs.items():
        paths[name] = folder / f"{name}.onnx"
        write_spec(graph, _spec(8), paths[name])
    return paths


@pytest.fixture(scope="module")
def recording():
    return make_recording(30.0, paradigm="mi", n_channels=8, sfreq=SFREQ, seed=5)


def _config(model) -> SessionConfig:
    return SessionConfig.from_dict({"decoder": {"path": str(model)}})


@pytest.mark.parametrize("name", ["eegnet", "linear", "batch_mean"])
def test_batched_and_prefetched_replay_writes_the_same_bytes(name, models, recording,
                                                             tmp_path, monkeypatch):
    calls = []
    run_batch = OnnxDecoder.run_batch

    def counted(self, windows):
        calls.append(len(windows))
        return run_batch(self, windows)

    monkeypatch.setattr(OnnxDecoder, "run_batch", counted)
    config = _config(models[name])
    one = tmp_path / "one.jsonl"
    result = run_replay(config, recording, output=one, batch=1, prefetch=False)
    assert calls == []  # one window per call
    assert result.n_decisions == 291  # windows end every 0.1 s from 1 s to 30 s
    for batch, prefetch in ((16, False), (7, True), (256, True), (1, True)):
        out = tmp_path / f"b{batch}-{prefetch}.jsonl"
        again = run_replay(config, recording, output=out, batch=batch, prefetch=prefetch,
                           chunk_size=50)
        assert out.read_bytes() == one.read_bytes(), (batch, prefetch)
        assert again.n_decisions == result.n_decisions
    assert calls and max(calls) == 256 and 16 in calls and 7 in calls  # batches happened


def test_a_model_whose_output_depends_on_the_batch_is_decoded_one_window_at_a_time(
        models, recording):
    decoder = OnnxDecoder(models["batch_mean"])
    x = (np.random.default_rng(1).standard_normal((5, 8, 125)) * 1e-5).astype(np.float32)
    batched = decoder.run_batch(x)
    single = np.stack([decoder.run(w) for w in x])
    assert not np.array_equal(batched, single)  # the model does differ when batched
    config = _config(models["batch_mean"])
    a = [d.output for d in run_replay(config, recording, batch=1).decisions]
    b = [d.output for d in run_replay(config, recording, batch=32).decisions]
    assert np.array_equal(np.stack(a), np.stack(b))


def test_each_new_batch_size_is_checked_against_one_window_at_a_time(models, recording):
    # exact at batch 1 and 32 only: the full batches pass the check, the last, shorter
    # one must not be trusted because the first batch was
    decoder = OnnxDecoder(models["batch_size"])
    x = (np.random.default_rng(1).standard_normal((32, 8, 125)) * 1e-5).astype(np.float32)
    single = np.stack([decoder.run(w) for w in x])
    assert np.array_equal(decoder.run_batch(x), single)
    assert not np.array_equal(decoder.run_batch(x[:5]), single[:5])
    config = _config(models["batch_size"])
    one = run_replay(config, recording, batch=1).decisions
    batched = run_replay(config, recording, batch=32).decisions
    assert len(one) % 32 != 0  # there is a shorter last batch
    assert np.array_equal(np.stack([d.output for d in one]),
                          np.stack([d.output for d in batched]))


def test_batch_must_be_a_positive_integer(models, recording):
    with pytest.raises(ValueError, match="batch must be a positive integer, found 0"):
        run_replay(_config(models["linear"]), recording, batch=0)


def test_prefetch_hands_over_windows_in_order_then_the_producers_error():
    def produce():
        yield from ((0, k) for k in range(50))
        raise RuntimeError("source failed after 50 windows")

    got = []
    with pytest.raises(RuntimeError, match="source failed after 50 windows"):
        for item in _prefetched(produce(), size=4):
            got.append(item)
    assert got == [(0, k) for k in range(50)]


def test_closing_a_prefetch_early_stops_its_thread():
    def endless():
        k = 0
        while True:
            yield 0, k
            k += 1

    windows = _prefetched(endless(), size=3)
    assert [next(windows) for _ in range(5)] == [(0, k) for k in range(5)]
    windows.close()
    assert not any(t.name == "bci-prefetch" for t in threading.enumerate())
