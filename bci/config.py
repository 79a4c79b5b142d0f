"""Checks of configuration files (TOML): the one set used by sessions, protocols and federations.

Every check raises :class:`~bci.errors.ConfigError` with a message that names the key
(``table.key``, ``site[0].name``), what was expected and what was found; the loaders of
each kind of file prefix it with the file's path. Two styles are offered:

- key by key, :func:`check` (type, choice, range, list items) and :func:`no_unknown`
  (unknown keys, with the allowed ones listed), for files whose keys need more than a
  type (sessions, federations);
- by example, :func:`validate`: a nested table of defaults is the schema, each value
  must have its default's type (protocols).

Examples
--------
>>> table = {"length": 1, "mode": "sliding"}
>>> check(table, "length", float, "window", above=0)
1.0
>>> check(table, "mode", str, "window", choices=("sliding", "epoch"))
'sliding'
>>> check(table, "step", float, "window", 0.1)
0.1
"""

from __future__ import annotations

import copy
import difflib
import math
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from bci.errors import ConfigError

#: ``default`` of :func:`check` for a key that must be present.
REQUIRED: Any = ...

_NAMES = {
    str: ("a string", "strings"),
    float: ("a number", "numbers"),
    int: ("an integer", "integers"),
    bool: ("true or false", "booleans"),
    list: ("a list", "lists"),
    dict: ("a table", "tables"),
}


def type_name(types: type | tuple[type, ...], *, plural: bool = False) -> str:
    """How a message names a TOML type: ``float`` → "a number" (``plural``: "numbers")."""
    if not isinstance(types, tuple):
        types = (types,)
    return " or ".join(_NAMES[t][plural] if t in _NAMES else t.__name__ for t in types)


