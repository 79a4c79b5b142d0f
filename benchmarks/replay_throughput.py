"""Replay throughput: one hour of synthetic 64-channel 1000 Hz EEG through the latency
benchmark's chain (band-pass, notch, CAR, decimation to 125 Hz), 1 s windows every 50 ms
(72,000 windows) and the EEGNet-sized ONNX model, as fast as the machine allows.

    python benchmarks/replay_throughput.py --minutes 60
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from eegnet_session import N_CHANNELS, SFREQ, session, write_model

from bci.datasets.synthetic import make_recording
from bci.runner import run_replay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    t = time.perf_counter()
    rec = make_recording(args.minutes * 60, paradigm="mi", n_channels=N_CHANNELS,
                         sfreq=SFREQ, seed=3)
    t_gen = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        model = write_model(Path(tmp) / "eegnet.onnx")
        result = run_replay(session(model, "replay", threads=args.threads), rec,
                            chunk_size=args.chunk_size)
    seconds = rec.timestamps.shape[0] / SFREQ
    stages = result.latency.summary()["stages"]
    inference_s = stages["inference"]["mean"] * 1e-3 * stages["inference"]["n"]
    out = {
        "data_seconds": seconds, "decisions": result.n_decisions,
        "wall_seconds": result.duration, "x_real_time": seconds / result.duration,
        "inference_share": inference_s / result.duration, "generate_seconds": t_gen,
    }
    if args.json:
        print(json.dumps(out))
        return
    print(f"{seconds / 60:.0f} min of 64 ch @ 1000 Hz → {out['decisions']} decisions in "
          f"{result.duration:.1f} s: ×{out['x_real_time']:.0f} real time "
          f"(inference {100 * out['inference_share']:.0f} % of the time; data generated "
          f"in {t_gen:.1f} s, not counted)")


if __name__ == "__main__":
    main()
