"""What the user and the experimenter see of the decoder: :class:`DecoderPanel` and
:class:`MIFeedback`.

Neither widget is ever called by the decoding loop directly. The loop (any thread) calls
``post_decision`` / ``post_output``, which only emits a Qt signal; Qt queues it to the GUI
thread, where the widget updates. Emitting costs microseconds and never waits for a
paint. :class:`DecisionStreamReader` does the same from a decision LSL stream (as written
by :class:`bci.outputs.DecisionOutlet`), on its own thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPolygonF
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from bci.decision import Decision
from bci.lslconfig import get_pylsl

BAR_COLOR = QColor(40, 110, 220)
WINNER_COLOR = QColor(40, 200, 90)
HIST_COLOR = QColor(230, 160, 30)
CURSOR_COLOR = QColor(40, 200, 90)
CUE_COLOR = QColor(240, 240, 240)


class ProbabilityBars(QWidget):
    """One vertical bar per class, height ∝ probability, the most probable in green."""

    MARGIN = 20  # pixels below the bars for the labels

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.classes: list[str] = []
        self.values = np.zeros(0)
        self.setMinimumSize(160, 120)

    def set_values(self, classes: Sequence[str], values: np.ndarray) -> None:
        self.classes = list(classes)
        self.values = np.clip(np.asarray(values, np.float64), 0.0, 1.0)
        self.update()

    def plot_area(self) -> QRect:
        return QRect(4, 4, self.width() - 8, self.height() - 8 - self.MARGIN)

    def bar_column(self, k: int) -> tuple[int, int]:
        """x-range (left, right) of bar ``k``."""
        area = self.plot_area()
        w = area.width() / max(1, len(self.values))
        return int(area.left() + k * w + 0.15 * w), int(area.left() + (k + 0.85) * w)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(20, 20, 20))
        area = self.plot_area()
        winner = int(np.argmax(self.values)) if self.values.size else -1
        for k, v in enumerate(self.values):
            x0, x1 = self.bar_column(k)
            h = round(v * area.height())
            p.fillRect(QRect(x0, area.bottom() + 1 - h, x1 - x0, h),
                       WINNER_COLOR if k == winner else BAR_COLOR)
            p.setPen(QColor(220, 220, 220))
            label = self.classes[k] if k < len(self.classes) else str(k)
            p.drawText(QRect(x0 - 10, area.bottom() + 2, x1 - x0 + 20, self.MARGIN),
                       Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, label)
        p.end()


class LatencyHistogram(QWidget):
    """Counts of decision latencies (ms) in fixed bins; the last bin takes all above."""

    def __init__(self, bin_ms: float = 5.0, n_bins: int = 40,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edges = bin_ms * np.arange(n_bins + 1, dtype=np.float64)
        self.counts = np.zeros(n_bins, np.int64)
        self.setMinimumSize(160, 80)

    def add(self, latency_ms: float) -> None:
        k = int(np.searchsorted(self.edges, latency_ms, side="right")) - 1
        self.counts[min(max(k, 0), len(self.counts) - 1)] += 1
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(20, 20, 20))
        top = max(1, int(self.counts.max()))
        h = self.height() - 16
        w = self.width() / len(self.counts)
        for k, c in enumerate(self.counts):
            bh = round(c / top * (h - 4))
            p.fillRect(QRect(int(k * w), h - bh, max(1, int(w) - 1), bh), HIST_COLOR)
        p.setPen(QColor(220, 220, 220))
        p.drawText(QRect(0, h, self.width(), 16), Qt.AlignmentFlag.AlignLeft, "0 ms")
        p.drawText(QRect(0, h, self.width(), 16), Qt.AlignmentFlag.AlignRight,
                   f"≥{self.edges[-2]:g} ms")
        p.end()


class DecoderPanel(QWidget):
    """Class probabilities, the decision log, rolling accuracy and a latency histogram.

    Parameters
    ----------
    accuracy_window : int
        Number of most recent decisions with a known true label the rolling accuracy is
        taken over.
    log_lines : int
        Lines the decision log keeps.
    bin_ms, n_bins : float, int
        Latency histogram bins (the last bin collects everything above).

    Use :meth:`add_decision` from the GUI thread, :meth:`post_decision` from any thread.
    """

    decision_posted = Signal(object)

    def __init__(self, *, accuracy_window: int = 20, log_lines: int = 500,
                 bin_ms: float = 5.0, n_bins: int = 40,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bars = ProbabilityBars()
        self.histogram = LatencyHistogram(bin_ms, n_bins)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(log_lines)
        self.accuracy_label = QLabel("accuracy: –")
        self.latency_label = QLabel("latency: –")
        self._recent: deque[bool] = deque(maxlen=accuracy_window)
        self.n_decisions = 0
        self.n_correct = 0
        self.n_labelled = 0
        self.latencies_ms: list[float] = []

        right = QVBoxLayout()
        right.addWidget(self.accuracy_label)
        right.addWidget(self.latency_label)
        right.addWidget(self.histogram, 1)
        top = QHBoxLayout()
        top.addWidget(self.bars, 1)
        top.addLayout(right, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(top, 2)
        lay.addWidget(self.log, 1)
        self.setWindowTitle("Decoder")
        self.decision_posted.connect(self.add_decision, Qt.ConnectionType.QueuedConnection)

    def post_decision(self, d: Decision) -> None:
        """Thread-safe: queue ``d`` for the GUI thread and return at once."""
        self.decision_posted.emit(d)

    @property
    def rolling_accuracy(self) -> float | None:
        """Fraction correct among the last ``accuracy_window`` labelled decisions."""
        return float(np.mean(self._recent)) if self._recent else None

    @property
    def accuracy(self) -> float | None:
        """Fraction correct among all labelled decisions."""
        return self.n_correct / self.n_labelled if self.n_labelled else None

    def add_decision(self, d: Decision) -> None:
        """Show one decision (GUI thread)."""
        self.n_decisions += 1
        classes = d.classes or [f"out_{i}" for i in range(len(d.output))]
        self.bars.set_values(classes, d.output)
        correct = d.correct
        if correct is not None:
            self._recent.append(correct)
            self.n_labelled += 1
            self.n_correct += int(correct)
            self.accuracy_label.setText(
                f"accuracy: {100 * self.rolling_accuracy:.0f}% (last {len(self._recent)}), "
                f"{100 * self.accuracy:.0f}% of {self.n_labelled}")
        lat = d.latency
        lat_txt = ""
        if lat is not None:
            ms = 1e3 * lat
            self.latencies_ms.append(ms)
            self.histogram.add(ms)
            self.latency_label.setText(
                f"latency: {ms:.1f} ms (median {np.median(self.latencies_ms):.1f} ms)")
            lat_txt = f"  {ms:.1f} ms"
        truth = "" if d.true_label is None else f"  true={d.true_label}" + (
            "" if correct is None else (" ✓" if correct else " ✗"))
        if d.classes:
            top = float(np.max(d.output)) if len(d.output) else float("nan")
            self.log.appendPlainText(f"#{d.index}  {d.label}  p={top:.2f}{truth}{lat_txt}")
        else:
            vals = " ".join(f"{v:.3g}" for v in d.output[:4])
            self.log.appendPlainText(f"#{d.index}  [{vals}]{truth}{lat_txt}")


class MIFeedback(QWidget):
    """A cursor on a horizontal track driven by the decoder's continuous output.

    The value (clipped to [−1, 1]) moves the cursor from the centre (0) to the left
    (−1) or right (+1) end; a bar joins the centre to the cursor. Each update is smoothed
    exponentially: ``s ← smoothing·s + (1 − smoothing)·value``. The cue is a white arrow
    (``left``, ``right``, ``up``, ``down``; ``feet`` and ``tongue`` map to up and down)
    or, for other labels, the label as text.
    """

    output_posted = Signal(float)
    decision_posted = Signal(object)

    ARROWS: ClassVar[dict[str, str]] = {
        "left": "left", "right": "right", "up": "up", "down": "down", "feet": "up", "foot": "up",
        "tongue": "down", "l": "left", "r": "right"}

    def __init__(self, *, smoothing: float = 0.7, positive: str = "right",
                 negative: str = "left", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), found {smoothing}")
        self.smoothing = smoothing
        self.positive = positive
        self.negative = negative
        self.value = 0.0
        self.cue: str | None = None
        self.setMinimumSize(300, 200)
        self.setWindowTitle("Motor imagery feedback")
        self.output_posted.connect(self.update_output, Qt.ConnectionType.QueuedConnection)
        self.decision_posted.connect(self.update_decision, Qt.ConnectionType.QueuedConnection)

    # --- thread-safe entry points ------------------------------------------------------
    def post_output(self, value: float) -> None:
        """Thread-safe :meth:`update_output`."""
        self.output_posted.emit(float(value))

    def post_decision(self, d: Decision) -> None:
        """Thread-safe :meth:`update_decision`."""
        self.decision_posted.emit(d)

    # --- GUI thread ------------------------------------------------------------------
    def set_cue(self, label: str | None) -> None:
        """Show ``label``'s cue; ``"fixation"`` shows a cross, ``"rest"`` or None nothing."""
        self.cue = None if label is None or label.lower() == "rest" else label
        self.update()

    def reset(self) -> None:
        self.value = 0.0
        self.update()

    def update_output(self, value: float) -> None:
        v = float(np.clip(value, -1.0, 1.0))
        if not np.isfinite(v):
            return
        self.value = self.smoothing * self.value + (1.0 - self.smoothing) * v
        self.update()

    def decision_value(self, d: Decision) -> float:
        """``p_positive − p_negative`` for class outputs, else the first output."""
        if d.classes and self.positive in d.classes and self.negative in d.classes:
            return float(d.output[d.classes.index(self.positive)]
                         - d.output[d.classes.index(self.negative)])
        return float(d.output[0])

    def update_decision(self, d: Decision) -> None:
        self.update_output(self.decision_value(d))

    # --- geometry and painting -------------------------------------------------------
    def track(self) -> tuple[int, int, int]:
        """(x of −1, x of +1, y of the track centre)."""
        return 30, self.width() - 30, int(self.height() * 0.75)

    def cursor_x(self) -> float:
        x0, x1, _ = self.track()
        return (x0 + x1) / 2 + self.value * (x1 - x0) / 2

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        p.fillRect(self.rect(), Qt.GlobalColor.black)
        x0, x1, y = self.track()
        xc = (x0 + x1) // 2
        p.fillRect(QRect(x0, y - 2, x1 - x0, 4), QColor(90, 90, 90))
        p.fillRect(QRect(xc - 1, y - 14, 2, 28), QColor(150, 150, 150))
        cx = round(self.cursor_x())
        left, right = sorted((xc, cx))
        p.fillRect(QRect(left, y - 8, right - left, 16), QColor(30, 110, 60))
        p.fillRect(QRect(cx - 10, y - 14, 20, 28), CURSOR_COLOR)
        if self.cue is not None:
            self._paint_cue(p)
        p.end()

    def _paint_cue(self, p: QPainter) -> None:
        direction = self.ARROWS.get(self.cue.lower())
        cx, cy = self.width() / 2, self.height() * 0.35
        s = min(self.width(), self.height()) * 0.15
        if self.cue.lower() == "fixation":  # Graz: a cross before the cue
            w = max(2, round(s / 8))
            p.fillRect(QRectF(cx - s, cy - w / 2, 2 * s, w), CUE_COLOR)
            p.fillRect(QRectF(cx - w / 2, cy - s, w, 2 * s), CUE_COLOR)
            return
        if direction is None:
            p.setPen(CUE_COLOR)
            f = p.font()
            f.setPixelSize(int(s))
            p.setFont(f)
            p.drawText(QRect(0, int(cy - s), self.width(), int(2 * s)),
                       Qt.AlignmentFlag.AlignCenter, self.cue)
            return
        # an arrow pointing right, rotated to the direction
        pts = [(-1.0, -0.3), (0.2, -0.3), (0.2, -0.7), (1.0, 0.0), (0.2, 0.7), (0.2, 0.3),
               (-1.0, 0.3)]
        rot = {"right": (1, 0, 0, 1), "left": (-1, 0, 0, 1), "up": (0, 1, -1, 0),
               "down": (0, 1, 1, 0)}[direction]
        a, b, c, d = rot  # x' = a·x + b·y, y' = c·x + d·y
        poly = QPolygonF([QPointF(cx + s * (a * x + b * y), cy + s * (c * x + d * y))
                          for x, y in pts])
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(CUE_COLOR)
        p.drawPolygon(poly)


