"""How the core finds plug-ins without importing them: one registry per kind of plug-in.

The core (pipeline, runner, session) asks a registry for a decoder by name or a source
by kind; it never imports :mod:`bci.decoders`, :mod:`bci.devices` or
:mod:`bci.datasets`. Plug-in packages declare what they provide in a *catalog* module
that calls :meth:`Registry.register`; the catalogs are found through the entry-point
group ``bci.plugins`` (so a third-party package can add decoders and sources by
declaring its own catalog), and the built-in catalogs are always loaded, so a source
checkout without installed metadata works too.

Entries are registered with a ``"module:attribute"`` target and loaded on first use:
registering costs no import of torch, Qt or Flower.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from bci.errors import ConfigError

log = logging.getLogger(__name__)

#: Catalog modules of the built-in plug-ins (also declared as ``bci.plugins`` entry
#: points in pyproject.toml); each registers its entries when imported.
BUILTIN_CATALOGS = ("bci.decoders.catalog", "bci.devices.catalog")

_loaded = False
_lock = threading.RLock()


def load_plugins() -> None:
    """Import every plug-in catalog once (built-in ones, then entry points)."""
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        names = list(BUILTIN_CATALOGS)
        for ep in entry_points(group="bci.plugins"):
            if ep.value not in names:
                names.append(ep.value)
        for name in names:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as err:
                if err.name is not None and name.startswith(err.name):
                    log.debug("plug-in catalog %s not found", name)
                    continue
                raise


def resolve(target: str) -> Any:
    """The object named by ``"package.module:attribute"``."""
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Entry:
    """One plug-in: its name, where its implementation lives, and what it declares.

    Attributes
    ----------
    name : str
        The name users write (``--decoder fbcca``, ``kind = "lsl"``).
    target : str
        ``"module:attribute"`` of the implementation, imported on first :meth:`load`.
    meta : dict
        What the registry's users need to know without importing it (paradigm,
        whether it trains, whether it exports to ONNX, a one-line help …).
    """

    name: str
    target: str
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        return resolve(self.target)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.meta[key]
        except KeyError:
            raise AttributeError(key) from None


class Registry:
    """Named plug-ins of one kind (``"decoder"``, ``"source"`` …).

    Parameters
    ----------
    kind : str
        What the entries are, for messages (``"decoder"`` → "unknown decoder 'x'").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target: str, **meta: Any) -> Entry:
        """Declare a plug-in; a second registration of one name is an error."""
        if ":" not in target:
            raise ValueError(f"{self.kind} {name!r}: target must be 'module:attribute', "
                             f"found {target!r}")
        with _lock:
            if name in self._entries and self._entries[name].target != target:
                raise ValueError(f"{self.kind} {name!r} is registered twice: "
                                 f"{self._entries[name].target} and {target}")
            entry = Entry(name, target, dict(meta))
            self._entries[name] = entry
        return entry

    def get(self, name: str, *, where: str | None = None) -> Entry:
        """The entry called ``name``; :class:`ConfigError` naming the known ones if none."""
        load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            prefix = f"{where}: " if where else ""
            raise ConfigError(
                f"{prefix}unknown {self.kind} {name!r}; expected one of "
                f"{', '.join(sorted(self._entries)) or '(none registered)'}"
            ) from None

    def names(self, **meta: Any) -> list[str]:
        """Registered names, in registration order, whose meta match ``meta``."""
        load_plugins()
        return [e.name for e in self._entries.values()
                if all(e.meta.get(k) == v for k, v in meta.items())]

    def __iter__(self) -> Iterator[Entry]:
        load_plugins()
        return iter(list(self._entries.values()))

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries


#: Decoders by name (``bci train --decoder``, ``[decoder] kind``).
decoders = Registry("decoder")
#: Data sources by kind (``[source] kind``): LSL inlets, recordings, simulators, SDKs.
sources = Registry("source")
#: Decision and recording sinks by kind (``[outputs]``).
sinks = Registry("sink")
#: Online adaptation of a served decoder (``[decoder] adapt = true``), by name.
adapters = Registry("adapter")
