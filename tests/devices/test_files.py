"""Reading recordings: every format written with its real writer, events from each place,
truncated and corrupt files, XDF written byte by byte, and the real SSVEP recording."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import mne
import numpy as np
import pytest
from bci.devices.files import SUPPORTED_EXTENSIONS, read_recording

from bci.errors import RecordingError

SFREQ = 250.0
N_SAMPLES = 1500


@pytest.fixture(autouse=True)
def _quiet_mne():
    level = mne.set_log_level("ERROR", return_old_level=True)
    yield
    mne.set_log_level(level)


def make_raw(*, stim: bool = False, first_samp: int = 0, annotations=None) -> mne.io.RawArray:
    """Three EEG channels of noise (volts), optionally a stim channel with codes 1, 2, 3."""
    rng = np.random.default_rng(7)
    names, types = ["C3", "Cz", "C4"], ["eeg"] * 3
    data = rng.normal(0, 20e-6, (3, N_SAMPLES))
    if stim:
        names.append("STI 014")
        types.append("stim")
        trigger = np.zeros((1, N_SAMPLES))
        trigger[0, 100:110] = 1
        trigger[0, 600] = 2
        trigger[0, 900:950] = 3
        trigger[0, 950:960] = 1  # a step from one code to another is an event too
        data = np.vstack([data, trigger])
    raw = mne.io.RawArray(data, mne.create_info(names, SFREQ, types), first_samp=first_samp)
    if annotations is not None:
        raw.set_annotations(annotations)
    return raw


# ------------------------------------------------------------------------- MNE formats

def test_fif_stim_channel_events_and_timestamps(tmp_path):
    raw = make_raw(stim=True, first_samp=500)
    path = tmp_path / "run_raw.fif"
    raw.save(path)
    rec = read_recording(path)

    assert rec.info.ch_names == ["C3", "Cz", "C4"]  # stim channel dropped from the data
    assert rec.data.dtype == np.float32 and rec.data.shape == (3, N_SAMPLES)
    np.testing.assert_array_equal(rec.data, raw.get_data(picks="eeg").astype(np.float32))
    assert rec.timestamps.dtype == np.float64
    np.testing.assert_allclose(rec.timestamps, (500 + np.arange(N_SAMPLES)) / SFREQ)
    assert rec.markers.values == ["1", "2", "3", "1"]
    np.testing.assert_allclose(rec.markers.timestamps, (500 + np.array([100, 600, 900, 950]))
                               / SFREQ)
    # a marker lands exactly on a data timestamp
    assert rec.markers.timestamps[1] == rec.timestamps[600]
    assert rec.source == str(path)


def test_annotations_skip_segment_markers_and_snap_to_samples(tmp_path):
    annotations = mne.Annotations([1.0, 2.0, 2.5, 3.0, 4.001],
                                  [0.0, 1.0, 0.0, 0.0, 0.0],
                                  ["left", "BAD_muscle", "EDGE boundary", "bad blink", "right"])
    raw = make_raw(stim=True, first_samp=250, annotations=annotations)
    path = tmp_path / "ann_raw.fif"
    raw.save(path)
    rec = read_recording(path)
    # annotations win over the stim channel, which is still dropped
    assert rec.markers.values == ["left", "right"]
    assert "STI 014" not in rec.info.ch_names
    # onsets are relative to the first sample; 4.001 s snaps to the nearest sample
    np.testing.assert_allclose(rec.markers.timestamps, [250 / SFREQ + 1.0, 250 / SFREQ + 4.0])
    assert rec.markers.timestamps[1] == rec.timestamps[1000]


def test_companion_events_file_wins(tmp_path):
    raw = make_raw(stim=True, annotations=mne.Annotations([1.0], [0.0], ["ann"]))
    raw.save(tmp_path / "subj_raw.fif")
    mne.write_events(tmp_path / "subj-eve.fif", np.array([[125, 0, 7], [1250, 0, 9]]))
    rec = read_recording(tmp_path / "subj_raw.fif")
    assert rec.markers.values == ["7", "9"]
    np.testing.assert_allclose(rec.markers.timestamps, [0.5, 5.0])
    assert "STI 014" not in rec.info.ch_names


def test_companion_with_underscore_beside_other_format(tmp_path):
    raw = make_raw()
    mne.export.export_raw(tmp_path / "sess.edf", raw)
    mne.write_events(tmp_path / "sess_eve.fif", np.array([[250, 0, 4]]))
    rec = read_recording(tmp_path / "sess.edf")
    assert rec.markers.values == ["4"]
    np.testing.assert_allclose(rec.markers.timestamps, [1.0])


def test_explicit_events_override(tmp_path):
    raw = make_raw(stim=True)
    raw.save(tmp_path / "x_raw.fif")
    mne.write_events(tmp_path / "x-eve.fif", np.array([[125, 0, 7]]))
    mne.write_events(tmp_path / "other-eve.fif", np.array([[10, 0, 5], [20, 0, 6]]))
    rec = read_recording(tmp_path / "x_raw.fif", events=tmp_path / "other-eve.fif")
    assert rec.markers.values == ["5", "6"]
    # an annotations file works too
    mne.Annotations([2.0], [0.0], ["go"]).save(tmp_path / "cues.txt")
    rec = read_recording(tmp_path / "x_raw.fif", events=tmp_path / "cues.txt")
    assert rec.markers.values == ["go"]
    np.testing.assert_allclose(rec.markers.timestamps, [2.0])
    with pytest.raises(RecordingError, match=r"nothing\.fif: no such events file"):
        read_recording(tmp_path / "x_raw.fif", events=tmp_path / "nothing.fif")
    (tmp_path / "junk.txt").write_text("not events at all\n")
    with pytest.raises(RecordingError, match=r"junk\.txt.*expected an MNE events file"):
        read_recording(tmp_path / "x_raw.fif", events=tmp_path / "junk.txt")


@pytest.mark.parametrize("ext", ["edf", "bdf", "set", "vhdr"])
def test_exported_formats_round_trip(tmp_path, ext):
    annotations = mne.Annotations([1.0, 3.0], [0.0, 0.0], ["Stimulus/S  1", "Stimulus/S  2"])
    raw = make_raw(annotations=annotations)
    path = tmp_path / f"rec.{ext}"
    mne.export.export_raw(path, raw)
    rec = read_recording(path)
    assert rec.info.ch_names == ["C3", "Cz", "C4"]
    assert rec.sfreq == SFREQ
    assert rec.data.dtype == np.float32 and rec.data.shape == (3, N_SAMPLES)
    # EDF keeps 16 bits over the channel's range, the others are (near) exact
    atol = 2e-9 if ext == "edf" else 1e-11
    np.testing.assert_allclose(rec.data, raw.get_data(), rtol=0, atol=atol)
    np.testing.assert_allclose(rec.timestamps, np.arange(N_SAMPLES) / SFREQ)
    assert rec.markers.values == ["Stimulus/S  1", "Stimulus/S  2"]
    np.testing.assert_allclose(rec.markers.timestamps, [1.0, 3.0])


def test_nan_is_read_and_reported(tmp_path, caplog):
    raw = make_raw()
    raw._data[1, 10:20] = np.nan
    raw.save(tmp_path / "nan_raw.fif")
    with caplog.at_level(logging.WARNING, logger="bci.devices.files"):
        rec = read_recording(tmp_path / "nan_raw.fif")
    assert np.isnan(rec.data[1, 10:20]).all()
    assert "10 of 1500 samples contain NaN" in caplog.text


def test_missing_unknown_and_directory(tmp_path):
    with pytest.raises(RecordingError, match=r"absent_raw\.fif: no such file"):
        read_recording(tmp_path / "absent_raw.fif")
    (tmp_path / "notes.doc").write_text("hello")
    with pytest.raises(RecordingError, match=r"notes\.doc: unsupported file type '\.doc'") as err:
        read_recording(tmp_path / "notes.doc")
    for ext in SUPPORTED_EXTENSIONS:
        assert ext in str(err.value)
    (tmp_path / "dir.fif").mkdir()
    with pytest.raises(RecordingError, match="found a directory"):
        read_recording(tmp_path / "dir.fif")


@pytest.mark.parametrize("ext", ["fif", "edf", "bdf", "set"])
def test_files_cut_before_their_data_are_errors(tmp_path, ext):
    raw = make_raw()
    whole = tmp_path / f"whole_raw.{ext}" if ext == "fif" else tmp_path / f"whole.{ext}"
    if ext == "fif":
        raw.save(whole)
    else:
        mne.export.export_raw(whole, raw)
    content = whole.read_bytes()
    # EEGLAB's MATLAB file cannot be read in part; the others lose their header
    cuts = (len(content) // 2, 200, 0) if ext == "set" else (200, 0)
    for cut in cuts:
        cut_path = whole.with_name(f"cut{cut}_raw.{ext}" if ext == "fif" else f"cut{cut}.{ext}")
        cut_path.write_bytes(content[:cut])
        with pytest.raises(RecordingError, match=f"{cut_path.name}.*(truncated|corrupt)"):
            read_recording(cut_path)


@pytest.mark.parametrize("ext", ["edf", "bdf"])
def test_edf_cut_mid_record_is_salvaged(tmp_path, ext, caplog):
    raw = make_raw(annotations=mne.Annotations([0.5, 2.5, 5.0], 0.0, ["a", "b", "c"]))
    whole = tmp_path / f"whole.{ext}"
    mne.export.export_raw(whole, raw)
    full = read_recording(whole)
    content = whole.read_bytes()
    header = int(content[184:192])
    declared, duration = int(content[236:244]), float(content[244:252])
    record = (len(content) - header) // declared
    cut = whole.with_name(f"cut.{ext}")
    cut.write_bytes(content[:header + 2 * record + record // 2])  # 2.5 records
    with caplog.at_level(logging.WARNING):
        rec = read_recording(cut)
    n_kept = round(2 * duration * SFREQ)
    assert rec.data.shape == (3, n_kept)
    np.testing.assert_array_equal(rec.data, full.data[:, :n_kept])
    np.testing.assert_array_equal(rec.timestamps, full.timestamps[:n_kept])
    assert rec.markers.values == ["a"]  # the later annotations were in the lost records
    lost = declared * duration - 2 * duration
    assert f"cut.{ext}: file cut short" in caplog.text
    assert f"{lost:.3f} s of the {declared} records its header declares are lost" in caplog.text
    # less than one record left: nothing to salvage
    cut.write_bytes(content[:header + record // 2])
    with pytest.raises(RecordingError, match=f"cut.{ext}: .*truncated or corrupt"):
        read_recording(cut)


def test_fif_cut_short_is_read_to_its_last_complete_buffer(tmp_path, caplog):
    raw = make_raw(annotations=mne.Annotations([0.5, 5.0], 0.0, ["a", "b"]))
    whole = tmp_path / "whole_raw.fif"
    raw.save(whole, buffer_size_sec=1.0)
    content = whole.read_bytes()
    cut = tmp_path / "cut_raw.fif"
    for keep in (len(content) - 10, len(content) // 2):
        cut.write_bytes(content[:keep])
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            rec = read_recording(cut)
        n = rec.data.shape[1]
        assert 0 < n <= N_SAMPLES and n % round(SFREQ) == 0  # whole 1-s buffers only
        np.testing.assert_allclose(rec.data, raw.get_data()[:, :n], rtol=1e-6)
        if n < N_SAMPLES:
            assert f"FIF file cut short ({keep} bytes)" in caplog.text
            assert f"read {n / SFREQ:.3f} s up to its last complete data buffer" in caplog.text
    # the header survives but not one buffer
    first_buffer = content.find(raw.get_data()[:, :2].T.astype(">f4").tobytes())
    assert first_buffer > 0
    cut.write_bytes(content[:first_buffer + 100])
    with pytest.raises(RecordingError, match=r"cut_raw\.fif: .*truncated one \(\d+ bytes\) "
                                             "without a single complete data buffer"):
        read_recording(cut)


def test_epoched_eeglab_and_matlab_73_are_named(tmp_path):
    info = mne.create_info(["C3", "Cz", "C4"], SFREQ, "eeg")
    epochs = mne.EpochsArray(np.random.default_rng(0).normal(0, 1e-5, (5, 3, 100)), info)
    path = tmp_path / "epoched.set"
    epochs.export(path)
    with pytest.raises(RecordingError, match=r"epoched\.set: holds epoched data \(5 epochs\); "
                                             "the runtime replays continuous recordings"):
        read_recording(path)
    v73 = tmp_path / "v73.set"  # MATLAB v7.3 files are HDF5 behind this text header
    v73.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 "
                    b"00:00:00 2024 HDF5 schema 1.00 .".ljust(512, b" ") + bytes(512))
    with pytest.raises(RecordingError, match=r"v73\.set: expected an EEGLAB \.set saved as "
                                             "MATLAB v7 or older, found a MATLAB v7.3"):
        read_recording(v73)


def test_edf_without_record_count_is_read(tmp_path):
    """EDF's way of saying "recording not closed" (-1 records) is not an error."""
    raw = make_raw()
    path = tmp_path / "open.edf"
    mne.export.export_raw(path, raw)
    content = bytearray(path.read_bytes())
    content[236:244] = b"-1      "
    path.write_bytes(bytes(content))
    rec = read_recording(path)
    assert rec.data.shape[0] == 3 and rec.data.shape[1] > 0


