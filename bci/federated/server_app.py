"""The ServerApp: rounds of screened shared-key FedAvg, then each site's baseline.

:func:`run_federation` is the whole server side, used by both runtimes: the
simulation builds a ServerApp around it (:func:`make_server_app`); a deployed SuperLink
runs :data:`app` (``bci.federated.server_app:app``), which reads its settings from the
Flower run config that ``bci fl server`` writes.

The initial shared weights are drawn here, from the federation's seed, with the same
architecture as every site's model: the shared layers' shapes depend only on the
class count and the ``[model]`` settings, never on a site's montage or rate.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from bci.federated.config import FederationConfig
from bci.federated.strategy import (
    CONFIG,
    METRICS,
    SITE,
    ScreenedStrategy,
    arrays_finite,
    build_strategy,
    privacy_report,
)

log = logging.getLogger("bci.federated")

GLOBAL_FILE = "global_shared.npz"
RESULT_FILE = "result.json"


def initial_shared(settings: dict[str, Any]) -> ArrayRecord:
    """Seeded initial shared arrays, keyed as :meth:`FLEEGClassifier.shared_keys`."""
    from bci.decoders.fleeg import FLEEGClassifier

    clf = FLEEGClassifier(sfreq=128.0, epochs=0, seed=int(settings["seed"]),
                          **settings["model"])
    # a reference site of one channel: the shared part does not depend on the montage
    n_times = max(512, 16 * int(clf.get_params()["shared_times"]))
    clf.initialize(1, n_times, settings["classes"])
    return ArrayRecord({k: Array(a) for k, a in
                        zip(clf.shared_keys(), clf.get_shared(), strict=True)})


def _load_global(path: Path, like: ArrayRecord) -> ArrayRecord | None:
    """The shared arrays a previous run left, if they fit this federation's model."""
    try:
        with np.load(path) as z:
            stored = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        log.warning("%s unreadable (%s); starting from fresh shared weights", path, err)
        return None
    expected = {k: v.numpy().shape for k, v in like.items()}
    if {k: v.shape for k, v in stored.items()} != expected or not all(
            np.all(np.isfinite(v)) for v in stored.values()):
        log.warning("%s does not fit this federation's shared layers; starting fresh", path)
        return None
    return ArrayRecord({k: Array(stored[k].astype(np.float32)) for k in like.keys()})


def _config_record(settings: dict[str, Any]) -> ConfigRecord:
    return ConfigRecord({
        "model": json.dumps(settings["model"]),
        "classes": json.dumps(list(settings["classes"])),
        "local-epochs": int(settings["local_epochs"]),
        "seed": int(settings["seed"]),
        "num-rounds": int(settings["rounds"]),
    })


def _baseline(grid: Grid, settings: dict[str, Any], strategy: ScreenedStrategy
              ) -> dict[str, dict[str, Any]]:
    """Ask every connected site for its local-only accuracy (same epoch budget)."""
    nodes = sorted(grid.get_node_ids())
    record = RecordDict({CONFIG: _config_record(settings)})
    messages = [Message(content=record, dst_node_id=n, message_type="query.baseline")
                for n in nodes]
    # a site alone trains as many epochs as the whole federated run
    timeout = float(settings["round_timeout"]) * max(1, int(settings["rounds"]))
    out: dict[str, dict[str, Any]] = {}
    for m in grid.send_and_receive(messages, timeout=timeout):
        node = m.metadata.src_node_id
        if m.has_error():
            log.warning("baseline at node %d failed: %s", node, m.error.reason)
            continue
        site = str(m.content.config_records[SITE]["name"]) if SITE in \
            m.content.config_records else strategy.node_names.get(node, str(node))
        out[site] = dict(m.content.metric_records[METRICS])
    return out


