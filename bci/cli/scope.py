"""``bci scope STREAM``: a live multichannel view of an LSL stream."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bci.cli import interrupt
from bci.errors import StreamNotFoundError


def add_commands(sub: argparse._SubParsersAction) -> None:
    text = "live multichannel view of an LSL stream"
    p = sub.add_parser("scope", help=text, description=text)
    p.add_argument("stream", nargs="?", help="name of the LSL data stream")
    p.add_argument("--type", help="LSL stream type to resolve (e.g. EEG)")
    p.add_argument("--markers", metavar="NAME", help="marker stream to draw")
    p.add_argument("--seconds", type=float, default=10.0,
                   help="seconds of data on screen (default 10)")
    p.add_argument("--bandpass", type=float, nargs=2, metavar=("LO", "HI"),
                   help="display band-pass in Hz (causal, display only)")
    p.add_argument("--notch", type=float, nargs="+", metavar="F",
                   help="display notch frequencies in Hz, e.g. 50 100")
    p.add_argument("--scale", type=float, metavar="VOLTS",
                   help="volts per channel spacing (default: from the data)")
    p.add_argument("--max-points", type=int, default=2000,
                   help="at most this many points per trace (default 2000)")
    p.add_argument("--fps", type=float, default=30.0, help="frames per second")
    p.add_argument("--spectrum", action="store_true", help="start in the spectrum view")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for the streams (default 10)")
    p.add_argument("--screenshot", type=Path, metavar="FILE.png",
                   help="render offscreen, save a PNG after --frames updates, exit")
    p.add_argument("--frames", type=int, default=30,
                   help="updates before the screenshot (default 30)")
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("W", "H"),
                   help="window size in pixels")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Open the scope on a stream until its window closes (or save one screenshot)."""
    if args.stream is None and args.type is None:
        print("bci scope: give a stream name or --type", file=sys.stderr)
        return 2
    if args.screenshot is not None:
        # before Qt starts: a screenshot needs no display
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    # Qt (the GUI extra) is imported only by this command
    from PySide6.QtWidgets import QApplication

    from bci.devices.lsl_source import LSLSource, MarkerSource
    from bci.gui.scope import ScopeWindow, display_filters

    app = QApplication.instance() or QApplication(["bci scope"])
    source = LSLSource(name=args.stream, type=args.type, resolve_timeout=args.timeout)
    markers = None
    try:
        source.open()
        if args.markers:
            markers = MarkerSource(name=args.markers, resolve_timeout=args.timeout)
            markers.open()
        window = ScopeWindow(
            source, markers, seconds=args.seconds,
            filters=display_filters(args.bandpass, args.notch) or None, scale=args.scale,
            max_points=args.max_points, fps=args.fps, autostart=args.screenshot is None,
            own_sources=True, title=f"bci scope: {source.stream_info.name()}")
    except (StreamNotFoundError, ValueError) as err:
        source.close()
        if markers is not None:
            markers.close()
        print(f"bci scope: error: {err}", file=sys.stderr)
        return 2
    if args.size:
        window.resize(*args.size)
    if args.spectrum:
        window.show_spectrum(True)
    window.show()
    if args.screenshot is not None:
        period = 1.0 / args.fps
        for _ in range(max(1, args.frames)):
            deadline = time.monotonic() + period
            window.tick()
            app.processEvents()
            time.sleep(max(0.0, deadline - time.monotonic()))
        window.redraw(force_spectrum=True)
        app.processEvents()
        ok = window.grab().save(str(args.screenshot))
        window.close()
        if not ok:
            print(f"bci scope: could not write {args.screenshot}", file=sys.stderr)
            return 1
        print(f"wrote {args.screenshot} ({window.total} samples, {window.frames} frames)")
        return 0
    window.setFocus()
    # the 30 Hz timer hands control back to Python often enough for Ctrl-C
    signals = interrupt.on_signal(window.close)  # SIGINT/SIGTERM: `bci` then exits 130
    signals.__enter__()
    app.exec()
    window.close()
    return 0
