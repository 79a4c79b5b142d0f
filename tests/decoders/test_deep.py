"""Deep decoders (EEGNet, the SSVEP DNN) and their one ONNX export path.

Synthetic recordings with a planted class structure go through the decoders' own
causal preprocessing (the runtime's nodes), are cut into trials, and split into
training and held-out trials. The networks must decode the held-out trials well above
chance, and fall to chance when trained on shuffled labels. The exported graphs are run
by onnxruntime, through the runtime's decoder host and through a raw session, against
the torch network in evaluation mode.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")

import mne  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from bci.decoders.base import OPSET, TrainableDecoder  # noqa: E402
from bci.decoders.eegnet import EEGNetClassifier  # noqa: E402
from bci.decoders.ssvep_dnn import SSVEPDNNClassifier, ssvep_bands  # noqa: E402
from bci.decoders.torch_classifier import _stratified_split  # noqa: E402
from bci.decoders.torch_export import EXPORT_OPSET, export_module  # noqa: E402
from scipy import stats  # noqa: E402
from sklearn.base import clone, is_classifier  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from torch.optim.optimizer import register_optimizer_step_pre_hook  # noqa: E402

from bci.chain import Chain  # noqa: E402
from bci.chunk import Chunk  # noqa: E402
from bci.decoder import OnnxDecoder  # noqa: E402
from bci.spec import DecoderSpec, WindowSpec, write_spec  # noqa: E402

SFREQ = 128.0
N_CH = 8
N_TIMES = 128  # 1 s trials
N_TRIALS = 120
N_TRAIN = 80
CH_NAMES = [f"EEG{i:02d}" for i in range(N_CH)]
SSVEP_FREQS = (9.0, 11.0, 13.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- synthetic data ------------------------------------------------------------------


def preprocess(nodes: list[dict], trials: np.ndarray) -> np.ndarray:
    """Run the decoder's causal chain over the trials laid end to end, then cut them.

    Parameters
    ----------
    trials : ndarray, shape (n_trials, n_channels, n_times), volts

    Returns
    -------
    windows : ndarray of float32, shape (n_trials, *node output, n_times)
    """
    n = trials.shape[0]
    stream = np.concatenate(list(trials), axis=-1).astype(np.float32)
    chain = Chain.from_config(nodes)
    chain.setup(mne.create_info(CH_NAMES, SFREQ, "eeg"))
    out = chain.process(Chunk(stream, np.arange(stream.shape[-1]) / SFREQ)).data
    return np.stack(np.split(out, n, axis=-1)).astype(np.float32)


def motor_like(rng: np.random.Generator, *, amp: float = 5e-6) -> tuple[np.ndarray, np.ndarray]:
    """Two classes: a 10 Hz rhythm of random phase over the left or the right half of
    the channels (random weights), in 10 µV white noise. The classes differ in where the
    rhythm is, not in their mean waveform."""
    y = np.arange(N_TRIALS) % 2
    rng.shuffle(y)
    t = np.arange(N_TIMES) / SFREQ
    half = np.arange(N_CH) < N_CH // 2
    weights = rng.uniform(0.5, 1.5, N_CH)
    patterns = np.stack([weights * half, weights * ~half])
    X = 10e-6 * rng.standard_normal((N_TRIALS, N_CH, N_TIMES))
    for i, k in enumerate(y):
        X[i] += amp * patterns[k][:, None] * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 7))
    return X, np.array(["left", "right"])[y]


def ssvep_like(rng: np.random.Generator, *, amp: float = 3e-6) -> tuple[np.ndarray, np.ndarray]:
    """Three classes: 9, 11 or 13 Hz with two harmonics on one occipital-like pattern,
    with a little phase jitter, in 10 µV white noise."""
    y = np.arange(N_TRIALS) % len(SSVEP_FREQS)
    rng.shuffle(y)
    t = np.arange(N_TIMES) / SFREQ
    pattern = rng.standard_normal(N_CH)
    X = 10e-6 * rng.standard_normal((N_TRIALS, N_CH, N_TIMES))
    for i, k in enumerate(y):
        phase = rng.uniform(0, 0.3)
        s = sum(np.sin(2 * np.pi * h * SSVEP_FREQS[k] * t + h * phase) / h for h in (1, 2, 3))
        X[i] += amp * pattern[:, None] * s
    return X, np.array([f"{f:g}Hz" for f in SSVEP_FREQS])[y]


def chance_ceiling(n: int, n_classes: int) -> float:
    """Accuracy a chance-level classifier exceeds on n trials with probability 0.001."""
    return float(stats.binom.ppf(0.999, n, 1.0 / n_classes)) / n


# --- fitted models, shared ----------------------------------------------------------


@pytest.fixture(scope="module")
def eegnet_data() -> tuple[np.ndarray, np.ndarray]:
    X, y = motor_like(np.random.default_rng(1))
    return preprocess(EEGNetClassifier(sfreq=SFREQ).preprocessing(), X), y


@pytest.fixture(scope="module")
def eegnet(eegnet_data) -> EEGNetClassifier:
    torch.set_num_threads(1)
    X, y = eegnet_data
    # short training and a patience longer than it: a small, fast, but honest fit
    clf = EEGNetClassifier(sfreq=SFREQ, epochs=40, patience=40, seed=0)
    return clf.fit(X[:N_TRAIN], y[:N_TRAIN])


@pytest.fixture(scope="module")
def ssvep_data() -> tuple[np.ndarray, np.ndarray]:
    X, y = ssvep_like(np.random.default_rng(2))
    return preprocess(SSVEPDNNClassifier(sfreq=SFREQ).preprocessing(), X), y


def small_dnn(**params) -> SSVEPDNNClassifier:
    # the paper's architecture; 30 epochs at 1e-3 instead of 1000 at 1e-4 for test time
    defaults = dict(sfreq=SFREQ, epochs=30, lr=1e-3, batch_size=16, fine_tune_epochs=5,
                    seed=0)
    return SSVEPDNNClassifier(**{**defaults, **params})


@pytest.fixture(scope="module")
def dnn(ssvep_data) -> SSVEPDNNClassifier:
    torch.set_num_threads(1)
    X, y = ssvep_data
    return small_dnn().fit(X[:N_TRAIN], y[:N_TRAIN])


# --- export path -------------------------------------------------------------------------


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(4, 3, 5, padding=2)
        self.drop = torch.nn.Dropout(0.5)
        self.lin = torch.nn.Linear(3 * 16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.lin(self.drop(torch.relu(self.conv(x))).flatten(1)), -1)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_export_module_gives_one_self_contained_graph_with_dynamic_batch():
    torch.manual_seed(0)
    module = _Tiny().train()
    model = export_module(module, (4, 16))
    assert module.training, "export must not leave the caller's module in eval mode"
    assert [i.name for i in model.graph.input] == ["x"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 4, 16]
    assert [o.name for o in model.graph.output] == ["probabilities"]
    opsets = {o.domain: o.version for o in model.opset_import}
    assert opsets[""] == EXPORT_OPSET >= OPSET
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    # a serialised round trip keeps everything: no side files are needed
    session = _session(onnx.load_from_string(model.SerializeToString()))
    module.eval()
    for batch in (1, 5, 2):
        x = torch.randn(batch, 4, 16)
        expected = module(x).detach().numpy()
        found = session.run(None, {"x": x.numpy()})[0]
        np.testing.assert_allclose(found, expected, atol=1e-5)


def test_export_module_rejects_a_shape_with_the_batch_axis_or_non_integers():
    with pytest.raises(ValueError, match=r"positive integers without the batch.*\(0, 16\)"):
        export_module(_Tiny(), (0, 16))
    with pytest.raises(ValueError, match="found 'x'"):
        export_module(_Tiny(), "x")  # type: ignore[arg-type]


# --- learning ------------------------------------------------------------------------------


@pytest.mark.parametrize("model, data, n_classes, seed", [
    ("eegnet", "eegnet_data", 2, 5),
    pytest.param("dnn", "ssvep_data", 3, 6, marks=pytest.mark.slow),
])
def test_decodes_held_out_trials_and_only_with_real_labels(model, data, n_classes, seed,
                                                           request):
    model = request.getfixturevalue(model)
    X, y = request.getfixturevalue(data)
    held_out = (model.predict(X[N_TRAIN:]) == y[N_TRAIN:]).mean()
    assert held_out >= 0.85, f"held-out accuracy {held_out:.2f}"
    shuffled = np.random.default_rng(seed).permutation(y[:N_TRAIN])
    noise = clone(model).fit(X[:N_TRAIN], shuffled)
    chance = (noise.predict(X[N_TRAIN:]) == y[N_TRAIN:]).mean()
    assert chance <= chance_ceiling(N_TRIALS - N_TRAIN, n_classes), f"shuffled: {chance:.2f}"


def test_training_logs_each_epoch_for_the_progress_display(eegnet_data, caplog):
    X, y = eegnet_data
    with caplog.at_level("INFO", logger="bci.decoders"):
        clf = EEGNetClassifier(sfreq=SFREQ, F1=4, D=1, F2=4, epochs=3, seed=0,
                               validation_fraction=0.25).fit(X[:N_TRAIN], y[:N_TRAIN])
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("bci.decoders")]
    assert [line.split(",")[0] for line in lines] == [
        f"EEGNetClassifier: epoch {e}/3" for e in (1, 2, 3)]
    assert f"val loss {clf.history_[-1]['val_loss']:.4g}" in lines[-1]


def test_early_stopping_keeps_the_epoch_with_the_lowest_validation_loss(eegnet_data):
    X, y = eegnet_data
    # shuffled labels: validation loss stops improving soon, so patience ends training
    y_noise = np.random.default_rng(7).permutation(y[:N_TRAIN])
    clf = EEGNetClassifier(sfreq=SFREQ, F1=4, D=1, F2=4, epochs=40, patience=3,
                           validation_fraction=0.25, seed=0).fit(X[:N_TRAIN], y_noise)
    losses = [h["val_loss"] for h in clf.history_]
    assert len(losses) < 40
    assert clf.best_epoch_ == int(np.argmin(losses)) + 1
    assert len(losses) == clf.best_epoch_ + 3
    # the kept weights are the best epoch's, not the last: the split is a function of the
    # seed, so the validation loss of the returned model can be recomputed
    _, val = _stratified_split(clf._encode_labels(y_noise, N_TRAIN), 0.25,
                               np.random.default_rng(0))
    assert val.size == 20
    logits = torch.log(torch.from_numpy(clf.predict_proba(X[:N_TRAIN][val])))
    target = torch.from_numpy(clf._encode_labels(y_noise[val], val.size, known=clf.classes_))
    kept = float(torch.nn.functional.nll_loss(logits, target))
    assert kept == pytest.approx(losses[clf.best_epoch_ - 1], abs=1e-5)
    assert kept != pytest.approx(losses[-1], abs=1e-5)


# --- ONNX == torch ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["eegnet", "dnn"])
def test_onnx_graph_matches_torch_for_one_and_five_windows(which, request, tmp_path):
    clf = request.getfixturevalue(which)
    shape = clf.input_shape_
    rng = np.random.default_rng(11)
    x = (20e-6 * rng.standard_normal((5, *shape))).astype(np.float32)
    with torch.no_grad():
        clf.module_.eval()
        expected = torch.softmax(clf.module_(torch.from_numpy(x)), -1).numpy()
    np.testing.assert_allclose(clf.predict_proba(x), expected, atol=1e-6)

    model = clf.to_onnx()
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", *shape]
    spec = DecoderSpec(
        paradigm="mi" if which == "eegnet" else "ssvep", classes=list(clf.classes_),
        ch_names=CH_NAMES, sfreq=SFREQ, window=WindowSpec(mode="sliding", length=1.0,
                                                          step=0.25),
        preprocessing=clf.preprocessing(), output="probabilities", name=which,
    )
    path = tmp_path / f"{which}.onnx"
    write_spec(model, spec, path)
    decoder = OnnxDecoder(path)
    assert decoder.input_shape() == shape
    assert decoder.spec.preprocessing == clf.preprocessing()
    for i in range(2):  # batch 1, through the runtime's host
        np.testing.assert_allclose(decoder.run(x[i]), expected[i], atol=1e-4)
    raw = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(raw.run(None, {"x": x})[0], expected, atol=1e-4)
    np.testing.assert_allclose(raw.run(None, {"x": x[:1]})[0], expected[:1], atol=1e-4)


# --- SSVEP DNN second stage ----------------------------------------------------------------


def test_fine_tune_starts_from_the_global_weights_and_leaves_them_alone(dnn, ssvep_data):
    X, y = ssvep_data
    global_state = {k: v.clone() for k, v in dnn.module_.state_dict().items()}
    first_step: list[list[torch.Tensor]] = []

    def capture(optimizer, args, kwargs):
        if not first_step:
            first_step.append([p.detach().clone() for g in optimizer.param_groups
                               for p in g["params"]])

    handle = register_optimizer_step_pre_hook(capture)
    try:
        tuned = dnn.fine_tune(X[N_TRAIN:N_TRAIN + 24], y[N_TRAIN:N_TRAIN + 24])
    finally:
        handle.remove()

    # the parameters the first update sees are the global model's, all of them
    global_params = [p for g in _param_groups(dnn) for p in g]
    assert len(first_step[0]) == len(global_params)
    for before, param in zip(first_step[0], global_params, strict=True):
        assert torch.equal(before, param.detach())
    # ... and training moved them; the global model did not move
    changed = [not torch.equal(a, b) for a, b in
               zip(tuned.module_.parameters(), dnn.module_.parameters(), strict=True)]
    assert all(changed)
    for k, v in dnn.module_.state_dict().items():
        assert torch.equal(v, global_state[k]), k
    net = tuned.module_.net
    assert (net.drop1.p, net.drop2.p, net.drop3.p) == (0.6, 0.6, 0.95)
    assert (dnn.module_.net.drop1.p, dnn.module_.net.drop3.p) == (0.1, 0.95)
    assert tuned.fine_tuned_ and not dnn.fine_tuned_
    assert list(tuned.classes_) == list(dnn.classes_)
    assert len(tuned.history_) == 5  # fine_tune_epochs, full batch
    # full-batch fine-tuning on 24 windows: exactly one update per epoch
    assert tuned.best_epoch_ == 5


def _param_groups(clf):
    decay = [p for p in clf.module_.parameters() if p.ndim > 1]
    no_decay = [p for p in clf.module_.parameters() if p.ndim <= 1]
    return [decay, no_decay]


def test_fine_tune_rejects_labels_the_global_model_does_not_know(dnn, ssvep_data):
    X, y = ssvep_data
    bad = y[:6].copy()
    bad[0] = "40Hz"
    with pytest.raises(ValueError, match=r"expected labels among \['11Hz', '13Hz', '9Hz'\], "
                                         r"found \['40Hz'\]"):
        dnn.fine_tune(X[:6], bad)
    with pytest.raises(NotFittedError):
        small_dnn().fine_tune(X[:6], y[:6])


# --- reproducibility -----------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda seed: EEGNetClassifier(sfreq=SFREQ, F1=4, D=1, F2=4, epochs=3, seed=seed),
    lambda seed: small_dnn(n_filters=8, epochs=3, seed=seed),
], ids=["eegnet", "dnn"])
def test_same_seed_gives_the_same_weights(make, eegnet_data, ssvep_data):
    clf = make(0)
    X, y = eegnet_data if isinstance(clf, EEGNetClassifier) else ssvep_data
    X, y = X[:40], y[:40]
    rng_before = torch.get_rng_state()
    a = make(0).fit(X, y)
    assert torch.equal(torch.get_rng_state(), rng_before), "fit changed the global seed"
    b = make(0).fit(X, y)
    c = make(1).fit(X, y)
    for pa, pb in zip(a.module_.state_dict().values(), b.module_.state_dict().values(),
                      strict=True):
        assert torch.equal(pa, pb)
    assert not all(torch.equal(pa, pc) for pa, pc in
                   zip(a.module_.parameters(), c.module_.parameters(), strict=True))
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


# --- contract and errors -------------------------------------------------------------------


def test_decoders_follow_the_trainable_decoder_contract(eegnet, dnn):
    for clf in (eegnet, dnn):
        assert isinstance(clf, TrainableDecoder)
        assert is_classifier(clf)
        assert clf.classes_.dtype.kind == "U"
        params = clf.get_params()
        assert params["seed"] == 0 and params["sfreq"] == SFREQ
        assert clone(clf).get_params() == params
    # volts in, µV inside the network: a fixed buffer, not a trainable parameter
    assert float(eegnet.module_.scale.factor) == 1e6
    assert not any(n.startswith("scale") for n, _ in eegnet.module_.named_parameters())
    # max-norm constraints hold after training
    w = eegnet.module_.net.spatial[0].weight
    assert float(w.detach().flatten(1).norm(dim=1).max()) <= 1.0 + 1e-5
    w = eegnet.module_.net.classify.weight
    assert float(w.detach().norm(dim=1).max()) <= 0.25 + 1e-5


def test_preprocessing_declares_runtime_nodes():
    clf = EEGNetClassifier(sfreq=256.0, decimation=2, l_freq=1.0, h_freq=40.0)
    assert clf.preprocessing() == [
        {"kind": "bandpass", "l_freq": 1.0, "h_freq": 40.0},
        {"kind": "decimate", "factor": 2},
    ]
    info = Chain.from_config(clf.preprocessing()).setup(
        mne.create_info(CH_NAMES, 256.0, "eeg"))
    assert info["sfreq"] == 128.0
    with pytest.raises(ValueError, match=r"h_freq < 32 Hz .*decimation by 2.*h_freq=40"):
        EEGNetClassifier(sfreq=128.0, decimation=2).preprocessing()

    nodes = SSVEPDNNClassifier(sfreq=SFREQ).preprocessing()
    assert nodes == [{"kind": "filterbank", "bands": [[8.0, 57.6], [16.0, 57.6],
                                                      [24.0, 57.6]],
                      "order": 4, "ftype": "cheby1", "rp": 0.5}]
    assert ssvep_bands(3, 250.0) == [[8.0, 90.0], [16.0, 90.0], [24.0, 90.0]]
    with pytest.raises(ValueError, match=r"empty bands \[\[64.0, 57.6\]\]"):
        SSVEPDNNClassifier(sfreq=SFREQ, n_bands=8).preprocessing()


def test_bad_inputs_name_what_was_expected_and_found(eegnet, dnn, eegnet_data):
    X, y = eegnet_data
    with pytest.raises(ValueError, match=r"EEGNetClassifier: expected windows of shape "
                                         r"\(n_windows, n_channels, n_times\), found "
                                         r"\(4, 1, 8, 128\)"):
        eegnet.predict_proba(X[:4, None])
    with pytest.raises(ValueError, match=r"expected windows of shape \(8, 128\) \(as in fit\), "
                                         r"found \(7, 128\)"):
        eegnet.predict_proba(X[:4, :7])
    with pytest.raises(ValueError, match=r"SSVEPDNNClassifier: expected windows of shape "
                                         r"\(n_windows, n_bands, n_channels, n_times\), "
                                         r"found \(4, 8, 128\)"):
        dnn.predict_proba(X[:4])
    with pytest.raises(ValueError, match=r"expected one label per window, shape \(10,\), "
                                         r"found \(9,\)"):
        EEGNetClassifier(sfreq=SFREQ, epochs=1).fit(X[:10], y[:9])
    with pytest.raises(ValueError, match=r"expected at least 2 classes, found \['left'\]"):
        EEGNetClassifier(sfreq=SFREQ, epochs=1).fit(X[:3], ["left"] * 3)
    bad = X[:4].copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="expected finite samples, found 1 NaN/Inf"):
        eegnet.predict_proba(bad)
    with pytest.raises(ValueError, match="at least 32 samples at the model's rate, found 16"):
        EEGNetClassifier(sfreq=SFREQ, epochs=1).fit(X[:10, :, :16], y[:10])
    with pytest.raises(ValueError, match=r"expected windows with n_bands=3 sub-bands, found 2"):
        small_dnn(epochs=1).fit(np.zeros((6, 2, N_CH, N_TIMES), np.float32),
                                ["a", "b"] * 3)
    with pytest.raises(ValueError, match=r"at least 2 windows of every class, found counts "
                                         r"\{0: 5, 1: 1\}"):
        EEGNetClassifier(sfreq=SFREQ, epochs=1).fit(X[:6], ["a"] * 5 + ["b"])
    with pytest.raises(ValueError, match=r"three dropout probabilities in \[0, 1\), found "
                                         r"\(0.1, 0.95\)"):
        small_dnn(dropout=(0.1, 0.95)).fit(np.zeros((6, 3, N_CH, N_TIMES), np.float32),
                                           ["a", "b"] * 3)
    with pytest.raises(NotFittedError):
        EEGNetClassifier(sfreq=SFREQ).to_onnx()
