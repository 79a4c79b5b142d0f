"""Figures of merit for decisions: accuracy and information transfer rate."""

from __future__ import annotations

import math


def wolpaw_bits(n_classes: int, accuracy: float) -> float:
    """Bits per selection (Wolpaw et al. 2002).

    ``B = log2 N + P log2 P + (1 − P) log2((1 − P) / (N − 1))``, with ``B = 0`` at or
    below chance (``P ≤ 1/N``), the usual convention that keeps the rate non-negative.

    Parameters
    ----------
    n_classes : int
        N, the number of targets (≥ 2).
    accuracy : float
        P, the fraction of correct selections.
    """
    if n_classes < 2:
        raise ValueError(f"ITR needs at least 2 classes, found {n_classes}")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must lie in [0, 1], found {accuracy}")
    n, p = n_classes, accuracy
    if p <= 1.0 / n:
        return 0.0
    bits = math.log2(n) + p * math.log2(p)
    if p < 1.0:
        bits += (1 - p) * math.log2((1 - p) / (n - 1))
    return bits


def itr_bits_per_min(n_classes: int, accuracy: float, seconds_per_selection: float) -> float:
    """Wolpaw ITR in bits/min for selections every ``seconds_per_selection`` seconds.

    The selection time is the caller's convention; the demo counts the whole trial
    (stimulation plus the inter-trial gaze shift).
    """
    if not seconds_per_selection > 0:
        raise ValueError(f"selection time must be positive, found {seconds_per_selection}")
    return wolpaw_bits(n_classes, accuracy) * 60.0 / seconds_per_selection
