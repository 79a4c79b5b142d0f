"""Live sessions over real LSL streams on this machine."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from bci.decoders.onnx_graphs import linear_softmax_model
from streams import Player, make_marker_outlet, make_outlet

from bci.chunk import Markers
from bci.decision import STAGES
from bci.errors import StreamMismatchError, StreamNotFoundError
from bci.recording import RecordedWindows, Recording
from bci.runner import run_live, run_replay
from bci.session import SessionConfig
from bci.spec import DecoderSpec, WindowSpec, write_spec

CH = ["C3", "Cz", "C4", "Pz"]
SFREQ = 200.0


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("models") / "linear.onnx"
    spec = DecoderSpec(
        paradigm="mi", classes=["left", "right", "rest"], ch_names=CH[:3], sfreq=SFREQ,
        window=WindowSpec(mode="sliding", length=0.5, step=0.1),
        preprocessing=[{"kind": "car"}, {"kind": "bandpass", "l_freq": 4.0, "h_freq": 40.0}])
    w = rng.standard_normal((3, 3, 100)).astype(np.float32) * 1e4
    write_spec(linear_softmax_model(w, np.zeros(3)), spec, path)
    return path


def _config(model, name, **extra) -> SessionConfig:
    d = {"source": {"stream": name, "resolve_timeout": 5.0, "stall_timeout": 0.3},
         "chain": {"nodes": [{"kind": "notch", "freqs": [50.0]}]},
         "decoder": {"path": str(model)}, "outputs": {"lsl": f"{name}-decisions"}}
    for key, value in extra.items():
        d.setdefault(key, {}).update(value)
    return SessionConfig.from_dict(d)


def _signal(seconds, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((len(CH), int(seconds * SFREQ))) * 1e-5).astype(np.float32)


def _run_with_player(config, player, **kw):
    """Start playing once the session's inlets are open (LSL keeps no history for them)."""
    try:
        return run_live(config, on_ready=lambda _: player.start(), **kw)
    finally:
        player.stop_event.set()
        if player.is_alive():
            player.join(5)


def test_live_decisions_latency_accounting_and_replay_equivalence(model, unique_name):
    data = _signal(3.0)
    outlet = make_outlet(unique_name, CH, SFREQ, source_id=unique_name)
    player = Player(outlet, data, SFREQ, chunk=10)
    result = _run_with_player(_config(model, unique_name), player, duration=4.0)
    decisions = result.decisions
    assert len(decisions) >= 15
    assert result.n_samples == data.shape[1]  # acquisition got every sample
    for d in decisions:
        assert set(d.stages) == set(STAGES)
        assert all(v >= 0 for k, v in d.stages.items() if k != "pull")
        assert sum(d.stages.values()) == pytest.approx(d.latency, abs=1e-9)
        assert d.latency == pytest.approx(d.emitted - d.last_sample_time, abs=1e-12)
        # time correction moves the sender's stamps by the (tiny, same-host) clock offset
        assert d.last_sample_time == pytest.approx(player.timestamps[d.stop - 1], abs=1e-3)
    lat = result.latency.summary()
    assert lat["total"]["n"] == len(decisions)
    assert lat["overhead"]["p50"] < lat["total"]["p50"]
    # live windows end on the newest sample: never before the grid's, never a step after
    grid = np.arange(100, data.shape[1] + 1, 20)
    stops = np.array([d.stop for d in decisions])
    due = grid[np.searchsorted(grid, stops, side="right") - 1]
    assert np.all((stops - due >= 0) & (stops - due < 20))
    # the same samples replayed with the live session's window ends give the same
    # decisions, bit for bit
    windows = RecordedWindows(stops, length=0.5, step=0.1, align="newest")
    rec = Recording(__import__("mne").create_info(CH, SFREQ, "eeg"), data,
                    player.timestamps, Markers(), windows=windows)
    replayed = run_replay(_config(model, unique_name), rec).decisions
    assert [d.stop for d in replayed] == stops.tolist()
    for r, d in zip(replayed, decisions, strict=True):
        assert np.array_equal(r.output, d.output)
        assert r.label == d.label


