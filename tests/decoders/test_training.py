"""`bci train` / `bci evaluate` on recordings, and the trained model served by `bci replay`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bci.decoders.training import _folds, evaluate

from bci.cli import main
from bci.datasets.synthetic import make_recording
from bci.errors import TrainingError
from bci.metrics import itr_bits_per_min
from bci.session import SessionConfig
from bci.training_data import TrainingWindows

SESSION = """
[window]
mode = "epoch"
tmin = 0.5
tmax = 2.5
events = { left = "left", right = "right" }

[training]
paradigm = "mi"
"""


def _write_fif(path, seed, duration=150.0):
    rec = make_recording(duration, paradigm="mi", n_channels=16, seed=seed, erd_depth=0.8)
    raw = rec.to_raw()
    raw.save(path, verbose="error")
    return path


@pytest.fixture(scope="module")
def mi_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("mi")
    (d / "mi.toml").write_text(SESSION)
    return d / "mi.toml", _write_fif(d / "a_raw.fif", 11), _write_fif(d / "b_raw.fif", 12)


def test_train_evaluate_and_replay_agree_on_held_out_windows(mi_files, tmp_path, capsys):
    session, a, b = mi_files
    model = tmp_path / "csp.onnx"
    assert main(["train", str(session), "--decoder", "csp-lda", "--train", str(a),
                 "--output", str(model), "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["n_windows"] >= 20 and model.is_file()

    preds = tmp_path / "pred.jsonl"
    assert main(["evaluate", str(session), "--decoder", "csp-lda", "--train", str(a),
                 "--test", str(b), "--predictions", str(preds), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["split"] == "cross-session"
    assert figures["accuracy"] > 0.8  # planted ERD, another recording (seed) held out
    assert set(figures) >= {"accuracy", "kappa", "confusion"}
    assert sum(map(sum, figures["confusion"])) == figures["n_windows"]

    # the exported model, served by the live code path over the held-out recording,
    # makes the predictions evaluate made on the same windows: training and live
    # preprocessing are the same
    out = tmp_path / "replay.jsonl"
    assert main(["replay", str(session), "--model", str(model), "--input", str(b),
                 "--output", str(out), "--json"]) == 0
    replayed = {d["stop"]: d for d in map(json.loads, out.read_text().splitlines())}
    expected = [json.loads(x) for x in preds.read_text().splitlines()]
    assert len(replayed) == len(expected) == figures["n_windows"]
    for e in expected:
        r = replayed[e["stop"]]
        assert r["label"] == e["label"] and r["true_label"] == e["true_label"]
        assert r["probabilities"].keys() == e["probabilities"].keys()
        np.testing.assert_allclose(list(r["probabilities"].values()),
                                   [e["probabilities"][c] for c in r["probabilities"]],
                                   atol=1e-4)


def test_folds_never_mix_training_and_test_windows():
    n = 40
    data = TrainingWindows(np.zeros((n, 2, 4), np.float32), np.array(["a", "b"] * (n // 2)),
                           np.arange(n) * 100 + 50, np.zeros(n, np.int64))
    for split in ("k-fold", "leave-one-block-out"):
        seen = []
        for tr, te in _folds(split, data, 4, 0):
            assert not set(tr) & set(te)
            assert len(tr) + len(te) == n
            seen.extend(te)
        assert sorted(seen) == list(range(n))  # every window tested exactly once
    # one recording: blocks are runs of consecutive trials
    for _, te in _folds("leave-one-block-out", data, 4, 0):
        assert np.all(np.diff(np.sort(te)) == 1)
    # several recordings: a block is a recording
    data.recording[:] = np.repeat([0, 1], n // 2)
    blocks = [set(data.recording[te]) for _, te in _folds("leave-one-block-out", data, 4, 0)]
    assert blocks == [{0}, {1}]


def test_k_fold_on_one_recording_is_well_above_chance(mi_files):
    session, a, _ = mi_files
    result = evaluate(SessionConfig.load(session), "csp-lda", train=[a], split="k-fold",
                      n_splits=4)
    assert len(result.fold_accuracy) == 4
    assert result.summary()["accuracy"] > 0.75


def test_training_errors_name_what_was_expected(mi_files, tmp_path, capsys):
    session, a, b = mi_files
    no_training = tmp_path / "plain.toml"
    no_training.write_text(SESSION.split("[training]")[0] + '[decoder]\npath = "x.onnx"\n')
    assert main(["evaluate", str(no_training), "--decoder", "csp-lda", "--train",
                 str(a)]) == 2
    assert "no [training] table" in capsys.readouterr().err

    wrong_events = tmp_path / "events.toml"
    wrong_events.write_text(SESSION.replace('left = "left", right = "right"',
                                            'T1 = "left", T2 = "right"'))
    with pytest.raises(TrainingError, match=r"found none \(markers in the recording: "
                                            r"\['left', 'right'\]\)"):
        evaluate(SessionConfig.load(wrong_events), "csp-lda", train=[a], test=[b])

    assert main(["evaluate", str(session), "--decoder", "csp-lda", "--train", str(a),
                 "--test", str(b), "--split", "k-fold"]) == 2
    assert "--test is for cross-session" in capsys.readouterr().err

    bad_hyper = tmp_path / "hyper.toml"
    bad_hyper.write_text(SESSION + "\n[training.decoders.csp-lda]\nn_filters = 3\n")
    assert main(["train", str(bad_hyper), "--decoder", "csp-lda", "--train", str(a),
                 "--output", str(tmp_path / "m.onnx")]) == 2
    assert "training.decoders.csp-lda" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
    # a value the estimator itself refuses (a band above Nyquist) is one line, not a traceback
    bad_hyper.write_text(SESSION + "\n[training.decoders.csp-lda]\nl_freq = 500.0\n")
    assert main(["train", str(bad_hyper), "--decoder", "csp-lda", "--train", str(a),
                 "--output", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "training.decoders.csp-lda: CSPLDA: expected 0 < low < high < Nyquist" in err
    assert "Traceback" not in err


def test_fbcca_cross_session_on_real_ssvep(shared_data, capsys):
    from pathlib import Path

    d = shared_data / "ssvep-exo" / "subject03"
    example = Path(__file__).resolve().parents[2] / "examples" / "ssvep-exo.toml"
    assert main(["evaluate", str(example), "--decoder", "fbcca", "--train",
                 str(d / "session1_raw.fif"), "--test", str(d / "session2_raw.fif"),
                 "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["n_windows"] == 24
    assert figures["accuracy"] > 0.8  # chance 1/3
    # Wolpaw, three targets, the 2-s window (tmin 2, tmax 4) per selection
    assert figures["itr_bits_per_min"] == pytest.approx(
        itr_bits_per_min(3, figures["accuracy"], 2.0), rel=1e-12)
    assert "2 s per selection (2 s window, gaze shift not included)" in figures["itr_convention"]


# The simulator's trials start every 3 s exactly, so its 50 Hz line noise is phase-locked
# to the cues: TRCA would find it the most reproducible component. A notch, as any real
# session has, removes it.
SSVEP_SESSION = """
[chain]
nodes = [{ kind = "notch", freqs = [50.0] }]