class DecisionStreamReader(QObject):
    """Reads a decision LSL stream (:class:`bci.outputs.DecisionOutlet`) on a thread and
    hands each decision, rebuilt as a :class:`Decision`, to ``sink`` (e.g.
    ``panel.post_decision``).

    The rebuilt decision has the label, probabilities (or outputs), classes, the LSL
    timestamp as ``last_sample_time`` and ``emitted``, both on the sender's clock (no
    clock correction, so the latency ``emitted − last_sample_time`` is exact; on one
    machine the clocks are the same); ``index`` counts the decisions read, ``stop`` is −1
    and no true label is known.
    """

    def __init__(self, name: str, sink, *, timeout: float = 5.0) -> None:
        super().__init__()
        pylsl = get_pylsl()
        found = pylsl.resolve_byprop("name", name, 1, timeout)
        if not found:
            raise TimeoutError(f"no decision stream named {name!r} within {timeout} s")
        info = found[0]
        self._inlet = pylsl.StreamInlet(info, max_buflen=60)
        full = self._inlet.info(timeout)
        classes = []
        c = full.desc().child("classes").child("class")
        while not c.empty():
            classes.append(c.child_value())
            c = c.next_sibling("class")
        self.classes = classes
        self._sink = sink
        self._n = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"decisions-{name}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            sample, ts = self._inlet.pull_sample(timeout=0.1)
            if sample is None:
                continue
            s = np.asarray(sample, np.float64)
            emitted = None if np.isnan(s[-1]) else float(s[-1])
            if self.classes:
                k = int(s[0])
                label = self.classes[k] if 0 <= k < len(self.classes) else None
                out = s[1:-1].copy()
            else:
                label, out = None, s[:-1].copy()
            index, self._n = self._n, self._n + 1
            self._sink(Decision(index=index, label=label, output=out,
                                classes=list(self.classes), last_sample_time=float(ts),
                                stop=-1, emitted=emitted))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._inlet = None
