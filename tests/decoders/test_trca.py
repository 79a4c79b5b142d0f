"""TRCA / ensemble TRCA (bci.decoders.trca) and the Riemannian baselines (bci.decoders.riemann).

Synthetic data are continuous recordings (8 channels, 256 Hz) with 1-s stimulation
epochs separated by rest, passed in 64-sample chunks through the decoder's own
``preprocessing()`` chain (``bci.chain.Chain`` with the live filter nodes), then cut into
windows at the stimulus onsets, as the runtime does. Training and test windows come from
recordings with different seeds, so every accuracy below is on held-out trials.
"""

from __future__ import annotations

import mne
import numpy as np
import onnxruntime as ort
import pytest
from bci.decoders.fbcca import chen_bands
from bci.decoders.riemann import RiemannMDM, TangentSpaceLR
from bci.decoders.trca import TRCA
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError

from bci.chain import Chain
from bci.chunk import Chunk
from bci.decoder import OnnxDecoder
from bci.spec import DecoderSpec, WindowSpec, write_spec

SFREQ = 256.0
N_CH = 8
N_TIMES = 256  # 1-s windows
FREQS = (8.0, 10.0, 12.0, 15.0)
LABELS = np.array([f"{f:g}Hz" for f in FREQS])
CH_NAMES = [f"EEG{i:02d}" for i in range(N_CH)]


def filter_recording(configs: list[dict], data: np.ndarray) -> np.ndarray:
    """Run ``data`` (n_channels, n_samples) through the live nodes, 64 samples at a time."""
    chain = Chain.from_config(configs)
    chain.setup(mne.create_info(CH_NAMES, SFREQ, "eeg"))
    stamps = np.arange(data.shape[1]) / SFREQ
    out = [
        chain.process(Chunk(data[:, i:i + 64].astype(np.float32), stamps[i:i + 64])).data
        for i in range(0, data.shape[1], 64)
    ]
    return np.concatenate(out, axis=-1)


