"""A live multichannel scope of any LSL stream: ``bci scope STREAM``.

:class:`ScopeWindow` reads a source (an :class:`~bci.devices.lsl_source.LSLSource`, or
anything with ``.info`` and ``.pull(timeout)`` returning a :class:`~bci.chunk.Chunk` or
``None``) from a Qt timer, never blocking (pull timeout 0), into a ring buffer of the last
``seconds`` of data. Each frame draws one scrolling trace per channel, stacked with
offsets, from a min/max decimation of the buffer (at most ``max_points`` points per
trace), by ``setData`` on :class:`pyqtgraph.PlotDataItem`\\ s made once. Optional display
filters (a causal :class:`~bci.chain.Chain`) change only what is drawn. Markers are drawn
as vertical lines with their value at their timestamp. A checkbox switches to a spectrum
view (Welch PSD of the displayed window per channel, log scale).

Keys: ``+``/``-`` change the global gain, ``A`` rescales to the data. The mouse wheel
over a channel's label changes that channel's gain; a click on it marks the channel bad
(grey, dashed, listed below the plot) or good again.
"""

from __future__ import annotations

import math
import sys
import time
import weakref
from collections import deque
from collections.abc import Sequence

import mne
import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)
from scipy import signal

from bci.chain import Chain

BACKGROUND = (255, 255, 255)
TRACE_COLORS = ((20, 60, 170), (0, 120, 70))
BAD_COLOR = (150, 150, 150)
MARKER_COLOR = (220, 30, 30)
GAIN_STEP = 1.25
MARKER_POOL = 32  # marker lines made once; the newest ones in view are drawn


class _ChannelAxis(pg.AxisItem):
    """The left axis: channel names at their offsets; a click toggles bad."""

    def __init__(self, scope: ScopeWindow) -> None:
        super().__init__("left")
        self._scope = weakref.ref(scope)  # no cycle through Qt objects for the GC to break

    def mouseClickEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        vb = self.linkedView()
        if vb is None:
            return
        y = vb.mapSceneToView(event.scenePos()).y()
        scope = self._scope()
        ch = None if scope is None else scope.channel_at(y)
        if ch is not None:
            scope.toggle_bad(ch)
            event.accept()

    def wheelEvent(self, event) -> None:
        vb = self.linkedView()
        scope = self._scope()
        if vb is None or scope is None:
            return
        ch = scope.channel_at(vb.mapSceneToView(event.scenePos()).y())
        if ch is None or event.delta() == 0:
            return
        k = scope.ch_names.index(ch)
        step = GAIN_STEP if event.delta() > 0 else 1 / GAIN_STEP
        scope.set_gain(ch, float(scope.gains[k]) * step)
        event.accept()


