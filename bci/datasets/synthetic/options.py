"""The paradigms, their default options, the checks of option values and the seed streams."""

from __future__ import annotations

import math

PARADIGMS = ("ssvep", "mi")
DEFAULT_SSVEP_CHANNELS = ("Oz", "O1", "O2", "PO3", "POz", "PO7", "PO8", "PO4")
DEFAULT_FREQUENCIES = (8.0, 10.0, 12.0, 15.0)
#: Phase step between consecutive SSVEP targets (joint frequency-phase coding).
PHASE_STEP = 0.5 * math.pi
MI_CLASSES = ("left", "right", "feet")
DEFAULT_MI_CLASSES = ("left", "right")
DEFAULT_MI_N_CHANNELS = 16
DEFAULT_SFREQ = {"ssvep": 256.0, "mi": 160.0}
DEFAULT_TRIAL_DURATION = {"ssvep": 2.0, "mi": 4.0}
DEFAULT_ITI = {"ssvep": 1.0, "mi": 2.0}
#: Lowest rates that keep the alpha band (and for MI the beta band) below Nyquist.
MIN_SFREQ = {"ssvep": 32.0, "mi": 64.0}

# Streams of the seeded generators, so that no two draws share a seed.
RNG_NOISE, RNG_ORDER, RNG_TRIAL, RNG_FIXED = 0, 1, 2, 3


def check_paradigm(paradigm: str) -> None:
    if paradigm not in PARADIGMS:
        raise ValueError(f"expected paradigm 'ssvep' or 'mi', found {paradigm!r}")


def as_positive(name: str, value: float) -> float:
    """``value`` as a finite float > 0; a ValueError naming ``name`` otherwise."""
    return _as_number(name, value, positive=True)


def as_non_negative(name: str, value: float) -> float:
    """``value`` as a finite float ≥ 0; a ValueError naming ``name`` otherwise."""
    return _as_number(name, value, positive=False)


def _as_number(name: str, value: float, *, positive: bool) -> float:
    expected = f"expected a {'positive' if positive else 'non-negative'} number for {name}"
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{expected}, found {value!r}") from None
    if not math.isfinite(out) or out < 0 or (positive and out == 0):
        raise ValueError(f"{expected}, found {value!r}")
    return out
