"""``bci scope``: a real LSL outlet on this machine, rendered offscreen, pictures checked."""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from bci.devices.lsl_source import LSLSource, MarkerSource
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from streams import Player, make_marker_outlet, make_outlet

from bci.chunk import Chunk
from bci.cli import build_parser
from bci.cli import scope as scope_cli
from bci.gui import scope
from bci.gui.scope import ScopeWindow

SFREQ = 250.0
CHANNELS = ["C1", "C2", "C3", "C4"]
FREQS = [7.0, 12.0, 23.0, 31.0]  # one sinusoid per channel
AMPS = [40e-6, 80e-6, 40e-6, 40e-6]  # 12 Hz (C2) is the largest peak of the spectrum
SCALE = 200e-6  # volts per channel spacing: a 40 µV sinusoid spans 0.4 of it
MARKER_EVERY = 100  # samples


class _ScopeCommand:
    """Parses ``bci scope`` options with the one ``bci`` parser."""

    def parse_args(self, argv):
        return build_parser().parse_args(["scope", *argv])


@pytest.fixture(scope="module")
def app():
    return QApplication.instance() or QApplication([])


@pytest.fixture(scope="module")
def stream():
    """A 4-channel 250 Hz EEG stream with markers, playing for the whole module."""
    import uuid

    name = f"bci-scope-{uuid.uuid4().hex[:10]}"
    outlet = make_outlet(name, CHANNELS, SFREQ, source_id=f"{name}-src")
    marker_outlet = make_marker_outlet(f"{name}-m")
    n = int(120 * SFREQ)
    t = np.arange(n) / SFREQ
    rng = np.random.default_rng(0)
    data = np.stack([a * np.sin(2 * np.pi * f * t) for a, f in zip(AMPS, FREQS, strict=True)])
    data += 1e-6 * rng.standard_normal(data.shape)
    markers = [(i, f"m{i // MARKER_EVERY}") for i in range(MARKER_EVERY, n, MARKER_EVERY)]
    player = Player(outlet, data.astype(np.float32), SFREQ, chunk=5, markers=markers,
                    marker_outlet=marker_outlet)
    player.start()
    yield name
    player.stop_event.set()
    player.join(2)


def _open(name, with_markers=True):
    source = LSLSource(name=name, resolve_timeout=5.0)
    source.open()
    markers = None
    if with_markers:
        markers = MarkerSource(name=f"{name}-m", resolve_timeout=5.0)
        markers.open()
    return source, markers


def _fill(app, window, timeout=6.0):
    """Tick at about 30 Hz until the ring buffer is full."""
    deadline = time.monotonic() + timeout
    while window.total < window.n_buffer and time.monotonic() < deadline:
        window.tick()
        app.processEvents()
        time.sleep(0.03)
    assert window.total >= window.n_buffer, f"only {window.total} samples arrived"
    window.tick()
    app.processEvents()


def _pixels(widget) -> np.ndarray:
    """The widget rendered, as an (h, w, 3) uint8 RGB array."""
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    h, w, bpl = image.height(), image.width(), image.bytesPerLine()
    a = np.frombuffer(image.constBits(), np.uint8, h * bpl).reshape(h, bpl)
    return a[:, : 4 * w].reshape(h, w, 4)[..., 2::-1].astype(int)  # BGRA → RGB


def _is_trace(rgb):
    """Trace-coloured (saturated, dark) pixels."""
    return (rgb.max(-1) - rgb.min(-1) > 50) & (rgb.sum(-1) < 500) & (rgb[..., 0] < 120)


def _is_grey(rgb):
    return (rgb.max(-1) - rgb.min(-1) < 20) & (rgb[..., 0] > 90) & (rgb[..., 0] < 210)


def _is_red(rgb):
    return (rgb[..., 0] > 170) & (rgb[..., 1] < 100) & (rgb[..., 2] < 100)


