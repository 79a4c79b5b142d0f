"""BIDS out (``bci export-bids``, ``bci record --bids``): written by mne-bids, read back
with mne-bids' own reader, on the runtime's session recordings, on a recording of real
LSL streams and on the shared real recordings."""

from __future__ import annotations

import csv
import sys
import threading

import mne
import numpy as np
import pytest
from bci.devices.bids import BIDSError, Decisions, export_bids, read_decisions
from bci.devices.files import read_recording
from bci.devices.session_recording import SessionRecording
from bci.devices.simulated_amplifier import spawn, stop_spawned

from bci.chunk import Chunk, Markers
from bci.decision import Decision
from bci.lslconfig import get_pylsl
from bci.recording import Recording

mne_bids = pytest.importorskip("mne_bids")

SFREQ = 250.0
CH_NAMES = ["O1", "Oz", "O2", "EOG1", "aux", "STI"]
CH_TYPES = ["eeg", "eeg", "eeg", "eog", "misc", "stim"]
CLASSES = ["8Hz", "10Hz"]
N = 2500
# the amplifier's clock runs 0.1 % slow of its nominal rate: stamps are not i / SFREQ
# (2.4 samples apart by the last decision)
PERIOD = 1.001 / SFREQ
T0 = 1234.5


def _data() -> np.ndarray:
    rng = np.random.default_rng(7)
    data = (rng.standard_normal((len(CH_NAMES), N)) * 2e-5).astype(np.float32)
    data[3] *= 10  # EOG, larger
    data[4] = np.arange(N, dtype=np.float32)  # a counter, not volts
    data[5] = 0
    data[5, [500, 1500]] = [1, 2]
    return data


