"""The Qt application every GUI test module runs in (Qt renders offscreen)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def app():
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication([])
