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


class StreamingQuantiles:
    """Percentiles of a stream of seconds in bounded memory.

    Exact (numpy's) while at most ``exact`` values have come; after that the values are
    folded into a histogram of log-spaced bins, each ``resolution`` wide relative to its
    value, from ``low`` to ``high`` s, so that any percentile is off by at most half a
    bin (0.5 % at the default 1 %) whatever the session's length. Values at or below
    ``low`` (zeros, negatives) share one bin reported as the smallest value seen; the
    count, mean and maximum stay exact.

    Parameters
    ----------
    exact : int
        Values kept as they are before switching to the histogram.
    resolution : float
        Relative width of a bin.
    low, high : float
        Range of the histogram in seconds (values above ``high`` fall in the top bin).
    """

    def __init__(self, *, exact: int = 10_000, resolution: float = 0.01,
                 low: float = 1e-7, high: float = 1e4) -> None:
        self.exact = int(exact)
        self._log_low = np.log(low)
        self._log_step = np.log1p(resolution)
        self._n_bins = int(np.ceil((np.log(high) - self._log_low) / self._log_step)) + 1
        self._values: list[float] | None = []
        self._hist: np.ndarray | None = None
        self._pending: list[float] = []
        self.n = 0
        self._sum = 0.0
        self._min = np.inf
        self._max = -np.inf

    def add(self, value: float) -> None:
        value = float(value)
        self.n += 1
        self._sum += value
        self._min, self._max = min(self._min, value), max(self._max, value)
        if self._values is not None:
            self._values.append(value)
            if len(self._values) > self.exact:
                self._fold(self._values)
                self._values = None
        else:
            self._pending.append(value)
            if len(self._pending) >= 1024:  # folded in batches: numpy per value is slow
                self._fold(self._pending)
                self._pending = []

    def _bins(self, values: list[float]) -> np.ndarray:
        v = np.asarray(values, np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            i = np.floor((np.log(v) - self._log_low) / self._log_step) + 1
        return np.clip(np.nan_to_num(i, nan=0.0, neginf=0.0), 0, self._n_bins - 1).astype(int)

    def _fold(self, values: list[float]) -> None:
        if self._hist is None:
            self._hist = np.zeros(self._n_bins, np.int64)
        np.add.at(self._hist, self._bins(values), 1)

    def _quantile(self, hist: np.ndarray, q: float) -> float:
        # numpy's linear rank, then the geometric middle of the bin that holds it
        rank = q / 100 * (self.n - 1)
        b = int(np.searchsorted(np.cumsum(hist), np.floor(rank) + 1))
        if b == 0:
            return self._min
        mid = np.exp(self._log_low + (b - 0.5) * self._log_step)
        return float(min(max(mid, self._min), self._max))

    def summary_ms(self) -> dict[str, float]:
        """:func:`percentiles_ms` of the values (approximate once past ``exact``)."""
        if self._values is not None:
            return percentiles_ms(self._values)
        # read-only: the decode thread may be adding while the GUI asks
        hist = self._hist.copy()
        np.add.at(hist, self._bins(list(self._pending)), 1)
        out = {f"p{p}": 1e3 * self._quantile(hist, p) for p in PERCENTILES}
        out["max"] = 1e3 * self._max
        out["mean"] = 1e3 * self._sum / self.n
        out["n"] = self.n
        return out


class LatencyLog:
    """Collects the latency of every decision and summarises it, in bounded memory.

    Exact percentiles for the first 10 000 decisions, then a log-spaced histogram
    (:class:`StreamingQuantiles`): a 24-hour session at 10 decisions/s costs the same
    few hundred kilobytes as a one-minute one.
    """

    def __init__(self, *, exact: int = 10_000) -> None:
        self._exact = exact
        self.total = StreamingQuantiles(exact=exact)
        self.overhead = StreamingQuantiles(exact=exact)
        self.stages: dict[str, StreamingQuantiles] = {
            s: StreamingQuantiles(exact=exact) for s in STAGES}

    def add(self, decision: Decision) -> None:
        latency = decision.latency
        if latency is not None:
            self.total.add(latency)
            if "inference" in decision.stages:
                self.overhead.add(latency - decision.stages["inference"])
        for s in STAGES:
            if s in decision.stages:
                self.stages[s].add(decision.stages[s])

    def summary(self) -> dict:
        """``{"total": {...}, "overhead": {...}, "stages": {stage: {...}}}`` in ms.

        ``overhead`` is the decision latency less the inference time: what the runtime
        itself adds (acquisition transport included). It is given only when every timed
        decision has its inference time.
        """
        out = {"total": self.total.summary_ms()}
        n = self.total.n
        if n and self.overhead.n == n and self.stages["inference"].n == n:
            out["overhead"] = self.overhead.summary_ms()
        out["stages"] = {s: v.summary_ms() for s, v in self.stages.items() if v.n}
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
