"""Latency accounting: percentiles against numpy, stage sums, and the empty and
single-decision cases."""

from __future__ import annotations

import numpy as np
import pytest

from bci.decision import STAGES, Decision
from bci.latency import LatencyLog, percentiles_ms, time_calls

KEYS = {"p50", "p95", "p99", "max", "mean", "n"}


def _decision(index: int, latency: float | None, stages: dict[str, float] | None = None,
              ) -> Decision:
    last = 100.0 + index
    return Decision(index=index, label="a", output=np.array([1.0, 0.0]), classes=["a", "b"],
                    last_sample_time=last, stop=256 * (index + 1),
                    emitted=None if latency is None else last + latency,
                    stages=stages or {})


def _staged(rng: np.random.Generator, n: int) -> list[Decision]:
    """Decisions whose stages add up to their latency, as the live loop's do."""
    out = []
    for i in range(n):
        parts = dict(zip(STAGES, rng.uniform(1e-4, 5e-3, len(STAGES)).tolist(), strict=True))
        out.append(_decision(i, sum(parts.values()), parts))
    return out


def test_percentiles_ms_are_numpys_in_milliseconds():
    values = np.random.default_rng(0).gamma(2.0, 0.004, 501)
    out = percentiles_ms(values)
    assert set(out) == KEYS
    ms = 1e3 * values
    for p in (50, 95, 99):
        assert out[f"p{p}"] == pytest.approx(np.percentile(ms, p), rel=1e-12)
    assert out["max"] == pytest.approx(ms.max(), rel=1e-12)
    assert out["mean"] == pytest.approx(ms.mean(), rel=1e-12)
    assert out["n"] == 501


def test_percentiles_ms_on_known_values():
    # 1..100 ms: numpy's linear interpolation puts p50 at 50.5, p95 at 95.05, p99 at 99.01
    out = percentiles_ms([k / 1e3 for k in range(1, 101)])
    assert out["p50"] == pytest.approx(50.5)
    assert out["p95"] == pytest.approx(95.05)
    assert out["p99"] == pytest.approx(99.01)
    assert out["max"] == pytest.approx(100.0) and out["mean"] == pytest.approx(50.5)
    assert out["n"] == 100
    assert percentiles_ms([]) == {"n": 0}


def test_summary_totals_stages_and_overhead_match_numpy():
    decisions = _staged(np.random.default_rng(1), 200)
    log = LatencyLog()
    for d in decisions:
        log.add(d)
    s = log.summary()
    assert set(s) == {"total", "overhead", "stages"}
    assert set(s["stages"]) == set(STAGES)
    total = 1e3 * np.array([d.latency for d in decisions])
    for key, reference in (("p50", np.percentile(total, 50)), ("p99", np.percentile(total, 99)),
                           ("max", total.max()), ("mean", total.mean())):
        assert s["total"][key] == pytest.approx(reference, rel=1e-9)
    for stage in STAGES:
        ms = 1e3 * np.array([d.stages[stage] for d in decisions])
        assert s["stages"][stage]["p95"] == pytest.approx(np.percentile(ms, 95), rel=1e-9)
        assert s["stages"][stage]["n"] == 200
    # the stages add up to the decision latency, so their means add up to its mean
    assert sum(st["mean"] for st in s["stages"].values()) == pytest.approx(
        s["total"]["mean"], rel=1e-9)
    # overhead: each decision's latency less its own inference time, not a difference of
    # percentiles
    overhead = total - 1e3 * np.array([d.stages["inference"] for d in decisions])
    assert s["overhead"]["p50"] == pytest.approx(np.percentile(overhead, 50), rel=1e-9)
    assert s["overhead"]["max"] == pytest.approx(overhead.max(), rel=1e-9)


def test_no_decision_gives_empty_figures_and_a_header_only_table():
    log = LatencyLog()
    assert log.summary() == {"total": {"n": 0}, "stages": {}}
    table = log.table()
    assert table.splitlines() == [table]  # the header and nothing else
    assert table.split()[:5] == ["stage", "p50", "p95", "p99", "max"]


def test_one_decision_gives_its_own_value_at_every_percentile():
    log = LatencyLog()
    log.add(_decision(0, 0.012, {"pull": 0.002, "inference": 0.007, "emit": 0.003}))
    s = log.summary()
    assert s["total"] == pytest.approx(
        {"p50": 12.0, "p95": 12.0, "p99": 12.0, "max": 12.0, "mean": 12.0, "n": 1})
    assert s["overhead"]["p99"] == pytest.approx(5.0)
    assert set(s["stages"]) == {"pull", "inference", "emit"}  # stages never timed: absent
    assert s["stages"]["inference"]["p50"] == pytest.approx(7.0)
    rows = log.table().splitlines()
    assert [r.split()[0] for r in rows] == ["stage", "decision", "minus", "pull", "inference",
                                           "emit"]
    assert rows[1].split()[2:] == ["12.000"] * 4


def test_decisions_without_emission_time_count_in_stages_only_and_drop_the_overhead():
    log = LatencyLog()
    log.add(_decision(0, 0.010, {"inference": 0.004}))
    log.add(_decision(1, None, {"inference": 0.006}))  # a replayed decision: no latency
    s = log.summary()
    assert s["total"]["n"] == 1 and s["total"]["max"] == pytest.approx(10.0)
    assert s["stages"]["inference"]["n"] == 2
    # totals and inference times no longer pair up, so no overhead is claimed
    assert "overhead" not in s
    assert "minus inference" not in log.table()


def test_overhead_needs_an_inference_time_for_every_decision():
    log = LatencyLog()
    log.add(_decision(0, 0.010, {"inference": 0.004}))
    log.add(_decision(1, 0.020, {"pull": 0.001}))
    assert "overhead" not in log.summary()


def test_time_calls_warms_up_then_measures_the_asked_number_of_calls():
    calls = []
    out = time_calls(calls.append, 1, repeats=7, warmup=3)
    assert len(calls) == 10
    assert set(out) == KEYS and out["n"] == 7
    assert 0 <= out["p50"] <= out["p95"] <= out["p99"] <= out["max"]
