"""The ``bci`` command.

Subcommands: ``demo``, ``run``, ``replay``, ``train``, ``evaluate``, ``inspect``,
``simulate``, ``play``, ``record``, ``stream``, ``export-bids``, ``protocol``, ``scope``, ``fl``.
``--lsl-scope network`` (before the subcommand) lets LSL resolve across the lab network;
the default keeps every LSL packet on this machine.

Every option of every subcommand is declared in this package, one module per command
group; each command imports what it runs when it runs, so ``bci --help`` and ``bci run``
load neither torch nor Qt nor Flower. A :class:`~bci.errors.BCIError` (or a file that
cannot be read or written) reaches the user as one line, ``bci COMMAND: error: …``.

Exit status: 0 done; 1 the command ran but failed or found nothing (a recording that
failed under ``on_record_error = "stop"``, a session that ended on an error); 2 bad
input (options, files, configuration, a stream that is not there); 130 interrupted by
Ctrl-C or SIGTERM (files flushed and closed first).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from bci.cli import interrupt

# Only for the `bci` script, not for programs importing this package: a signal while the
# imports below load (mne, scipy: seconds on a busy machine) already ends with 130.
if Path(sys.argv[0]).name == "bci" or Path(sys.argv[0]).resolve() == (
        Path(__file__).resolve().parent.parent / "__main__.py"):  # python -m bci
    interrupt.install_early()

from bci.cli import (
    bids,
    devices,
    federated,
    inspect,
    progress,
    protocol,
    scope,
    session,
    stream,
    training,
)
from bci.cli.paths import describe_os_error
from bci.errors import BCIError
from bci.lslconfig import configure_lsl

#: Command groups, in the order ``bci --help`` lists their commands.
GROUPS = (session, training, inspect, devices, stream, bids, protocol, scope,
          federated)


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad option reported in one line (the usage is in ``--help``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``bci`` parser with every subcommand and option."""
    parser = _Parser(prog="bci", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lsl-scope", choices=("machine", "network"), default="machine",
                        help="LSL resolve scope (default: this machine only)")
    # its own dest: `bci fl simulate --verbose` (Flower's logs) is another option
    parser.add_argument("-v", "--verbose", dest="log_verbose", action="store_true",
                        help="log more")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress display (it is off anyway when stderr is not a "
                             "terminal)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bci`` with ``argv`` (default: the command line); return the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    if extra:  # named after the subcommand they were given to
        parser.exit(2, f"bci {args.command}: error: unrecognized arguments: "
                       f"{' '.join(extra)} (see bci {args.command} --help)\n")
    logging.basicConfig(level=logging.INFO if args.log_verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    progress.configure(quiet=args.quiet)
    configure_lsl(args.lsl_scope)
    name = args.command + (f" {args.fl_command}" if getattr(args, "fl_command", None) else "")
    try:
        with interrupt.installed():
            status = args.func(args)
    except KeyboardInterrupt:
        status = interrupt.EXIT_INTERRUPTED
    except BrokenPipeError:
        return _broken_pipe()
    except BCIError as err:
        return _error(name, str(err))
    except OSError as err:
        return _error(name, describe_os_error(err))
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return _broken_pipe()
    signame = interrupt.interrupted()
    if signame is not None:
        print(f"bci {name}: interrupted by {signame}", file=sys.stderr)
        return interrupt.EXIT_INTERRUPTED
    return status


def _error(name: str, message: str) -> int:
    print(f"bci {name}: error: {message}", file=sys.stderr)
    return 2


def _broken_pipe() -> int:
    # the reader went away (`bci inspect m.onnx | head`): nothing more to say to it
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0
