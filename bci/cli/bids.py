"""``bci export-bids``, and the ``--bids`` options of ``bci record``: recordings to BIDS."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Write a recording to a BIDS dataset (BIDS-EEG, or BIDS-iEEG when a channel is sEEG,
ECoG or DBS) through mne-bids: sub-SUBJECT[/ses-SESSION]/eeg/ under ROOT, holding

  *_eeg.vhdr/.vmrk/.eeg  the data as BrainVision, float32 microvolts (samples kept to
                         float32 precision, about 1e-7 relative)
  *_channels.tsv         channel names and types (EEG, EOG, MISC, TRIG, SEEG, ...)
  *_events.tsv           the markers (trial_type = marker value, value = its code;
                         integer markers keep theirs) and the decoder's decisions,
                         trial_type 'decision/<label>' with the class probabilities
                         (p_<class>) and latency in their own columns
  *_eeg.json             sidecar, PowerLineFrequency from --line-freq

plus dataset_description.json, participants.tsv and scans.tsv at their levels.

RECORDING is any file `bci replay` reads: the XDF of `bci run` (outputs.record) or
`bci record` (markers, and decisions when a Decisions stream is in it), FIF, EDF/BDF,
GDF, BrainVision, EEGLAB, CSV/TSV (with --columns). Markers and decisions are placed on
the data sample their timestamp falls on. Read it back with mne_bids.read_raw_bids.
Labels are letters and digits only (BIDS). Needs mne-bids:
pip install 'bci-runtime[bids]'.

example: bci export-bids session.xdf --bids bids --subject 01 --session 01 --task ssvep
"""


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-bids", help="write a recording (XDF, FIF, EDF, ...) to BIDS",
                       description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recording", type=Path, metavar="RECORDING",
                   help="the recording to export (XDF, FIF, EDF/BDF, GDF, BrainVision, "
                        "EEGLAB, CSV/TSV)")
    add_bids_arguments(p, required=True)
    p.add_argument("--datatype", choices=("eeg", "ieeg"), default=None,
                   help="BIDS data type (default: ieeg when a channel is seeg, ecog or "
                        "dbs, else eeg)")
    p.add_argument("--stream", help="XDF: name or type of the data stream (default: the "
                                    "numeric stream with the most channels)")
    p.add_argument("--events", type=Path, metavar="FILE",
                   help="events file replacing the recording's own markers")
    p.add_argument("--columns", type=Path, metavar="MAP.toml",
                   help="CSV/TSV: column mapping (channels, unit, time or sfreq, marker)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace this subject/session/task/run if it is there already")
    p.set_defaults(func=export_command)


def _line_freq(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"expected a power-line frequency in Hz (50, 60), found {text!r}")
    return value


def add_bids_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """``--bids ROOT --subject --session --task --run --line-freq`` on ``parser``.

    With ``required=False`` (``bci record``) they are optional, and ``--subject`` and
    ``--task`` are checked by :func:`bids_target` when ``--bids`` is given.
    """
    group = parser.add_argument_group("BIDS" if required else
                                      "BIDS (export the recording when it is closed)")
    group.add_argument("--bids", required=required, type=Path, metavar="ROOT",
                       help="BIDS root folder (created if missing)")
    group.add_argument("--subject", required=required, metavar="LABEL",
                       help="subject label, letters and digits (e.g. 01)")
    group.add_argument("--session", dest="bids_session", metavar="LABEL",
                       help="session label (optional)")
    group.add_argument("--task", required=required, metavar="LABEL",
                       help="task label (e.g. ssvep)")
    group.add_argument("--run", type=int, metavar="N", help="run number >= 1 (optional)")
    group.add_argument("--line-freq", type=_line_freq, default=None, metavar="HZ",
                       help="power-line frequency for the sidecar (default: the file's "
                            "own, else 50)")


def bids_target(args: argparse.Namespace) -> Any:
    """Check the BIDS options before any work; the BIDSPath, or ``None`` without --bids.

    Raises
    ------
    bci.devices.bids.BIDSError
        mne-bids missing, a bad label, or the recording there already without
        ``--overwrite``.
    """
    if args.bids is None:
        for option, value in (("--subject", args.subject), ("--session", args.bids_session),
                              ("--task", args.task), ("--run", args.run)):
            if value is not None:
                from bci.errors import ConfigError

                raise ConfigError(f"{option} given without --bids ROOT; expected both "
                                  "(or neither)")
        return None
    from bci.devices.bids import bids_path, check_new

    target = bids_path(args.bids, subject=args.subject, task=args.task,
                       session=args.bids_session, run=args.run)
    check_new(target, overwrite=args.overwrite)
    return target


def export(args: argparse.Namespace, recording: Path, **options: Any) -> int:
    """Export ``recording`` with the BIDS options of ``args``; print what was written."""
    from bci.devices.bids import export_bids

    done = export_bids(recording, args.bids, subject=args.subject, task=args.task,
                       session=args.bids_session, run=args.run, line_freq=args.line_freq,
                       overwrite=args.overwrite, **options)
    dropped = f", {done.n_dropped} outside the data left out" if done.n_dropped else ""
    print(f"wrote {done.path} (BIDS-{done.datatype.upper()}, {done.n_channels} channels, "
          f"{done.n_samples / done.sfreq:.1f} s at {done.sfreq:g} Hz, line "
          f"{done.line_freq:g} Hz): {done.n_markers} marker(s), {done.n_decisions} "
          f"decision(s) in events.tsv{dropped}", flush=True)
    return 0


def export_command(args: argparse.Namespace) -> int:
    bids_target(args)  # labels and an existing output fail before the file is read
    return export(args, args.recording, datatype=args.datatype, stream=args.stream,
                  events=args.events, columns=args.columns)
