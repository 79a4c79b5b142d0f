"""Synthetic EEG: determinism, schedule, ground truth and the signals it is made of."""

from __future__ import annotations

import numpy as np
import pytest
from bci.decoders.fbcca import FBCCA, chen_bands
from scipy import signal

from bci.datasets.synthetic import (
    BLOCK_SIZE,
    DEFAULT_SSVEP_CHANNELS,
    SyntheticEEG,
    label_frequencies,
    label_frequency,
    make_recording,
    pick_channels,
    ssvep_label,
)


def _read_in_random_chunks(eeg: SyntheticEEG, n: int, rng: np.random.Generator):
    parts, cues, done = [], [], 0
    while done < n:
        # sizes from 0 (an empty read) to beyond a block, so chunks straddle blocks
        k = min(int(rng.integers(0, BLOCK_SIZE + 700)), n - done)
        data, markers = eeg.read(k)
        assert data.shape == (eeg.n_channels, k)
        parts.append(data)
        cues += markers
        done += k
    return np.concatenate(parts, axis=1), cues


@pytest.mark.parametrize("options", [
    {"paradigm": "ssvep"},
    {"paradigm": "mi", "classes": ["left", "right", "feet"]},
    {"paradigm": "ssvep", "n_channels": 64, "sfreq": 1000.0},
])
def test_chunked_reads_give_exactly_the_same_samples(options):
    n = 3 * BLOCK_SIZE + 123
    whole, whole_cues = SyntheticEEG(seed=11, **options).read(n)
    for chunk_seed in range(3):
        pieces, cues = _read_in_random_chunks(SyntheticEEG(seed=11, **options), n,
                                              np.random.default_rng(chunk_seed))
        np.testing.assert_array_equal(pieces, whole)
        assert cues == whole_cues
    assert whole.dtype == np.float32
    assert np.isfinite(whole).all()


def test_seed_decides_the_samples():
    a, _ = SyntheticEEG(seed=1).read(1000)
    b, _ = SyntheticEEG(seed=1).read(1000)
    c, _ = SyntheticEEG(seed=2).read(1000)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    eeg = SyntheticEEG(seed=None)
    assert isinstance(eeg.seed, int)
    np.testing.assert_array_equal(eeg.read(300)[0], SyntheticEEG(seed=eeg.seed).read(300)[0])


def test_reset_replays_from_the_start():
    eeg = SyntheticEEG(seed=4)
    first, cues = eeg.read(5000)
    eeg.reset()
    again, cues_again = eeg.read(5000)
    np.testing.assert_array_equal(first, again)
    assert cues == cues_again


def test_defaults_info_and_amplitude_scale():
    eeg = SyntheticEEG(seed=0)
    assert eeg.ch_names == list(DEFAULT_SSVEP_CHANNELS)
    assert eeg.sfreq == 256.0
    assert eeg.info["sfreq"] == 256.0
    assert eeg.labels == ["8Hz", "10Hz", "12Hz", "15Hz"]
    np.testing.assert_allclose(eeg.phases, [0, np.pi / 2, np.pi, 3 * np.pi / 2])
    pos = np.array([ch["loc"][:3] for ch in eeg.info["chs"]])
    assert np.isfinite(pos).all() and (np.abs(pos) > 0).any(axis=1).all()
    data, _ = eeg.read(60 * 256)
    std = data.std(axis=1)
    # volts, as MNE expects: EEG of some 10 µV
    assert np.all(std > 3e-6) and np.all(std < 60e-6)

    mi = SyntheticEEG(paradigm="mi", seed=0)
    assert mi.sfreq == 160.0
    assert mi.labels == ["left", "right"]
    assert mi.ch_names[:3] == ["C3", "Cz", "C4"]
    assert mi.trial_samples == 4 * 160 and mi.period_samples == 6 * 160


def test_channel_picking_and_names():
    assert pick_channels(3, paradigm="ssvep") == ["Oz", "O1", "O2"]
    ssvep = pick_channels(20, paradigm="ssvep")
    assert ssvep[:8] == list(DEFAULT_SSVEP_CHANNELS)
    assert "Fpz" not in ssvep and "Fp1" not in ssvep
    mi = pick_channels(16, paradigm="mi")
    assert {"C3", "Cz", "C4", "C1", "C2", "CP3", "FC4"} <= set(mi)
    assert not {"O1", "Oz", "Fp1"} & set(mi)
    big = pick_channels(64, paradigm="mi")
    assert len(set(big)) == 64 and not any(n.endswith("h") for n in big)
    eeg = SyntheticEEG(ch_names=["oz", "C3", "FCC3h"], seed=0)
    assert eeg.ch_names == ["oz", "C3", "FCC3h"]
    assert eeg.read(10)[0].shape == (3, 10)