[window]
mode = "epoch"
tmin = 0.14
tmax = 1.14
events = { "8Hz" = "8Hz", "10Hz" = "10Hz", "12Hz" = "12Hz", "15Hz" = "15Hz" }

[training]
paradigm = "ssvep"
frequencies = { "8Hz" = 8.0, "10Hz" = 10.0, "12Hz" = 12.0, "15Hz" = 15.0 }
"""


@pytest.mark.parametrize("decoder", ["trca", "etrca"])
def test_trca_learns_phase_locked_ssvep_through_the_runtime_chain(decoder, tmp_path):
    """TRCA needs responses phase-locked to the markers, as the simulator's are."""
    session = tmp_path / "ssvep.toml"
    session.write_text(SSVEP_SESSION)
    # one simulated subject (its harmonics' phase lags are drawn per seed), two sessions
    rec = make_recording(150.0, paradigm="ssvep", seed=31)
    raw = rec.to_raw()
    files = [tmp_path / "first_raw.fif", tmp_path / "second_raw.fif"]
    raw.copy().crop(0.0, 75.0).save(files[0], verbose="error")
    raw.copy().crop(75.0, None).save(files[1], verbose="error")
    result = evaluate(SessionConfig.load(session), decoder, train=[files[0]], test=[files[1]])
    figures = result.summary()
    assert figures["n_windows"] >= 20
    assert figures["accuracy"] > 0.8, figures  # chance 0.25; the second session held out
    # Wolpaw, four targets, the 1-s window (0.14–1.14 s) per selection, no gaze shift
    assert figures["itr_bits_per_min"] == pytest.approx(
        itr_bits_per_min(4, figures["accuracy"], 1.0), rel=1e-12)
