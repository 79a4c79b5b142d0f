"""Replay throughput: one hour of synthetic 64-channel 1000 Hz EEG through the latency
benchmark's chain (band-pass, notch, CAR, decimation to 125 Hz), 1 s windows every 50 ms
(72,000 windows) and the EEGNet-sized ONNX model, as fast as the machine allows.

    python benchmarks/replay_throughput.py --minutes 60 --json
    python benchmarks/replay_throughput.py --minutes 10 --variants 1 64 64+prefetch

Each variant (``BATCH`` windows per onnxruntime call, ``+prefetch`` filtering in a
second thread) replays the same recording; variants run interleaved, ``--rounds`` times,
and each is reported by its fastest round. Every variant's decisions are compared with
the first one's (they must be identical). The bound is plain onnxruntime inference over
the same windows (cut once, not timed), one window per call, with the session's threads,
measured after each round (the fastest is reported). ``--json`` ends with one
JSON object on the last line.

The model file is written as :func:`bci.spec.write_spec` writes every model of the
project, after its exact graph rewrites (:mod:`bci.onnx_rewrite`: EEGNet's temporal and
spatial convolutions reordered, ~16× fewer multiply-adds); ``--plain`` also replays the
first variant with the model written in EEGNet's own layer order, and measures
onnxruntime alone on both.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from eegnet_session import N_CHANNELS, SFREQ, STEP_S, session, write_model

from bci import runner
from bci.datasets.synthetic import make_recording
from bci.pipeline import Pipeline
from bci.recording import RecordingSource
from bci.runner import Branch, Loop, run_replay


def parse_variant(text: str) -> tuple[int, bool]:
    batch, _, extra = text.partition("+")
    if extra not in ("", "prefetch") or not batch.isdigit() or int(batch) < 1:
        raise SystemExit(f"--variants: expected BATCH or BATCH+prefetch, found {text!r}")
    return int(batch), extra == "prefetch"


def plain_inference(config, rec, *, sample: int) -> float:
    """Seconds per window of onnxruntime alone (``session.run``, batch 1) on real windows."""
    source = RecordingSource(rec, chunk_size=1000)
    pipeline = Pipeline(config, source.open(), clock=time.perf_counter)
    windows = []
    for _, w in Loop(source, [Branch(pipeline)], paced=False).windows():
        windows.append(w.data[None])
        if len(windows) >= sample:
            break
    sess, name = pipeline.decoder.session, pipeline.decoder.input_name
    for x in windows[:20]:
        sess.run(None, {name: x})
    t = time.perf_counter()
    for x in windows:
        sess.run(None, {name: x})
    return (time.perf_counter() - t) / len(windows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
    parser.add_argument("--variants", nargs="+",
                        default=[f"{runner.REPLAY_BATCH}"
                                 + ("+prefetch" if runner.REPLAY_PREFETCH else "")],
                        help="BATCH or BATCH+prefetch; the first is the one reported "
                             "as x_realtime")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--plain", action="store_true",
                        help="also replay with the model file served as it is")
    parser.add_argument("--json", action="store_true",
                        help="end with one JSON object on the last line")
    args = parser.parse_args()
    t = time.perf_counter()
    rec = make_recording(args.minutes * 60, paradigm="mi", n_channels=N_CHANNELS,
                         sfreq=SFREQ, seed=3)
    t_gen = time.perf_counter() - t
    seconds = rec.timestamps.shape[0] / SFREQ
    runs: dict[str, dict] = {}
    reference = None
    per_window = np.inf
    with tempfile.TemporaryDirectory() as tmp:
        model = write_model(Path(tmp) / "eegnet.onnx")
        config = session(model, "replay", threads=args.threads)
        for _ in range(args.rounds):
            for variant in args.variants:
                batch, prefetch = parse_variant(variant)
                outputs: list[np.ndarray] = []
                result = run_replay(config, rec, chunk_size=args.chunk_size, batch=batch,
                                    prefetch=prefetch,
                                    callbacks=[lambda d, o=outputs: o.append(d.output)])
                got = np.stack(outputs)
                if reference is None:
                    reference = got
                stages = result.latency.summary()["stages"]
                inference_s = stages["inference"]["mean"] * 1e-3 * stages["inference"]["n"]
                run = {"wall_seconds": result.duration,
                       "x_realtime": seconds / result.duration,
                       "inference_share": inference_s / result.duration,
                       "decisions": result.n_decisions,
                       "identical_to_first": bool(np.array_equal(got, reference))}
                if variant not in runs or run["wall_seconds"] < runs[variant]["wall_seconds"]:
                    runs[variant] = run
            per_window = min(per_window, plain_inference(
                config, rec, sample=min(2000, result.n_decisions)))
        plain = None
        if args.plain:
            as_is = session(write_model(Path(tmp) / "as-is.onnx", optimize=False),
                            "replay", threads=args.threads)
            batch, prefetch = parse_variant(args.variants[0])
            outputs = []
            result = run_replay(as_is, rec, chunk_size=args.chunk_size, batch=batch,
                                prefetch=prefetch,
                                callbacks=[lambda d, o=outputs: o.append(d.output)])
            got = np.stack(outputs)
            ms = 1e3 * plain_inference(as_is, rec, sample=min(2000, result.n_decisions))
            plain = {"wall_seconds": result.duration,
                     "x_realtime": seconds / result.duration,
                     "onnxruntime_ms_per_window": ms,
                     "onnxruntime_only_x_realtime": STEP_S / (ms * 1e-3),
                     "max_abs_output_difference": float(np.abs(got - reference).max()),
                     "same_labels": float(np.mean(got.argmax(1) == reference.argmax(1)))}
    bound = 1.0 / (per_window / STEP_S)
    first = runs[args.variants[0]]
    out = {
        "data_seconds": seconds, "decisions": first["decisions"],
        "wall_seconds": first["wall_seconds"], "x_realtime": first["x_realtime"],
        "variant": args.variants[0], "threads": args.threads,
        "onnxruntime_ms_per_window": 1e3 * per_window,
        "onnxruntime_only_x_realtime": bound,
        "ratio_to_onnxruntime_only": first["x_realtime"] / bound,
        "variants": runs, "generate_seconds": t_gen, "model_as_is": plain,
    }
    print(f"{seconds / 60:.0f} min of {N_CHANNELS} ch @ {SFREQ:g} Hz, onnxruntime threads "
          f"{args.threads} (data generated in {t_gen:.1f} s, not counted); best of "
          f"{args.rounds} round(s), variants interleaved:")
    for variant, r in runs.items():
        print(f"  batch {variant:>12}: {r['decisions']} decisions in {r['wall_seconds']:.1f} s"
              f" = ×{r['x_realtime']:.0f} real time (inference "
              f"{100 * r['inference_share']:.0f} %), decisions identical to "
              f"{args.variants[0]}: {r['identical_to_first']}")
    print(f"  onnxruntime alone, batch 1: {1e3 * per_window:.3f} ms per window = "
          f"×{bound:.0f} real time; {args.variants[0]} reaches "
          f"{100 * out['ratio_to_onnxruntime_only']:.0f} % of it")
    if plain is not None:
        print(f"  model in EEGNet's own layer order, {args.variants[0]}: "
              f"{plain['wall_seconds']:.1f} s = ×{plain['x_realtime']:.0f} real time; "
              f"onnxruntime alone {plain['onnxruntime_ms_per_window']:.3f} ms per window = "
              f"×{plain['onnxruntime_only_x_realtime']:.0f}; outputs differ from the "
              f"rewritten graph's by at most {plain['max_abs_output_difference']:.2g}, "
              f"labels equal on {100 * plain['same_labels']:.2f} %")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
