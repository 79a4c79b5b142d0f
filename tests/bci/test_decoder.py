"""The decoder host: ONNX models with their bci spec, numpy FBCCA, checks at start."""

from __future__ import annotations

import mne
import numpy as np
import onnx
import pytest
from bci.decoders.fbcca import FBCCA
from bci.decoders.onnx_graphs import linear_softmax_model, linear_softmax_reference

from bci.decoder import OnnxDecoder
from bci.errors import ModelError, SpecError, StreamMismatchError
from bci.pipeline import Pipeline
from bci.session import SessionConfig
from bci.spec import DecoderSpec, WindowSpec, write_spec

CH = ["C3", "Cz", "C4"]
SFREQ = 128.0


def _spec(**over) -> DecoderSpec:
    d = dict(paradigm="mi", classes=["left", "right"], ch_names=CH, sfreq=SFREQ,
             window=WindowSpec(mode="sliding", length=0.5, step=0.25),
             preprocessing=[{"kind": "bandpass", "l_freq": 8.0, "h_freq": 30.0}])
    d.update(over)
    return DecoderSpec(**d)


@pytest.fixture
def linear_model(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((2, 3, 64)).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    path = tmp_path / "linear.onnx"
    write_spec(linear_softmax_model(w, b), _spec(), path)
    return path, w, b


def test_onnx_decoder_matches_numpy_reference(linear_model):
    path, w, b = linear_model
    dec = OnnxDecoder(path, threads=1)
    assert dec.spec.classes == ["left", "right"] and dec.input_shape() == (3, 64)
    x = np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)
    np.testing.assert_allclose(dec.run(x), linear_softmax_reference(w, b, x), rtol=1e-5,
                               atol=1e-6)


def test_spec_round_trips_through_json():
    spec = _spec(extra={"accuracy": 0.8})
    assert DecoderSpec.from_json(spec.to_json()) == spec


def test_model_without_spec_is_refused(tmp_path):
    path = tmp_path / "bare.onnx"
    onnx.save(linear_softmax_model(np.zeros((2, 3, 64)), np.zeros(2)), str(path))
    with pytest.raises(ModelError, match=r"no 'bci' entry in its metadata_props"):
        OnnxDecoder(path)


def test_corrupt_and_truncated_models_are_refused(tmp_path, linear_model):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"this is not a model")
    with pytest.raises(ModelError, match=r"cannot load decoder .*junk.onnx"):
        OnnxDecoder(path)
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(linear_model[0].read_bytes()[:300])
    with pytest.raises(ModelError, match=r"cannot load decoder .*cut.onnx"):
        OnnxDecoder(cut)
    with pytest.raises(ModelError, match="does not exist"):
        OnnxDecoder(tmp_path / "missing.onnx")


def test_malformed_spec_json_names_the_key(tmp_path):
    model = linear_softmax_model(np.zeros((2, 3, 64)), np.zeros(2))
    entry = model.metadata_props.add()
    entry.key, entry.value = "bci", '{"paradigm": "mi", "classes": ["a"], "ch_names": ["C3"]}'
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match=r"missing keys \['sfreq', 'window'\]"):
        OnnxDecoder(path)
    with pytest.raises(SpecError, match=r"window.mode: expected one of"):
        _spec(window=WindowSpec(mode="rolling", length=1, step=1)).validate()
    with pytest.raises(SpecError, match="not valid JSON"):
        DecoderSpec.from_json("{nope")


def _session(path, **window) -> SessionConfig:
    return SessionConfig.from_dict({"decoder": {"path": str(path)},
                                    "window": window, "outputs": {"lsl": False}})


def test_pipeline_checks_rate_channels_and_window(linear_model):
    path = linear_model[0]
    clock = lambda: 0.0  # noqa: E731
    good = mne.create_info(["Fz", "C4", "Cz", "C3"], SFREQ, "eeg")
    pipe = Pipeline(_session(path), good, clock=clock)
    assert pipe.out_info["ch_names"] == CH  # picked and reordered by name
    with pytest.raises(StreamMismatchError, match=r"expects a stream at 128 Hz, found 256 Hz"):
        Pipeline(_session(path), mne.create_info(CH, 256.0, "eeg"), clock=clock)
    with pytest.raises(StreamMismatchError, match=r"missing \['C4'\] from the stream's 2"):
        Pipeline(_session(path), mne.create_info(["C3", "Cz"], SFREQ, "eeg"), clock=clock)
    with pytest.raises(StreamMismatchError, match=r"takes windows of shape \(3, 64\).*\(3, 128\)"):
        Pipeline(_session(path, length=1.0), good, clock=clock)


def test_fbcca_finds_the_stimulation_frequency():
    sfreq, n = 256.0, 512
    t = np.arange(n) / sfreq
    rng = np.random.default_rng(0)
    freqs = [8.0, 10.0, 12.0, 15.0]
    est = FBCCA(freqs, sfreq=sfreq, n_harmonics=3).fit(n_times=n, n_bands=1)
    hits = 0
    for k, f in enumerate(freqs * 5):
        x = np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) * rng.uniform(0.5, 1, (8, 1))
        x = x + 2.0 * rng.standard_normal((8, n))
        hits += est.predict(x[None, None])[0] == k % 4
        p = est.predict_proba(x[None])
        assert p.shape == (4,) and np.isclose(p.sum(), 1)
    assert hits >= 18  # well above the 25 % chance level
    with pytest.raises(ValueError, match=r"set up for windows of 1 bands × 512 samples"):
        est.decision_function(np.zeros((2, 8, 512)))
