"""Load-time and runtime checks, bounded BLAS threads, labelled-only metrics, bounded memory."""

from __future__ import annotations

import json
import logging

import mne
import numpy as np
import pytest
import threadpoolctl
from bci.decoders.onnx_graphs import linear_softmax_model
from onnx import TensorProto, helper

from bci.chunk import Markers
from bci.cli import main
from bci.cli.session import _print_result
from bci.decision import Decision
from bci.decoder import NumpyDecoder, OnnxDecoder
from bci.errors import BCIError, ConfigError, ModelError
from bci.latency import LatencyLog
from bci.outputs import DecisionList
from bci.pipeline import Pipeline, load_decoder
from bci.recording import Recording, RecordingSource
from bci.runner import Loop, SessionResult, run_replay
from bci.session import SessionConfig
from bci.spec import DecoderSpec, WindowSpec, write_spec

CH = ["C3", "Cz", "C4"]
SSVEP = ["O1", "Oz", "O2"]


def clock() -> float:
    return 0.0


def _spec(classes: list[str]) -> DecoderSpec:
    return DecoderSpec(paradigm="mi", classes=classes, ch_names=CH, sfreq=128.0,
                       window=WindowSpec(mode="sliding", length=0.5, step=0.25))


def _session(tmp_path, text: str) -> SessionConfig:
    path = tmp_path / "session.toml"
    path.write_text(text)
    return SessionConfig.load(path)


def _fbcca(tmp_path, freqs: str = "[8.0, 10.0]", extra: str = "") -> SessionConfig:
    return _session(tmp_path, f"""
[window]
mode = "sliding"
length = 1.0
step = 0.5
{extra}
[decoder]
kind = "fbcca"
frequencies = {freqs}
[outputs]
lsl = false
""")


# --- BLAS threads -------------------------------------------------------------------


class _Spy:
    """An estimator that records the BLAS pools' thread counts while it predicts."""

    def __init__(self) -> None:
        self.seen: list[set[int]] = []

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
        self.seen.append({p["num_threads"] for p in blas})
        return np.full((len(x), 2), 0.5)


@pytest.mark.parametrize("threads", [1, 2])
def test_numpy_decoder_runs_with_the_configured_blas_threads(threads):
    if not any(p["user_api"] == "blas" for p in threadpoolctl.threadpool_info()):
        pytest.skip("no BLAS library found by threadpoolctl")
    spy = _Spy()
    dec = NumpyDecoder(spy, _spec(["a", "b"]), (3, 64), threads=threads)
    before = {p["num_threads"] for p in threadpoolctl.threadpool_info()}
    with threadpoolctl.threadpool_limits(limits=3):  # whatever the process had
        dec.run(np.zeros((3, 64), np.float32))
        dec.run(np.zeros((3, 64), np.float32))
        assert {p["num_threads"] for p in threadpoolctl.threadpool_info()
                if p["user_api"] == "blas"} == {3}  # restored after each decode
    assert spy.seen == [{threads}, {threads}]
    assert {p["num_threads"] for p in threadpoolctl.threadpool_info()} == before


def test_session_threads_reach_the_fbcca_decoder(tmp_path):
    config = _fbcca(tmp_path, extra="").__class__.from_dict(
        {"decoder": {"kind": "fbcca", "frequencies": [8.0, 10.0], "threads": 2},
         "window": {"mode": "sliding", "length": 1.0, "step": 0.5}, "outputs": {"lsl": False}})
    dec = load_decoder(config, mne.create_info(SSVEP, 256.0, "eeg"))
    assert isinstance(dec, NumpyDecoder) and dec.threads == 2


# --- load-time checks ---------------------------------------------------------------


def test_class_count_differing_from_a_static_model_output_is_refused_at_load(tmp_path):
    path = tmp_path / "three.onnx"
    write_spec(linear_softmax_model(np.zeros((3, 3, 64)), np.zeros(3)), _spec(["l", "r"]),
               path)
    with pytest.raises(ModelError, match=r"three.onnx: its spec names 2 classes \['l', 'r'\] "
                                         r"but the model outputs 3 values"):
        OnnxDecoder(path)


