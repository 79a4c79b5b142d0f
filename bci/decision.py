"""What a decoder says about a window: :class:`Decision`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

#: The latency stages, in the order they happen; they add up to the decision latency.
STAGES = ("pull", "filter", "window", "queue", "inference", "emit")


@dataclass(slots=True)
class Decision:
    """One decoder output.

    Attributes
    ----------
    index : int
        Decision number in the session, from 0.
    label : str | None
        The most probable class, or the best candidate of a retrieval (``None`` for
        continuous outputs and embeddings with no bank).
    output : ndarray of float64, shape (n_outputs,)
        Class probabilities in the order of ``classes``; for an embedding decoder with a
        candidate bank, the cosine similarity to each candidate (``classes`` are then the
        candidates); else the continuous output or embedding.
    classes : list of str
        Class labels or candidate names (empty for continuous outputs).
    last_sample_time : float
        Timestamp of the last sample used (LSL clock live, the recording's in replay).
    stop : int
        Absolute index, from the session's first sample, one past the last sample used.
    true_label : str | None
        The class named by the window's marker, when known.
    marker : tuple of (float, str) | None
        The marker that opened the window (epochs) or the latest one (sliding).
    emitted : float | None
        LSL clock when the decision was emitted (live only).
    stages : dict of str to float
        Seconds spent in each of :data:`STAGES`.
    candidates : list of (str, float) | None
        Retrieval only: the ``top_k`` best candidates and their scores (similarity, or
        probability when the bank is inside the model), best first.
    """

    index: int
    label: str | None
    output: np.ndarray
    classes: list[str]
    last_sample_time: float
    stop: int
    true_label: str | None = None
    marker: tuple[float, str] | None = None
    emitted: float | None = None
    stages: dict[str, float] = field(default_factory=dict)
    candidates: list[tuple[str, float]] | None = None

    @property
    def latency(self) -> float | None:
        """``emitted − last_sample_time`` in seconds (live only)."""
        if self.emitted is None:
            return None
        return self.emitted - self.last_sample_time

    @property
    def correct(self) -> bool | None:
        if self.true_label is None or self.label is None:
            return None
        return self.label == self.true_label

    def to_dict(self, *, timing: bool = True) -> dict:
        """A JSON-ready dictionary; without ``timing`` it depends only on the data."""
        d: dict = {"index": self.index, "label": self.label}
        if self.classes:
            d["probabilities"] = dict(zip(self.classes, self.output.tolist(), strict=True))
        else:
            d["output"] = self.output.tolist()
        d["last_sample_time"] = self.last_sample_time
        d["stop"] = self.stop
        d["true_label"] = self.true_label
        d["marker"] = None if self.marker is None else {
            "time": self.marker[0], "value": self.marker[1]
        }
        if self.candidates is not None:
            d["candidates"] = [{"name": n, "score": s} for n, s in self.candidates]
        if timing:
            d["emitted"] = self.emitted
            d["latency_ms"] = None if self.latency is None else 1e3 * self.latency
            d["stages_ms"] = {k: 1e3 * v for k, v in self.stages.items()}
        return d

    def to_json(self, *, timing: bool = True) -> str:
        return json.dumps(self.to_dict(timing=timing))
