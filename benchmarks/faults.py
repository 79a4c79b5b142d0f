"""The fault table: inject every known fault for real and measure what the runtime does.

Each scenario below injects one fault on this machine — a real LSL outlet on loopback that
vanishes, stalls or lies about its rate, a real ``bci`` subprocess sent a real signal,
a real file truncated, written to ``/dev/full`` or under a file-size limit, a malformed
session or model — and measures the exit status, whether the error reached the user as
one line with no traceback, what was lost (samples or markers in the output against what
went in) and how long the runtime took to recover. Each returns a :class:`Row` whose
PASS/FAIL is computed from those measurements against the expected behaviour.

Usage::

    python benchmarks/faults.py [--only NAME …] [--markdown] [--write-readme] [--list]

It prints the table (markdown) and ends with one JSON line
``{"rows": N, "passed": P, "failed": F}``; ``--write-readme`` replaces the table between
``<!-- fault-table:begin -->`` and ``<!-- fault-table:end -->`` in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import json
import logging
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("LSLAPICFG", str(REPO / "bci" / "lsl_api.cfg"))

from bci.decoders.onnx_graphs import linear_softmax_model  # noqa: E402
from bci.devices.files import read_recording  # noqa: E402
from bci.devices.xdf import XDFWriter  # noqa: E402

from bci.chunk import Markers  # noqa: E402
from bci.datasets.synthetic.recording import make_recording  # noqa: E402
from bci.errors import BCIError  # noqa: E402
from bci.lslconfig import get_pylsl  # noqa: E402
from bci.recording import Recording  # noqa: E402
from bci.runner import run_live, run_replay  # noqa: E402
from bci.session import SessionConfig  # noqa: E402
from bci.spec import DecoderSpec, WindowSpec, write_spec  # noqa: E402


def _load_streams():
    """The live tests' LSL helpers (tests/streams.py), loaded by path: putting tests/ on
    sys.path would let tests/bci shadow parts of the installed ``bci`` namespace."""
    spec = importlib.util.spec_from_file_location("bci_test_streams", REPO / "tests" / "streams.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_streams = _load_streams()
Player, make_marker_outlet, make_outlet = (_streams.Player, _streams.make_marker_outlet,
                                           _streams.make_outlet)

README = REPO / "benchmarks" / "README.md"
BEGIN, END = "<!-- fault-table:begin -->", "<!-- fault-table:end -->"
CH = ["C3", "Cz", "C4", "Pz"]  # what the test amplifier sends; the model uses the first 3
SFREQ = 200.0
SSVEP_FREQS = [8.0, 10.0, 12.0, 15.0]


@dataclass
class Row:
    """One line of the fault table: what was done, what should happen, what did."""

    name: str
    fault: str
    injected: str
    expected: str
    observed: str = ""
    lost: str = "—"
    recover: str = "—"
    passed: bool = False


@dataclass
class Outcome:
    """What a scenario measured; ``passed`` is computed by the scenario, never assumed."""

    observed: str
    passed: bool
    lost: str = "—"
    recover: float | str | None = None


@dataclass(frozen=True)
class Fault:
    name: str
    fault: str
    injected: str
    expected: str
    run: Callable[[Context], Outcome]


FAULTS: dict[str, Fault] = {}


def fault(name: str, fault: str, injected: str, expected: str):
    """Register a scenario under ``name``."""

    def register(fn: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
        FAULTS[name] = Fault(name, fault, injected, expected, fn)
        return fn

    return register


# ----------------------------------------------------------------------------- context

class Context:
    """A temporary folder, a model and helpers shared by the scenarios."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._model: Path | None = None
        self._n = 0

    def dir(self, name: str) -> Path:
        self._n += 1
        d = self.root / f"{self._n:02d}-{name}"
        d.mkdir(parents=True)
        return d

    @staticmethod
    def stream_name() -> str:
        return f"bci-fault-{uuid.uuid4().hex[:8]}"

    @property
    def model(self) -> Path:
        """A 3-class linear ONNX model on C3, Cz, C4 at 200 Hz, sliding 0.5 s / 0.1 s."""
        if self._model is None:
            self._model = self.root / "linear.onnx"
            write_model(self._model)
        return self._model


def write_model(path: Path, *, classes=("left", "right", "rest"), n_out: int | None = None,
                n_in: int = 3, sfreq: float = SFREQ, length: float = 0.5, step: float = 0.1,
                preprocessing: list | None = None) -> Path:
    rng = np.random.default_rng(0)
    spec = DecoderSpec(
        paradigm="mi", classes=list(classes), ch_names=CH[:3], sfreq=sfreq,
        window=WindowSpec(mode="sliding", length=length, step=step),
        preprocessing=[{"kind": "car"}, {"kind": "bandpass", "l_freq": 4.0, "h_freq": 40.0}]
        if preprocessing is None else preprocessing)
    n_out = len(classes) if n_out is None else n_out
    n_times = round(length * sfreq)
    w = rng.standard_normal((n_out, n_in, n_times)).astype(np.float32) * 1e4
    write_spec(linear_softmax_model(w, np.zeros(n_out)), spec, path)
    return path


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str | Path):
        return json.dumps(str(v), ensure_ascii=False)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(v)


def write_session(path: Path, tables: dict[str, dict]) -> Path:
    lines = []
    for table, content in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in content.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def model_session(d: Path, model: Path, stream: str = "amp", **extra) -> Path:
    tables = {"source": {"stream": stream, "resolve_timeout": 5.0, "stall_timeout": 0.3},
              "decoder": {"path": str(model)}, "outputs": {"lsl": False}}
    for key, value in extra.items():
        tables.setdefault(key, {}).update(value)
    return write_session(d / "session.toml", tables)


def fbcca_session(d: Path, stream: str = "amp", *, epoch: bool = True, **extra) -> Path:
    tables = {"source": {"stream": stream, "resolve_timeout": 2.0, "stall_timeout": 0.3},
              "decoder": {"kind": "fbcca", "frequencies": SSVEP_FREQS},
              "outputs": {"lsl": False}}
    if epoch:
        tables["window"] = {"mode": "epoch", "tmin": 0.0, "tmax": 2.0,
                            "events": {f"{f:g}Hz": f"{f:g}Hz" for f in SSVEP_FREQS}}
    else:
        tables["window"] = {"mode": "sliding", "length": 1.0, "step": 0.5}
    for key, value in extra.items():
        tables.setdefault(key, {}).update(value)
    return write_session(d / "session.toml", tables)


def mi_recording(seconds: float, *, seed: int = 0, t0: float = 0.0) -> Recording:
    """Synthetic motor-imagery EEG on the model's channels at its rate."""
    return make_recording(seconds, paradigm="mi", ch_names=CH, sfreq=SFREQ, seed=seed, t0=t0)


def ssvep_recording(seconds: float, *, seed: int = 0, t0: float = 0.0) -> Recording:
    return make_recording(seconds, paradigm="ssvep", seed=seed, t0=t0,
                          frequencies=SSVEP_FREQS)


def save_fif(rec: Recording, path: Path) -> Path:
    rec.to_raw().save(path, overwrite=True, verbose="error")
    return path


# ----------------------------------------------------------------------------- the bci command

@dataclass
class Proc:
    rc: int | None
    out: str
    err: str
    seconds: float


def bci(*args: str, timeout: float = 120.0, **popen) -> Proc:
    """Run ``python -m bci ARGS`` to completion."""
    t = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "bci", *map(str, args)], capture_output=True,
                       text=True, timeout=timeout, cwd=REPO, **popen)
    return Proc(p.returncode, p.stdout, p.stderr, time.monotonic() - t)