# --------------------------------------------------------------------------------- XDF

def _varlen(n: int) -> bytes:
    if n < 256:
        return bytes([1, n])
    if n < 2**32:
        return bytes([4]) + struct.pack("<I", n)
    return bytes([8]) + struct.pack("<Q", n)


def _chunk(tag: int, content: bytes) -> bytes:
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def _stream_header(name: str, kind: str, fmt: str, srate: float,
                   channels: list[dict] | None, n_channels: int) -> str:
    desc = ""
    if channels is not None:
        desc = "<channels>" + "".join(
            "<channel>" + "".join(f"<{k}>{v}</{k}>" for k, v in ch.items()) + "</channel>"
            for ch in channels) + "</channels>"
    return (f'<?xml version="1.0"?><info><name>{name}</name><type>{kind}</type>'
            f"<channel_count>{n_channels}</channel_count><nominal_srate>{srate}"
            f"</nominal_srate><channel_format>{fmt}</channel_format>"
            f"<source_id>{name}-src</source_id><desc>{desc}</desc></info>")


OFFSET = -0.25  # the clock offset write_xdf records for every stream

_NUMPY = {"float32": "<f4", "double64": "<f8", "int16": "<i2", "int32": "<i4"}


def _samples(fmt: str, stamps: np.ndarray, values) -> bytes:
    """A [Samples] chunk body (without stream id): every sample with its timestamp."""
    out = bytearray(_varlen(len(stamps)))
    for i, t in enumerate(stamps):
        out += b"\x08" + struct.pack("<d", t)
        if fmt == "string":
            for v in values[i]:
                raw = v.encode()
                out += _varlen(len(raw)) + raw
        else:
            out += np.asarray(values[i], dtype=_NUMPY[fmt]).tobytes()
    return bytes(out)


