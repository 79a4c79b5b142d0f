"""A recording whose writes fail (disk full, file too large, unwritable) stops with one
error and leaves a readable file; the live session goes on, or stops when told to.

Faults are real OS errors: ``RLIMIT_FSIZE`` makes the kernel refuse to grow a file past
a size (EFBIG, after a partial write, exactly like a disk filling up mid-chunk; Python
ignores the SIGXFSZ that comes with it), and ``/dev/full`` refuses every write (ENOSPC).
"""

from __future__ import annotations

import errno
import json
import resource
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import pyxdf
from bci.devices.recorder import SessionRecorder
from streams import Player, make_outlet

BCI = str(Path(sys.executable).with_name("bci"))
CH = ["O1", "Oz", "O2", "PO3", "POz", "PO4", "PO7", "PO8"]


@contextmanager
def file_size_limit(n_bytes: int):
    """No file of this process may grow past ``n_bytes`` while the block runs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _load(path: Path) -> dict[str, dict]:
    streams, _ = pyxdf.load_xdf(str(path), dejitter_timestamps=False,
                                synchronize_clocks=False)
    return {s["info"]["name"][0]: s for s in streams}


def test_a_failed_write_stops_the_recording_once_and_keeps_whole_chunks(tmp_path):
    path = tmp_path / "full.xdf"
    errors: list[OSError] = []
    rec = SessionRecorder(path, flush_interval=None, on_error=errors.append)
    sid = rec.add_stream(name="eeg", type="EEG", channel_count=4, nominal_srate=100.0)
    block = np.arange(4 * 100, dtype=np.float32).reshape(4, 100)
    rec.write(sid, block, np.arange(100) / 100.0)
    rec.flush()
    kept = path.stat().st_size
    with file_size_limit(kept + 1000):  # room for part of the next chunk only
        for i in range(1, 5):
            rec.write(sid, block, i + np.arange(100) / 100.0)  # no exception: reported
            rec.flush()
    rec.close()
    assert len(errors) == 1 and errors[0].errno == errno.EFBIG
    assert rec.failed
    # the partial chunk was cut off: the file holds exactly the first second, readable
    assert path.stat().st_size == kept
    got = _load(path)["eeg"]
    np.testing.assert_array_equal(got["time_series"].T, block)


def test_without_a_handler_the_failed_write_raises(tmp_path):
    rec = SessionRecorder(tmp_path / "r.xdf", flush_interval=None)
    sid = rec.add_stream(name="eeg", type="EEG", channel_count=1, nominal_srate=10.0)
    with file_size_limit(rec.path.stat().st_size + 10), pytest.raises(OSError) as err:
        rec.write(sid, np.zeros((1, 10)), np.arange(10.0))
        rec.flush()
    assert err.value.errno == errno.EFBIG
    with pytest.raises(OSError):
        rec.close()


def test_a_recording_to_dev_full_fails_at_once(tmp_path):
    with pytest.raises(OSError) as err:
        SessionRecorder("/dev/full", flush_interval=None)
    assert err.value.errno == errno.ENOSPC


def _session(tmp_path: Path, name: str, on_error: str) -> Path:
    session = tmp_path / f"{on_error}.toml"
    session.write_text(f"""\
[source]
stream = "{name}"
resolve_timeout = 30

[window]
mode = "sliding"
length = 1.0
step = 0.5

[decoder]
kind = "fbcca"
frequencies = [8.0, 10.0]

[outputs]
lsl = false
record = "{on_error}.xdf"
on_record_error = "{on_error}"
""")
    return session


def _run_with_limit(tmp_path: Path, name: str, on_error: str, limit: int):
    """``bci run`` on a real 1 kHz stream, its files limited to ``limit`` bytes."""
    outlet = make_outlet(name, CH, 1000.0, chunk=20)
    rng = np.random.default_rng(0)
    player = Player(outlet, rng.standard_normal((len(CH), 30_000)).astype(np.float32) * 1e-5,
                    1000.0, chunk=20, start_delay=0.0)
    player.start()
    try:
        proc = subprocess.run(
            [BCI, "run", str(_session(tmp_path, name, on_error)), "--duration", "4",
             "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    finally:
        player.stop_event.set()
        player.join()
    return proc


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_live_session_goes_on_after_its_recording_fails(tmp_path, unique_name):
    proc = _run_with_limit(tmp_path, unique_name, "continue", 48_000)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")]
    assert len(errors) == 1 and "continue.xdf" in errors[0], proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    failed = [e for e in summary["events"] if e["kind"] == "record_failed"]
    assert len(failed) == 1
    assert failed[0]["path"].endswith("continue.xdf") and "EFBIG" in failed[0]["error"]
    # decisions went on after the failure: 4 s of 1 s windows every 0.5 s
    assert summary["n_decisions"] >= 4
    recorded = tmp_path / "continue.xdf"
    assert recorded.stat().st_size <= 48_000
    got = _load(recorded)[unique_name]
    assert got["time_series"].shape[1] == len(CH) and got["time_series"].shape[0] > 0


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_on_record_error_stop_ends_the_session_with_status_1(tmp_path, unique_name):
    proc = _run_with_limit(tmp_path, unique_name, "stop", 48_000)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("bci run:")]
    assert len(lines) == 1 and "on_record_error = 'stop'" in lines[0], proc.stderr
    _load(tmp_path / "stop.xdf")  # readable


def test_bci_record_to_dev_full_is_one_line_with_status_2(tmp_path, unique_name):
    outlet = make_outlet(unique_name, ["a"], 100.0)  # noqa: F841 (kept alive to be found)
    proc = subprocess.run([BCI, "record", "--stream", unique_name, "-o", "/dev/full",
                           "--overwrite", "--resolve-timeout", "10"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "bci record: error: /dev/full: No space left on device (ENOSPC)"]
