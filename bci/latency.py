"""Latency accounting: per-decision totals and per-stage times, with percentiles."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bci.decision import STAGES, Decision

PERCENTILES = (50, 95, 99)


def percentiles_ms(values_s: list[float] | np.ndarray) -> dict[str, float]:
    """p50/p95/p99/max and count of a sequence of seconds, in milliseconds."""
    v = 1e3 * np.asarray(values_s, np.float64)
    if v.size == 0:
        return {"n": 0}
    out = {f"p{p}": float(np.percentile(v, p)) for p in PERCENTILES}
    out["max"] = float(v.max())
    out["mean"] = float(v.mean())
    out["n"] = int(v.size)
    return out


def time_calls(fn: Callable[..., Any], *args: Any, repeats: int,
               warmup: int = 20) -> dict[str, float]:
    """Call ``fn(*args)`` ``warmup`` times unmeasured, then ``repeats`` times measured;
    :func:`percentiles_ms` of the measured calls (for the benchmarks)."""
    for _ in range(warmup):
        fn(*args)
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        t.append(time.perf_counter() - t0)
    return percentiles_ms(t)


class LatencyLog:
    """Collects the latency of every decision and summarises it."""

    def __init__(self) -> None:
        self.total: list[float] = []
        self.stages: dict[str, list[float]] = {s: [] for s in STAGES}

    def add(self, decision: Decision) -> None:
        if decision.latency is not None:
            self.total.append(decision.latency)
        for s in STAGES:
            if s in decision.stages:
                self.stages[s].append(decision.stages[s])

    def summary(self) -> dict:
        """``{"total": {...}, "overhead": {...}, "stages": {stage: {...}}}`` in ms.

        ``overhead`` is the decision latency less the inference time: what the runtime
        itself adds (acquisition transport included).
        """
        out = {"total": percentiles_ms(self.total)}
        n = len(self.total)
        if n and len(self.stages["inference"]) == n:
            out["overhead"] = percentiles_ms(np.subtract(self.total, self.stages["inference"]))
        out["stages"] = {s: percentiles_ms(v) for s, v in self.stages.items() if v}
        return out

    def table(self) -> str:
        """A plain-text table of the summary."""
        s = self.summary()
        rows = [("decision latency", s["total"])]
        if "overhead" in s:
            rows.append(("  minus inference", s["overhead"]))
        rows += [(f"  {k}", v) for k, v in s["stages"].items()]
        lines = [f"{'stage':<20}{'p50':>10}{'p95':>10}{'p99':>10}{'max':>10}   (ms)"]
        for name, st in rows:
            if st.get("n"):
                lines.append(f"{name:<20}{st['p50']:>10.3f}{st['p95']:>10.3f}"
                             f"{st['p99']:>10.3f}{st['max']:>10.3f}")
        return "\n".join(lines)
