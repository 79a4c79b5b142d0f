"""BrainFlow boards as sources and on LSL, on BrainFlow's synthetic and playback-file
boards (no hardware), with real LSL on loopback."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("brainflow", reason="brainflow not installed: pip install "
                                        "'bci-runtime[brainflow]' (part of the test extra)")

import pyxdf
from bci.devices.brainflow_bridge import BrainFlowBridge
from bci.devices.brainflow_source import (
    BrainFlowSource,
    PackageClock,
    UnixClockMap,
    board_id,
    brainflow,
    channel_layout,
)
from bci.devices.lsl_source import LSLInput

from bci.cli import main
from bci.errors import ConfigError, DeviceError
from bci.session import SessionConfig

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "brainflow-synthetic.toml"


def pull_for(source, n_samples: int, *, timeout: float = 20.0):
    """Pull until ``n_samples`` arrived (or the source ends); data, stamps, markers."""
    data, stamps, mt, mv = [], [], [], []
    got = 0
    deadline = time.monotonic() + timeout
    while got < n_samples and time.monotonic() < deadline:
        pulled = source.pull(0.05)
        if pulled is None:
            break
        if pulled.chunk is not None:
            data.append(pulled.chunk.data)
            stamps.append(pulled.chunk.timestamps)
            got += pulled.chunk.data.shape[1]
        mt += pulled.markers.timestamps.tolist()
        mv += pulled.markers.values
    assert data, "no data from the board"
    return np.concatenate(data, axis=1), np.concatenate(stamps), np.asarray(mt), mv


# --- names, options, channels -----------------------------------------------------------

def test_board_names_and_ids():
    ids = brainflow().BoardIds
    assert board_id("synthetic") == board_id("SYNTHETIC_BOARD") == int(ids.SYNTHETIC_BOARD)
    assert board_id("Cyton-Daisy") == int(ids.CYTON_DAISY_BOARD)
    assert board_id("playback") == board_id("playback_file") == int(ids.PLAYBACK_FILE_BOARD)
    assert board_id(0) == board_id("0") == int(ids.CYTON_BOARD)
    with pytest.raises(ConfigError, match=r"board: unknown BrainFlow board 'cytn' \(did you "
                                          r"mean 'cyton'\?\); expected an id or one of .*"
                                          r"synthetic"):
        board_id("cytn")
    with pytest.raises(ConfigError, match=r"expected a BrainFlow board id among .* found 999"):
        board_id(999)


def test_channel_layout_from_board_description():
    descr = brainflow().BoardShim.get_board_descr(board_id("cyton"))
    rows, names, types, scale = channel_layout(descr, "eeg")
    assert names == descr["eeg_names"].split(",")
    assert rows == descr["eeg_channels"] and set(types) == {"eeg"}
    np.testing.assert_array_equal(scale, 1e-6)
    rows, names, types, scale = channel_layout(descr, "all")
    assert names[8:11] == ["ACC_X", "ACC_Y", "ACC_Z"] and types[8] == "misc"
    assert scale[8] == 1.0
    for row in (descr["timestamp_channel"], descr["marker_channel"],
                descr["package_num_channel"]):
        assert row not in rows
    assert len(set(names)) == len(names)


def _session(tmp_path, source: str) -> Path:
    text = EXAMPLE.read_text()
    start = text.index("[source]")
    end = text.index("[chain]")
    path = tmp_path / "session.toml"
    path.write_text(text[:start] + "[source]\n" + source + "\n" + text[end:])
    return path


@pytest.mark.parametrize(("source", "message"), [
    ('kind = "brainflw"\nboard = "synthetic"',
     r"source.kind: unknown source 'brainflw'; expected one of brainflow, lsl"),
    ('kind = "brainflow"', r"source.board: required, expected a string or an integer"),
    ('kind = "brainflow"\nboard = "cytn"', r"source.board: unknown BrainFlow board 'cytn' "
                                           r"\(did you mean 'cyton'\?\)"),
    ('kind = "brainflow"\nboard = "cyton"\nserial = "/dev/ttyUSB0"',
     r"source.serial: unknown key \(did you mean 'serial_port'\?\)"),
    ('kind = "brainflow"\nboard = "cyton"\nstream = "x"', r"source.stream: unknown key"),
    ('kind = "brainflow"\nboard = "cyton"\nip_port = 70000',
     r"source.ip_port: expected an integer ≥ 0 and ≤ 65535, found 70000"),
    ('kind = "brainflow"\nboard = "synthetic"\nchannels = "emg"',
     r"source.channels: expected one of \['eeg', 'exg', 'all'\], found 'emg'"),
    ('kind = "brainflow"\nboard = "playback"\nmaster_board = "synthetic"\nfile = "no.csv"',
     r"source.file: expected an existing BrainFlow data file, found '.*no.csv'"),
    ('kind = "brainflow"\nboard = "playback"', r"source.master_board: the playback_file board "
                                               r"carries another board's rows"),
])
def test_bad_session_options_are_named(tmp_path, source, message):
    with pytest.raises(ConfigError, match=message) as info:
        SessionConfig.load(_session(tmp_path, source))
    assert str(info.value).startswith(str(tmp_path / "session.toml"))


def test_session_options_and_relative_file(tmp_path):
    (tmp_path / "rec.csv").write_text("0\n")
    path = _session(tmp_path, 'kind = "brainflow"\nboard = "Playback"\nfile = "rec.csv"\n'
                              'master_board = -1\nip_protocol = "tcp"\ngap_tolerance = 0.05')
    src = SessionConfig.load(path).source
    assert (src.kind, src.gap_tolerance) == ("brainflow", 0.05)
    assert src.options == {"board": "playback_file", "file": str(tmp_path / "rec.csv"),
                           "master_board": "synthetic", "ip_protocol": "tcp"}
    assert SessionConfig.load(EXAMPLE).source.options == {"board": "synthetic",
                                                          "channels": "eeg"}


def test_a_board_that_cannot_start_is_a_device_error():
    source = BrainFlowSource("cyton", serial_port="/dev/bci-test-no-such-port")
    with pytest.raises(DeviceError, match=r"BrainFlow board 'cyton' \(serial_port='/dev/"
                                          r"bci-test-no-such-port'\) could not start: "
                                          r"UNABLE_TO_OPEN_PORT_ERROR"):
        source.open()
    source.close()


# --- the clock mapping ------------------------------------------------------------------

class FakeClocks:
    """A local clock that advances 1 µs per read (10 µs on every 5th read: preempted)
    and a wall clock ``offset`` ahead of it."""

    def __init__(self, offset: float) -> None:
        self.t, self.offset, self.reads = 100.0, offset, 0

    def local(self) -> float:
        self.reads += 1
        self.t += 1e-5 if self.reads % 5 == 0 else 1e-6
        return self.t

    def wall(self) -> float:
        return self.t + self.offset


def _jittered(n: int, *, sfreq: float = 250.0, seed: int = 0, t0: float = 100.0):
    """Samples on a regular grid, stamped 0–30 ms late, and their 0–255 counter."""
    rng = np.random.default_rng(seed)
    true = t0 + np.arange(n) / sfreq
    late = rng.uniform(0.0, 0.03, n)
    late[::50] = 0.0  # now and then the board thread is on time
    return true, true + late, np.arange(n) % 256


def test_package_clock_removes_jitter_without_inventing_gaps():
    true, stamped, counter = _jittered(2000)
    clock = PackageClock(250.0)
    out = np.concatenate([clock.stamps(stamped[i:i + 37], counter[i:i + 37])
                          for i in range(0, 2000, 37)])
    np.testing.assert_allclose(np.diff(out), 1 / 250, atol=1e-9)  # no gap anywhere
    np.testing.assert_allclose(out, true, atol=1e-9)  # the on-time stamps set the offset
    assert np.diff(stamped).max() > 0.02  # the loop would have seen gaps in these


def test_package_clock_keeps_the_gap_of_lost_packages_and_a_reconnect():
    true, stamped, counter = _jittered(3000)
    keep = np.r_[0:1000, 1010:2000, 2600:3000]  # 10 packages lost; then an outage
    clock = PackageClock(250.0)
    a = clock.stamps(stamped[keep[:1000]], counter[keep[:1000]])
    b = clock.stamps(stamped[keep[1000:1990]], counter[keep[1000:1990]])
    clock.restart()  # the board was prepared again: its counter starts over
    c = clock.stamps(stamped[2600:3000], np.arange(400) % 256)
    assert b[0] - a[-1] == pytest.approx(11 / 250, abs=1e-9)
    assert c[0] - b[-1] == pytest.approx(601 / 250, abs=1e-9)  # counted from the stamps
    np.testing.assert_allclose(np.r_[a, b, c], true[keep], atol=1e-9)


def test_package_clock_follows_a_board_slower_than_its_nominal_rate():
    n = 250 * 60
    true = 100.0 + np.arange(n) / 249.95  # 200 ppm slow: 12 ms behind after a minute
    clock = PackageClock(250.0)
    out = np.concatenate([clock.stamps(true[i:i + 25], np.arange(i, i + 25) % 256)
                          for i in range(0, n, 25)])
    assert np.abs(out - true).max() < 1e-3
    assert np.diff(out).max() < 1.5 / 250  # its small corrections are no gap


def test_clock_map_takes_the_tightest_read_and_reports_steps():
    clocks = FakeClocks(1.7e9)
    cmap = UnixClockMap(wall=clocks.wall, local=clocks.local, resync=1.0)
    assert cmap.sync() == 0.0
    # the wall clock is read between the two local reads: offset exact to half a read
    assert abs(cmap.offset - (1.7e9 - 0.5e-6)) < 1e-7
    assert cmap.uncertainty == pytest.approx(0.5e-6)
    np.testing.assert_allclose(cmap.to_local([1.7e9 + 200.0]), [200.0 + 0.5e-6], atol=1e-6)
    assert not cmap.due(cmap.last_sync + 0.5) and cmap.due(cmap.last_sync + 1.0)
    clocks.offset += 0.25  # someone set the wall clock
    assert cmap.sync() == pytest.approx(0.25)
    clocks.offset += 1e-4  # NTP slewing: no step
    assert cmap.sync() == 0.0


def test_clock_map_error_on_the_real_clocks():
    pylsl = pytest.importorskip("pylsl")
    cmap = UnixClockMap()
    cmap.sync()
    errors = []
    for _ in range(500):
        before = pylsl.local_clock()
        wall = time.time()
        after = pylsl.local_clock()
        mapped = float(cmap.to_local(wall))
        # the true local time of the wall read lies in [before, after]
        errors.append(max(before - mapped, mapped - after, 0.0))
    assert max(errors) <= cmap.uncertainty + 1e-3


# --- the boards -------------------------------------------------------------------------

def test_synthetic_board_chunks_and_info():
    source = BrainFlowSource("synthetic", channels="all")
    try:
        info = source.open()
        assert source.live and info["sfreq"] == 250
        assert info["ch_names"][:3] == ["Fz", "C3", "Cz"]
        assert info.get_channel_types()[:16] == ["eeg"] * 16
        assert "ACC_X" in info["ch_names"] and "BATTERY" in info["ch_names"]
        data, stamps, _, _ = pull_for(source, 100)
    finally:
        source.close()
        source.close()  # twice is fine
    assert data.dtype == np.float32 and data.shape == (len(info["ch_names"]), stamps.size)
    eeg = data[:16]
    # BrainFlow's µV became volts: synthetic EEG of tens to hundreds of µV
    assert 1e-6 < np.abs(eeg).max() < 1e-2
    assert np.all(np.diff(stamps) >= 0)
    # the stamps are on the LSL clock: the newest sample is not from the future
    assert stamps[-1] <= source.clock() and stamps[-1] > source.clock() - 5.0


def _write_playback(path: Path, n: int) -> np.ndarray:
    bf = brainflow()
    descr = bf.BoardShim.get_board_descr(board_id("synthetic"))
    rng = np.random.default_rng(7)
    rows = np.zeros((descr["num_rows"], n))
    rows[descr["package_num_channel"]] = np.arange(n) % 256
    rows[descr["eeg_channels"]] = rng.normal(0, 20.0, (len(descr["eeg_channels"]), n))
    rows[descr["timestamp_channel"]] = 1.7e9 + np.arange(n) / descr["sampling_rate"]
    from brainflow.data_filter import DataFilter

    DataFilter.write_file(rows, str(path), "w")
    return rows[descr["eeg_channels"]]


def test_playback_file_board_reproduces_the_file(tmp_path):
    path = tmp_path / "board.csv"
    eeg_uv = _write_playback(path, 300)
    source = BrainFlowSource("playback", file=path, master_board="synthetic")
    try:
        source.open()
        data, stamps, _, _ = pull_for(source, 10**6)  # until the file has played
        assert source.pull(0.05) is None  # and stays over
    finally:
        source.close()
    assert data.shape == (16, 300)
    # the file keeps 6 decimals of µV (5e-13 V); float32 keeps 7 digits
    np.testing.assert_allclose(data, eeg_uv * 1e-6, rtol=2e-7, atol=1e-12)
    # played now, stamped now: on the LSL clock, a sample period apart on average
    assert abs(np.median(np.diff(stamps)) - 1 / 250) < 1e-3


def test_marker_channel_becomes_markers():
    source = BrainFlowSource("synthetic")
    try:
        source.open()
        pull_for(source, 10)
        t_insert = []
        for value in (7, 2.5):
            t_insert.append(source.clock())
            source.insert_marker(value)
            time.sleep(0.05)
        _, stamps, mt, mv = pull_for(source, 50)
        with pytest.raises(ConfigError, match="non-zero number"):
            source.insert_marker(0)
    finally:
        source.close()
    assert mv == ["7", "2.5"]
    # each marker is stamped with the sample it landed on: the first one read after it
    assert np.isin(mt, stamps).all()
    period = 1 / 250
    for t, m in zip(t_insert, mt, strict=True):
        assert t - period <= m < t + 2.0


def test_a_dropped_board_is_lost_and_reconnected():
    source = BrainFlowSource("synthetic", reconnect_timeout=0.3)
    try:
        source.open()
        _, before, _, _ = pull_for(source, 20)
        source._board.stop_stream()  # the board goes silent
        deadline = time.monotonic() + 20
        while [e.kind for e in source.events] != ["lost", "reconnected"]:
            assert time.monotonic() < deadline, source.events
            source.pull(0.05)
        _, after, _, _ = pull_for(source, 20)
    finally:
        source.close()
    lost, back = source.events
    assert lost.detail["reason"] == "no data for 0.3 s" and lost.detail["board"] == "synthetic"
    assert back.time >= lost.time
    # the samples after the loss come later: the loop sees the gap in the stamps
    assert after[0] - before[-1] > 0.3


def test_bci_run_on_the_synthetic_board_makes_decisions(capsys):
    assert main(["run", str(EXAMPLE), "--duration", "4", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n_decisions"] > 0 and summary["n_samples"] > 0
    assert not [e for e in summary["events"] if e["kind"] in ("gap", "clock", "lost")]


# --- the LSL bridge ---------------------------------------------------------------------

def test_bridge_is_visible_through_lsl(unique_name):
    bridge = BrainFlowBridge(BrainFlowSource("synthetic"), name=unique_name)
    inlet = LSLInput(name=unique_name, markers=f"{unique_name}-markers", resolve_timeout=10)
    with bridge:
        try:
            info = inlet.open()
            assert info["ch_names"] == bridge.source.info["ch_names"]
            assert inlet.source_id == "brainflow:synthetic"
            pull_for(inlet, 10)
            bridge.source.insert_marker(3)
            data, stamps, mt, mv = pull_for(inlet, 250)
        finally:
            inlet.close()
    assert mv == ["3"]
    assert bridge.n_markers_sent == 1 and bridge.n_samples_sent > 0
    assert data.shape[0] == 16 and 1e-6 < np.abs(data).max() < 1e-2  # volts
    # the marker keeps the stamp of the sample it landed on (both inlets time-corrected)
    assert np.abs(stamps - mt[0]).min() < 1e-4


def test_bci_record_records_the_bridged_board(tmp_path, unique_name):
    proc = subprocess.Popen(
        [sys.executable, "-m", "bci", "stream", "brainflow", "--board", "synthetic",
         "--name", unique_name, "--duration", "60"], cwd=REPO, env=os.environ.copy(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert lines[1].startswith(f"Serving marker stream '{unique_name}-markers'"), (
            lines, proc.stderr.read() if proc.poll() is not None else "")
        out = tmp_path / "board.xdf"
        with contextlib.redirect_stdout(io.StringIO()):
            status = main(["record", "--stream", unique_name, "--stream",
                           f"{unique_name}-markers", "--duration", "1.5", "-o", str(out)])
        assert status == 0
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Stopped after" in stdout and "interrupted by SIGTERM" in stderr
    streams, _ = pyxdf.load_xdf(out, synchronize_clocks=False, dejitter_timestamps=False)
    by_name = {s["info"]["name"][0]: s for s in streams}
    eeg = by_name[unique_name]
    labels = [c["label"][0] for c in eeg["info"]["desc"][0]["channels"][0]["channel"]]
    assert labels[:4] == ["Fz", "C3", "Cz", "C4"]
    assert eeg["time_series"].shape[1] == 16 and eeg["time_series"].shape[0] > 0
    assert np.abs(eeg["time_series"]).max() < 1e-2  # volts
