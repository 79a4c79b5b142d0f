"""SSVEP speller: the sampled sinusoids, the pixels on screen, the frame pacing and the
markers (Qt offscreen, LSL on loopback)."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("PySide6")

from qt_events import wait_until

from bci.gui.speller import DEFAULT_CHARS, SpellerWindow, grid_targets, luminance
from bci.lslconfig import get_pylsl

REFRESH = 60.0


def grey_at(img, rect) -> int:
    """Grey value in a corner of a target square, away from the character."""
    x = rect.left() + rect.width() // 6
    y = rect.top() + rect.height() // 6
    c = img.pixelColor(x, y)
    assert c.red() == c.green() == c.blue()
    return c.red()


def test_luminance_is_the_sampled_sinusoid():
    freqs = np.array([8.0, 9.4, 15.8, 12.0])
    phases = np.array([0.0, 0.35 * np.pi, 1.4 * np.pi, np.pi / 2])
    lum = luminance(freqs, phases, 90, REFRESH)
    assert lum.shape == (90, 4)
    for k in range(4):
        for i in (0, 1, 7, 59, 89):
            want = 0.5 * (1 + np.sin(2 * np.pi * freqs[k] * i / REFRESH + phases[k]))
            assert lum[i, k] == pytest.approx(want, abs=1e-12)
    assert lum.min() >= 0 and lum.max() <= 1
    # frame 0 is set by the phase alone, 12 Hz at 60 Hz repeats every 5 frames
    np.testing.assert_allclose(lum[0], 0.5 * (1 + np.sin(phases)))
    np.testing.assert_allclose(lum[5:, 3], lum[:-5, 3], atol=1e-12)
    # a continuation starts where the first part stopped
    np.testing.assert_allclose(luminance(freqs, phases, 30, REFRESH, start=60), lum[60:])
    # its spectrum peaks at the target frequency (3 s at 60 Hz: 1/3 Hz resolution)
    spec = np.abs(np.fft.rfft(luminance([9.0], [0.0], 180, REFRESH)[:, 0] - 0.5))
    assert np.fft.rfftfreq(180, 1 / REFRESH)[np.argmax(spec)] == pytest.approx(9.0)
    with pytest.raises(ValueError):
        luminance([8.0, 9.0], [0.0], 10, REFRESH)


def test_benchmark_layout():
    f, p = grid_targets(5, 8)
    assert len(f) == 40 and len(DEFAULT_CHARS) == 40
    np.testing.assert_allclose(np.sort(f), 8.0 + 0.2 * np.arange(40))
    np.testing.assert_allclose(f[:8], np.arange(8, 16))  # first row: 8, 9, … 15 Hz
    assert f[8] == pytest.approx(8.2)  # down a column: +0.2 Hz
    order = np.argsort(f)
    np.testing.assert_allclose(p[order], np.mod(0.35 * np.pi * np.arange(40), 2 * np.pi))


def test_rendered_pixels_follow_the_luminance(app, unique_name):
    chars = ["A", "B", "C", "D"]
    freqs = [8.0, 10.0, 12.0, 15.0]
    phases = [0.0, 0.5 * np.pi, np.pi, 1.5 * np.pi]
    w = SpellerWindow(chars, freqs, phases, refresh=REFRESH, marker_stream=None)
    w.resize(400, 440)
    w.show()
    app.processEvents()
    w.set_cue("C")
    n_check = 12
    w.stimulate(n_frames=n_check + 3, paced=False)  # frame 0 painted by stimulate
    want = np.rint(255 * luminance(freqs, phases, n_check, REFRESH)).astype(int)
    got = np.zeros_like(want)
    for i in range(n_check):
        if i:
            assert w.step() == i
        img = w.canvas.grab().toImage()
        for k in range(4):
            got[i, k] = grey_at(img, w.canvas.target_rect(k))
    np.testing.assert_allclose(got, want, atol=1)
    # the signals really vary from frame to frame and between targets
    assert np.ptp(got, axis=0).min() > 100
    # the cue frame is red and around the cued square only
    img = w.canvas.grab().toImage()
    r = w.canvas.target_rect(2)
    c = img.pixelColor(r.left() - 4, r.center().y())
    assert (c.red(), c.green()) == (255, 40)
    r0 = w.canvas.target_rect(0)
    assert img.pixelColor(r0.left() - 4, r0.center().y()).red() == 0
    # stop: idle luminance (white)
    w.stop()
    assert not w.running
    img = w.canvas.grab().toImage()
    assert all(grey_at(img, w.canvas.target_rect(k)) == 255 for k in range(4))
    w.close()


def test_text_line(app):
    w = SpellerWindow(list("AB_<"), refresh=REFRESH, marker_stream=None)
    w.append_text("HI")
    w.select(0)
    w.select("_")
    w.select(1)
    assert w.text == "HIA B"
    w.select("<")
    assert w.text == "HIA "
    w.close()


def test_paced_frames_and_markers(app, unique_name):
    pylsl = get_pylsl()
    w = SpellerWindow(list("ABCD"), refresh=REFRESH, marker_stream=unique_name)
    w.resize(300, 300)
    w.show()
    app.processEvents()
    found = pylsl.resolve_byprop("name", unique_name, 1, 5.0)
    assert found
    inlet = pylsl.StreamInlet(found[0])
    inlet.open_stream(5.0)
    finished = []
    w.stimulation_finished.connect(lambda t: finished.append(t.copy()))
    cues = ["B", "D", None]
    n_frames = 18
    for cue in cues:
        w.set_cue(cue)
        n_done = len(finished)
        w.stimulate(n_frames / REFRESH)
        assert wait_until(app, lambda n=n_done: len(finished) > n)
        time.sleep(0.01)
    stims = finished
    assert len(stims) == 3 and all(len(t) == n_frames for t in stims)
    # one marker per stimulation, at the first frame, labelled with the cue
    got = []
    end = time.monotonic() + 5
    while len(got) < 3 and time.monotonic() < end:
        s, ts = inlet.pull_sample(timeout=0.2)
        if s is not None:
            got.append((ts, s[0]))
    assert [g[1] for g in got] == ["B", "D", "stim"]
    for (ts, _), frames in zip(got, stims, strict=True):
        assert abs(ts - frames[0]) < 1e-3
    assert inlet.pull_sample(timeout=0.1)[0] is None  # no extra marker
    assert [m[1] for m in w.markers] == ["B", "D", "stim"]
    # frames are paced at the refresh (generous bounds: 2 shared CPUs)
    for t in stims:
        dt = np.diff(t)
        assert np.median(dt) == pytest.approx(1 / REFRESH, abs=2e-3)
        assert t[-1] - t[0] == pytest.approx((n_frames - 1) / REFRESH, abs=10e-3)
    w.close()


def test_stop_midway(app):
    w = SpellerWindow(list("AB"), refresh=REFRESH, marker_stream=None)
    w.show()
    w.stimulate(2.0)
    assert w.running
    wait_until(app, lambda: np.isfinite(w.frame_times).sum() >= 3)
    w.stop()
    assert not w.running
    n = len(w.frame_times)
    assert 3 <= n < 120 and np.isfinite(w.frame_times).all()
    app.processEvents()
    time.sleep(0.05)
    app.processEvents()
    assert len(w.frame_times) == n
    w.close()