def test_nonfinite_samples_are_flagged_never_decoded(model, unique_name):
    data = _signal(2.5, seed=1)
    data[1, 200:205] = np.nan
    data[0, 300] = np.inf
    outlet = make_outlet(unique_name, CH, SFREQ)
    player = Player(outlet, data, SFREQ, chunk=10)
    result = _run_with_player(_config(model, unique_name), player, duration=3.2)
    assert result.counts["nonfinite_samples"] == 6
    # windows of 100 samples every 20 touching samples 200–300 are skipped and counted
    assert result.counts["skipped_nonfinite"] == 10
    bad = set(range(200, 301))
    for d in result.decisions:
        assert not bad & set(range(d.stop - 100, d.stop))
        assert np.isfinite(d.output).all()


def test_slow_decoder_skips_windows_by_policy_and_keeps_up(model, unique_name):
    from bci.pipeline import load_decoder

    class Slow:
        def __init__(self, inner):
            self.inner, self.spec = inner, inner.spec

        def input_shape(self):
            return self.inner.input_shape()

        def run(self, window):
            time.sleep(0.25)  # slower than the 0.1 s step
            return self.inner.run(window)

    import bci.runner as runner

    original = runner.Pipeline

    def slow_pipeline(config, info, *, clock, **kw):
        return original(config, info, clock=clock, decoder=Slow(load_decoder(config, info)),
                        **kw)

    data = _signal(3.0, seed=2)
    outlet = make_outlet(unique_name, CH, SFREQ)
    player = Player(outlet, data, SFREQ, chunk=10)
    runner.Pipeline = slow_pipeline
    try:
        result = _run_with_player(_config(model, unique_name), player, duration=3.8)
    finally:
        runner.Pipeline = original
    assert result.n_samples == data.shape[1]  # acquisition kept up
    windows = result.counts["windows"]
    assert result.counts["skipped_backlog"] > 0
    assert result.counts["skipped_backlog"] + len(result.decisions) == windows
    # the backlog holds one window: none waited longer than one decode, so lag is bounded
    longest = max(d.stages["inference"] for d in result.decisions)
    assert all(d.stages["queue"] <= 1.5 * longest for d in result.decisions)


@pytest.mark.slow
def test_stream_vanishes_and_returns(model, unique_name):
    from bci.lslconfig import get_pylsl

    pylsl = get_pylsl()
    # 5 s after the return: liblsl needs 1–2 s (more on a loaded machine) to reconnect
    data = _signal(8.0, seed=3)
    stop = threading.Event()
    result_box = {}
    config = _config(model, unique_name)

    ready = threading.Event()

    def session():
        result_box["r"] = run_live(config, duration=20.0, stop=stop,
                                   on_ready=lambda _: ready.set())

    first = make_outlet(unique_name, CH, SFREQ, source_id=unique_name)
    th = threading.Thread(target=session)
    th.start()
    assert ready.wait(10)
    t0 = pylsl.local_clock() + 0.2
    p1 = Player(first, data[:, :300], SFREQ, chunk=10, t0=t0)
    p1.start()
    p1.join()
    del first, p1  # the stream disappears
    import gc

    gc.collect()
    time.sleep(1.5)
    second = make_outlet(unique_name, CH, SFREQ, source_id=unique_name)
    p2 = Player(second, data[:, 600:], SFREQ, chunk=10, t0=t0 + 600 / SFREQ)
    p2.start()
    p2.join()
    time.sleep(2.5)  # liblsl takes a moment to recover the inlet, then delivers the backlog
    stop.set()
    th.join(10)
    r = result_box["r"]
    kinds = [e["kind"] for e in r.events]
    assert "stalled" in kinds and "gap" in kinds
    gap = next(e for e in r.events if e["kind"] == "gap")
    # samples sent while the inlet was reconnecting are lost too: the gap says how many
    assert gap["missing_samples"] >= 300
    assert r.n_samples + gap["missing_samples"] == data.shape[1]
    assert any(d.stop > 400 for d in r.decisions)  # decoding resumed after the return
    assert r.counts["skipped_gap"] > 0  # no window spans the gap


def test_stream_not_found_lists_what_was_found(model, unique_name):
    decoy = make_outlet(f"{unique_name}-decoy", CH, SFREQ)
    config = _config(model, f"{unique_name}-absent", source={"resolve_timeout": 0.6})
    expected = rf"name='{unique_name}-absent'.*{unique_name}-decoy"
    with pytest.raises(StreamNotFoundError, match=expected):
        run_live(config, duration=1.0)
    del decoy


def test_channel_count_and_rate_mismatch_are_refused(model, unique_name):
    few = make_outlet(unique_name, ["C3", "Cz"], SFREQ)
    with pytest.raises(StreamMismatchError, match=r"missing \['C4'\]"):
        run_live(_config(model, unique_name), duration=1.0)
    del few
    fast = make_outlet(f"{unique_name}-fast", CH, 500.0)
    with pytest.raises(StreamMismatchError, match=r"expects a stream at 200 Hz, found 500 Hz"):
        run_live(_config(model, f"{unique_name}-fast"), duration=1.0)
    del fast


