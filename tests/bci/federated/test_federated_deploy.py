"""Federated deployment on loopback: a SuperLink with TLS and SuperNode authentication,
SuperNodes started by ``bci fl site``, the ServerApp submitted by ``bci fl server``.

Each Flower message runs in a fresh process that imports torch (seconds), and a killed
SuperNode is only declared unavailable after two missed 30 s heartbeats, so these tests
take minutes; every process they start is in its own process group and is killed at
the end, and the tests check that none survives.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

pytest.importorskip("flwr")
pytest.importorskip("torch")

pytestmark = pytest.mark.timeout(900)

SITES = {"s8": (8, 128.0, 1), "s22": (22, 250.0, 2), "s64": (64, 160.0, 3)}


def _bci(*args: str) -> list[str]:
    return [sys.executable, "-m", "bci", *args]


def _env() -> dict[str, str]:
    from bci.federated import QUIET_ENV

    return {**os.environ, **QUIET_ENV, "OMP_NUM_THREADS": "1"}


def _site_file(tmp: Path, name: str, *, n_trials: int = 24) -> Path:
    ch, fs, seed = SITES.get(name, (8, 128.0, 9))
    path = tmp / "sites" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(f"""
        [site]
        name = "{name}"
        n_channels = {ch}
        sfreq = {fs}
        n_trials = {n_trials}
        seed = {seed}
        snr = 1.0
        test_fraction = 0.5
        workdir = "{tmp / ('site-' + name)}"
    """))
    return path


def _leftovers(tmp: Path) -> list[str]:
    """Processes still running whose command line or environment mentions ``tmp``."""
    me = os.getpid()
    out = []
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        if p.info["pid"] == me or p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        with contextlib.suppress(psutil.Error):
            text = " ".join(p.info["cmdline"] or [])
            env = p.environ()
            if str(tmp) in text or str(tmp) in env.get("FLWR_HOME", ""):
                out.append(f"{p.info['pid']}: {text[:120]}")
    return out


class Group:
    """Popen in new sessions; all groups killed on close."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, cmd: list[str], log: Path) -> subprocess.Popen:
        f = log.open("ab")
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=_env(),
                             stdin=subprocess.DEVNULL, start_new_session=True)
        f.close()
        self.procs[name] = p
        return p

    def kill(self, name: str) -> None:
        p = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)

    def close(self) -> None:
        for p in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
        for p in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


