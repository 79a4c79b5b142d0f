"""Federated training on Flower: wall time per round, and per-site accuracy alone vs
federated, for ``examples/fl-sites.toml`` (three planted sites of 8, 22 and 64
channels at 128, 250 and 160 Hz — 10 training windows at the first — and the real
EEGMMIDB S001 site), on both engines:

- ``ray``: Flower's simulation runtime (``flwr.simulation.run_simulation``, Ray
  backend; workers reused, torch imported once per worker);
- ``deployment``: a SuperLink and one SuperNode per site on 127.0.0.1, TLS and
  SuperNode authentication, the ServerApp submitted with ``flwr run`` (a fresh process
  per ClientApp message, SuperNodes polling every 3 s).

A round is one training message and one evaluation message to every site, from the
server's ``configure_train`` to the end of its ``aggregate_evaluate``; round 1 includes
the workers' start (and the sites' data loading), the last round the ONNX export.

    python benchmarks/fl_rounds.py                       # both engines, 10 rounds
    python benchmarks/fl_rounds.py --engine ray --rounds 5 --json

Measured on the development machine (2 shared vCPU, Python 3.11, torch 2.13 CPU,
flwr 1.41.0, Ray 2.55.1) on 2026-12-01, 10 rounds, the four sites of the example
(``python benchmarks/fl_rounds.py --json``; deployment rerun with ``--engine
deployment``):

==========  ==========  ====================  ==========  ==========================
engine      round 1     rounds 2–9 (median)   round 10    wall (start, 10 rounds,
                                                          local-only baselines, stop)
==========  ==========  ====================  ==========  ==========================
ray         5.7 s       1.41 s (1.21–1.61)    3.6 s       28.5 s
deployment  27.8 s      27.7 s (24.8–28.1)    36.8 s      315.9 s
==========  ==========  ====================  ==========  ==========================

Both engines give the same accuracies (the sites' training is seeded and the same code
runs in both). Held-out accuracy, alone (same epochs) → federated:

=================  =======  =========  =====  =========
site               train    held out   alone  federated
=================  =======  =========  =====  =========
clinic-8ch         10       200        0.765  0.920
hospital-22ch      60       200        1.000  1.000
lab-64ch           60       200        1.000  1.000
eegmmidb-s001      21       9          0.556  0.333
=================  =======  =========  =====  =========

The real site has 30 windows in all (runs 4 and 8 of S001 are in ``../shared/data``;
run 12 is not), so its 9 held-out windows measure nothing; it is there to show a real
64-channel, 160 Hz recording training alongside simulated montages, and its exported
model replays its recording through ``bci replay`` with the band-pass in its spec.
Timings on a shared 2-core VM move by tens of percent between runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "fl-sites.toml"


def run_engine(engine: str, *, config: Path, rounds: int, workdir: Path,
               real_site: bool) -> dict:
    """One federated run on ``engine``; the summary of :func:`bci.federated.simulate`."""
    from bci.federated.config import FederationConfig
    from bci.federated.simulation import simulate

    cfg = FederationConfig.load(config)
    cfg.rounds = rounds
    if not real_site:
        cfg.sites = [s for s in cfg.sites if s.kind != "eegbci"]
    return simulate(cfg, engine=engine, workdir=workdir)


def describe(engine: str, summary: dict) -> dict:
    secs = [t for t in summary["round_seconds"] if t is not None]
    later = secs[1:] or secs
    return {
        "engine": engine,
        "rounds": len(secs),
        "round_seconds": [round(t, 2) for t in secs],
        "first_round_s": round(secs[0], 2),
        "later_rounds_median_s": round(statistics.median(later), 2),
        "later_rounds_min_s": round(min(later), 2),
        "later_rounds_max_s": round(max(later), 2),
        "training_s": round(summary["train_seconds"], 1),
        "wall_s": round(summary["wall_seconds"], 1),
        "sites": {n: {k: s.get(k) for k in ("n_train", "n_test", "local_accuracy",
                                            "federated_accuracy")}
                  for n, s in sorted(summary["sites"].items())},
        "rejections": len(summary["rejections"]),
        "global_finite": summary["global_finite"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("ray", "deployment", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--config", type=Path, default=EXAMPLE)
    parser.add_argument("--no-real-site", action="store_true",
                        help="leave out the EEGMMIDB site (when ../shared/data is absent)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    engines = ("ray", "deployment") if args.engine == "both" else (args.engine,)
    results = []
    with tempfile.TemporaryDirectory(prefix="bci-fl-bench-") as tmp:
        for engine in engines:
            summary = run_engine(engine, config=args.config, rounds=args.rounds,
                                 workdir=Path(tmp) / engine, real_site=not args.no_real_site)
            results.append(describe(engine, summary))
    if args.json:
        print(json.dumps(results))
        return
    for r in results:
        print(f"{r['engine']}: {r['rounds']} rounds; round 1 {r['first_round_s']:.1f} s, "
              f"later rounds median {r['later_rounds_median_s']:.2f} s "
              f"({r['later_rounds_min_s']:.2f}–{r['later_rounds_max_s']:.2f}); training "
              f"{r['training_s']:.0f} s, wall {r['wall_s']:.0f} s (with baselines, start, "
              f"stop); {r['rejections']} rejected updates")
        for name, s in r["sites"].items():
            def f(v: float | None) -> str:
                return "—" if v is None else f"{v:.3f}"
            print(f"  {name:<16} train {s['n_train']!s:>4}  held out {s['n_test']!s:>4}  "
                  f"alone {f(s['local_accuracy'])}  federated {f(s['federated_accuracy'])}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