@pytest.mark.parametrize(("options", "message"), [
    ({"paradigm": "p300"}, "expected paradigm 'ssvep' or 'mi'"),
    ({"ch_names": ["Oz", "EEG 001"]}, "unknown names ['EEG 001']"),
    ({"ch_names": ["Oz", "OZ"]}, "duplicates"),
    ({"ch_names": ["Oz"], "n_channels": 1}, "not both"),
    ({"n_channels": 0}, "channel count between 1 and"),
    ({"n_channels": 1000}, "channel count between 1 and"),
    ({"frequencies": [8, 130]}, "below Nyquist"),
    ({"frequencies": [8, 8.0]}, "distinct SSVEP frequencies"),
    ({"frequencies": [8, 10], "phases": [0]}, "one phase per frequency"),
    ({"line_freq": 200, "sfreq": 256}, "line_freq must be below Nyquist"),
    ({"paradigm": "mi", "classes": ["left", "tongue"]}, "MI classes among"),
    ({"paradigm": "mi", "frequencies": [8]}, "apply to the 'ssvep' paradigm"),
    ({"classes": ["left"]}, "apply to the 'mi' paradigm"),
    ({"seed": -1}, "non-negative integer seed"),
    ({"sfreq": 0}, "positive number for sfreq"),
    ({"paradigm": "mi", "sfreq": 50}, "sfreq of at least 64 Hz"),
    ({"trial_duration": -1}, "positive number for trial_duration"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SyntheticEEG(**options)


def test_read_rejects_bad_counts():
    eeg = SyntheticEEG(seed=0)
    with pytest.raises(ValueError, match="non-negative sample count, found -1"):
        eeg.read(-1)
    with pytest.raises(ValueError, match="non-negative sample count"):
        eeg.read(2.5)


def test_labels_map_to_frequencies():
    assert ssvep_label(8) == "8Hz"
    assert ssvep_label(12.5) == "12.5Hz"
    assert label_frequency("12.5Hz") == 12.5
    assert label_frequencies(["8Hz", "15Hz"]) == [8.0, 15.0]
    eeg = SyntheticEEG(frequencies=[9.25, 11, 13.5], seed=0)
    assert eeg.class_frequencies == {"9.25Hz": 9.25, "11Hz": 11.0, "13.5Hz": 13.5}
    with pytest.raises(ValueError, match="expected an SSVEP label such as '8Hz'"):
        label_frequency("left")


@pytest.mark.parametrize("paradigm", ["ssvep", "mi"])
def test_schedule_is_balanced_and_matches_markers(paradigm):
    eeg = SyntheticEEG(paradigm=paradigm, seed=3, classes=None if paradigm == "ssvep"
                       else ["left", "right", "feet"])
    n_cls = len(eeg.labels)
    n = eeg.period_samples * 8 * n_cls + 5
    _, cues = eeg.read(n)
    trials = eeg.trials
    assert [(t.onset, t.label) for t in trials] == cues
    onsets = np.array([t.onset for t in trials])
    assert onsets[0] == round(eeg.iti * eeg.sfreq)
    assert np.all(np.diff(onsets) == eeg.period_samples)
    labels = [t.label for t in trials]
    for r in range(len(labels) // n_cls):
        assert sorted(labels[r * n_cls:(r + 1) * n_cls]) == sorted(eeg.labels)
    # drawn at random, not in a fixed rotation
    rounds = {tuple(labels[r * n_cls:(r + 1) * n_cls]) for r in range(len(labels) // n_cls)}
    assert len(rounds) > 1
    assert eeg.trials_between(onsets[2], onsets[4]) == trials[2:4]
    assert eeg.trial(5) == trials[5]


def test_ssvep_ground_truth_decodes_with_fbcca():
    eeg = SyntheticEEG(seed=7)
    n_trials = 60
    data, cues = eeg.read(eeg.trial(0).onset
                          + n_trials * eeg.period_samples)
    fs = eeg.sfreq
    bank = [signal.butter(4, band, "bandpass", fs=fs, output="sos")
            for band in chen_bands(5, high=100.0)]
    banded = np.stack([signal.sosfilt(sos, data, axis=-1) for sos in bank])
    n_win, lag = round(2.0 * fs), round(eeg.latency * fs)
    X = np.stack([banded[..., s + lag:s + lag + n_win] for s, _ in cues[:n_trials]])
    y = np.array([eeg.labels.index(label) for _, label in cues[:n_trials]])
    clf = FBCCA(eeg.frequencies, sfreq=fs, n_harmonics=3).fit(X)
    accuracy = np.mean(clf.predict(X) == y)
    assert accuracy >= 0.8
    # with the background removed the responses alone are decoded perfectly
    clean = SyntheticEEG(seed=7, noise_scale=0.0)
    clean_data, _ = clean.read(data.shape[1])
    clean_banded = np.stack([signal.sosfilt(sos, clean_data, axis=-1) for sos in bank])
    Xc = np.stack([clean_banded[..., s + lag:s + lag + n_win] for s, _ in cues[:n_trials]])
    assert np.all(clf.predict(Xc) == y)


def test_ssvep_response_is_occipital_and_time_locked():
    eeg = SyntheticEEG(n_channels=64, seed=5, noise_scale=0.0, amplitude_jitter=0.0)
    data, cues = eeg.read(eeg.period_samples * 4 + eeg.trial(0).onset)
    onset = cues[0][0]
    lag = round(eeg.latency * eeg.sfreq)
    assert np.all(data[:, :onset + lag] == 0)
    power = (data[:, onset + lag:onset + lag + eeg.trial_samples] ** 2).mean(axis=1)
    assert eeg.ch_names[int(np.argmax(power))] == "Oz"
    far = [eeg.ch_names.index(n) for n in eeg.ch_names if n.startswith(("F", "C"))]
    assert len(far) > 5
    assert power[far].max() < 0.01 * power.max()


def test_background_spectrum_alpha_line_noise_and_spatial_correlation():
    eeg = SyntheticEEG(n_channels=64, seed=2, ssvep_amplitude=0.0)
    data, _ = eeg.read(120 * 256)
    f, psd = signal.welch(data.astype(float), fs=256, nperseg=1024)

    def at(ch, hz):
        return psd[eeg.ch_names.index(ch), np.argmin(np.abs(f - hz))]

    # 1/f: lower frequencies carry more power
    assert at("Cz", 3) > 2 * at("Cz", 30)
    # posterior alpha and 50 Hz line noise stand above their neighbourhood
    assert at("Oz", 10) > 3 * at("Oz", 16)
    assert at("Oz", 10) > 2 * at("FCz", 10)
    assert at("Oz", 50) > 10 * at("Oz", 45)
    corr = np.corrcoef(data)
    near = corr[eeg.ch_names.index("O1"), eeg.ch_names.index("PO7")]
    far = corr[eeg.ch_names.index("O1"), eeg.ch_names.index("Cz")]
    assert near > 0.3 and near > far + 0.2

    quiet = SyntheticEEG(seed=2, line_freq=None, ssvep_amplitude=0.0).read(120 * 256)[0]
    f, psd_quiet = signal.welch(quiet.astype(float), fs=256, nperseg=1024)
    i50, i45 = np.argmin(np.abs(f - 50)), np.argmin(np.abs(f - 45))
    assert psd_quiet[0, i50] < 3 * psd_quiet[0, i45]
    sixty = SyntheticEEG(seed=2, line_freq=60, ssvep_amplitude=0.0).read(120 * 256)[0]
    f, psd60 = signal.welch(sixty.astype(float), fs=256, nperseg=1024)
    assert psd60[0, np.argmin(np.abs(f - 60))] > 10 * psd60[0, np.argmin(np.abs(f - 55))]


def test_motor_imagery_desynchronises_the_contralateral_hand_area():
    eeg = SyntheticEEG(paradigm="mi", seed=9, classes=["left", "right", "feet"])
    data, cues = eeg.read(eeg.trial(0).onset + 30 * eeg.period_samples)
    fs = eeg.sfreq
    mu = signal.sosfilt(signal.butter(4, [8, 30], "bandpass", fs=fs, output="sos"),
                        data.astype(float), axis=-1)
    sites = [eeg.ch_names.index(n) for n in ("C3", "C4", "Cz")]
    logvar = {label: [] for label in eeg.labels}
    for onset, label in cues[:30]:
        seg = mu[sites, onset + round(1.0 * fs):onset + eeg.trial_samples]
        logvar[label].append(np.log(seg.var(axis=1)))
    mean = {label: np.mean(v, axis=0) for label, v in logvar.items()}
    c3, c4, cz = 0, 1, 2
    assert mean["left"][c4] < mean["right"][c4] - 0.2
    assert mean["right"][c3] < mean["left"][c3] - 0.2
    assert mean["feet"][cz] < min(mean["left"][cz], mean["right"][cz]) - 0.2


def test_make_recording_matches_the_generator():
    rec = make_recording(20.0, t0=100.0, seed=6)
    eeg = SyntheticEEG(seed=6)
    data, cues = eeg.read(20 * 256)
    np.testing.assert_array_equal(rec.data, data)
    assert rec.data.dtype == np.float32 and rec.timestamps.dtype == np.float64
    np.testing.assert_allclose(rec.timestamps, 100.0 + np.arange(20 * 256) / 256.0)
    assert rec.markers.values == [label for _, label in cues]
    np.testing.assert_allclose(rec.markers.timestamps,
                               100.0 + np.array([s for s, _ in cues]) / 256.0)
    assert rec.info.ch_names == eeg.ch_names and rec.sfreq == 256.0

    mi = make_recording(3.0, paradigm="mi", n_channels=64, sfreq=1000.0, seed=1)
    assert mi.data.shape == (64, 3000)
    assert mi.markers.values == ["left"] or mi.markers.values == ["right"]
    with pytest.raises(ValueError, match="non-negative number for duration"):
        make_recording(-1.0)
