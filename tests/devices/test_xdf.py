"""The XDF writer: exact round trips through pyxdf, and files cut short by a crash."""

from __future__ import annotations

import struct

import bci.devices.xdf as xdf
import numpy as np
import pytest
import pyxdf
from bci.devices.xdf import BOUNDARY_UUID, XDFError, XDFWriter


def load(source):
    streams, header = pyxdf.load_xdf(source, dejitter_timestamps=False,
                                     synchronize_clocks=False, handle_clock_resets=False)
    return {int(s["info"]["stream_id"]): s for s in streams}, header


def first(stream: dict, key: str) -> str:
    return stream["info"][key][0]


def channels(stream: dict) -> list[dict]:
    return [{k: v[0] for k, v in ch.items()}
            for ch in stream["info"]["desc"][0]["channels"][0]["channel"]]


def test_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    eeg = rng.standard_normal((4, 3000)).astype(np.float32)
    eeg[2, 7] = np.nan  # non-finite values travel as they are
    # irregular float64 timestamps: any rounding would show
    ts = 5000.0 + np.cumsum(rng.uniform(0.001, 0.01, 3000))
    path = tmp_path / "rt.xdf"
    with XDFWriter(path) as w:
        w.add_stream(1, name="amp", type="EEG", channel_count=4, nominal_srate=250.0,
                     channel_format="float32", source_id="amp-1",
                     ch_names=["Fz", "Cz", "Pz", "Oz"], ch_types="EEG", ch_units="microvolts",
                     desc={"bci": {"time_corrected": 1}}, created_at=123.25)
        w.add_stream(7, name="cues", type="Markers", channel_count=1, nominal_srate=0,
                     channel_format="string")
        w.add_stream(8, name="decisions", type="Decisions", channel_count=2, nominal_srate=0,
                     channel_format="double64", ch_names=["index", "p"])
        w.add_stream(9, name="codes", type="Markers", channel_count=2, nominal_srate=0,
                     channel_format="int32")
        w.add_stream(10, name="pairs", type="Markers", channel_count=2, nominal_srate=0,
                     channel_format="string")
        # uneven pieces, and one larger than a chunk so it is split
        for a, b in ((0, 1), (1, 40), (40, 2900), (2900, 3000)):
            w.write_samples(1, eeg[:, a:b], ts[a:b])
        w.write_samples(7, ["left", "", "ünïcode ✓", "x" * 300], ts[[10, 20, 30, 40]])
        dec = rng.random((2, 5))
        w.write_samples(8, dec, ts[:5])
        w.write_samples(9, np.array([[1, -2], [3, 2**31 - 1]]).T, ts[:2])
        w.write_samples(10, [["a", "b"], [b"\xff raw", "d"]], ts[:2])
        assert w.sample_count(1) == 3000

    streams, header = load(path)
    assert header["info"]["version"] == ["1.0"]
    s = streams[1]
    assert s["time_series"].dtype == np.float32
    np.testing.assert_array_equal(s["time_series"].T, eeg)
    assert np.array_equal(s["time_stamps"], ts)  # bit-exact float64
    assert [first(s, k) for k in ("name", "type", "channel_count", "channel_format",
                                  "source_id")] == ["amp", "EEG", "4", "float32", "amp-1"]
    assert float(first(s, "nominal_srate")) == 250.0
    assert float(first(s, "created_at")) == 123.25
    assert [c["label"] for c in channels(s)] == ["Fz", "Cz", "Pz", "Oz"]
    assert {c["unit"] for c in channels(s)} == {"microvolts"}
    assert {c["type"] for c in channels(s)} == {"EEG"}
    assert s["info"]["desc"][0]["bci"][0]["time_corrected"] == ["1"]
    footer = s["footer"]["info"]
    assert footer["sample_count"] == ["3000"]
    assert float(footer["first_timestamp"][0]) == ts[0]
    assert float(footer["last_timestamp"][0]) == ts[-1]

    assert streams[7]["time_series"] == [["left"], [""], ["ünïcode ✓"], ["x" * 300]]
    np.testing.assert_array_equal(streams[7]["time_stamps"], ts[[10, 20, 30, 40]])
    np.testing.assert_array_equal(streams[8]["time_series"].T, dec)
    assert [c["label"] for c in channels(streams[8])] == ["index", "p"]
    np.testing.assert_array_equal(streams[9]["time_series"], [[1, -2], [3, 2**31 - 1]])
    assert streams[10]["time_series"] == [["a", "b"], ["\ufffd raw", "d"]]


