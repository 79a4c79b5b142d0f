"""Deployment: a Flower SuperLink with the ServerApp, and one SuperNode per site.

``bci fl server`` starts ``flower-superlink`` on 127.0.0.1 (another ``--host`` only when
asked) with TLS and SuperNode authentication, registers the sites' public keys
(``sites.json`` from ``bci fl certs``) through Flower's Control API, writes a Flower
App (a ``pyproject.toml`` naming ``bci.federated.server_app:app`` and
``bci.federated.client_app:app``) under its run folder, submits it with ``flwr run``
and waits for it to end. ``bci fl site`` starts ``flower-supernode`` with the site's
private key and the CA certificate, its node config naming the site file, so the
site's ClientApp reads only that site's files.

A SuperNode whose key is not registered is refused by the SuperLink. ``--insecure``
(no TLS, hence no authentication, as Flower requires TLS for it) exists only as an
explicit flag. Every process is started in its own process group and stopped with it
(:class:`Processes`); Flower's telemetry and update checks are off in all of them.

Flower runs each ClientApp message in a fresh process (it imports torch: seconds, not
milliseconds) and SuperNodes poll every 3 s when idle; a SuperNode that dies is
reported unavailable by the SuperLink after two missed 30 s heartbeats, or its round
ends at ``round_timeout``, whichever comes first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bci.errors import ConfigError, DeviceError
from bci.federated import QUIET_ENV
from bci.federated.certs import make_certs, read_key_list
from bci.federated.config import FederationConfig, load_site

if TYPE_CHECKING:
    import psutil

log = logging.getLogger("bci.federated")

CONNECTION = "bci"  # the name of the SuperLink connection in the Flower CLI's config


class DeploymentError(DeviceError):
    """A Flower process failed to start, or a run did not finish."""


def _exe(name: str) -> str:
    """A Flower executable from this interpreter's environment."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        raise DeploymentError(f"{name} not found; install Flower: pip install "
                              "'bci-runtime[federated]'")
    return found


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux prctl)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def flower_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a Flower process: quiet, with its own ``FLWR_HOME``."""
    env = dict(os.environ)
    env.update(QUIET_ENV)
    env["FLWR_HOME"] = str(home)
    env.update(extra)
    return env


@dataclass
class Processes:
    """Processes started in their own process groups, all stopped on exit.

    Use as a context manager; :meth:`stop` sends SIGTERM to each group, waits, then
    SIGKILL, so ClientApp and SuperExec children go with their parent.
    """

    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    groups: dict[str, bool] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    _files: list[IO] = field(default_factory=list)

    def start(self, name: str, cmd: Sequence[str], *, env: dict[str, str], log_path: Path,
              cwd: Path | None = None, new_group: bool = True) -> subprocess.Popen:
        """Start ``cmd``; ``new_group=False`` keeps it in the caller's process group.

        On Linux the process also gets SIGTERM when this process dies, even by SIGKILL,
        so a crashed ``bci fl server`` does not leave its SuperLink behind.
        """
        log_path.parent.mkdir(parents=True, exist_ok=True)
        f = log_path.open("ab")
        self._files.append(f)
        log.info("starting %s: %s", name, " ".join(cmd))
        p = subprocess.Popen(list(cmd), env=env, stdout=f, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=new_group,
                             preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        self.procs[name] = p
        self.groups[name] = new_group
        self.logs[name] = log_path
        return p

    def _signal_tree(self, name: str, sig: int) -> list[psutil.Process]:
        """Send ``sig`` to a process, its group (if its own) and all its descendants."""
        import psutil

        p = self.procs[name]
        try:
            tree = [psutil.Process(p.pid), *psutil.Process(p.pid).children(recursive=True)]
        except psutil.Error:
            tree = []
        if self.groups.get(name, True):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, sig)
        for q in tree:
            with contextlib.suppress(psutil.Error):
                q.send_signal(sig)
        return tree

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal one process and everything under it (SIGKILL: the machine went down)."""
        self._signal_tree(name, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.procs[name].wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every process tree, wait up to ``timeout``, then SIGKILL what is left."""
        import psutil

        trees = {n: self._signal_tree(n, signal.SIGTERM) for n, p in self.procs.items()
                 if p.poll() is None}
        deadline = time.monotonic() + timeout
        for p in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
        for tree in trees.values():
            _, alive = psutil.wait_procs(tree, timeout=max(0.1, deadline - time.monotonic()))
            for q in alive:
                with contextlib.suppress(psutil.Error):
                    q.kill()
        for name, p in self.procs.items():
            if p.poll() is None:
                self._signal_tree(name, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        for f in self._files:
            f.close()
        self._files.clear()

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_port(host: str, port: int, proc: subprocess.Popen, log_path: Path,
               timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DeploymentError(f"process exited with {proc.returncode} before listening "
                                  f"on {host}:{port}; see {log_path}:\n{_tail(log_path)}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise DeploymentError(f"nothing listening on {host}:{port} after {timeout:.0f} s; see "
                          f"{log_path}:\n{_tail(log_path)}")


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


@dataclass(frozen=True)
class Tls:
    """The SuperLink's TLS material (``bci fl certs`` output), or None when insecure."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def from_dir(cls, certs: str | Path) -> Tls:
        root = Path(certs)
        paths = {n: root / n for n in ("ca.crt", "server.crt", "server.key")}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise ConfigError(f"--certs {root}: expected ca.crt, server.crt and server.key "
                              f"(bci fl certs {root} --site …), missing {missing}")
        return cls(paths["ca.crt"].resolve(), paths["server.crt"].resolve(),
                   paths["server.key"].resolve())


def start_superlink(procs: Processes, *, run_dir: Path, tls: Tls | None,
                    host: str = "127.0.0.1", port: int | None = None,
                    timeout: float = 60.0) -> str:
    """Start ``flower-superlink`` (Fleet, Control and Runtime APIs on one port).

    Returns
    -------
    str
        ``host:port``.
    """
    port = free_port(host) if port is None else int(port)
    cmd = [_exe("flower-superlink"), "--host", host, "--port", str(port),
           "--disable-runtime-dependency-installation"]
    if tls is None:
        cmd.append("--insecure")
    else:
        cmd += ["--ssl-ca-certfile", str(tls.ca), "--ssl-certfile", str(tls.cert),
                "--ssl-keyfile", str(tls.key), "--enable-supernode-auth"]
    home = run_dir / "flwr-home"
    home.mkdir(parents=True, exist_ok=True)
    p = procs.start("superlink", cmd, env=flower_env(home), log_path=run_dir / "superlink.log")
    _wait_port(host, port, p, run_dir / "superlink.log", timeout)
    address = f"{host}:{port}"
    write_cli_config(home, address, tls=tls)
    return address


def write_cli_config(home: Path, address: str, *, tls: Tls | None) -> Path:
    """The Flower CLI's connection to this SuperLink, in ``FLWR_HOME/config.toml``."""
    lines = ["[superlink]", f'default = "{CONNECTION}"', "", f"[superlink.{CONNECTION}]",
             f'address = "{address}"']
    lines.append("insecure = true" if tls is None else f'root-certificates = "{tls.ca}"')
    path = home / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _flwr(home: Path, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    cmd = [_exe("flwr"), *args]
    res = subprocess.run(cmd, env=flower_env(home, COLUMNS="200"), capture_output=True,
                         text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise DeploymentError(f"{' '.join(cmd)} failed ({res.returncode}):\n"
                              f"{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return res


def _json_out(text: str) -> Any:
    """The JSON object in a Flower CLI output (which may print other lines first)."""
    start = text.find("{")
    if start < 0:
        raise DeploymentError(f"expected JSON from the Flower CLI, found:\n{text[-2000:]}")
    return json.loads(text[start:])


def register_sites(run_dir: Path, key_list: Path) -> dict[int, str]:
    """Register each site's public key with the SuperLink (authentication allow-list).

    Returns
    -------
    dict of int to str
        Node id → site name.
    """
    home = run_dir / "flwr-home"
    names: dict[int, str] = {}
    for name, pub in read_key_list(key_list).items():
        out = _json_out(_flwr(home, "supernode", "register", str(pub), CONNECTION,
                              "--name", name, "--format", "json").stdout)
        if not out.get("success"):
            raise DeploymentError(f"registering site {name} failed: {out}")
        names[int(out["node-id"])] = name
        log.info("registered site %s as node %s", name, out["node-id"])
    return names


def online_nodes(run_dir: Path) -> set[int]:
    """Node ids the SuperLink currently lists as online."""
    out = _json_out(_flwr(run_dir / "flwr-home", "supernode", "list", CONNECTION,
                          "--format", "json").stdout)
    return {int(n["node-id"]) for n in out.get("nodes", []) if n.get("status") == "online"}


def write_app(app_dir: Path, run_config: dict[str, Any]) -> Path:
    """A Flower App naming the installed bci apps, with this run's settings.

    The FAB carries only this ``pyproject.toml``: the ServerApp and ClientApp are
    imported from the installed ``bci`` package at the SuperLink and at every site.
    """
    app_dir.mkdir(parents=True, exist_ok=True)

    def value(v: Any) -> str:
        return json.dumps(v) if not isinstance(v, bool) else str(v).lower()

    config = "\n".join(f"{k} = {value(v)}" for k, v in run_config.items())
    text = f"""# Written by bci fl server for one run; Flower builds its FAB from this file.
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "bci-fleeg"
version = "1.0.0"
description = "FLEEG federated training of bci decoders"
license = "BSD-3-Clause"
dependencies = []

[tool.flwr.app]
publisher = "bci"

[tool.flwr.app.components]
serverapp = "bci.federated.server_app:app"
clientapp = "bci.federated.client_app:app"

[tool.flwr.app.config]
{config}
"""
    (app_dir / "pyproject.toml").write_text(text)
    return app_dir


def run_app(run_dir: Path, app_dir: Path, *, timeout: float, echo: bool = False) -> int:
    """Submit the app (``flwr run --stream``) and wait for the run to end.

    Returns
    -------
    int
        The Flower run id.
    """
    home = run_dir / "flwr-home"
    cmd = [_exe("flwr"), "run", str(app_dir), CONNECTION, "--stream"]
    log_path = run_dir / "run.log"
    found: dict[str, int] = {}

    def pump(stream: IO[str], f: IO[str]) -> None:
        # a reader thread, so that a silent, stuck run still meets the deadline below
        for line in stream:
            f.write(line)
            f.flush()
            if echo:
                sys.stderr.write(line)
            if "Successfully started run" in line:
                with contextlib.suppress(ValueError):
                    found["run_id"] = int(line.rsplit(" ", 1)[-1])

    with log_path.open("w") as f:
        p = subprocess.Popen(cmd, env=flower_env(home, COLUMNS="200"), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
                             start_new_session=True,
                             preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        assert p.stdout is not None
        reader = threading.Thread(target=pump, args=(p.stdout, f), daemon=True)
        reader.start()
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DeploymentError(f"the run did not end within {timeout:.0f} s; see "
                                  f"{log_path}") from None
        finally:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            reader.join(timeout=5)
    run_id = found.get("run_id", -1)
    if p.returncode != 0:
        raise DeploymentError(f"flwr run exited with {p.returncode}; see {log_path}:\n"
                              f"{_tail(log_path)}")
    return run_id


def start_supernode(procs: Processes, *, name: str, superlink: str, site_file: Path,
                    site_name: str | None, workdir: Path, ca: Path | None,
                    key: Path | None, insecure: bool = False, port: int | None = None,
                    new_group: bool = True) -> subprocess.Popen:
    """Start ``flower-supernode`` for one site (ClientApps run in its subprocesses).

    Parameters
    ----------
    superlink : str
        ``host:port`` of the SuperLink.
    site_file : Path
        The site file its ClientApp reads (node config ``site-config``).
    site_name : str | None
        Which ``[[site]]`` of that file (node config ``site-name``).
    workdir : Path
        The site's own folder (``FLWR_HOME`` under it: Flower installs the app there).
    ca, key : Path | None
        CA certificate (to trust the SuperLink) and the site's private key (to
        authenticate); both required unless ``insecure``.
    """
    cmd = [_exe("flower-supernode"), "--superlink", superlink, "--host", "127.0.0.1",
           "--port", str(free_port() if port is None else port), "--max-retries", "5"]
    if insecure:
        cmd.append("--insecure")
    else:
        if ca is None or key is None:
            raise ConfigError("bci fl site: expected --ca CA.crt and --key SITE.key (TLS and "
                              "SuperNode authentication), or --insecure")
        cmd += ["--root-certificates", str(ca), "--auth-supernode-private-key", str(key)]
    node_config = f'site-config="{Path(site_file).resolve()}"'
    if site_name:
        node_config += f' site-name="{site_name}"'
    cmd += ["--node-config", node_config]
    home = workdir / "flwr-home"
    home.mkdir(parents=True, exist_ok=True)
    return procs.start(f"site:{name}", cmd, env=flower_env(home),
                       log_path=workdir / "supernode.log", new_group=new_group)


def wait_for_sites(run_dir: Path, expected: set[int], *, minimum: int, timeout: float
                   ) -> set[int]:
    """Wait until all ``expected`` nodes are online (or ``minimum`` of them at timeout)."""
    deadline = time.monotonic() + timeout
    online: set[int] = set()
    while time.monotonic() < deadline:
        online = online_nodes(run_dir) & expected if expected else online_nodes(run_dir)
        # registered sites: wait for all of them; unregistered (insecure): for the minimum
        if (expected and online >= expected) or (not expected and len(online) >= minimum):
            return online
        time.sleep(1.0)
    if len(online) < minimum:
        raise DeploymentError(f"{len(online)} site(s) online after {timeout:.0f} s, "
                              f"{minimum} needed")
    return online


@contextlib.contextmanager
def superlink(run_dir: Path, *, tls: Tls | None, host: str = "127.0.0.1",
              port: int | None = None) -> Iterator[tuple[Processes, str]]:
    """A running SuperLink (and its process group), stopped on exit."""
    with Processes() as procs:
        address = start_superlink(procs, run_dir=run_dir, tls=tls, host=host, port=port)
        yield procs, address


def serve(config_path: Path, *, run_dir: Path, tls: Tls | None, key_list: Path | None,
          host: str = "127.0.0.1", port: int | None = None, wait_sites: float = 120.0,
          resume: bool = True, echo: bool = False) -> dict[str, Any]:
    """``bci fl server``: SuperLink, registration, the run, the summary.

    Parameters
    ----------
    config_path : Path
        The federation file (its ``[[site]]`` tables, if any, are not used here).
    run_dir : Path
        The server's folder: logs, the Flower App, ``result.json``, the global shared
        arrays (``resume`` continues from them).
    tls : Tls | None
        None only with an explicit ``--insecure``.
    key_list : Path | None
        ``sites.json``: the sites allowed to join (required with TLS).
    wait_sites : float
        Seconds to wait for every registered site to come online before starting; the
        run starts anyway once ``min_sites`` are online.
    """
    cfg = FederationConfig.load(config_path)
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    if tls is not None and key_list is None:
        raise ConfigError("bci fl server: expected the sites' public keys (--certs DIR with "
                          "sites.json), or --insecure")
    t0 = time.perf_counter()
    with superlink(run_dir, tls=tls, host=host, port=port) as (_procs, address):
        log.info("SuperLink on %s (%s)", address, "insecure" if tls is None else
                 "TLS, SuperNode authentication")
        names = register_sites(run_dir, key_list) if key_list is not None else {}
        n_sites = len(names) if names else max(len(cfg.sites), cfg.min_sites)
        (run_dir / "superlink.json").write_text(json.dumps(
            {"address": address, "nodes": {str(k): v for k, v in names.items()},
             "pid": os.getpid()}, indent=2) + "\n")
        online = wait_for_sites(run_dir, set(names), minimum=cfg.min_sites,
                                timeout=wait_sites)
        log.info("%d site(s) online: %s", len(online),
                 sorted(names.get(n, str(n)) for n in online))
        app_dir = write_app(run_dir / "app", {
            "config": str(Path(config_path).resolve()), "out-dir": str(run_dir),
            "n-sites": n_sites, "node-names": json.dumps({str(k): v for k, v in
                                                          names.items()}),
            "resume": resume})
        budget = cfg.round_timeout * (2 * cfg.rounds + (cfg.rounds if cfg.baseline else 0)
                                      + 2) + 120
        run_id = run_app(run_dir, app_dir, timeout=budget, echo=echo)
    result_path = run_dir / "result.json"
    if not result_path.is_file():
        raise DeploymentError(f"the run ended without {result_path}; see {run_dir}/run.log")
    summary = json.loads(result_path.read_text())
    summary.update(engine="deployment", run_id=run_id, superlink=address,
                   secure=tls is not None, wall_seconds=time.perf_counter() - t0)
    return summary


def run_site(site_file: Path, *, site_name: str | None, superlink_address: str,
             ca: Path | None, key: Path | None, insecure: bool = False) -> int:
    """``bci fl site``: a SuperNode for one site, in the foreground until stopped."""
    site = load_site(site_file, name=site_name)
    assert site.workdir is not None
    site.workdir.mkdir(parents=True, exist_ok=True)
    stop = {"sig": None}

    def on_signal(signum: int, _frame: object) -> None:
        stop["sig"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with Processes() as procs:
            p = start_supernode(procs, name=site.name, superlink=superlink_address,
                                site_file=site_file, site_name=site_name,
                                workdir=site.workdir, ca=ca, key=key, insecure=insecure,
                                # one process group per site: it goes down as a whole
                                new_group=False)
            log.info("site %s: SuperNode pid %d, log %s", site.name, p.pid,
                     site.workdir / "supernode.log")
            while p.poll() is None and stop["sig"] is None:
                time.sleep(0.5)
            code = p.poll()
            if code is not None and code != 0:
                print(f"bci fl site: the SuperNode of {site.name} exited with {code}:\n"
                      f"{_tail(site.workdir / 'supernode.log')}", file=sys.stderr)
                return 1
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return 0


def simulate_deployment(cfg: Any, *, out_dir: Path, resume: bool, echo: bool = False
                        ) -> dict[str, Any]:
    """Run a federation file's sites as a loopback deployment on this machine.

    Everything binds 127.0.0.1: a SuperLink with TLS and SuperNode authentication (a
    throwaway CA and site keys under ``out_dir/certs``) and one SuperNode per site.
    Slower than the Ray engine (a process per message), but nothing listens beyond
    loopback.
    """
    out_dir = Path(out_dir).resolve()
    certs = make_certs(out_dir / "certs", sites=[s.name for s in cfg.sites], overwrite=True)
    tls = Tls(certs.ca_cert, certs.server_cert, certs.server_key)
    site_files = {}
    for s in cfg.sites:
        # each SuperNode gets a site file of its own: it can read nothing else
        path = out_dir / "sites" / f"{s.name}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_site_toml(s))
        site_files[s.name] = path
    t0 = time.perf_counter()
    with superlink(out_dir, tls=tls) as (procs, address):
        names = register_sites(out_dir, certs.key_list)
        for s in cfg.sites:
            start_supernode(procs, name=s.name, superlink=address,
                            site_file=site_files[s.name], site_name=None,
                            workdir=s.workdir, ca=certs.ca_cert,
                            key=certs.sites[s.name][0])
        wait_for_sites(out_dir, set(names), minimum=cfg.min_sites,
                       timeout=cfg.round_timeout)
        app_dir = write_app(out_dir / "app", {
            "config": str(cfg.path), "out-dir": str(out_dir), "n-sites": len(cfg.sites),
            "node-names": json.dumps({str(k): v for k, v in names.items()}),
            "resume": resume})
        budget = cfg.round_timeout * (2 * cfg.rounds + (cfg.rounds if cfg.baseline else 0)
                                      + 2) + 120
        run_id = run_app(out_dir, app_dir, timeout=budget, echo=echo)
    summary = json.loads((out_dir / "result.json").read_text())
    summary.update(engine="deployment", run_id=run_id, wall_seconds=time.perf_counter() - t0)
    return summary


def _site_toml(site: Any) -> str:
    """One ``[site]`` table for a SuperNode's site file."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, str | Path):
            return json.dumps(str(v))
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    d = site.to_dict()
    params = d.pop("params")
    # every field of the site (None: not set), so the SuperNode's site is this one
    fields = {k: v for k, v in {**d, **params}.items() if v is not None}
    return "[site]\n" + "".join(f"{k} = {value(v)}\n" for k, v in fields.items())