def recording(
    n_per_class: int, seed: int, *, amplitude: float = 2e-6, noise: float = 6e-6,
    jitter: float = 0.4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic SSVEP recording.

    Each trial is 0.5 s of rest, then 1 s of responses at the trial's frequency and its
    first two harmonics, each harmonic with a fixed scalp pattern and a fixed phase per
    frequency plus a per-trial phase jitter (uniform ± ``jitter`` rad). Noise is white,
    mixed across channels so that it is spatially correlated.

    Returns
    -------
    data : ndarray, shape (N_CH, n_samples), volts
    onsets : ndarray of int, shape (n_trials,)
    labels : ndarray of str, shape (n_trials,)
    """
    patterns = np.random.default_rng(123).standard_normal((3, N_CH))  # same for all seeds
    phases = np.random.default_rng(456).uniform(0, 2 * np.pi, len(FREQS))
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(LABELS, n_per_class))
    rest = N_TIMES // 2
    n_samples = len(labels) * (rest + N_TIMES) + rest
    mixing = np.eye(N_CH) + 0.6 * rng.standard_normal((N_CH, N_CH))
    data = noise * mixing @ rng.standard_normal((N_CH, n_samples))
    t = np.arange(N_TIMES) / SFREQ
    onsets = rest + np.arange(len(labels)) * (rest + N_TIMES)
    for onset, label in zip(onsets, labels, strict=True):
        k = int(np.flatnonzero(LABELS == label)[0])
        phi = phases[k] + rng.uniform(-jitter, jitter)
        for h in range(3):
            wave = np.sin(2 * np.pi * (h + 1) * FREQS[k] * t + (h + 1) * phi) / (h + 1)
            data[:, onset:onset + N_TIMES] += amplitude * patterns[h][:, None] * wave
    return data, onsets, labels


def windows(configs: list[dict], data: np.ndarray, onsets: np.ndarray) -> np.ndarray:
    filtered = filter_recording(configs, data)
    return np.stack([filtered[..., o:o + N_TIMES] for o in onsets]).astype(np.float32)


@pytest.fixture(scope="module")
def ssvep() -> dict[str, np.ndarray]:
    """Filter-bank windows (n, 5, 8, 256): 10 training and 8 test trials per class."""
    configs = TRCA(sfreq=SFREQ).preprocessing()
    train, test = recording(10, seed=1), recording(8, seed=2)
    return {
        "X_train": windows(configs, *train[:2]), "y_train": train[2],
        "X_test": windows(configs, *test[:2]), "y_test": test[2],
    }


# -- TRCA: learning -----------------------------------------------------------------------

@pytest.mark.parametrize("ensemble", [False, True])
def test_trca_decodes_held_out_trials(ssvep, ensemble):
    model = TRCA(sfreq=SFREQ, ensemble=ensemble).fit(ssvep["X_train"], ssvep["y_train"])
    assert model.classes_.tolist() == sorted(LABELS.tolist())
    accuracy = np.mean(model.predict(ssvep["X_test"]) == ssvep["y_test"])
    assert accuracy >= 0.75, f"held-out accuracy {accuracy:.2f}, chance 0.25"
    proba = model.predict_proba(ssvep["X_test"])
    assert proba.shape == (len(ssvep["y_test"]), len(FREQS))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert np.array_equal(model.classes_[proba.argmax(axis=1)], model.predict(ssvep["X_test"]))


@pytest.mark.parametrize("ensemble", [False, True])
def test_trca_is_at_chance_with_shuffled_training_labels(ssvep, ensemble):
    rng = np.random.default_rng(7)
    accuracies = []
    for _ in range(5):
        y = rng.permutation(ssvep["y_train"])
        model = TRCA(sfreq=SFREQ, ensemble=ensemble).fit(ssvep["X_train"], y)
        accuracies.append(np.mean(model.predict(ssvep["X_test"]) == ssvep["y_test"]))
    # 32 test trials × 5 shuffles at chance 0.25: the mean has a standard error of ~0.035
    assert np.mean(accuracies) < 0.42, accuracies


def test_trca_filter_maximises_trial_reproducibility(ssvep):
    """The fitted filter beats every channel and random filters on the TRCA objective.

    ``S`` and ``Q`` are rebuilt here from their definitions (explicit sum over pairs of
    different trials; covariance of the concatenated trials).
    """
    model = TRCA(sfreq=SFREQ).fit(ssvep["X_train"], ssvep["y_train"])
    rng = np.random.default_rng(0)
    for band in (0, 2):
        for k, label in enumerate(model.classes_):
            trials = ssvep["X_train"][ssvep["y_train"] == label, band].astype(np.float64)
            trials = trials - trials.mean(axis=-1, keepdims=True)
            s = sum(trials[i] @ trials[j].T for i in range(len(trials))
                    for j in range(len(trials)) if i != j)
            concatenated = np.concatenate(list(trials), axis=1)
            q = concatenated @ concatenated.T

            def ratio(w, s=s, q=q):
                return (w @ s @ w) / (w @ q @ w)

            best = ratio(model.filters_[band, k])
            others = [*np.eye(N_CH), *rng.standard_normal((200, N_CH))]
            assert best >= max(ratio(w) for w in others) - 1e-9
            assert best > 0


# -- TRCA: ONNX export --------------------------------------------------------------------

@pytest.mark.parametrize("ensemble", [False, True])
def test_onnx_export_matches_predict_proba(ssvep, ensemble, tmp_path):
    model = TRCA(sfreq=SFREQ, ensemble=ensemble).fit(ssvep["X_train"], ssvep["y_train"])
    spec = DecoderSpec(
        paradigm="ssvep", classes=model.classes_.tolist(), ch_names=CH_NAMES, sfreq=SFREQ,
        window=WindowSpec(mode="epoch", tmin=0.0, tmax=N_TIMES / SFREQ),
        preprocessing=model.preprocessing(), name="etrca" if ensemble else "trca",
    )
    path = tmp_path / "trca.onnx"
    write_spec(model.to_onnx(), spec, path)

    decoder = OnnxDecoder(path)
    assert decoder.spec.classes == model.classes_.tolist()
    assert decoder.spec.preprocessing == model.preprocessing()
    assert decoder.input_shape() == (5, N_CH, N_TIMES)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.name == "x" and inp.shape[0] == "batch"

    rng = np.random.default_rng(3)
    random_windows = (5e-6 * rng.standard_normal((5, 5, N_CH, N_TIMES))).astype(np.float32)
    for X in (ssvep["X_test"][:5], random_windows):
        expected = model.predict_proba(X)
        batch5 = session.run([out.name], {"x": X})[0]
        assert batch5.shape == (5, len(FREQS)) and batch5.dtype == np.float32
        np.testing.assert_allclose(batch5, expected, atol=1e-4)
        for i in range(5):
            batch1 = session.run([out.name], {"x": X[i:i + 1]})[0]
            np.testing.assert_allclose(batch1[0], expected[i], atol=1e-4)
            np.testing.assert_allclose(decoder.run(X[i]), expected[i], atol=1e-4)
    # some test windows are decoded confidently: the comparison is not only of flat rows
    assert session.run([out.name], {"x": ssvep["X_test"][:5]})[0].max() > 0.9


def test_onnx_and_numpy_agree_on_a_flat_window():
    """An all-zero window (a flat-lined amplifier) gives uniform probabilities, not NaN."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 2, 3, 40)).astype(np.float32)
    y = np.repeat(["a", "b", "c"], 2)
    for ensemble in (False, True):
        model = TRCA(sfreq=SFREQ, bands=[[8, 80], [16, 80]], ensemble=ensemble).fit(X, y)
        session = ort.InferenceSession(model.to_onnx().SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        zeros = np.zeros((1, 2, 3, 40), np.float32)
        np.testing.assert_allclose(model.predict_proba(zeros), 1 / 3, atol=1e-12)
        np.testing.assert_allclose(session.run(None, {"x": zeros})[0], 1 / 3, atol=1e-6)


# -- TRCA: configuration and errors -------------------------------------------------------

def test_preprocessing_is_the_chen_filter_bank():
    assert TRCA(sfreq=256.0).preprocessing() == [{
        "kind": "filterbank", "bands": chen_bands(5, high=88.0), "order": 4,
        "ftype": "cheby1", "rp": 0.5,
    }]
    # at 100 Hz the upper edge is 45 Hz; at 80 Hz the fifth band [40, 36] cannot exist
    assert TRCA(sfreq=100.0, n_bands=3).preprocessing()[0]["bands"] == [
        [8.0, 45.0], [16.0, 45.0], [24.0, 45.0]]
    assert len(TRCA(sfreq=80.0).preprocessing()[0]["bands"]) == 4
    custom = TRCA(sfreq=SFREQ, bands=[(6, 50), (12, 50)], filter_order=2).preprocessing()
    assert custom[0]["bands"] == [[6.0, 50.0], [12.0, 50.0]] and custom[0]["order"] == 2
    Chain.from_config(custom)  # the live runtime accepts it
    with pytest.raises(ValueError, match=r"Nyquist \(128 Hz\), found \[\[100.0, 130.0\]\]"):
        TRCA(sfreq=SFREQ, bands=[[8, 80], [100, 130]]).preprocessing()


def test_trca_is_a_scikit_learn_classifier(ssvep):
    model = TRCA(sfreq=SFREQ, ensemble=True, temperature=0.05)
    assert is_classifier(model)
    assert clone(model).get_params()["ensemble"] is True
    with pytest.raises(NotFittedError):
        model.predict_proba(ssvep["X_test"])


def test_bad_inputs_name_expected_and_found(ssvep):
    X, y = ssvep["X_train"], ssvep["y_train"]
    model = TRCA(sfreq=SFREQ)
    with pytest.raises(ValueError, match=r"\(n_windows, n_bands, n_channels, n_times\), "
                                         r"found \(40, 8, 256\)"):
        model.fit(X[:, 0], y)
    bad = X.copy()
    bad[3, 1, 2, 10] = np.nan
    with pytest.raises(ValueError, match="expected finite samples, found 1 NaN/Inf"):
        model.fit(bad, y)
    with pytest.raises(ValueError, match=r"expected at least 2 classes, found 1: \['8Hz'\]"):
        model.fit(X[y == "8Hz"], y[y == "8Hz"])
    one = np.concatenate([np.flatnonzero(y == "8Hz"), np.flatnonzero(y == "10Hz")[:1]])
    with pytest.raises(ValueError, match=r"at least 2 windows per class .* found 1 for "
                                         r"\['10Hz'\]"):
        model.fit(X[one], y[one])
    with pytest.raises(ValueError, match=r"expected 5 sub-bands .* found 3"):
        model.fit(X[:, :3], y)
    with pytest.raises(ValueError, match="one label per window"):
        model.fit(X, y[:-1])

    model.fit(X, y)
    with pytest.raises(ValueError, match=r"expected windows of shape \(n_windows, 5, 8, 256\)"
                                         r".* found \(2, 5, 8, 200\)"):
        model.predict(X[:2, ..., :200])
    with pytest.raises(ValueError, match=r"found \(5, 8, 256\)"):
        model.predict_proba(X[0])
    with pytest.raises(ValueError, match="expected finite samples"):
        model.predict_proba(bad[:5])


# -- Riemannian baselines -----------------------------------------------------------------

def mi_recording(n_per_class: int, seed: int, classes: tuple[str, ...]):
    """Motor-imagery-like data: class ``c`` raises the power of source ``c`` (a fixed scalp
    pattern) by a factor of 2.5 in amplitude, against 8 background sources whose power
    varies from trial to trial by ±40 %.
    """
    mixing = np.random.default_rng(99).standard_normal((N_CH, N_CH))
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.array(classes), n_per_class))
    rest = N_TIMES // 2
    onsets = rest + np.arange(len(labels)) * (rest + N_TIMES)
    sources = rng.standard_normal((N_CH, len(labels) * (rest + N_TIMES) + rest))
    for onset, label in zip(onsets, labels, strict=True):
        gain = rng.uniform(0.6, 1.4, N_CH)
        gain[classes.index(label)] *= 2.5
        sources[:, onset:onset + N_TIMES] *= gain[:, None]
    return 5e-6 * mixing @ sources, onsets, labels


