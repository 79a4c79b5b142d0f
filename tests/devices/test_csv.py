"""CSV/TSV import with an explicit column mapping (OpenBCI GUI, Muse, plain TSV)."""

from __future__ import annotations

import datetime

import numpy as np
import pytest
from bci.devices.csv_reader import ColumnMap, read_csv
from bci.devices.files import read_recording
from sessions import SSVEP_FBCCA_EPOCHS

from bci.cli import main
from bci.datasets.synthetic import make_recording
from bci.errors import RecordingError

OPENBCI_MAP = """
channels = ["EXG Channel *"]
time = "Timestamp"
unit = "uV"
sfreq = 250
marker = "Marker Channel"
ch_names = ["O1", "Oz", "O2", "Pz"]
"""


def write_openbci(path, data_uv: np.ndarray, stamps: np.ndarray, marks: dict[int, int]):
    """An OpenBCI GUI export: %-header lines, then Sample Index, EXG…, Timestamp."""
    lines = ["%OpenBCI Raw EXG Data", "%Number of channels = 4", "%Sample Rate = 250 Hz",
             "%Board = OpenBCI_GUI$BoardCytonSerial"]
    lines.append("Sample Index, " + ", ".join(f"EXG Channel {i}" for i in range(4))
                 + ", Accel Channel 0, Marker Channel, Timestamp")
    for k in range(data_uv.shape[1]):
        cells = [str(k % 256)] + [f"{v:.6f}" for v in data_uv[:, k]] + ["0.0",
                 f"{marks.get(k, 0):.1f}", f"{stamps[k]:.6f}"]
        lines.append(", ".join(cells))
    path.write_text("\n".join(lines) + "\n")


def test_openbci_export_with_mapping_file(tmp_path):
    rng = np.random.default_rng(1)
    data_uv = rng.normal(0, 20, (4, 500))
    stamps = 1.7e9 + np.arange(500) / 250.0
    path = tmp_path / "OpenBCI-RAW-2024.txt"
    write_openbci(path, data_uv, stamps, {100: 1, 300: 2})
    mapping = tmp_path / "openbci.toml"
    mapping.write_text(OPENBCI_MAP)
    rec = read_recording(path, columns=mapping)
    assert rec.info.ch_names == ["O1", "Oz", "O2", "Pz"]
    assert rec.sfreq == 250.0
    np.testing.assert_allclose(rec.data, data_uv * 1e-6, rtol=1e-5, atol=1e-12)  # µV to V
    np.testing.assert_allclose(rec.timestamps, stamps, atol=1e-6)
    assert rec.markers.values == ["1", "2"]  # zeros are no markers; codes as integers
    np.testing.assert_allclose(rec.markers.timestamps, stamps[[100, 300]], atol=1e-6)
    assert "4 channel(s) from columns EXG Channel 0" in rec.note


def test_plain_tsv_without_time_column_and_muse_like_marker_rows(tmp_path):
    rec0 = make_recording(4.0, paradigm="ssvep", seed=2)
    path = tmp_path / "plain.tsv"
    rows = ["Oz\tO1\tcue"] + [
        "\t".join(f"{v * 1e3:.9f}" for v in rec0.data[:2, k]) + ("\tgo" if k == 256 else "\t")
        for k in range(rec0.data.shape[1])]
    path.write_text("\n".join(rows) + "\n")
    rec = read_recording(path, columns={"channels": [0, "O1"], "unit": "mV", "sfreq": 256.0,
                                        "marker": "cue"})
    np.testing.assert_allclose(rec.data, rec0.data[:2], rtol=1e-5, atol=1e-12)
    np.testing.assert_array_equal(rec.timestamps, np.arange(rec0.data.shape[1]) / 256.0)
    assert rec.markers.values == ["go"] and rec.markers.timestamps[0] == 1.0

    # Mind Monitor: dates as timestamps, markers on rows of their own without data
    start = datetime.datetime(2024, 5, 1, 12, 0, 0)
    lines = ["TimeStamp,RAW_TP9,RAW_AF7,Elements"]
    for k in range(20):
        t = start + datetime.timedelta(seconds=k / 256)
        lines.append(f"{t.isoformat(sep=' ')},{800 + k},{810 - k},")
        if k == 10:
            lines.append(f"{(t + datetime.timedelta(milliseconds=1)).isoformat(sep=' ')},,,"
                         "/Marker/1")
    muse = tmp_path / "muse.csv"
    muse.write_text("\n".join(lines) + "\n")
    rec = read_csv(muse, ColumnMap(channels=["RAW_*"], time="TimeStamp", time_unit="datetime",
                                   marker="Elements", unit="uV"))
    assert rec.data.shape == (2, 20) and rec.info.ch_names == ["RAW_TP9", "RAW_AF7"]
    assert rec.sfreq == pytest.approx(256.0, rel=1e-3)
    assert rec.markers.values == ["/Marker/1"]
    assert rec.markers.timestamps[0] == pytest.approx(rec.timestamps[10] + 1e-3)


