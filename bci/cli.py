"""The ``bci`` command.

Subcommands: ``demo``, ``run``, ``replay``, ``simulate``, ``play``, ``record``,
``inspect``. ``--lsl-scope network`` (before the subcommand) lets LSL resolve across the
lab network; the default keeps every LSL packet on this machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence


def _add_stats(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, metavar="MODEL.onnx",
                   help="serve this trained decoder instead of the session's [decoder]")
    p.add_argument("--stats", action="store_true",
                   help="print decision latency p50/p95/p99 per stage at the end")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def _print_result(result, args) -> None:
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


def _load_session(args):
    from bci.session import SessionConfig

    config = SessionConfig.load(args.session)
    if args.model is not None:
        config = config.with_model(args.model)
    config.require_decoder()
    return config


def _cmd_run(args) -> int:
    from bci.runner import run_live

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


def _cmd_replay(args) -> int:
    from bci.devices.files import read_recording
    from bci.runner import run_replay

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


def _cmd_train(args) -> int:
    from bci.decoders.training import train
    from bci.session import SessionConfig

    config = SessionConfig.load(args.session)
    out = train(config, args.decoder, args.train, output=args.output,
                global_paths=args.global_ or (), bank=args.bank)
    if args.json:
        print(json.dumps(out))
    elif "n_images" in out:
        print(f"{out['decoder']}: trained on {out['n_windows']} windows of {out['n_images']} "
              f"images in {out['train_seconds']:.1f} s; wrote {out['output']} (bank "
              f"{out['bank']})")
    else:
        print(f"{out['decoder']}: trained on {out['n_windows']} windows "
              f"({', '.join(out['classes'])}) in {out['train_seconds']:.1f} s, training "
              f"accuracy {out['train_accuracy']:.3f}; wrote {out['output']}")
    return 0


def _cmd_evaluate(args) -> int:
    from bci.decoders.training import evaluate
    from bci.session import SessionConfig

    config = SessionConfig.load(args.session)
    result = evaluate(config, args.decoder, train=args.train, test=args.test or (),
                      split=args.split, n_splits=args.n_splits,
                      global_paths=args.global_ or (), window=args.window)
    if args.predictions:
        result.write_predictions(args.predictions)
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{summary['decoder']}, {summary['split']}: {summary['n_windows']} test windows, "
          f"accuracy {summary['accuracy']:.3f} (chance {summary['chance']:.3f}), "
          f"kappa {summary['kappa']:.3f}")
    if "itr_bits_per_min" in summary:
        print(f"ITR {summary['itr_bits_per_min']:.1f} bits/min ({summary['itr_convention']})")
    width = max(len(c) for c in summary["classes"]) + 2
    print("confusion (rows true, columns predicted):")
    print(" " * width + "".join(f"{c:>{width}}" for c in summary["classes"]))
    for c, row in zip(summary["classes"], summary["confusion"], strict=True):
        print(f"{c:>{width}}" + "".join(f"{v:>{width}}" for v in row))
    return 0


def _cmd_demo(args) -> int:
    from bci.demo import run_demo

    return run_demo(duration=args.duration, as_json=args.json, seed=args.seed)


def _cmd_inspect(args) -> int:
    from bci.decoder import OnnxDecoder

    decoder = OnnxDecoder(args.model)
    print(json.dumps({"spec": json.loads(decoder.spec.to_json()),
                      "input_shape": decoder.input_shape()}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bci", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lsl-scope", choices=("machine", "network"), default="machine",
                        help="LSL resolve scope (default: this machine only)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="closed loop on a simulated SSVEP amplifier, no setup")
    p.add_argument("--duration", type=float, default=30.0, help="seconds (default 30)")
    p.add_argument("--seed", type=int, default=7, help="simulator seed")
    p.add_argument("--json", action="store_true", help="print only a JSON summary")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("run", help="run a session file live against LSL streams")
    p.add_argument("session", help="session TOML file")
    p.add_argument("--duration", type=float, default=None, help="seconds (default: forever)")
    _add_stats(p)
    p.set_defaults(func=_cmd_run)

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
    p.set_defaults(func=_cmd_replay)

    names = ("fbcca", "trca", "etrca", "ssvep-dnn", "csp-lda", "fbcsp", "eegnet", "rl-eegnet",
             "duin")
    p = sub.add_parser("train", help="fit a decoder on recordings and write its .onnx file")
    p.add_argument("session", help="session TOML file with [window] events and [training]")
    p.add_argument("--decoder", required=True, choices=(*names, "meg-retrieval"))
    p.add_argument("--bank", default=None, metavar="DIR",
                   help="meg-retrieval: the images' embeddings, one .npy file per image")
    p.add_argument("--train", required=True, nargs="+", metavar="FILE", help="recordings")
    p.add_argument("--global", dest="global_", nargs="+", metavar="FILE",
                   help="other subjects' recordings for the global stage (ssvep-dnn)")
    p.add_argument("--output", required=True, metavar="MODEL.onnx")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="accuracy, kappa, confusion (and ITR) on held-out "
                       "data")
    p.add_argument("session", help="session TOML file with [window] events and [training]")
    p.add_argument("--decoder", required=True, choices=(*names, "mdm", "ts-lr"))
    p.add_argument("--train", required=True, nargs="+", metavar="FILE")
    p.add_argument("--test", nargs="+", metavar="FILE",
                   help="held-out recordings (cross-session split)")
    p.add_argument("--split", choices=("cross-session", "leave-one-block-out", "k-fold"),
                   default=None, help="default: cross-session with --test, else k-fold")
    p.add_argument("--n-splits", type=int, default=5,
                   help="folds, or blocks within a single recording (default 5)")
    p.add_argument("--global", dest="global_", nargs="+", metavar="FILE",
                   help="other subjects' recordings for the global stage (ssvep-dnn)")
    p.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="window length from [window] tmin (default: tmax − tmin)")
    p.add_argument("--predictions", default=None, metavar="FILE.jsonl",
                   help="write each test window's prediction")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("inspect", help="show an ONNX decoder's bci spec")
    p.add_argument("model")
    p.set_defaults(func=_cmd_inspect)

    for name, module, text in (
        ("simulate", "bci.devices.simulated_amplifier", "stream synthetic EEG with ground truth"),
        ("play", "bci.devices.player", "rebroadcast a recording over LSL"),
        ("record", "bci.devices.recorder", "record LSL streams to XDF"),
        ("protocol", "bci.protocols.cli", "run an experiment protocol (calibration → train → "
         "online)"),
        ("scope", "bci.gui.scope", "live multichannel view of an LSL stream"),
        ("fl", "bci.federated.cli", "federated training across sites (Flower)"),
    ):
        # add_help=False: --help must reach the device module's own parser below.
        p = sub.add_parser(name, help=text, add_help=False)
        p.set_defaults(module=module, description=text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # The device subcommands own their options: parse only up to the subcommand name.
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from bci.lslconfig import configure_lsl

    configure_lsl(args.lsl_scope)
    from bci.errors import BCIError

    try:
        if hasattr(args, "module"):
            import importlib

            module = importlib.import_module(args.module)
            sub = argparse.ArgumentParser(prog=f"bci {args.command}",
                                          description=args.description)
            module.add_arguments(sub)
            return module.run(sub.parse_args(rest))
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return args.func(args)
    except BCIError as err:
        print(f"bci {args.command}: error: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"bci {args.command}: error: {err.filename or err}: no such file", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