def write_xdf(path: Path, streams: list[dict], *, footers: bool = True,
              chunk: int = 100, offset: float = OFFSET) -> None:
    """Write a minimal XDF 1.0 file.

    Each stream is a dict with ``name``, ``type``, ``fmt``, ``srate``, ``channels``
    (list of dicts for desc, or None), ``n_channels``, ``stamps`` (n_samples,) and
    ``values``: (n_samples, n_channels) numbers or a list of lists of strings. Every
    stream gets one clock offset chunk of ``offset`` seconds.
    """
    out = bytearray(b"XDF:")
    out += _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')
    for sid, s in enumerate(streams, start=1):
        header = _stream_header(s["name"], s["type"], s["fmt"], s["srate"], s["channels"],
                                s["n_channels"])
        out += _chunk(2, struct.pack("<I", sid) + header.encode())
    for sid, s in enumerate(streams, start=1):
        out += _chunk(4, struct.pack("<I", sid) + struct.pack("<dd", 100.0, offset))
        for start in range(0, len(s["stamps"]), chunk):
            body = _samples(s["fmt"], s["stamps"][start:start + chunk],
                            s["values"][start:start + chunk])
            out += _chunk(3, struct.pack("<I", sid) + body)
    if footers:
        for sid, s in enumerate(streams, start=1):
            footer = (f'<?xml version="1.0"?><info><first_timestamp>{s["stamps"][0]}'
                      f"</first_timestamp><sample_count>{len(s['stamps'])}</sample_count>"
                      "</info>")
            out += _chunk(6, struct.pack("<I", sid) + footer.encode())
    path.write_bytes(bytes(out))