def test_bad_mappings_name_column_expected_and_found(tmp_path):
    path = tmp_path / "rec.csv"
    path.write_text("time,Fz,Cz,note\n0.000,1.0,2.0,\n0.004,1.5,abc,\n0.008,1.0,2.0,\n")
    base = {"time": "time", "unit": "uV"}
    with pytest.raises(RecordingError, match=r"rec\.csv: channels column 'Pz' not found; "
                                             r"the columns are 'time', 'Fz', 'Cz', 'note'"):
        read_recording(path, columns={**base, "channels": ["Fz", "Pz"]})
    with pytest.raises(RecordingError, match=r"rec\.csv: line 3, column 'Cz': expected a "
                                             r"number, found 'abc'"):
        read_recording(path, columns={**base, "channels": ["Fz", "Cz"]})
    with pytest.raises(RecordingError, match=r"unit 'furlong': expected one of V, mV, uV"):
        read_recording(path, columns={**base, "channels": ["Fz"], "unit": "furlong"})
    with pytest.raises(RecordingError, match=r"sfreq 500 Hz: expected it to match the "
                                             r"timestamps in 'time', which show 250 Hz"):
        read_recording(path, columns={**base, "channels": ["Fz"], "sfreq": 500})
    with pytest.raises(RecordingError, match=r"expected a time column or sfreq"):
        read_recording(path, columns={"channels": ["Fz"], "unit": "uV"})
    with pytest.raises(RecordingError, match=r"unknown key\(s\) chanels"):
        read_recording(path, columns={"chanels": ["Fz"], "unit": "uV"})
    with pytest.raises(RecordingError, match=r"rec\.csv: a \.csv file needs a column mapping"):
        read_recording(path)
    # microvolt numbers declared as volts are not EEG
    big = tmp_path / "big.csv"
    big.write_text("Fz\n" + "\n".join(str(v) for v in (0, 40, -35, 20, -50, 10)) + "\n")
    with pytest.raises(RecordingError, match=r"big\.csv: column 'Fz' in unit 'V': expected "
                                             r"electrophysiology below 1 V per sample"):
        read_recording(big, columns={"channels": ["Fz"], "unit": "V", "sfreq": 100})


def test_replay_command_reads_csv_with_columns(tmp_path, capsys):
    rec0 = make_recording(22.0, paradigm="ssvep", seed=11)
    path = tmp_path / "export.csv"
    rows = ["t," + ",".join(rec0.info.ch_names) + ",marker"]
    cues = dict(zip(np.searchsorted(rec0.timestamps, rec0.markers.timestamps),
                    rec0.markers.values, strict=True))
    for k in range(rec0.data.shape[1]):
        rows.append(f"{rec0.timestamps[k]:.6f}," + ",".join(f"{v * 1e6:.4f}"
                                                             for v in rec0.data[:, k])
                    + f",{cues.get(k, '')}")
    path.write_text("\n".join(rows) + "\n")
    mapping = tmp_path / "map.toml"
    mapping.write_text(f'channels = {list(rec0.info.ch_names)!r}\ntime = "t"\nunit = "uV"\n'
                       'marker = "marker"\n'.replace("'", '"'))
    session = tmp_path / "s.toml"
    session.write_text(SSVEP_FBCCA_EPOCHS)
    assert main(["replay", str(session), "--input", str(path), "--columns",
                 str(mapping)]) == 0
    out = capsys.readouterr().out
    assert f"{len(rec0.markers)} marker(s) from 'marker'" in out
    assert f"{len(rec0.markers)} decisions, accuracy 1.000" in out
    assert main(["replay", str(session), "--input", str(path)]) != 0
    assert "needs a column mapping" in capsys.readouterr().err
