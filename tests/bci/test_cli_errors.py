"""Every documented bad input to ``bci``, run as a real command: the exit status, and one
line on stderr naming what was expected and what was found, never a traceback. Ctrl-C and
SIGTERM end a command waiting for a stream at once, with status 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from bci.decoders.onnx_graphs import linear_softmax_model
from onnx import TensorProto, helper

from bci.spec import DecoderSpec, WindowSpec, write_spec

BCI = str(Path(sys.executable).with_name("bci"))
SESSION = """\
[source]
stream = "bci-test-no-such-stream"
resolve_timeout = {timeout}

[window]
mode = "sliding"
length = 1.0
step = 0.5

[decoder]
kind = "fbcca"
frequencies = [8.0, 10.0]
"""


def _bci(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([BCI, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def _one_line(stderr: str) -> str:
    """The error line: stderr less log lines (``WARNING name: …``), which must be one."""
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines()
             if ln.strip() and not ln.startswith(("INFO ", "WARNING "))]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "ok.toml").write_text(SESSION.format(timeout=0.5))
    (tmp_path / "malformed.toml").write_text("[source\nstream = 'x'\n")
    (tmp_path / "unknown.toml").write_text(
        SESSION.format(timeout=0.5).replace("[window]", "colour = 'red'\n\n[window]"))
    (tmp_path / "wrongtype.toml").write_text(
        SESSION.format(timeout=0.5).replace("length = 1.0", 'length = "long"'))
    (tmp_path / "decoder.toml").write_text(
        SESSION.format(timeout=0.5).replace('kind = "fbcca"', 'kind = "nosuch"'))
    (tmp_path / "garbage.onnx").write_text("not a model")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), tmp_path / "nospec.onnx")
    (tmp_path / "cut.xdf").write_bytes(b"XDF:\x01\x05")
    (tmp_path / "file.txt").write_text("a regular file")
    (tmp_path / "protocol.toml").write_text("colour = 'red'\n")
    (tmp_path / "fed.toml").write_text("colour = 'red'\n")
    return tmp_path


# (arguments, exit status, what the line must say)
FAST_CASES = [
    (["run", "absent.toml"], 2, "absent.toml does not exist"),
    (["run", "unknown.toml"], 2, "colour: unknown key; expected one of"),
    (["run", "ok.toml", "--no-such-option"], 2, "unrecognized arguments: --no-such-option"),
]
SLOW_CASES = [
    (["run", "malformed.toml"], 2, "malformed.toml: not valid TOML"),
    (["run", "wrongtype.toml"], 2, "window.length: expected a number, found 'long'"),
    (["run", "decoder.toml"], 2, "decoder.kind: expected one of"),
    (["run", "ok.toml", "--model", "absent.onnx"], 2, "absent.onnx does not exist"),
    (["run", "ok.toml", "--model", "garbage.onnx"], 2, "expected an ONNX model"),
    (["inspect", "nospec.onnx"], 2, "no 'bci' entry in its metadata_props"),
    (["replay", "ok.toml", "--input", "absent.xdf"], 2, "absent.xdf"),
    (["replay", "ok.toml", "--input", "cut.xdf"], 2, "cut.xdf: expected"),
    (["evaluate", "ok.toml", "--decoder", "nosuch", "--train", "x.fif"], 2,
     "invalid choice: 'nosuch'"),
    (["replay", "ok.toml", "--input", "cut.xdf", "--output", "file.txt/out.jsonl"], 2,
     "expected its parent file.txt to be a folder, found a regular file"),
    (["record", "--stream", "x", "-o", "file.txt/out.xdf"], 2,
     "expected its parent file.txt to be a folder, found a regular file"),
    (["run", "ok.toml"], 2, "no LSL stream matching name='bci-test-no-such-stream' within "
                            "0.5 s"),
    (["protocol", "ssvep-speller", "protocol.toml"], 2, "colour: unknown key; expected"),
    (["fl", "simulate", "fed.toml"], 2, "colour: unknown key; expected one of"),
]


def _check(files: Path, args: list[str], status: int, says: str) -> None:
    proc = _bci(*args, cwd=files)
    line = _one_line(proc.stderr)
    assert proc.returncode == status, (args, proc.returncode, proc.stderr)
    assert line.startswith(f"bci {args[0]}") and "error" in line, line
    assert says in line, line


@pytest.mark.parametrize("args,status,says", FAST_CASES, ids=lambda v: str(v))
def test_bad_input_is_one_line(files, args, status, says):
    _check(files, args, status, says)


@pytest.mark.slow
@pytest.mark.parametrize("args,status,says", SLOW_CASES, ids=lambda v: str(v))
def test_every_documented_bad_input_is_one_line(files, args, status, says):
    _check(files, args, status, says)


def test_inspect_into_a_closed_pipe_ends_quietly(tmp_path):
    """``bci inspect m.onnx | head -1``, the reader gone before the first write."""
    model = tmp_path / "m.onnx"
    spec = DecoderSpec(paradigm="mi", classes=["left", "right"], ch_names=["C3", "Cz", "C4"],
                       sfreq=128.0, window=WindowSpec(mode="sliding", length=0.5, step=0.25))
    write_spec(linear_softmax_model(np.zeros((2, 3, 64), np.float32),
                                    np.zeros(2, np.float32)), spec, model)
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([BCI, "inspect", str(model)], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert proc.returncode == 0
    assert proc.stderr == ""


def _interrupt_while_resolving(files: Path, sig: signal.Signals) -> None:
    (files / "wait.toml").write_text(SESSION.format(timeout=60))
    proc = subprocess.Popen([BCI, "run", "wait.toml"], cwd=files, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        sent = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    # loosely: long before the 60 s resolve timeout
    assert took < 15, took
    assert _one_line(err).endswith(f"interrupted by {sig.name}")


def test_sigterm_ends_a_resolve_wait_with_130(files):
    _interrupt_while_resolving(files, signal.SIGTERM)


@pytest.mark.slow
def test_ctrl_c_ends_a_resolve_wait_with_130(files):
    _interrupt_while_resolving(files, signal.SIGINT)