def key_name(where: str, key: str | int) -> str:
    """``where.key`` (``where[i]`` for a list index; ``key`` alone at the top level)."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else str(key)


def _typed(value: Any, types: tuple[type, ...]) -> tuple[bool, Any]:
    """Whether ``value`` is one of ``types`` (TOML's view), and the value to keep."""
    if isinstance(value, bool):  # bool is an int to Python, never a number in a file
        return bool in types, value
    if isinstance(value, int) and float in types and int not in types:
        value = float(value)
    if isinstance(value, float) and float in types:
        return math.isfinite(value), value
    return isinstance(value, types), value


def _bounds(noun: str, above: float | None, at_least: float | None, below: float | None,
            at_most: float | None) -> str:
    if above == 0 and at_least is None and below is None and at_most is None:
        return f"a positive {noun.split(' ', 1)[-1]}"
    parts = [f"{op} {bound:g}" for op, bound in
             (("≥", at_least), (">", above), ("≤", at_most), ("<", below)) if bound is not None]
    return f"{noun} {' and '.join(parts)}"


def check_range(value: float, name: str, *, above: float | None = None,
                at_least: float | None = None, below: float | None = None,
                at_most: float | None = None) -> float:
    """``value`` if it lies within the bounds given, else :class:`ConfigError` naming them.

    ``above``/``below`` exclude the bound, ``at_least``/``at_most`` include it; NaN is
    outside any bound.
    """
    if ((above is not None and not value > above)
            or (at_least is not None and not value >= at_least)
            or (below is not None and not value < below)
            or (at_most is not None and not value <= at_most)):
        noun = "an integer" if isinstance(value, int) else "a number"
        raise ConfigError(f"{name}: expected {_bounds(noun, above, at_least, below, at_most)}, "
                          f"found {value!r}")
    return value


def check(table: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str,
          default: Any = REQUIRED, *, choices: Collection[Any] | None = None,
          items: type | tuple[type, ...] | None = None, min_items: int = 0,
          above: float | None = None, at_least: float | None = None,
          below: float | None = None, at_most: float | None = None) -> Any:
    """The value of ``table[key]``, checked; ``default`` (unchecked) when the key is absent.

    Parameters
    ----------
    table : mapping
        A TOML table.
    key : str
    types : type or tuple of types
        ``str``, ``int``, ``float`` (an integer is accepted and converted; NaN and
        infinities are not), ``bool`` (never accepted as a number), ``list``, ``dict``.
    where : str
        The table's name in messages (``"window"``, ``"site[0]"``; ``""`` at the top).
    default : object
        Returned when the key is absent; :data:`REQUIRED` (the default) makes it an error.
    choices : collection | None
        The allowed values.
    items : type or tuple of types | None
        For a list, the type of every item (numbers converted as above).
    min_items : int
        For a list, the fewest items allowed.
    above, at_least, below, at_most : float | None
        Bounds of a number (see :func:`check_range`).

    Raises
    ------
    ConfigError
        Naming ``where.key``, what was expected and what was found.
    """
    name = key_name(where, key)
    want = types if isinstance(types, tuple) else (types,)
    if key not in table:
        if default is REQUIRED:
            raise ConfigError(f"{name}: required, expected {type_name(want)}, found nothing")
        return default
    ok, value = _typed(table[key], want)
    if not ok:
        raise ConfigError(f"{name}: expected {type_name(want)}, found {table[key]!r}")
    if choices is not None and value not in choices:
        raise ConfigError(f"{name}: expected one of {list(choices)}, found {value!r}")
    if isinstance(value, list) and (items is not None or min_items):
        value = _check_items(value, name, items, min_items)
    if isinstance(value, int | float) and not isinstance(value, bool):
        check_range(value, name, above=above, at_least=at_least, below=below, at_most=at_most)
    return value


def _check_items(value: list, name: str, items: type | tuple[type, ...] | None,
                 min_items: int) -> list:
    want = () if items is None else items if isinstance(items, tuple) else (items,)
    out = []
    for item in value:
        ok, item = _typed(item, want) if want else (True, item)
        if not ok:
            break
        out.append(item)
    if len(out) != len(value) or len(out) < min_items:
        what = "a list" if items is None else f"a list of {type_name(items, plural=True)}"
        if min_items:
            what += f" with at least {min_items} item{'s' if min_items > 1 else ''}"
        raise ConfigError(f"{name}: expected {what}, found {value!r}")
    return out


def no_unknown(table: Mapping[str, Any], known: Collection[str], where: str) -> None:
    """:class:`ConfigError` naming the keys of ``table`` that are not ``known``, and the
    known ones (with the closest known key when one is near: a typo)."""
    unknown = sorted(set(table) - set(known), key=str)
    if not unknown:
        return
    allowed = sorted(known)
    if len(unknown) == 1:
        close = difflib.get_close_matches(str(unknown[0]), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{key_name(where, unknown[0])}: unknown key{hint}; expected one "
                          f"of {allowed}")
    raise ConfigError(f"{where or 'top level'}: unknown keys {unknown}; expected keys "
                      f"among {allowed}")


def check_table(value: Any, name: str) -> dict:
    """``value`` if it is a table, else :class:`ConfigError` (``[name]`` expected)."""
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: expected a table [{name}], found {value!r}")
    return value


def load_toml(path: str | Path, *, what: str = "configuration file") -> dict:
    """The tables of the TOML file ``path``.

    Raises
    ------
    ConfigError
        The file does not exist, is not UTF-8, or is not valid TOML (the message names
        the file, and the line and column of the first error).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None


def _example_name(value: Any) -> str:
    kind = type(value)
    return type_name(kind) if kind in _NAMES else kind.__name__


def check_like(default: Any, value: Any, name: str) -> Any:
    """``value`` if it has the TOML type of ``default`` (an example), else ConfigError.

    An integer is accepted for a number (and converted); a list's items are checked
    against the first item of a non-empty default list.
    """
    kind = type(default)
    if kind not in _NAMES:  # the schema, not the file, is wrong
        raise TypeError(f"{name}: unsupported default {default!r}")
    ok, value_ = _typed(value, (kind,))
    if not ok:
        raise ConfigError(f"{name}: expected {_example_name(default)}, found {value!r}")
    if isinstance(default, list) and default:
        value_ = [check_like(default[0], v, key_name(name, i)) for i, v in enumerate(value_)]
    return value_


def validate(table: Mapping[str, Any], schema: Mapping[str, Any], where: str = "") -> dict:
    """``schema`` (nested defaults) updated with ``table``, every key and type checked.

    A default that is an empty table (``{}``) takes any table (e.g. decoder options); a
    non-empty one is a sub-schema, checked in turn.

    Raises
    ------
    ConfigError
        An unknown key (the known ones listed) or a value of another type than its
        default, named ``where.key``.
    """
    out = copy.deepcopy(dict(schema))
    no_unknown(table, schema, where)
    for key, value in table.items():
        name = key_name(where, key)
        default = schema[key]
        if isinstance(default, dict) and default:
            out[key] = validate(check_table(value, name), default, name)
        else:
            out[key] = check_like(default, value, name)
    return out
