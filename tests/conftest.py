"""Test setup shared by every test module.

LSL runs with the packaged loopback-only configuration (no packet leaves the machine),
Qt renders offscreen, and the real recordings are found through ``BCI_DATA``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from bci.lslconfig import LSL_CONFIG

os.environ["LSLAPICFG"] = str(LSL_CONFIG)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("BCI_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real recordings (``BCI_DATA``, default ``../shared/data``)."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"real recordings not found at {DATA_DIR} (set BCI_DATA to the folder)")
    return DATA_DIR


@pytest.fixture
def unique_name() -> str:
    """A stream name no other test uses, so concurrent LSL tests never cross."""
    return f"bci-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module: the two cores are shared with other jobs, and
    one thread keeps results reproducible. Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
