"""Ctrl-C and SIGTERM, the same way in every ``bci`` command.

:func:`installed` (around every :func:`bci.cli.main`) makes SIGINT and SIGTERM raise
:class:`KeyboardInterrupt` in the main thread, so a command unwinds through its
``finally`` blocks (files flushed and closed) wherever it is; blocking waits that
C code would hold for long (LSL resolves) are cut into short slices so this happens
within a fraction of a second. A command whose loop ends cleanly on its own when told
(a live session printing its summary, a recorder writing its footers) wraps that
loop in :func:`on_signal`: there a signal calls the given function instead of raising.
A second signal always raises. Either way :func:`interrupted` tells ``main`` to exit
with status 130.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_INTERRUPTED = 130

_received: list[int] = []
_callbacks: list[Callable[[], object]] = []


def _handler(signum: int, _frame: object) -> None:
    first = not _received
    _received.append(signum)
    if first and _callbacks:
        _callbacks[-1]()
        return
    raise KeyboardInterrupt


def _during_startup(signum: int, _frame: object) -> None:
    # nothing is open yet: end at once, quietly, the way an interrupted command ends
    print(f"bci: interrupted by {signal.Signals(signum).name}", file=sys.stderr, flush=True)
    os._exit(EXIT_INTERRUPTED)


def install_early() -> None:
    """Exit 130 on SIGINT/SIGTERM while ``bci`` imports (a couple of seconds)."""
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _during_startup)


@contextmanager
def installed() -> Iterator[None]:
    """Route SIGINT and SIGTERM through this module (main thread only) within the block;
    the previous handlers come back after it (``main`` may run inside another program)."""
    _received.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            # the start-up handler only covers imports: plain defaults after a run
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT
                          and handler is _during_startup else
                          signal.SIG_DFL if handler is _during_startup else handler)


def interrupted() -> str | None:
    """The name of the first signal received (``"SIGINT"``), or ``None``."""
    return signal.Signals(_received[0]).name if _received else None


@contextmanager
def on_signal(callback: Callable[[], object]) -> Iterator[None]:
    """Within the block, the first SIGINT/SIGTERM calls ``callback`` instead of raising.

    A signal that arrived before the block is honoured at once.
    """
    _callbacks.append(callback)
    try:
        if _received:
            callback()
        yield
    finally:
        _callbacks.remove(callback)