def _dynamic_output_model(tmp_path, classes: list[str]):
    # mean over time: (batch, channels, 64) -> (batch, channels): any number of outputs
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "channels", 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "k"])
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2], keepdims=0),
         helper.make_node("Softmax", ["m"], ["y"], axis=-1)], "dyn", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / f"dynamic{len(classes)}.onnx"
    write_spec(model, _spec(classes), path)
    return path


def test_class_count_differing_from_a_dynamic_model_output_is_refused_by_a_dry_run(tmp_path):
    info = mne.create_info(CH, 128.0, "eeg")
    config = SessionConfig.from_dict({"decoder": {"path": str(
        _dynamic_output_model(tmp_path, ["l", "r"]))}, "outputs": {"lsl": False}})
    assert OnnxDecoder(config.decoder.path).n_outputs is None
    with pytest.raises(ModelError, match=r"dynamic2.onnx: its spec names 2 classes .* outputs 3"):
        Pipeline(config, info, clock=clock)
    good = SessionConfig.from_dict({"decoder": {"path": str(
        _dynamic_output_model(tmp_path, ["a", "b", "c"]))}, "outputs": {"lsl": False}})
    assert Pipeline(good, info, clock=clock).decoder.n_outputs == 3


def test_missing_model_file_names_the_session_file_and_key(tmp_path):
    config = _session(tmp_path, '[decoder]\npath = "gone.onnx"\n')
    with pytest.raises(ConfigError, match=r"session.toml: decoder.path: file .*gone.onnx "
                                          r"does not exist"):
        Pipeline(config, mne.create_info(CH, 128.0, "eeg"), clock=clock)


def test_fbcca_frequency_above_nyquist_names_key_values_and_rate(tmp_path):
    with pytest.raises(ConfigError, match=r"session.toml: decoder.frequencies: expected "
                       r"frequencies below the Nyquist frequency 64 Hz of the stream \(128 Hz\), "
                       r"found \{'70Hz': 70.0\}"):
        Pipeline(_fbcca(tmp_path, "[8.0, 70.0]"), mne.create_info(SSVEP, 128.0, "eeg"),
                 clock=clock)


def test_fbcca_on_a_10_hz_stream_says_so_not_a_filter_bank_message(tmp_path):
    with pytest.raises(ConfigError) as err:
        Pipeline(_fbcca(tmp_path), mne.create_info(SSVEP, 10.0, "eeg"), clock=clock)
    msg = str(err.value)
    assert "decoder.frequencies" in msg and "Nyquist frequency 5 Hz" in msg and "(10 Hz)" in msg
    assert "bands" not in msg


def test_fbcca_harmonics_above_nyquist_are_a_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    Pipeline(_fbcca(tmp_path, "[15.0]"), mne.create_info(SSVEP, 64.0, "eeg"), clock=clock)
    assert "n_harmonics" in caplog.text and "45 Hz (15Hz × 3)" in caplog.text


def test_chain_cutoff_above_nyquist_names_the_key(tmp_path):
    config = _fbcca(tmp_path, extra='[chain]\nnodes = [{ kind = "lowpass", h_freq = 100.0 }]\n')
    with pytest.raises(ConfigError, match=r"session.toml: chain.nodes\[0\] \(lowpass\): h_freq "
                       r"must lie between 0 and the Nyquist frequency 64 Hz, found 100 Hz"):
        Pipeline(config, mne.create_info(SSVEP, 128.0, "eeg"), clock=clock)


def test_a_1_hz_stream_is_a_one_line_error(tmp_path):
    path = tmp_path / "m.onnx"
    write_spec(linear_softmax_model(np.zeros((2, 3, 64)), np.zeros(2)), _spec(["l", "r"]), path)
    infos = mne.create_info(SSVEP, 1.0, "eeg"), mne.create_info(CH, 1.0, "eeg")
    configs = _fbcca(tmp_path), SessionConfig.from_dict(
        {"decoder": {"path": str(path)}, "outputs": {"lsl": False}})
    for config, info in zip(configs, infos, strict=True):
        with pytest.raises(BCIError) as err:
            Pipeline(config, info, clock=clock)
        assert "\n" not in str(err.value) and "1 Hz" in str(err.value)


