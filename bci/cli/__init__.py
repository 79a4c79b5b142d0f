"""The ``bci`` command.

Subcommands: ``demo``, ``run``, ``replay``, ``train``, ``evaluate``, ``inspect``,
``simulate``, ``play``, ``record``, ``protocol``, ``scope``, ``fl``. ``--lsl-scope
network`` (before the subcommand) lets LSL resolve across the lab network; the default
keeps every LSL packet on this machine.

Every option of every subcommand is declared in this package, one module per command
group; each command imports what it runs when it runs, so ``bci --help`` and ``bci run``
load neither torch nor Qt nor Flower. A :class:`~bci.errors.BCIError` reaches the user
as one line, ``bci COMMAND: error: …``, with exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from bci.cli import devices, federated, inspect, protocol, scope, session, training
from bci.errors import BCIError
from bci.lslconfig import configure_lsl

#: Command groups, in the order ``bci --help`` lists their commands.
GROUPS = (session, training, inspect, devices, protocol, scope, federated)


def build_parser() -> argparse.ArgumentParser:
    """The ``bci`` parser with every subcommand and option."""
    parser = argparse.ArgumentParser(prog="bci", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lsl-scope", choices=("machine", "network"), default="machine",
                        help="LSL resolve scope (default: this machine only)")
    # its own dest: `bci fl simulate --verbose` (Flower's logs) is another option
    parser.add_argument("-v", "--verbose", dest="log_verbose", action="store_true",
                        help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bci`` with ``argv`` (default: the command line); return the exit status."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO if args.log_verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    configure_lsl(args.lsl_scope)
    try:
        return args.func(args)
    except BCIError as err:
        print(f"bci {args.command}: error: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"bci {args.command}: error: {err.filename or err}: no such file", file=sys.stderr)
        return 2
