"""Checks on the files a command is asked to write, before any work is done."""

from __future__ import annotations

import errno
from pathlib import Path

from bci.errors import ConfigError


def check_output(path: str | Path, *, option: str = "output") -> Path:
    """Fail early, in one line, when ``path`` cannot be created where it is asked for.

    Raises
    ------
    ConfigError
        When a parent of ``path`` is a regular file, or ``path`` is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} {path}: expected a file name, found a folder")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {path}: expected its parent {parent} to be a "
                                  "folder, found a regular file")
            break
    return path


def describe_os_error(err: OSError, path: str | Path | None = None) -> str:
    """One line naming the file, what was expected and what was found."""
    path = err.filename if err.filename is not None else path
    name = errno.errorcode.get(err.errno or 0)
    if path is None:
        return str(err)
    if err.errno == errno.ENOENT:
        return f"{path}: expected an existing file, found nothing there"
    if err.errno == errno.ENOTDIR:
        parent = next((p for p in Path(path).parents if p.exists()), None)
        found = (f"{parent} is a regular file" if parent is not None and not parent.is_dir()
                 else "a parent is not a folder")
        return f"{path}: expected its parent to be a folder, found {found}"
    if err.errno == errno.EISDIR:
        return f"{path}: expected a file, found a folder"
    return f"{path}: {err.strerror or err}" + (f" ({name})" if name else "")