def test_clock_offsets_and_default_loading(tmp_path):
    path = tmp_path / "offsets.xdf"
    ts = 100.0 + np.arange(200) / 100.0
    with XDFWriter(path) as w:
        w.add_stream(1, name="amp", type="EEG", channel_count=1, nominal_srate=100.0)
        for i in range(0, 200, 50):
            w.write_samples(1, np.ones((1, 50), np.float32), ts[i:i + 50])
            w.write_clock_offset(1, ts[i], 0.5)
    streams, _ = load(path)
    assert streams[1]["clock_times"] == [100.0, 100.5, 101.0, 101.5]
    assert streams[1]["clock_values"] == [0.5] * 4
    assert len(streams[1]["footer"]["info"]["clock_offsets"][0]["offset"]) == 4
    # pyxdf's own defaults (clock sync, dejitter) apply the offsets
    synced, _ = pyxdf.load_xdf(path)
    np.testing.assert_allclose(synced[0]["time_stamps"], ts + 0.5)


def test_flushed_data_is_readable_while_recording(tmp_path):
    path = tmp_path / "open.xdf"
    w = XDFWriter(path)
    w.add_stream(1, name="amp", type="EEG", channel_count=2, nominal_srate=10.0)
    w.write_samples(1, np.zeros((2, 5), np.float32), np.arange(5.0))
    streams, _ = load(path)
    assert streams[1]["time_stamps"].shape == (0,)  # not flushed yet
    w.flush(fsync=True)
    streams, _ = load(path)
    np.testing.assert_array_equal(streams[1]["time_stamps"], np.arange(5.0))
    assert "footer" not in streams[1]
    w.close()
    w.close()  # twice is harmless
    streams, _ = load(path)
    assert streams[1]["footer"]["info"]["sample_count"] == ["5"]


# ----------------------------------------------------------------- cut short by a crash

def _crashed_recording(path, *, boundary_bytes=1 << 20, n_writes=300):
    """A recording whose writer died: no footers; every sample written, in order."""
    rng = np.random.default_rng(3)
    written = {1: ([], []), 2: ([], []), 3: ([], [])}
    w = XDFWriter(path, boundary_bytes=boundary_bytes)
    w.add_stream(1, name="amp", type="EEG", channel_count=5, nominal_srate=100.0,
                 ch_names=list("abcde"))
    w.add_stream(2, name="cues", type="Markers", channel_count=1, nominal_srate=0,
                 channel_format="string")
    w.add_stream(3, name="decisions", type="Decisions", channel_count=3, nominal_srate=0,
                 channel_format="double64")
    t = 1000.0
    for _ in range(n_writes):
        k = int(rng.integers(1, 30))
        data = rng.standard_normal((5, k)).astype(np.float32)
        ts = t + np.arange(k) / 100.0
        t += k / 100.0
        w.write_samples(1, data, ts)
        written[1][0].append(data.T)
        written[1][1].append(ts)
        if rng.random() < 0.4:
            text = "marker-" + "x" * int(rng.integers(0, 40))
            w.write_samples(2, [text], [t])
            written[2][0].append([[text]])
            written[2][1].append([t])
        if rng.random() < 0.4:
            out = rng.random((3, 1))
            w.write_samples(3, out, [t])
            written[3][0].append(out.T)
            written[3][1].append([t])
        if rng.random() < 0.05:
            w.write_clock_offset(1, t, 0.0)
    w.flush(fsync=True)
    return w, written


