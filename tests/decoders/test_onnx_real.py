"""Every trainable decoder's ONNX file gives its reference's output on real recordings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bci.decoders.training import _prepare, load_windows, train

from bci.decoder import OnnxDecoder
from bci.session import SessionConfig

pytest.importorskip("torch", reason="the deep decoders need the train extra (torch)")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# few epochs: this compares the exported graph with its reference, not accuracy
QUICK = {"ssvep-dnn": {"epochs": 3, "fine_tune_epochs": 1}, "eegnet": {"epochs": 3},
         "rl-eegnet": {"n_epochs": 2}}


def _files(shared_data, paradigm):
    if paradigm == "ssvep":
        d = shared_data / "ssvep-exo" / "subject03"
        return EXAMPLES / "ssvep-exo.toml", d / "session1_raw.fif", d / "session2_raw.fif"
    d = shared_data / "MNE-eegbci-data" / "files" / "eegmmidb" / "1.0.0" / "S001"
    return EXAMPLES / "eegmmidb-mi-feet.toml", d / "S001R06.edf", d / "S001R10.edf"


@pytest.mark.parametrize(("name", "paradigm"), [
    ("trca", "ssvep"), ("etrca", "ssvep"),
    pytest.param("ssvep-dnn", "ssvep", marks=pytest.mark.slow),
    ("csp-lda", "mi"), ("fbcsp", "mi"),
    pytest.param("eegnet", "mi", marks=pytest.mark.slow),
    pytest.param("rl-eegnet", "mi", marks=pytest.mark.slow),
])
def test_onnx_matches_reference_on_real_windows(name, paradigm, shared_data, tmp_path):
    import onnxruntime as ort
    import torch

    torch.set_num_threads(1)
    session, train_file, test_file = _files(shared_data, paradigm)
    config = SessionConfig.load(session)
    config.training.decoders[name] = {**config.training.decoders.get(name, {}),
                                      **QUICK.get(name, {})}
    model = tmp_path / f"{name}.onnx"
    train(config, name, [train_file], output=model)

    estimator, spec, _ = _prepare(name, config, train_file)
    X_train = load_windows(config, spec, [train_file])
    estimator.fit(X_train.X, X_train.y)  # deterministic given the seed: the same model
    test = load_windows(config, spec, [test_file])
    expected = estimator.predict_proba(test.X)

    decoder = OnnxDecoder(model)
    assert decoder.spec.classes == [str(c) for c in estimator.classes_]
    one_by_one = np.stack([decoder.run(x) for x in test.X])  # batch 1, as live
    np.testing.assert_allclose(one_by_one, expected, atol=1e-4)
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    batched = sess.run(None, {sess.get_inputs()[0].name: test.X[:5]})[0]  # dynamic batch
    np.testing.assert_allclose(batched, expected[:5], atol=1e-4)
