"""The protocols' windows: what the participant sees and what the operator watches.

:class:`ProtocolGUI` runs a protocol (``bci.protocols.ssvep_speller`` or
``bci.protocols.mi_feedback``) in a worker thread and its windows in the Qt (main) thread:

- the **participant's window**: the SSVEP speller (:class:`~bci.gui.speller.SpellerWindow`,
  the protocol's targets, frequencies and JFPM phases) or the motor-imagery feedback
  (:class:`~bci.gui.feedback.MIFeedback`: fixation cross, cue arrow, cursor);
- the **operator's window**: the phase and trial count over a
  :class:`~bci.gui.feedback.DecoderPanel` (probabilities, rolling accuracy, latency
  histogram).

The protocol sees them through its hooks (:class:`bci.protocols.base.Hooks`), which only
queue signals to the GUI thread, so acquisition and decoding never wait for a paint. The
one exception is :meth:`QtHooks.stimulate`: the speller's cue marker is sent *on the
first frame* of each stimulation, stamped with that frame's time, so the protocol's thread
waits for that frame (and for nothing else).

Closing either window stops the protocol: its current wait ends, the recordings are
flushed and closed, the simulator (if any) stops, and :meth:`ProtocolGUI.run` raises
:class:`KeyboardInterrupt` once all of that is done.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
from bci.protocols.base import clock
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication, QLabel, QVBoxLayout, QWidget

from bci.errors import DeviceError
from bci.gui.feedback import DecoderPanel, MIFeedback
from bci.gui.speller import SpellerWindow

#: Seconds the protocol thread waits for a first frame before it gives up on the display.
FIRST_FRAME_TIMEOUT = 5.0


class OperatorWindow(QWidget):
    """The protocol's phase and progress above the decoder panel."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.status = QLabel("starting")
        self.panel = DecoderPanel()
        lay = QVBoxLayout(self)
        lay.addWidget(self.status)
        lay.addWidget(self.panel, 1)
        self.setWindowTitle(f"{title}: operator")
        self.phase = "starting"
        self.n_cues = 0

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self.n_cues = 0
        self._show()

    def count_cue(self) -> None:
        self.n_cues += 1
        self._show()

    def _show(self) -> None:
        self.status.setText(f"{self.phase} · trial {self.n_cues}")


class _CloseWatch(QObject):
    """Event filter: a window's close request stops the protocol."""

    def __init__(self, on_close: Callable[[], None]) -> None:
        super().__init__()
        self._on_close = on_close

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Close:
            self._on_close()
        return False


class QtHooks(QObject):
    """The protocol's presentation hooks, carried to the GUI thread by queued signals.

    Parameters
    ----------
    protocol : str
        ``"ssvep-speller"`` or ``"mi-feedback"``.
    config : dict
        The protocol's validated settings (``load``).
    stop : threading.Event
        Set when a window is closed; the protocol ends at its next wait.
    """

    cue_posted = Signal(str)
    phase_posted = Signal(str)
    feedback_posted = Signal(float)
    text_posted = Signal(str)
    stim_requested = Signal(str, float, float)
    stim_end_requested = Signal()

    def __init__(self, protocol: str, config: dict, *, stop: threading.Event) -> None:
        super().__init__()
        self.protocol = protocol
        self.stop = stop
        self.closed = False
        self._pending: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self.operator = OperatorWindow(protocol)
        if protocol == "ssvep-speller":
            sp = config["speller"]
            self.labels = list(config["labels"])
            refresh = sp["refresh"] or None
            self.participant: QWidget = SpellerWindow(
                sp["targets"], sp["frequencies"], speller_phases(sp), refresh=refresh,
                marker_stream=None)  # the protocol's cue stream carries the markers
            self.participant.stimulation_started.connect(
                self._first_frame, Qt.ConnectionType.DirectConnection)
        elif protocol == "mi-feedback":
            classes = config["trial"]["classes"]
            self.labels = list(classes)
            self.participant = MIFeedback(positive=classes[-1], negative=classes[0])
        else:
            raise ValueError(f"expected a protocol among ('ssvep-speller', 'mi-feedback'), "
                             f"found {protocol!r}")
        queued = Qt.ConnectionType.QueuedConnection
        self.cue_posted.connect(self._show_cue, queued)
        self.phase_posted.connect(self.operator.set_phase, queued)
        self.feedback_posted.connect(self._show_feedback, queued)
        self.text_posted.connect(self._show_text, queued)
        self.stim_requested.connect(self._start_stimulation, queued)
        self.stim_end_requested.connect(self._end_stimulation, queued)
        self._watch = _CloseWatch(self._closing)
        for w in (self.participant, self.operator):
            w.installEventFilter(self._watch)

    # --- hooks: called from the protocol's threads ----------------------------------
    def on_phase(self, phase: str) -> None:
        if not self.closed:
            self.phase_posted.emit(phase)

    def on_cue(self, label: str) -> None:
        if not self.closed:
            self.cue_posted.emit(label)

    def on_feedback(self, value: float) -> None:
        if not self.closed:
            self.feedback_posted.emit(float(value))

    def on_decision(self, decision) -> None:
        if not self.closed:
            self.operator.panel.post_decision(decision)

    def on_text(self, text: str) -> None:
        if not self.closed:
            self.text_posted.emit(text)

    def end_stimulation(self) -> None:
        if not self.closed:
            self.stim_end_requested.emit()

    def stimulate(self, label: str, at: float, duration: float,
                  send: Callable[[str, float], None]) -> float | None:
        """Ask the speller for a stimulation from ``at``; block until its first frame."""
        if self.protocol != "ssvep-speller":
            return None
        done = threading.Event()
        with self._lock:
            self._pending = {"label": label, "send": send, "done": done, "time": None}
        self.stim_requested.emit(label, float(at), float(duration))
        give_up = at + FIRST_FRAME_TIMEOUT
        while not done.wait(0.02):
            if self.stop.is_set() or self.closed or clock() > give_up:
                with self._lock:  # a frame painted from now on sends no marker
                    if self._pending is not None and self._pending["time"] is None:
                        self._pending = None
                    elif self._pending is not None:
                        break  # painted just now: its marker went out, use it
            if self.stop.is_set() or self.closed:
                raise KeyboardInterrupt("protocol stopped: the window was closed")
            if clock() > give_up:
                raise DeviceError(f"the speller painted no frame within "
                                  f"{FIRST_FRAME_TIMEOUT:g} s of a stimulation's start "
                                  "(is the GUI thread blocked?)")
        with self._lock:
            t, self._pending = self._pending["time"], None
        return t

    # --- GUI thread --------------------------------------------------------------------
    def _show_cue(self, label: str) -> None:
        if label not in ("fixation", "rest"):
            self.operator.count_cue()
        if isinstance(self.participant, SpellerWindow):
            if label in self.labels:
                self.participant.set_cue(self.labels.index(label))
        else:
            if label == "fixation":
                self.participant.reset()
            self.participant.set_cue(label)

    def _show_feedback(self, value: float) -> None:
        if isinstance(self.participant, MIFeedback):
            self.participant.update_output(value)

    def _show_text(self, text: str) -> None:
        if isinstance(self.participant, SpellerWindow):
            self.participant.text_line.setText(text)

    def _start_stimulation(self, label: str, at: float, duration: float) -> None:
        k = self.labels.index(label)
        self.participant.stimulate(duration, cue=k, label=label, start_at=at)

    def _first_frame(self, t: float) -> None:
        # runs inside the paint of the first frame: the marker leaves with that frame
        with self._lock:
            pending = self._pending
            if pending is None or pending["time"] is not None:
                return
            pending["time"] = t
        pending["send"](pending["label"], t)
        pending["done"].set()

    def _end_stimulation(self) -> None:
        if isinstance(self.participant, SpellerWindow):
            self.participant.stop()
            self.participant.set_cue(None)

    def _closing(self) -> None:
        self.closed = True
        self.stop.set()

    # --- windows -----------------------------------------------------------------------
    def show(self) -> None:
        self.participant.resize(900, 600)
        self.participant.show()
        self.operator.resize(640, 480)
        self.operator.show()

    def close(self) -> None:
        self.closed = True
        if isinstance(self.participant, SpellerWindow):
            self.participant.stop()
        for w in (self.participant, self.operator):
            w.removeEventFilter(self._watch)
            w.close()