def spawn(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bci", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)


def wait_for_lsl(p: subprocess.Popen, timeout: float = 30.0) -> bool:
    """Wait until process ``p`` has loaded liblsl (it is then opening or resolving streams)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and p.poll() is None:
        try:
            if "liblsl" in Path(f"/proc/{p.pid}/maps").read_text():
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def wait_for_consumer(outlet, p: subprocess.Popen, timeout: float = 30.0) -> bool:
    """Wait until the process ``p`` has connected to ``outlet`` (False if it exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and p.poll() is None:
        if outlet.wait_for_consumers(0.2):
            return True
    return False


def error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if re.match(r"bci [\w-]+: error: ", ln)]


def one_line_error(err: str) -> bool:
    """Exactly one ``bci CMD: error: …`` line and no traceback."""
    return len(error_lines(err)) == 1 and "Traceback" not in err


def short(text: str, n: int = 110) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= n else text[: n - 1] + "…"


def first_error(err: str) -> str:
    lines = error_lines(err)
    if lines:
        return lines[0]
    if "Traceback" in err:
        return "traceback: " + err.strip().splitlines()[-1]
    return err.strip().splitlines()[-1] if err.strip() else "(no stderr)"


def user_error(proc: Proc, *must: str, rc: int = 2) -> Outcome:
    """A bad input: status ``rc``, one error line naming every string of ``must``."""
    line = first_error(proc.err)
    named = [m for m in must if m.lower() in line.lower()]
    ok = proc.rc == rc and one_line_error(proc.err) and len(named) == len(must)
    missing = [m for m in must if m not in named]
    return Outcome(f"exit {proc.rc}; {len(error_lines(proc.err))} error line(s)"
                   + ("; traceback" if "Traceback" in proc.err else "")
                   + (f"; does not name {missing}" if missing else "")
                   + f": “{short(line, 220)}”", ok, recover=proc.seconds)


def replay_json(session: Path, data: Path, *extra: str, timeout: float = 120.0) -> tuple[
        Proc, dict | None]:
    proc = bci("replay", session, "--input", data, "--json", *extra, timeout=timeout)
    summary = None
    for line in reversed(proc.out.splitlines()):
        if line.startswith("{"):
            summary = json.loads(line)
            break
    return proc, summary


class LogCapture(logging.Handler):
    """Collects warnings logged in this process (and ``warnings.warn`` ones)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> LogCapture:
        logging.captureWarnings(True)
        root = logging.getLogger()
        self._level = root.level
        root.setLevel(min(root.level, logging.WARNING))  # let warnings reach this handler
        root.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._level)
        logging.captureWarnings(False)


def stop_player(player: Player) -> None:
    player.stop_event.set()
    if player.is_alive():
        player.join(5)


def signal_data(seconds: float, *, seed: int = 0, n_ch: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n_ch, int(seconds * SFREQ))) * 1e-5).astype(np.float32)


def live_config(ctx: Context, name: str, **extra) -> SessionConfig:
    d = {"source": {"stream": name, "resolve_timeout": 6.0, "stall_timeout": 0.3},
         "decoder": {"path": str(ctx.model)}, "outputs": {"lsl": False}}
    for key, value in extra.items():
        d.setdefault(key, {}).update(value)
    return SessionConfig.from_dict(d)


def live_with_player(config: SessionConfig, player: Player, **kw):
    """Run live; the player starts once the session's inlets are open."""
    try:
        return run_live(config, on_ready=lambda _: player.start(), **kw)
    finally:
        stop_player(player)


# ============================================================================ session files

@fault("bad_toml", "malformed session: not TOML", "`[source` with no closing bracket",
       "exit 2, one line naming the file and “not valid TOML”")
def bad_toml(ctx: Context) -> Outcome:
    path = ctx.dir("bad-toml") / "session.toml"
    path.write_text("[source\nstream = 'amp'\n")
    return user_error(bci("run", path, "--duration", "1"), str(path), "TOML")


@fault("unknown_key", "malformed session: unknown key", "`strem = \"amp\"` in [source]",
       "exit 2, one line naming source.strem and suggesting `stream`")
def unknown_key(ctx: Context) -> Outcome:
    d = ctx.dir("unknown-key")
    path = write_session(d / "session.toml", {"source": {"strem": "amp"},
                                              "decoder": {"path": str(ctx.model)}})
    return user_error(bci("run", path, "--duration", "1"), str(path), "source.strem", "stream")


@fault("wrong_type", "malformed session: wrong type", "`resolve_timeout = \"fast\"`",
       "exit 2, one line naming source.resolve_timeout, expected and found")
def wrong_type(ctx: Context) -> Outcome:
    d = ctx.dir("wrong-type")
    path = write_session(d / "session.toml", {
        "source": {"stream": "amp", "resolve_timeout": "fast"},
        "decoder": {"path": str(ctx.model)}})
    return user_error(bci("run", path, "--duration", "1"), "source.resolve_timeout", "fast")


@fault("decoder_path_missing", "decoder file missing", "`[decoder] path = \"absent.onnx\"`",
       "exit 2, one line naming the session file, decoder.path and the missing file")
def decoder_path_missing(ctx: Context) -> Outcome:
    d = ctx.dir("decoder-path")
    path = write_session(d / "session.toml", {"source": {"stream": "amp"},
                                              "decoder": {"path": "absent.onnx"}})
    rec = save_fif(mi_recording(3), d / "rec_raw.fif")
    return user_error(bci("replay", path, "--input", rec), str(path), "decoder.path",
                      "absent.onnx")


@fault("cutoff_above_nyquist", "filter cut-off above Nyquist",
       "`bandpass h_freq = 150` on a 200 Hz recording",
       "exit 2, one line naming the session file, chain.nodes[0] and Nyquist (100 Hz)")
def cutoff_above_nyquist(ctx: Context) -> Outcome:
    d = ctx.dir("nyquist")
    path = model_session(d, ctx.model, chain={"nodes": [
        {"kind": "bandpass", "l_freq": 1.0, "h_freq": 150.0}]})
    rec = save_fif(mi_recording(3), d / "rec_raw.fif")
    return user_error(bci("replay", path, "--input", rec), str(path), "chain.nodes[0]", "100")


@fault("fbcca_classes_mismatch", "FBCCA classes ≠ frequencies",
       "3 frequencies, 2 classes in [decoder]",
       "exit 2, one line naming the session file and decoder.classes")
def fbcca_classes_mismatch(ctx: Context) -> Outcome:
    d = ctx.dir("fbcca-classes")
    path = fbcca_session(d, decoder={"frequencies": [8.0, 10.0, 12.0], "classes": ["a", "b"]})
    rec = save_fif(ssvep_recording(4), d / "rec_raw.fif")
    return user_error(bci("replay", path, "--input", rec), str(path), "decoder.classes")


@fault("fbcca_freq_above_nyquist", "FBCCA frequency above Nyquist",
       "`frequencies = [8, 10, 12, 200]` on a 256 Hz recording",
       "exit 2, one line naming the session file, decoder.frequencies and Nyquist")
def fbcca_freq_above_nyquist(ctx: Context) -> Outcome:
    d = ctx.dir("fbcca-nyquist")
    path = fbcca_session(d, decoder={"frequencies": [8.0, 10.0, 12.0, 200.0]},
                         window={"events": {"8Hz": "8Hz"}})
    rec = save_fif(ssvep_recording(4), d / "rec_raw.fif")
    return user_error(bci("replay", path, "--input", rec), str(path), "decoder.frequencies",
                      "Nyquist")


@fault("output_under_file", "output path under a regular file",
       "`--output notadir.txt/decisions.jsonl` where notadir.txt is a file",
       "exit 2, one line naming the path and saying it is not a folder; no traceback")
def output_under_file(ctx: Context) -> Outcome:
    d = ctx.dir("output-under-file")
    (d / "notadir.txt").write_text("x")
    rec = save_fif(mi_recording(3), d / "rec_raw.fif")
    proc = bci("replay", model_session(d, ctx.model), "--input", rec, "--output",
               d / "notadir.txt" / "decisions.jsonl")
    out = user_error(proc, "notadir.txt")
    # “File exists” (mkdir's errno) does not tell the user what is wrong
    out.passed = out.passed and re.search(r"(folder|directory)", first_error(proc.err),
                                          re.I) is not None
    return out


@fault("unicode_paths", "unicode paths", "session, recording and output under `données-é/脑波`",
       "exit 0; one decision per output line")
def unicode_paths(ctx: Context) -> Outcome:
    d = ctx.dir("unicode") / "données-é" / "脑波"
    d.mkdir(parents=True)
    rec = save_fif(mi_recording(4), d / "enregistrement_raw.fif")
    out = d / "décisions.jsonl"
    proc, summary = replay_json(model_session(d, ctx.model), rec, "--output", out)
    n_lines = len(out.read_text(encoding="utf-8").splitlines()) if out.exists() else 0
    n = summary["n_decisions"] if summary else None
    ok = proc.rc == 0 and n is not None and n > 0 and n_lines == n
    return Outcome(f"exit {proc.rc}; {n} decisions, {n_lines} output lines "
                   + (first_error(proc.err) if proc.rc else ""), ok, lost=f"{(n or 0) - n_lines}"
                   " decisions")


# ============================================================================ models

@fault("onnx_not_onnx", "bad ONNX: not ONNX", "`bci inspect` a text file named model.onnx",
       "exit 2, one line naming the file")
def onnx_not_onnx(ctx: Context) -> Outcome:
    path = ctx.dir("not-onnx") / "model.onnx"
    path.write_text("this is not a model\n")
    return user_error(bci("inspect", path), "model.onnx")


@fault("onnx_no_spec", "bad ONNX: no spec", "a valid ONNX graph without `bci` metadata",
       "exit 2, one line naming the file and the missing `bci` spec")
def onnx_no_spec(ctx: Context) -> Outcome:
    import onnx

    path = ctx.dir("no-spec") / "bare.onnx"
    model = onnx.load(str(ctx.model))
    del model.metadata_props[:]
    onnx.save(model, str(path))
    return user_error(bci("inspect", path), "bare.onnx", "bci")


@fault("onnx_wrong_input", "bad ONNX: wrong input shape",
       "spec says 3 channels, graph takes 4", "exit 2, one line naming the model and both shapes")
def onnx_wrong_input(ctx: Context) -> Outcome:
    d = ctx.dir("wrong-input")
    model = write_model(d / "wide.onnx", n_in=4)
    rec = save_fif(mi_recording(3), d / "rec_raw.fif")
    return user_error(bci("replay", model_session(d, model), "--input", rec), "wide.onnx")


@fault("spec_class_count", "spec class count ≠ model output",
       "spec lists 3 classes, graph outputs 2",
       "exit 2, one line naming the model, 3 classes and 2 outputs")
def spec_class_count(ctx: Context) -> Outcome:
    d = ctx.dir("class-count")
    model = write_model(d / "two.onnx", n_out=2)
    rec = save_fif(mi_recording(3), d / "rec_raw.fif")
    return user_error(bci("replay", model_session(d, model), "--input", rec), "two.onnx", "3",
                      "2")


@fault("inspect_broken_pipe", "`bci inspect … | head`",
       "stdout is a pipe whose reader has already gone (EPIPE on the first write)",
       "no traceback; exit 0 or 141 (SIGPIPE)")
def inspect_broken_pipe(ctx: Context) -> Outcome:
    r, w = os.pipe()
    os.close(r)  # the reader (head) is gone before bci writes
    t = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-m", "bci", "inspect", str(ctx.model)], stdout=w,
                           stderr=subprocess.PIPE, text=True, timeout=60, cwd=REPO)
    finally:
        os.close(w)
    ok = p.returncode in (0, 141, -signal.SIGPIPE) and "Traceback" not in p.stderr
    return Outcome(f"exit {p.returncode}; stderr: “{short(p.stderr or '(empty)', 120)}”", ok,
                   recover=time.monotonic() - t)


