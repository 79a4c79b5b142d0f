"""Protocols with their windows (offscreen): the speller's cue markers are its first
frames, the feedback cursor shows the decoder's continuous output, and closing a window
ends the session with its recordings flushed. Real LSL, a cue-following simulated
amplifier, real training."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("PySide6")

from bci.devices.files import read_recording
from bci.protocols import mi_feedback, ssvep_speller
from bci.protocols.base import END_MARKER
from bci.protocols.presentation import ProtocolGUI
from PySide6.QtWidgets import QApplication

SSVEP_TEST = """
[speller]
refresh = 60.0
[simulate]
calibration = { n_blocks = 3, duration = 1.2, iti = 0.4 }
online = { n_trials = 6, min_window = 0.5, max_window = 1.0, step = 0.25, iti = 0.3 }
"""
MI_TEST = """
[simulate]
calibration = { n_trials = 12 }
online = { n_trials = 20 }
"""


@pytest.fixture(scope="module")
def app():
    return QApplication.instance() or QApplication([])


def _cues(recording) -> list[tuple[float, str]]:
    return [(t, v) for t, v in recording.markers if v != END_MARKER]


@pytest.mark.slow
def test_speller_window_stamps_each_cue_with_its_first_frame(app, tmp_path):
    path = tmp_path / "speller.toml"
    path.write_text(SSVEP_TEST)
    config = ssvep_speller.load(path, simulate=True)
    gui = ProtocolGUI(ssvep_speller, config, simulate=True, out_dir=tmp_path / "out")
    shown_text = []
    gui.hooks.text_posted.connect(shown_text.append)
    summary = gui.run()
    speller = gui.hooks.participant

    painted = speller.markers  # (first frame's LSL time, label) of every stimulation
    calib = _cues(read_recording(summary["calibration_recording"]))
    online = _cues(read_recording(summary["recording"]))
    assert len(calib) == 3 * 4 and len(online) == 6
    assert len(painted) == len(calib) + len(online)
    # the recorded cue markers are exactly the times the first frames were painted
    assert [v for _, v in painted] == [v for _, v in calib + online]
    np.testing.assert_array_equal([t for t, _ in painted], [t for t, _ in calib + online])
    # the text line shows what was spelled; the decoder panel saw every selection
    assert shown_text[-1] == summary["text"] == speller.text
    assert gui.hooks.operator.panel.n_decisions == summary["n_trials"] == 6
    assert summary["accuracy"] >= 0.5  # 4 targets: chance is 0.25


@pytest.mark.slow
def test_cursor_shows_the_decoder_output_and_closing_ends_the_session(app, tmp_path):
    path = tmp_path / "mi.toml"
    path.write_text(MI_TEST)
    config = mi_feedback.load(path, simulate=True)
    gui = ProtocolGUI(mi_feedback, config, simulate=True, out_dir=tmp_path / "out")
    hooks = gui.hooks
    cursor = hooks.participant
    phase = {"now": None}
    posted: list[float] = []  # feedback values sent to the window in this trial
    ends: list[tuple[float, float, str | None]] = []  # (shown, expected, cue) at rest

    def on_phase(p):
        phase["now"] = p

    def on_feedback(value):
        posted.append(value)

    def on_cue(label):
        # queued after the window's own slots: the window has taken every earlier signal
        if label == "fixation":
            posted.clear()
        elif label == "rest" and phase["now"] == "online":
            expected = 0.0  # the cursor restarts at the centre on the fixation cross
            for v in posted:
                expected = cursor.smoothing * expected + (1 - cursor.smoothing) * np.clip(
                    v, -1, 1)
            ends.append((cursor.value, expected, len(posted)))
            if len(ends) == 4:
                cursor.close()  # the participant's window closes mid-run

    hooks.phase_posted.connect(on_phase)
    hooks.feedback_posted.connect(on_feedback)
    hooks.cue_posted.connect(on_cue)
    with pytest.raises(KeyboardInterrupt):
        gui.run()

    assert len(ends) == 4
    for shown, expected, n in ends:
        assert n >= 5  # feedback every 0.1 s during the imagery
        assert shown == pytest.approx(expected, abs=1e-9)
        # the cursor's pixels sit where the value puts them (checked in test_feedback)
    # stopped cleanly: no protocol, acquisition or simulator thread left behind
    names = [t.name for t in threading.enumerate()]
    assert not [n for n in names if n.startswith(("protocol", "simulated-amplifier"))], names
    # the online recording was flushed and closed: readable, holding the trials run
    rec = read_recording(tmp_path / "out" / "online.xdf")
    assert rec.data.shape[1] > 0
    assert len([v for _, v in rec.markers if v in ("left", "right")]) >= 4