# --- runtime checks -----------------------------------------------------------------


def _recording(sfreq_sent: float, sfreq_declared: float, seconds: float = 8.0,
               scale: float = 1e-5, markers: Markers | None = None) -> Recording:
    n = round(seconds * sfreq_sent)
    data = (scale * np.random.default_rng(0).standard_normal((3, n))).astype(np.float32)
    return Recording(mne.create_info(SSVEP, sfreq_declared, "eeg"), data,
                     100.0 + np.arange(n) / sfreq_sent, markers or Markers())


def _loop_events(rec: Recording, chunk_size: int = 32) -> list:
    source = RecordingSource(rec, chunk_size=chunk_size)
    source.open()
    loop = Loop(source, [], paced=False)
    loop.run()
    return loop.events


def test_measured_rate_differing_from_the_declared_one_is_an_event():
    events = [e for e in _loop_events(_recording(250.0, 256.0)) if e.kind == "rate"]
    assert len(events) == 1
    assert events[0].detail["declared_hz"] == 256.0
    assert events[0].detail["measured_hz"] == pytest.approx(250.0, rel=1e-6)
    # chunking changes nothing: replay reports what live did
    again = [e for e in _loop_events(_recording(250.0, 256.0), chunk_size=7) if e.kind == "rate"]
    assert again[0].detail == events[0].detail
    assert not [e for e in _loop_events(_recording(256.0, 256.0)) if e.kind == "rate"]
    assert not [e for e in _loop_events(_recording(250.0, 256.0, seconds=4.0))
                if e.kind == "rate"]  # not enough data to measure: no claim


def test_an_outage_in_the_first_seconds_is_a_gap_not_a_slow_rate():
    rec = _recording(256.0, 256.0, seconds=12.0)
    rec.timestamps[512:] += 2.5  # 2.5 s missing after 2 s of data
    events = _loop_events(rec)
    assert [e.kind for e in events] == ["gap"]
    slow = _recording(250.0, 256.0, seconds=12.0)
    slow.timestamps[512:] += 2.5  # measured after the gap: still 250 Hz
    rate = [e for e in _loop_events(slow) if e.kind == "rate"]
    assert rate[0].detail["measured_hz"] == pytest.approx(250.0, rel=1e-6)


def test_microvolts_fed_as_volts_give_an_amplitude_warning(caplog):
    caplog.set_level(logging.WARNING)
    events = [e for e in _loop_events(_recording(256.0, 256.0, scale=10.0))
              if e.kind == "amplitude"]
    assert len(events) == 1 and "microvolts sent as volts" in events[0].detail["message"]
    assert "microvolts sent as volts" in caplog.text
    assert not [e for e in _loop_events(_recording(256.0, 256.0)) if e.kind == "amplitude"]


# --- metrics only where they mean something -----------------------------------------


def _decision(i: int, label: str, truth: str | None, classes=("a", "b")) -> Decision:
    return Decision(index=i, label=label, output=np.array([0.5, 0.5]), classes=list(classes),
                    last_sample_time=float(i), stop=i + 1, true_label=truth)


def test_accuracy_counts_only_windows_labelled_with_a_decoder_class():
    result = SessionResult()
    for i, (label, truth) in enumerate([("a", "a"), ("b", "a"), ("a", "rest"), ("b", None),
                                        ("a", "a")]):
        result.add(_decision(i, label, truth))
    assert result.n_decisions == 5 and result.n_labelled == 3
    assert result.accuracy == pytest.approx(2 / 3)
    unlabelled = SessionResult()
    unlabelled.add(_decision(0, "a", "rest"))
    assert unlabelled.accuracy is None
    assert json.loads(json.dumps(unlabelled.summary()))["accuracy"] is None