def _wait_for(pred, timeout: float, what: str, *, procs: dict | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        for name, p in (procs or {}).items():
            if p.poll() is not None:
                raise AssertionError(f"{name} exited with {p.returncode} while waiting "
                                     f"for {what}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _events(site_dir: Path) -> list[dict]:
    path = site_dir / "access.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_insecure_needs_an_explicit_flag(tmp_path: Path) -> None:
    fed = tmp_path / "fed.toml"
    fed.write_text("[federation]\nrounds = 1\n")
    res = subprocess.run(_bci("fl", "server", str(fed)), capture_output=True, text=True,
                         env=_env(), timeout=120)
    assert res.returncode != 0 and "--insecure" in res.stderr
    res = subprocess.run(_bci("fl", "site", "--data", str(_site_file(tmp_path, "s8"))),
                         capture_output=True, text=True, env=_env(), timeout=120)
    assert res.returncode != 0 and "--ca" in res.stderr


@pytest.mark.slow
def test_unregistered_site_is_refused(tmp_path: Path) -> None:
    from bci.federated.certs import make_certs, make_site_key
    from bci.federated.deployment import (
        Tls,
        online_nodes,
        register_sites,
        start_supernode,
        superlink,
    )

    certs = make_certs(tmp_path / "certs", sites=["s8"])
    rogue_key, _ = make_site_key(tmp_path / "rogue-keys", "rogue")
    tls = Tls(certs.ca_cert, certs.server_cert, certs.server_key)
    run_dir = tmp_path / "server"
    with superlink(run_dir, tls=tls) as (procs, address):
        names = register_sites(run_dir, certs.key_list)
        rogue = start_supernode(procs, name="rogue", superlink=address,
                                site_file=_site_file(tmp_path, "rogue"), site_name=None,
                                workdir=tmp_path / "site-rogue", ca=certs.ca_cert,
                                key=rogue_key)
        good = start_supernode(procs, name="s8", superlink=address,
                               site_file=_site_file(tmp_path, "s8"), site_name=None,
                               workdir=tmp_path / "site-s8", ca=certs.ca_cert,
                               key=certs.sites["s8"][0])
        # Flower's telemetry and update checks are off; nothing listens beyond loopback
        link = psutil.Process(procs.procs["superlink"].pid)
        env = link.environ()
        assert env["FLWR_TELEMETRY_ENABLED"] == "0" and env["FLWR_DISABLE_UPDATE_CHECK"] == "1"
        _wait_for(lambda: online_nodes(run_dir) == set(names), 60,
                  "the registered site online")
        ours = set()
        for popen in procs.procs.values():
            with contextlib.suppress(psutil.Error):
                top = psutil.Process(popen.pid)
                ours |= {q.pid for q in (top, *top.children(recursive=True))}
        listening = [c.laddr for c in psutil.net_connections("inet")
                     if c.status == psutil.CONN_LISTEN and c.pid in ours]
        assert listening and all(a.ip == "127.0.0.1" for a in listening), listening
        assert rogue.wait(timeout=120) != 0
        assert good.poll() is None and online_nodes(run_dir) == set(names)
        link_log = (run_dir / "superlink.log").read_text()
        assert "No SuperNode found with the given public key" in link_log
        assert "activate-node HTTP/1.1\" 412" in link_log
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_deployment_survives_a_killed_site(tmp_path: Path) -> None:
    from bci.decoder import OnnxDecoder
    from bci.federated.config import load_site
    from bci.federated.deployment import free_port
    from bci.federated.sites import load_site_data

    certs = tmp_path / "certs"
    subprocess.run(_bci("fl", "certs", str(certs), *[a for s in SITES for a in ("--site", s)]),
                   check=True, env=_env(), timeout=120, capture_output=True)
    fed = tmp_path / "fed.toml"
    fed.write_text(textwrap.dedent("""
        [federation]
        rounds = 2
        local_epochs = 2
        min_sites = 2
        round_timeout = 45.0
        baseline = false
        workdir = "work"
    """))
    port = free_port()
    run_dir = tmp_path / "server"
    group = Group()
    t0 = time.monotonic()
    try:
        server = group.start("server", _bci(
            "fl", "server", str(fed), "--certs", str(certs), "--port", str(port),
            "--run-dir", str(run_dir), "--wait", "120", "--json"), tmp_path / "server.out")
        _wait_for(lambda: (run_dir / "superlink.json").exists(), 120, "the SuperLink",
                  procs={"server": server})
        for name in SITES:
            group.start(name, _bci(
                "fl", "site", "--data", str(_site_file(tmp_path, name)), "--superlink",
                f"127.0.0.1:{port}", "--ca", str(certs / "ca.crt"),
                "--key", str(certs / "sites" / f"{name}.key")), tmp_path / f"{name}.out")
        victim = tmp_path / "site-s64"
        _wait_for(lambda: any(e["event"] == "evaluate" and e["round"] == 1
                              for e in _events(victim)), 400, "round 1 at s64",
                  procs=group.procs)
        killed_at = time.monotonic() - t0
        group.kill("s64")  # the machine of one site goes down in the middle of the run
        server.wait(timeout=500)
        wall = time.monotonic() - t0
        out = (tmp_path / "server.out").read_text()
        assert server.returncode == 0, out[-3000:]
        summary = json.loads(out.strip().splitlines()[-1])
    finally:
        group.close()
    assert _leftovers(tmp_path) == []

    assert summary["secure"] is True and summary["global_finite"] is True
    log = summary["round_log"]
    assert [r["round"] for r in log] == [1, 2]
    assert sorted(log[0]["accepted"]) == ["s22", "s64", "s8"]
    assert sorted(log[1]["accepted"]) == ["s22", "s8"] and log[1]["aggregated"]
    print(json.dumps({"round_seconds": summary["round_seconds"], "killed_at": killed_at,
                      "wall": wall}))
    for name in ("s8", "s22"):
        site = load_site(_site_file(tmp_path, name))
        model = Path(summary["sites"][name]["model"])
        assert model == site.workdir / f"{name}.onnx" and model.is_file()
        decoder = OnnxDecoder(model)
        _, test = load_site_data(site)
        probs = np.stack([decoder.run(x) for x in test.X])
        assert probs.shape == (len(test), 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
        # site layers stay on the site's disk
        assert (site.workdir / "site_layers.pt").is_file()
    assert not (tmp_path / "site-s64" / "s64.onnx").exists()