@pytest.mark.parametrize("cls", [RiemannMDM, TangentSpaceLR])
def test_riemann_baselines_learn_planted_covariance(cls):
    classes = ("left", "right", "feet")
    model = cls(sfreq=SFREQ)
    configs = model.preprocessing()
    assert configs[0]["kind"] == "bandpass"
    data, onsets, y_train = mi_recording(15, 10, classes)
    X_train = windows(configs, data, onsets)
    data, onsets, y_test = mi_recording(15, 11, classes)
    X_test = windows(configs, data, onsets)
    assert X_train.shape == (45, N_CH, N_TIMES)

    model.fit(X_train, y_train)
    assert is_classifier(model) and model.classes_.tolist() == sorted(classes)
    accuracy = np.mean(model.predict(X_test) == y_test)
    assert accuracy >= 0.7, f"held-out accuracy {accuracy:.2f}, chance 0.33"
    proba = model.predict_proba(X_test)
    assert proba.shape == (45, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)

    shuffled = clone(model).fit(X_train, np.random.default_rng(0).permutation(y_train))
    assert np.mean(shuffled.predict(X_test) == y_test) < accuracy - 0.2

    with pytest.raises(NotImplementedError, match=r"served from its \.npz model file"):
        model.to_onnx()
    with pytest.raises(ValueError, match=r"\(n_windows, n_channels, n_times\), found "
                                         r"\(45, 1, 8, 256\)"):
        model.predict(X_test[:, None])


