"""Footprint of a live session: resident memory of a ``bci run`` process and the time
from the command to its first decision, with the latency benchmark's workload (64 ch at
1000 Hz from a simulated amplifier in another process, EEGNet-sized ONNX model).

    python benchmarks/footprint.py --seconds 20
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    name = f"bench-foot-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        model = write_model(Path(tmp) / "eegnet.onnx")
        toml = session_toml(model, name, Path(tmp) / "session.toml")
        sim = spawn(paradigm="mi", n_channels=N_CHANNELS, sfreq=SFREQ, chunk_size=CHUNK,
                    name=name, marker_name=f"{name}-markers", seed=1,
                    duration=args.seconds + 60)
        try:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "bci", "run", str(toml), "--duration",
                 str(args.seconds)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                env=os.environ.copy())
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
        finally:
            stop_spawned(sim)
    out = {"first_decision_s": first, "rss_peak_mib": max(rss) / 2**20,
           "rss_last_mib": rss[-1] / 2**20,
           "rss_median_mib": float(np.median(rss)) / 2**20, "decisions": n_decisions}
    if args.json:
        print(json.dumps(out))
        return
    print(f"bci run: first decision {first:.2f} s after the command; resident memory "
          f"peak {out['rss_peak_mib']:.0f} MiB, median {out['rss_median_mib']:.0f} MiB, "
          f"last {out['rss_last_mib']:.0f} MiB; "
          f"{out['decisions']} decisions in {args.seconds:g} s")


if __name__ == "__main__":
    main()
