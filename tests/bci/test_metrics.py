"""Figures of merit: Wolpaw bits and ITR against hand-computed and published values, and
the accuracy, kappa and confusion an evaluation reports."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from bci.metrics import itr_bits_per_min, wolpaw_bits


def binary_entropy(p: float) -> float:
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


@pytest.mark.parametrize(("n", "p", "bits"), [
    # 2 + 0.9 log2 0.9 + 0.1 log2(0.1 / 3) = 2 − 0.136803 − 0.490689
    (4, 0.9, 1.372508),
    # Wolpaw et al. 2002, fig. 2: two targets at 90 % carry 0.53 bits
    (2, 0.9, 0.531004),
    # 1 + 0.75 log2 0.75 + 0.25 log2 0.25 = 1 − 0.311278 − 0.5
    (2, 0.75, 0.188722),
    # log2 3 + 0.5 log2 0.5 + 0.5 log2 0.25 = 1.584963 − 0.5 − 1
    (3, 0.5, 0.084963),
])
def test_wolpaw_bits_match_hand_computed_values(n, p, bits):
    assert wolpaw_bits(n, p) == pytest.approx(bits, abs=1e-6)


def test_itr_for_four_targets_at_ninety_percent_one_selection_per_second():
    assert itr_bits_per_min(4, 0.9, 1.0) == pytest.approx(60 * 1.372508, abs=1e-4)
    # the rate scales with the inverse of the selection time
    assert itr_bits_per_min(4, 0.9, 2.0) == pytest.approx(30 * 1.372508, abs=1e-4)
    assert itr_bits_per_min(4, 0.9, 0.5) == pytest.approx(120 * 1.372508, abs=1e-4)


def test_itr_matches_the_figures_in_the_benchmark_notes():
    # benchmarks/README.md: three SSVEP targets, mean accuracy 0.849, 2 s per selection
    assert itr_bits_per_min(3, 0.849, 2.0) == pytest.approx(24.6, abs=0.05)
    # and `bci demo`: four targets, 8 of 9 correct, 3 s per selection
    assert itr_bits_per_min(4, 8 / 9, 3.0) == pytest.approx(26.4, abs=0.05)


@pytest.mark.parametrize("p", [0.55, 0.6, 0.8, 0.95, 0.99])
def test_two_classes_carry_one_bit_less_the_binary_entropy(p):
    assert wolpaw_bits(2, p) == pytest.approx(1 - binary_entropy(p), abs=1e-12)


@pytest.mark.parametrize("n", [2, 3, 4, 40])
def test_perfect_accuracy_carries_log2_n_bits(n):
    assert wolpaw_bits(n, 1.0) == pytest.approx(math.log2(n), abs=1e-12)
    assert itr_bits_per_min(n, 1.0, 3.0) == pytest.approx(20 * math.log2(n), abs=1e-12)


@pytest.mark.parametrize(("n", "p"), [(2, 0.5), (2, 0.3), (4, 0.25), (4, 0.1), (4, 0.0),
                                      (40, 1 / 40)])
def test_at_or_below_chance_the_rate_is_zero(n, p):
    assert wolpaw_bits(n, p) == 0.0
    assert itr_bits_per_min(n, p, 1.0) == 0.0


def test_just_above_chance_the_rate_is_small_and_grows_with_accuracy():
    ps = [0.2501, 0.3, 0.5, 0.7, 0.9, 1.0]
    bits = [wolpaw_bits(4, p) for p in ps]
    assert 0 < bits[0] < 1e-6
    assert all(a < b for a, b in itertools.pairwise(bits))
    assert bits[-1] == 2.0


@pytest.mark.parametrize(("n", "p", "match"), [
    (1, 0.9, "at least 2 classes, found 1"),
    (0, 0.9, "at least 2 classes, found 0"),
    (4, 1.2, r"accuracy must lie in \[0, 1\], found 1.2"),
    (4, -0.1, r"accuracy must lie in \[0, 1\], found -0.1"),
    (4, float("nan"), r"accuracy must lie in \[0, 1\], found nan"),
])
def test_bad_class_count_or_accuracy_is_refused(n, p, match):
    with pytest.raises(ValueError, match=match):
        wolpaw_bits(n, p)
    with pytest.raises(ValueError, match=match):
        itr_bits_per_min(n, p, 1.0)


@pytest.mark.parametrize("t", [0.0, -1.0, float("nan")])
def test_non_positive_selection_time_is_refused(t):
    with pytest.raises(ValueError, match="selection time must be positive, found"):
        itr_bits_per_min(4, 0.9, t)


# --- the figures an offline evaluation reports ------------------------------------------

def _evaluation(classes, y_true, y_pred, **kw):
    from bci.decoders.training import Evaluation

    y_true, y_pred = np.array(y_true), np.array(y_pred)
    n = y_true.size
    return Evaluation(decoder="test", split="k-fold", classes=classes, y_true=y_true,
                      y_pred=y_pred, proba=np.full((n, len(classes)), 1 / len(classes)),
                      stops=np.arange(n), recording=np.zeros(n, int), **kw)


def test_evaluation_accuracy_kappa_confusion_and_itr_are_the_hand_computed_values():
    y_true = ["a", "a", "a", "a", "b", "b", "b", "b"]
    y_pred = ["a", "a", "a", "b", "b", "b", "a", "a"]
    s = _evaluation(["a", "b"], y_true, y_pred, paradigm="ssvep", window_seconds=1.0,
                    gaze_shift=0.5).summary()
    assert s["accuracy"] == 5 / 8
    # kappa = (p_o − p_e) / (1 − p_e), p_e = 4/8 · 5/8 + 4/8 · 3/8 = 1/2
    assert s["kappa"] == pytest.approx((5 / 8 - 1 / 2) / (1 - 1 / 2))
    assert s["confusion"] == [[3, 1], [2, 2]]  # rows true, columns predicted
    assert s["chance"] == 0.5
    assert s["n_windows"] == 8
    # 1 − H(5/8) bits per selection, 1.5 s per selection (window + gaze shift)
    assert s["itr_bits_per_min"] == pytest.approx((1 - binary_entropy(5 / 8)) * 40)
    assert "1.5 s per selection (1 s window + 0.5 s gaze shift)" in s["itr_convention"]


def test_evaluation_confusion_follows_the_class_order_and_perfect_kappa_is_one():
    y = ["l", "r", "r", "f", "f", "f"]
    s = _evaluation(["r", "l", "f"], y, y, paradigm="ssvep", window_seconds=2.0).summary()
    assert s["confusion"] == [[2, 0, 0], [0, 1, 0], [0, 0, 3]]
    assert s["accuracy"] == 1.0 and s["kappa"] == 1.0
    assert s["chance"] == 0.5  # the most frequent class
    assert s["itr_bits_per_min"] == pytest.approx(30 * math.log2(3))
    assert "gaze shift not included" in s["itr_convention"]


def test_evaluation_of_a_non_ssvep_paradigm_reports_no_itr():
    s = _evaluation(["left", "right"], ["left", "right"], ["right", "right"]).summary()
    assert s["accuracy"] == 0.5 and s["kappa"] == 0.0
    assert s["confusion"] == [[0, 1], [0, 1]]
    assert "itr_bits_per_min" not in s
