"""Each window rendered offscreen; with BCI_SCREENSHOTS=DIR the renders are saved there
(the README's pictures are these files: `BCI_SCREENSHOTS=docs/screenshots pytest -q
tests/test_screenshots.py`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from bci.decision import Decision

CLASSES = ["left", "right"]


@pytest.fixture(scope="module")
def app():
    return QApplication.instance() or QApplication([])


def _save(image: QImage, name: str) -> None:
    folder = os.environ.get("BCI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        assert image.save(str(Path(folder) / f"{name}.png"))


def _distinct_colours(image: QImage) -> int:
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    ptr = image.constBits()
    a = np.frombuffer(ptr, np.uint32, image.width() * image.height())
    return int(np.unique(a).size)


def test_speller_render(app, unique_name):
    from bci.gui.speller import SpellerWindow

    w = SpellerWindow(refresh=60.0, marker_stream=f"{unique_name}-m")
    w.resize(900, 560)
    w.show()
    w.append_text("HELLO_")
    w.set_cue("W")
    w.stimulate(n_frames=30, paced=False)
    for _ in range(7):
        w.step()
    app.processEvents()
    image = w.grab().toImage()
    w.stop()
    w.close()
    # 40 targets at different phases: many grey levels on screen at once
    assert _distinct_colours(image) > 20
    _save(image, "speller")


def test_decoder_panel_and_feedback_render(app):
    from bci.gui.feedback import DecoderPanel, MIFeedback

    panel = DecoderPanel()
    panel.resize(640, 420)
    panel.show()
    rng = np.random.default_rng(0)
    for i in range(40):
        p = rng.dirichlet([2, 2])
        truth = CLASSES[i % 2]
        label = CLASSES[int(np.argmax(p))]
        d = Decision(index=i, label=label, output=p, classes=CLASSES, last_sample_time=i,
                     stop=100 * i, true_label=truth)
        d.emitted = i + rng.uniform(0.002, 0.03)
        panel.add_decision(d)
    app.processEvents()
    image = panel.grab().toImage()
    assert _distinct_colours(image) > 4
    _save(image, "decoder-panel")
    panel.close()

    fb = MIFeedback()
    fb.resize(480, 300)
    fb.show()
    fb.set_cue("right")
    for _ in range(10):
        fb.update_output(0.6)
    app.processEvents()
    image = fb.grab().toImage()
    assert _distinct_colours(image) > 2
    _save(image, "mi-feedback")
    fb.close()


def test_scope_render(app):
    """The scope on the simulated amplifier's SSVEP EEG, markers at the cues."""
    from bci.chunk import Chunk, Markers
    from bci.datasets.synthetic import SyntheticEEG
    from bci.gui.scope import ScopeWindow

    eeg = SyntheticEEG(paradigm="ssvep", seed=3)

    class Source:
        """SyntheticEEG read 0.1 s per pull, its cue onsets as markers."""

        info = eeg.info

        def __init__(self) -> None:
            self.sample = 0
            self.pending: list[tuple[float, str]] = []

        def pull(self, timeout=0.0):
            if self.sample >= 16 * eeg.sfreq:
                return None
            n = int(eeg.sfreq // 10)
            data, cues = eeg.read(n)
            ts = (self.sample + np.arange(n)) / eeg.sfreq
            self.pending += [((self.sample + i) / eeg.sfreq, v) for i, v in cues]
            self.sample += n
            return Chunk(data.astype(np.float32), ts)

    class MarkerFeed:
        def pull(self):
            rows, source.pending = source.pending, []
            return Markers(np.array([t for t, _ in rows]), [v for _, v in rows])

    source = Source()
    w = ScopeWindow(source, MarkerFeed(), seconds=10.0, autostart=False, scale=60e-6)
    w.toggle_bad(eeg.ch_names[5])  # shown grey and dashed
    w.resize(900, 480)
    w.show()
    while source.sample < 16 * eeg.sfreq:
        w.tick()
    app.processEvents()
    image = w.grab().toImage()
    w.close()
    assert len(w.curves) == eeg.n_channels
    assert _distinct_colours(image) > 4
    _save(image, "scope")