def _band(window, i, half=0.45):
    """Rows and columns of channel ``i``'s band inside the plot area."""
    rect = window.plot_rect()
    top = round(window.view_to_pixel(0, window.offsets[i] + half).y())
    bottom = round(window.view_to_pixel(0, window.offsets[i] - half).y())
    return slice(top, bottom), slice(rect.left() + 2, rect.right() - 2)


@pytest.fixture
def window(app, stream):
    source, markers = _open(stream)
    w = ScopeWindow(source, markers, seconds=2.0, scale=SCALE, autostart=False,
                    own_sources=True)
    w.resize(900, 500)
    w.show()
    _fill(app, w)
    yield w
    w.close()


def test_one_trace_per_channel_each_in_its_band(window):
    items = [c for c in window.trace_plot.listDataItems()
             if c.isVisible() and c.getData()[0] is not None and len(c.getData()[0]) > 0]
    assert len(items) == len(CHANNELS)
    assert len(items[0].getData()[0]) <= window.max_points
    rgb = _pixels(window.trace_widget)
    for i in range(len(CHANNELS)):
        rows, cols = _band(window, i)
        trace = _is_trace(rgb[rows, cols])
        # a sinusoid drawn across the whole width: pixels in most columns of its band
        assert trace.any(axis=0).mean() > 0.9, CHANNELS[i]
    # and nothing between the bands (40 µV at 200 µV per spacing stays within ±0.25)
    rows, cols = _band(window, 1, half=0.45)
    gap = slice(round(window.view_to_pixel(0, -0.6).y()),
                round(window.view_to_pixel(0, -0.4).y()))
    assert not _is_trace(rgb[gap, cols]).any()


def test_marker_line_at_its_time(window):
    t_ref = window.t_ref
    shown = [(ts, v) for ts, v in window._marker_list if -1.8 < ts - t_ref < -0.2]
    assert shown, "no marker in view"
    rgb = _pixels(window.trace_widget)
    rect = window.plot_rect()
    red_cols = _is_red(rgb[rect.top() + 20: rect.bottom() - 2]).mean(axis=0) > 0.5
    for ts, value in shown:
        x = window.view_to_pixel(ts - t_ref, 0).x()
        near = red_cols[int(x) - 2: int(x) + 3]
        assert near.any(), f"no marker line near x={x:.1f} for {value}"
    labels = {t.textItem.toPlainText() for t in window._marker_texts if t.isVisible()}
    assert {v for _, v in shown} <= labels
    # every red column is one of the markers
    expected = [window.view_to_pixel(ts - t_ref, 0).x() for ts, _ in window._marker_list]
    for col in np.flatnonzero(red_cols):
        assert min(abs(col - x) for x in expected) < 3


def test_bad_channel_is_grey(app, window):
    window.mark_bad("C2")
    window.redraw()
    app.processEvents()
    assert window.bad_channels == ["C2"]
    assert "C2" in window.bad_label.text()
    rgb = _pixels(window.trace_widget)
    rows, cols = _band(window, 1)
    assert not _is_trace(rgb[rows, cols]).any()
    assert _is_grey(rgb[rows, cols]).sum() > 100
    rows, cols = _band(window, 2)
    assert _is_trace(rgb[rows, cols]).sum() > 100
    assert not _is_grey(rgb[rows, cols]).any()

    # a click on a channel's label toggles it
    axis = window.trace_plot.getAxis("left")
    x = window.trace_widget.mapFromScene(axis.sceneBoundingRect().center()).x()
    y = window.view_to_pixel(0, window.offsets[2]).y()
    QTest.mouseClick(window.trace_widget.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, QPoint(int(x), round(y)))
    app.processEvents()
    assert window.bad_channels == ["C2", "C3"]
    window.toggle_bad("C2")
    assert window.bad_channels == ["C3"]


