"""Voltage units as LSL and XDF headers spell them, and their factor to volts."""

from __future__ import annotations

VOLT_UNITS = {
    "v": 1.0, "volt": 1.0, "volts": 1.0,
    "mv": 1e-3, "millivolt": 1e-3, "millivolts": 1e-3,
    "uv": 1e-6, "µv": 1e-6, "μv": 1e-6, "microvolt": 1e-6, "microvolts": 1e-6,
    "nv": 1e-9, "nanovolt": 1e-9, "nanovolts": 1e-9,
}


def volt_factor(unit: str) -> float:
    """The factor that turns values in ``unit`` into volts.

    Integer strings are powers of ten (mne-lsl writes ``unit_mul`` that way: "-6" for
    µV). No unit, or one that is not a voltage, gives 1: values stay as recorded.
    """
    key = unit.strip().lower()
    if key in VOLT_UNITS:
        return VOLT_UNITS[key]
    try:
        return 10.0 ** int(key)
    except ValueError:
        return 1.0
