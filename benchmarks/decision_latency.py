"""Decision latency, live over LSL: this runtime vs an MNE-LSL loop doing the same work.

A simulated 64-channel 1000 Hz amplifier in another process pushes 10-sample chunks.
Both contenders band-pass (1–40 Hz), notch (50 Hz) and re-reference (CAR) the stream,
take the last 1 s every 50 ms at 125 Hz and run the same EEGNet-sized ONNX model with
one onnxruntime thread. Latency = time of emission − LSL timestamp of the window's last
sample, both on this machine's LSL clock.

The transport floor is a bare pylsl inlet on the same amplifier that only pulls: the part
of every contender's latency spent before its own code runs.

The anchor is what a user would otherwise assemble: ``mne_lsl.stream.StreamLSL`` with
its own filters and reference (acquisition thread every 1 ms), polled in a loop every
1 ms; every 50 new samples, ``get_data(winsize=1)``, keep every 8th sample, run the model.

    python benchmarks/decision_latency.py --decisions 5000
    python benchmarks/decision_latency.py --chunk-size 1 --channels 256 --json
    python benchmarks/decision_latency.py --pull block poll:0.0002 poll:0.001 --no-anchor

``--pull`` compares ways of waiting for data (:class:`bci.devices.lsl_source.LSLSource`
``wait``): each variant runs ``--decisions`` decisions in ``--rounds`` segments,
interleaved with the transport floor's and the anchor's, against the same amplifier; the
first variant is the one compared with the anchor. Both contenders run the same model
file, as :func:`bci.spec.write_spec` writes it; ``--as-is`` writes it without the exact
graph rewrites (:mod:`bci.onnx_rewrite`), in EEGNet's own layer order (about twice the
inference time live). ``--json`` ends with one JSON object on the last line.
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

from bci.devices.lsl_source import LSLSource  # noqa: E402
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

from bci.decision import STAGES  # noqa: E402
from bci.runner import run_live  # noqa: E402


def parse_pull(variant: str) -> tuple[str, float | None]:
    """``block`` or ``poll:SECONDS`` → (wait, poll_interval)."""
    wait, _, interval = variant.partition(":")
    if wait not in ("block", "poll"):
        raise SystemExit(f"--pull: expected 'block' or 'poll:SECONDS', found {variant!r}")
    return wait, float(interval) if interval else None


def runtime_segment(model: Path, name: str, n: int, variant: str) -> tuple[list, int]:
    """Run the runtime for about ``n`` decisions with a pull variant; its decisions."""
    wait, interval = parse_pull(variant)
    LSLSource.WAIT = wait  # the session's source is built inside run_live
    if interval is not None:
        LSLSource.POLL_INTERVAL = interval
    decisions: list = []
    result = run_live(session(model, name), duration=n * STEP_S + WINDOW_S + 0.5,
                      callbacks=[decisions.append])
    return decisions[1:], result.counts["skipped_backlog"]  # the first one warms up


def summarise(decisions: list, skipped: int) -> dict:
    total = np.array([d.latency for d in decisions])
    stages = {s: np.array([d.stages[s] for d in decisions]) for s in STAGES}
    worst = decisions[int(np.argmax(total))]
    after = sum(stages[s] for s in ("filter", "window", "queue", "emit"))
    return {"total": percentiles_ms(total),
            "overhead": percentiles_ms(total - stages["inference"]),
            "after_arrival": percentiles_ms(after),
            "inference": percentiles_ms(stages["inference"]),
            "stages": {s: percentiles_ms(v) for s, v in stages.items()},
            "max_stages_ms": {s: 1e3 * v for s, v in worst.stages.items()},
            "skipped_backlog": skipped}


def transport_floor(name: str, n: int, chunk: int) -> list[float]:
    """What reaching this process costs before any work: a bare pylsl inlet on the same
    amplifier, pulled as the runtime pulls (wait for one sample, drain, wait for the rest
    of a chunk woken by its first sample), doing nothing else; ``local_clock()`` after
    each pull − the stamp of its newest sample.

    It holds the amplifier's wake-up, liblsl's hop between processes and this process's
    wake-up: the part of the ``pull`` stage that is not the runtime's.
    """
    (info,) = pylsl.resolve_byprop("name", name, 1, 10.0)
    inlet = pylsl.StreamInlet(info, max_buflen=2, processing_flags=pylsl.proc_clocksync)
    inlet.open_stream(5.0)
    buf = np.zeros((4 * chunk + 64, info.channel_count()), np.float32)
    arrivals = []
    inlet.pull_chunk(timeout=2.0, max_samples=1, dest_obj=buf)
    while len(inlet.pull_chunk(timeout=0.0, max_samples=buf.shape[0], dest_obj=buf)[1]):
        pass  # what queued up while the inlet opened is not a measurement
    while len(arrivals) < n:
        _, ts = inlet.pull_chunk(timeout=0.0, max_samples=buf.shape[0], dest_obj=buf)
        if not ts:
            _, ts = inlet.pull_chunk(timeout=1.0, max_samples=1, dest_obj=buf)
            if not ts:
                break
            _, more = inlet.pull_chunk(timeout=0.0, max_samples=buf.shape[0] - 1,
                                       dest_obj=buf[1:])
            ts = list(ts) + list(more)
            if len(ts) < chunk:  # woken by a chunk's first sample: its rest is on its way
                _, rest = inlet.pull_chunk(timeout=LSLSource.REST_WAIT,
                                           max_samples=chunk - len(ts),
                                           dest_obj=buf[len(ts):])
                ts += list(rest)
        # as the runtime's pull stage: its newest sample's stamp to its arrival
        arrivals.append(pylsl.local_clock() - ts[-1])
    inlet.close_stream()
    return arrivals[1:]


def anchor(model: Path, name: str, n: int) -> tuple[list[float], list[float]]:
    """About ``n`` decisions of the MNE-LSL loop: their latencies and inference times."""
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
    return totals[1:], inference[1:]  # the first one warms up


def summarise_anchor(totals: list[float], inference: list[float]) -> dict:
    total, inference = np.asarray(totals), np.asarray(inference)
    return {"total": percentiles_ms(total), "overhead": percentiles_ms(total - inference),
            "inference": percentiles_ms(inference)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--chunk-size", type=int, default=CHUNK,
                        help="samples per chunk the simulated amplifier pushes")
    parser.add_argument("--channels", type=int, default=N_CHANNELS)
    parser.add_argument("--pull", nargs="+", default=[LSLSource.WAIT],
                        help="pull variants: 'block' or 'poll:SECONDS' (first: vs anchor)")
    parser.add_argument("--as-is", action="store_true",
                        help="write the model without the exact graph rewrites")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved segments of each contender")
    parser.add_argument("--no-anchor", action="store_true", help="skip the MNE-LSL loop")
    parser.add_argument("--json", action="store_true",
                        help="end with one JSON object on the last line")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:6]
    name = f"bench-amp-{tag}"
    per_segment = -(-args.decisions // args.rounds)
    runs = {v: [] for v in args.pull}
    skipped = dict.fromkeys(args.pull, 0)
    theirs = None
    with tempfile.TemporaryDirectory() as tmp:
        model = write_model(Path(tmp) / "eegnet.onnx", n_channels=args.channels,
                            optimize=not args.as_is)
        n_floor = max(100, per_segment)  # pulls per round
        seconds = ((len(args.pull) + 1) * (args.decisions * STEP_S + 2 * args.rounds)
                   + args.rounds * (5 + n_floor * args.chunk_size / SFREQ) + 60)
        sim = spawn(paradigm="mi", n_channels=args.channels, sfreq=SFREQ,
                    chunk_size=args.chunk_size, name=name, marker_name=f"{name}-markers",
                    seed=1, duration=seconds)
        arrivals: list[float] = []
        anchor_totals: list[float] = []
        anchor_inference: list[float] = []
        try:
            # contenders interleaved, round by round: a noisy minute of the machine
            # falls on all of them alike
            for _ in range(args.rounds):
                for variant in args.pull:
                    got, n_skipped = runtime_segment(model, name, per_segment, variant)
                    runs[variant] += got
                    skipped[variant] += n_skipped
                arrivals += transport_floor(name, n_floor, args.chunk_size)
                if not args.no_anchor:
                    totals, inference = anchor(model, name, per_segment)
                    anchor_totals += totals
                    anchor_inference += inference
        finally:
            stop_spawned(sim)
    floor = percentiles_ms(np.asarray(arrivals))
    if anchor_totals:
        theirs = summarise_anchor(anchor_totals, anchor_inference)
    variants = {v: summarise(d, skipped[v]) for v, d in runs.items()}
    ours = variants[args.pull[0]]
    out = {
        "decisions": len(runs[args.pull[0]]), "channels": args.channels,
        "chunk_size": args.chunk_size, "pull": args.pull[0],
        "runtime_p50_ms": ours["total"]["p50"], "runtime_p99_ms": ours["total"]["p99"],
        "runtime_max_ms": ours["total"]["max"],
        "overhead_p99_ms": ours["overhead"]["p99"],
        "after_arrival_p99_ms": ours["after_arrival"]["p99"],
        "pull_p50_ms": ours["stages"]["pull"]["p50"],
        "pull_p99_ms": ours["stages"]["pull"]["p99"],
        "transport_floor_p50_ms": floor["p50"], "transport_floor_p99_ms": floor["p99"],
        "anchor_p50_ms": theirs["total"]["p50"] if theirs else None,
        "anchor_p99_ms": theirs["total"]["p99"] if theirs else None,
        "ratio_p50": theirs["total"]["p50"] / ours["total"]["p50"] if theirs else None,
        "ratio_p99": theirs["total"]["p99"] / ours["total"]["p99"] if theirs else None,
        "runtime": ours, "mne_lsl_anchor": theirs, "pull_variants": variants,
        "model_as_is": args.as_is,
    }
    print(f"decision latency over {out['decisions']} decisions, {args.channels} ch @ "
          f"{SFREQ:g} Hz, chunks of {args.chunk_size}, window {WINDOW_S:g} s every "
          f"{STEP_S * 1e3:g} ms (ms)")
    print(f"{'':34}{'p50':>9}{'p99':>9}{'max':>9}")
    rows = [(f"runtime ({args.pull[0]})", ours)] + ([("MNE-LSL loop (anchor)", theirs)]
                                                   if theirs else [])
    for label, r in rows:
        for part in ("total", "inference", "overhead"):
            s = r[part]
            print(f"{label + ' ' + part:34}{s['p50']:9.3f}{s['p99']:9.3f}{s['max']:9.3f}")
    if theirs:
        print(f"anchor / runtime: p50 ×{out['ratio_p50']:.2f}, p99 ×{out['ratio_p99']:.2f}")
    print(f"transport floor (bare pylsl inlet, same amplifier, {floor['n']} chunks): "
          f"p50 {floor['p50']:.3f}, p99 {floor['p99']:.3f}, max {floor['max']:.3f}")
    for v, r in variants.items():
        print(f"[{v}] windows dropped by the backlog policy: {r['skipped_backlog']}; "
              "stages p50/p99 (ms): " + ", ".join(
                  f"{k} {s['p50']:.3f}/{s['p99']:.3f}" for k, s in r["stages"].items()))
        print(f"[{v}] after arrival (filter + window + queue + emit) p50/p99 "
              f"{r['after_arrival']['p50']:.3f}/{r['after_arrival']['p99']:.3f}")
        print(f"[{v}] slowest decision {r['total']['max']:.3f} ms: " + ", ".join(
            f"{k} {t:.3f}" for k, t in r["max_stages_ms"].items()))
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
