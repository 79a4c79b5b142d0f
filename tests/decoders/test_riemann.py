"""Covariance decoders (bci.decoders.riemann): the numpy forward pass the runtime serves
equals pyriemann's, `bci train` writes one .npz file, and `bci evaluate` scores exactly what
`bci replay` serves from it."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import zipfile

import numpy as np
import pytest
from bci.decoders.riemann import (
    RiemannFgMDM,
    RiemannMDM,
    TangentSpaceLR,
    TangentSpaceSVM,
    covariances,
)

from bci.cli import main
from bci.datasets.synthetic import make_recording
from bci.decoder import NpzDecoder, open_model
from bci.errors import ConfigError, ModelError
from bci.session import SessionConfig

pyriemann = pytest.importorskip("pyriemann")

SESSION = """
[window]
mode = "epoch"
tmin = 0.5
tmax = 2.5
events = { left = "left", right = "right" }

[training]
paradigm = "mi"
"""

CLASSES = {RiemannMDM: "mdm", RiemannFgMDM: "fgmdm", TangentSpaceLR: "ts-lr",
           TangentSpaceSVM: "ts-svm"}


def _windows(n_classes: int, seed: int, n_per_class: int = 12, n_ch: int = 6,
             n_times: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Windows whose classes differ in the power of one source each (one mixing)."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(0).standard_normal((n_ch, n_ch)) + 2 * np.eye(n_ch)
    X, y = [], []
    for k in range(n_classes):
        for _ in range(n_per_class):
            s = rng.standard_normal((n_ch, n_times))
            s[k] *= 2.0
            X.append(mixing @ s)
            y.append(f"c{k}")
    return np.stack(X) * 1e-5, np.asarray(y)


def _pyriemann_proba(model, X: np.ndarray, estimator) -> np.ndarray:
    """The same fitted classifier, run by pyriemann/scikit-learn on pyriemann's covariances."""
    from pyriemann.estimation import Covariances, Shrinkage
    from scipy.special import softmax

    X = X.reshape(X.shape[0], -1, X.shape[-1]).astype(np.float64)
    if isinstance(estimator, float):
        C = Shrinkage(shrinkage=estimator).fit_transform(Covariances("scm").fit_transform(X))
    else:
        C = Covariances(estimator).fit_transform(X)
    if isinstance(model, TangentSpaceSVM):
        d = model.pipeline_.decision_function(C)
        return softmax(np.c_[-d, d] / 2 if d.ndim == 1 else d, axis=1)
    return model.pipeline_.predict_proba(C)


@pytest.mark.parametrize("cls", list(CLASSES))
@pytest.mark.parametrize("n_classes", [2, 3])
def test_numpy_forward_pass_equals_pyriemann(cls, n_classes):
    X, y = _windows(n_classes, seed=n_classes)
    X_test, _ = _windows(n_classes, seed=10 + n_classes)
    for estimator in ("lwf", "oas", "scm", 0.1):
        model = cls(sfreq=250.0, estimator=estimator).fit(X, y)
        ours = model.predict_proba(X_test)
        np.testing.assert_allclose(ours, _pyriemann_proba(model, X_test, estimator),
                                   rtol=0, atol=1e-8)
        # and the served decoder (one window at a time) gives the same
        served = np.stack([model.model_.run(w) for w in X_test.astype(np.float32)])
        np.testing.assert_allclose(served, model.predict_proba(X_test.astype(np.float32)),
                                   rtol=0, atol=1e-12)
    assert np.mean(model.predict(X_test) == _windows(n_classes, 10 + n_classes)[1]) > 0.8


def test_covariance_estimators_equal_pyriemann():
    from pyriemann.estimation import Covariances

    X, _ = _windows(2, seed=3)
    for est in ("scm", "lwf", "oas"):
        np.testing.assert_allclose(covariances(X, est), Covariances(est).fit_transform(X),
                                   rtol=1e-10, atol=0)
    with pytest.raises(ValueError, match=r"expected one of \('scm', 'lwf', 'oas'\)"):
        TangentSpaceLR(sfreq=250.0, estimator="mcd").fit(*_windows(2, 0))


def test_filter_bank_covariances_stack_the_bands():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3, 4, 250))  # (windows, bands, channels, times)
    X[:10, 1, 0] *= 3
    y = np.array(["a"] * 10 + ["b"] * 10)
    model = RiemannMDM(sfreq=250.0, bands=[[8, 10], [10, 12], [12, 14]]).fit(X, y)
    assert model.model_.n_channels == 12 and model.model_.input_shape() == (3, 4, None)
    np.testing.assert_allclose(model.predict_proba(X), _pyriemann_proba(model, X, "lwf"),
                               atol=1e-8)
    assert np.mean(model.predict(X) == y) == 1.0


