"""Driving Qt's event loop from a test."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(app: Any, cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Process ``app``'s events until ``cond()`` holds or ``timeout`` seconds pass; the
    final ``cond()``."""
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.0005)
    return cond()