class ScopeWindow(QWidget):
    """A scrolling multichannel scope with markers, bad channels and a spectrum view.

    Parameters
    ----------
    source : LSLSource-like
        ``.info`` (``mne.Info``) and ``.pull(timeout)`` → ``Chunk | None`` (volts).
    markers : MarkerSource-like | None
        ``.pull()`` → :class:`~bci.chunk.Markers`.
    seconds : float
        Length of the displayed window (and of the ring buffer).
    filters : Chain | list of dict | None
        Display filters, e.g. ``[{"kind": "bandpass", "l_freq": 1, "h_freq": 40}]``.
    scale : float | None
        Volts per channel spacing at gain 1; ``None`` chooses it from the first second
        of data (key ``A`` does it again).
    max_points : int
        At most this many points per trace (min/max pairs of bins of samples).
    fps : float
        Frames per second of the update timer.
    spectrum_every : int
        Recompute the spectrum every this many frames while it is shown.
    autostart : bool
        Start the timer at once (otherwise call :meth:`start`, or :meth:`tick` by hand).
    own_sources : bool
        Close the sources when the window closes.
    """

    bad_changed = Signal(list)

    def __init__(self, source, markers=None, *, seconds: float = 10.0,
                 filters: Chain | Sequence[dict] | None = None, scale: float | None = None,
                 max_points: int = 2000, fps: float = 30.0, spectrum_every: int = 5,
                 autostart: bool = True, own_sources: bool = False,
                 title: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if not seconds > 0:
            raise ValueError(f"seconds must be > 0, found {seconds!r}")
        if max_points < 4:
            raise ValueError(f"max_points must be at least 4, found {max_points!r}")
        self.source, self.markers = source, markers
        self.info: mne.Info = source.info
        self.ch_names: list[str] = list(self.info.ch_names)
        self.sfreq = float(self.info["sfreq"])
        self.n_channels = len(self.ch_names)
        self.seconds = float(seconds)
        self.max_points = int(max_points)
        self.spectrum_every = max(1, int(spectrum_every))
        self.own_sources = own_sources

        if filters is not None and not isinstance(filters, Chain):
            filters = Chain.from_config(list(filters)) if filters else None
        self.chain: Chain | None = filters
        if self.chain is not None:
            self.chain.setup(self.info)

        # ring buffer written twice (at i and i + N): the last N samples are always one
        # contiguous view, no copy per frame
        self.n_buffer = max(4, round(self.seconds * self.sfreq))
        self._buf = np.zeros((self.n_channels, 2 * self.n_buffer), np.float32)
        self._ts = np.zeros(2 * self.n_buffer, np.float64)
        self.total = 0  # samples received
        self.t_ref: float | None = None  # timestamp of the newest sample (x = 0)
        self._last_data = None  # monotonic clock of the last data
        self.error: str | None = None
        self.frames = 0

        self.scale = None if scale is None else float(scale)
        # seconds of data after which the scale is chosen from the data (when not given):
        # once early, once more when a display filter's start-up transient has passed
        self._autoscale_at = [] if scale is not None else [1.0, 3.0]
        self._baseline: np.ndarray | None = None
        self.global_gain = 1.0
        self.gains = np.ones(self.n_channels)
        self.bad: set[str] = set()
        self._marker_list: deque[tuple[float, str]] = deque(maxlen=4 * MARKER_POOL)

        self._build_ui(title)
        self._timer = QTimer(self)
        self._timer.setInterval(max(1, round(1000.0 / fps)))
        self._timer.timeout.connect(self.tick)
        if autostart:
            self.start()

    # ------------------------------------------------------------------------- UI
    def _build_ui(self, title: str | None) -> None:
        self.setWindowTitle(title or f"bci scope: {self.n_channels} channels at "
                            f"{self.sfreq:g} Hz")
        self.trace_widget = pg.PlotWidget(
            background=BACKGROUND, axisItems={"left": _ChannelAxis(self)})
        plot = self.trace_plot = self.trace_widget.getPlotItem()
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.setMouseEnabled(x=False, y=False)
        plot.disableAutoRange()
        plot.setLabel("bottom", "time (s)")
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setTextPen("k")
            plot.getAxis(axis).setPen("k")
        self.offsets = -np.arange(self.n_channels, dtype=np.float64)
        plot.setXRange(-self.seconds, 0.0, padding=0)
        plot.setYRange(-self.n_channels + 0.4, 0.6, padding=0)
        plot.getAxis("left").setTicks(
            [[(float(o), n) for o, n in zip(self.offsets, self.ch_names, strict=True)], []])
        self.curves: list[pg.PlotDataItem] = []
        for i in range(self.n_channels):
            curve = pg.PlotDataItem(pen=self._pen(i), skipFiniteCheck=True)
            plot.addItem(curve)
            self.curves.append(curve)
        self._marker_lines: list[pg.InfiniteLine] = []
        self._marker_texts: list[pg.TextItem] = []
        for _ in range(MARKER_POOL):
            line = pg.InfiniteLine(angle=90, movable=False,
                                   pen=pg.mkPen(MARKER_COLOR, width=1))
            text = pg.TextItem("", color=MARKER_COLOR, anchor=(0, 0),
                               fill=(*BACKGROUND, 200))
            line.setVisible(False)
            text.setVisible(False)
            plot.addItem(line, ignoreBounds=True)
            plot.addItem(text, ignoreBounds=True)
            self._marker_lines.append(line)
            self._marker_texts.append(text)

        self.spectrum_widget = pg.PlotWidget(background=BACKGROUND)
        spec = self.spectrum_plot = self.spectrum_widget.getPlotItem()
        spec.setMenuEnabled(False)
        spec.hideButtons()
        spec.setLogMode(x=False, y=True)
        spec.setLabel("bottom", "frequency (Hz)")
        spec.setLabel("left", "PSD (µV²/Hz)")
        spec.getAxis("left").enableAutoSIPrefix(False)
        for axis in ("left", "bottom"):
            spec.getAxis(axis).setTextPen("k")
            spec.getAxis(axis).setPen("k")
        self.spectrum_curves: list[pg.PlotDataItem] = []
        for i in range(self.n_channels):
            curve = pg.PlotDataItem(pen=self._pen(i), skipFiniteCheck=True)
            spec.addItem(curve)
            self.spectrum_curves.append(curve)
        self.freqs: np.ndarray | None = None
        self.psd: np.ndarray | None = None

        self.stack = QStackedWidget()
        self.stack.addWidget(self.trace_widget)
        self.stack.addWidget(self.spectrum_widget)
        self.spectrum_box = QCheckBox("Spectrum")
        self.spectrum_box.toggled.connect(self.show_spectrum)
        self.status = QLabel("")
        self.bad_label = QLabel("Bad channels: none")
        bar = QHBoxLayout()
        bar.addWidget(self.spectrum_box)
        bar.addWidget(self.bad_label, 1)
        bar.addWidget(self.status)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.stack, 1)
        layout.addLayout(bar)
        self.resize(1000, max(400, min(1000, 120 + 22 * self.n_channels)))

    def _pen(self, i: int) -> QPen:
        if self.ch_names[i] in self.bad:
            return pg.mkPen(BAD_COLOR, width=1, style=Qt.PenStyle.DashLine)
        return pg.mkPen(TRACE_COLORS[i % len(TRACE_COLORS)], width=1)

    # -------------------------------------------------------------------- control
    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _index(self, ch: str | int) -> int:
        if isinstance(ch, str):
            if ch not in self.ch_names:
                raise ValueError(f"no channel {ch!r}; the stream has {self.ch_names}")
            return self.ch_names.index(ch)
        if not 0 <= ch < self.n_channels:
            raise ValueError(f"channel index must lie in [0, {self.n_channels}), found {ch}")
        return int(ch)

    def set_gain(self, ch: str | int | None, gain: float) -> None:
        """Gain of one channel (name or index), or the global gain when ``ch`` is None."""
        if not (math.isfinite(gain) and gain > 0):
            raise ValueError(f"gain must be a finite number > 0, found {gain!r}")
        if ch is None:
            self.global_gain = float(gain)
        else:
            self.gains[self._index(ch)] = float(gain)
        self.redraw()

    def set_scale(self, volts: float | None) -> None:
        """Volts per channel spacing at gain 1 (``None``: from the data, now)."""
        self._autoscale_at = []
        self.scale = None if volts is None else float(volts)
        if self.scale is None:
            self.autoscale()
        self.redraw()

    def mark_bad(self, name: str, bad: bool = True) -> None:
        """Mark a channel bad (grey, dashed, listed) or good again."""
        i = self._index(name)
        if bad == (name in self.bad):
            return
        (self.bad.add if bad else self.bad.discard)(name)
        pen = self._pen(i)
        self.curves[i].setPen(pen)
        self.spectrum_curves[i].setPen(pen)
        self.bad_label.setText("Bad channels: " + (", ".join(self.bad_channels) or "none"))
        self.bad_changed.emit(self.bad_channels)

    def toggle_bad(self, name: str) -> None:
        self.mark_bad(name, name not in self.bad)

    @property
    def bad_channels(self) -> list[str]:
        return [c for c in self.ch_names if c in self.bad]

    def channel_at(self, y: float) -> str | None:
        """The channel whose trace band holds the plot's ``y`` coordinate."""
        i = round(-y)
        return self.ch_names[i] if 0 <= i < self.n_channels else None

    def show_spectrum(self, on: bool = True) -> None:
        if self.spectrum_box.isChecked() != on:
            self.spectrum_box.setChecked(on)  # comes back here through toggled
            return
        self.stack.setCurrentIndex(1 if on else 0)
        self.redraw(force_spectrum=True)

    @property
    def spectrum_shown(self) -> bool:
        return self.stack.currentIndex() == 1

    def keyPressEvent(self, event) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.set_gain(None, self.global_gain * GAIN_STEP)
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            self.set_gain(None, self.global_gain / GAIN_STEP)
        elif key == Qt.Key.Key_A:
            self.set_scale(None)
        elif key == Qt.Key.Key_S:
            self.show_spectrum(not self.spectrum_shown)
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event) -> None:
        self.stop()
        if self.own_sources:
            for s in (self.source, self.markers):
                if s is not None and hasattr(s, "close"):
                    try:
                        s.close()
                    except Exception as err:  # closing a lost stream must not stop the exit
                        print(f"bci scope: closing {s!r}: {err}", file=sys.stderr)
        super().closeEvent(event)

    # ----------------------------------------------------------------------- data
    def pull(self, max_pulls: int = 100) -> int:
        """Take every chunk (and marker) available now, without waiting; samples taken."""
        n = 0
        try:
            for _ in range(max_pulls):
                chunk = self.source.pull(0.0)
                if chunk is None or chunk.n_samples == 0:
                    break
                self.feed(chunk)
                n += chunk.n_samples
            if self.markers is not None:
                for ts, value in self.markers.pull():
                    self._marker_list.append((float(ts), value))
            self.error = None
        except Exception as err:  # a stream that fails must not take the window down
            self.error = f"{type(err).__name__}: {err}"
        return n

    def feed(self, chunk) -> None:
        """Write one chunk into the ring buffer (display filters applied)."""
        if self.chain is not None:
            if self._baseline is None and chunk.n_samples:
                self._baseline = chunk.data[:, :1].astype(np.float32)
            # the first sample as baseline: a DC offset does not ring through the filter
            chunk = self.chain.process(chunk.with_data(chunk.data - self._baseline))
        data, ts = chunk.data, chunk.timestamps
        if data.ndim != 2 or data.shape[0] != self.n_channels:
            raise ValueError(f"expected chunks of {self.n_channels} channels, found data "
                             f"of shape {data.shape}")
        if not np.isfinite(data).all():  # NaN would blank a whole trace (centring)
            data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
        n, size = ts.shape[0], self.n_buffer
        if n > size:
            data, ts = data[:, -size:], ts[-size:]
            self.total += n - size
            n = size
        pos = (self.total + np.arange(n)) % size
        self._buf[:, pos] = data
        self._buf[:, pos + size] = data
        self._ts[pos] = ts
        self._ts[pos + size] = ts
        self.total += n
        self.t_ref = float(ts[-1])
        self._last_data = time.monotonic()
        if self._autoscale_at and self.total >= min(self._autoscale_at[0] * self.sfreq, size):
            self._autoscale_at = [t for t in self._autoscale_at if t * self.sfreq > self.total]
            self.autoscale()

    def add_marker(self, timestamp: float, value: str) -> None:
        """Show a marker (what :meth:`pull` does with those of the marker source)."""
        self._marker_list.append((float(timestamp), str(value)))

    def window_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The buffered samples in time order: ``(data (n_ch, n), timestamps (n,))``."""
        size = self.n_buffer
        valid = min(self.total, size)
        start = self.total % size + size - valid
        return self._buf[:, start:start + valid], self._ts[start:start + valid]

    def autoscale(self) -> None:
        """Volts per spacing from the last second: the typical good channel spans half."""
        data, _ = self.window_data()
        data = data[:, -max(2, int(self.sfreq)):]
        if data.shape[1] < 2:
            return
        good = [i for i, c in enumerate(self.ch_names) if c not in self.bad] or [0]
        lo, hi = np.percentile(data[good], [1, 99], axis=1)
        spread = float(np.median(hi - lo))
        self.scale = 2.0 * spread if spread > 0 else 1e-6

    # -------------------------------------------------------------------- drawing
    def tick(self) -> None:
        """One frame: pull what is available, then draw."""
        self.pull()
        self.redraw()
        self.frames += 1

    def decimated(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Min/max decimation of the buffer: ``x`` (s, newest = 0) and ``y`` (n_ch, n)."""
        size, total = self.n_buffer, self.total
        valid = min(total, size)
        if valid < 2:
            return None
        step = max(1, math.ceil(size / (self.max_points // 2)))
        # bins aligned to the absolute sample count, so that the picture does not shimmer
        end = total - total % step
        n_bins = (valid - (total - end)) // step
        if n_bins < 1:
            return None
        start = total % size + size - (total - end) - n_bins * step
        view = self._buf[:, start:start + n_bins * step]
        ts = self._ts[start:start + n_bins * step:step] - self.t_ref
        if step == 1:
            return ts, view.astype(np.float64)
        # reducing over a short inner axis is slow in numpy; over a leading axis it is not
        blocks = np.ascontiguousarray(
            view.reshape(self.n_channels, n_bins, step).transpose(2, 0, 1))
        y = np.empty((self.n_channels, n_bins, 2), np.float64)
        y[:, :, 0] = blocks.min(axis=0)
        y[:, :, 1] = blocks.max(axis=0)
        return np.repeat(ts, 2), y.reshape(self.n_channels, 2 * n_bins)

    def redraw(self, force_spectrum: bool = False) -> None:
        if self.spectrum_shown:
            if force_spectrum or self.frames % self.spectrum_every == 0:
                self._draw_spectrum()
        else:
            self._draw_traces()
        self._draw_status()

    def _draw_traces(self) -> None:
        dec = self.decimated()
        if dec is None:
            return
        x, y = dec
        y -= y.mean(axis=1, keepdims=True)  # centred: DC offsets do not push traces away
        y *= (self.global_gain / (self.scale or 1.0)) * self.gains[:, None]
        y += self.offsets[:, None]
        for curve, row in zip(self.curves, y, strict=True):
            curve.setData(x, row)
        shown = [(ts - self.t_ref, v) for ts, v in self._marker_list
                 if -self.seconds <= ts - self.t_ref <= 0.5][-MARKER_POOL:]
        top = 0.55
        for k, (line, text) in enumerate(zip(self._marker_lines, self._marker_texts,
                                             strict=True)):
            if k < len(shown):
                pos, value = shown[k]
                line.setValue(pos)
                text.setText(value)
                text.setPos(pos, top)
            line.setVisible(k < len(shown))
            text.setVisible(k < len(shown))

    def _draw_spectrum(self) -> None:
        data, _ = self.window_data()
        n = data.shape[1]
        if n < 16:
            return
        nperseg = min(n, int(2 * self.sfreq))
        freqs, psd = signal.welch(data, fs=self.sfreq, nperseg=nperseg, axis=-1)
        psd = np.maximum(psd * 1e12, 1e-18)  # µV²/Hz
        self.freqs, self.psd = freqs, psd
        for curve, row in zip(self.spectrum_curves, psd, strict=True):
            curve.setData(freqs, row)
        spec = self.spectrum_plot
        spec.setXRange(0.0, freqs[-1], padding=0.01)
        good = [i for i, c in enumerate(self.ch_names) if c not in self.bad] or [0]
        lo = np.log10(np.percentile(psd[good, 1:], 1))
        hi = np.log10(psd[good].max())
        spec.setYRange(lo - 0.5, hi + 0.5, padding=0)

    def _draw_status(self) -> None:
        parts = [f"{self.n_channels} ch, {self.sfreq:g} Hz",
                 f"{1e6 * (self.scale or 0) / self.global_gain:.3g} µV/div"]
        if self.error is not None:
            parts.append(f"error: {self.error}")
        if self._last_data is None:
            parts.append("waiting for data")
        else:
            idle = time.monotonic() - self._last_data
            if idle > 1.0:
                parts.append(f"no data for {idle:.1f} s")
        self.status.setText(" · ".join(parts))

    # -------------------------------------------------------------- picture helpers
    def view_to_pixel(self, x: float, y: float, *, spectrum: bool = False) -> QPointF:
        """Where plot coordinates land in ``plot_widget.grab()`` (y: log10 when spectral)."""
        widget = self.spectrum_widget if spectrum else self.trace_widget
        vb = widget.getPlotItem().getViewBox()
        scene = vb.mapViewToScene(QPointF(x, y))
        return QPointF(widget.mapFromScene(scene))

    def plot_rect(self, *, spectrum: bool = False) -> QRect:
        """The data area (the view box) in ``plot_widget.grab()`` pixels."""
        widget = self.spectrum_widget if spectrum else self.trace_widget
        vb = widget.getPlotItem().getViewBox()
        return widget.mapFromScene(vb.sceneBoundingRect()).boundingRect()


# --------------------------------------------------------------------- display filters

def display_filters(bandpass: Sequence[float] | None,
                    notch: Sequence[float] | None) -> list[dict]:
    """Chain configuration of the display filters chosen on the command line."""
    filters: list[dict] = []
    if notch:
        filters.append({"kind": "notch", "freqs": [float(f) for f in notch]})
    if bandpass:
        filters.append({"kind": "bandpass", "l_freq": float(bandpass[0]),
                        "h_freq": float(bandpass[1])})
    return filters