# ============================================================================ files

def _truncated(ctx: Context, ext: str) -> Outcome:
    d = ctx.dir(f"truncated-{ext}")
    rec = mi_recording(20.0)
    raw = rec.to_raw()
    path = d / (f"rec_raw.{ext}" if ext == "fif" else f"rec.{ext}")
    if ext == "fif":
        raw.save(path, verbose="error")
    else:
        import mne

        mne.export.export_raw(path, raw, fmt=ext, overwrite=True, verbose="error")
    size = path.stat().st_size
    n_total = rec.data.shape[1]
    cut = int(size * 0.6)
    with open(path, "r+b") as f:
        f.truncate(cut)
    # what the cut destroyed: its share of the data bytes (headers are small)
    destroyed = round(n_total * (size - cut) / size)
    proc, summary = replay_json(model_session(d, ctx.model), path)
    n_read = summary["n_samples"] if summary else 0
    lost_beyond = n_total - n_read - destroyed
    warned = re.search(r"(\d+(?:\.\d+)?) ?s\b", proc.err) and re.search(
        r"truncat|lost|incomplete", proc.err, re.I)
    ok = proc.rc == 0 and bool(warned) and n_read > 0 and lost_beyond <= SFREQ  # ≤ one record
    msg = next((ln for ln in proc.err.splitlines() if re.search(r"truncat|lost", ln, re.I)),
               first_error(proc.err))
    return Outcome(f"exit {proc.rc}; read {n_read}/{n_total} samples; “{short(msg, 120)}”", ok,
                   lost=f"{n_total - n_read} samples ({destroyed} cut off; {lost_beyond} beyond)")


@fault("truncated_fif", "truncated FIF", "FIF file cut at 60 % of its bytes",
       "salvaged to the last complete buffer; warning of seconds lost; exit 0")
def truncated_fif(ctx: Context) -> Outcome:
    return _truncated(ctx, "fif")


@fault("truncated_edf", "truncated EDF", "EDF file cut at 60 % of its bytes",
       "salvaged to the last complete record; warning of seconds lost; exit 0")
def truncated_edf(ctx: Context) -> Outcome:
    return _truncated(ctx, "edf")


@fault("truncated_bdf", "truncated BDF", "BDF file cut at 60 % of its bytes",
       "salvaged to the last complete record; warning of seconds lost; exit 0")
def truncated_bdf(ctx: Context) -> Outcome:
    return _truncated(ctx, "bdf")


@fault("eeglab_epoched", "epoched EEGLAB file", "`mne.export.export_epochs` to a .set",
       "exit 2, one line naming the file as epoched")
def eeglab_epoched(ctx: Context) -> Outcome:
    import mne

    d = ctx.dir("eeglab-epoched")
    raw = mi_recording(10).to_raw()
    epochs = mne.make_fixed_length_epochs(raw, duration=1.0, verbose="error")
    path = d / "epochs.set"
    mne.export.export_epochs(path, epochs, overwrite=True, verbose="error")
    return user_error(bci("replay", model_session(d, ctx.model), "--input", path),
                      "epochs.set", "epoch")


@fault("matlab_v73_set", "MATLAB v7.3 .set", "a .set with MATLAB's v7.3 (HDF5) header",
       "exit 2, one line naming the file as MATLAB v7.3")
def matlab_v73_set(ctx: Context) -> Outcome:
    d = ctx.dir("matlab73")
    path = d / "v73.set"
    header = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  5 10:00:00 2026 "
              b"HDF5 schema 1.00 .").ljust(116, b" ")
    path.write_bytes(header + b"\x00" * 8 + b"\x00\x02IM" + b"\x00" * 384
                     + b"\x89HDF\r\n\x1a\n" + b"\x00" * 2048)
    return user_error(bci("replay", model_session(d, ctx.model), "--input", path),
                      "v73.set", "7.3")


@fault("csv_bad_mapping", "CSV with a bad column mapping",
       "`--columns map.toml` naming C3, Cz, C4; the CSV's columns are time, EXG1…EXG3",
       "exit 2, one line naming the file, the expected columns and those found")
def csv_bad_mapping(ctx: Context) -> Outcome:
    d = ctx.dir("csv")
    path = d / "rec.csv"
    rows = ["time,EXG1,EXG2,EXG3"] + [f"{i / SFREQ:.4f},0.1,0.2,0.3" for i in range(400)]
    path.write_text("\n".join(rows) + "\n")
    mapping = d / "map.toml"
    mapping.write_text('channels = ["C3", "Cz", "C4"]\ntime = "time"\nunit = "uV"\n')
    return user_error(bci("replay", model_session(d, ctx.model), "--input", path,
                          "--columns", mapping), "rec.csv", "C3", "EXG1")


def _write_xdf(path: Path, rec: Recording, *, eeg_ts: np.ndarray, offset: float = 0.0,
               empty_first: bool = False) -> None:
    with XDFWriter(path) as w:
        sid = 1
        if empty_first:
            w.add_stream(1, name="AUX", type="Misc", channel_count=2, nominal_srate=100.0)
            sid = 2
        w.add_stream(sid, name="amp", type="EEG", channel_count=rec.data.shape[0],
                     nominal_srate=rec.sfreq, ch_names=rec.info["ch_names"], ch_units="volts")
        w.add_stream(sid + 1, name="amp-markers", type="Markers", channel_count=1,
                     nominal_srate=0, channel_format="string")
        n = rec.data.shape[1]
        step = int(rec.sfreq)
        for i in range(0, n, step):
            w.write_samples(sid, rec.data[:, i:i + step], eeg_ts[i:i + step])
            if offset:  # LabRecorder: the EEG clock is `offset` behind the recorder's
                w.write_clock_offset(sid, eeg_ts[i], offset)
        w.write_samples(sid + 1, [[v] for v in rec.markers.values], rec.markers.timestamps)


def _xdf_replay(ctx: Context, name: str, *, offset=0.0, reset=False, empty_first=False):
    d = ctx.dir(name)
    rec = ssvep_recording(24.0, seed=3, t0=1000.0)
    ts = rec.timestamps - offset  # the amplifier's own clock
    if reset:
        ts = ts.copy()
        half = ts.size // 2
        ts[half:] -= ts[half] - 1.0  # its clock restarts at 1 s
    path = d / "labrecorder.xdf"
    _write_xdf(path, rec, eeg_ts=ts, offset=offset, empty_first=empty_first)
    proc, summary = replay_json(fbcca_session(d), path, "--stream", "amp")
    return rec, proc, summary


def _labelled(summary: dict | None) -> tuple[int, float | None]:
    if not summary:
        return 0, None
    return summary["n_decisions"], summary["accuracy"]


@fault("xdf_clock_offset", "XDF clock offset", "LabRecorder-like XDF: EEG stream's clock "
       "5000 s behind the markers', clock offsets recorded",
       "markers aligned after the offsets: one decision per marker, accuracy far above chance")
