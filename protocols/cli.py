"""``bci protocol NAME [CONFIG.toml] [--simulate] [--json] [--output-dir DIR]``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence

from protocols import PROTOCOLS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=sorted(PROTOCOLS), help="the protocol to run")
    parser.add_argument("config", nargs="?", default=None,
                        help="protocol settings (TOML); default: the built-in settings")
    parser.add_argument("--simulate", action="store_true",
                        help="start a simulated amplifier that follows the cues and run the "
                             "whole protocol against it, with the compressed timing of "
                             "[simulate]")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON object")
    parser.add_argument("--output-dir", default=None, metavar="DIR",
                        help="where recordings, models and session files go "
                             "(default: protocol-runs/NAME-DATE-TIME)")


def _module(name: str):
    import importlib

    return importlib.import_module(PROTOCOLS[name])


def run(args: argparse.Namespace) -> int:
    from protocols.base import ProtocolConfigError

    mod = _module(args.name)
    try:
        config = mod.load(args.config, simulate=args.simulate)
    except ProtocolConfigError as err:
        print(f"bci protocol: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()
    restore = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            restore[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        summary = mod.run(config, simulate=args.simulate, out_dir=args.output_dir, stop=stop)
    except KeyboardInterrupt:
        print("bci protocol: stopped", file=sys.stderr)
        return 130
    except (RuntimeError, ValueError, LookupError, OSError) as err:
        cause = f" ({err.__cause__!r})" if err.__cause__ is not None else ""
        print(f"bci protocol: {err}{cause}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in restore.items():
            signal.signal(sig, handler)
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        for key, value in summary.items():
            if key not in ("stages",):
                print(f"{key}: {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bci protocol",
                                     description="Run an experiment protocol.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