@pytest.fixture(scope="module")
def mi_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("mi")
    (d / "mi.toml").write_text(SESSION)
    paths = []
    for seed, name in ((11, "a"), (12, "b")):
        rec = make_recording(150.0, paradigm="mi", n_channels=16, seed=seed, erd_depth=0.8)
        rec.to_raw().save(d / f"{name}_raw.fif", verbose="error")
        paths.append(d / f"{name}_raw.fif")
    return d / "mi.toml", *paths


@pytest.mark.parametrize("decoder, options", [
    ("ts-lr", ""),
    ("ts-lr", 'recenter = "online"\nrecenter_warmup = 4\nrecenter_forget = 0.1\n'),
    ("mdm", 'estimator = "oas"\n'),
    ("fgmdm", ""),
    ("ts-svm", "estimator = 0.05\n"),
])
def test_evaluate_scores_what_replay_serves_from_the_trained_file(mi_files, tmp_path, capsys,
                                                                  decoder, options):
    session, a, b = mi_files
    session_file = tmp_path / "s.toml"
    session_file.write_text(session.read_text()
                            + (f"\n[training.decoders.{decoder}]\n{options}" if options else ""))
    model = tmp_path / "model.npz"
    assert main(["train", str(session_file), "--decoder", decoder, "--train", str(a),
                 "--output", str(model), "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["output"] == str(model) and model.is_file()
    with zipfile.ZipFile(model) as z:  # one documented file, no pickle
        assert {"bci.npy", "kind.npy", "classes.npy"} <= set(z.namelist())
    with np.load(model, allow_pickle=False) as npz:
        assert str(npz["kind"]) == decoder
        spec = json.loads(str(npz["bci"]))
    assert spec["extra"]["decoder"] == decoder and spec["preprocessing"][0]["kind"] == "bandpass"

    preds = tmp_path / "pred.jsonl"
    assert main(["evaluate", str(session_file), "--decoder", decoder, "--train", str(a),
                 "--test", str(b), "--predictions", str(preds), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["accuracy"] > 0.8  # planted ERD, another recording held out

    out = tmp_path / "replay.jsonl"
    assert main(["replay", str(session_file), "--model", str(model), "--input", str(b),
                 "--output", str(out), "--json"]) == 0
    replayed = [json.loads(x) for x in out.read_text().splitlines()]
    expected = [json.loads(x) for x in preds.read_text().splitlines()]
    assert [r["stop"] for r in replayed] == [e["stop"] for e in expected]
    assert len(expected) == figures["n_windows"]
    for r, e in zip(replayed, expected, strict=True):
        assert r["label"] == e["label"] and r["true_label"] == e["true_label"]
        np.testing.assert_allclose([r["probabilities"][c] for c in ("left", "right")],
                                   [e["probabilities"][c] for c in ("left", "right")],
                                   atol=1e-4)


def test_train_refuses_an_onnx_output_for_a_covariance_decoder(mi_files, tmp_path, capsys):
    session, a, _ = mi_files
    assert main(["train", str(session), "--decoder", "ts-lr", "--train", str(a),
                 "--output", str(tmp_path / "m.onnx")]) == 2
    assert "expected a path ending in .npz, found" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained_npz(tmp_path_factory):
    X, y = _windows(2, seed=1)
    model = TangentSpaceLR(sfreq=250.0, recenter="online").fit(X, y)
    from bci.spec import DecoderSpec, WindowSpec

    spec = DecoderSpec(paradigm="mi", classes=["c0", "c1"],
                       ch_names=[f"C{i}" for i in range(6)], sfreq=250.0,
                       window=WindowSpec(mode="epoch", tmin=0.0, tmax=0.8),
                       preprocessing=model.preprocessing(), name="ts-lr",
                       extra={"decoder": "ts-lr"})
    path = tmp_path_factory.mktemp("npz") / "m.npz"
    model.save(path, spec)
    return path, model, X


def test_served_decoder_needs_no_pyriemann(trained_npz):
    path, model, X = trained_npz
    np.save(path.with_suffix(".x.npy"), X[:5].astype(np.float32))
    code = ("import json, sys, numpy as np\n"
            "from bci.decoder import open_model\n"
            f"d = open_model({str(path)!r})\n"
            f"X = np.load({str(path.with_suffix('.x.npy'))!r})\n"
            "print(json.dumps([d.run(w).tolist() for w in X]))\n"
            "print('pyriemann' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[1] == "False"
    served = np.array(json.loads(out[0]))
    model.model_.reset()
    np.testing.assert_allclose(served, [model.model_.run(w) for w in X[:5].astype(np.float32)],
                               atol=1e-12)


def test_malformed_model_files_are_refused_naming_file_expected_and_found(trained_npz,
                                                                          tmp_path):
    path, _, _ = trained_npz
    data = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=rf"{truncated}: expected an \.npz model file "
                                         r"written by bci train, found"):
        open_model(truncated)
    text = tmp_path / "text.npz"
    text.write_text("not a model")
    with pytest.raises(ModelError, match=r"text\.npz: expected an \.npz model file"):
        NpzDecoder(text)

    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    broken = tmp_path / "broken.npz"
    np.savez(broken, **{k: v for k, v in arrays.items() if k != "coef"})
    with pytest.raises(ModelError, match=r"broken.npz \(ts-lr\): missing array 'coef'"):
        open_model(broken)
    np.savez(broken, **{**arrays, "coef": arrays["coef"][:, :5]})
    with pytest.raises(ModelError, match=r"'coef': expected shape \(1, 21\), found \(1, 5\)"):
        open_model(broken)
    np.savez(broken, **{k: v for k, v in arrays.items() if k != "bci"})
    with pytest.raises(ModelError, match="expected a 'bci' entry holding the spec JSON"):
        open_model(broken)
    spec = json.loads(str(arrays["bci"]))
    spec["extra"]["decoder"] = "csp-lda"
    np.savez(broken, **{**arrays, "bci": np.array(json.dumps(spec))})
    with pytest.raises(ModelError, match="names decoder 'csp-lda'; expected one served from"):
        open_model(broken)
    np.savez(broken, **{**arrays, "recenter": np.array("session")})
    with pytest.raises(ModelError, match=r"recenter = 'session' .* expected 'online' or 'none'"):
        open_model(broken)
    # [decoder] recenter overrides what the file says
    assert open_model(broken, options={"recenter": "online"}).model.recenter == "online"
    with pytest.raises(ModelError, match="apply to covariance decoders"):
        open_model(tmp_path / "m.onnx", options={"recenter": "online"})


def test_session_file_recenter_keys_are_validated(tmp_path):
    base = {"window": {"mode": "epoch", "tmin": 0.0, "tmax": 1.0}}
    ok = SessionConfig.from_dict({**base, "decoder": {
        "path": "m.npz", "recenter": "online", "recenter_warmup": 10,
        "recenter_forget": 0.05}})
    assert ok.decoder.options == {"recenter": "online", "recenter_warmup": 10,
                                  "recenter_forget": 0.05}
    assert ok.with_model(tmp_path / "other.npz").decoder.options == ok.decoder.options
    for table, message in (
        ({"recenter": "always"}, r"decoder.recenter: expected one of"),
        ({"recenter_forget": 0.0}, r"decoder.recenter_forget: expected"),
        ({"recenter_forget": 1.5}, r"decoder.recenter_forget: expected"),
        ({"recenter_warmup": -1}, r"decoder.recenter_warmup: expected"),
        ({"recenter": "session"}, r"decoder.recenter: expected one of"),
    ):
        with pytest.raises(ConfigError, match=message):
            SessionConfig.from_dict({**base, "decoder": {"path": "m.npz", **table}})
    with pytest.raises(ConfigError, match=r"apply to covariance decoders served from an "
                                          r"\.npz model file, found path 'm.onnx'"):
        SessionConfig.from_dict({**base, "decoder": {"path": "m.onnx", "recenter": "online"}})


def test_evaluate_uses_the_recentering_the_session_serves(tmp_path):
    from bci.decoders.training import decoder_options, make_decoder

    from bci.errors import TrainingError

    text = SESSION + '\n[decoder]\npath = "m.npz"\nrecenter = "online"\nrecenter_warmup = 3\n'
    config = SessionConfig.from_dict(tomllib.loads(text))
    assert decoder_options("ts-lr", config) == {"recenter": "online", "recenter_warmup": 3}
    est = make_decoder("ts-lr", config, 160.0)
    assert (est.recenter, est.recenter_warmup) == ("online", 3)
    contradicting = text + '\n[training.decoders.ts-lr]\nrecenter = "none"\n'
    config = SessionConfig.from_dict(tomllib.loads(contradicting))
    with pytest.raises(TrainingError, match=r"training.decoders.ts-lr.recenter: 'none' "
                                            r"contradicts decoder.recenter = 'online'"):
        decoder_options("ts-lr", config)
