"""Progress on stderr for work that takes longer than a couple of seconds.

Shown only on a terminal and without ``--quiet``: piped or logged output stays exactly
the command's results. Bars appear after :data:`DELAY` seconds, so quick work shows
nothing at all.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tqdm import tqdm

#: Seconds of work before a bar appears.
DELAY = 2.0

_quiet = [False]


def configure(*, quiet: bool) -> None:
    """Turn progress display off (``--quiet``) or back on."""
    _quiet[0] = bool(quiet)


def enabled() -> bool:
    """Whether bars are drawn: not ``--quiet`` and stderr is a terminal."""
    return not _quiet[0] and sys.stderr.isatty()


def bar(description: str, *, total: float | None = None, unit: str = "it") -> tqdm:
    """A tqdm bar on stderr (a silent one when progress is off); close it when done."""
    from tqdm import tqdm  # only where a bar is made: `bci run` off a terminal needs none

    return tqdm(desc=description, total=total, unit=unit, delay=DELAY, file=sys.stderr,
                disable=not enabled(), leave=False)


class _Newest(logging.Handler):
    """Shows the newest record of a logger (a training's epoch) after the bar."""

    def __init__(self, progress: tqdm) -> None:
        super().__init__(logging.INFO)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.progress.set_postfix_str(record.getMessage(), refresh=False)


@contextmanager
def _following(name: str | None, progress: tqdm) -> Iterator[None]:
    """Within the block, INFO records of logger ``name`` go to ``progress`` (and, unless
    the root logger shows INFO anyway, nowhere else)."""
    if name is None:
        yield
        return
    logger, handler = logging.getLogger(name), _Newest(progress)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)
        logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@contextmanager
def waiting(description: str, *, timeout: float | None = None,
            follow: str | None = None) -> Iterator[threading.Event]:
    """Seconds spent waiting, counted up while the block runs (a resolve, a training).

    Yields an event; set it to end the display before the block ends (e.g. once the
    streams are found and the session starts printing). ``follow`` names a logger whose
    newest INFO record is shown beside the seconds (``"bci.decoders"``: each epoch of a
    deep model's training).
    """
    done = threading.Event()
    if not enabled():
        yield done
        return
    progress = bar(description, total=timeout, unit="s")
    progress.bar_format = ("{desc}: {n:.0f} s" + (" of {total:.0f} s" if timeout else "")
                           + " …{postfix}")
    start = time.monotonic()

    def tick() -> None:
        while not done.wait(0.25):
            progress.update(time.monotonic() - start - progress.n)

    thread = threading.Thread(target=tick, name="bci-progress", daemon=True)
    thread.start()
    try:
        with _following(follow, progress):
            yield done
    finally:
        done.set()
        thread.join()
        progress.close()
