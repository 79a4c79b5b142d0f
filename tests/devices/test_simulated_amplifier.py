"""The simulated amplifier over real LSL outlets and inlets on this machine."""

from __future__ import annotations

import time

import numpy as np
import pytest
from bci.devices.simulated_amplifier import SimulatedAmplifier, spawn, stop_spawned

from bci.cli import main
from bci.cli.interrupt import EXIT_INTERRUPTED
from bci.datasets.synthetic import SyntheticEEG
from bci.lslconfig import get_pylsl

pylsl = get_pylsl()


def _resolve(name: str):
    found = pylsl.resolve_byprop("name", name, 1, 10.0)
    assert found, f"stream {name!r} was not resolved"
    return found[0]


def _pull(inlet, seconds: float, *, numeric: bool = True):
    """Everything the inlet receives in ``seconds`` (samples × channels, timestamps)."""
    data, stamps = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        chunk, ts = inlet.pull_chunk(timeout=0.1, as_numpy=numeric)
        if len(ts):
            data.append(chunk)
            stamps.append(np.asarray(ts))
    if numeric:
        return (np.concatenate(data) if data else np.empty((0, 0), np.float32),
                np.concatenate(stamps) if stamps else np.empty(0))
    return [v for chunk in data for v in chunk], (np.concatenate(stamps) if stamps
                                                   else np.empty(0))


@pytest.mark.parametrize(("options", "chunk_size"), [
    ({"sfreq": 256.0}, 8),
    ({"n_channels": 64, "sfreq": 1000.0}, 10),
])
def test_inlet_receives_exactly_the_generated_samples(unique_name, options, chunk_size):
    schedule = {"trial_duration": 0.3, "iti": 0.2, "seed": 21}
    amp = SimulatedAmplifier(name=unique_name, marker_name=unique_name + "-markers",
                             chunk_size=chunk_size, **schedule, **options)
    with amp:
        info = _resolve(amp.name)
        assert info.source_id() == f"bci-sim:{unique_name}"
        inlet = pylsl.StreamInlet(info)
        markers = pylsl.StreamInlet(_resolve(amp.marker_name))
        full = inlet.info(5.0)
        assert full.get_channel_labels() == amp.eeg.ch_names
        assert full.get_channel_units() == ["volts"] * amp.eeg.n_channels
        assert full.get_channel_types() == ["EEG"] * amp.eeg.n_channels
        assert full.type() == "EEG" and full.nominal_srate() == amp.sfreq
        inlet.open_stream(5.0)
        markers.open_stream(5.0)
        data, stamps = _pull(inlet, 1.5)
        values, marker_stamps = _pull(markers, 0.3, numeric=False)
        del inlet, markers
    assert not amp.running

    sfreq = amp.sfreq
    assert data.dtype == np.float32 and data.shape[1] == amp.eeg.n_channels
    assert stamps.size > sfreq  # over a second of data
    index = np.round((stamps - amp.t0) * sfreq).astype(int)
    # exactly t0 + i / sfreq, consecutive, nothing lost
    np.testing.assert_array_equal(stamps, amp.t0 + index / sfreq)
    np.testing.assert_array_equal(np.diff(index), 1)
    np.testing.assert_allclose(np.diff(stamps), 1 / sfreq, rtol=0, atol=1e-9)
    reference, _ = SyntheticEEG(**schedule, **options).read(int(index[-1]) + 1)
    np.testing.assert_array_equal(data.T, reference[:, index])

    reference_eeg = SyntheticEEG(**schedule, **options)
    assert len(values) >= 2
    onsets = (np.asarray(marker_stamps) - amp.t0) * sfreq
    np.testing.assert_allclose(onsets, np.round(onsets), rtol=0, atol=1e-6)
    for onset, value in zip(np.round(onsets).astype(int), values, strict=True):
        trial = (onset - reference_eeg.trial(0).onset) // reference_eeg.period_samples
        assert reference_eeg.trial(int(trial)).onset == onset
        assert value == [reference_eeg.trial(int(trial)).label]


def test_duration_ends_the_stream_on_schedule(unique_name):
    amp = SimulatedAmplifier(name=unique_name, marker_name=unique_name + "-m",
                             duration=0.5, seed=1, chunk_size=5)
    amp.start()
    assert amp.wait(10.0)
    amp.stop()
    assert amp.n_samples_sent == 128  # 0.5 s at 256 Hz, the last chunk cut short
    with pytest.raises(RuntimeError, match="already started"):
        amp.start()


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="positive integer chunk_size, found 0"):
        SimulatedAmplifier(chunk_size=0)
    with pytest.raises(ValueError, match="different names"):
        SimulatedAmplifier(name="x", marker_name="x")
    with pytest.raises(ValueError, match="not both"):
        SimulatedAmplifier(SyntheticEEG(seed=0), seed=1)
    with pytest.raises(ValueError, match="positive duration"):
        SimulatedAmplifier(duration=-2)


def test_cli_streams_for_its_duration(unique_name, capsys):
    code = main(["simulate", "--paradigm", "mi", "--channels", "4", "--seed", "3",
                 "--duration", "0.3", "--name", unique_name, "--marker-name", unique_name + "-m",
                 "--sfreq", "200", "--line-freq", "none"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"'{unique_name}'" in out and f"'{unique_name}-m'" in out
    assert "Stopped after 60 samples" in out


def test_cli_reports_bad_options(capsys):
    assert main(["simulate", "--frequencies", "8,200", "--duration", "0.1"]) == 2
    assert "below Nyquist" in capsys.readouterr().err


def test_spawned_process_resolves_and_stops_cleanly(unique_name):
    proc = spawn(name=unique_name, marker_name=unique_name + "-m", seed=5,
                 ch_names=["Oz", "O1", "O2"], frequencies=[9.0, 11.5], chunk_size=4)
    try:
        info = _resolve(unique_name)
        inlet = pylsl.StreamInlet(info)
        assert inlet.info(5.0).get_channel_labels() == ["Oz", "O1", "O2"]
        inlet.open_stream(5.0)
        data, stamps = _pull(inlet, 0.5)
        del inlet
        assert data.shape[1] == 3 and stamps.size > 0
        np.testing.assert_allclose(np.diff(stamps), 1 / 256, rtol=0, atol=1e-9)
    finally:
        code = stop_spawned(proc)
    assert code == EXIT_INTERRUPTED  # a clean stop by SIGTERM, not a kill
    # its outlets are gone with it
    assert not pylsl.resolve_byprop("name", unique_name, 1, 1.0)


def test_spawn_reports_a_process_that_fails(unique_name):
    with pytest.raises(RuntimeError, match=r"exited with code 2.*below Nyquist"):
        spawn(name=unique_name, frequencies=[8.0, 300.0], timeout=20.0)