def test_marker_locked_epochs_live(model, unique_name):
    data = _signal(3.0, seed=4)
    outlet = make_outlet(unique_name, CH, SFREQ)
    markers = make_marker_outlet(f"{unique_name}-m")
    onsets = [(100, "L"), (250, "R"), (400, "L")]
    player = Player(outlet, data, SFREQ, chunk=10, markers=onsets, marker_outlet=markers)
    config = _config(model, unique_name, source={"markers": f"{unique_name}-m"},
                     window={"mode": "epoch", "tmin": 0.0, "tmax": 0.5,
                             "events": {"L": "left", "R": "right"}})
    result = _run_with_player(config, player, duration=3.5)
    assert [(d.stop - 100, d.true_label) for d in result.decisions] == [
        (100, "left"), (250, "right"), (400, "left")]


def test_decisions_reach_an_lsl_consumer_and_jsonl(model, unique_name, tmp_path):
    from bci.lslconfig import get_pylsl

    pylsl = get_pylsl()
    data = _signal(2.0, seed=5)
    outlet = make_outlet(unique_name, CH, SFREQ)
    player = Player(outlet, data, SFREQ, chunk=10)
    log = tmp_path / "live.jsonl"
    config = _config(model, unique_name, outputs={"jsonl": str(log)})
    inlet_box = {}

    def ready(_):
        found = pylsl.resolve_byprop("name", f"{unique_name}-decisions", 1, 5.0)
        inlet = pylsl.StreamInlet(found[0])
        inlet.open_stream(5.0)
        inlet_box["inlet"] = inlet
        inlet_box["class"] = inlet.info(5.0).desc().child("classes").child_value("class")
        player.start()

    result = run_live(config, duration=2.8, on_ready=ready)
    player.join(5)
    inlet = inlet_box["inlet"]
    assert inlet_box["class"] == "left"
    samples, stamps = inlet.pull_chunk(timeout=1.0, max_samples=1000)
    assert len(samples) == len(result.decisions) > 0
    classes = ["left", "right", "rest"]
    for d, s, t in zip(result.decisions, samples, stamps, strict=True):
        assert classes[int(s[0])] == d.label
        np.testing.assert_allclose(s[1:4], d.output)
        assert s[4] == pytest.approx(d.emitted)
        assert t == pytest.approx(d.last_sample_time, abs=1e-6)
    import json

    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["label"] for x in lines] == [d.label for d in result.decisions]
    assert all(x["latency_ms"] == pytest.approx(1e3 * d.latency)
               for x, d in zip(lines, result.decisions, strict=True))


def test_integer_marker_stream_opens_epochs(model, unique_name):
    from bci.lslconfig import get_pylsl

    pylsl = get_pylsl()
    data = _signal(2.0, seed=6)
    outlet = make_outlet(unique_name, CH, SFREQ)
    info = pylsl.StreamInfo(f"{unique_name}-int", "Markers", 1, 0, pylsl.cf_int32, "")
    markers = pylsl.StreamOutlet(info)
    player = Player(outlet, data, SFREQ, chunk=10, markers=[(100, 2), (200, 3)],
                    marker_outlet=markers)
    config = _config(model, unique_name, source={"markers": f"{unique_name}-int"},
                     window={"mode": "epoch", "tmin": 0.0, "tmax": 0.5,
                             "events": {"2": "left", "3": "right"}})
    result = _run_with_player(config, player, duration=2.5)
    assert [(d.stop - 100, d.true_label) for d in result.decisions] == [
        (100, "left"), (200, "right")]


