"""Layers that point one way, and no import circle.

Every module of the ``bci`` namespace imports on its own, first, in an interpreter where
no other ``bci`` module is loaded yet: an import circle shows there as a
partially-initialised module. The layer contracts of pyproject.toml hold
(``lint-imports``, through ``.ci/lint_imports.py``), and every top-level module of the
namespace is placed in one of their layers.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: The sub-packages installed from their own folders (pyproject's package-dir).
MAPPED = ("bci.devices", "bci.decoders", "bci.protocols")
#: Third-party packages that only the optional extras ([train], [gui], [federated]) bring.
OPTIONAL = {"torch", "onnxscript", "PySide6", "pyqtgraph", "flwr", "ray", "pyriemann",
            "mne_bids", "cryptography", "dp_accounting"}
#: Loaded once by the driver before it forks a child per module: third-party only, so
#: each child still imports every bci module itself, in the order its target asks.
PRELOAD = ("numpy", "scipy.signal", "sklearn", "mne", "onnx", "onnxruntime", "pylsl",
           "pyxdf", "torch")

# The driver runs in a fresh interpreter outside the checkout. For each module it forks
# a child that imports that one module and reports, through a pipe, "ok", "optional:
# <missing package>" or the traceback, and the exception classes the module defines
# outside BCIError.
DRIVER = r"""
import importlib, json, os, sys, traceback

modules, preload, optional = json.loads(sys.stdin.read())
for name in preload:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
assert not any(m == "bci" or m.startswith("bci.") for m in sys.modules), "bci preloaded"
results = {}
for name in modules:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        foreign = []
        try:
            module = importlib.import_module(name)
            out = "ok"
            from bci.errors import BCIError
            foreign = [k for k, v in vars(module).items()
                       if isinstance(v, type) and issubclass(v, BaseException)
                       and v.__module__ == name and not issubclass(v, BCIError)]
        except ModuleNotFoundError as err:
            top = (err.name or "").split(".")[0]
            out = f"optional: {err.name}" if top in optional else traceback.format_exc()
        except BaseException:
            out = traceback.format_exc()
        os.write(write, json.dumps([out, foreign]).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    report = b"".join(chunks).decode()
    results[name] = json.loads(report) if report else ["no report (the child died)", []]
print(json.dumps(results))
"""


def _all_modules() -> list[str]:
    """Every module of the namespace, as installed (the mapped sub-packages included)."""
    names: set[str] = {"bci"}
    for package in ("bci", *MAPPED):
        pkg = importlib.import_module(package)
        names.add(package)
        names.update(m.name for m in pkgutil.walk_packages(pkg.__path__, f"{package}."))
    # importing __main__ runs the command
    return sorted(n for n in names if not n.endswith(".__main__"))


MODULES = _all_modules()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def first_imports(tmp_path_factory) -> dict[str, list]:
    """``[result, error classes outside BCIError]`` of importing each module first in a
    clean interpreter, by module name."""
    if not hasattr(os, "fork"):
        pytest.skip("the import driver forks a child per module (POSIX only)")
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER], input=json.dumps([MODULES, PRELOAD, sorted(OPTIONAL)]),
        capture_output=True, text=True, cwd=tmp_path_factory.mktemp("outside"),
        env=_clean_env(), timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.slow
def test_module_imports_first_without_a_circle(first_imports, module):
    result = first_imports[module][0]
    if result.startswith("optional: "):
        pytest.skip(f"{module} needs {result.removeprefix('optional: ')}, from an optional "
                    "extra that is not installed")
    assert result == "ok", f"importing {module} first fails:\n{result}"


@pytest.mark.slow
def test_every_error_class_derives_from_bcierror(first_imports):
    """A user-facing error reaches the user as one line only if it is a BCIError."""
    foreign = {m: classes for m, (_, classes) in first_imports.items() if classes}
    assert not foreign, f"exception classes outside bci.errors.BCIError: {foreign}"
    assert first_imports["bci.errors"][0] == "ok"


def test_the_walk_sees_the_mapped_packages_and_the_core():
    assert {"bci.devices.lsl_source", "bci.decoders.catalog", "bci.protocols.base",
            "bci.datasets.meg", "bci.config", "bci.pipeline"} <= set(MODULES)


def test_one_namespace_and_no_top_level_plugin_packages(tmp_path):
    code = ("import importlib.util, bci.devices, bci.decoders, bci.protocols\n"
            "print([t for t in ('devices', 'decoders', 'protocols') "
            "if importlib.util.find_spec(t) is not None])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, env=_clean_env(), timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def _contracts() -> list[dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return config["tool"]["importlinter"]["contracts"]


def test_every_top_level_module_has_a_layer():
    """A new module of bci/ must be named in the contracts, as core, plug-in or app."""
    by_id = {c["id"]: c for c in _contracts()}
    core = set(by_id["core"]["source_modules"])
    plugins = set(by_id["plugins"]["source_modules"])
    apps = set(by_id["plugins"]["forbidden_modules"])
    assert set(by_id["core"]["forbidden_modules"]) == plugins | apps
    assert not (core & plugins or core & apps or plugins & apps)
    top = {".".join(m.split(".")[:2]) for m in MODULES if m != "bci"}
    unplaced = sorted(top - core - plugins - apps)
    assert not unplaced, (f"{unplaced}: expected in the core list of pyproject's "
                          "[tool.importlinter] contracts, or among the plug-ins or apps")


def test_layer_contracts_hold():
    if importlib.util.find_spec("importlinter") is None or shutil.which(
            "lint-imports", path=f"{Path(sys.executable).parent}{os.pathsep}"
                                 f"{os.environ.get('PATH', '')}") is None:
        pytest.skip("import-linter is not installed (pip install 'bci-runtime[test]')")
    proc = subprocess.run([sys.executable, str(REPO / ".ci" / "lint_imports.py"), "--no-logo"],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout and "KEPT" in proc.stdout