def _complete_counts(content: bytes, cut: int) -> dict[int, int]:
    """Samples per stream in the chunks that end at or before ``cut``, parsed by hand."""
    counts = {1: 0, 2: 0, 3: 0}
    pos = 4
    while True:
        width = content[pos]
        length = int.from_bytes(content[pos + 1:pos + 1 + width], "little")
        end = pos + 1 + width + length
        if end > cut:
            return counts
        body = pos + 1 + width
        if struct.unpack("<H", content[body:body + 2])[0] == 3:
            stream_id = struct.unpack("<I", content[body + 2:body + 6])[0]
            n_width = content[body + 6]
            counts[stream_id] += int.from_bytes(content[body + 7:body + 7 + n_width],
                                                "little")
        pos = end


def _assert_prefix(streams: dict, written: dict, counts: dict[int, int]) -> None:
    for stream_id, (values, stamps) in written.items():
        n = counts[stream_id]
        got = streams[stream_id]
        assert len(got["time_stamps"]) == n, (stream_id, len(got["time_stamps"]), n)
        if n == 0:
            continue
        expected_ts = np.concatenate([np.asarray(s, float) for s in stamps])[:n]
        assert np.array_equal(got["time_stamps"], expected_ts)
        if stream_id == 2:
            assert got["time_series"] == [v for chunk in values for v in chunk][:n]
        else:
            np.testing.assert_array_equal(got["time_series"], np.concatenate(values)[:n])