def test_sliding_replay_over_markers_that_are_no_class_reports_no_accuracy(tmp_path, capsys):
    markers = Markers(100.0 + np.array([1.0, 3.0, 5.0]), ["stim", "stim", "stim"])
    result = run_replay(_fbcca(tmp_path), _recording(256.0, 256.0, markers=markers))
    assert result.n_decisions > 0 and result.accuracy is None
    assert result.summary()["accuracy"] is None
    _print_result(result, type("A", (), {"json": False, "stats": False})())
    assert "no labelled windows" in capsys.readouterr().out


def test_epoch_session_without_matching_events_warns_and_exits_non_zero(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    config = _fbcca(tmp_path).__class__.from_dict({
        "window": {"mode": "epoch", "tmin": 0.0, "tmax": 1.0, "events": {"8": "8Hz"}},
        "decoder": {"kind": "fbcca", "frequencies": [8.0, 10.0]}, "outputs": {"lsl": False}})
    markers = Markers(100.0 + np.array([1.0, 3.0]), ["left", "right"])
    result = run_replay(config, _recording(256.0, 256.0, markers=markers))
    assert result.n_decisions == 0 and result.found_no_events
    (event,) = [e for e in result.events if e["kind"] == "no_events"]
    assert event["expected"] == ["8"] and event["found"] == ["left", "right"]
    assert "['8']" in caplog.text and "['left', 'right']" in caplog.text

    raw = mne.io.RawArray(np.zeros((3, 256 * 6)), mne.create_info(SSVEP, 256.0, "eeg"),
                          verbose="error")
    raw.set_annotations(mne.Annotations([1.0, 3.0], [0.0, 0.0], ["left", "right"]))
    fif = tmp_path / "rec_raw.fif"
    raw.save(fif, verbose="error")
    session = tmp_path / "epochs.toml"
    session.write_text('[window]\nmode = "epoch"\ntmin = 0.0\ntmax = 1.0\n'
                       'events = { "8" = "8Hz" }\n[decoder]\nkind = "fbcca"\n'
                       'frequencies = [8.0, 10.0]\n[outputs]\nlsl = false\n')
    assert main(["replay", str(session), "--input", str(fif)]) == 1
    good = Markers(100.0 + np.array([1.0]), ["8"])
    assert not run_replay(config, _recording(256.0, 256.0, markers=good)).found_no_events


# --- bounded memory -----------------------------------------------------------------


def test_session_result_memory_is_bounded_with_exact_counts():
    result = SessionResult(keep=100)
    rng = np.random.default_rng(0)
    latencies = rng.gamma(2.0, 0.004, 50_000)
    for i, lat in enumerate(latencies):
        d = _decision(i, "a", "a" if i % 4 else "b")
        d.emitted = d.last_sample_time + lat
        d.stages = {"inference": lat / 2}
        result.add(d)
    assert len(result.decisions) == 100 and result.decisions[-1].index == 49_999
    assert result.n_decisions == 50_000 and result.n_labelled == 50_000
    assert result.accuracy == 0.75
    total = result.latency.summary()["total"]
    assert total["n"] == 50_000
    assert total["max"] == pytest.approx(1e3 * latencies.max(), rel=1e-9)
    assert total["mean"] == pytest.approx(1e3 * latencies.mean(), rel=1e-9)
    for p in (50, 95, 99):  # the histogram's bins are 1 % wide
        assert total[f"p{p}"] == pytest.approx(1e3 * np.percentile(latencies, p), rel=0.01)
    assert result.latency.total._values is None  # folded: no list of 50 000 values


def test_latency_log_is_exact_while_small():
    log = LatencyLog(exact=10)
    for i in range(10):
        log.add(Decision(index=i, label=None, output=np.zeros(1), classes=[],
                         last_sample_time=0.0, stop=1, emitted=(i + 1) / 1e3))
    assert log.summary()["total"]["p50"] == pytest.approx(5.5)


def test_decision_list_sink_keeps_every_decision(tmp_path):
    keep_all = DecisionList()
    result = run_replay(_fbcca(tmp_path), _recording(256.0, 256.0, seconds=6.0),
                        callbacks=[keep_all])
    assert [d.index for d in keep_all] == list(range(result.n_decisions))
    assert list(result.decisions) == keep_all[-len(result.decisions):]