def eeg_stream(n: int = 600, *, fmt: str = "float32", unit: str = "volts",
               name: str = "amp") -> dict:
    rng = np.random.default_rng(3)
    # jittered LSL timestamps: the reader must keep them exactly as recorded
    stamps = 1000.0 + np.arange(n) / 200.0 + rng.uniform(0, 1e-4, n)
    values = rng.normal(0, 2e-5, (n, 4)).astype(_NUMPY[fmt])
    channels = [{"label": "Fz", "type": "EEG", "unit": unit},
                {"label": "Cz", "type": "EEG", "unit": unit},
                {"label": "HEOG", "type": "EOG", "unit": unit},
                {"label": "Acc", "type": "Accelerometer", "unit": "g"}]
    return dict(name=name, type="EEG", fmt=fmt, srate=200.0, channels=channels,
                n_channels=4, stamps=stamps, values=values)


def marker_streams() -> list[dict]:
    return [
        dict(name="cues", type="Markers", fmt="string", srate=0.0, channels=None,
             n_channels=1, stamps=np.array([1000.5, 1001.5]), values=[["left"], ["right"]]),
        dict(name="codes", type="Markers", fmt="int32", srate=0.0, channels=None,
             n_channels=1, stamps=np.array([1000.2, 1001.0]), values=np.array([[3], [4]])),
        dict(name="levels", type="Markers", fmt="float32", srate=0.0, channels=None,
             n_channels=1, stamps=np.array([1001.2]), values=np.array([[0.1]])),
        dict(name="decisions", type="Decisions", fmt="float32", srate=0.0, channels=None,
             n_channels=2, stamps=np.array([1000.7]), values=np.array([[0.2, 0.8]])),
        dict(name="aux", type="Misc", fmt="float32", srate=50.0, channels=None,
             n_channels=2, stamps=1000.0 + np.arange(100) / 50.0,
             values=np.ones((100, 2), np.float32)),
    ]


