"""Decoder panel and motor-imagery feedback: what the pixels show, accuracy, latency
histogram, and decisions fed from other threads and from an LSL decision stream."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")

from qt_events import wait_until

from bci.decision import Decision
from bci.gui.feedback import (
    BAR_COLOR,
    CUE_COLOR,
    CURSOR_COLOR,
    HIST_COLOR,
    WINNER_COLOR,
    DecisionStreamReader,
    DecoderPanel,
    MIFeedback,
)
from bci.outputs import DecisionOutlet

CLASSES = ["left", "right", "feet", "tongue"]


def decision(i, probs, true=None, latency=None, classes=CLASSES):
    probs = np.asarray(probs, np.float64)
    label = classes[int(np.argmax(probs))] if classes else None
    return Decision(index=i, label=label, output=probs, classes=list(classes),
                    last_sample_time=100.0, stop=0, true_label=true,
                    emitted=None if latency is None else 100.0 + latency)


def same(c, ref) -> bool:
    return (c.red(), c.green(), c.blue()) == (ref.red(), ref.green(), ref.blue())


def bar_heights(panel) -> list[int]:
    """Height in pixels of each bar, read from the widget's picture."""
    img = panel.bars.grab().toImage()
    out = []
    for k in range(len(panel.bars.values)):
        x0, x1 = panel.bars.bar_column(k)
        x = (x0 + x1) // 2
        out.append(sum(1 for y in range(img.height())
                       if same(img.pixelColor(x, y), BAR_COLOR)
                       or same(img.pixelColor(x, y), WINNER_COLOR)))
    return out


