"""Decision latency, live over LSL: this runtime vs an MNE-LSL loop doing the same work.

A simulated 64-channel 1000 Hz amplifier in another process pushes 10-sample chunks.
Both contenders band-pass (1–40 Hz), notch (50 Hz) and re-reference (CAR) the stream,
take the last 1 s every 50 ms at 125 Hz and run the same EEGNet-sized ONNX model with
one onnxruntime thread. Latency = time of emission − LSL timestamp of the window's last
sample, both on this machine's LSL clock.

The anchor is what a user would otherwise assemble: ``mne_lsl.stream.StreamLSL`` with
its own filters and reference (acquisition thread every 1 ms), polled in a loop every
1 ms; every 50 new samples, ``get_data(winsize=1)``, keep every 8th sample, run the model.

    python benchmarks/decision_latency.py --decisions 2000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from bci.latency import percentiles_ms
from bci.lslconfig import get_pylsl

pylsl = get_pylsl()

from bci.devices.simulated_amplifier import spawn, stop_spawned  # noqa: E402
from eegnet_session import (  # noqa: E402
    CHUNK,
    DECIMATION,
    N_CHANNELS,
    SFREQ,
    STEP_S,
    WINDOW_S,
    session,
    write_model,
)

from bci.runner import run_live  # noqa: E402


def runtime(model: Path, name: str, n: int) -> dict:
    result = run_live(session(model, name), duration=n * STEP_S + WINDOW_S + 1.0)
    s = result.latency.summary()
    return {"total": s["total"], "overhead": s["overhead"],
            "inference": s["stages"]["inference"], "stages": s["stages"],
            "skipped_backlog": result.counts["skipped_backlog"]}


def anchor(model: Path, name: str, n: int) -> dict:
    import onnxruntime as ort
    from mne_lsl.stream import StreamLSL

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    stream = StreamLSL(bufsize=2.0, name=name)
    stream.connect(acquisition_delay=0.001, processing_flags=["clocksync"])
    stream.filter(1.0, 40.0)
    stream.notch_filter(50.0)
    stream.set_eeg_reference("average")
    step = round(STEP_S * SFREQ)
    time.sleep(WINDOW_S + 0.5)
    stream.get_data(winsize=WINDOW_S)
    totals, inference = [], []
    while len(totals) < n:
        if stream.n_new_samples < step:
            time.sleep(0.001)
            continue
        data, ts = stream.get_data(winsize=WINDOW_S)
        x = np.ascontiguousarray(data[:, DECIMATION - 1 :: DECIMATION], np.float32)[None]
        t = pylsl.local_clock()
        sess.run(None, {"x": x})
        emitted = pylsl.local_clock()
        inference.append(emitted - t)
        totals.append(emitted - ts[-1])
    stream.disconnect()
    total = np.asarray(totals)
    return {"total": percentiles_ms(total), "overhead": percentiles_ms(total - inference),
            "inference": percentiles_ms(inference)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:6]
    name = f"bench-amp-{tag}"
    with tempfile.TemporaryDirectory() as tmp:
        model = write_model(Path(tmp) / "eegnet.onnx")
        seconds = 2 * (args.decisions * STEP_S + WINDOW_S) + 30
        sim = spawn(paradigm="mi", n_channels=N_CHANNELS, sfreq=SFREQ, chunk_size=CHUNK,
                    name=name, marker_name=f"{name}-markers", seed=1, duration=seconds)
        try:
            ours = runtime(model, name, args.decisions)
            theirs = anchor(model, name, args.decisions)
        finally:
            stop_spawned(sim)
    out = {
        "decisions": args.decisions, "runtime": ours, "mne_lsl_anchor": theirs,
        "ratio_p50": theirs["total"]["p50"] / ours["total"]["p50"],
        "ratio_p99": theirs["total"]["p99"] / ours["total"]["p99"],
    }
    if args.json:
        print(json.dumps(out))
        return
    print(f"decision latency over {args.decisions} decisions, 64 ch @ 1000 Hz, chunks of "
          f"{CHUNK}, window {WINDOW_S:g} s every {STEP_S * 1e3:g} ms (ms)")
    print(f"{'':28}{'p50':>9}{'p99':>9}{'max':>9}")
    for label, r in (("runtime", ours), ("MNE-LSL loop (anchor)", theirs)):
        for part in ("total", "inference", "overhead"):
            s = r[part]
            print(f"{label + ' ' + part:28}{s['p50']:9.3f}{s['p99']:9.3f}{s['max']:9.3f}")
    print(f"anchor / runtime: p50 ×{out['ratio_p50']:.2f}, p99 ×{out['ratio_p99']:.2f}; "
          f"runtime windows dropped by the backlog policy: {ours['skipped_backlog']}")
    print("runtime stages p50/p99 (ms): " + ", ".join(
        f"{k} {v['p50']:.3f}/{v['p99']:.3f}" for k, v in ours["stages"].items()))


if __name__ == "__main__":
    main()