def test_xdf_data_exact_and_markers_merged(tmp_path):
    eeg = eeg_stream()
    path = tmp_path / "session.xdf"
    write_xdf(path, [*marker_streams(), eeg])
    rec = read_recording(path)
    assert rec.info.ch_names == ["Fz", "Cz", "HEOG", "Acc"]
    assert rec.info.get_channel_types() == ["eeg", "eeg", "eog", "misc"]
    assert rec.sfreq == 200.0
    assert rec.data.dtype == np.float32
    np.testing.assert_array_equal(rec.data, eeg["values"].T)  # volts, float32: as stored
    # the clock offset applied, no dejittering
    np.testing.assert_array_equal(rec.timestamps, eeg["stamps"] + OFFSET)
    # string and irregular numeric streams merged in time order; Decisions left out
    assert rec.markers.values == ["3", "left", "4", "0.1", "right"]
    np.testing.assert_array_equal(rec.markers.timestamps,
                                  np.array([1000.2, 1000.5, 1001.0, 1001.2, 1001.5]) + OFFSET)
    assert "using stream 'amp' (type 'EEG', 4 ch float32, 200 Hz, 600 samples)" in rec.note
    assert "'cues', 'codes', 'levels'" in rec.note
    raw = read_recording(path, sync=False)  # --no-sync: the stamps exactly as recorded
    np.testing.assert_array_equal(raw.timestamps, eeg["stamps"])
    np.testing.assert_array_equal(raw.markers.timestamps,
                                  [1000.2, 1000.5, 1001.0, 1001.2, 1001.5])
    assert "raw stamps" in raw.note
    one = read_recording(path, markers="cues")  # one marker stream, by name
    assert one.markers.values == ["left", "right"]
    with pytest.raises(RecordingError, match=r"marker stream named or typed 'nope'.*'cues'"):
        read_recording(path, markers="nope")


def test_xdf_units_and_defaults(tmp_path):
    eeg = eeg_stream(fmt="double64", unit="microvolts")
    eeg["values"] = eeg["values"] * 1e6
    bare = dict(name="bare", type="EXG", fmt="int16", srate=100.0, channels=None,
                n_channels=2, stamps=np.arange(50) / 100.0,
                values=np.arange(100, dtype=np.int16).reshape(50, 2))
    path = tmp_path / "units.xdf"
    write_xdf(path, [eeg, bare])
    rec = read_recording(path)
    np.testing.assert_allclose(rec.data[:3], (eeg["values"].T * 1e-6)[:3], rtol=1e-6)
    np.testing.assert_array_equal(rec.data[3], eeg["values"][:, 3].astype(np.float32))  # "g"
    # no desc: Ch1…, type eeg, values as stored
    rec = read_recording(path, stream="EXG")
    assert rec.info.ch_names == ["Ch1", "Ch2"]
    assert rec.info.get_channel_types() == ["eeg", "eeg"]
    np.testing.assert_array_equal(rec.data, bare["values"].T.astype(np.float32))