def xdf_clock_offset(ctx: Context) -> Outcome:
    rec, proc, summary = _xdf_replay(ctx, "xdf-offset", offset=5000.0)
    n, acc = _labelled(summary)
    n_markers = len(rec.markers.values)
    ok = proc.rc == 0 and n == n_markers and acc is not None and acc > 0.5
    return Outcome(f"exit {proc.rc}; {n} decisions for {n_markers} markers, accuracy {acc}"
                   + ("" if proc.rc == 0 else f"; “{short(first_error(proc.err))}”"), ok,
                   lost=f"{n_markers - n} markers")


@fault("xdf_clock_reset", "XDF clock reset", "EEG timestamps restart at 1 s halfway through",
       "reported (warning or event), no crash, no window spanning the reset")
def xdf_clock_reset(ctx: Context) -> Outcome:
    _, proc, summary = _xdf_replay(ctx, "xdf-reset", reset=True)
    events = summary["events"] if summary else []
    reported = bool(events) or re.search(r"reset|backwards|non-monoton|jump", proc.err, re.I)
    ok = proc.rc in (0, 2) and "Traceback" not in proc.err and bool(reported)
    return Outcome(f"exit {proc.rc}; events {[e.get('kind') for e in events]}; "
                   f"{_labelled(summary)[0]} decisions; “{short(first_error(proc.err), 100)}”",
                   ok)


@fault("xdf_empty_first_stream", "XDF with an empty first stream",
       "stream 1 declared with no samples, EEG is stream 2",
       "the EEG stream is read; one decision per marker")
def xdf_empty_first_stream(ctx: Context) -> Outcome:
    rec, proc, summary = _xdf_replay(ctx, "xdf-empty-first", empty_first=True)
    n, acc = _labelled(summary)
    n_markers = len(rec.markers.values)
    ok = proc.rc == 0 and n == n_markers
    return Outcome(f"exit {proc.rc}; {n} decisions for {n_markers} markers, accuracy {acc}"
                   + ("" if proc.rc == 0 else f"; “{short(first_error(proc.err))}”"), ok,
                   lost=f"{n_markers - n} markers")


@fault("labels_not_classes", "replay: labels are not the decoder's classes",
       "SSVEP recording (markers 8Hz…) epoch-replayed with the MI model (left/right/rest)",
       "no accuracy reported; says “no labelled windows”")
def labels_not_classes(ctx: Context) -> Outcome:
    d = ctx.dir("labels-not-classes")
    rec = mi_recording(12.0)
    rec.markers = Markers(rec.markers.timestamps, ["8Hz"] * len(rec.markers.values))
    path = save_fif(rec, d / "rec_raw.fif")
    session = model_session(d, ctx.model, window={"mode": "epoch", "tmin": 0.0, "tmax": 0.5,
                                                  "events": {"8Hz": "8Hz"}})
    proc = bci("replay", session, "--input", path)
    said = "no labelled windows" in (proc.out + proc.err).lower()
    has_acc = "accuracy" in proc.out.lower() and not said
    ok = said and not has_acc and "Traceback" not in proc.err
    said_line = next((ln for ln in (proc.out + proc.err).splitlines()
                      if "labelled" in ln or "error" in ln), "")
    return Outcome(f"exit {proc.rc}; accuracy printed: {has_acc}; “{short(said_line, 100)}”", ok)


@fault("sliding_with_markers", "sliding session over a file with markers",
       "MI recording with left/right markers, sliding windows",
       "no accuracy printed; says “no labelled windows”")
def sliding_with_markers(ctx: Context) -> Outcome:
    d = ctx.dir("sliding-markers")
    path = save_fif(mi_recording(12.0), d / "rec_raw.fif")
    proc = bci("replay", model_session(d, ctx.model), "--input", path)
    text = proc.out + proc.err
    said = "no labelled windows" in text.lower()
    acc = re.search(r"accuracy [0-9.]+", proc.out)
    ok = proc.rc == 0 and said and not acc
    return Outcome(f"exit {proc.rc}; accuracy printed: {acc.group(0) if acc else 'no'}; "
                   f"says no labelled windows: {said}", ok)


@fault("epoch_no_events", "epoch session over a file with no events",
       "epoch session, recording without markers", "a warning and a non-zero exit")
def epoch_no_events(ctx: Context) -> Outcome:
    d = ctx.dir("no-events")
    rec = mi_recording(6.0)
    rec.markers = Markers(np.zeros(0), [])
    path = save_fif(rec, d / "rec_raw.fif")
    session = model_session(d, ctx.model, window={"mode": "epoch", "tmin": 0.0, "tmax": 0.5})
    proc = bci("replay", session, "--input", path)
    warned = re.search(r"no (events|markers)|no labelled", proc.err + proc.out, re.I)
    ok = proc.rc not in (0, None) and bool(warned) and "Traceback" not in proc.err
    return Outcome(f"exit {proc.rc}; “{short(first_error(proc.err) if proc.err else proc.out)}”",
                   ok)


@fault("outage_replay", "amplifier outage in a recording",
       "1 s of samples removed from a recording (timestamps jump)",
       "gap reported, windows spanning it skipped, two replays byte-identical")
def outage_replay(ctx: Context) -> Outcome:
    d = ctx.dir("outage-replay")
    rec = mi_recording(10.0)
    keep = np.r_[0:800, 1000:rec.data.shape[1]]
    cut = Recording(rec.info, rec.data[:, keep], rec.timestamps[keep], Markers(np.zeros(0), []))
    config = SessionConfig.from_dict({"source": {"stream": "amp"},
                                      "decoder": {"path": str(ctx.model)}})
    a, b = d / "a.jsonl", d / "b.jsonl"
    r1 = run_replay(config, cut, output=a)
    run_replay(config, cut, output=b)
    gaps = [e for e in r1.events if e.get("kind") == "gap"]
    spanning = [x for x in r1.decisions if x.stop - 100 < 800 < x.stop]
    same = a.read_bytes() == b.read_bytes()
    ok = bool(gaps) and r1.counts.get("skipped_gap", 0) > 0 and not spanning and same
    lost = r1.n_samples - keep.size
    return Outcome(f"gap events {len(gaps)}; skipped_gap {r1.counts.get('skipped_gap')}; "
                   f"windows spanning it {len(spanning)}; replays identical {same}", ok,
                   lost=f"{-lost} samples beyond the 200 removed")


# ============================================================================ live streams

@fault("missing_stream", "missing stream", "`bci run` for a stream nobody sends "
       "(resolve_timeout 1.5 s), a decoy stream present",
       "exit 2 after the timeout, one line listing the streams found")
def missing_stream(ctx: Context) -> Outcome:
    d = ctx.dir("missing-stream")
    name = ctx.stream_name()
    decoy = make_outlet(f"{name}-decoy", CH, SFREQ)
    session = model_session(d, ctx.model, stream=f"{name}-absent",
                            source={"resolve_timeout": 1.5})
    proc = bci("run", session, "--duration", "2")
    del decoy
    return user_error(proc, f"{name}-absent", f"{name}-decoy")


@fault("missing_channels", "missing channel", "stream sends C3, Cz only; model needs C4",
       "exit 2, one line naming the missing channel")
def missing_channels(ctx: Context) -> Outcome:
    d = ctx.dir("missing-channels")
    name = ctx.stream_name()
    outlet = make_outlet(name, ["C3", "Cz"], SFREQ)
    proc = bci("run", model_session(d, ctx.model, stream=name), "--duration", "2")
    del outlet
    return user_error(proc, "C4")


@fault("channel_count_mismatch", "channel count mismatch",
       "stream with 3 unlabelled channels plus one extra (4), model needs C3/Cz/C4 by name",
       "exit 2, one line naming expected and found channels")
def channel_count_mismatch(ctx: Context) -> Outcome:
    d = ctx.dir("channel-count")
    name = ctx.stream_name()
    outlet = make_outlet(name, ["E1", "E2", "E3", "E4"], SFREQ)
    proc = bci("run", model_session(d, ctx.model, stream=name), "--duration", "2")
    del outlet
    return user_error(proc, "C3")


@fault("rate_mismatch", "sampling-rate mismatch", "stream at 500 Hz, model at 200 Hz",
       "exit 2, one line naming 200 Hz and 500 Hz")
def rate_mismatch(ctx: Context) -> Outcome:
    d = ctx.dir("rate-mismatch")
    name = ctx.stream_name()
    outlet = make_outlet(name, CH, 500.0)
    proc = bci("run", model_session(d, ctx.model, stream=name), "--duration", "2")
    del outlet
    return user_error(proc, "200", "500")


