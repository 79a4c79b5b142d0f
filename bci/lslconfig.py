"""Where liblsl reads its configuration, decided before pylsl is first used.

liblsl reads ``LSLAPICFG`` once, when the library initialises its configuration, so
every module of this project that needs LSL imports it through :func:`get_pylsl`, which
points liblsl at the packaged loopback-only configuration unless the user chose
otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Literal

LSL_CONFIG = Path(__file__).with_name("lsl_api.cfg")
"""The packaged configuration: ``ResolveScope = machine``, loopback peers, no IPv6.

liblsl's parser takes no comment lines, so the file holds only its settings."""

Scope = Literal["machine", "network"]
_scope: Scope | None = None


def configure_lsl(scope: Scope = "machine") -> None:
    """Choose the LSL resolve scope before liblsl starts.

    Parameters
    ----------
    scope : "machine" | "network"
        ``"machine"`` (default) keeps every LSL packet on loopback by pointing
        ``LSLAPICFG`` at the packaged configuration, unless ``LSLAPICFG`` already names a
        file (a lab's own configuration wins). ``"network"`` removes the packaged file
        from ``LSLAPICFG`` so liblsl falls back to its normal lookup (lab-wide
        multicast), for amplifiers on other hosts.
    """
    global _scope
    if scope not in ("machine", "network"):
        raise ValueError(f"LSL scope must be 'machine' or 'network', found {scope!r}")
    if scope == "machine":
        os.environ.setdefault("LSLAPICFG", str(LSL_CONFIG))
    elif os.environ.get("LSLAPICFG") == str(LSL_CONFIG):
        del os.environ["LSLAPICFG"]
    _scope = scope


def get_pylsl() -> ModuleType:
    """Import pylsl after the LSL configuration has been chosen (default: machine)."""
    if _scope is None:
        configure_lsl("machine")
    import pylsl

    return pylsl