def speller_phases(speller: dict) -> np.ndarray:
    """The targets' phases: ``speller.phases``, else JFPM's 0.35π steps (Chen et al.)."""
    n = len(speller["targets"])
    if speller.get("phases"):
        return np.asarray(speller["phases"], np.float64)
    return np.mod(0.35 * math.pi * np.arange(n), 2 * math.pi)


class ProtocolGUI:
    """A protocol in a worker thread with its windows in this (the Qt main) thread.

    Parameters
    ----------
    module : module
        The protocol's module (``run(config, hooks=, simulate=, out_dir=, stop=)``).
    config : dict
        Its validated settings.
    simulate : bool
        Run against the simulated amplifier.
    out_dir : str | Path | None
        Where the run's files go.
    stop : threading.Event | None
        Set it (e.g. from a signal handler) to end the run; closing a window sets it.
    """

    def __init__(self, module: ModuleType, config: dict, *, simulate: bool = False,
                 out_dir=None, stop: threading.Event | None = None) -> None:
        self.app = QApplication.instance() or QApplication([])
        self.module = module
        self.config = config
        self.simulate = simulate
        self.out_dir = out_dir
        self.stop = stop if stop is not None else threading.Event()
        self.hooks = QtHooks(module.NAME, config, stop=self.stop)
        self.summary: dict | None = None
        self.error: BaseException | None = None

    def _work(self) -> None:
        try:
            self.summary = self.module.run(self.config, hooks=self.hooks,
                                           simulate=self.simulate, out_dir=self.out_dir,
                                           stop=self.stop)
        except BaseException as err:  # re-raised in the GUI thread by run()
            self.error = err

    def run(self) -> dict:
        """Show the windows, run the protocol, return its summary when it ends.

        Raises what the protocol raised; :class:`KeyboardInterrupt` when a window was
        closed (after the recordings were flushed).
        """
        app = self.app
        quit_on_close = app.quitOnLastWindowClosed()
        app.setQuitOnLastWindowClosed(False)  # the loop ends when the protocol has
        self.hooks.show()
        thread = threading.Thread(target=self._work, name=f"protocol-{self.module.NAME}",
                                  daemon=True)
        poll = QTimer()
        # a short timer also lets Python run signal handlers (Ctrl+C) during exec()
        poll.timeout.connect(lambda: None if thread.is_alive() else app.quit())
        thread.start()
        poll.start(50)
        try:
            app.exec()
        finally:
            poll.stop()
            if thread.is_alive():  # the event loop ended first (Ctrl+C): stop the protocol
                self.stop.set()
            thread.join()
            self.hooks.on_phase("done")
            self.hooks.close()
            app.processEvents()
            app.setQuitOnLastWindowClosed(quit_on_close)
        if self.error is not None:
            raise self.error
        return self.summary


def display_available() -> bool:
    """Whether Qt can show windows here (a display, or an explicit platform plugin)."""
    import os
    import sys

    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.startswith(("offscreen", "minimal")):
        return False
    if platform or sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