def test_wheel_over_a_label_scales_that_channel(app, window):
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QWheelEvent

    axis = window.trace_plot.getAxis("left")
    x = window.trace_widget.mapFromScene(axis.sceneBoundingRect().center()).x()
    y = window.view_to_pixel(0, window.offsets[1]).y()
    before = window.gains.copy()
    pos = QPointF(x, y)
    glob = QPointF(window.trace_widget.viewport().mapToGlobal(pos.toPoint()))
    event = QWheelEvent(pos, glob, QPoint(0, 0), QPoint(0, 120), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(window.trace_widget.viewport(), event)
    app.processEvents()
    expected = before.copy()
    expected[1] *= scope.GAIN_STEP  # C2 only
    np.testing.assert_allclose(window.gains, expected)
    window.set_gain("C2", 1.0)


def _extent(window, i):
    rgb = _pixels(window.trace_widget)
    rows, cols = _band(window, i, half=0.5)
    return int(_is_trace(rgb[rows, cols]).any(axis=1).sum())


def test_gain_changes_drawn_amplitude(app, window):
    window.stop()
    before = _extent(window, 2)
    window.set_gain("C3", 2.0)
    app.processEvents()
    after = _extent(window, 2)
    assert 1.6 < after / before < 2.4, (before, after)
    untouched = _extent(window, 3)
    window.set_gain(None, 0.5)  # global: C3 back to 1x, C4 halved
    app.processEvents()
    assert abs(_extent(window, 2) - before) <= 2
    assert 0.35 < _extent(window, 3) / untouched < 0.65
    # keyboard: + and - step the global gain
    QTest.keyClick(window, Qt.Key.Key_Plus)
    assert window.global_gain == pytest.approx(0.5 * scope.GAIN_STEP)
    QTest.keyClick(window, Qt.Key.Key_Minus)
    assert window.global_gain == pytest.approx(0.5)


def test_spectrum_peak_at_planted_frequency(app, window):
    window.spectrum_box.setChecked(True)
    app.processEvents()
    assert window.spectrum_shown
    assert window.stack.currentWidget() is window.spectrum_widget
    for i, f in enumerate(FREQS):
        assert window.freqs[np.argmax(window.psd[i])] == pytest.approx(f, abs=0.5)
    rgb = _pixels(window.spectrum_widget)
    rect = window.plot_rect(spectrum=True)
    area = _is_trace(rgb[rect.top() + 1: rect.bottom(), rect.left() + 1: rect.right()])
    rows = np.flatnonzero(area.any(axis=1))
    top_cols = np.flatnonzero(area[rows[0]]) + rect.left() + 1
    expected = window.view_to_pixel(12.0, 0, spectrum=True).x()
    half_hz = window.view_to_pixel(12.5, 0, spectrum=True).x() - expected
    assert abs(top_cols.mean() - expected) <= half_hz + 2
    window.show_spectrum(False)
    assert window.stack.currentWidget() is window.trace_widget


def test_vanishing_stream_does_not_crash(app, unique_name):
    outlet = make_outlet(unique_name, ["A", "B"], SFREQ)
    data = (20e-6 * np.random.default_rng(1).standard_normal((2, int(30 * SFREQ))))
    player = Player(outlet, data.astype(np.float32), SFREQ, chunk=5)
    player.start()
    source, _ = _open(unique_name, with_markers=False)
    w = ScopeWindow(source, seconds=1.0, autostart=False, own_sources=True)
    w.show()
    _fill(app, w)
    player.stop_event.set()
    player.join(2)
    del outlet, player
    gc.collect()
    total = w.total
    longest = 0.0
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        w.tick()
        app.processEvents()
        longest = max(longest, time.monotonic() - t0)
        time.sleep(0.03)
    assert w.total - total < 50  # nothing (but what was in flight) after the end
    assert "no data" in w.status.text()
    assert longest < 0.5  # a lost stream never freezes the window
    assert _is_trace(_pixels(w.trace_widget)).any()  # the last data stay on screen
    w.close()


def test_display_filter_changes_only_the_display(app):
    """A 1-40 Hz band-pass removes a DC offset from the drawn copy, not from the source."""

    class Source:
        info = None

        def __init__(self):
            import mne

            self.info = mne.create_info(["X"], 250.0, "eeg")
            self.t = 0
            self.given = []

        def pull(self, timeout=0.0):
            if self.t >= 1000:
                return None
            t = (self.t + np.arange(50)) / 250.0
            self.t += 50
            data = (1e-3 + 20e-6 * np.sin(2 * np.pi * 10 * t))[None].astype(np.float32)
            self.given.append(data.copy())
            return Chunk(data, t)

    src = Source()
    w = ScopeWindow(src, seconds=2.0, filters=scope.display_filters((1.0, 40.0), (50.0,)),
                    autostart=False)
    w.tick()
    data, ts = w.window_data()
    assert data.shape == (1, 500) and np.all(np.diff(ts) > 0)
    assert abs(data[0, -250:].mean()) < 2e-6  # DC gone from the display
    assert np.all(np.concatenate(src.given, axis=1) > 9e-4)  # the source's data untouched
    w.close()


def test_64_channels_decimated_without_new_items(app):
    """64 × 1000 Hz × 10 s: ≤ max_points per trace, items made once."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
    from scope_update import SyntheticSource

    src = SyntheticSource(64, 1000.0, 33)
    w = ScopeWindow(src, seconds=10.0, autostart=False, scale=100e-6)
    src.pending = 400
    while src.pending:
        w.tick()
    n_items = len(w.trace_plot.items)
    times = []
    for _ in range(10):
        src.pending = 1
        t0 = time.perf_counter()
        w.tick()
        times.append(time.perf_counter() - t0)
    assert len(w.trace_plot.items) == n_items
    x, _y = w.curves[0].getData()
    assert 1900 <= len(x) <= 2000
    assert np.median(times) < 0.1  # ~7 ms here; generous for a busy 2-core machine
    w.close()


def test_run_writes_screenshot(app, stream, tmp_path):
    parser = _ScopeCommand()
    png = tmp_path / "scope.png"
    args = parser.parse_args([stream, "--markers", f"{stream}-m", "--seconds", "2",
                              "--bandpass", "1", "40", "--notch", "50", "--frames", "20",
                              "--screenshot", str(png), "--size", "800", "400"])
    assert scope_cli.run(args) == 0
    assert png.stat().st_size > 1000
    image = QImage(str(png))
    assert image.width() == 800 and image.height() == 400
    assert _is_trace(_pixels_of(image)).sum() > 500


def test_run_interactive_ends_when_window_closes(app, stream):
    from PySide6.QtCore import QTimer

    parser = _ScopeCommand()
    args = parser.parse_args([stream, "--seconds", "1", "--spectrum"])
    seen = {}

    def poll():
        windows = [w for w in app.topLevelWidgets()
                   if isinstance(w, ScopeWindow) and w.isVisible()]
        if not windows:
            return
        seen.setdefault("shown", time.monotonic())
        if time.monotonic() - seen["shown"] > 1.0:  # open for a second: close it
            seen["frames"] = windows[0].frames
            windows[0].close()

    timer = QTimer()
    timer.timeout.connect(poll)
    timer.start(50)
    t0 = time.monotonic()
    assert scope_cli.run(args) == 0
    assert time.monotonic() - t0 < 10
    timer.stop()
    assert seen["frames"] > 10  # the timer ran while the window was open


def test_run_unknown_stream(app, unique_name, capsys):
    parser = _ScopeCommand()
    args = parser.parse_args([unique_name, "--timeout", "0.2"])
    assert scope_cli.run(args) == 2
    assert "no LSL stream" in capsys.readouterr().err
    assert scope_cli.run(parser.parse_args([])) == 2


def _pixels_of(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    h, w, bpl = image.height(), image.width(), image.bytesPerLine()
    a = np.frombuffer(image.constBits(), np.uint8, h * bpl).reshape(h, bpl)
    return a[:, : 4 * w].reshape(h, w, 4)[..., 2::-1].astype(int)
