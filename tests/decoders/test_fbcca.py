"""One FBCCA: `bci evaluate --decoder fbcca` scores the decoder `bci run`/`bci replay` serve."""

from __future__ import annotations

import json
from pathlib import Path

import mne
import numpy as np
import pytest
from bci.decoders.fbcca import FBCCA, N_HARMONICS, FBCCAClassifier
from bci.decoders.training import evaluate, make_decoder

from bci.cli import main
from bci.decoder import NumpyDecoder, load_decoder
from bci.errors import ConfigError, TrainingError
from bci.session import DecoderConfig, SessionConfig
from bci.spec import WindowSpec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ssvep-exo-fbcca.toml"
FREQS = {"13Hz": 13.0, "21Hz": 21.0, "17Hz": 17.0}


def _served(options: dict, info: mne.Info, window: WindowSpec) -> NumpyDecoder:
    return load_decoder(DecoderConfig("fbcca", options=options), info=info,
                        window=lambda: window)


def test_runtime_and_evaluation_build_the_same_estimator_from_the_same_options():
    info = mne.create_info(["Oz", "O1", "O2", "Pz", "EOG"], 256.0, ["eeg"] * 4 + ["eog"])
    window = WindowSpec(mode="epoch", tmin=2.0, tmax=4.0)
    # a session that serves FBCCA with nothing but its frequencies and labels
    config = SessionConfig.from_dict({
        "window": {"mode": "epoch", "tmin": 2.0, "tmax": 4.0,
                   "events": {"2": "13Hz", "3": "21Hz", "4": "17Hz"}},
        "decoder": {"kind": "fbcca", "frequencies": list(FREQS.values()),
                    "classes": list(FREQS)},
    })
    served = load_decoder(config.decoder, info=info, window=lambda: window)
    evaluated = make_decoder("fbcca", config, 256.0)
    assert isinstance(served.estimator, FBCCAClassifier)
    assert served.estimator.get_params() == evaluated.get_params()
    assert evaluated.n_harmonics == N_HARMONICS == FBCCA([8.0], sfreq=256.0).n_harmonics
    assert served.spec.preprocessing == evaluated.preprocessing()
    assert served.spec.classes == list(FREQS)
    assert served.spec.ch_names == ["Oz", "O1", "O2", "Pz"]  # EEG only, as evaluate picks
    assert served.input_shape() == (5, 4, 512)

    # [training] frequencies (class → Hz) with the same options: the same estimator
    training_only = SessionConfig.from_dict({
        "window": {"mode": "epoch", "tmin": 2.0, "tmax": 4.0},
        "training": {"paradigm": "ssvep", "frequencies": FREQS},
    })
    assert make_decoder("fbcca", training_only, 256.0).get_params() == evaluated.get_params()


def test_probabilities_match_window_for_window_on_synthetic_windows():
    info = mne.create_info(["Oz", "O1", "O2"], 256.0, "eeg")
    window = WindowSpec(mode="epoch", tmin=0.0, tmax=1.0)
    options = {"frequencies": [8.0, 10.0, 12.0], "n_harmonics": 4, "temperature": 0.05}
    served = _served(options, info, window)
    config = SessionConfig.from_dict({"window": {"mode": "epoch", "tmin": 0.0, "tmax": 1.0},
                                      "decoder": {"kind": "fbcca", **options}})
    X = np.random.default_rng(0).standard_normal((6, 5, 3, 256)).astype(np.float32)
    evaluated = make_decoder("fbcca", config, 256.0).fit(X)
    # evaluate scores a batch; the live loop one window at a time
    np.testing.assert_array_equal(np.stack([served.run(x) for x in X]),
                                  evaluated.predict_proba(X))
    assert served.spec.classes == ["8Hz", "10Hz", "12Hz"]


def test_contradicting_training_options_are_refused():
    config = SessionConfig.from_dict({
        "window": {"mode": "epoch", "tmin": 0.0, "tmax": 1.0},
        "decoder": {"kind": "fbcca", "frequencies": [8.0, 10.0], "n_harmonics": 3},
        "training": {"paradigm": "ssvep", "decoders": {"fbcca": {"n_harmonics": 5}}},
    })
    with pytest.raises(TrainingError, match=r"training\.decoders\.fbcca\.n_harmonics: 5 "
                                            r"contradicts decoder\.n_harmonics = 3"):
        make_decoder("fbcca", config, 256.0)


def test_unknown_or_trained_kinds_name_decoder_kind_and_the_served_ones():
    info = mne.create_info(["Oz"], 256.0, "eeg")
    window = WindowSpec(mode="epoch", tmin=0.0, tmax=1.0)
    with pytest.raises(ConfigError, match=r"decoder\.kind: expected 'onnx' or one of "
                                          r"\['fbcca'\], found 'cca'$"):
        load_decoder(DecoderConfig("cca", options={}), info=info, window=lambda: window)
    with pytest.raises(ConfigError, match=r"found 'trca'; trca is served from its trained "
                                          r"model: bci train --decoder trca"):
        load_decoder(DecoderConfig("trca", options={}), info=info, window=lambda: window)
    with pytest.raises(ConfigError, match=r"decoder\.classes: expected one distinct label per "
                                          r"frequency \(2\), found \['a'\]"):
        _served({"frequencies": [8.0, 10.0], "classes": ["a"]}, info, window)


def test_evaluate_scores_what_replay_serves_on_real_ssvep(shared_data, tmp_path, capsys):
    """The same session file, left to FBCCA's defaults: identical probabilities."""
    d = shared_data / "ssvep-exo" / "subject02"
    if not (d / "session1_raw.fif").is_file():
        pytest.skip(f"SSVEP-exo subject02 not found under {shared_data}")
    text = EXAMPLE.read_text()
    session = tmp_path / "fbcca.toml"
    session.write_text(text.replace("n_harmonics = 3\n", "").replace("n_bands = 5\n", ""))
    preds, decisions = tmp_path / "pred.jsonl", tmp_path / "replay.jsonl"
    assert main(["evaluate", str(session), "--decoder", "fbcca", "--train",
                 str(d / "session2_raw.fif"), "--test", str(d / "session1_raw.fif"),
                 "--predictions", str(preds), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert main(["replay", str(session), "--input", str(d / "session1_raw.fif"),
                 "--output", str(decisions), "--json"]) == 0
    replayed = {r["stop"]: r for r in map(json.loads, decisions.read_text().splitlines())}
    expected = [json.loads(x) for x in preds.read_text().splitlines()]
    assert len(expected) == len(replayed) == figures["n_windows"] == 24
    for e in expected:
        r = replayed[e["stop"]]
        assert (r["label"], r["true_label"]) == (e["label"], e["true_label"])
        assert r["probabilities"] == e["probabilities"]
    assert figures["accuracy"] > 0.5  # chance 1/3


def test_evaluate_refuses_what_it_cannot_score(tmp_path):
    config = SessionConfig.from_dict({
        "window": {"mode": "epoch", "tmin": 0.0, "tmax": 1.0, "events": {"a": "a"}},
        "training": {"paradigm": "meg"},
    })
    with pytest.raises(TrainingError, match=r"meg-retrieval is not scored by bci evaluate; "
                                            r"expected one of \['fbcca', 'trca'"):
        evaluate(config, "meg-retrieval", train=[tmp_path / "x.fif"], split="k-fold")