@fault("fbcca_1hz_stream", "FBCCA on a 1 Hz stream",
       "an FBCCA session (8–15 Hz) against a 1 Hz stream",
       "exit 2, one line naming decoder.frequencies and the rate; no hang")
def fbcca_1hz_stream(ctx: Context) -> Outcome:
    d = ctx.dir("1hz")
    name = ctx.stream_name()
    outlet = make_outlet(name, ["Oz", "O1", "O2"], 1.0)
    proc = bci("run", fbcca_session(d, stream=name), "--duration", "3", timeout=60)
    del outlet
    return user_error(proc, "decoder.frequencies", "0.5 Hz")


@fault("fbcca_10hz_stream", "FBCCA on a 10 Hz stream", "FBCCA session (8–15 Hz) against a "
       "10 Hz stream", "exit 2, one line naming decoder.frequencies and the 5 Hz Nyquist")
def fbcca_10hz_stream(ctx: Context) -> Outcome:
    d = ctx.dir("fbcca-10hz")
    name = ctx.stream_name()
    outlet = make_outlet(name, ["Oz", "O1", "O2"], 10.0)
    proc = bci("run", fbcca_session(d, stream=name), "--duration", "3", timeout=60)
    del outlet
    return user_error(proc, "decoder.frequencies", "5")


@fault("stream_1hz", "1 Hz stream", "a 1 Hz LSL stream (one sample per second) served by a "
       "1 Hz model (4 s windows, 1 s step), default stall timeout (1 s), 9 s",
       "every sample received, decisions each second, no spurious stall or gap")
def stream_1hz(ctx: Context) -> Outcome:
    d = ctx.dir("1hz-model")
    model = write_model(d / "slow.onnx", sfreq=1.0, length=4.0, step=1.0, preprocessing=[])
    name = ctx.stream_name()
    data = signal_data(1.0, seed=6)[:, :9]
    outlet = make_outlet(name, CH, 1.0, chunk=1)
    player = Player(outlet, data, 1.0, chunk=1)
    config = SessionConfig.from_dict({"source": {"stream": name, "resolve_timeout": 6.0},
                                      "decoder": {"path": str(model)},
                                      "outputs": {"lsl": False}})
    # the last sample is due 8.2 s after the start: end 0.5 s later, before a real stall
    r = live_with_player(config, player, duration=8.7)
    kinds = [e["kind"] for e in r.events]
    n = r.summary()["n_decisions"]
    ok = r.n_samples == data.shape[1] and n >= 5 and not {"stalled", "gap"} & set(kinds)
    return Outcome(f"{r.n_samples}/{data.shape[1]} samples, {n} decisions; events {kinds}", ok,
                   lost=f"{data.shape[1] - r.n_samples} samples")


@fault("sigint_startup", "SIGINT during start-up", "SIGINT 0.4 s after `bci run` starts "
       "(while it imports), to the `bci` script and to `python -m bci`",
       "exit 130 at once, one line, no traceback, both ways")
def sigint_startup(ctx: Context) -> Outcome:
    import shutil

    d = ctx.dir("sigint-startup")
    session = model_session(d, ctx.model)
    script = shutil.which("bci") or str(Path(sys.executable).with_name("bci"))
    seen, ok, waits = [], True, []
    for how, cmd in (("bci", [script]), ("python -m bci", [sys.executable, "-m", "bci"])):
        p = subprocess.Popen([*cmd, "run", str(session), "--duration", "5"], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.4)
        t = time.monotonic()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        waits.append(time.monotonic() - t)
        good = (p.returncode == 130 and "Traceback" not in err
                and len(err.strip().splitlines()) <= 1)
        ok = ok and good
        seen.append(f"{how}: exit {p.returncode}"
                    + ("" if good else f" “{short(first_error(err), 70)}”"))
    return Outcome("; ".join(seen), ok, recover=max(waits))


@fault("sigint_replay", "SIGINT during `bci replay`",
       "SIGINT once the first decisions are written, replaying 20 min of data",
       "exit 130; every line of the partial output is whole JSON")
def sigint_replay(ctx: Context) -> Outcome:
    d = ctx.dir("sigint-replay")
    rec = Recording(mne_info(), signal_data(1200.0, seed=8), np.arange(240000) / SFREQ,
                    Markers(np.zeros(0), []))
    path = save_fif(rec, d / "long_raw.fif")
    out = d / "decisions.jsonl"
    p = spawn("replay", model_session(d, ctx.model), "--input", path, "--output", out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        if out.exists() and out.stat().st_size > 0:
            break
        time.sleep(0.05)
    t = time.monotonic()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    waited = time.monotonic() - t
    lines = out.read_text().splitlines() if out.exists() else []
    bad = 0
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            bad += 1
    ok = p.returncode == 130 and "Traceback" not in err and bad == 0 and len(lines) > 0
    return Outcome(f"exit {p.returncode}; {len(lines)} lines written, {bad} cut; stderr "
                   f"“{short(err or '(empty)', 80)}”", ok, lost=f"{bad} lines",
                   recover=waited)


@fault("sigint_protocol", "SIGINT during a protocol's calibration",
       "SIGINT to `bci protocol ssvep-speller --simulate --headless` once calibration.xdf "
       "holds 20 KB", "exit 130; calibration recording flushed and readable up to the signal")
def sigint_protocol(ctx: Context) -> Outcome:
    d = ctx.dir("sigint-protocol")
    p = spawn("protocol", "ssvep-speller", "--simulate", "--headless", "--output-dir", d)
    xdf = d / "calibration.xdf"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        if xdf.exists() and xdf.stat().st_size > 20_000:
            break
        time.sleep(0.05)
    t_sig = get_pylsl().local_clock()
    t = time.monotonic()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    waited = time.monotonic() - t
    try:
        rec = read_recording(xdf)
        n, lag = rec.data.shape[1], t_sig - float(rec.timestamps[-1])
        readable, n_markers = True, len(rec.markers.values)
    except (BCIError, OSError) as e:
        n, lag, readable, n_markers = 0, None, f"unreadable: {short(str(e), 60)}", 0
    ok = p.returncode == 130 and readable is True and n > 0 and "Traceback" not in err
    return Outcome(f"exit {p.returncode}; recording readable {readable}: {n} samples, "
                   f"{n_markers} markers" + (f", last sample {lag:.2f} s before the signal"
                                             if lag is not None else ""), ok,
                   lost=f"{max(0.0, lag or 0.0):.2f} s before the signal" if lag is not None
                   else "—", recover=waited)


def _signal_while_resolving(ctx: Context, sig: int) -> Outcome:
    d = ctx.dir(f"resolving-{sig}")
    session = model_session(d, ctx.model, stream=f"{ctx.stream_name()}-absent",
                            source={"resolve_timeout": 20.0})
    p = spawn("run", session, "--duration", "5")
    wait_for_lsl(p)
    time.sleep(1.0)  # liblsl loaded: the session is resolving its stream
    t = time.monotonic()
    p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=15)
        waited = time.monotonic() - t
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        waited = None
    ok = p.returncode == 130 and "Traceback" not in err and waited is not None and waited < 3
    return Outcome(f"exit {p.returncode} {'' if waited is not None else 'killed after 15 s'}; "
                   f"stderr “{short(err or '(empty)', 100)}”", ok, recover=waited)


@fault("sigint_resolving", "SIGINT while resolving",
       "SIGINT 1 s after liblsl is loaded, inside a 20 s resolve",
       "exit 130 within seconds, no traceback")
def sigint_resolving(ctx: Context) -> Outcome:
    return _signal_while_resolving(ctx, signal.SIGINT)


@fault("sigterm_resolving", "SIGTERM while resolving",
       "SIGTERM 1 s after liblsl is loaded, inside a 20 s resolve",
       "exit 130 within seconds, no traceback")
def sigterm_resolving(ctx: Context) -> Outcome:
    return _signal_while_resolving(ctx, signal.SIGTERM)


def _signal_running(ctx: Context, sig: int) -> Outcome:
    """A live session recording to XDF, sent ``sig`` once decisions flow."""
    d = ctx.dir(f"running-{sig}")
    name = ctx.stream_name()
    outlet = make_outlet(name, CH, SFREQ, chunk=10)
    xdf, jsonl = d / "session.xdf", d / "decisions.jsonl"
    session = model_session(d, ctx.model, stream=name,
                            outputs={"record": str(xdf), "jsonl": str(jsonl)})
    p = spawn("run", session, "--duration", "30")
    player = Player(outlet, signal_data(40.0), SFREQ, chunk=10)
    try:
        if not wait_for_consumer(outlet, p):
            p.kill()
            return Outcome(f"session never connected; {short(p.communicate()[1])}", False)
        player.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and p.poll() is None:
            if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 10:
                break
            time.sleep(0.1)
        time.sleep(1.0)
        pylsl = get_pylsl()
        t_sig = pylsl.local_clock()
        t = time.monotonic()
        p.send_signal(sig)
        pushed = int(np.searchsorted(player.timestamps, t_sig))  # due (pushed) by the signal
        _, err = p.communicate(timeout=20)
        waited = time.monotonic() - t
    finally:
        stop_player(player)
        if p.poll() is None:
            p.kill()
    try:
        rec = read_recording(xdf, stream=name)
        n_rec, readable = rec.data.shape[1], True
    except (BCIError, OSError) as e:
        n_rec, readable = 0, f"unreadable: {e}"
    lost = max(0, pushed - n_rec)
    ok = (p.returncode == 130 and readable is True and "Traceback" not in err
          and lost <= 10 + SFREQ * 0.05)
    return Outcome(f"exit {p.returncode}; recording readable: {readable}; "
                   f"{n_rec} samples recorded, {pushed} pushed before the signal",
                   ok, lost=f"{lost} samples", recover=waited)


