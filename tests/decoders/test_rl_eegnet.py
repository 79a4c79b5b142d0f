"""RL-EEGNet: learning from planted spatial structure, CSP hygiene, ONNX export, online
adaptation (in place and in a background thread) and reproducibility."""

from __future__ import annotations

import copy
import threading
import time

import numpy as np
import pytest
import torch
from bci.decoders.csp import CSP
from bci.decoders.rl_eegnet import OnlineAdapter, RLEEGNet
from scipy import signal
from sklearn.base import clone

from bci.decoder import OnnxDecoder
from bci.spec import DecoderSpec, WindowSpec, write_spec

torch.set_num_threads(1)

SFREQ2, SFREQ4 = 128.0, 160.0


def mixing(n_channels: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n_channels, n_channels))


def planted(n_trials: int, n_classes: int, *, mix: np.ndarray, sfreq: float, seed: int,
            ratio: float = 2.0, duration: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Band-passed trials in volts where class ``k`` raises the amplitude of source ``k``.

    Each source is 8–30 Hz noise; the sources are mixed into the channels by ``mix``
    (n_channels, n_sources) and broadband sensor noise is added before the band-pass the
    runtime would apply. Labels are balanced and shuffled.

    Returns
    -------
    X : ndarray of float32, shape (n_trials, n_channels, n_times)
    y : ndarray of str, shape (n_trials,)
    """
    rng = np.random.default_rng(seed)
    n_times, warm = round(duration * sfreq), 200
    sos = signal.butter(4, [8.0, 30.0], "bandpass", fs=sfreq, output="sos")
    sources = signal.sosfilt(sos, rng.standard_normal((n_trials, mix.shape[1], n_times + warm)))
    y = np.arange(n_trials) % n_classes
    rng.shuffle(y)
    gain = np.ones(sources.shape[:2])
    gain[np.arange(n_trials), y] = ratio
    X = np.einsum("cs,nst->nct", mix, sources * gain[..., None])
    X = X + 0.5 * X.std() * rng.standard_normal(X.shape)
    X = signal.sosfilt(sos, X, axis=-1)[..., warm:]
    labels = np.array(["left", "right", "feet", "tongue"][:n_classes])[y]
    return (1e-5 * X).astype(np.float32), labels


def trained_on_planted(mix: np.ndarray, n_classes: int, *, sfreq: float, n_train: int,
                       n_test: int, seed: int) -> dict:
    """A model fitted on planted trials (seed ``seed``), with held-out ones (``seed + 1``)."""
    Xtr, ytr = planted(n_train, n_classes, mix=mix, sfreq=sfreq, seed=seed)
    Xte, yte = planted(n_test, n_classes, mix=mix, sfreq=sfreq, seed=seed + 1)
    model = RLEEGNet(sfreq=sfreq, seed=0).fit(Xtr, ytr)
    return {"mix": mix, "Xtr": Xtr, "ytr": ytr, "Xte": Xte, "yte": yte, "model": model}


@pytest.fixture(scope="module")
def two() -> dict:
    return trained_on_planted(mixing(8, 11), 2, sfreq=SFREQ2, n_train=160, n_test=120, seed=1)


@pytest.fixture(scope="module")
def four() -> dict:
    return trained_on_planted(mixing(12, 12), 4, sfreq=SFREQ4, n_train=240, n_test=160, seed=3)


@pytest.fixture(scope="module")
def shifted(two: dict) -> dict:
    """Trials of the same classes seen through a changed mixing (electrodes moved)."""
    mix = two["mix"] + 1.5 * mixing(8, 7)
    X, y = planted(240, 2, mix=mix, sfreq=SFREQ2, seed=5)
    return {"Xad": X[:120], "yad": y[:120], "Xte": X[120:], "yte": y[120:]}


@pytest.fixture(scope="module")
def exported(two: dict, tmp_path_factory: pytest.TempPathFactory):
    """The fitted two-class model as an ``.onnx`` file with its spec."""
    model = two["model"]
    path = tmp_path_factory.mktemp("rl_eegnet") / "rl_eegnet.onnx"
    write_spec(model.to_onnx(), spec_for(model, 8, SFREQ2), path)
    return path


def spec_for(model: RLEEGNet, n_channels: int, sfreq: float) -> DecoderSpec:
    return DecoderSpec(
        paradigm="mi", classes=[str(c) for c in model.classes_],
        ch_names=[f"C{i}" for i in range(n_channels)], sfreq=sfreq,
        window=WindowSpec(mode="epoch", tmin=0.0, tmax=1.0),
        preprocessing=model.preprocessing(), name="RL-EEGNet",
    )


def accuracy(proba: np.ndarray, classes: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(classes[np.argmax(proba, axis=1)] == y))


# -- learning --------------------------------------------------------------------------


@pytest.mark.parametrize("name, chance", [
    ("two", 0.5), pytest.param("four", 0.25, marks=pytest.mark.slow)])
def test_learns_planted_classes_on_held_out_trials(name: str, chance: float,
                                                    request: pytest.FixtureRequest) -> None:
    data = request.getfixturevalue(name)
    model = data["model"]
    assert model.classes_.size == round(1 / chance)
    proba = model.predict_proba(data["Xte"])
    assert proba.shape == (data["Xte"].shape[0], model.classes_.size)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert model.score(data["Xte"], data["yte"]) >= chance + 0.35
    # the reward rose as exploration decayed: the agent learned, not merely converged
    assert model.history_[-1] > model.history_[0] + 0.5


@pytest.mark.slow
def test_labels_unrelated_to_the_data_stay_near_chance_on_held_out_trials(two: dict) -> None:
    # Shuffled within each true class so that exactly half of each class gets each label:
    # a plain permutation keeps a chance correlation with the truth that the network can
    # learn, and then held-out accuracy drifts from 0.5 for a reason that is no bug.
    rng = np.random.default_rng(0)
    y = two["ytr"].copy()
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(two["ytr"] == label))
        y[idx[: idx.size // 2]], y[idx[idx.size // 2:]] = "left", "right"
    assert np.mean(y == two["ytr"]) == 0.5
    model = RLEEGNet(sfreq=SFREQ2, seed=0).fit(two["Xtr"], y)
    assert abs(model.score(two["Xte"], two["yte"]) - 0.5) < 0.15


def test_csp_is_fitted_on_the_training_trials_alone(two: dict) -> None:
    model = two["model"]
    alone = CSP(4, multiclass="ovr", transform_into="csp_space").fit(two["Xtr"], two["ytr"])
    np.testing.assert_array_equal(model.csp_.filters_, alone.filters_)
    # the check can fail: filters fitted with the test trials differ
    both = CSP(4, transform_into="csp_space").fit(np.concatenate([two["Xtr"], two["Xte"]]),
                                                  np.concatenate([two["ytr"], two["yte"]]))
    assert not np.allclose(both.filters_, alone.filters_, atol=1e-3)
    # the network's projection is those filters over their spread on the training trials
    z = np.matmul(alone.filters_, two["Xtr"].astype(np.float64))
    expected = alone.filters_ / z.std(axis=(0, 2))[:, None]
    np.testing.assert_allclose(model.module_.projection.numpy(), expected, rtol=1e-5)


@pytest.mark.slow
def test_gamma_above_zero_bootstraps_from_the_next_trial(two: dict) -> None:
    model = RLEEGNet(sfreq=SFREQ2, gamma=0.5, n_epochs=20, epsilon_decay=0.8,
                     seed=0).fit(two["Xtr"], two["ytr"])
    assert model.replay_.next_states is not None
    assert model.replay_.done.sum() < len(model.replay_)  # chained within a pass
    assert model.score(two["Xte"], two["yte"]) >= 0.8


@pytest.mark.slow
def test_same_seed_same_model_other_seed_other_model(two: dict) -> None:
    kw = {"sfreq": SFREQ2, "n_epochs": 4}
    a = RLEEGNet(**kw, seed=3).fit(two["Xtr"], two["ytr"])
    b = RLEEGNet(**kw, seed=3).fit(two["Xtr"], two["ytr"])
    c = RLEEGNet(**kw, seed=4).fit(two["Xtr"], two["ytr"])
    pa, pb, pc = (m.predict_proba(two["Xte"]) for m in (a, b, c))
    np.testing.assert_array_equal(pa, pb)
    assert a.history_ == b.history_
    assert not np.allclose(pa, pc, atol=1e-4)
    assert clone(a).get_params() == a.get_params()


def test_rejects_bad_input(two: dict) -> None:
    model = two["model"]
    with pytest.raises(ValueError, match="not among the fitted classes"):
        copy.deepcopy(model).adapt(two["Xte"][:2], np.array(["left", "up"]))
    with pytest.raises(ValueError, match="fitted on windows of shape"):
        model.predict_proba(two["Xte"][:, :4])
    with pytest.raises(RuntimeError, match="call fit"):
        RLEEGNet(sfreq=SFREQ2).predict_proba(two["Xte"])
    with pytest.raises(ValueError, match="h_freq"):
        RLEEGNet(sfreq=SFREQ2, h_freq=70.0).fit(two["Xtr"], two["ytr"])


# -- state file ------------------------------------------------------------------------


def test_state_file_loads_weights_only_and_resumes_adaptation(two: dict, shifted: dict,
                                                              tmp_path) -> None:
    model = copy.deepcopy(two["model"])
    path = model.save_state(tmp_path / "rl.pt")
    # plain values and tensors only: no class is unpickled, so the module may move
    blob = torch.load(path, weights_only=True)
    assert blob["kind"] == "rl-eegnet-state" and blob["classes"] == ["left", "right"]
    assert "projection" in blob["module"] and blob["replay"]["size"] == len(model.replay_)
    restored = RLEEGNet.load_state(path)
    assert restored.get_params() == model.get_params()
    np.testing.assert_array_equal(restored.predict_proba(two["Xte"]),
                                  model.predict_proba(two["Xte"]))
    np.testing.assert_array_equal(restored.csp_.filters_, model.csp_.filters_)
    # optimiser, replay buffer and random state come back too: adapting both on the same
    # trials gives the same network
    for m in (model, restored):
        m.adapt(shifted["Xad"][:40], shifted["yad"][:40], n_epochs=2)
    np.testing.assert_array_equal(restored.predict_proba(shifted["Xte"]),
                                  model.predict_proba(shifted["Xte"]))
    assert restored.history_ == model.history_ and restored.n_updates_ == model.n_updates_
    torch.save({"kind": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="expected an RL-EEGNet state file"):
        RLEEGNet.load_state(tmp_path / "other.pt")


# -- ONNX ------------------------------------------------------------------------------


def test_onnx_matches_torch_for_batch_1_and_5(two: dict, exported) -> None:
    model = two["model"]
    decoder = OnnxDecoder(exported)
    assert decoder.input_shape() == (8, 128)
    assert decoder.spec.preprocessing == [
        {"kind": "bandpass", "l_freq": 8.0, "h_freq": 30.0, "order": 4}]
    X = two["Xte"][:5]
    expected = model.predict_proba(X)
    np.testing.assert_allclose(decoder.run(X[0]), expected[0], atol=1e-4)
    batch = decoder.session.run(None, {"x": X})[0]
    assert batch.shape == (5, 2)
    np.testing.assert_allclose(batch, expected, atol=1e-4)


# -- online adaptation -----------------------------------------------------------------


@pytest.mark.slow
def test_adapt_improves_accuracy_on_a_shifted_distribution(two: dict, shifted: dict) -> None:
    model = copy.deepcopy(two["model"])
    projection = model.module_.projection.clone()
    before = model.score(shifted["Xte"], shifted["yte"])
    model.adapt(shifted["Xad"], shifted["yad"], n_epochs=10)
    after = model.score(shifted["Xte"], shifted["yte"])
    assert before < 0.7  # the shift hurts
    assert after >= before + 0.2
    assert after >= 0.8
    # CSP stays as fitted on the training session
    np.testing.assert_array_equal(model.module_.projection, projection)
    np.testing.assert_array_equal(model.csp_.filters_, two["model"].csp_.filters_)


def test_online_adapter_submit_returns_while_the_thread_learns(two: dict) -> None:
    model = copy.deepcopy(two["model"])
    gate, started = threading.Event(), threading.Event()
    learned: list[tuple[int, list[str], float]] = []
    real_adapt = model.adapt

    def gated_adapt(X, y, *, n_epochs=1):
        started.set()
        assert gate.wait(10.0)
        learned.append((threading.get_ident(), list(y), float(X[0, 0, 0])))
        return real_adapt(X, y, n_epochs=n_epochs)

    model.adapt = gated_adapt
    X, y = two["Xte"], two["yte"]
    adapter = OnlineAdapter(model, max_pending=3, max_group=8)
    try:
        adapter.submit(X[0], y[0])
        assert started.wait(5.0)  # the thread took trial 0 and is stuck learning it
        t0 = time.perf_counter()
        for i in range(1, 11):
            adapter.submit(X[i], y[i])
        elapsed = time.perf_counter() - t0
        assert elapsed < 0.5  # ten submits while learning is blocked: none waited
        assert adapter.n_pending == 3 and adapter.n_dropped == 7
        gate.set()
        assert adapter.flush(timeout=30.0)
        assert adapter.n_submitted == 11 and adapter.n_adapted == 4
        assert all(ident != threading.get_ident() for ident, _, _ in learned)
        # trial 0, then the three newest; the oldest pending were dropped
        assert [lab for _, labs, _ in learned for lab in labs] == [y[0], y[8], y[9], y[10]]
        assert learned[1][2] == X[8, 0, 0]
        with pytest.raises(ValueError, match="shape"):
            adapter.submit(X[0, :4], y[0])
    finally:
        gate.set()
        adapter.close(drain=False, timeout=10.0)
    with pytest.raises(RuntimeError, match="closed"):
        adapter.submit(X[0], y[0])


@pytest.mark.slow
def test_online_adapter_exports_the_adapted_model(two: dict, shifted: dict, exported,
                                                  tmp_path) -> None:
    model = copy.deepcopy(two["model"])
    spec = spec_for(model, 8, SFREQ2)
    with OnlineAdapter(model, max_pending=256, max_group=16, n_epochs=10) as adapter:
        for window, label in zip(shifted["Xad"], shifted["yad"], strict=True):
            adapter.submit(window, label)
        assert adapter.flush(timeout=60.0)
        assert adapter.n_adapted == 120 and adapter.n_dropped == 0
        adapted = adapter.export(tmp_path / "adapted.onnx", spec)
        reference = adapter.snapshot()
    X, y = shifted["Xte"], shifted["yte"]
    out = {}
    for name, path in (("original", exported), ("adapted", adapted)):
        decoder = OnnxDecoder(path)
        assert decoder.spec.classes == spec.classes
        out[name] = decoder.session.run(None, {"x": X})[0]
    assert np.abs(out["adapted"] - out["original"]).max() > 0.05
    with torch.no_grad():
        np.testing.assert_allclose(out["adapted"], reference(torch.from_numpy(X)).numpy(),
                                   atol=1e-4)
    np.testing.assert_allclose(out["original"], two["model"].predict_proba(X), atol=1e-4)
    assert accuracy(out["adapted"], model.classes_, y) > accuracy(
        out["original"], model.classes_, y) + 0.1
    assert not list(tmp_path.glob(".*.tmp"))
