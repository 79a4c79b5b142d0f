"""The file player: real LSL inlets receive the recording's samples, timestamps and markers."""

from __future__ import annotations

import mne
import numpy as np
import pytest
from bci.devices.files import read_recording
from bci.devices.player import FilePlayer, default_chunk_size

from bci.chunk import Markers
from bci.cli import main
from bci.lslconfig import get_pylsl
from bci.recording import Recording


def make_recording(n_samples: int, sfreq: float, markers: dict[int, str],
                   *, t0: float = 12.5) -> Recording:
    rng = np.random.default_rng(11)
    info = mne.create_info(["Fz", "Cz", "EOG"], sfreq, ["eeg", "eeg", "eog"])
    data = rng.normal(0, 1e-5, (3, n_samples)).astype(np.float32)
    timestamps = t0 + np.arange(n_samples) / sfreq
    samples = np.array(sorted(markers), dtype=np.int64)
    return Recording(info, data, timestamps,
                     Markers(timestamps[samples], [markers[i] for i in samples]),
                     "/somewhere/test_rec_raw.fif")


def open_inlets(name: str, marker_name: str):
    pylsl = get_pylsl()
    found = pylsl.resolve_byprop("name", name, timeout=5.0)
    found_markers = pylsl.resolve_byprop("name", marker_name, timeout=5.0)
    assert found and found_markers, "player streams not found on this machine"
    inlet = pylsl.StreamInlet(found[0], max_buflen=60, processing_flags=0)
    marker_inlet = pylsl.StreamInlet(found_markers[0], max_buflen=60)
    inlet.open_stream(timeout=5.0)
    marker_inlet.open_stream(timeout=5.0)
    return inlet, marker_inlet


def pull_all(inlet, n: int, timeout: float = 15.0) -> tuple[np.ndarray, np.ndarray]:
    """Pull until ``n`` samples arrived: (n_samples, n_channels) and (n_samples,)."""
    pylsl = get_pylsl()
    samples, stamps = [], []
    total, deadline = 0, pylsl.local_clock() + timeout
    while total < n and pylsl.local_clock() < deadline:
        chunk, ts = inlet.pull_chunk(timeout=0.2, max_samples=n - total)
        if ts:
            samples.append(np.asarray(chunk, dtype=np.float32))
            stamps.append(np.asarray(ts))
            total += len(ts)
    assert total == n, f"received {total} of {n} samples"
    return np.concatenate(samples), np.concatenate(stamps)


def pull_markers(inlet, n: int, timeout: float = 5.0) -> tuple[list[str], np.ndarray]:
    values, stamps = [], []
    deadline = get_pylsl().local_clock() + timeout
    while len(values) < n and get_pylsl().local_clock() < deadline:
        sample, ts = inlet.pull_sample(timeout=0.2)
        if sample is not None:
            values.append(sample[0])
            stamps.append(ts)
    return values, np.asarray(stamps)


@pytest.mark.parametrize("speed", [4.0, 10.0])
def test_inlet_receives_the_recording(unique_name, speed):
    sfreq, n = 250.0, 500
    rec = make_recording(n, sfreq, {0: "start", 51: "left", 52: "right", 499: "end"})
    marker_name = f"{unique_name}-m"
    player = FilePlayer(rec, name=unique_name, marker_name=marker_name, speed=speed,
                        chunk_size=7)
    inlet, marker_inlet = open_inlets(unique_name, marker_name)

    info = inlet.info(timeout=5.0)
    assert info.nominal_srate() == sfreq
    assert info.channel_format() == get_pylsl().cf_float32
    assert info.source_id() == "bci-play-test_rec_raw"
    assert info.type() == "EEG"
    ch = info.desc().child("channels").child("channel")
    labels, types, units = [], [], []
    while not ch.empty():
        labels.append(ch.child_value("label"))
        types.append(ch.child_value("type"))
        units.append(ch.child_value("unit"))
        ch = ch.next_sibling("channel")
    assert (labels, types, units) == (["Fz", "Cz", "EOG"], ["EEG", "EEG", "EOG"],
                                      ["volts"] * 3)

    with player:
        data, stamps = pull_all(inlet, n)
        values, marker_stamps = pull_markers(marker_inlet, 4)
        assert player.wait(10.0)
    assert player.error is None
    assert (player.samples_pushed, player.markers_pushed) == (n, 4)

    np.testing.assert_array_equal(data.T, rec.data)
    # explicit per-sample stamps: t_start + (t - t_first) / speed
    np.testing.assert_allclose(stamps - stamps[0], (rec.timestamps - rec.timestamps[0]) / speed,
                               rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.diff(stamps), 1 / (sfreq * speed), rtol=0, atol=1e-9)
    assert values == ["start", "left", "right", "end"]
    # each marker carries its onset sample's timestamp
    np.testing.assert_array_equal(np.searchsorted(stamps, marker_stamps), [0, 51, 52, 499])
    np.testing.assert_allclose(marker_stamps, stamps[[0, 51, 52, 499]], rtol=0, atol=1e-9)


