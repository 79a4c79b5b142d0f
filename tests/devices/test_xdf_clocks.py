"""XDF files as LabRecorder writes them: streams from other computers, clock resets.

LabRecorder stores each stream's samples with the stamps of the computer that sent them,
and every few seconds a ClockOffset chunk: when it was measured (on that computer's
clock) and what to add to reach the recording computer's clock. The files below are
built that way, and replaying them must give the decisions of the same data recorded on
one clock.
"""

from __future__ import annotations

import numpy as np
import pytest
from bci.devices.files import read_recording
from bci.devices.xdf import XDFWriter
from sessions import SSVEP_FBCCA_EPOCHS

from bci.cli import main
from bci.datasets.synthetic import make_recording
from bci.errors import RecordingError
from bci.runner import run_replay
from bci.session import SessionConfig

LOCAL_START = 6000.0  # the recording computer's clock when the data begin
OFFSET = 5000.0  # the EEG computer's clock runs this far behind
RESTART_UPTIME = 3.0  # the EEG computer's clock after its reset
OFFSET_EVERY = 5.0  # LabRecorder measures clock offsets every 5 s


@pytest.fixture(scope="module")
def data():
    """Synthetic SSVEP on the recording computer's clock; markers between samples."""
    rec = make_recording(40.0, paradigm="ssvep", seed=11)
    local = rec.timestamps + LOCAL_START
    # a quarter sample after a sample: which sample a marker lands on does not hinge
    # on the last bits of a clock correction
    cues = np.asarray(rec.markers.timestamps) + LOCAL_START + 0.25 / rec.sfreq
    return rec, local, cues, list(rec.markers.values)


def _eeg_clock(local: np.ndarray, reset_at: float) -> tuple[np.ndarray, np.ndarray]:
    """Stamps on the EEG computer's clock, and that clock's offset to the local clock."""
    before = local < reset_at
    remote = np.where(before, local - OFFSET, local - reset_at + RESTART_UPTIME)
    return remote, local - remote


def write_labrecorder(path, rec, local, cues, values, *, shifted: bool = True,
                      empty_first: bool = False, noise: float = 2e-6) -> np.ndarray:
    """Write ``rec`` as LabRecorder would; return the EEG stamps as written.

    With ``shifted``, the EEG comes from another computer whose clock is ``OFFSET``
    behind and restarts halfway; the markers come from the recording computer.
    """
    rng = np.random.default_rng(5)
    reset_at = local[local.size // 2] if shifted else np.inf
    stamps, offsets = _eeg_clock(local, reset_at) if shifted else (local, 0 * local)
    n = rec.data.shape[1]
    with XDFWriter(path) as w:
        sid = 1
        if empty_first:  # a stream that was announced but never sent a sample
            w.add_stream(0, name="dead amp", type="EEG", channel_count=32,
                         nominal_srate=512.0, created_at=LOCAL_START)
            w.add_stream(9, name="dead markers", type="Markers", channel_count=1,
                         nominal_srate=0, channel_format="string", created_at=LOCAL_START)
        w.add_stream(sid, name="BioSemi", type="EEG", channel_count=len(rec.info.ch_names),
                     nominal_srate=rec.sfreq, ch_names=rec.info.ch_names, ch_units="volts",
                     created_at=float(stamps[0]))
        w.add_stream(2, name="MyMarkerStream", type="Markers", channel_count=1,
                     nominal_srate=0, channel_format="string", created_at=LOCAL_START)
        step = round(rec.sfreq / 4)
        next_offset = local[0]
        for start in range(0, n, step):
            stop = min(start + step, n)
            if local[start] >= next_offset:
                # measured on each sender's clock, as LabRecorder stores them
                value = offsets[start] + rng.normal(0, noise)
                w.write_clock_offset(sid, float(stamps[start]), float(value))
                w.write_clock_offset(2, float(local[start]), float(rng.normal(0, noise)))
                next_offset += OFFSET_EVERY
            w.write_samples(sid, rec.data[:, start:stop], stamps[start:stop])
            due = (cues >= local[start]) & (cues < local[stop - 1] + 1 / rec.sfreq)
            if due.any():
                w.write_samples(2, [values[i] for i in np.flatnonzero(due)], cues[due])
    return stamps


def _decisions(result) -> list[tuple]:
    return [(d.label, d.true_label, d.marker[1] if d.marker else None) for d in
            result.decisions]


def test_other_clock_with_offset_and_reset_replays_like_one_clock(tmp_path, data):
    rec, local, cues, values = data
    config = SessionConfig.load(_session(tmp_path))
    plain = tmp_path / "one_clock.xdf"
    write_labrecorder(plain, rec, local, cues, values, shifted=False)
    shifted = tmp_path / "two_clocks.xdf"
    written = write_labrecorder(shifted, rec, local, cues, values)
    assert (np.diff(written) < 0).sum() == 1  # the EEG stamps jump back at the reset
    assert written[0] == pytest.approx(LOCAL_START - OFFSET)

    expected = run_replay(config, read_recording(plain))
    got_rec = read_recording(shifted)
    got = run_replay(config, got_rec)

    assert len(expected.decisions) == 13 and expected.accuracy >= 0.75
    assert _decisions(got) == _decisions(expected)
    np.testing.assert_allclose([d.last_sample_time for d in got.decisions],
                               [d.last_sample_time for d in expected.decisions], atol=1e-4)
    np.testing.assert_allclose(got_rec.timestamps, local, atol=1e-4)  # on one clock again
    assert got.summary()["counts"] == expected.summary()["counts"]

    # --no-sync: the raw stamps, exactly; the markers then miss the data entirely
    raw = read_recording(shifted, sync=False)
    np.testing.assert_array_equal(raw.timestamps, written)
    np.testing.assert_array_equal(raw.markers.timestamps, cues)
    assert len(run_replay(config, raw).decisions) == 0


def test_empty_streams_are_skipped_and_the_choice_is_said(tmp_path, data):
    rec, local, cues, values = data
    path = tmp_path / "empty_first.xdf"
    write_labrecorder(path, rec, local, cues, values, empty_first=True)
    got = read_recording(path)
    assert got.info.ch_names == rec.info.ch_names  # not the 32 empty channels
    assert got.note.startswith("using stream 'BioSemi' (type 'EEG', 8 ch float32, 256 Hz, "
                               "10240 samples); 13 marker(s) from 'MyMarkerStream'")
    np.testing.assert_array_equal(got.data, rec.data)
    # asking for the empty one says what is there
    with pytest.raises(RecordingError, match=r"'dead amp' holding samples, found only empty "
                                             r"ones: 'dead amp' \(type 'EEG', 32 ch"):
        read_recording(path, stream="dead amp")
    assert read_recording(path, stream_type="eeg").info.ch_names == rec.info.ch_names


def test_replay_command_says_which_stream_and_keeps_raw_stamps_on_request(tmp_path, data,
                                                                         capsys):
    rec, local, cues, values = data
    path = tmp_path / "two_clocks.xdf"
    write_labrecorder(path, rec, local, cues, values, empty_first=True)
    session = _session(tmp_path)
    assert main(["replay", str(session), "--input", str(path)]) == 0
    out = capsys.readouterr().out
    assert "using stream 'BioSemi'" in out and "synchronised clocks" in out
    assert "13 decisions" in out
    main(["replay", str(session), "--input", str(path), "--no-sync"])
    out = capsys.readouterr().out
    assert "raw stamps (no clock sync)" in out and "0 decisions" in out


def _session(tmp_path):
    path = tmp_path / "ssvep.toml"
    path.write_text(SSVEP_FBCCA_EPOCHS)
    return path