def _read_tsv(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _bids_path(root, *, datatype="eeg", session="01", run=1, task="ssvep"):
    return mne_bids.BIDSPath(subject="01", session=session, task=task, run=run,
                             datatype=datatype, root=root)


@pytest.fixture
def session_xdf(tmp_path):
    """A session recording as ``bci run`` writes it: data in chunks, markers, decisions
    (two of them after the data ended)."""
    info = mne.create_info(CH_NAMES, SFREQ, CH_TYPES)
    path = tmp_path / "session.xdf"
    rec = SessionRecording(path, info, classes=CLASSES, stream_name="amp", source_id="amp")
    data = _data()
    stamps = T0 + np.arange(N) * PERIOD
    for i in range(0, N, 37):
        rec.data(Chunk(data[:, i:i + 37], stamps[i:i + 37]))
    rec.markers(Markers(stamps[[250, 1250, 2250]], ["8Hz", "10Hz", "8Hz"]))
    for index, (sample, label, p) in enumerate([(750, "8Hz", 0.9), (1750, "10Hz", 0.25),
                                                (2400, "8Hz", 0.6)]):
        rec(Decision(index, label, np.array([p, 1 - p]), CLASSES, stamps[sample], sample))
    after = stamps[-1] + 1.0
    for index in (3, 4):
        rec(Decision(index, "10Hz", np.array([0.5, 0.5]), CLASSES, after + index, 0))
    rec.close()
    return path, data


def test_session_recording_reads_back_with_mne_bids(tmp_path, session_xdf):
    path, data = session_xdf
    root = tmp_path / "bids"
    done = export_bids(path, root, subject="01", session="01", task="ssvep", run=1)
    assert done.datatype == "eeg" and done.line_freq == 50.0
    assert (done.n_markers, done.n_decisions, done.n_dropped) == (3, 3, 2)
    assert done.path == root / "sub-01" / "ses-01" / "eeg" / \
        "sub-01_ses-01_task-ssvep_run-1_eeg.vhdr"
    assert (root / "dataset_description.json").is_file()

    raw = mne_bids.read_raw_bids(_bids_path(root), verbose="error")
    assert raw.ch_names == CH_NAMES
    assert raw.get_channel_types() == CH_TYPES
    assert raw.info["sfreq"] == SFREQ and raw.info["line_freq"] == 50.0
    # float32 microvolts: every sample as recorded, to float32 precision
    np.testing.assert_allclose(raw.get_data(), data, rtol=2e-7, atol=0)

    rows = _read_tsv(done.events_tsv)
    got = [(int(r["sample"]), r["trial_type"]) for r in rows]
    # placed on the sample of their timestamp, not at (t - t0) * sfreq (drifting clock)
    assert got == [(250, "8Hz"), (750, "decision/8Hz"), (1250, "10Hz"),
                   (1750, "decision/10Hz"), (2250, "8Hz"), (2400, "decision/8Hz")]
    decision_rows = [r for r in rows if r["trial_type"].startswith("decision/")]
    assert [float(r["p_8Hz"]) for r in decision_rows] == [0.9, 0.25, 0.6]
    assert [float(r["p_10Hz"]) for r in decision_rows] == pytest.approx([0.1, 0.75, 0.4])
    assert all(r["p_8Hz"] == "n/a" for r in rows if r not in decision_rows)
    codes = {r["trial_type"]: r["value"] for r in rows}
    assert len(set(codes.values())) == len(codes)  # one code per kind of event

    # mne-bids' reader turns events.tsv back into annotations at the same samples
    ann = raw.annotations
    assert list(ann.description) == [t for _, t in got]
    np.testing.assert_allclose(ann.onset * SFREQ, [s for s, _ in got], atol=1e-6)
    # channel types and sidecar as BIDS wants them
    channels = {r["name"]: r["type"] for r in _read_tsv(
        done.path.with_name("sub-01_ses-01_task-ssvep_run-1_channels.tsv"))}
    assert channels == {"O1": "EEG", "Oz": "EEG", "O2": "EEG", "EOG1": "EOG",
                        "aux": "MISC", "STI": "TRIG"}


def test_read_decisions_from_the_session_recording(session_xdf):
    path, _ = session_xdf
    found = read_decisions(path)
    assert found.labels == ["8Hz", "10Hz", "8Hz", "10Hz", "10Hz"]
    assert found.output_names == ["p_8Hz", "p_10Hz"]
    np.testing.assert_allclose(found.outputs[:3, 0], [0.9, 0.25, 0.6])
    np.testing.assert_allclose(found.timestamps[:3], T0 + np.array([750, 1750, 2400]) * PERIOD)


def test_ieeg_channels_make_a_bids_ieeg_recording(tmp_path):
    rng = np.random.default_rng(1)
    data = (rng.standard_normal((4, 2000)) * 1e-4).astype(np.float32)
    info = mne.create_info(["A1", "A2", "G1", "ECG"], 1000.0, ["seeg", "seeg", "ecog", "ecg"])
    stamps = 10.0 + np.arange(2000) / 1000.0
    recording = Recording(info, data, stamps, Markers(stamps[[100, 900]], ["word", "rest"]))
    decisions = Decisions(stamps[[500]], [None], np.array([[0.3]]), ["out_0"])
    done = export_bids(recording, tmp_path / "bids", subject="P7", task="words",
                       line_freq=60.0, decisions=decisions)
    assert done.datatype == "ieeg"
    assert done.path.name == "sub-P7_task-words_ieeg.vhdr"
    raw = mne_bids.read_raw_bids(mne_bids.BIDSPath(subject="P7", task="words",
                                                   datatype="ieeg", root=tmp_path / "bids"),
                                 verbose="error")
    assert raw.get_channel_types() == ["seeg", "seeg", "ecog", "ecg"]
    assert raw.info["line_freq"] == 60.0
    np.testing.assert_allclose(raw.get_data(), data, rtol=2e-7, atol=0)
    rows = _read_tsv(done.events_tsv)
    assert [(r["sample"], r["trial_type"], r["out_0"]) for r in rows] == [
        ("100", "word", "n/a"), ("500", "decision", "0.3"), ("900", "rest", "n/a")]


def test_cli_exports_and_refuses_bad_input(tmp_path, session_xdf, capsys, monkeypatch):
    from bci.cli import main

    path, _ = session_xdf
    root = tmp_path / "bids"
    args = ["export-bids", str(path), "--bids", str(root), "--subject", "01", "--task", "ssvep"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "sub-01_task-ssvep_eeg.vhdr (BIDS-EEG, 6 channels" in out
    assert "3 marker(s), 3 decision(s) in events.tsv, 2 outside the data left out" in out
    written = root / "sub-01" / "eeg" / "sub-01_task-ssvep_eeg.eeg"
    before = written.read_bytes()

    # an existing recording is kept unless --overwrite
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("bci export-bids: error: ") and err.count("\n") == 1
    assert "sub-01_task-ssvep_eeg.vhdr exists; expected a new BIDS recording" in err
    assert main([*args, "--overwrite", "--line-freq", "60"]) == 0
    assert "line 60 Hz" in capsys.readouterr().out
    assert written.read_bytes() == before

    for bad, message in (
            (["--subject", "sub-01"], "subject label: expected letters and digits only "
                                      "(BIDS, e.g. '01'), found 'sub-01'"),
            (["--task", "ssvep_a"], "task label: expected letters and digits only"),
            (["--session", "1.0"], "session label: expected letters and digits only"),
            (["--run", "0"], "run: expected an integer >= 1, found 0")):
        assert main([*args, *bad]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    with pytest.raises(SystemExit) as stopped:  # argparse: bad option value
        main([*args, "--line-freq", "-50"])
    assert stopped.value.code == 2
    assert "expected a power-line frequency in Hz (50, 60), found '-50'" in \
        capsys.readouterr().err
    assert main(["export-bids", str(tmp_path / "nowhere.xdf"), "--bids", str(root),
                 "--subject", "02", "--task", "ssvep"]) == 2
    assert "nowhere.xdf: no such file (expected a recording file)" in capsys.readouterr().err
    assert not (root / "sub-02").exists()

    monkeypatch.setitem(sys.modules, "mne_bids", None)  # as if it were not installed
    assert main([*args, "--subject", "03"]) == 2
    err = capsys.readouterr().err
    assert "writing BIDS needs mne-bids, which is not installed: expected `pip install " \
           "'bci-runtime[bids]'`" in err and err.count("\n") == 1
    with pytest.raises(BIDSError, match="needs mne-bids"):
        export_bids(path, root, subject="03", task="ssvep")


@pytest.mark.timeout(120)
def test_record_bids_end_to_end_on_the_simulated_amplifier(tmp_path, unique_name, capsys):
    """``bci record --bids`` on a simulated amplifier, its markers and a decision outlet."""
    from bci.cli import main
    from bci.outputs import DecisionOutlet

    pylsl = get_pylsl()
    proc = spawn(name=unique_name, marker_name=f"{unique_name}-m", seed=3,
                 ch_names=["Oz", "O1", "O2"], frequencies=[8.0, 10.0], trial_duration=0.4,
                 iti=0.2)
    outlet = DecisionOutlet(f"{unique_name}-d", classes=CLASSES, n_outputs=2)
    stop = threading.Event()
    sent: list[float] = []

    def decide():
        # decisions stamped with a time inside the recorded data, as a live session does
        while not stop.wait(0.3):
            t = pylsl.local_clock() - 0.1
            outlet(Decision(len(sent), CLASSES[len(sent) % 2], np.array([0.7, 0.3]),
                            CLASSES, t, 0, emitted=t + 0.02))
            sent.append(t)

    thread = threading.Thread(target=decide, daemon=True)
    thread.start()
    xdf, root = tmp_path / "rec.xdf", tmp_path / "bids"
    try:
        code = main(["record", "--stream", unique_name, "--stream", f"{unique_name}-m",
                     "--stream", f"{unique_name}-d", "--duration", "3", "-o", str(xdf),
                     "--bids", str(root), "--subject", "01", "--session", "01",
                     "--task", "ssvep", "--run", "2", "--line-freq", "60"])
    finally:
        stop.set()
        thread.join()
        outlet.close()
        stop_spawned(proc)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "sub-01_ses-01_task-ssvep_run-2_eeg.vhdr (BIDS-EEG, 3 channels" in out

    recording = read_recording(xdf)
    raw = mne_bids.read_raw_bids(_bids_path(root, run=2), verbose="error")
    assert raw.ch_names == ["Oz", "O1", "O2"] and set(raw.get_channel_types()) == {"eeg"}
    assert raw.info["line_freq"] == 60.0 and raw.n_times == recording.data.shape[1] > 500
    np.testing.assert_allclose(raw.get_data(), recording.data, rtol=2e-7, atol=0)
    ann = list(raw.annotations.description)
    markers = [v for t, v in recording.markers
               if recording.timestamps[0] <= t <= recording.timestamps[-1]]
    assert len(markers) >= 3 and [a for a in ann if not a.startswith("decision")] == markers
    decisions = [a for a in ann if a.startswith("decision/")]
    assert len(decisions) >= 5 and set(decisions) == {"decision/8Hz", "decision/10Hz"}
    rows = _read_tsv(root / "sub-01" / "ses-01" / "eeg" /
                     "sub-01_ses-01_task-ssvep_run-2_events.tsv")
    latencies = [float(r["latency"]) for r in rows if r["trial_type"].startswith("decision")]
    # emitted is on the sender's clock, the stamp time-corrected by the recorder: equal
    # here up to the clock offset it measured on this machine (microseconds)
    np.testing.assert_allclose(latencies, 0.02, atol=1e-3)


def test_record_checks_bids_options_before_recording(tmp_path, capsys):
    from bci.cli import main

    xdf = tmp_path / "rec.xdf"
    assert main(["record", "--stream", "nowhere", "-o", str(xdf), "--bids",
                 str(tmp_path / "bids"), "--subject", "0 1", "--task", "ssvep"]) == 2
    assert "subject label: expected letters and digits only" in capsys.readouterr().err
    assert main(["record", "--stream", "nowhere", "-o", str(xdf), "--subject", "01"]) == 2
    assert "--subject given without --bids ROOT" in capsys.readouterr().err
    assert main(["record", "--stream", "nowhere", "-o", str(xdf), "--bids",
                 str(tmp_path / "bids"), "--task", "ssvep"]) == 2
    assert "subject label: expected one (e.g. '01'), found none" in capsys.readouterr().err
    assert not xdf.exists()


def test_shared_ssvep_recording_with_its_events(tmp_path, shared_data):
    path = shared_data / "ssvep-exo" / "subject01" / "session1_raw.fif"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    recording = read_recording(path)  # events from its companion session1-eve.fif
    done = export_bids(path, tmp_path / "bids", subject="01", session="1", task="ssvep")
    assert done.n_markers == len(recording.markers) == 32 and done.n_decisions == 0
    raw = mne_bids.read_raw_bids(_bids_path(tmp_path / "bids", session="1", run=None),
                                 verbose="error")
    original = mne.io.read_raw_fif(path, verbose="error")
    assert raw.ch_names == original.ch_names
    assert raw.get_channel_types() == original.get_channel_types()
    assert raw.info["meas_date"] == original.info["meas_date"]
    assert raw.info["line_freq"] == 50.0
    np.testing.assert_allclose(raw.get_data(), original.get_data(), rtol=1e-6, atol=1e-15)
    rows = _read_tsv(done.events_tsv)
    samples = np.round(recording.markers.timestamps * original.info["sfreq"]).astype(int)
    assert [int(r["sample"]) for r in rows] == samples.tolist()
    assert [r["trial_type"] for r in rows] == recording.markers.values
    assert [r["value"] for r in rows] == recording.markers.values  # codes kept
