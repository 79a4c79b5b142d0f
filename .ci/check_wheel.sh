#!/usr/bin/env bash
# The wheel, not the checkout: build it, install it into a fresh virtual environment,
# import every module from outside the source tree, check that no top-level
# devices/decoders/protocols package was installed, and run the demo briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python -m pip wheel -q --no-deps -w "$work/dist" . 2>&1 \
    | grep -v "BuildBackendWarning\|^ *$" || true
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
"$work/venv/bin/python" -m pip install -q "$work"/dist/*.whl

cd "$work"   # nothing of the checkout on sys.path
"$work/venv/bin/python" - <<'PY'
import importlib, importlib.util, pkgutil, sys
import bci, bci.devices, bci.decoders, bci.protocols  # noqa: E401
for top in ("devices", "decoders", "protocols"):
    assert importlib.util.find_spec(top) is None, f"a top-level {top!r} package is installed"
# optional extras ([train], [gui], [federated]) are not in this venv: modules that need
# them are reported, every other module must import on its own
OPTIONAL = {"torch", "onnxscript", "PySide6", "pyqtgraph", "flwr", "ray", "pyriemann",
            "mne_bids", "cryptography", "dp_accounting"}
ok, optional = 0, []
for mod in pkgutil.walk_packages(bci.__path__, "bci."):
    if mod.name.endswith(".__main__"):  # importing it runs the command
        continue
    try:
        importlib.import_module(mod.name)
        ok += 1
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in OPTIONAL:
            raise
        optional.append(f"{mod.name} (needs {err.name})")
print(f"wheel: {ok} modules import; {len(optional)} need an optional extra: "
      + ", ".join(optional))
PY
LSLAPICFG="$repo/bci/lsl_api.cfg" "$work/venv/bin/bci" demo --duration 5
