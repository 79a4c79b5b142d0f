"""``bci protocol NAME [CONFIG.toml] [--simulate] [--gui | --headless] [--json]
[--output-dir DIR]``: an experiment protocol, calibration → training → online."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import threading

from bci.cli import interrupt
from bci.protocols import PROTOCOLS


def add_commands(sub: argparse._SubParsersAction) -> None:
    text = "run an experiment protocol (calibration → train → online)"
    p = sub.add_parser("protocol", help=text, description=text)
    p.add_argument("name", choices=sorted(PROTOCOLS), help="the protocol to run")
    p.add_argument("config", nargs="?", default=None,
                   help="protocol settings (TOML); default: the built-in settings")
    p.add_argument("--simulate", action="store_true",
                   help="start a simulated amplifier that follows the cues and run the "
                        "whole protocol against it, with the compressed timing of "
                        "[simulate]")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--gui", dest="gui", action="store_true", default=None,
                       help="show the participant's window (speller or feedback) and the "
                            "operator's decoder panel (default when a display is present)")
    shown.add_argument("--headless", dest="gui", action="store_false",
                       help="no windows: cues and decisions go only over LSL and to disk")
    p.add_argument("--json", action="store_true",
                   help="print the summary as one JSON object")
    p.add_argument("--output-dir", default=None, metavar="DIR",
                   help="where recordings, models and session files go "
                        "(default: protocol-runs/NAME-DATE-TIME)")
    p.set_defaults(func=run)


def _want_gui(requested: bool | None) -> bool:
    """``--gui``/``--headless`` if given; else windows when Qt and a display are here."""
    has_qt = importlib.util.find_spec("PySide6") is not None
    if requested is False:
        return False
    if requested:
        if not has_qt:
            raise RuntimeError('--gui needs the GUI extra: pip install "bci-runtime[gui]"')
        return True
    if not has_qt:
        return False
    # presentation imports Qt (the GUI extra)
    from bci.protocols.presentation import display_available

    return display_available()


def run(args: argparse.Namespace) -> int:
    # the protocol runtime (LSL, the runner, recordings) only for `bci protocol`
    from bci.protocols.base import ProtocolConfigError, output_dir

    mod = importlib.import_module(PROTOCOLS[args.name])
    try:
        config = mod.load(args.config, simulate=args.simulate)
    except ProtocolConfigError as err:
        print(f"bci protocol: error: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()
    out = output_dir(args.output_dir, mod.NAME)
    # SIGINT/SIGTERM end the protocol at its next step, files closed (exit status 130)
    signals = interrupt.on_signal(stop.set)
    signals.__enter__()
    try:
        gui = _want_gui(args.gui)
        if gui:
            from bci.protocols.presentation import ProtocolGUI  # Qt

            summary = ProtocolGUI(mod, config, simulate=args.simulate, out_dir=out,
                                  stop=stop).run()
        else:
            summary = mod.run(config, simulate=args.simulate, out_dir=out, stop=stop)
        summary["gui"] = gui
    except KeyboardInterrupt:
        print(f"bci protocol: stopped; what was recorded is in {out}", file=sys.stderr)
        return 130
    except (RuntimeError, ValueError, LookupError, OSError) as err:
        cause = f" ({err.__cause__!r})" if err.__cause__ is not None else ""
        print(f"bci protocol: error: {err}{cause}", file=sys.stderr)
        return 1
    finally:
        signals.__exit__(None, None, None)
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        for key, value in summary.items():
            if key not in ("stages",):
                print(f"{key}: {value}")
    return 0
