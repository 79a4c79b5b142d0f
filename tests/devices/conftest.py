"""Fixtures for every device test module."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _quiet_pyxdf():
    # pyxdf logs every truncated chunk it skips, with a traceback
    logger = logging.getLogger("pyxdf")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)
