"""The LSL recorder (``bci record``) and the session recorder, on real LSL streams."""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import pyxdf
from bci.devices.recorder import Recorder, SessionRecorder, StreamQuery
from streams import Player, make_marker_outlet, make_outlet

from bci.errors import StreamNotFoundError
from bci.lslconfig import get_pylsl

pylsl = get_pylsl()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _quiet_pyxdf():
    logger = logging.getLogger("pyxdf")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def load(path) -> dict[str, dict]:
    streams, _ = pyxdf.load_xdf(path, dejitter_timestamps=False, synchronize_clocks=False,
                                handle_clock_resets=False)
    return {s["info"]["name"][0]: s for s in streams}


def labels(stream: dict) -> list[str]:
    return [ch["label"][0] for ch in stream["info"]["desc"][0]["channels"][0]["channel"]]


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def known_data(n: int) -> np.ndarray:
    """(4, n) float32 whose first channel is the sample index, so gaps show."""
    rng = np.random.default_rng(n)
    data = rng.standard_normal((4, n)).astype(np.float32)
    data[0] = np.arange(n)
    return data


def test_records_data_and_markers(tmp_path, unique_name):
    ch_names = ["C3", "Cz", "C4", "Pz"]
    outlet = make_outlet(unique_name, ch_names, 200.0, source_id=f"{unique_name}-src")
    markers = make_marker_outlet(f"{unique_name}-markers")
    path = tmp_path / "rec.xdf"
    rec = Recorder(path, [unique_name, StreamQuery(name=f"{unique_name}-markers"),
                          StreamQuery(source_id=f"{unique_name}-src")])  # a duplicate
    streams = rec.start()
    assert [s.name for s in streams] == [unique_name, f"{unique_name}-markers"]
    data = known_data(160)
    player = Player(outlet, data, 200.0, chunk=8, markers=[(10, "left"), (100, "right ✓")],
                    marker_outlet=markers, start_delay=0.1)
    player.start()
    player.join()
    wait_for(lambda: streams[0].n_samples == 160 and streams[1].n_samples == 2)
    rec.stop()

    got = load(path)
    eeg = got[unique_name]
    np.testing.assert_array_equal(eeg["time_series"].T, data)
    # time-corrected on this machine: the same clock, up to the measured offset
    np.testing.assert_allclose(eeg["time_stamps"], player.timestamps, atol=1e-3, rtol=0)
    assert labels(eeg) == ch_names
    assert eeg["info"]["desc"][0]["bci"][0]["time_corrected"] == ["1"]
    assert eeg["footer"]["info"]["sample_count"] == ["160"]
    mk = got[f"{unique_name}-markers"]
    assert mk["time_series"] == [["left"], ["right ✓"]]
    np.testing.assert_allclose(mk["time_stamps"], player.timestamps[[10, 100]], atol=1e-3)
    assert rec.events == []
    # and the project's reader replays it
    from bci.devices.files import read_recording

    recording = read_recording(path, stream=unique_name)
    np.testing.assert_array_equal(recording.data, data)
    assert recording.info.ch_names == ch_names
    assert recording.markers.values == ["left", "right ✓"]


def test_missing_stream_lists_what_is_there(tmp_path, unique_name):
    outlet = make_outlet(unique_name, ["a"], 100.0)  # noqa: F841 (kept alive to be listed)
    rec = Recorder(tmp_path / "x.xdf", [unique_name, f"{unique_name}-nowhere"],
                   resolve_timeout=0.3)
    with pytest.raises(StreamNotFoundError,
                       match=rf"no LSL stream matching name='{unique_name}-nowhere' within "
                             rf"0.3 s; found on this machine: .*name='{unique_name}'"):
        rec.start()
    assert not (tmp_path / "x.xdf").exists()