@pytest.mark.slow
def test_replay_of_the_live_recording_reproduces_live_decisions(model, unique_name, tmp_path):
    """[outputs] record writes data, markers and decisions; replaying it gives them back."""
    from bci.devices.files import read_recording

    data = _signal(3.0, seed=7)
    outlet = make_outlet(unique_name, CH, SFREQ)
    markers = make_marker_outlet(f"{unique_name}-m")
    onsets = [(60, "L"), (230, "R"), (380, "L")]
    player = Player(outlet, data, SFREQ, chunk=7, markers=onsets, marker_outlet=markers)
    record = tmp_path / "live.xdf"
    window = {"mode": "epoch", "tmin": 0.0, "tmax": 0.5, "events": {"L": "left", "R": "right"}}
    config = _config(model, unique_name, source={"markers": f"{unique_name}-m"},
                     window=window, outputs={"record": str(record)})
    live = _run_with_player(config, player, duration=3.5).decisions
    assert [d.true_label for d in live] == ["left", "right", "left"]

    rec = read_recording(record)
    assert rec.data.shape == data.shape
    np.testing.assert_array_equal(rec.data, data)  # float32 in, float32 out, untouched
    assert list(rec.markers.values) == ["L", "R", "L"]
    replayed = run_replay(config, rec).decisions
    assert [(d.stop, d.label, d.true_label) for d in replayed] == [
        (d.stop, d.label, d.true_label) for d in live]
    for r, d in zip(replayed, live, strict=True):
        assert np.array_equal(r.output, d.output)
        assert r.last_sample_time == d.last_sample_time

    # the decisions the live session emitted are in the same file, for later audit
    import pyxdf

    streams, _ = pyxdf.load_xdf(str(record))
    (dec,) = [s for s in streams if s["info"]["type"][0] == "Decisions"]
    classes = ["left", "right", "rest"]
    assert [classes[int(i)] for i in dec["time_series"][:, 0]] == [d.label for d in live]
    np.testing.assert_allclose(dec["time_series"][:, 1:], [d.output for d in live])


def test_live_sliding_windows_recorded_and_replayed_where_they_ended(model, unique_name,
                                                                     tmp_path):
    """7-sample chunks, a 20-sample step: live windows end on the newest sample, off the
    grid; the session recording keeps where, and its replay cuts the same windows."""
    from bci.devices.files import read_recording

    data = _signal(3.0, seed=9)
    outlet = make_outlet(unique_name, CH, SFREQ)
    player = Player(outlet, data, SFREQ, chunk=7)
    record = tmp_path / "live.xdf"
    config = _config(model, unique_name, outputs={"record": str(record)})
    live = _run_with_player(config, player, duration=3.5).decisions
    assert len(live) >= 20
    assert any(d.stop % 20 for d in live)  # not the grid

    rec = read_recording(record)
    assert rec.windows is not None and rec.windows.align == "newest"
    # every due window's end is kept, decided or not (the backlog keeps only the newest
    # window waiting; the last may fall due as the session stops)
    assert {d.stop for d in live} <= set(rec.windows.stops.tolist())
    assert "recorded window end" in rec.note
    replayed = run_replay(config, rec).decisions
    assert [d.stop for d in replayed] == rec.windows.stops.tolist()
    by_stop = {d.stop: d for d in replayed}
    for d in live:
        assert by_stop[d.stop].label == d.label
        assert np.array_equal(by_stop[d.stop].output, d.output)
    # a replay with another window cuts its own grid (the recorded ends do not fit)
    other = _config(model, unique_name, window={"length": 0.5, "step": 0.2})
    assert all(d.stop % 40 == 0 for d in run_replay(other, rec).decisions)

    # the grid, asked for, holds live too
    grid_name = f"{unique_name}-grid"
    player = Player(make_outlet(grid_name, CH, SFREQ), data, SFREQ, chunk=7)
    on_grid = _run_with_player(_config(model, grid_name, window={"align": "grid"}),
                               player, duration=3.5).decisions
    assert on_grid and all(d.stop % 20 == 0 for d in on_grid)


def test_samples_stamped_ahead_of_the_clock_are_reported(model, unique_name):
    """A stream stamped on another clock (here 5 s ahead) is a clock fault, reported once."""
    from bci.lslconfig import get_pylsl

    pylsl = get_pylsl()
    data = _signal(1.0, seed=8)
    outlet = make_outlet(unique_name, CH, SFREQ)

    def send():
        time.sleep(0.2)
        for start in range(0, data.shape[1], 20):
            ahead = pylsl.local_clock() + 5.0
            outlet.push_chunk(np.ascontiguousarray(data[:, start:start + 20].T),
                              (ahead + np.arange(20) / SFREQ).tolist())
            time.sleep(0.05)

    sender = threading.Thread(target=send, daemon=True)
    result = run_live(_config(model, unique_name), duration=2.0,
                      on_ready=lambda _: sender.start())
    sender.join(5)
    clock = [e for e in result.events if e["kind"] == "clock"]
    assert len(clock) == 1 and clock[0]["ahead_s"] > 4.0
    assert result.n_samples == data.shape[1]
