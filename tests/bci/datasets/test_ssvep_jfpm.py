"""The hybrid phase-locked 12-target SSVEP set and the loader of the published .mat files:
shapes, determinism, phase locking, real rest background, round trip, errors, and
ensemble TRCA above chance on held-out blocks through ``bci evaluate``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mne
import numpy as np
import pytest
from scipy.io import savemat

from bci.cli import main
from bci.datasets.ssvep_jfpm import (
    FREQUENCIES,
    PHASE_STEP,
    PHASES,
    REST_CODE,
    load_mat,
    make_hybrid_jfpm,
    rest_spans,
)
from bci.errors import RecordingError

REPO = Path(__file__).resolve().parents[3]
SESSION = REPO / "examples" / "ssvep-jfpm12.toml"


def _synthetic(**options):
    return make_hybrid_jfpm(1, background="synthetic", **options)


def test_blocks_hold_every_target_once_and_the_set_is_seeded():
    a = _synthetic(n_blocks=6, seed=3)
    assert a.X.shape == (72, 8, round(0.25 * 256) + round(1.15 * 256))
    assert a.onset == 64 and a.sfreq == 256.0
    assert a.frequencies == list(FREQUENCIES) == [8.0 + 0.5 * k for k in range(12)]
    assert np.allclose(np.diff(np.unwrap(PHASES)), PHASE_STEP)
    for b in range(6):
        assert sorted(a.y[a.blocks == b]) == list(range(12))
    assert np.array_equal(a.X, _synthetic(n_blocks=6, seed=3).X)
    assert not np.allclose(a.X, _synthetic(n_blocks=6, seed=4).X)
    # trial orders differ between blocks (targets are shuffled within each block)
    assert len({tuple(a.y[a.blocks == b]) for b in range(6)}) > 1


def test_snr_scales_the_responses_and_nothing_else():
    quiet = _synthetic(snr_db=-np.inf)
    low, high = _synthetic(snr_db=-20.0), _synthetic(snr_db=-10.0)
    assert np.array_equal(low.y, high.y) and np.array_equal(low.blocks, high.blocks)
    ratio = (high.X - quiet.X) / np.where(low.X == quiet.X, np.nan, low.X - quiet.X)
    assert np.nanmedian(ratio) == pytest.approx(10 ** 0.5, rel=1e-6)
    # before the latency, trials are background only
    before = quiet.onset + round(0.12 * quiet.sfreq)
    assert np.array_equal(high.X[..., :before], quiet.X[..., :before])


def _fundamental(avg: np.ndarray, freq: float, start: int, sfreq: float) -> complex:
    """Complex amplitude of ``freq`` in ``avg[start:]``, times measured from ``start``."""
    t = np.arange(avg.size - start) / sfreq
    return 2 * np.mean(avg[start:] * np.exp(-2j * np.pi * freq * t))


def test_trial_averages_are_phase_locked_at_each_targets_frequency_and_phase():
    s = _synthetic(snr_db=0.0, n_blocks=6, seed=1)
    pattern = np.asarray(s.meta["patterns"][0])
    latency = s.meta["latency_s"]
    start = s.onset + math.ceil((latency + 0.05) * s.sfreq)  # after the onset ramp
    t0 = (start - s.onset) / s.sfreq - latency  # response time at sample `start`
    phases = []
    for k, f in enumerate(s.frequencies):
        avg = pattern @ s.X[s.y == k].mean(axis=0) / pattern.size
        amps = [abs(_fundamental(avg, g, start, s.sfreq)) for g in s.frequencies]
        assert int(np.argmax(amps)) == k
        assert amps[k] > 3 * np.median(amps)
        # sin(2πf(t − L) + φ + θ) = Im e^{i(…)}: the phase at `start`, back to t = L
        z = _fundamental(avg, f, start, s.sfreq)
        phases.append(np.angle(z) + np.pi / 2 - 2 * np.pi * f * t0)
    expected = np.asarray(PHASES) + s.meta["harmonic_phase"][0]
    error = np.angle(np.exp(1j * (np.asarray(phases) - expected)))
    assert np.abs(error).max() < 0.35
    # the targets' phases step by 0.35π, not all alike
    steps = np.angle(np.exp(1j * np.diff(phases)))
    assert np.allclose(steps, PHASE_STEP, atol=0.7)


def test_background_is_the_subjects_rest_eeg(shared_data):
    s = make_hybrid_jfpm(2, snr_db=-np.inf, data_dir=shared_data / "ssvep-exo")
    assert s.ch_names == ["Oz", "O1", "O2", "PO3", "POz", "PO7", "PO8", "PO4"]
    n = s.X.shape[2]
    folder = shared_data / "ssvep-exo" / "subject02"
    filtered, spans = {}, {}
    for name in ("session1_raw.fif", "session2_raw.fif"):
        raw = mne.io.read_raw_fif(folder / name, preload=True, verbose="error")
        filtered[name] = mne.filter.filter_data(raw.get_data(), 256.0, 1.0, None,
                                                verbose="error")
        events = mne.read_events(folder / name.replace("_raw.fif", "-eve.fif"))
        spans[name] = rest_spans(name, events, 256.0)
        rest = events[events[:, 2] == REST_CODE, 0]
        assert all(any(a <= e < b for a, b in spans[name]) for e in rest)
    used: dict[int, set] = {}
    for i, origin in enumerate(s.meta["origin"]):
        name, _, start = origin.rpartition(":")
        start = int(start)
        # inside one rest period, and exactly its (high-passed, centred) samples
        assert any(a <= start and start + n <= b for a, b in spans[name])
        seg = filtered[name][:, start:start + n]
        assert np.allclose(s.X[i], seg - seg.mean(axis=1, keepdims=True), atol=1e-12)
        used.setdefault(int(s.blocks[i]), set()).update(
            (name, k) for k in range(start, start + n))
    # no background sample is shared by two blocks (so none by training and test)
    blocks = list(used.values())
    assert all(not (blocks[i] & blocks[j]) for i in range(len(blocks))
               for j in range(i + 1, len(blocks)))


def test_mat_round_trip(tmp_path):
    s = _synthetic(n_blocks=3)
    path = s.save_mat(tmp_path / "s.mat")
    back = load_mat(path)
    assert back.X.shape == s.X.shape
    order = np.lexsort((s.y, s.blocks))  # the file holds targets in order within a block
    assert np.allclose(back.X, s.X[order], rtol=0, atol=1e-15)
    assert np.array_equal(back.y, s.y[order]) and np.array_equal(back.blocks, s.blocks[order])
    assert back.sfreq == 256.0 and back.ch_names == s.ch_names and back.onset == s.onset
    assert back.frequencies == s.frequencies
    assert np.allclose(back.phases, s.phases)
    epochs = back.to_epochs()
    assert epochs.get_data().shape == s.X.shape
    assert epochs.tmin == pytest.approx(-0.25)


def test_published_layouts_in_microvolts_with_a_sidecar(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(4, 100, 3, 2))  # channels, samples, targets, blocks (µV)
    savemat(tmp_path / "bench.mat", {"data": data})
    s = load_mat(tmp_path / "bench.mat", sfreq=250.0, frequencies=[8, 9, 10],
                 ch_names=["O1", "Oz", "O2", "POz"], onset=0.2)
    assert s.X.shape == (6, 4, 100) and s.onset == 50
    assert np.allclose(s.X[4], data[:, :, 1, 1] * 1e-6)  # block 2, target 2
    assert s.labels == ["8Hz", "9Hz", "10Hz"]
    # Nakanishi et al.'s [targets, channels, samples, blocks], described by a sidecar
    savemat(tmp_path / "nak.mat", {"eeg": np.transpose(data, (2, 0, 1, 3))})
    (tmp_path / "nak.json").write_text(json.dumps(
        {"sfreq": 256, "axes": ["targets", "channels", "samples", "blocks"]}))
    nak = load_mat(tmp_path / "nak.mat")
    assert np.allclose(nak.X, s.X) and nak.sfreq == 256.0
    assert nak.ch_names == ["EEG001", "EEG002", "EEG003", "EEG004"]


_4D = {"eeg": np.zeros((4, 100, 3, 2))}


@pytest.mark.parametrize("content,options,message", [
    ({"eeg": np.zeros((4, 100, 3))}, {"sfreq": 256},
     r"expected a numeric 4-D array .* found shape \(4, 100, 3\)"),
    ({"x": np.zeros((4, 100, 3, 2))}, {"sfreq": 256},
     r"expected an array named eeg or data .* found variables \['x'\]"),
    (_4D, {"sfreq": 256, "ch_names": ["Oz", "O1"]}, r"has 4 channels .* found 2 channel names"),
    (_4D, {"sfreq": 256, "frequencies": [8, 9]}, r"has 3 targets .* found 2"),
    (_4D, {}, r"expected the sampling rate"),
    (_4D, {"sfreq": 256, "onset": 1.0}, r"onset 1 s is outside"),
    (_4D, {"sfreq": 256, "axes": ["a", "b", "c", "d"]}, r"axes: expected a permutation"),
    (_4D, {"sfreq": 256, "unit": "furlong"}, r"unit: expected"),
])
def test_loader_names_what_is_wrong(tmp_path, content, options, message):
    savemat(tmp_path / "bad.mat", content)
    with pytest.raises(RecordingError, match=message):
        load_mat(tmp_path / "bad.mat", **options)


def test_bci_evaluate_scores_etrca_on_held_out_blocks(tmp_path, capsys):
    """A .mat set through `bci evaluate`: one fold per block, each scored on its block."""
    try:
        s = make_hybrid_jfpm(2, snr_db=-14.0)
    except RecordingError:  # no SSVEP-exo data here: the simulated background
        s = _synthetic(snr_db=-14.0)
    path = s.save_mat(tmp_path / "hybrid.mat")
    predictions = tmp_path / "p.jsonl"
    assert main(["evaluate", str(SESSION), "--decoder", "etrca", "--train", str(path),
                 "--split", "leave-one-block-out", "--predictions", str(predictions),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["split"] == "leave-one-block-out" and summary["n_windows"] == 72
    assert len(summary["fold_accuracy"]) == 6
    assert summary["accuracy"] > 0.5  # chance 1/12
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    # each window was scored in the fold of its own block, 12 windows per block
    assert sorted(r["recording"] for r in rows) == sorted(np.repeat(np.arange(6), 12))
    # the file's target order within a block: a block's trials are the 12 targets
    assert all(sorted(r["true_label"] for r in rows if r["recording"] == b)
               == sorted(s.labels) for b in range(6))