@fault("sigint_running", "SIGINT mid-run", "SIGINT to `bci run` recording to XDF, "
       "after ≥ 10 decisions", "exit 130, recording flushed and readable, nothing lost")
def sigint_running(ctx: Context) -> Outcome:
    return _signal_running(ctx, signal.SIGINT)


@fault("sigterm_running", "SIGTERM mid-run", "SIGTERM to `bci run` recording to XDF",
       "exit 130, recording flushed and readable, nothing lost")
def sigterm_running(ctx: Context) -> Outcome:
    return _signal_running(ctx, signal.SIGTERM)


def _record(ctx: Context, output: Path | str, *, limit: int | None = None,
            sig: int | None = None, seconds: float = 4.0) -> tuple[Proc, int, float | None]:
    """``bci record`` of a live stream; returns the process, samples pushed, exit delay."""
    name = ctx.stream_name()
    outlet = make_outlet(name, CH, SFREQ, chunk=10)

    def limit_size():
        if limit is not None:  # a disk that fills: writes past `limit` bytes fail (EFBIG)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    args = ["record", "--stream", name, "-o", output, "--overwrite", "--resolve-timeout", "5"]
    if sig is None:
        args += ["--duration", str(seconds)]
    t = time.monotonic()
    p = spawn(*args, preexec_fn=limit_size)
    player = Player(outlet, signal_data(seconds + 20), SFREQ, chunk=10)
    waited = None
    try:
        if wait_for_consumer(outlet, p):
            player.start()
            if sig is not None:
                time.sleep(seconds)
                t_sig = get_pylsl().local_clock()
                ts = time.monotonic()
                p.send_signal(sig)
                out, err = p.communicate(timeout=20)
                waited = time.monotonic() - ts
                pushed = int(np.searchsorted(player.timestamps, t_sig))
            else:
                out, err = p.communicate(timeout=seconds + 30)
                pushed = int(np.searchsorted(player.timestamps, get_pylsl().local_clock()))
        else:
            out, err = p.communicate(timeout=30)
            pushed = 0
    finally:
        stop_player(player)
        if p.poll() is None:
            p.kill()
    del outlet
    return Proc(p.returncode, out, err, time.monotonic() - t), pushed, waited


@fault("sigint_record", "SIGINT under `bci record`", "SIGINT after 3 s of recording",
       "exit 130, XDF readable, nothing lost")
def sigint_record(ctx: Context) -> Outcome:
    d = ctx.dir("sigint-record")
    path = d / "rec.xdf"
    proc, pushed, waited = _record(ctx, path, sig=signal.SIGINT, seconds=3.0)
    try:
        n = read_recording(path).data.shape[1]
        readable = True
    except (BCIError, OSError) as e:
        n, readable = 0, f"unreadable: {e}"
    lost = max(0, pushed - n)
    ok = proc.rc == 130 and readable is True and "Traceback" not in proc.err and lost <= 20
    return Outcome(f"exit {proc.rc}; readable {readable}; {n} recorded / {pushed} pushed",
                   ok, lost=f"{lost} samples", recover=waited)


@fault("full_disk_record", "full disk under `bci record` (/dev/full)",
       "`bci record -o /dev/full`: every write fails with ENOSPC",
       "one error line naming the file and the full disk, non-zero exit, no traceback")
def full_disk_record(ctx: Context) -> Outcome:
    proc, _, _ = _record(ctx, "/dev/full", seconds=2.0)
    line = first_error(proc.err)
    ok = (proc.rc not in (0, None) and one_line_error(proc.err) and "/dev/full" in line
          and re.search(r"space|full", line, re.I) is not None)
    return Outcome(f"exit {proc.rc}; {len(error_lines(proc.err))} error line(s)"
                   + ("; traceback" if "Traceback" in proc.err else "")
                   + f": “{short(line, 130)}”", ok, recover=proc.seconds)


@fault("full_disk_record_midway", "disk fills during `bci record`",
       "RLIMIT_FSIZE 12 KiB on the recorder (writes past it fail: EFBIG), 4 s of 4 ch × 200 Hz "
       "(~20 KB)",
       "one error; the file is readable up to the full disk; non-zero exit")
def full_disk_record_midway(ctx: Context) -> Outcome:
    d = ctx.dir("full-record")
    path = d / "rec.xdf"
    proc, pushed, _ = _record(ctx, path, limit=12 * 1024, seconds=4.0)
    try:
        n = read_recording(path).data.shape[1]
        readable = True
    except (BCIError, OSError) as e:
        n, readable = 0, f"unreadable: {short(str(e), 80)}"
    ok = (proc.rc not in (0, None) and one_line_error(proc.err) and readable is True and n > 0)
    return Outcome(f"exit {proc.rc}; {len(error_lines(proc.err))} error line(s): "
                   f"“{short(first_error(proc.err), 100)}”; readable {readable}, {n} samples "
                   f"of {pushed}", ok,
                   lost=f"{pushed - n} samples (disk full: all after the limit)")


@fault("full_disk_run", "disk fills under `bci run`",
       "RLIMIT_FSIZE 16 KiB on a session recording to XDF (jsonl off), 6 s (~30 KB)",
       "recording stops with one error, the session goes on deciding, file readable")
def full_disk_run(ctx: Context) -> Outcome:
    d = ctx.dir("full-run")
    name = ctx.stream_name()
    outlet = make_outlet(name, CH, SFREQ, chunk=10)
    xdf = d / "session.xdf"
    session = model_session(d, ctx.model, stream=name, outputs={"record": str(xdf)})

    def limit_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))

    p = spawn("run", session, "--duration", "6", "--json", preexec_fn=limit_size)
    player = Player(outlet, signal_data(30.0), SFREQ, chunk=10)
    try:
        if wait_for_consumer(outlet, p):
            player.start()
        out, err = p.communicate(timeout=60)
    finally:
        stop_player(player)
        if p.poll() is None:
            p.kill()
    summary = next((json.loads(ln) for ln in reversed(out.splitlines()) if ln.startswith("{")),
                   None)
    n_dec = summary["n_decisions"] if summary else 0
    try:
        n = read_recording(xdf, stream=name).data.shape[1]
        readable = True
    except (BCIError, OSError) as e:
        n, readable = 0, f"unreadable: {short(str(e), 60)}"
    # 6 s of decisions every 0.1 s: the session must have gone on well past the full disk
    n_errors = len([ln for ln in err.splitlines() if re.search(r"error", ln, re.I)])
    ok = (p.returncode == 0 and n_errors == 1 and "Traceback" not in err and n_dec >= 40
          and readable is True)
    return Outcome(f"exit {p.returncode}; {n_errors} error line(s) "
                   f"“{short(first_error(err), 90)}”; {n_dec} decisions; recording readable "
                   f"{readable} ({n} samples)", ok)


@fault("stream_vanishes", "amplifier killed and restarted",
       "LSL outlet destroyed for 1.5 s after 1.5 s, then a new one with the same source_id",
       "stall, then gap reported with its size; decoding resumes; at most 1 s lost beyond the "
       "outage (liblsl's reconnect), all of it counted in the gap")
