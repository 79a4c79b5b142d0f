"""Footprint of a live session: resident memory of a ``bci run`` process and the time
from the command to its first decision, with the latency benchmark's workload (64 ch at
1000 Hz from a simulated amplifier in another process, EEGNet-sized ONNX model).

    python benchmarks/footprint.py --seconds 20 --runs 5

Each run starts ``python -X importtime -m bci run`` afresh; the time to the first decision
is reported as the median over the runs, with the import time it contains (the sum of
the ``-X importtime`` self times: every module the command imported).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
from bci.devices.simulated_amplifier import spawn, stop_spawned
from eegnet_session import CHUNK, N_CHANNELS, SFREQ, session_toml, write_model


def one_run(toml: Path, seconds: float) -> dict:
    """One ``bci run``: time to first decision, import time, resident memory."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "bci", "run", str(toml),
             "--duration", str(seconds)],
            stdout=subprocess.PIPE, stderr=err, text=True, env=os.environ.copy())
        ps = psutil.Process(proc.pid)
        rss = []

        def sample():
            while proc.poll() is None:
                try:
                    value = ps.memory_info().rss
                    if value:  # 0 once the process is a zombie
                        rss.append(value)
                except psutil.NoSuchProcess:
                    return
                time.sleep(0.1)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        first = None
        n_decisions = 0
        for line in proc.stdout:
            if line.startswith("["):
                n_decisions += 1
                if first is None:
                    first = time.perf_counter() - t0
        proc.wait()
        th.join()
        err.seek(0)
        import_us = sum(int(line.split("|")[0].split(":")[1]) for line in err
                        if line.startswith("import time:") and line.split("|")[0]
                        .split(":")[1].strip().isdigit())
    return {"first_decision_s": first, "import_s": import_us * 1e-6,
            "rss_peak_mib": max(rss) / 2**20, "rss_last_mib": rss[-1] / 2**20,
            "rss_median_mib": float(np.median(rss)) / 2**20, "decisions": n_decisions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    name = f"bench-foot-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        model = write_model(Path(tmp) / "eegnet.onnx")
        toml = session_toml(model, name, Path(tmp) / "session.toml")
        sim = spawn(paradigm="mi", n_channels=N_CHANNELS, sfreq=SFREQ, chunk_size=CHUNK,
                    name=name, marker_name=f"{name}-markers", seed=1,
                    duration=args.runs * (args.seconds + 10) + 60)
        try:
            runs = [one_run(toml, args.seconds) for _ in range(args.runs)]
        finally:
            stop_spawned(sim)
    med = lambda key: float(np.median([r[key] for r in runs]))  # noqa: E731
    out = {"first_decision_s": med("first_decision_s"), "import_s": med("import_s"),
           "first_decision_runs_s": [r["first_decision_s"] for r in runs],
           "rss_peak_mib": max(r["rss_peak_mib"] for r in runs),
           "rss_median_mib": med("rss_median_mib"), "rss_last_mib": runs[-1]["rss_last_mib"],
           "decisions": runs[-1]["decisions"], "runs": args.runs}
    print(f"bci run: first decision {out['first_decision_s']:.2f} s after the command "
          f"(median of {args.runs}: " + ", ".join(
              f"{t:.2f}" for t in out["first_decision_runs_s"]) + f"), of which imports "
          f"{out['import_s']:.2f} s; resident memory peak {out['rss_peak_mib']:.0f} MiB, "
          f"median {out['rss_median_mib']:.0f} MiB; {out['decisions']} decisions in "
          f"{args.seconds:g} s (last run)")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
