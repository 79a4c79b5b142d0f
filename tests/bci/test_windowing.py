"""Sliding windows and marker-locked epochs."""

from __future__ import annotations

import numpy as np
import pytest

from bci.chunk import FLAG_GAP, FLAG_NONFINITE, Chunk, Markers
from bci.ringbuffer import RingBuffer
from bci.windowing import EpochWindower, SlidingWindower

SFREQ = 100.0


def _data(n, n_ch=3):
    data = np.arange(n_ch * n, dtype=np.float32).reshape(n_ch, n)
    return data, 50.0 + np.arange(n) / SFREQ


def _feed(windower, data, ts, sizes, flags=None, markers_at=None):
    out, i = [], 0
    for k, size in enumerate(sizes):
        if markers_at is not None and k in markers_at:
            windower.add_markers(markers_at[k])
            if isinstance(windower, EpochWindower):
                out += windower.push(None)
        f = None if flags is None else flags[i : i + size]
        out += windower.push(Chunk(data[:, i : i + size], ts[i : i + size], f))
        i += size
    return out


def test_ring_buffer_random_writes_and_reads():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4000)).astype(np.float32)
    rb = RingBuffer((2, 3), 257)
    i = 0
    while i < 4000:
        n = int(rng.integers(1, 600))
        rb.write(x[..., i : i + n])
        i = min(4000, i + n)
        a = int(rng.integers(rb.first_index, rb.n_written))
        np.testing.assert_array_equal(rb.get(a, rb.n_written), x[..., a:i])
    with pytest.raises(IndexError, match="buffer holds"):
        rb.get(0, 10)


@pytest.mark.parametrize("sizes", [[1000], [7] * 142 + [6], [1, 2, 3, 500, 494]])
def test_sliding_windows_do_not_depend_on_chunking(sizes):
    data, ts = _data(1000)
    w = SlidingWindower(length=0.5, step=0.1)
    w.setup(SFREQ, (3,))
    wins = _feed(w, data, ts, sizes)
    # windows end at samples 50, 60, …, 1000
    assert [x.stop for x in wins] == list(range(50, 1001, 10))
    for x in wins:
        np.testing.assert_array_equal(x.data, data[:, x.stop - 50 : x.stop])
        assert x.last_timestamp == ts[x.stop - 1]


def test_sliding_windows_skip_flagged_samples_and_count():
    data, ts = _data(300)
    flags = np.zeros(300, np.uint8)
    flags[120] = FLAG_NONFINITE
    flags[250] = FLAG_GAP
    w = SlidingWindower(length=0.2, step=0.1)
    w.setup(SFREQ, (3,))
    wins = _feed(w, data, ts, [37] * 8 + [4], flags)
    stops = [x.stop for x in wins]
    assert 130 not in stops and 140 not in stops  # windows [110,130) and [120,140) hold 120
    assert 260 not in stops and 270 not in stops
    assert w.counts.skipped_nonfinite == 2 and w.counts.skipped_gap == 2
    assert w.counts.windows == len(wins) == 29 - 4


def test_sliding_window_labels_from_latest_marker():
    data, ts = _data(400)
    w = SlidingWindower(length=0.5, step=0.5, events={"1": "left", "2": "right"})
    w.setup(SFREQ, (3,))
    w.add_markers(Markers(np.array([ts[60], ts[240]]), ["1", "2"]))
    wins = _feed(w, data, ts, [400])
    assert [x.stop for x in wins] == list(range(50, 401, 50))
    assert [x.label for x in wins] == [None] + ["left"] * 3 + ["right"] * 4
    assert wins[0].marker is None and wins[1].marker == (ts[60], "1")


@pytest.mark.parametrize("when", ["before", "after", "middle"])
def test_epochs_cut_whether_marker_comes_before_or_after_data(when):
    data, ts = _data(1000)
    w = EpochWindower(tmin=-0.1, tmax=0.4, events={"7": "target"})
    w.setup(SFREQ, (3,))
    onsets = [200, 431, 700]
    m = Markers(ts[onsets], ["7", "7", "7"])
    sizes = [10] * 100
    if when == "before":
        wins = _feed(w, data, ts, sizes, markers_at={0: m})
    elif when == "after":
        wins = _feed(w, data, ts, sizes)
        w.add_markers(m)
        wins += w.push(None)
    else:
        wins = _feed(w, data, ts, sizes, markers_at={45: m})
    assert len(wins) == 3
    for win, onset in zip(sorted(wins, key=lambda x: x.stop), onsets, strict=True):
        np.testing.assert_array_equal(win.data, data[:, onset - 10 : onset + 40])
        assert win.label == "target" and win.marker == (ts[onset], "7")