def _start_recorder(args: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=os.environ.copy(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    while not any(line.startswith("recording ") for line in lines):
        line = proc.stdout.readline()
        if not line:
            proc.wait(5)
            pytest.fail(f"recorder exited before recording: {lines} {proc.stderr.read()}")
        lines.append(line)
    return proc


@pytest.mark.timeout(60)
@pytest.mark.slow
def test_sigkill_loses_at_most_the_last_second(tmp_path, unique_name):
    outlet = make_outlet(unique_name, ["a", "b", "c", "d"], 100.0, chunk=1)
    path = tmp_path / "killed.xdf"
    proc = _start_recorder(["bci", "record", "--stream", unique_name, "-o", str(path)])
    try:
        data = known_data(1000)
        pushed = []  # (local clock when pushed, timestamp)
        start = pylsl.local_clock()
        i = 0
        while pylsl.local_clock() - start < 2.5:
            now = pylsl.local_clock()
            due = min(1000, int((now - start) * 100) + 1)
            if due > i:
                outlet.push_chunk(np.ascontiguousarray(data[:, i:due].T), now)
                pushed += [(now, now)] * (due - i)
                i = due
            time.sleep(0.005)
        kill_time = pylsl.local_clock()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
        proc.stdout.close()
        proc.stderr.close()

    got = load(path)[unique_name]
    assert "footer" not in got  # it really died
    n = got["time_series"].shape[0]
    old_enough = sum(1 for when, _ in pushed if when < kill_time - 1.0)
    assert old_enough > 100
    assert n >= old_enough
    np.testing.assert_array_equal(got["time_series"].T, data[:, :n])
    assert np.all(np.diff(got["time_stamps"]) >= 0)


@pytest.mark.timeout(60)
def test_sigterm_closes_the_file_cleanly(tmp_path, unique_name):
    outlet = make_outlet(unique_name, ["a", "b", "c", "d"], 100.0)
    markers = make_marker_outlet(f"{unique_name}-markers")
    path = tmp_path / "term.xdf"
    proc = _start_recorder(["bci", "record", "--stream", unique_name, "--stream",
                            f"{unique_name}-markers", "-o", str(path)])
    try:
        data = known_data(50)
        player = Player(outlet, data, 100.0, markers=[(5, "go")], marker_outlet=markers,
                        start_delay=0.05)
        player.start()
        player.join()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, err  # interrupted, the file closed first
    assert err.strip().splitlines() == ["bci record: interrupted by SIGTERM"]
    assert f"wrote {path}: '{unique_name}' 50 samples" in out
    got = load(path)
    np.testing.assert_array_equal(got[unique_name]["time_series"].T, data)
    assert got[unique_name]["footer"]["info"]["sample_count"] == ["50"]
    assert got[f"{unique_name}-markers"]["time_series"] == [["go"]]


@pytest.mark.timeout(60)
def test_vanished_streams_are_picked_up_again(tmp_path, unique_name):
    """One stream with a source_id (liblsl recovers it), one without (re-resolved), and
    one that stays: the recording goes on and both come back into their own streams."""
    names = [f"{unique_name}-{k}" for k in ("sid", "nosid", "stays")]
    sources = {names[0]: f"{unique_name}-src", names[1]: "", names[2]: ""}

    def outlets():
        return {n: make_outlet(n, ["x", "y"], 100.0, source_id=s) for n, s in sources.items()}

    def push(outs, first, n):
        t = pylsl.local_clock()
        for out in outs.values():
            values = np.stack([np.arange(first, first + n), np.zeros(n)]).astype(np.float32)
            out.push_chunk(np.ascontiguousarray(values.T), t)

    outs = outlets()
    path = tmp_path / "vanish.xdf"
    rec = Recorder(path, names, stall_timeout=0.3)
    streams = rec.start()
    push(outs, 0, 20)
    wait_for(lambda: all(s.n_samples == 20 for s in streams))
    del outs[names[0]], outs[names[1]]
    gc.collect()
    wait_for(lambda: streams[1].status == "lost" and streams[0].status == "stalled")
    push(outs, 20, 5)  # the third goes on meanwhile
    wait_for(lambda: streams[2].n_samples == 25)
    outs.update({n: o for n, o in outlets().items() if n != names[2]})

    def back():
        push({n: outs[n] for n in names[:2]}, 1000, 1)
        return all(s.status == "recording" and s.n_samples > 20 for s in streams[:2])

    wait_for(back, timeout=30)
    rec.stop()

    kinds = {(e.stream, e.kind) for e in rec.events}
    assert {(names[0], "stalled"), (names[0], "resumed"), (names[1], "lost"),
            (names[1], "reconnected")} <= kinds
    got = load(path)
    for name in names[:2]:
        values = got[name]["time_series"][:, 0]
        np.testing.assert_array_equal(values[:20], np.arange(20))
        assert np.all(values[20:] == 1000)  # what came after the return
        events = got[name]["footer"]["info"]["recorder_events"][0]["event"]
        assert events
    np.testing.assert_array_equal(got[names[2]]["time_series"][:, 0], np.arange(25))


def test_session_recorder(tmp_path):
    path = tmp_path / "session.xdf"
    rec = SessionRecorder(path, flush_interval=0.05)
    data_id = rec.add_stream(name="amp", type="EEG", channel_count=2, nominal_srate=100.0,
                             ch_names=["C3", "C4"], ch_units="volts", source_id="amp")
    marker_id = rec.add_stream(name="amp-markers", type="Markers", channel_count=1,
                               nominal_srate=0, channel_format="string")
    decision_id = rec.add_stream(name="amp-decisions", type="Decisions", channel_count=3,
                                 nominal_srate=0, channel_format="double64")
    assert len({data_id, marker_id, decision_id}) == 3
    data = known_data(300)[:2]
    ts = 50.0 + np.arange(300) / 100.0

    def decisions():
        for i in range(20):
            rec.write(decision_id, np.array([[i], [0.25], [0.75]]), [ts[i * 10]])

    writer = threading.Thread(target=decisions)
    writer.start()
    for i in range(0, 300, 32):
        rec.write(data_id, data[:, i:i + 32], ts[i:i + 32])
    rec.write(marker_id, ["left", "right"], ts[[3, 30]])
    writer.join()
    # the timer syncs it without being asked; readable before close
    wait_for(lambda: len(load(path)["amp-decisions"]["time_stamps"]) == 20)
    assert len(load(path)["amp"]["time_stamps"]) == 300
    rec.close()

    got = load(path)
    np.testing.assert_array_equal(got["amp"]["time_series"].T, data)
    assert np.array_equal(got["amp"]["time_stamps"], ts)
    assert labels(got["amp"]) == ["C3", "C4"]
    assert got["amp"]["info"]["desc"][0]["bci"][0]["time_corrected"] == ["1"]
    assert got["amp-markers"]["time_series"] == [["left"], ["right"]]
    np.testing.assert_array_equal(got["amp-decisions"]["time_series"][:, 0], np.arange(20))
    assert got["amp-decisions"]["footer"]["info"]["sample_count"] == ["20"]


@pytest.mark.timeout(60)
@pytest.mark.slow
def test_cli_records_all_streams_for_a_duration(tmp_path, unique_name):
    outlet = make_outlet(unique_name, ["a", "b", "c", "d"], 100.0)
    path = tmp_path / "all.xdf"
    proc = _start_recorder(["bci", "record", "--all", "--duration", "1.5", "-o", str(path)])
    try:
        data = known_data(30)
        player = Player(outlet, data, 100.0, start_delay=0.05)
        player.start()
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"'{unique_name}' 30 samples" in out
    np.testing.assert_array_equal(load(path)[unique_name]["time_series"].T, data)


def test_cli_errors(tmp_path, capsys):
    from bci.cli import main

    assert main(["record", "-o", str(tmp_path / "x.xdf")]) == 2
    assert "say what to record: --stream NAME" in capsys.readouterr().err
    existing = tmp_path / "old.xdf"
    existing.write_bytes(b"precious")
    assert main(["record", "--stream", "whatever", "-o", str(existing)]) == 2
    assert f"{existing} exists; expected a new file (or --overwrite)" in capsys.readouterr().err
    assert existing.read_bytes() == b"precious"
    with pytest.raises(ValueError, match="needs a name, type or source_id; found none"):
        StreamQuery()
