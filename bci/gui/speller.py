"""SSVEP speller with sampled sinusoidal stimulation (joint frequency-phase modulation).

Every target flickers at its own frequency ``f`` and phase ``φ`` (Chen et al. 2015,
PNAS 112: E6058). Flicker is *sampled* at the display refresh: on frame ``i`` of a
stimulation target ``k`` has luminance ``0.5·(1 + sin(2π·f_k·i/refresh + φ_k))``, so any
frequency below refresh/2 can be shown on any monitor, and the stimulus is defined by
the frame count, not by wall-clock time (:func:`luminance`).

Frames are paced from the LSL clock: frame ``i`` is painted at ``t0 + i/refresh``, where
``t0`` is the time of the first frame. A precise Qt timer wakes the GUI thread ~1 ms
early and the last fraction of a millisecond is spun, then the canvas is repainted
synchronously (``QWidget.repaint``) and :func:`pylsl.local_clock` is read at once: that
reading is the frame's recorded time (``SpellerWindow.frame_times``) and, for frame 0,
the timestamp of the stimulation's marker. With ``vsync=True`` the canvas is a
``QOpenGLWidget`` instead and the next frame is requested from its ``frameSwapped``
signal: each paint is requested half a period before the frame is due, and the
swap, which a vsync-ing driver blocks until the vertical blank, sets the pace; the time
is read when the swap returned. (Where swaps do not block, e.g. Xvfb, frames are then
still spaced by the timer, but presented up to half a period early.)

Remaining uncertainty of the marker time (what a photodiode would show): the recorded
time is when the frame left this process (raster: copied to the window system; GL: swap
returned). Photons come later: with the raster path, up to one refresh period until the
next vertical blank (the compositor or X server presents it then) plus the panel's own
input lag and pixel response (typically 5–20 ms on LCDs, constant for a given monitor,
removable by a one-off photodiode calibration); with the GL path and a driver that
blocks in the swap, the vblank wait is included and what remains is the panel lag. Under
the ``offscreen`` platform nothing is displayed and the time is that of the paint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QRect, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPainter, QPen
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from bci.lslconfig import get_pylsl


def check_pyside() -> str | None:
    """Warn about PySide6 6.12.0 on Python < 3.12, and return the warning (else None).

    Its bindings drop one reference to ``None`` (and to ``True``/``False``) on every call
    that returns nothing (``fillRect``, ``setPen``, ``update`` …); on Python 3.11, where
    these objects are not immortal, a window aborts within seconds (``Fatal Python error:
    none_dealloc``). PySide6 6.11.3 does not.
    """
    import sys
    import warnings

    import PySide6

    if sys.version_info < (3, 12) and PySide6.__version__ == "6.12.0":
        msg = ("PySide6 6.12.0 on Python < 3.12 corrupts the reference count of None; GUI "
               "sessions abort after a few thousand Qt calls. Install "
               "PySide6-Essentials<6.12 (e.g. 6.11.3).")
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
        return msg
    return None


check_pyside()

#: The 40 characters of the benchmark speller (Wang et al. 2017), ``_`` is space and
#: ``<`` is backspace, laid out in 5 rows of 8.
DEFAULT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_,.<"


def luminance(freqs: Sequence[float] | np.ndarray, phases: Sequence[float] | np.ndarray,
              n_frames: int, refresh: float, *, start: int = 0) -> np.ndarray:
    """Luminance of every target on every frame of a stimulation.

    Parameters
    ----------
    freqs, phases : array of float, shape (n_targets,)
        Stimulation frequency (Hz) and phase (rad) of each target.
    n_frames : int
        Number of frames.
    refresh : float
        Display refresh rate (Hz).
    start : int
        Index of the first frame.

    Returns
    -------
    ndarray of float64, shape (n_frames, n_targets)
        ``0.5·(1 + sin(2π·f·i/refresh + φ))`` for frames ``i = start … start+n_frames−1``,
        in [0, 1].
    """
    f = np.asarray(freqs, np.float64)
    p = np.asarray(phases, np.float64)
    if f.shape != p.shape or f.ndim != 1:
        raise ValueError(f"freqs and phases must be 1-D of one length, found {f.shape} "
                         f"and {p.shape}")
    if refresh <= 0:
        raise ValueError(f"refresh must be positive, found {refresh}")
    i = np.arange(start, start + int(n_frames), dtype=np.float64)[:, None]
    return 0.5 * (1.0 + np.sin(2.0 * np.pi * f[None, :] * i / refresh + p[None, :]))


def grid_targets(n_rows: int, n_cols: int, *, f0: float = 8.0, df: float = 0.2,
                 dphi: float = 0.35 * np.pi) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies and phases of a grid, in row-major order, as in the benchmark speller.

    Target number ``m = col·n_rows + row`` (frequency order runs down the columns) gets
    ``f = f0 + m·df`` and ``φ = m·dphi mod 2π``: with the defaults and a 5×8 grid, 8–15.8 Hz
    in 0.2 Hz steps, neighbours across a row 1 Hz apart, phase step 0.35π.

    Returns
    -------
    freqs, phases : ndarray of float64, shape (n_rows·n_cols,)
    """
    rows, cols = np.divmod(np.arange(n_rows * n_cols), n_cols)
    m = cols * n_rows + rows
    return f0 + m * df, np.mod(m * dphi, 2.0 * np.pi)


