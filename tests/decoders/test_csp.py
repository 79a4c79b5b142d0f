"""CSP, CSP+LDA and FBCSP: planted class structure is learned from training windows only,
uninformative labels give chance, and the exported ONNX graphs equal predict_proba."""

from __future__ import annotations

from functools import cache

import mne
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from bci.decoders.base import OPSET
from bci.decoders.csp import CSP, append_csp
from bci.decoders.csp_lda import CSPLDA, FBCSP
from onnx import TensorProto, helper
from scipy import signal
from sklearn.base import clone
from sklearn.model_selection import train_test_split

import bci.filters  # noqa: F401  (registers the filter nodes the decoders' chains name)
from bci.chain import Chain
from bci.chunk import Chunk
from bci.decoder import OnnxDecoder
from bci.spec import DecoderSpec, WindowSpec, write_spec

SFREQ = 128.0
N_CHANNELS = 8
N_TIMES = 256  # 2 s windows
TRIAL = 3.0  # s per trial in the synthetic recording
RHYTHM = (9.0, 11.0)  # Hz, the band whose power carries the class


def recording(n_classes: int, n_per_class: int, *, gain: float = 2.0, seed: int = 0):
    """A continuous recording in volts whose class lives in a mixed 9–11 Hz rhythm.

    Each channel of ``N_CHANNELS`` latent sources holds an independent 9–11 Hz rhythm;
    during a trial of class ``k``, source ``k``'s amplitude is multiplied by ``gain``. A
    fixed random matrix mixes the sources into the channels, white sensor noise (all
    bands) is added, and each trial has its own overall gain (log-normal) that carries
    no class information.

    Returns
    -------
    data : ndarray, shape (N_CHANNELS, n_samples), float32
    onsets : ndarray of int, shape (n_trials,)
        Window starts, 0.5 s into each trial.
    labels : ndarray of str, shape (n_trials,)
    mixing : ndarray, shape (N_CHANNELS, N_CHANNELS)
        Column ``k`` is the scalp map of source ``k``.
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat([f"class{k}" for k in range(n_classes)], n_per_class))
    n_trial = int(TRIAL * SFREQ)
    n = labels.size * n_trial
    sos = signal.butter(4, RHYTHM, "bandpass", fs=SFREQ, output="sos")
    rhythm = signal.sosfiltfilt(sos, rng.standard_normal((N_CHANNELS, n)), axis=-1)
    rhythm /= rhythm.std(axis=1, keepdims=True)
    amp = np.ones((N_CHANNELS, labels.size))
    for k in range(n_classes):
        amp[k, labels == f"class{k}"] = gain
    mixing = rng.standard_normal((N_CHANNELS, N_CHANNELS))
    trial_gain = np.repeat(rng.lognormal(0.0, 0.3, labels.size), n_trial)
    data = mixing @ (rhythm * np.repeat(amp, n_trial, axis=1))
    data = (data + rng.standard_normal((N_CHANNELS, n))) * trial_gain
    onsets = np.arange(labels.size) * n_trial + int(0.5 * SFREQ)
    return (data * 1e-5).astype(np.float32), onsets, labels, mixing


def windows(preprocessing: list[dict], rec) -> tuple[np.ndarray, np.ndarray]:
    """Run a decoder's declared preprocessing with the live nodes, then cut windows."""
    data, onsets, labels, _ = rec
    chain = Chain.from_config(preprocessing)
    chain.setup(mne.create_info(N_CHANNELS, SFREQ, "eeg"))
    out = chain.process(Chunk(data, np.arange(data.shape[1]) / SFREQ)).data
    return np.stack([out[..., o:o + N_TIMES] for o in onsets]), labels


