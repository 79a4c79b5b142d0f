"""Live → record → replay through the one loop: the same decisions and the same skips,
across an amplifier outage, a NaN burst and a burst of markers (real LSL on loopback)."""

from __future__ import annotations

import threading

import mne
import numpy as np
import pytest
from bci.devices.files import read_recording
from streams import Player, make_marker_outlet, make_outlet

from bci.chunk import FLAG_GAP, Chunk, Markers
from bci.pipeline import Pipeline
from bci.quality import TimestampCheck
from bci.recording import Recording, RecordingSource
from bci.runner import Branch, Loop, run_live, run_replay
from bci.session import SessionConfig
from bci.source import CuedSource

CH = ["O1", "Oz", "O2", "Pz"]
SFREQ = 200.0
FREQS = [8.0, 10.0, 12.0, 15.0]
CLASSES = ["8Hz", "10Hz", "12Hz", "15Hz"]
OUTAGE_AT, OUTAGE_S = 600, 2.5  # samples 600… arrive 2.5 s late: the amplifier was out
NAN_AT = 900
EVENTS = {"A": "8Hz", "B": "10Hz", "C": "12Hz", "D": "15Hz"}


def _signal(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * SFREQ)
    t = np.arange(n) / SFREQ
    x = rng.standard_normal((len(CH), n)) * 1e-5
    for k, f in enumerate(FREQS):  # each second a different target flickers
        on = (t.astype(int) % len(FREQS)) == k
        x[:, on] += 2e-5 * np.sin(2 * np.pi * f * t[on])
    x[1:3, NAN_AT:NAN_AT + 6] = np.nan  # a burst of NaN on two channels
    x[0, NAN_AT + 40] = np.inf
    return x.astype(np.float32)


def _offsets(n: int) -> np.ndarray:
    offsets = np.arange(n) / SFREQ
    offsets[OUTAGE_AT:] += OUTAGE_S
    return offsets


def _markers() -> list[tuple[int, str]]:
    single = [(150, "A"), (420, "B"), (560, "C"), (700, "D"), (880, "A"), (1150, "C")]
    # forty markers inside one chunk (samples 760 … 763), some of them unknown
    burst = [(760 + i % 4, "ABCDx"[i % 5]) for i in range(40)]
    return single + burst


def _markers_at(pairs, timestamps) -> Markers:
    return Markers(np.array([timestamps[i] for i, _ in pairs], np.float64),
                   [v for _, v in pairs])


def _config(name: str, record, window: dict) -> SessionConfig:
    return SessionConfig.from_dict({
        "source": {"stream": name, "markers": f"{name}-m", "resolve_timeout": 5.0,
                   "stall_timeout": 0.3},
        "chain": {"nodes": [{"kind": "notch", "freqs": [50.0]}]},
        "window": {"events": EVENTS, "backlog": 256, **window},
        "decoder": {"kind": "fbcca", "frequencies": FREQS, "classes": CLASSES,
                    "n_harmonics": 2, "n_bands": 3},
        "outputs": {"lsl": False, "record": str(record)},
    })


def _live_then_replay(name: str, tmp_path, window: dict):
    data = _signal(7.0, seed=3)
    n = data.shape[1]
    outlet = make_outlet(name, CH, SFREQ, source_id=name)
    markers = make_marker_outlet(f"{name}-m")
    player = Player(outlet, data, SFREQ, chunk=8, markers=_markers(), marker_outlet=markers,
                    offsets=_offsets(n), marker_lead=0.25)
    config = _config(name, tmp_path / "live.xdf", window)
    try:
        live = run_live(config, duration=n / SFREQ + OUTAGE_S + 1.5,
                        on_ready=lambda _: player.start())
    finally:
        player.stop_event.set()
        player.join(5)
    assert live.n_samples == n  # acquisition got every sample that was sent
    rec = read_recording(tmp_path / "live.xdf", stream=name)
    np.testing.assert_array_equal(rec.data, data)
    replayed = run_replay(config, rec, chunk_size=13)
    return live, replayed, player, rec