def test_riemann_mdm_on_stacked_ssvep_bands():
    # ±1 Hz rather than MOABB's ±0.5 Hz: a causal band-pass needs about 1/bandwidth
    # seconds to build up, too long for these 1-s windows (±0.5 Hz decodes at chance)
    bands = [[f - 1.0, f + 1.0] for f in FREQS]
    model = RiemannMDM(sfreq=SFREQ, bands=bands)
    configs = model.preprocessing()
    assert configs == [{"kind": "filterbank", "bands": bands, "order": 4, "ftype": "butter"}]
    data, onsets, y_train = recording(10, seed=21, amplitude=4e-6)
    X_train = windows(configs, data, onsets)
    data, onsets, y_test = recording(8, seed=22, amplitude=4e-6)
    X_test = windows(configs, data, onsets)
    model.fit(X_train, y_train)
    assert model.n_channels_in_ == len(FREQS) * N_CH  # bands stacked along channels
    accuracy = np.mean(model.predict(X_test) == y_test)
    assert accuracy >= 0.7, f"held-out accuracy {accuracy:.2f}, chance 0.25"
    with pytest.raises(ValueError, match=r"expected 4 sub-bands .* found 2"):
        model.predict(X_test[:, :2])
    with pytest.raises(ValueError, match="Nyquist"):
        RiemannMDM(sfreq=SFREQ, bands=[[100, 140]]).preprocessing()