class StimulusCanvas(QWidget):
    """Paints the targets: a grey square per target at its current luminance.

    The stimulus area of target ``k`` is :meth:`target_rect` and is painted in one flat
    grey ``round(255·L)``; the character is drawn at its centre, and the cue is a red
    frame drawn in the gap around the square, so neither touches the square's corners.
    """

    GAP = 12
    CUE_COLOR = QColor(255, 40, 40)
    TEXT_COLOR = QColor(200, 60, 60)

    def __init__(self, chars: Sequence[str], n_cols: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.chars = list(chars)
        self.n_cols = n_cols
        self.n_rows = math.ceil(len(self.chars) / n_cols)
        self.levels = np.ones(len(self.chars))
        self.cue: int | None = None
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumSize(40 * n_cols, 40 * self.n_rows)

    def target_rect(self, k: int) -> QRect:
        """The stimulus square of target ``k``, in canvas coordinates."""
        row, col = divmod(k, self.n_cols)
        cw = self.width() / self.n_cols
        ch = self.height() / self.n_rows
        side = max(1, int(min(cw, ch)) - 2 * self.GAP)
        x = int(col * cw + (cw - side) / 2)
        y = int(row * ch + (ch - side) / 2)
        return QRect(x, y, side, side)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.GlobalColor.black)
        font = QFont(p.font())
        side = self.target_rect(0).width()
        font.setPixelSize(max(6, side // 3))
        p.setFont(font)
        grey = np.rint(255.0 * np.clip(self.levels, 0.0, 1.0)).astype(int)
        for k, ch in enumerate(self.chars):
            r = self.target_rect(k)
            g = int(grey[k])
            p.fillRect(r, QColor(g, g, g))
            p.setPen(self.TEXT_COLOR)
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, ch)
        if self.cue is not None:
            pen = QPen(self.CUE_COLOR)
            pen.setWidth(4)
            p.setPen(pen)
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(self.target_rect(self.cue).adjusted(-5, -5, 4, 4))
        p.end()


class SpellerWindow(QWidget):
    """SSVEP speller: a grid of flickering characters and the text typed so far.

    Parameters
    ----------
    chars : sequence of str
        One label per target (default: the 40 characters of the benchmark speller).
    freqs, phases : array of float, optional
        Frequency (Hz) and phase (rad) per target; default :func:`grid_targets` for the
        grid (40 targets: 8–15.8 Hz step 0.2, phase step 0.35π).
    columns : int, optional
        Grid width (default 8 for 40 targets, else ``ceil(sqrt(n))``).
    refresh : float, optional
        Refresh rate (Hz) the luminance is sampled at and frames are paced at; default the
        screen's. Give it explicitly offscreen.
    marker_stream : str | None
        Name of the LSL marker outlet (type ``Markers``, one string channel); ``None``
        for no markers.
    idle_luminance : float
        Luminance of the targets between stimulations.
    vsync : bool
        Paint through a ``QOpenGLWidget`` and pace frames from its ``frameSwapped``
        signal (needs an OpenGL platform; not available offscreen).

    Signals
    -------
    stimulation_started(float)
        Time of the first frame (LSL clock).
    stimulation_finished(object)
        The frame times (ndarray) of the stimulation that ended.
    """

    stimulation_started = Signal(float)
    stimulation_finished = Signal(object)

    def __init__(self, chars: Sequence[str] = DEFAULT_CHARS,
                 freqs: Sequence[float] | None = None, phases: Sequence[float] | None = None,
                 *, columns: int | None = None, refresh: float | None = None,
                 marker_stream: str | None = "bci-speller-markers",
                 idle_luminance: float = 1.0, vsync: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.chars = list(chars)
        n = len(self.chars)
        if n == 0:
            raise ValueError("a speller needs at least one target")
        if columns is None:
            columns = 8 if n == 40 else math.ceil(math.sqrt(n))
        n_rows = math.ceil(n / columns)
        if freqs is None or phases is None:
            gf, gp = grid_targets(n_rows, columns)
            gf, gp = gf[:n], gp[:n]
            freqs = gf if freqs is None else freqs
            phases = gp if phases is None else phases
        self.freqs = np.asarray(freqs, np.float64)
        self.phases = np.asarray(phases, np.float64)
        if self.freqs.shape != (n,) or self.phases.shape != (n,):
            raise ValueError(f"need {n} frequencies and phases, found {self.freqs.shape} "
                             f"and {self.phases.shape}")
        if refresh is None:
            screen = QGuiApplication.primaryScreen()
            refresh = screen.refreshRate() if screen is not None else 60.0
        self.refresh = float(refresh)
        self.idle_luminance = float(idle_luminance)
        self._pylsl = get_pylsl()

        self.text_line = QLabel("")
        f = self.text_line.font()
        f.setPixelSize(24)
        self.text_line.setFont(f)
        self.text_line.setStyleSheet("background: black; color: white; padding: 4px;")
        self.vsync = bool(vsync)
        self.canvas = _make_gl_canvas(self.chars, columns) if self.vsync else StimulusCanvas(
            self.chars, columns)
        self.canvas.levels[:] = self.idle_luminance
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.text_line)
        lay.addWidget(self.canvas, 1)
        self.setStyleSheet("background: black;")
        self.setWindowTitle("SSVEP speller")

        self._outlet = None
        if marker_stream is not None:
            info = self._pylsl.StreamInfo(marker_stream, "Markers", 1,
                                          self._pylsl.IRREGULAR_RATE, self._pylsl.cf_string,
                                          f"bci-speller-{marker_stream}")
            self._outlet = self._pylsl.StreamOutlet(info)

        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._on_timer)
        if self.vsync:
            self.canvas.frameSwapped.connect(self._on_swapped)

        self._lum = np.empty((0, n))
        self._frame = 0
        self._paced = False
        self._next_time = 0.0
        self.frame_times = np.empty(0)
        """LSL clock right after each frame of the latest stimulation was painted."""
        self.frame_scheduled = np.empty(0)
        """When each frame was due: ``t0 + i/refresh`` (``t0`` = first frame's time)."""
        self.marker_label: str | None = None
        self.markers: list[tuple[float, str]] = []
        """Every marker pushed: (timestamp, label)."""

    # --- text line ---------------------------------------------------------------------
    @property
    def text(self) -> str:
        return self.text_line.text()

    def append_text(self, s: str) -> None:
        """Add characters to the text line."""
        self.text_line.setText(self.text_line.text() + s)

    def select(self, target: int | str) -> None:
        """Type a target: ``<`` deletes the last character, ``_`` is a space."""
        ch = self.chars[target] if isinstance(target, int | np.integer) else str(target)
        if ch == "<":
            self.text_line.setText(self.text_line.text()[:-1])
        else:
            self.append_text(" " if ch == "_" else ch)

    # --- cue -------------------------------------------------------------------------
    def target_index(self, target: int | str) -> int:
        return int(target) if isinstance(target, int | np.integer) else self.chars.index(target)

    def set_cue(self, target: int | str | None) -> None:
        """Frame a target in red (calibration); ``None`` removes the cue."""
        self.canvas.cue = None if target is None else self.target_index(target)
        self.canvas.update()

    @property
    def cue(self) -> int | None:
        return self.canvas.cue

    # --- stimulation -----------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._frame < len(self._lum)

    def stimulate(self, duration: float | None = None, *, n_frames: int | None = None,
                  cue: int | str | None = None, label: str | None = None,
                  paced: bool = True, start_at: float | None = None) -> None:
        """Start a stimulation of ``duration`` seconds (rounded to frames) or ``n_frames``.

        The first frame is painted at once, or at LSL time ``start_at`` (no earlier;
        returns at once, the frame is painted from the event loop), and its marker pushed.
        ``label`` defaults to the cued target's character (``cue`` or the current cue),
        else ``"stim"``. With ``paced=False`` frames advance only through :meth:`step`
        (tests, external clocks).
        """
        if n_frames is None:
            if duration is None:
                raise ValueError("give duration or n_frames")
            n_frames = round(duration * self.refresh)
        n_frames = int(n_frames)
        if n_frames < 1:
            raise ValueError(f"a stimulation needs at least one frame, found {n_frames}")
        self.stop()
        if cue is not None:
            self.set_cue(cue)
        if label is None:
            label = "stim" if self.cue is None else self.chars[self.cue]
        self.marker_label = label
        self._lum = luminance(self.freqs, self.phases, n_frames, self.refresh)
        self.frame_times = np.full(n_frames, np.nan)
        self.frame_scheduled = np.full(n_frames, np.nan)
        self._frame = 0
        self._paced = paced
        if start_at is not None and paced:
            # the first frame is paced like any other, from the requested time
            self._schedule(float(start_at) - (0.5 / self.refresh if self.vsync else 0.0))
        elif self.vsync and paced:
            self._present(0)
            self.canvas.update()  # the frame's time is read in _on_swapped
        else:
            self.step()

    def step(self) -> int:
        """Paint the next frame now; returns its index (−1 when no stimulation runs)."""
        if not self.running:
            return -1
        i = self._frame
        self._present(i)
        self.canvas.repaint()
        self._stamp(i, self._pylsl.local_clock())
        return i

    def stop(self) -> None:
        """End the stimulation now and show the idle luminance."""
        self._timer.stop()
        was = self._frame < len(self._lum)
        self._lum = self._lum[:self._frame]
        self.frame_times = self.frame_times[:self._frame]
        self.frame_scheduled = self.frame_scheduled[:self._frame]
        self.canvas.levels[:] = self.idle_luminance
        self.canvas.update()
        if was:
            self.stimulation_finished.emit(self.frame_times)

    def close_outlet(self) -> None:
        self._outlet = None

    def _present(self, i: int) -> None:
        self.canvas.levels[:] = self._lum[i]

    def _stamp(self, i: int, t: float) -> None:
        self.frame_times[i] = t
        if i == 0:
            self.frame_scheduled[0] = t
            if self._outlet is not None:
                self._outlet.push_sample([self.marker_label], t)
            self.markers.append((t, self.marker_label))
            self.stimulation_started.emit(t)
        else:
            self.frame_scheduled[i] = self.frame_times[0] + i / self.refresh
        self._frame = i + 1
        if self._frame >= len(self._lum):
            self.canvas.levels[:] = self.idle_luminance
            self.canvas.update()
            self.stimulation_finished.emit(self.frame_times)
            return
        if self._paced:
            due = self.frame_times[0] + self._frame / self.refresh
            if self.vsync:  # request the paint half a period early; the swap waits
                due -= 0.5 / self.refresh
            self._schedule(due)

    def _schedule(self, due: float) -> None:
        self._next_time = due
        ms = int((due - self._pylsl.local_clock()) * 1e3) - 1
        self._timer.start(max(0, ms))

    def _on_timer(self) -> None:
        if self.vsync:
            self._present(self._frame)
            self.canvas.update()  # painted and swapped by Qt; the time in _on_swapped
            return
        clock = self._pylsl.local_clock
        while clock() < self._next_time:  # the last millisecond or less
            pass
        self.step()

    def _on_swapped(self) -> None:
        if not self.running or not self._paced:
            return
        self._stamp(self._frame, self._pylsl.local_clock())


def _make_gl_canvas(chars: Sequence[str], n_cols: int) -> QWidget:
    """A :class:`StimulusCanvas` painted through OpenGL, with ``frameSwapped``."""
    from PySide6.QtOpenGLWidgets import QOpenGLWidget

    class GLStimulusCanvas(QOpenGLWidget):
        GAP = StimulusCanvas.GAP
        CUE_COLOR = StimulusCanvas.CUE_COLOR
        TEXT_COLOR = StimulusCanvas.TEXT_COLOR
        target_rect = StimulusCanvas.target_rect

        def __init__(self) -> None:
            super().__init__()
            self.chars = list(chars)
            self.n_cols = n_cols
            self.n_rows = math.ceil(len(self.chars) / n_cols)
            self.levels = np.ones(len(self.chars))
            self.cue: int | None = None
            self.setMinimumSize(40 * n_cols, 40 * self.n_rows)

        def paintGL(self) -> None:
            StimulusCanvas.paintEvent(self, None)

    return GLStimulusCanvas()
