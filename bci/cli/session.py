"""``bci demo``, ``bci run`` and ``bci replay``: a session, live or over a recording."""

from __future__ import annotations

import argparse
import json
import signal
import threading

from bci.demo import run_demo
from bci.devices.files import read_recording
from bci.runner import run_live, run_replay
from bci.session import SessionConfig


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="closed loop on a simulated SSVEP amplifier, no setup")
    p.add_argument("--duration", type=float, default=30.0, help="seconds (default 30)")
    p.add_argument("--seed", type=int, default=7, help="simulator seed")
    p.add_argument("--json", action="store_true", help="print only a JSON summary")
    p.set_defaults(func=demo)

    p = sub.add_parser("run", help="run a session file live against LSL streams")
    p.add_argument("session", help="session TOML file")
    p.add_argument("--duration", type=float, default=None, help="seconds (default: forever)")
    _add_stats(p)
    p.set_defaults(func=run)

    p = sub.add_parser("replay", help="run a session file over a recording, fast")
    p.add_argument("session", help="session TOML file")
    p.add_argument("--input", required=True, help="recording (FIF, EDF, BDF, GDF, "
                   "BrainVision, EEGLAB, XDF)")
    p.add_argument("--output", default=None, help="decisions as JSON lines")
    p.add_argument("--stream", default=None, help="data stream name inside an XDF file")
    p.add_argument("--timing", action="store_true",
                   help="add processing times to the output (no longer byte-reproducible)")
    p.add_argument("--chunk-size", type=int, default=32, help="samples per chunk")
    _add_stats(p)
    p.set_defaults(func=replay)


def _add_stats(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, metavar="MODEL.onnx",
                   help="serve this trained decoder instead of the session's [decoder]")
    p.add_argument("--stats", action="store_true",
                   help="print decision latency p50/p95/p99 per stage at the end")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def _print_result(result, args: argparse.Namespace) -> None:
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
        return
    acc = summary["accuracy"]
    print(f"{summary['n_decisions']} decisions"
          + (f", accuracy {acc:.3f}" if acc is not None else "")
          + f"; counts {summary['counts']}")
    for e in summary["events"]:
        print(f"source event: {e}")
    if args.stats:
        print(result.latency.table())


def _load_session(args: argparse.Namespace) -> SessionConfig:
    config = SessionConfig.load(args.session)
    if args.model is not None:
        config = config.with_model(args.model)
    config.require_decoder()
    return config


def demo(args: argparse.Namespace) -> int:
    return run_demo(duration=args.duration, as_json=args.json, seed=args.seed)


def run(args: argparse.Namespace) -> int:
    config = _load_session(args)
    stop = threading.Event()
    # Ctrl-C and SIGTERM end the session cleanly: recordings closed, summary printed
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def show(d):
        if not args.json:
            truth = f"  true {d.true_label}" if d.true_label is not None else ""
            lat = f"  {1e3 * d.latency:.1f} ms" if d.latency is not None else ""
            print(f"[{d.index:5d}] {d.label}{truth}{lat}", flush=True)

    result = run_live(config, duration=args.duration, stop=stop, callbacks=[show])
    _print_result(result, args)
    return 0


def replay(args: argparse.Namespace) -> int:
    config = _load_session(args)
    stream = args.stream
    if stream is None and str(args.input).lower().endswith((".xdf", ".xdfz", ".xdf.gz")):
        stream = config.source.stream  # a session's own recording names its data stream so
    recording = read_recording(args.input, stream=stream)
    result = run_replay(config, recording, output=args.output, timing=args.timing,
                        chunk_size=args.chunk_size)
    _print_result(result, args)
    if not args.json:
        print(f"replayed {result.n_samples / recording.sfreq:.1f} s of data in "
              f"{result.duration:.2f} s")
    return 0
