"""``bci fl simulate``: every site of a federation file on this machine.

Two engines run the same ServerApp and ClientApp:

- ``ray`` (default): Flower's simulation runtime (``flwr.simulation.run_simulation``),
  whose only backend in Flower 1.41 is Ray. Ray workers are reused across rounds, so
  torch is imported once per worker. Ray refuses to use 127.0.0.1 as its node address
  (it swaps it for the machine's network address); we give it 127.0.0.2, another
  loopback address, so all of its traffic stays on loopback. Its gRPC servers still
  *listen* on every interface (Ray has no setting to confine them): on a machine
  reachable from an untrusted network, use the other engine.
- ``deployment``: a SuperLink and one SuperNode per site, all bound to 127.0.0.1, with
  TLS and SuperNode authentication (throwaway keys) — the deployment code path, a
  process per message, hence slower.

Each site's ClientApp loads only its own site (by node → site), and its folder under
the federation's ``workdir`` holds its layers, its model and its access log.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from bci.errors import ConfigError, DeviceError
from bci.federated.config import FederationConfig
from bci.federated.deployment import simulate_deployment
from bci.federated.sites import ACCESS_LOG, SITE_LAYERS

log = logging.getLogger("bci.federated")

#: A loopback address Ray accepts as its node address (it rewrites 127.0.0.1).
RAY_NODE_IP = "127.0.0.2"


def _fresh(cfg: FederationConfig, out_dir: Path) -> None:
    """Forget a previous simulation's state, so a run starts from scratch."""
    from bci.federated.server_app import GLOBAL_FILE, RESULT_FILE

    for site in cfg.sites:
        assert site.workdir is not None
        for name in (SITE_LAYERS, ACCESS_LOG, f"{site.name}.onnx"):
            (site.workdir / name).unlink(missing_ok=True)
    for name in (GLOBAL_FILE, RESULT_FILE):
        (out_dir / name).unlink(missing_ok=True)


def simulate(cfg: FederationConfig, *, engine: str | None = None,
             workdir: str | Path | None = None, out_dir: str | Path | None = None,
             resume: bool = False, verbose: bool = False) -> dict[str, Any]:
    """Run the federation's sites on this machine and summarise the run.

    Parameters
    ----------
    cfg : FederationConfig
        With at least two ``[[site]]`` tables.
    engine : {"ray", "deployment"} | None
        Default: ``[simulation] engine``.
    workdir : path | None
        Replaces ``[federation] workdir`` (each site's folder is ``<workdir>/<name>``
        unless its table names one).
    out_dir : path | None
        Server-side outputs (``result.json``, ``global_shared.npz``); default the
        federation's ``workdir``.
    resume : bool
        Keep the sites' layers and the global shared arrays of a previous run.
    verbose : bool
        Show Flower's logs.

    Returns
    -------
    dict
        :func:`bci.federated.server_app.run_federation`'s summary, plus ``engine`` and
        ``wall_seconds``.
    """
    cfg.require_sites(2)
    cfg.resolve_sites(workdir)
    engine = engine or cfg.simulation.engine
    out_dir = Path(out_dir or cfg.workdir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    for site in cfg.sites:
        assert site.workdir is not None
        site.workdir.mkdir(parents=True, exist_ok=True)
    if not resume:
        _fresh(cfg, out_dir)
    t0 = time.perf_counter()
    if engine == "ray":
        summary = _simulate_ray(cfg, out_dir, resume=resume, verbose=verbose)
    elif engine == "deployment":
        summary = simulate_deployment(cfg, out_dir=out_dir, resume=resume, echo=verbose)
    else:
        raise ValueError(f"simulate: expected engine 'ray' or 'deployment', found {engine!r}")
    summary["engine"] = engine
    summary["wall_seconds"] = time.perf_counter() - t0
    return summary


class _DropDeprecation(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "run_simulation` function is deprecated" not in record.getMessage()


def _simulate_ray(cfg: FederationConfig, out_dir: Path, *, resume: bool,
                  verbose: bool) -> dict[str, Any]:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ConfigError("simulation.engine = 'ray' needs Ray (pip install "
                          "'flwr[simulation]==1.41.0'); or use --engine deployment")
    import ray
    from flwr.simulation import run_simulation

    from bci.federated.client_app import make_client_app
    from bci.federated.server_app import make_server_app

    results: list[dict[str, Any]] = []
    server = make_server_app(cfg.server_settings(), n_sites=len(cfg.sites), out_dir=out_dir,
                             results=results, resume=resume)
    client = make_client_app(cfg.sites)
    sim = cfg.simulation
    backend_config = {
        "client_resources": {"num_cpus": float(sim.cpus_per_site), "num_gpus": 0.0},
        "init_args": {
            "num_cpus": int(sim.num_cpus), "num_gpus": 0, "include_dashboard": False,
            "_node_ip_address": RAY_NODE_IP,
            # small object store: only a few kB of shared weights travel through it
            "object_store_memory": 100 * 1024 * 1024,
            "logging_level": "warning" if not verbose else "info",
            "log_to_driver": bool(verbose),
        },
    }
    flwr_logger = logging.getLogger("flwr")
    old_level = flwr_logger.level
    if not verbose:
        flwr_logger.setLevel(logging.WARNING)
    # Flower 1.41 marks run_simulation deprecated in favour of `flwr run`, whose local
    # simulation is the same Ray runtime behind a SuperLink; said once in the docs
    quiet = _DropDeprecation()
    flwr_logger.addFilter(quiet)
    try:
        run_simulation(server_app=server, client_app=client, num_supernodes=len(cfg.sites),
                       backend_name="ray", backend_config=backend_config,
                       verbose_logging=verbose)
    finally:
        flwr_logger.removeFilter(quiet)
        flwr_logger.setLevel(old_level)
        # run_simulation leaves Ray up in this process; its workers hold memory
        with contextlib.suppress(Exception):
            ray.shutdown()
    if not results:
        raise DeviceError(f"the simulation ended without a result; see the log above "
                          f"and {out_dir}")
    return results[0]