def test_loop_keeps_timestamps_increasing(unique_name):
    sfreq, n = 200.0, 60
    rec = make_recording(n, sfreq, {10: "cue"})
    marker_name = f"{unique_name}-m"
    player = FilePlayer(rec, name=unique_name, marker_name=marker_name, speed=5.0, loop=True)
    assert player.chunk_size == default_chunk_size(sfreq) == 4
    inlet, marker_inlet = open_inlets(unique_name, marker_name)
    with player:
        data, stamps = pull_all(inlet, 3 * n)
        values, marker_stamps = pull_markers(marker_inlet, 3)
    assert player.loops_completed >= 2
    np.testing.assert_array_equal(data.T, np.tile(rec.data, 3))
    # one continuous clock across the loop seams
    np.testing.assert_allclose(np.diff(stamps), 1 / (sfreq * 5.0), rtol=0, atol=1e-9)
    assert values == ["cue"] * 3
    np.testing.assert_allclose(marker_stamps, stamps[[10, n + 10, 2 * n + 10]], rtol=0,
                               atol=1e-9)


def test_plays_a_file_with_its_events(unique_name, tmp_path):
    sfreq = 256.0
    info = mne.create_info(["O1", "O2", "STI"], sfreq, ["eeg", "eeg", "stim"])
    signal = np.random.default_rng(5).normal(0, 1e-5, (3, 256))
    signal[2] = 0
    signal[2, [30, 200]] = [2, 5]
    mne.io.RawArray(signal, info).save(tmp_path / "short_raw.fif")
    expected = read_recording(tmp_path / "short_raw.fif")

    player = FilePlayer(tmp_path / "short_raw.fif", speed=8.0, source_id=unique_name,
                        name=unique_name)
    assert player.marker_name == f"{unique_name}-markers"
    inlet, marker_inlet = open_inlets(unique_name, player.marker_name)
    with player:
        data, stamps = pull_all(inlet, 256)
        values, marker_stamps = pull_markers(marker_inlet, 2)
    np.testing.assert_array_equal(data.T, expected.data)
    assert values == ["2", "5"]
    np.testing.assert_allclose(marker_stamps, stamps[[30, 200]], rtol=0, atol=1e-9)


def test_markers_outside_the_data_are_not_played():
    rec = make_recording(100, 100.0, {5: "in"})
    rec.markers = Markers(np.array([rec.timestamps[0] - 1.0, rec.timestamps[5] + 0.004,
                                    rec.timestamps[-1] + 1.0]), ["early", "in", "late"])
    player = FilePlayer(rec, name="bci-test-unplayed")
    try:
        assert player.markers_dropped == 2 and player.n_markers == 1
        assert player._marker_samples.tolist() == [5]  # 4 ms after sample 5: nearest is 5
    finally:
        player.stop()


def test_bad_options():
    rec = make_recording(10, 100.0, {})
    for kwargs, message in (({"speed": 0}, "speed must be a finite number > 0, found 0"),
                            ({"speed": float("nan")}, "speed must be"),
                            ({"chunk_size": 0}, "chunk_size must be an integer >= 1, found 0"),
                            ({"chunk_size": 2.5}, "chunk_size must be")):
        with pytest.raises(ValueError, match=message):
            FilePlayer(rec, name="bci-test-bad", **kwargs)


def test_cli(tmp_path, unique_name, capsys):
    path = tmp_path / "cli_raw.fif"
    info = mne.create_info(["C3", "C4"], 100.0, "eeg")
    mne.io.RawArray(np.zeros((2, 50)), info).save(path)
    assert main(["play", str(path), "--name", unique_name, "--speed", "20",
                 "--chunk-size", "5"]) == 0
    out = capsys.readouterr().out
    assert f"data stream {unique_name!r}" in out
    assert "played 50 samples and 0 markers (1 loop(s))" in out

    assert main(["play", str(tmp_path / "absent.fif"), "--name", unique_name]) == 2
    assert "absent.fif: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["play", str(path), "--speed", "-1"])
    assert "expected a number > 0, found '-1'" in capsys.readouterr().err