def test_xdf_stream_choice(tmp_path):
    small = dict(name="small", type="EEG", fmt="float32", srate=100.0, channels=None,
                 n_channels=2, stamps=np.arange(30) / 100.0, values=np.zeros((30, 2)))
    path = tmp_path / "two.xdf"
    write_xdf(path, [small, eeg_stream(name="big"), *marker_streams()])
    assert read_recording(path).info.ch_names == ["Fz", "Cz", "HEOG", "Acc"]  # most channels
    assert read_recording(path, stream="small").data.shape == (2, 30)  # by name
    assert read_recording(path, stream="Misc").data.shape == (2, 100)  # by type
    with pytest.raises(RecordingError, match=r"two\.xdf.*'nowhere'.*found 'small'.*'cues'"):
        read_recording(path, stream="nowhere")
    with pytest.raises(RecordingError, match="typed 'cues' holding numeric data"):
        read_recording(path, stream="cues")
    with pytest.raises(RecordingError, match="typed 'codes' with numeric samples at a regular"):
        read_recording(path, stream="codes")
    # by type alone (case-insensitive), and name and type together
    assert read_recording(path, stream_type="misc").data.shape == (2, 100)
    assert read_recording(path, stream="small", stream_type="EEG").data.shape == (2, 30)
    with pytest.raises(RecordingError, match="named or typed 'small' and of type 'Misc'"):
        read_recording(path, stream="small", stream_type="Misc")


def test_xdf_without_numeric_stream(tmp_path):
    path = tmp_path / "markers_only.xdf"
    write_xdf(path, marker_streams()[:1])
    with pytest.raises(RecordingError,
                       match=r"markers_only\.xdf: expected a data stream with numeric "
                             r"samples at a regular sampling rate, found 'cues'"):
        read_recording(path)


def test_xdf_cut_by_a_killed_recorder(tmp_path):
    eeg = eeg_stream()
    whole = tmp_path / "whole.xdf"
    write_xdf(whole, [eeg, *marker_streams()[:1]], footers=False, chunk=100)
    content = whole.read_bytes()
    # Cut inside the EEG's last chunk: the five complete chunks remain. Five bytes short
    # cuts the last sample's values, which pyxdf alone would fill with stale bytes.
    last_chunk_end = content.rfind(_chunk(4, struct.pack("<I", 2)
                                          + struct.pack("<dd", 100.0, OFFSET)))
    for short in (777, 5):
        cut = tmp_path / f"cut{short}.xdf"
        cut.write_bytes(content[: last_chunk_end - short])
        rec = read_recording(cut)
        assert rec.data.shape == (4, 500)
        np.testing.assert_array_equal(rec.data, eeg["values"][:500].T)
        np.testing.assert_array_equal(rec.timestamps, eeg["stamps"][:500] + OFFSET)
        assert len(rec.markers) == 0  # the marker stream's samples came after the cut


def test_xdf_corrupt(tmp_path):
    path = tmp_path / "bad.xdf"
    path.write_bytes(b"NOPE" + bytes(100))
    with pytest.raises(RecordingError, match=r"bad\.xdf: expected an XDF file"):
        read_recording(path)
    path.write_bytes(b"XDF:" + _chunk(1, b"<info>") + _chunk(2, struct.pack("<I", 1) + b"<in"))
    with pytest.raises(RecordingError, match=r"bad\.xdf: expected a readable XDF file"):
        read_recording(path)


def test_xdf_events_file_override(tmp_path):
    eeg = eeg_stream()
    path = tmp_path / "ev.xdf"
    write_xdf(path, [eeg, *marker_streams()])
    mne.write_events(tmp_path / "ev-eve.fif", np.array([[10, 0, 1], [20, 0, 2]]))
    rec = read_recording(path, events=tmp_path / "ev-eve.fif")
    assert rec.markers.values == ["1", "2"]
    np.testing.assert_array_equal(rec.markers.timestamps, eeg["stamps"][[10, 20]] + OFFSET)


# ---------------------------------------------------------------------------- real data

def test_real_ssvep_recording(shared_data):
    rec = read_recording(shared_data / "ssvep-exo" / "subject01" / "session1_raw.fif")
    assert rec.data.shape[0] == 8 and rec.data.dtype == np.float32
    assert rec.sfreq == 256.0
    assert rec.info.ch_names == ["Oz", "O1", "O2", "PO3", "POz", "PO7", "PO8", "PO4"]
    assert len(rec.markers) == 32
    assert sorted(set(rec.markers.values)) == ["1", "2", "3", "4"]
    assert all(rec.markers.values.count(v) == 8 for v in "1234")
    events = mne.read_events(shared_data / "ssvep-exo" / "subject01" / "session1-eve.fif")
    np.testing.assert_array_equal(rec.markers.timestamps, events[:, 0] / 256.0)
    np.testing.assert_array_equal(np.searchsorted(rec.timestamps, rec.markers.timestamps),
                                  events[:, 0])
