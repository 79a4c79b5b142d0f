"""Run import-linter (``lint-imports``) on the ``bci`` namespace as it is installed.

import-linter reads a package from the one folder Python finds it in, but ``bci.devices``,
``bci.decoders`` and ``bci.protocols`` live in ``devices/``, ``decoders/`` and
``protocols/`` (``package-dir`` in pyproject.toml), so linting the checkout directly would
leave them out of the graph and every contract about them would pass unchecked. This
script lints a view of the installed layout instead: a temporary ``bci/`` whose entries
are symbolic links to the checkout's files and folders, with each mapped sub-package
linked in at its place. Arguments are passed on to ``lint-imports``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build_view(root: Path) -> Path:
    """Lay out the namespace under ``root`` as setuptools installs it; returns ``root``."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    package_dir: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    # parents before children: "bci" is filled before "bci.devices" is linked into it
    for name, folder in sorted(package_dir.items(), key=lambda item: item[0].count(".")):
        target = root.joinpath(*name.split("."))
        source = REPO / folder
        if "." in name:
            target.symlink_to(source, target_is_directory=True)
            continue
        target.mkdir(parents=True)
        for entry in source.iterdir():
            if entry.name != "__pycache__" and f"{name}.{entry.name}" not in package_dir:
                (target / entry.name).symlink_to(entry)
    return root


def main(argv: list[str]) -> int:
    exe = shutil.which("lint-imports", path=os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if exe is None:
        print("lint_imports: lint-imports not found; pip install import-linter",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bci-lint-imports-") as tmp:
        view = build_view(Path(tmp))
        # import-linter puts its working directory first on sys.path: the view's bci wins
        return subprocess.run([exe, "--no-cache", str(REPO / "pyproject.toml"), *argv],
                              cwd=view, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
