"""SSVEP class labels and the frequencies they name (``8 Hz ⇄ "8Hz"``)."""

from __future__ import annotations

import re
from collections.abc import Sequence


def ssvep_label(frequency: float) -> str:
    """The marker value and class label of an SSVEP target, e.g. ``8 → "8Hz"``."""
    return f"{float(frequency):g}Hz"


_LABEL_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*hz\s*$", re.IGNORECASE)


def label_frequency(label: str) -> float:
    """The stimulation frequency of an SSVEP label (``"12.5Hz" → 12.5``).

    Raises
    ------
    ValueError
        If the label is not a number followed by ``Hz``.
    """
    match = _LABEL_RE.match(str(label))
    if match is None:
        raise ValueError(f"expected an SSVEP label such as '8Hz' or '12.5Hz', found {label!r}")
    return float(match.group(1))


def label_frequencies(labels: Sequence[str]) -> list[float]:
    """Map SSVEP labels to their frequencies, in order (see :func:`label_frequency`)."""
    return [label_frequency(label) for label in labels]