def uninformative(y: np.ndarray, seed: int) -> np.ndarray:
    """Labels independent of ``y``: each true class gets every label equally often.

    A plain permutation keeps a chance correlation with the truth, and with a strong
    planted effect the classifier follows it far above or below chance.
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    out = np.empty_like(y)
    for c in classes:
        idx = np.flatnonzero(y == c)
        out[idx] = rng.permutation(np.resize(classes, idx.size))
    return out


@cache
def split(kind: str, n_classes: int):
    """Held-out split of filtered windows for one decoder kind (cached across tests)."""
    est = CSPLDA(sfreq=SFREQ) if kind == "csplda" else FBCSP(sfreq=SFREQ)
    X, y = windows(est.preprocessing(), recording(n_classes, 50, seed=10 * n_classes))
    return train_test_split(X, y, test_size=0.5, stratify=y, random_state=0)


@cache
def fitted(kind: str, n_classes: int):
    Xtr, _, ytr, _ = split(kind, n_classes)
    est = CSPLDA(sfreq=SFREQ) if kind == "csplda" else FBCSP(sfreq=SFREQ)
    return est.fit(Xtr, ytr)


CASES = [(kind, k) for kind in ("csplda", "fbcsp") for k in (2, 3, 4)]


# ---------------------------------------------------------------------------- CSP


def test_binary_csp_filters_separate_class_variance():
    X, y = windows([{"kind": "bandpass", "l_freq": 8.0, "h_freq": 30.0}],
                   recording(2, 40, seed=1))
    csp = CSP(4, transform_into="csp_space").fit(X, y)
    z = csp.transform(X)
    assert z.shape == (80, 4, N_TIMES) and z.dtype == np.float32
    np.testing.assert_allclose(z, np.matmul(csp.filters_, X.astype(np.float64)),
                               rtol=1e-5, atol=1e-12)
    var = z.astype(np.float64).var(axis=-1)
    ratio = var[y == "class0"].mean(axis=0) / var[y == "class1"].mean(axis=0)
    # rows run from most class0-dominant to most class1-dominant
    assert ratio[0] > 2.0 and ratio[-1] < 0.5, ratio
    assert np.all(np.diff(csp.eigenvalues_) < 0)
    logvar = csp.set_params(transform_into="log_var").transform(X)
    assert logvar.shape == (80, 4)
    # relative variances: the exponentiated features of a window sum to one
    np.testing.assert_allclose(np.exp(logvar).sum(axis=1), 1.0, rtol=1e-9)


def test_ovr_csp_gives_a_block_per_class_that_recovers_its_source():
    rec = recording(4, 40, seed=2)
    X, y = windows([{"kind": "bandpass", "l_freq": 8.0, "h_freq": 30.0}], rec)
    csp = CSP(n_components=4, multiclass="ovr", transform_into="csp_space").fit(X, y)
    assert csp.filters_.shape == csp.patterns_.shape == (16, N_CHANNELS)
    assert list(csp.classes_) == ["class0", "class1", "class2", "class3"]
    var = csp.transform(X).astype(np.float64).var(axis=-1)
    mixing = rec[3]
    for k in range(4):
        top = 4 * k  # first (most discriminative) filter of class k's block
        in_k = var[y == f"class{k}", top].mean() / var[y != f"class{k}", top].mean()
        assert in_k > 2.0, (k, in_k)
        # its pattern is the scalp map of the source that class k modulates
        corr = np.corrcoef(csp.patterns_[top], mixing[:, k])[0, 1]
        assert abs(corr) > 0.95, (k, corr)


def test_rank_deficient_windows_need_shrinkage():
    X, y = windows([{"kind": "bandpass", "l_freq": 8.0, "h_freq": 30.0}],
                   recording(2, 30, seed=3))
    X = X - X.mean(axis=1, keepdims=True)  # average reference: rank n_channels - 1
    with pytest.raises(ValueError, match=r"singular .*set reg"):
        CSP(4).fit(X, y)
    feats = CSP(4, reg=0.05).fit(X, y).transform(X)
    assert np.isfinite(feats).all()


def test_csp_rejects_bad_parameters_and_channel_mismatch():
    X, y = windows([{"kind": "bandpass", "l_freq": 8.0, "h_freq": 30.0}],
                   recording(2, 20, seed=4))
    with pytest.raises(ValueError, match=r"n_components must be an integer from 1 to .*\(8\)"):
        CSP(9).fit(X, y)
    with pytest.raises(ValueError, match="multiclass must be 'ovr'"):
        CSP(4, multiclass="ovo").fit(X, y)
    csp = CSP(4).fit(X, y)
    with pytest.raises(ValueError, match=r"fitted on windows of 8 channels, found 6"):
        csp.transform(X[:, :6])


# -------------------------------------------------------------- held-out behaviour


@pytest.mark.parametrize(("kind", "n_classes"), CASES)
def test_planted_structure_is_decoded_on_held_out_trials(kind, n_classes):
    _, Xte, _, yte = split(kind, n_classes)
    est = fitted(kind, n_classes)
    assert list(est.classes_) == [f"class{k}" for k in range(n_classes)]
    acc = np.mean(est.predict(Xte) == yte)
    assert acc > 0.8, acc  # chance is 1 / n_classes
    proba = est.predict_proba(Xte)
    assert proba.shape == (len(yte), n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize(("kind", "n_classes"), CASES)
def test_uninformative_training_labels_give_chance(kind, n_classes):
    Xtr, Xte, ytr, yte = split(kind, n_classes)
    est = fitted(kind, n_classes)
    # a classifier fitted on noise labels still splits the planted clusters, just with
    # a random cluster-to-label map, so one draw lands far above or below chance; the
    # mean over draws is what must sit at chance (FBCSP gets fewer: its MI step is slow)
    n_draws = 12 if kind == "csplda" else 4
    accs = [np.mean(clone(est).fit(Xtr, uninformative(ytr, s)).predict(Xte) == yte)
            for s in range(n_draws)]
    assert abs(np.mean(accs) - 1 / n_classes) < 0.12, accs


def test_fbcsp_selects_features_from_the_planted_band():
    est = fitted("fbcsp", 3)
    n_filters = est.csps_[0].filters_.shape[0]
    bands = np.asarray(est.bands, float)[est.selected_ // n_filters]
    assert est.selected_.size == 8
    # the top feature's band holds the rhythm; every kept one lies near it (the
    # order-4 Butterworth neighbours leak 9–11 Hz), none in the noise-only bands
    best = bands[np.argmax(est.mutual_info_[est.selected_])]
    assert best[0] <= RHYTHM[0] and RHYTHM[1] <= best[1], best
    assert np.all(bands[:, 0] < 20.0), bands


# ----------------------------------------------------------------------- ONNX


def _session(model) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(("kind", "n_classes"), [("csplda", 2), ("csplda", 4),
                                                 ("fbcsp", 2), ("fbcsp", 3)])
def test_onnx_graph_equals_predict_proba(kind, n_classes, tmp_path):
    _, Xte, _, _ = split(kind, n_classes)
    est = fitted(kind, n_classes)
    model = est.to_onnx()
    sess = _session(model)
    (inp,) = sess.get_inputs()
    assert inp.name == "x" and inp.shape == ["batch", *est.window_shape_]
    rng = np.random.default_rng(5)
    noise = (rng.standard_normal((5, *est.window_shape_)) * 1e-5).astype(np.float32)
    for batch in (Xte[:1], Xte[:5], noise[:1], noise):
        out = sess.run(None, {"x": batch})[0]
        assert out.shape == (batch.shape[0], n_classes)
        np.testing.assert_allclose(out, est.predict_proba(batch), atol=1e-4, rtol=0)

    spec = DecoderSpec(
        paradigm="mi", classes=[str(c) for c in est.classes_],
        ch_names=[f"EEG{i}" for i in range(N_CHANNELS)], sfreq=SFREQ,
        window=WindowSpec(mode="epoch", tmin=0.0, tmax=N_TIMES / SFREQ),
        preprocessing=est.preprocessing(), name=type(est).__name__,
    )
    path = tmp_path / f"{kind}.onnx"
    write_spec(model, spec, path)
    dec = OnnxDecoder(path)
    assert dec.input_shape() == est.window_shape_
    assert dec.spec.classes == list(est.classes_)
    assert dec.spec.preprocessing == est.preprocessing()
    np.testing.assert_allclose(dec.run(Xte[3]), est.predict_proba(Xte[3:4])[0], atol=1e-4)


@pytest.mark.parametrize("transform_into", ["csp_space", "log_var"])
def test_append_csp_float32_graph_equals_transform(transform_into):
    """The float32 projection other decoders (RL-EEGNet) put in front of their layers."""
    X, y = windows([{"kind": "bandpass", "l_freq": 8.0, "h_freq": 30.0}],
                   recording(4, 10, seed=6))
    csp = CSP(4, transform_into=transform_into).fit(X, y)
    nodes, inits = [], []
    out = append_csp(nodes, inits, csp.filters_, transform_into=transform_into)
    out_shape = ["batch", 16, N_TIMES] if transform_into == "csp_space" else ["batch", 16]
    graph = helper.make_graph(
        nodes, "csp", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                     ["batch", N_CHANNELS, N_TIMES])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    got = _session(model).run(None, {"x": X[:5]})[0]
    expected = csp.transform(X[:5])
    assert got.dtype == np.float32 and got.shape == expected.shape
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, atol=1e-5 * scale, rtol=0)


def test_flat_window_gives_finite_probabilities():
    """The runtime zeroes non-finite samples; an all-zero window must not yield NaN."""
    est = fitted("csplda", 2)
    flat = np.zeros((1, *est.window_shape_), np.float32)
    out = _session(est.to_onnx()).run(None, {"x": flat})[0]
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, est.predict_proba(flat), atol=1e-4)


# -------------------------------------------------------------- interface, errors


def test_hyperparameters_are_keyword_only_and_clonable():
    with pytest.raises(TypeError):
        CSPLDA(128.0)  # type: ignore[misc]
    est = clone(CSPLDA(sfreq=SFREQ, l_freq=7.0, reg=0.1))
    assert est.get_params()["l_freq"] == 7.0 and est.get_params()["reg"] == 0.1
    assert FBCSP(sfreq=SFREQ, bands=[(8, 12)]).preprocessing() == [
        {"kind": "filterbank", "bands": [[8.0, 12.0]], "order": 4, "ftype": "butter"}]
    assert CSPLDA(sfreq=SFREQ).preprocessing() == [
        {"kind": "bandpass", "l_freq": 8.0, "h_freq": 30.0, "order": 4}]
    with pytest.raises(ValueError, match=r"below|Nyquist \(32 Hz\)"):
        CSPLDA(sfreq=64.0, h_freq=40.0).preprocessing()


def test_bad_inputs_are_refused_with_expected_and_found():
    Xtr, _, ytr, _ = split("csplda", 2)
    Xfb, _, yfb, _ = split("fbcsp", 2)
    with pytest.raises(ValueError, match=r"expected windows of shape \(n_windows, n_channels, "
                                         r"n_times\), found \(8, 256\)"):
        CSPLDA(sfreq=SFREQ).fit(Xtr[0], ytr)
    with pytest.raises(ValueError, match=r"\(n_windows, n_bands, n_channels, n_times\), "
                                         r"found \(50, 8, 256\)"):
        FBCSP(sfreq=SFREQ).fit(Xtr, ytr)
    bad = Xtr.copy()
    bad[3, 2, 10] = np.nan
    with pytest.raises(ValueError, match=r"expected finite samples, found 1 NaN/Inf"):
        CSPLDA(sfreq=SFREQ).fit(bad, ytr)
    with pytest.raises(ValueError, match=r"expected finite samples"):
        fitted("csplda", 2).predict_proba(bad)
    one = np.full(ytr.shape, "class0")
    with pytest.raises(ValueError, match=r"expected at least 2 classes, found 1 \(\['class0'\]\)"):
        CSPLDA(sfreq=SFREQ).fit(Xtr, one)
    with pytest.raises(ValueError, match=r"expected one label per window, shape \(50,\), "
                                         r"found \(49,\)"):
        CSPLDA(sfreq=SFREQ).fit(Xtr, ytr[:-1])
    with pytest.raises(ValueError, match=r"fitted on windows of \(n_channels,\) \(8,\), "
                                         r"found \(6,\)"):
        fitted("csplda", 2).predict_proba(Xtr[:, :6])
    with pytest.raises(ValueError, match=r"expected 9 bands .*found 4"):
        FBCSP(sfreq=SFREQ).fit(Xfb[:, :4], yfb)
    with pytest.raises(ValueError, match=r"fitted on windows of \(n_bands, n_channels\) "
                                         r"\(9, 8\), found \(9, 5\)"):
        fitted("fbcsp", 2).predict_proba(Xfb[:, :, :5])