def stream_vanishes(ctx: Context) -> Outcome:
    pylsl = get_pylsl()
    name = ctx.stream_name()
    data = signal_data(7.0, seed=3)
    config = live_config(ctx, name)
    stop, ready, box = threading.Event(), threading.Event(), {}
    times: list[tuple[float, float]] = []

    def session():
        box["r"] = run_live(config, duration=25.0, stop=stop, on_ready=lambda _: ready.set(),
                            callbacks=[lambda dec: times.append((time.monotonic(),
                                                                 dec.last_sample_time))])

    first = make_outlet(name, CH, SFREQ, source_id=name)
    th = threading.Thread(target=session, daemon=True)
    th.start()
    if not ready.wait(15):
        stop.set()
        return Outcome("session never started", False)
    t0 = pylsl.local_clock() + 0.2
    p1 = Player(first, data[:, :300], SFREQ, chunk=10, t0=t0)
    p1.start()
    p1.join()
    del first, p1
    gc.collect()
    time.sleep(1.5)
    second = make_outlet(name, CH, SFREQ, source_id=name)
    p2 = Player(second, data[:, 600:], SFREQ, chunk=10, t0=t0 + 600 / SFREQ)
    t_back = time.monotonic()
    p2.start()
    p2.join()
    time.sleep(2.5)
    stop.set()
    th.join(15)
    r = box.get("r")
    if r is None:
        return Outcome("session did not end", False)
    kinds = [e["kind"] for e in r.events]
    gap = next((e for e in r.events if e["kind"] == "gap"), {})
    missing = gap.get("missing_samples", 0)
    # decisions on a window wholly after the return (0.5 s windows)
    after = [t for t, last in times if last - 0.5 >= t0 + 600 / SFREQ]
    recover = after[0] - t_back if after else None
    beyond = missing - 300  # the 300 samples never sent were destroyed by the fault itself
    # liblsl's inlet reconnects within about a second: up to 1 s more may be lost, counted
    ok = ("stalled" in kinds and "gap" in kinds and bool(after)
          and r.n_samples + missing == data.shape[1] and 0 <= beyond <= SFREQ)
    return Outcome(f"events {sorted(set(kinds))}; gap {missing} samples; {len(after)} "
                   f"decisions after the return; skipped_gap {r.counts.get('skipped_gap')}",
                   ok, lost=f"{missing} samples (300 never sent; {beyond} sent while the "
                   "inlet reconnected)", recover=recover)


@fault("nan_burst", "NaN/Inf burst", "0.5 s of NaN and Inf in the live stream",
       "windows touching it skipped and counted, every decision finite, decoding resumes")
def nan_burst(ctx: Context) -> Outcome:
    name = ctx.stream_name()
    data = signal_data(4.0, seed=1)
    data[:, 300:400] = np.nan
    data[1, 350] = np.inf
    outlet = make_outlet(name, CH, SFREQ, chunk=10)
    times: list[tuple[float, int]] = []
    player = Player(outlet, data, SFREQ, chunk=10)
    r = live_with_player(live_config(ctx, name), player, duration=4.8,
                         callbacks=[lambda dec: times.append((time.monotonic(), dec.stop))])
    finite = all(np.isfinite(x.output).all() for x in r.decisions)
    touching = [x for x in r.decisions if x.stop > 300 and x.stop - 100 < 400]
    after = [(t, s) for t, s in times if s - 100 >= 400]
    recover = None
    if after and player.timestamps is not None:
        # from the burst's last sample being pushed to the first clean decision
        t_end = player.timestamps[399] - get_pylsl().local_clock() + time.monotonic()
        recover = max(0.0, after[0][0] - t_end)
    ok = (finite and not touching and r.counts.get("skipped_nonfinite", 0) > 0 and bool(after)
          and r.n_samples == data.shape[1])
    return Outcome(f"skipped_nonfinite {r.counts.get('skipped_nonfinite')}; all outputs "
                   f"finite {finite}; decisions touching the burst {len(touching)}; "
                   f"{len(after)} after it", ok,
                   lost=f"{data.shape[1] - r.n_samples} samples", recover=recover)


@fault("slow_decoder", "slow decoder", "decoder sleeps 0.25 s per window, step 0.1 s",
       "acquisition keeps up (no sample lost); dropped windows counted")
def slow_decoder(ctx: Context) -> Outcome:
    import bci.runner as runner
    from bci.pipeline import load_decoder

    class Slow:
        def __init__(self, inner):
            self.inner, self.spec = inner, inner.spec

        def input_shape(self):
            return self.inner.input_shape()

        def run(self, window):
            time.sleep(0.25)
            return self.inner.run(window)

    original = runner.Pipeline

    def slow_pipeline(config, info, *, clock):
        return original(config, info, clock=clock, decoder=Slow(load_decoder(config, info)))

    name = ctx.stream_name()
    data = signal_data(3.0, seed=2)
    player = Player(make_outlet(name, CH, SFREQ), data, SFREQ, chunk=10)
    runner.Pipeline = slow_pipeline
    try:
        r = live_with_player(live_config(ctx, name), player, duration=3.8)
    finally:
        runner.Pipeline = original
    windows, dropped = r.counts.get("windows", 0), r.counts.get("skipped_backlog", 0)
    ok = r.n_samples == data.shape[1] and dropped > 0 and dropped + len(r.decisions) == windows
    return Outcome(f"{windows} windows = {len(r.decisions)} decided + {dropped} dropped "
                   "(skipped_backlog)", ok, lost=f"{data.shape[1] - r.n_samples} samples")


@fault("consumer_disappears", "decision consumer disappears",
       "an LSL inlet on the decision outlet, destroyed after 1.5 s",
       "session goes on; decisions keep coming; no error")
def consumer_disappears(ctx: Context) -> Outcome:
    pylsl = get_pylsl()
    name = ctx.stream_name()
    data = signal_data(4.0, seed=4)
    config = live_config(ctx, name, outputs={"lsl": f"{name}-decisions"})
    player = Player(make_outlet(name, CH, SFREQ), data, SFREQ, chunk=10)
    got: list[int] = []
    times: list[float] = []

    def consume():
        streams = pylsl.resolve_byprop("name", f"{name}-decisions", 1, 5.0)
        if not streams:
            return
        inlet = pylsl.StreamInlet(streams[0])
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            _, ts = inlet.pull_chunk(timeout=0.1)
            got.extend([1] * len(ts))
        t_gone.append(time.monotonic())
        inlet.close_stream()
        del inlet

    t_gone: list[float] = []
    consumer = threading.Thread(target=consume, daemon=True)

    def ready(_):
        player.start()
        consumer.start()

    try:
        with LogCapture() as logs:
            r = run_live(config, duration=4.8, on_ready=ready,
                         callbacks=[lambda dec: times.append(time.monotonic())])
    finally:
        stop_player(player)
    consumer.join(5)
    after = [t for t in times if t_gone and t > t_gone[0]]
    errors = [m for m in logs.messages if "error" in m.lower()]
    ok = len(got) > 0 and len(after) >= 5 and not errors and r.n_samples == data.shape[1]
    return Outcome(f"consumer got {len(got)} decisions before leaving; {len(after)} decisions "
                   f"after it left; {len(errors)} error logs", ok,
                   lost=f"{data.shape[1] - r.n_samples} samples")


@fault("marker_burst", "marker burst", "30 markers 20 ms apart on the live marker stream, "
       "epoch session recording to XDF", "every marker recorded; every marker opens an epoch "
       "(decided or counted as dropped)")
def marker_burst(ctx: Context) -> Outcome:
    name = ctx.stream_name()
    d = ctx.dir("marker-burst")
    data = signal_data(4.0, seed=5)
    burst = [(400 + 4 * i, "m") for i in range(30)]  # 20 ms apart at 200 Hz
    xdf = d / "session.xdf"
    config = live_config(ctx, name, source={"markers": f"{name}-markers"},
                         window={"mode": "epoch", "tmin": 0.0, "tmax": 0.5,
                                 "events": {"m": "left"}},
                         outputs={"record": str(xdf)})
    player = Player(make_outlet(name, CH, SFREQ), data, SFREQ, chunk=10, markers=burst,
                    marker_outlet=make_marker_outlet(f"{name}-markers"))
    r = live_with_player(config, player, duration=4.8)
    rec = read_recording(xdf, stream=name)
    n_rec = sum(1 for v in rec.markers.values if v == "m")
    opened = len(r.decisions) + r.counts.get("skipped_backlog", 0)
    ok = n_rec == 30 and opened == 30
    return Outcome(f"{n_rec}/30 markers recorded; {len(r.decisions)} decided + "
                   f"{r.counts.get('skipped_backlog', 0)} dropped = {opened} epochs", ok,
                   lost=f"{30 - n_rec} markers")


@fault("rate_differs_declared", "stream slower than declared",
       "outlet declares 256 Hz, sends 250 samples per second (FBCCA session)",
       "warned and recorded as an event naming the measured rate")
def rate_differs_declared(ctx: Context) -> Outcome:
    name = ctx.stream_name()
    rec = ssvep_recording(6.0)
    outlet = make_outlet(name, rec.info["ch_names"], 256.0, chunk=10)
    player = Player(outlet, rec.data, 250.0, chunk=10)  # real pace 250 Hz
    config = SessionConfig.from_dict({
        "source": {"stream": name, "resolve_timeout": 3.0},
        "window": {"mode": "sliding", "length": 1.0, "step": 0.5},
        "decoder": {"kind": "fbcca", "frequencies": SSVEP_FREQS}, "outputs": {"lsl": False}})
    with LogCapture() as logs:
        r = live_with_player(config, player, duration=6.5)
    text = " ".join(logs.messages + [json.dumps(e) for e in r.events])
    warned = re.search(r"\b2(49|50|51)(\.\d+)? ?Hz", text) is not None
    in_events = any("rate" in json.dumps(e).lower() for e in r.events)
    ok = warned and in_events
    return Outcome(f"warned with the measured rate: {warned}; recorded as an event: {in_events}"
                   f"; events {[e.get('kind') for e in r.events]}", ok,
                   lost=f"{rec.data.shape[1] - r.n_samples} samples")