@pytest.mark.parametrize(("page", "n_writes"), [(61, 50), (64, 50), (4096, 300)])
def test_cut_at_any_page_boundary_loads_all_complete_chunks(tmp_path, monkeypatch, page,
                                                            n_writes):
    """A killed writer or a power cut leaves the file cut at a page boundary (the kernel
    copies and writes whole pages). pyxdf must load every such prefix and return exactly
    the samples of its complete chunks; small page sizes put the cut on every kind of
    byte of every kind of chunk."""
    monkeypatch.setattr(xdf, "PAGE", page)
    path = tmp_path / "crash.xdf"
    w, written = _crashed_recording(path, n_writes=n_writes)
    content = path.read_bytes()
    w.close()
    headers_end = content.index(b"</info>", content.rindex(b"decisions")) + len("</info>")
    cuts = range(-(-headers_end // page) * page, len(content) + 1, page)
    assert len(cuts) >= 10
    for cut in cuts:
        streams, _ = load(_bytes_io(content[:cut]))
        _assert_prefix(streams, written, _complete_counts(content, cut))


def test_layout_matters(tmp_path, monkeypatch):
    """Without the layout rules some page-aligned cuts do break pyxdf (the test above
    would notice), so the writer's choices are what keeps them loadable."""
    monkeypatch.setattr(xdf, "PAGE", 64)
    monkeypatch.setattr(XDFWriter, "_layout",
                        lambda self, n, danger, *, pad: ([], 1 if n + 2 < 256 else 4))
    path = tmp_path / "naive.xdf"
    w, written = _crashed_recording(path, n_writes=50)
    content = path.read_bytes()
    w.close()
    for cut in range(2048, len(content), 64):
        try:
            streams, _ = load(_bytes_io(content[:cut]))
            _assert_prefix(streams, written, _complete_counts(content, cut))
        except Exception:
            return
    pytest.fail("every page-aligned cut of a naively laid out file loaded")


def test_cut_at_an_arbitrary_byte_reads_complete_chunks(tmp_path):
    """Cut anywhere (a corrupted disk), the project's reader keeps every complete chunk."""
    from bci.devices.files import read_recording

    path = tmp_path / "crash.xdf"
    w, written = _crashed_recording(path)
    content = path.read_bytes()
    w.close()
    rng = np.random.default_rng(5)
    headers_end = content.index(b"</info>", content.rindex(b"decisions")) + len("</info>")
    for cut in rng.integers(headers_end + 2000, len(content), 25):
        cut_path = tmp_path / f"cut{cut}.xdf"
        cut_path.write_bytes(content[:cut])
        rec = read_recording(cut_path, stream="amp")
        n = _complete_counts(content, cut)[1]
        expected = np.concatenate(written[1][0])[:n].T
        np.testing.assert_array_equal(rec.data, expected)
        assert rec.timestamps.shape == (n,)


def test_boundary_chunks_let_pyxdf_resync_after_corruption(tmp_path):
    path = tmp_path / "corrupt.xdf"
    w, written = _crashed_recording(path, boundary_bytes=2000)
    w.close()
    content = bytearray(path.read_bytes())
    boundaries = [i for i in range(len(content)) if content.startswith(BOUNDARY_UUID, i)]
    assert len(boundaries) > 5
    # break the length of the chunk that follows the middle boundary chunk
    middle = boundaries[len(boundaries) // 2] + len(BOUNDARY_UUID)
    content[middle] = 0x07
    path.write_bytes(bytes(content))
    streams, _ = load(path)
    total = sum(len(t) for t in written[1][1])
    got = streams[1]["time_stamps"]
    assert 0 < len(got) < total  # a stretch is lost...
    expected = np.concatenate(written[1][1])
    np.testing.assert_array_equal(got[:100], expected[:100])  # ...not the start...
    np.testing.assert_array_equal(got[-100:], expected[-100:])  # ...nor what follows
    assert streams[1]["footer"]["info"]["sample_count"] == [str(total)]


def _bytes_io(content: bytes):
    import io

    return io.BytesIO(content)


# ------------------------------------------------------------------------- bad input

def test_bad_input_is_named(tmp_path):
    w = XDFWriter(tmp_path / "bad.xdf")
    with pytest.raises(XDFError, match=r"channel_format must be one of.*found 'float16'"):
        w.add_stream(1, name="a", type="EEG", channel_count=2, nominal_srate=10,
                     channel_format="float16")
    with pytest.raises(XDFError, match=r"expected 2 channel names .* found 3"):
        w.add_stream(1, name="a", type="EEG", channel_count=2, nominal_srate=10,
                     ch_names=["a", "b", "c"])
    w.add_stream(1, name="a", type="EEG", channel_count=2, nominal_srate=10)
    with pytest.raises(XDFError, match="stream_id 1 is already used by stream 'a'"):
        w.add_stream(1, name="b", type="EEG", channel_count=2, nominal_srate=10)
    with pytest.raises(XDFError, match=r"expected data of shape \(n_channels=2, "
                                       r"n_samples=4\).*found \(4, 2\)"):
        w.write_samples(1, np.zeros((4, 2)), np.arange(4.0))
    with pytest.raises(XDFError, match="no stream with id 5; streams are \\[1\\]"):
        w.write_samples(5, np.zeros((2, 1)), [0.0])
    w.add_stream(2, name="m", type="Markers", channel_count=1, nominal_srate=0,
                 channel_format="string")
    with pytest.raises(XDFError, match="expected one timestamp per sample, found 1 "
                                       "timestamps for 2 samples"):
        w.write_samples(2, ["a", "b"], [0.0])
    with pytest.raises(XDFError, match="expected a sequence of samples, found a single str"):
        w.write_samples(2, "ab", [0.0])
    w.add_stream(3, name="i", type="Markers", channel_count=1, nominal_srate=0,
                 channel_format="int32")
    with pytest.raises(XDFError, match="stream 'i' is int32; expected integer data, "
                                       "found float64"):
        w.write_samples(3, np.array([[0.5]]), [0.0])
    with pytest.raises(XDFError, match="a stream header needs channel_count"):
        w.add_stream_header(4, "<info><name>x</name><channel_format>float32"
                               "</channel_format><nominal_srate>1</nominal_srate></info>")
    w.close()
    with pytest.raises(XDFError, match="the XDF writer is closed"):
        w.write_samples(1, np.zeros((2, 1)), [0.0])
    with pytest.raises(FileExistsError):
        XDFWriter(tmp_path / "bad.xdf", overwrite=False)