def _same(live, replayed) -> None:
    assert live.counts == replayed.counts
    assert [(d.index, d.stop, d.label, d.true_label, d.marker, d.last_sample_time)
            for d in live.decisions] == [
        (d.index, d.stop, d.label, d.true_label, d.marker, d.last_sample_time)
        for d in replayed.decisions]
    for a, b in zip(live.decisions, replayed.decisions, strict=True):
        assert np.array_equal(a.output, b.output)

    def gaps(r):
        return [{k: e[k] for k in ("at", "seconds", "missing_samples")}
                for e in r.events if e["kind"] == "gap"]

    assert gaps(live) == gaps(replayed)


@pytest.mark.slow
def test_outage_sliding_windows_replay_to_the_same_decisions_and_skips(unique_name, tmp_path):
    live, replayed, player, rec = _live_then_replay(
        unique_name, tmp_path, {"mode": "sliding", "length": 0.5, "step": 0.1})
    _same(live, replayed)
    counts = live.counts
    assert counts["skipped_backlog"] == 0  # every window was decoded live too
    assert counts["windows"] == len(live.decisions) > 20
    # 100-sample windows, one due every 20 samples, each ending on the newest sample
    # (at most a chunk after its grid sample): the recording kept every due one, and
    # those touching sample 600 (after the gap) or the NaN/Inf samples 900 … 940 were
    # skipped — 4 to 6 of each, as the chunking fell
    stops = rec.windows.stops
    grid = np.arange(100, 1401, 20)
    assert stops.size == grid.size and np.all((stops >= grid) & (stops < grid + 20))
    touching = lambda first, last: int(np.sum((stops - 100 <= last) & (stops > first)))  # noqa: E731
    assert counts["skipped_gap"] == touching(OUTAGE_AT, OUTAGE_AT) in (4, 5, 6)
    assert counts["skipped_nonfinite"] == touching(NAN_AT, NAN_AT + 40) in (6, 7, 8, 9)
    assert counts["windows"] + counts["skipped_gap"] + counts["skipped_nonfinite"] \
        == stops.size
    assert counts["nonfinite_samples"] == 7
    kinds = [e["kind"] for e in live.events]
    assert "stalled" in kinds and "resumed" in kinds  # the outage, seen live only
    (gap,) = [e for e in live.events if e["kind"] == "gap"]
    assert gap["at"] == pytest.approx(player.timestamps[OUTAGE_AT], abs=1e-3)
    assert gap["missing_samples"] == round(OUTAGE_S * SFREQ)
    assert not any(e["kind"] in ("stalled", "resumed") for e in replayed.events)
    # sliding windows are labelled by the latest marker, the burst's last one included
    assert {d.true_label for d in live.decisions} >= {"8Hz", "10Hz", "12Hz"}


@pytest.mark.slow
def test_outage_epochs_replay_to_the_same_decisions_and_skips(unique_name, tmp_path):
    live, replayed, _, _ = _live_then_replay(
        unique_name, tmp_path, {"mode": "epoch", "tmin": 0.0, "tmax": 0.5})
    _same(live, replayed)
    counts = live.counts
    assert counts["skipped_backlog"] == 0
    # markers at 560 (spans the gap at 600) and 880 (spans the NaN) are skipped; the
    # burst's 32 known markers each give an epoch, its 8 unknown ones are counted
    assert counts["skipped_gap"] == 1
    assert counts["skipped_nonfinite"] == 1
    assert counts["markers_ignored"] == 8
    assert counts["windows"] == len(live.decisions) == 4 + 32
    assert [d.stop - 100 for d in live.decisions][:3] == [150, 420, 700]


