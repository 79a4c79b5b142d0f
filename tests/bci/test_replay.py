"""Replay: deterministic output, real-data accuracy, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sessions import SSVEP_FBCCA_EPOCHS

from bci.cli import main
from bci.datasets.synthetic import make_recording
from bci.metrics import itr_bits_per_min
from bci.runner import run_replay
from bci.session import SessionConfig

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "ssvep-exo-fbcca.toml"


def _sim_config(tmp_path) -> Path:
    p = tmp_path / "sim.toml"
    p.write_text(SSVEP_FBCCA_EPOCHS)
    return p


def test_two_replays_are_byte_identical_and_chunking_does_not_matter(tmp_path):
    rec = make_recording(40.0, paradigm="ssvep", seed=11)
    config = SessionConfig.load(_sim_config(tmp_path))
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    ra = run_replay(config, rec, output=a, chunk_size=32)
    run_replay(config, rec, output=b, chunk_size=32)
    run_replay(config, rec, output=c, chunk_size=7)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() == c.read_bytes()  # chunk size changes nothing either
    lines = [json.loads(line) for line in a.read_text().splitlines()]
    assert len(lines) == len(ra.decisions) == 13
    assert all(line["true_label"] in ("8Hz", "10Hz", "12Hz", "15Hz") for line in lines)
    assert ra.accuracy >= 0.75  # chance is 0.25


def test_replay_cli_on_real_ssvep_recording(shared_data, tmp_path):
    rec = shared_data / "ssvep-exo" / "subject03" / "session1_raw.fif"
    out = tmp_path / "decisions.jsonl"
    code = main(["replay", str(EXAMPLE), "--input", str(rec), "--output", str(out)])
    assert code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 24  # 32 trials, 8 of them rest (no window)
    truth = [d["true_label"] for d in lines]
    assert sorted(set(truth)) == ["13Hz", "17Hz", "21Hz"]
    accuracy = np.mean([d["label"] == d["true_label"] for d in lines])
    assert accuracy >= 0.75  # chance is 1/3; FBCCA, untrained, 2-s windows


def test_replay_cli_reports_bad_input(tmp_path, capsys):
    bad = tmp_path / "cut.fif"
    bad.write_bytes(b"\x00" * 100)
    assert main(["replay", str(EXAMPLE), "--input", str(bad)]) == 2
    assert "cut.fif" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text("[decoder]\nkind = 'fbcca'\nfrequencies = 'all'\n")
    assert main(["replay", str(broken), "--input", str(bad)]) == 2
    assert "decoder.frequencies: expected a list" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_json_runs_the_closed_loop():
    proc = subprocess.run(
        [sys.executable, "-m", "bci", "demo", "--duration", "10", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(summary) >= {"accuracy", "itr_bits_per_min", "n_decisions", "latency_ms"}
    assert summary["n_decisions"] >= 2
    assert summary["accuracy"] > 0.25  # four targets
    assert 0 < summary["latency_ms"]["p50"] <= summary["latency_ms"]["p99"]
    # chunks as an amplifier at 256 Hz sends them, stated in the output
    assert summary["amplifier"] == {"sfreq": 256.0, "chunk_size": 4, "chunk_ms": 15.625}
    # Wolpaw, four targets, 3 s per selection (2 s stimulation + 1 s gaze shift)
    assert summary["itr_convention"].startswith("Wolpaw; 3 s per selection")
    assert summary["itr_bits_per_min"] == pytest.approx(
        itr_bits_per_min(4, summary["accuracy"], 3.0), rel=1e-12)


def test_runtime_runs_without_torch(tmp_path):
    """`bci replay` of an ONNX decoder in a Python where torch cannot be imported."""
    from bci.decoders.onnx_graphs import linear_softmax_model

    from bci.spec import DecoderSpec, WindowSpec, write_spec

    rec = make_recording(20.0, paradigm="ssvep", seed=12)
    rec.to_raw().save(tmp_path / "rec_raw.fif", verbose="error")
    n_ch, n_t = len(rec.info["ch_names"]), 256
    spec = DecoderSpec(paradigm="ssvep", classes=["8Hz", "10Hz"],
                       ch_names=list(rec.info["ch_names"]), sfreq=rec.sfreq,
                       window=WindowSpec(mode="epoch", tmin=0.0, tmax=1.0))
    w = np.random.default_rng(0).standard_normal((2, n_ch, n_t)).astype(np.float32)
    write_spec(linear_softmax_model(w, np.zeros(2)), spec, tmp_path / "m.onnx")
    (tmp_path / "s.toml").write_text(
        '[window]\nevents = { "8Hz" = "8Hz", "10Hz" = "10Hz" }\n'
        '[decoder]\npath = "m.onnx"\n')
    blocker = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked for this test')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from bci.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "assert 'torch' not in sys.modules\n"
        "raise SystemExit(code)\n")
    out = tmp_path / "d.jsonl"
    proc = subprocess.run(
        [sys.executable, "-c", blocker, "replay", str(tmp_path / "s.toml"), "--input",
         str(tmp_path / "rec_raw.fif"), "--output", str(out), "--json"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n_decisions"] == len(out.read_text().splitlines()) > 0
