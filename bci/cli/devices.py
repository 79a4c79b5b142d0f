"""``bci simulate``, ``bci play`` and ``bci record``: LSL streams in and out."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import math
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bci.cli import bids, interrupt
from bci.cli.paths import check_output, describe_os_error

# Only the options' defaults at import time (cheap: the synthetic package loads its
# signal model, scipy and mne on first use); the simulator, player, file readers and
# recorder (XML, XDF) are imported by the command that runs them.
from bci.datasets.synthetic import DEFAULT_SFREQ, MI_CLASSES, PARADIGMS
from bci.devices.simulated_amplifier import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MARKER_NAME,
    DEFAULT_NAME,
)
from bci.errors import RecordingError, StreamNotFoundError


def add_commands(sub: argparse._SubParsersAction) -> None:
    text = "stream synthetic EEG with ground truth"
    p = sub.add_parser("simulate", help=text, description=text)
    _simulate_arguments(p)
    p.set_defaults(func=simulate)

    text = "rebroadcast a recording over LSL"
    p = sub.add_parser("play", help=text, description=text)
    _play_arguments(p)
    p.set_defaults(func=play)

    p = sub.add_parser("record", help="record LSL streams to XDF",
                       description="Record LSL streams on this machine to one XDF file, "
                                   "synced to disk every half second, until --duration, "
                                   "Ctrl-C or SIGTERM; with --bids, then written to BIDS "
                                   "as `bci export-bids` does.")
    _record_arguments(p)
    p.set_defaults(func=record)


def _on_signals(stop: threading.Event) -> Callable[[], None]:
    """Let SIGINT and SIGTERM set ``stop`` (``bci`` then exits 130); returns the undo."""
    signals = interrupt.on_signal(stop.set)
    signals.__enter__()
    return lambda: signals.__exit__(None, None, None)


# --- bci simulate ---------------------------------------------------------------------

def _comma_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, found {text!r}")
    return items


def _frequencies(text: str) -> list[float]:
    try:
        return [float(t) for t in _comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated frequencies in Hz such as 8,10,12,15, found {text!r}"
        ) from None


def _line_freq(text: str) -> float | None:
    if text.strip().lower() in ("none", "off", "0"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a frequency in Hz (50, 60) or 'none', found {text!r}") from None


def _simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--paradigm", choices=PARADIGMS, default="ssvep",
                        help="what the synthetic EEG contains (default: ssvep)")
    chans = parser.add_mutually_exclusive_group()
    chans.add_argument("--channels", type=int, metavar="N", dest="n_channels",
                       help="number of channels, picked from the 10-05 system "
                            "(occipital first for ssvep, central first for mi)")
    chans.add_argument("--ch-names", type=_comma_list, metavar="A,B,C",
                       help="channel names of the 10-05 system, comma-separated")
    parser.add_argument("--sfreq", type=float,
                        help="sampling rate in Hz (default: "
                             + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_SFREQ.items()) + ")")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                        help=f"samples per pushed chunk (default: {DEFAULT_CHUNK_SIZE})")
    parser.add_argument("--seed", type=int, help="random seed (default: a fresh one)")
    parser.add_argument("--duration", type=float,
                        help="seconds to stream (default: until Ctrl-C or SIGTERM)")
    parser.add_argument("--name", default=DEFAULT_NAME,
                        help=f"EEG stream name (default: {DEFAULT_NAME})")
    parser.add_argument("--marker-name", default=DEFAULT_MARKER_NAME,
                        help=f"marker stream name (default: {DEFAULT_MARKER_NAME})")
    parser.add_argument("--source-id", help="LSL source id (default: bci-sim:<name>)")
    parser.add_argument("--frequencies", type=_frequencies, metavar="F1,F2,...",
                        help="SSVEP target frequencies in Hz (default: 8,10,12,15)")
    parser.add_argument("--classes", type=_comma_list, metavar="C1,C2",
                        help=f"MI classes among {','.join(MI_CLASSES)} (default: left,right)")
    parser.add_argument("--line-freq", type=_line_freq, default=50.0,
                        help="power-line frequency in Hz, or 'none' (default: 50)")
    parser.add_argument("--trial-duration", type=float,
                        help="stimulation/imagery seconds (default: ssvep 2, mi 4)")
    parser.add_argument("--iti", type=float,
                        help="seconds between trials (default: ssvep 1, mi 2)")
    parser.add_argument("--follow-markers", metavar="NAME",
                        help="follow the cues of this marker stream instead of an own "
                             "schedule: each cue (a class label) starts its response at "
                             "the cue's timestamp, an 'end' marker stops it")


def simulate(args: argparse.Namespace) -> int:
    """Serve the streams until ``--duration`` is over, Ctrl-C or SIGTERM."""
    from bci.devices.simulated_amplifier import SimulatedAmplifier

    try:
        amp = SimulatedAmplifier(
            name=args.name, marker_name=args.marker_name, chunk_size=args.chunk_size,
            source_id=args.source_id, duration=args.duration, paradigm=args.paradigm,
            ch_names=args.ch_names, n_channels=args.n_channels, sfreq=args.sfreq,
            seed=args.seed, frequencies=args.frequencies, classes=args.classes,
            line_freq=args.line_freq, trial_duration=args.trial_duration, iti=args.iti,
            follow_markers=args.follow_markers,
        )
    except ValueError as exc:
        print(f"bci simulate: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    restore = _on_signals(stop)
    try:
        amp.start()
        eeg = amp.eeg
        print(f"Serving EEG stream {amp.name!r} ({eeg.n_channels} channels at "
              f"{eeg.sfreq:g} Hz, {eeg.paradigm}, seed {eeg.seed}, source_id "
              f"{amp.source_id!r})", flush=True)
        print(f"Serving marker stream {amp.marker_name!r} (classes: "
              f"{', '.join(eeg.labels)})", flush=True)
        while not stop.is_set() and not amp.wait(0.2):
            pass
        amp.stop()
    except RuntimeError as exc:
        cause = f": {exc.__cause__!r}" if exc.__cause__ is not None else ""
        print(f"bci simulate: error: {exc}{cause}", file=sys.stderr)
        return 1
    finally:
        if amp.running:
            with contextlib.suppress(RuntimeError):
                amp.stop()
        restore()
    print(f"Stopped after {amp.n_samples_sent} samples.", flush=True)
    return 0


# --- bci play -------------------------------------------------------------------------

def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, found {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number > 0, found {text!r}")
    return value


def _positive_int(text: str) -> int:
    if not re.fullmatch(r"\s*\d+\s*", text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, found {text!r}")
    return int(text)


def _play_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path,
                        help="recording to play (FIF, EDF/BDF, GDF, BrainVision, EEGLAB, XDF)")
    parser.add_argument("--name", help="data stream name (default: the file's stem)")
    parser.add_argument("--marker-name", help="marker stream name (default: NAME-markers)")
    parser.add_argument("--chunk-size", type=_positive_int,
                        help="samples per pushed chunk (default: about 20 ms of data)")
    parser.add_argument("--speed", type=_positive_float, default=1.0,
                        help="playback speed factor (default: 1.0, real time)")
    parser.add_argument("--loop", action="store_true",
                        help="start over at the end until interrupted")
    parser.add_argument("--stream", help="XDF: name or type of the data stream to play")
    parser.add_argument("--no-sync", action="store_true",
                        help="XDF: keep the raw timestamps (no clock offsets, no reset "
                             "handling)")
    parser.add_argument("--columns", type=Path, metavar="MAP.toml",
                        help="CSV/TSV: column mapping (channels, unit, time or sfreq, marker)")
    parser.add_argument("--events", type=Path,
                        help="events file replacing the recording's own markers")
    parser.add_argument("--wait-for-consumers", type=float, default=0.0, metavar="SECONDS",
                        help="wait up to SECONDS for a consumer before playing (default: 0)")


def play(args: argparse.Namespace) -> int:
    """Play ``args.file`` until its end (or until interrupted when looping)."""
    from bci.devices.files import read_recording
    from bci.devices.player import FilePlayer

    try:
        recording = read_recording(args.file, stream=args.stream, events=args.events,
                                   sync=not args.no_sync, columns=args.columns)
        player = FilePlayer(recording, name=args.name, marker_name=args.marker_name,
                            chunk_size=args.chunk_size, speed=args.speed, loop=args.loop,
                            wait_for_consumers=args.wait_for_consumers)
    except (RecordingError, ValueError) as err:
        print(f"bci play: error: {err}", file=sys.stderr)
        return 2
    rec = player.recording
    if rec.note:
        print(f"{args.file}: {rec.note}", flush=True)
    duration = rec.data.shape[1] / rec.sfreq
    print(f"playing {rec.source}: {rec.data.shape[0]} channels at {rec.sfreq:g} Hz, "
          f"{duration:.1f} s, {player.n_markers} markers, speed {player.speed:g}"
          f"{', looping' if player.loop else ''}\n"
          f"  data stream {player.name!r} (source_id {player.source_id!r}), "
          f"markers {player.marker_name!r}", flush=True)
    player.start()
    interrupted = False
    try:
        while not player.wait(0.5):
            pass
    except KeyboardInterrupt:  # `bci` reports it and exits 130
        interrupted = True
    if not interrupted and player.error is None:
        # Let consumers drain the last chunk before the outlets go away.
        time.sleep(0.5)
    player.stop()
    if player.error is not None:
        print(f"bci play: error: {player.error}", file=sys.stderr)
        return 1
    print(f"played {player.samples_pushed} samples and {player.markers_pushed} markers "
          f"({player.loops_completed} loop(s))")
    return 0


# --- bci record -----------------------------------------------------------------------

def _record_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stream", action="append", default=[], metavar="NAME",
                        help="record the stream(s) with this name (repeatable)")
    parser.add_argument("--type", action="append", default=[], metavar="TYPE",
                        help="record every stream of this type (repeatable)")
    parser.add_argument("--source-id", action="append", default=[], metavar="ID",
                        help="record the stream with this source_id (repeatable)")
    parser.add_argument("--all", action="store_true", help="record every stream found")
    parser.add_argument("-o", "--output", default=None, metavar="FILE.xdf",
                        help="file to write (default: recording-<date>-<time>.xdf)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the output file (and, with --bids, that BIDS run) "
                             "if it exists")
    parser.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                        help="stop after this many seconds (default: Ctrl-C/SIGTERM)")
    parser.add_argument("--resolve-timeout", type=float, default=5.0, metavar="SECONDS",
                        help="how long to wait for the streams (default 5)")
    parser.add_argument("--flush-interval", type=float, default=0.5, metavar="SECONDS",
                        help="seconds between syncs to disk (default 0.5)")
    bids.add_bids_arguments(parser, required=False)


def record(args: argparse.Namespace) -> int:
    """Record until ``--duration``, Ctrl-C or SIGTERM; returns the exit status."""
    from bci.devices.recorder import ALL_WAIT, Recorder, StreamQuery, resolve_all

    queries = ([StreamQuery(name=n) for n in args.stream]
               + [StreamQuery(type=t) for t in args.type]
               + [StreamQuery(source_id=s) for s in args.source_id])
    if not queries and not args.all:
        print("bci record: error: say what to record: --stream NAME, --type TYPE, "
              "--source-id ID or --all", file=sys.stderr)
        return 2
    output = Path(args.output or datetime.datetime.now().strftime(
        "recording-%Y%m%d-%H%M%S.xdf"))
    check_output(output)
    if output.exists() and not args.overwrite:
        print(f"bci record: error: {output} exists; expected a new file (or --overwrite)",
              file=sys.stderr)
        return 2
    target = bids.bids_target(args)  # bad labels, an existing BIDS run: before recording
    streams: list = list(queries)
    if args.all:
        streams += resolve_all(min(ALL_WAIT, args.resolve_timeout))
        if not streams:
            print("bci record: error: --all found no LSL stream on this machine",
                  file=sys.stderr)
            return 2
    recorder = Recorder(output, streams, flush_interval=args.flush_interval,
                        resolve_timeout=args.resolve_timeout, skip_unavailable=args.all,
                        on_event=lambda e: print(e, flush=True),
                        on_error=lambda err: None)  # reported below, once
    try:
        recorder.start()
    except StreamNotFoundError as err:
        print(f"bci record: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the file: unwritable, disk full
        print(f"bci record: error: {describe_os_error(err, output)}", file=sys.stderr)
        return 2
    stop = threading.Event()
    restore = _on_signals(stop)
    try:
        print(f"recording {len(recorder.streams)} stream(s) to {output}"
              + ("" if args.duration else " (Ctrl-C or SIGTERM to stop)") + ":", flush=True)
        for stream in recorder.streams:
            print(f"  {stream.describe()}", flush=True)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while not stop.is_set() and recorder.error is None:
            if deadline is not None and time.monotonic() >= deadline:
                break
            stop.wait(0.1 if deadline is None else min(0.1, deadline - time.monotonic()))
    finally:
        recorder.stop()
        restore()
    counts = ", ".join(f"{s.name!r} {s.n_samples} samples" for s in recorder.streams)
    print(f"wrote {output}: {counts}", flush=True)
    if recorder.error is not None:
        err = recorder.error
        what = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        print(f"bci record: error: writing {output} failed: {what}; the file keeps what was "
              "written before", file=sys.stderr)
        return 1
    return 0 if target is None else bids.export(args, output)