@fault("microvolts_to_volt_model", "µV data into a model trained in volts",
       "recording multiplied by 1e6 (µV values labelled volts) replayed",
       "a warning naming the unit/scale")
def microvolts_to_volt_model(ctx: Context) -> Outcome:
    rec = mi_recording(6.0)
    rec.data = rec.data * 1e6
    config = SessionConfig.from_dict({"source": {"stream": "amp"},
                                      "decoder": {"path": str(ctx.model)}})
    with LogCapture() as logs:
        r = run_replay(config, rec)
    hits = [m for m in logs.messages if re.search(r"µV|uV|micro|volt|scale|unit", m, re.I)]
    kinds = [e.get("kind") for e in r.events]
    return Outcome(f"{len(r.decisions)} decisions; events {kinds}; warning: "
                   f"“{short(hits[0], 110) if hits else 'none'}”", bool(hits))


@fault("blas_threads", "numpy decoder's BLAS threads", "FBCCA replay with `threads = 1`; "
       "BLAS pools inspected (threadpoolctl) inside FBCCA's SVD while it decodes",
       "every BLAS/OpenMP pool at ≤ 1 thread while decoding")
def blas_threads(ctx: Context) -> Outcome:
    d = ctx.dir("blas")
    rec = save_fif(ssvep_recording(8.0), d / "rec_raw.fif")
    session = fbcca_session(d, decoder={"threads": 1})
    code = f"""
import json, threadpoolctl
from bci.devices.files import read_recording
from bci.runner import run_replay
from bci.session import SessionConfig
import numpy as np
seen = []
svd = np.linalg.svd
def probed_svd(*args, **kw):  # FBCCA's canonical correlations: inside the decoder's run
    seen.append(max([p["num_threads"] for p in threadpoolctl.threadpool_info()] or [0]))
    return svd(*args, **kw)
np.linalg.svd = probed_svd
r = run_replay(SessionConfig.load({str(session)!r}), read_recording({str(rec)!r}))
print(json.dumps({{"n": len(r.decisions), "max": max(seen or [0])}}))
"""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="", OMP_NUM_THREADS="", MKL_NUM_THREADS="")
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(k)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, env=env, cwd=REPO)
    if p.returncode:
        return Outcome(f"probe failed: {short(p.stderr.strip().splitlines()[-1])}", False)
    res = json.loads(p.stdout.strip().splitlines()[-1])
    return Outcome(f"{res['n']} decisions; largest BLAS pool while decoding: {res['max']} "
                   f"thread(s) on {os.cpu_count()} CPUs", res["n"] > 0 and res["max"] <= 1)


@fault("memory_long_session", "memory of long sessions",
       "replay 12,000 and 24,000 decisions (a 1-channel 20 Hz model deciding every sample; "
       "tracemalloc: memory retained by the session's result)",
       "bounded: twice as many decisions retain < 1.2× the memory")
def memory_long_session(ctx: Context) -> Outcome:
    d = ctx.dir("memory")
    # a tiny model deciding at every sample: many decisions for little data and compute
    model = write_model(d / "fast.onnx", sfreq=20.0, length=0.5, step=0.05, preprocessing=[])
    config = SessionConfig.from_dict({"source": {"stream": "amp"},
                                      "decoder": {"path": str(model)}})
    info = mne_info(20.0)
    retained = []
    for n_decisions in (1_000, 12_000, 24_000):  # the first warms caches up, not counted
        n = n_decisions + 10
        rec = Recording(info, signal_data(n / SFREQ + 1, seed=n)[:, :n], np.arange(n) / 20.0,
                        Markers(np.zeros(0), []))
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        result = run_replay(config, rec, chunk_size=64)
        gc.collect()
        retained.append((tracemalloc.get_traced_memory()[0] - before,
                         result.summary()["n_decisions"]))
        tracemalloc.stop()
        del result, rec
    (m1, n1), (m2, n2) = retained[1:]
    ratio = m2 / max(m1, 1)
    return Outcome(f"retained {m1 / 1e6:.2f} MB after {n1} decisions, {m2 / 1e6:.2f} MB after "
                   f"{n2} (×{ratio:.2f}, {(m2 - m1) / max(n2 - n1, 1):.0f} B per extra "
                   "decision)", ratio < 1.2)


def mne_info(sfreq: float = SFREQ):
    import mne

    return mne.create_info(CH, sfreq, "eeg")


# ----------------------------------------------------------------------------- the table

def run_fault(f: Fault, ctx: Context) -> Row:
    row = Row(f.name, f.fault, f.injected, f.expected)
    t = time.monotonic()
    try:
        outcome = f.run(ctx)
    except Exception as e:  # a scenario that crashes is a FAIL with what crashed
        outcome = Outcome(f"scenario raised {type(e).__name__}: {short(str(e), 120)}", False)
    row.observed = outcome.observed.replace(str(ctx.root), "$TMP")  # the table's paths
    row.passed, row.lost = outcome.passed, outcome.lost
    r = outcome.recover
    row.recover = f"{r:.2f}" if isinstance(r, float) else ("—" if r is None else str(r))
    print(f"[{'PASS' if row.passed else 'FAIL'}] {f.name} ({time.monotonic() - t:.1f} s): "
          f"{row.observed}", file=sys.stderr, flush=True)
    return row


def markdown(rows: list[Row]) -> str:
    head = ("| # | fault | injected how | expected | observed | data lost | time to recover "
            "(s) | result |\n|---|---|---|---|---|---|---:|---|")
    body = [f"| {i} | {r.fault} (`{r.name}`) | {short(r.injected, 200)} | "
            f"{short(r.expected, 200)} | {short(r.observed, 240)} | {short(r.lost, 90)} | "
            f"{r.recover} | {'PASS' if r.passed else '**FAIL**'} |"
            for i, r in enumerate(rows, 1)]
    return "\n".join([head, *body])


def write_readme(table: str, rows: list[Row], command: str) -> None:
    text = README.read_text(encoding="utf-8")
    passed = sum(r.passed for r in rows)
    section = (f"{BEGIN}\nGenerated {datetime.date.today().isoformat()} by `{command}`: "
               f"{len(rows)} faults, {passed} PASS, {len(rows) - passed} FAIL. "
               "“Time to recover” is from the fault (signal sent, stream back, burst over) "
               "to the process exit or the next good decision; for user errors, the time "
               "to the one-line error.\n\n" + table + f"\n{END}")
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + (
            "\n\n## Fault table — `python benchmarks/faults.py --write-readme`\n\n"
            "Every fault the runtime is meant to survive, injected for real on this machine "
            "(LSL outlets on loopback, `bci` subprocesses sent real signals, truncated files, "
            "`/dev/full` and a file-size limit for a full disk) and measured. PASS/FAIL is "
            "computed from the measurements against the expected behaviour.\n\n"
            + section + "\n")
    README.write_text(text, encoding="utf-8")


def run_all(names: list[str] | None = None) -> list[Row]:
    chosen = [FAULTS[n] for n in names] if names else list(FAULTS.values())
    with tempfile.TemporaryDirectory(prefix="bci-faults-") as tmp:
        ctx = Context(Path(tmp))
        return [run_fault(f, ctx) for f in chosen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(FAULTS),
                        help="run only these faults")
    parser.add_argument("--markdown", action="store_true", help="print the markdown table "
                        "(the default when not writing the README)")
    parser.add_argument("--write-readme", action="store_true",
                        help="replace the fault table in benchmarks/README.md")
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    args = parser.parse_args(argv)
    if args.list:
        for f in FAULTS.values():
            print(f"{f.name}: {f.fault}")
        return 0
    rows = run_all(args.only)
    table = markdown(rows)
    if args.markdown or not args.write_readme:
        print(table)
    if args.write_readme:
        command = "python benchmarks/faults.py --write-readme" + (
            f" --only {' '.join(args.only)}" if args.only else "")
        write_readme(table, rows, command)
    passed = sum(r.passed for r in rows)
    print(json.dumps({"rows": len(rows), "passed": passed, "failed": len(rows) - passed}))
    return 0


if __name__ == "__main__":
    logging.basicConfig()
    logging.getLogger().handlers[0].setLevel(logging.ERROR)  # the table says what was warned
    sys.exit(main())