def test_gap_flags_do_not_depend_on_chunking():
    """The loop's timestamp check flags the sample after each gap, however it is cut."""
    ts = np.arange(50) / SFREQ
    ts[20:] += 0.5
    ts[35] = ts[34]  # time stands still once
    whole = TimestampCheck(SFREQ, gap_tolerance=0.02)
    flags, events = whole.check(Chunk(np.zeros((1, 50), np.float32), ts), 0.0)[0].flags, []
    pieces = TimestampCheck(SFREQ, gap_tolerance=0.02)
    cut = []
    for a, b in [(0, 3), (3, 20), (20, 21), (21, 36), (36, 50)]:
        chunk, found = pieces.check(Chunk(np.zeros((1, b - a), np.float32), ts[a:b]), 0.0)
        cut.append(chunk.sample_flags())
        events += found
    assert np.array_equal(np.concatenate(cut), flags)
    assert np.flatnonzero(flags == FLAG_GAP).tolist() == [20, 35]
    assert [(e.detail["missing_samples"], e.detail["seconds"] <= 0) for e in events] == [
        (100, False), (0, True)]


def test_replayed_recording_with_a_gap_skips_windows_spanning_it(tmp_path):
    """Replay finds gaps too: no decision from a window spanning missing data."""
    data = _signal(6.0, seed=5)
    data[:, NAN_AT:NAN_AT + 41] = 0.0  # no NaN here
    n = data.shape[1]
    rec = Recording(mne.create_info(CH, SFREQ, "eeg"), data, 100.0 + _offsets(n),
                    _markers_at(_markers()[:6], 100.0 + _offsets(n)))
    config = _config("offline", tmp_path / "unused.xdf",
                     {"mode": "sliding", "length": 0.5, "step": 0.1})
    result = run_replay(config, rec)
    assert result.counts["skipped_gap"] == 5
    assert all(not (d.stop - 100 < OUTAGE_AT < d.stop) for d in result.decisions)
    ((kind, missing),) = [(e["kind"], e["missing_samples"]) for e in result.events]
    assert (kind, missing) == ("gap", round(OUTAGE_S * SFREQ))


def test_cued_source_hands_markers_over_with_their_data_in_one_loop():
    """A protocol's own cues (CuedSource) cut the same epochs as a recorded marker stream,
    and every window of a paced loop is decoded on the decode thread."""
    data = _signal(5.0, seed=8)[:, :600]  # 3 s, none of them non-finite
    n = data.shape[1]
    ts = 50.0 + np.arange(n) / SFREQ
    info = mne.create_info(CH, SFREQ, "eeg")
    pairs = [(150, "A"), (420, "B"), (560, "C")]
    config = _config("cued", "unused.xdf", {"mode": "epoch", "tmin": 0.0, "tmax": 0.5})

    recorded = Recording(info, data, ts, _markers_at(pairs, ts))
    expected = run_replay(config, recorded).decisions

    plain = RecordingSource(Recording(info, data, ts, Markers()), chunk_size=16)
    cued = CuedSource(plain)
    cued.open()
    for i, v in pairs:  # cues given ahead of their data, as a protocol does
        cued.mark(v, ts[i])
    pipeline = Pipeline(config, info, clock=cued.clock)
    threads = set()
    branch = Branch(pipeline, [lambda d: threads.add(threading.current_thread().name)])
    (result,) = Loop(cued, [branch], paced=True).run()
    assert threads == {"bci-decode"}  # decoded behind the backlog, not in the loop
    assert [(d.stop, d.label, d.true_label) for d in result.decisions] == [
        (d.stop, d.label, d.true_label) for d in expected]
    for a, b in zip(result.decisions, expected, strict=True):
        assert np.array_equal(a.output, b.output)


def test_a_live_source_cannot_be_replayed_unpaced():
    class Live(RecordingSource):
        live = True

    src = Live(Recording(mne.create_info(CH, SFREQ, "eeg"), np.zeros((4, 10), np.float32),
                         np.arange(10) / SFREQ, _markers_at([], np.zeros(0))))
    src.open()
    with pytest.raises(ValueError, match="live source is paced"):
        Loop(src, paced=False)