def test_bars_follow_probabilities(app):
    panel = DecoderPanel()
    panel.resize(500, 400)
    panel.show()
    probs = [0.1, 0.5, 0.15, 0.25]
    panel.add_decision(decision(0, probs))
    h = bar_heights(panel)
    assert np.argsort(h).tolist() == np.argsort(probs).tolist()
    area = panel.bars.plot_area().height()
    np.testing.assert_allclose(h, np.array(probs) * area, atol=1.5)
    # the winner is green, the others blue
    img = panel.bars.grab().toImage()
    bottom = panel.bars.plot_area().bottom()
    for k in range(4):
        x0, x1 = panel.bars.bar_column(k)
        c = img.pixelColor((x0 + x1) // 2, bottom)
        assert same(c, WINNER_COLOR if k == 1 else BAR_COLOR)
    # a new decision redraws
    panel.add_decision(decision(1, [0.7, 0.1, 0.1, 0.1]))
    h = bar_heights(panel)
    assert h[0] > 3 * max(h[1:])
    assert "#1  left" in panel.log.toPlainText()
    panel.close()


def test_rolling_accuracy(app):
    panel = DecoderPanel(accuracy_window=4)
    truth = ["left", "right", "left", "feet", "tongue", "left"]
    preds = ["left", "left", "left", "feet", "feet", "feet"]
    want_roll = [1.0, 0.5, 2 / 3, 3 / 4, 2 / 4, 2 / 4]
    for i, (t, p) in enumerate(zip(truth, preds, strict=True)):
        probs = np.full(4, 0.1)
        probs[CLASSES.index(p)] = 0.7
        panel.add_decision(decision(i, probs, true=t))
        assert panel.rolling_accuracy == pytest.approx(want_roll[i])
    assert panel.accuracy == pytest.approx(3 / 6)
    # decisions without a true label change nothing
    panel.add_decision(decision(6, [0.7, 0.1, 0.1, 0.1]))
    assert panel.rolling_accuracy == pytest.approx(2 / 4) and panel.n_labelled == 6
    assert "50% (last 4)" in panel.accuracy_label.text()
    panel.close()


def test_latency_histogram(app):
    panel = DecoderPanel(bin_ms=5.0, n_bins=10)
    panel.resize(500, 400)
    lat_ms = [1.0, 2.0, 4.9, 7.0, 12.0, 12.5, 49.0, 80.0, 300.0]
    for i, ms in enumerate(lat_ms):
        panel.add_decision(decision(i, [0.25] * 4, latency=ms / 1e3))
    panel.add_decision(decision(99, [0.25] * 4))  # no latency: not counted
    np.testing.assert_array_equal(panel.histogram.counts, [3, 1, 2, 0, 0, 0, 0, 0, 0, 3])
    np.testing.assert_allclose(panel.latencies_ms, lat_ms)
    # the picture: the tallest columns are bins 0 and 9, bin 3 is empty
    img = panel.histogram.grab().toImage()
    w = panel.histogram.width() / 10
    cols = [sum(1 for y in range(img.height())
                if same(img.pixelColor(int((k + 0.5) * w), y), HIST_COLOR))
            for k in range(10)]
    assert cols[0] == cols[9] == max(cols) > 0
    assert cols[1] < cols[2] < cols[0] and cols[3] == 0
    panel.close()


def test_post_decision_from_other_threads(app):
    panel = DecoderPanel()
    n = 50
    timings = []

    def loop():
        for i in range(n):
            t = time.perf_counter()
            panel.post_decision(decision(i, [0.4, 0.3, 0.2, 0.1], true="left", latency=0.01))
            timings.append(time.perf_counter() - t)

    th = threading.Thread(target=loop)
    th.start()
    th.join()
    assert panel.n_decisions == 0  # nothing happened on the decoding thread
    assert max(timings) < 0.05
    assert wait_until(app, lambda: panel.n_decisions == n)
    assert panel.rolling_accuracy == 1.0 and panel.histogram.counts[2] == n
    panel.close()


def test_panel_reads_decision_stream(app, unique_name):
    outlet = DecisionOutlet(unique_name, classes=CLASSES, n_outputs=4)
    panel = DecoderPanel()
    reader = DecisionStreamReader(unique_name, panel.post_decision)
    try:
        time.sleep(0.3)  # let the inlet connect before pushing
        sent = [[0.1, 0.6, 0.2, 0.1], [0.7, 0.1, 0.1, 0.1]]
        for i, p in enumerate(sent):
            outlet(decision(i, p, latency=0.02))
        assert wait_until(app, lambda: panel.n_decisions == 2)
        np.testing.assert_allclose(panel.bars.values, sent[1])
        assert panel.bars.classes == CLASSES
        assert "#0  right" in panel.log.toPlainText()
        np.testing.assert_allclose(panel.latencies_ms, [20.0, 20.0], atol=1e-6)
    finally:
        reader.close()
        outlet.close()
        panel.close()


def cursor_centre(fb) -> float:
    img = fb.grab().toImage()
    y = fb.track()[2]
    xs = [x for x in range(img.width()) if same(img.pixelColor(x, y - 12), CURSOR_COLOR)]
    assert xs
    return float(np.mean(xs))


def test_mi_cursor_moves_with_output(app):
    fb = MIFeedback(smoothing=0.0)
    fb.resize(400, 300)
    fb.show()
    centre = fb.width() / 2
    assert cursor_centre(fb) == pytest.approx(centre, abs=1.5)
    fb.update_output(0.8)
    right = cursor_centre(fb)
    assert right > centre + 100
    fb.update_output(-0.5)
    left = cursor_centre(fb)
    assert left < centre - 60
    assert abs(left - centre) < abs(right - centre)
    fb.update_output(5.0)  # clipped to the end of the track
    assert cursor_centre(fb) == pytest.approx(fb.track()[1], abs=1.5)
    fb.close()


def test_mi_smoothing_and_decisions(app):
    fb = MIFeedback(smoothing=0.5)
    fb.resize(400, 300)
    fb.update_output(1.0)
    assert fb.value == pytest.approx(0.5)
    fb.update_output(1.0)
    assert fb.value == pytest.approx(0.75)
    fb.reset()
    fb.smoothing = 0.0
    d = decision(0, [0.2, 0.7, 0.05, 0.05])  # p_right − p_left = 0.5
    fb.update_decision(d)
    assert fb.value == pytest.approx(0.5)
    fb.update_decision(decision(1, [0.9, 0.1, 0.0, 0.0]))
    assert fb.value == pytest.approx(-0.8)
    assert cursor_centre(fb) < fb.width() / 2 - 100
    # thread-safe entry points
    th = threading.Thread(target=lambda: fb.post_output(0.3))
    th.start()
    th.join()
    assert wait_until(app, lambda: fb.value == pytest.approx(0.3))
    fb.close()


@pytest.mark.parametrize(("cue", "side"), [("left", -1), ("right", 1)])
def test_mi_cue_arrow(app, cue, side):
    fb = MIFeedback()
    fb.resize(400, 300)
    fb.set_cue(cue)
    img = fb.grab().toImage()
    y = int(fb.height() * 0.35)
    xs = [x for x in range(img.width()) if same(img.pixelColor(x, y), CUE_COLOR)]
    assert xs
    # the arrow's head (the tip) is on the cue's side: at the centre row the shape spans
    # to the tip; above the shaft only the head is drawn
    y_head = int(fb.height() * 0.35 - 0.5 * 0.15 * min(fb.width(), fb.height()))
    head = [x for x in range(img.width()) if same(img.pixelColor(x, y_head), CUE_COLOR)]
    assert head
    assert side * (np.mean(head) - fb.width() / 2) > 10
    fb.set_cue(None)
    img = fb.grab().toImage()
    assert not any(same(img.pixelColor(x, y), CUE_COLOR) for x in range(img.width()))
    fb.close()


def test_mi_fixation_cross_and_rest(app):
    fb = MIFeedback()
    fb.resize(400, 300)
    fb.set_cue("fixation")
    img = fb.grab().toImage()
    cx, cy = fb.width() // 2, int(fb.height() * 0.35)
    row = [x for x in range(img.width()) if same(img.pixelColor(x, cy), CUE_COLOR)]
    col = [y for y in range(img.height()) if same(img.pixelColor(cx, y), CUE_COLOR)]
    # a cross: a horizontal and a vertical bar of equal length, centred
    arm = 0.15 * min(fb.width(), fb.height())
    assert abs(len(row) - 2 * arm) <= 2 and abs(len(col) - 2 * arm) <= 2
    assert abs(np.mean(row) - cx) <= 1.5 and abs(np.mean(col) - cy) <= 1.5
    fb.set_cue("rest")  # the rest period shows no cue
    assert fb.cue is None
    img = fb.grab().toImage()
    assert not any(same(img.pixelColor(x, cy), CUE_COLOR) for x in range(img.width()))
    fb.close()