def run_federation(
    grid: Grid,
    settings: dict[str, Any],
    *,
    n_sites: int,
    out_dir: str | Path,
    node_names: dict[int, str] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Run the federated rounds (and the local-only baselines) and summarise them.

    Parameters
    ----------
    grid : flwr.serverapp.Grid
    settings : dict
        :meth:`FederationConfig.server_settings`.
    n_sites : int
        Sites expected (the DP accountant's population).
    out_dir : path
        Where the summary (``result.json``) and the global shared arrays
        (``global_shared.npz``, the starting point of a resumed run) are written.
    node_names : dict of int to str | None
        Registered node id → site name, for the logs.
    resume : bool
        Start from ``global_shared.npz`` when it fits.

    Returns
    -------
    dict
        Per site: ``federated_accuracy`` (last round it was evaluated), ``local_accuracy``
        (alone, same epochs), ``n_train``, ``n_test``, ``model`` (its .onnx, on its own
        disk); per round: seconds, accepted/rejected sites; rejections; privacy report;
        whether the final global model is finite; the messages' record keys.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    strategy = build_strategy(settings, n_sites=n_sites, node_names=node_names)
    initial = initial_shared(settings)
    if resume and (out_dir / GLOBAL_FILE).exists():
        initial = _load_global(out_dir / GLOBAL_FILE, initial) or initial
    t0 = time.perf_counter()
    result = strategy.start(grid=grid, initial_arrays=initial,
                            num_rounds=int(settings["rounds"]),
                            timeout=float(settings["round_timeout"]),
                            train_config=_config_record(settings),
                            evaluate_config=_config_record(settings))
    train_seconds = time.perf_counter() - t0
    final = result.arrays if len(result.arrays) else initial
    finite = arrays_finite(final)
    if finite:
        np.savez(out_dir / GLOBAL_FILE, **{k: v.numpy() for k, v in final.items()})
    local = _baseline(grid, settings, strategy) if settings["baseline"] else {}

    sites: dict[str, dict[str, Any]] = {}
    for r in sorted(strategy.evaluations):
        for name, e in strategy.evaluations[r].items():
            entry = sites.setdefault(name, {})
            entry.update(federated_accuracy=e.get("accuracy"), evaluated_round=r,
                         n_test=e.get("num-examples"), n_train=e.get("n-train"),
                         node_id=e.get("node_id"))
            if "model" in e:
                entry["model"] = e["model"]
    for name, m in local.items():
        sites.setdefault(name, {})["local_accuracy"] = m.get("accuracy")
        sites[name].setdefault("n_test", m.get("num-examples"))
        sites[name].setdefault("n_train", m.get("n-train"))
    rounds = [strategy.rounds[r] for r in sorted(strategy.rounds)]
    summary = {
        "rounds": int(settings["rounds"]),
        "local_epochs": int(settings["local_epochs"]),
        "sites": sites,
        "round_seconds": [r.get("seconds") for r in rounds],
        "train_seconds": train_seconds,
        "round_log": [{**r, "norms": {k: v for k, v in r.get("norms", {}).items()}}
                      for r in rounds],
        "rejections": strategy.rejections,
        "skipped_rounds": [r["round"] for r in rounds if not r.get("aggregated")],
        "global_finite": finite,
        "privacy": privacy_report(strategy, settings, n_sites=n_sites),
        "traffic": {k: sorted(v) for k, v in strategy.traffic.items()},
        "shared_keys": list(initial.keys()),
    }
    (out_dir / RESULT_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    log.info("federation finished: %s", json.dumps(
        {n: {k: s.get(k) for k in ("local_accuracy", "federated_accuracy")}
         for n, s in sites.items()}))
    return summary


def make_server_app(settings: dict[str, Any], *, n_sites: int, out_dir: str | Path,
                    results: list[dict[str, Any]] | None = None,
                    resume: bool = False) -> ServerApp:
    """A ServerApp running :func:`run_federation`; its summary is appended to ``results``."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        summary = run_federation(grid, settings, n_sites=n_sites, out_dir=out_dir,
                                 resume=resume)
        if results is not None:
            results.append(summary)

    return server


#: The deployed ServerApp (``bci.federated.server_app:app``). Its run config, written
#: by ``bci fl server``: ``config`` (the federation file), ``out-dir``, ``n-sites``,
#: ``node-names`` (JSON: node id → site name), ``resume``.
app = ServerApp()


@app.main()
def _deployed(grid: Grid, context: Context) -> None:
    rc = context.run_config
    cfg = FederationConfig.load(str(rc["config"]))
    names = {int(k): str(v) for k, v in json.loads(str(rc.get("node-names", "{}"))).items()}
    run_federation(grid, cfg.server_settings(), n_sites=int(rc["n-sites"]),
                   out_dir=str(rc["out-dir"]), node_names=names,
                   resume=bool(rc.get("resume", True)))
