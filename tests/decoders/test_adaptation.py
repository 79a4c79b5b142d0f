"""RL-EEGNet keeps learning from cued trials inside a live session, over real LSL."""

from __future__ import annotations

import numpy as np
import pytest
from bci.decoders.training import train
from streams import Player, make_marker_outlet, make_outlet

from bci.datasets.synthetic import make_recording
from bci.decoder import OnnxDecoder
from bci.errors import ModelError
from bci.registry import adapters
from bci.runner import run_live
from bci.session import SessionConfig

pytest.importorskip("torch", reason="online adaptation needs the train extra (torch)")

SFREQ = 128.0
WINDOW = {"mode": "epoch", "tmin": 0.0, "tmax": 1.0,
          "events": {"left": "left", "right": "right"}}
TRIALS = {"trial_duration": 1.0, "iti": 0.5}


def _recording(seed, seconds):
    return make_recording(seconds, paradigm="mi", n_channels=8, sfreq=SFREQ, seed=seed,
                          erd_depth=0.8, **TRIALS)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("rl")
    rec = _recording(21, 75.0)
    raw = rec.to_raw()
    raw.save(d / "calib_raw.fif", verbose="error")
    config = SessionConfig.from_dict({
        "window": WINDOW,
        "training": {"paradigm": "mi", "decoders": {"rl-eegnet": {"n_epochs": 15}}}})
    out = train(config, "rl-eegnet", [d / "calib_raw.fif"], output=d / "rl.onnx")
    assert out["state"] == str(d / "rl.pt")
    return d / "rl.onnx", rec.info["ch_names"]


@pytest.mark.slow
def test_live_session_adapts_without_losing_samples_and_saves_the_model(
        trained, unique_name, tmp_path):
    model, ch_names = trained
    live = _recording(22, 36.0)
    onsets = [(int(np.rint((t - live.timestamps[0]) * SFREQ)), v)
              for t, v in zip(live.markers.timestamps, live.markers.values, strict=True)]
    outlet = make_outlet(unique_name, ch_names, SFREQ)
    markers = make_marker_outlet(f"{unique_name}-m")
    player = Player(outlet, live.data, SFREQ, chunk=8, markers=onsets,
                    marker_outlet=markers)
    saved = tmp_path / "adapted.onnx"
    config = SessionConfig.from_dict({
        "source": {"stream": unique_name, "markers": f"{unique_name}-m",
                   "resolve_timeout": 5.0},
        "window": WINDOW,
        "decoder": {"path": str(model), "adapt": True, "save": str(saved), "swap_every": 4},
        "outputs": {"lsl": False}})
    try:
        result = run_live(config, duration=38.0, on_ready=lambda _: player.start())
    finally:
        player.stop_event.set()
        player.join(5)
    cued = [d for d in result.decisions if d.true_label is not None]
    assert len(cued) >= 20
    assert result.n_samples == live.data.shape[1]  # acquisition kept every sample
    assert result.counts["skipped_backlog"] == 0
    assert result.counts["adapt_submitted"] == len(cued)
    assert result.counts["adapt_learned"] + result.counts["adapt_dropped"] == len(cued)
    assert result.counts["adapt_swaps"] >= 1  # an adapted model served later windows
    # the adapted model is saved, loadable, and no longer the one trained at calibration
    assert saved.is_file() and saved.with_suffix(".pt").is_file()
    before, after = OnnxDecoder(model), OnnxDecoder(saved)
    assert after.spec.classes == before.spec.classes
    x = np.random.default_rng(0).standard_normal(before.input_shape()).astype(np.float32)
    assert not np.allclose(before.run(x * 1e-5), after.run(x * 1e-5))


@pytest.mark.slow
def test_adaptation_without_its_state_file_is_refused(trained, unique_name, tmp_path):
    # the runner finds the adapter through the registry, as a session with adapt = true does
    LiveAdaptation = adapters.get("online").load()
    assert LiveAdaptation.__module__ == "bci.decoders.adaptation"

    model, _ = trained
    assert LiveAdaptation.state_path(model) == model.with_suffix(".pt")
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(model.read_bytes())

    class _Pipeline:
        decoder = OnnxDecoder(lonely)

    with pytest.raises(ModelError, match=r"trainable state .*lonely\.pt.*not found"):
        LiveAdaptation(_Pipeline(), state=lonely.with_suffix(".pt"))