def test_epoch_marker_between_samples_lands_on_next_sample_and_others_ignored():
    data, ts = _data(500)
    w = EpochWindower(tmin=0.0, tmax=0.1, events={"go": "go"})
    w.setup(SFREQ, (3,))
    w.add_markers(Markers(np.array([ts[100] + 0.004, ts[300] - 0.004, ts[50]]),
                          ["go", "go", "other"]))
    wins = _feed(w, data, ts, [500])
    assert [x.stop - 10 for x in wins] == [100, 300]
    assert w.counts.markers_ignored == 1


def test_epoch_marker_too_late_is_counted():
    data, ts = _data(3000)
    w = EpochWindower(tmin=0.0, tmax=0.5, events=None, history=2.0)
    w.setup(SFREQ, (3,))
    _feed(w, data, ts, [100] * 30)
    w.add_markers(Markers(np.array([ts[100], ts[2980]]), ["a", "b"]))
    wins = w.push(None)
    assert w.counts.markers_late == 1
    assert wins == []  # the second epoch still waits for its data
    wins = w.push(Chunk(*_data_tail(data, ts, 3000, 60)))
    assert len(wins) == 1 and wins[0].marker[1] == "b"


def _data_tail(data, ts, start, n):
    d = np.zeros((data.shape[0], n), np.float32)
    return d, ts[-1] + (1 + np.arange(n)) / SFREQ


def test_sliding_windows_without_an_events_map_carry_no_label():
    # scoring every sliding window against the last cue would count rest as that trial
    data, ts = _data(400)
    w = SlidingWindower(length=0.5, step=0.5)
    w.setup(SFREQ, (3,))
    w.add_markers(Markers(np.array([ts[60], ts[240]]), ["left", "right"]))
    wins = _feed(w, data, ts, [400])
    assert len(wins) == 8 and wins[3].marker == (ts[60], "left")
    assert [x.label for x in wins] == [None] * 8


@pytest.mark.parametrize("sizes", [[32] * 40, [7] * 180, [1] * 1280, [90, 5, 100, 75, 1] * 4])
def test_newest_alignment_ends_each_due_window_on_the_newest_sample(sizes):
    """Live alignment: as many windows as the grid, each ending at most one chunk later,
    on the chunk's newest sample; several due in one chunk end one step apart."""
    data, ts = _data(sum(sizes))
    on_grid = SlidingWindower(length=0.5, step=0.1)
    on_grid.setup(SFREQ, (3,))
    grid = [w.stop for w in _feed(on_grid, data, ts, sizes)]
    live = SlidingWindower(length=0.5, step=0.1, align="newest")
    live.setup(SFREQ, (3,))
    ends = np.cumsum(sizes)
    windows = _feed(live, data, ts, sizes)
    assert len(windows) == len(grid)
    groups: dict[int, list[int]] = {}
    for w, g in zip(windows, grid, strict=True):
        chunk_end = int(ends[np.searchsorted(ends, g)])  # the chunk that made it due
        assert g <= w.stop <= chunk_end
        groups.setdefault(chunk_end, []).append(w.stop)
        np.testing.assert_array_equal(w.data, data[:, w.stop - 50 : w.stop])
        assert w.last_timestamp == ts[w.stop - 1]
    for chunk_end, stops in groups.items():
        assert stops == list(range(chunk_end - 10 * (len(stops) - 1), chunk_end + 1, 10))


def test_recorded_stops_are_cut_exactly_whatever_the_chunking():
    data, ts = _data(1000)
    stops = [64, 96, 101, 420, 999, 1000]
    for sizes in ([1000], [32] * 31 + [8], [3] * 333 + [1]):
        w = SlidingWindower(length=0.5, step=0.1, stops=stops, align="newest")
        w.setup(SFREQ, (3,))
        windows = _feed(w, data, ts, sizes)
        assert [x.stop for x in windows] == stops
        for x in windows:
            np.testing.assert_array_equal(x.data, data[:, x.stop - 50 : x.stop])


def test_stops_and_align_are_checked():
    with pytest.raises(ValueError, match="align must be one of"):
        SlidingWindower(length=0.5, step=0.1, align="latest")
    w = SlidingWindower(length=0.5, step=0.1, stops=[49, 100])
    with pytest.raises(ValueError, match="cannot end before sample 50, found a stop at 49"):
        w.setup(SFREQ, (3,))
