"""``bci demo``, ``bci run`` and ``bci replay``: a session, live or over a recording."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
from typing import TYPE_CHECKING

from bci.cli import interrupt, progress
from bci.cli.paths import check_output

if TYPE_CHECKING:
    from bci.session import SessionConfig

# Each command imports what it runs when it runs: the parser (`bci --help`, every other
# subcommand) loads no mne, scipy or onnxruntime, and `bci run` loads no file readers,
# simulator or synthetic data.

#: What ``--stats`` reports while a live session runs.
LIVE_COUNTS = ("skipped_backlog", "skipped_gap", "skipped_nonfinite", "nonfinite_samples")


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
                   "BrainVision, EEGLAB, XDF, CSV/TSV with --columns)")
    p.add_argument("--output", default=None, help="decisions as JSON lines")
    p.add_argument("--stream", default=None, help="data stream name inside an XDF file")
    p.add_argument("--no-sync", action="store_true",
                   help="XDF: keep the raw timestamps (no clock offsets, no reset handling)")
    p.add_argument("--columns", default=None, metavar="MAP.toml",
                   help="CSV/TSV: column mapping (channels, unit, time or sfreq, marker)")
    p.add_argument("--timing", action="store_true",
                   help="add processing times to the output (no longer byte-reproducible)")
    p.add_argument("--chunk-size", type=int, default=32, help="samples per chunk")
    _add_stats(p)
    p.set_defaults(func=replay)


def _add_stats(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, metavar="MODEL.onnx",
                   help="serve this trained decoder instead of the session's [decoder]")
    p.add_argument("--stats", action="store_true",
                   help="print dropped windows every few seconds while running, and "
                        "decision latency p50/p95/p99 per stage at the end")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def _print_result(result, args: argparse.Namespace) -> None:
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
        return
    acc = summary["accuracy"]
    print(f"{summary['n_decisions']} decisions"
          + (f", accuracy {acc:.3f} over {summary['n_labelled']} labelled windows"
             if acc is not None else ", no labelled windows")
          + f"; counts {summary['counts']}")
    for e in summary["events"]:
        print(f"source event: {e}")
    if args.stats:
        print(result.latency.table())


def _load_session(args: argparse.Namespace) -> SessionConfig:
    from bci.session import SessionConfig

    config = SessionConfig.load(args.session)
    if args.model is not None:
        config = config.with_model(args.model)
        # a missing or broken model fails here, not after a resolve
        from bci.decoder import open_model

        open_model(args.model, options=config.decoder.options or None)
    config.require_decoder()
    for key in ("jsonl", "record"):
        path = getattr(config.outputs, key)
        if path is not None:
            check_output(path, option=f"outputs.{key}")
    return config


def demo(args: argparse.Namespace) -> int:
    from bci.demo import run_demo

    return run_demo(duration=args.duration, as_json=args.json, seed=args.seed)


def run(args: argparse.Namespace) -> int:
    from bci.runner import run_live

    config = _load_session(args)
    stop = threading.Event()
    stream = config.source.stream or config.source.type or config.source.source_id
    what = (f"stream {stream!r}" if config.source.kind == "lsl" else
            f"{config.source.kind} source {config.source.options.get('board', '')!r}")
    with contextlib.ExitStack() as stack:
        ready = stack.enter_context(progress.waiting(
            f"waiting for {what}", timeout=config.source.resolve_timeout))

        timed = []

        def start(pipeline) -> None:
            # until here a signal raises KeyboardInterrupt (the resolve unwinds at once);
            # from here it sets `stop`: the session closes its files, prints its summary
            if args.stats:
                pipeline.chain.time_nodes()
                timed.append(pipeline.chain)
            ready.set()
            stack.enter_context(interrupt.on_signal(stop.set))

        def show(d):
            if not args.json:
                truth = f"  true {d.true_label}" if d.true_label is not None else ""
                lat = f"  {1e3 * d.latency:.1f} ms" if d.latency is not None else ""
                print(f"[{d.index:5d}] {d.label}{truth}{lat}", flush=True)

        def live_stats(counts: dict[str, int]) -> None:
            print("drops so far: " + ", ".join(f"{k} {counts.get(k, 0)}"
                                               for k in LIVE_COUNTS),
                  file=sys.stderr, flush=True)

        result = run_live(config, duration=args.duration, stop=stop, callbacks=[show],
                          on_ready=start, on_stats=live_stats if args.stats else None)
    _print_result(result, args)
    if timed and not args.json:
        print("filter stage per node, ms per chunk: " + ", ".join(
            f"{name} p50 {q['p50']:.3f} / p99 {q['p99']:.3f}"
            for name, q in timed[0].node_summary()))
    # 1: the recording failed with on_record_error = "stop", or an epoch session found
    # no events
    return _record_status(config, result) or (1 if result.found_no_events else 0)


def _record_status(config: SessionConfig, result) -> int:
    """1 when the session's recording failed and the session file says to stop on it."""
    failed = [e for e in result.events if e.get("kind") == "record_failed"]
    if failed and config.outputs.on_record_error == "stop":
        print(f"bci run: error: recording {failed[0].get('path')} failed "
              f"({failed[0].get('error')}); the session stopped (on_record_error = 'stop')",
              file=sys.stderr)
        return 1
    return 0


def replay(args: argparse.Namespace) -> int:
    from bci.devices.files import read_recording
    from bci.runner import run_replay

    config = _load_session(args)
    if args.output is not None:
        check_output(args.output, option="--output")
    stream = stream_type = None
    if str(args.input).lower().endswith((".xdf", ".xdfz", ".xdf.gz")):
        # a session's own recording names its data stream as the session's source does
        stream = args.stream or config.source.stream
        stream_type = config.source.type if stream is None else None
    recording = read_recording(args.input, stream=stream, stream_type=stream_type,
                               sync=not args.no_sync, columns=args.columns)
    if recording.note and not args.json:
        print(f"{args.input}: {recording.note}")
    seconds = recording.data.shape[1] / recording.sfreq
    t0 = float(recording.timestamps[0]) if len(recording.timestamps) else 0.0
    with contextlib.closing(progress.bar("replaying", total=round(seconds), unit="s")) as bar:

        def advance(d) -> None:
            bar.update(max(0, int(d.last_sample_time - t0) - bar.n))

        result = run_replay(config, recording, output=args.output, timing=args.timing,
                            chunk_size=args.chunk_size, callbacks=[advance])
    _print_result(result, args)
    if not args.json:
        print(f"replayed {result.n_samples / recording.sfreq:.1f} s of data in "
              f"{result.duration:.2f} s")
    return 1 if result.found_no_events else 0
