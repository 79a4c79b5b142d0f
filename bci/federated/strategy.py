"""Shared-key FedAvg with update screening, a minimum of sites, and optional central DP.

Built from Flower's Message-API strategies (:class:`flwr.serverapp.strategy.FedAvg` and
its DP wrappers); what is ours is the screening in front of them:

1. An update whose arrays are not exactly the shared keys (names and shapes) of the
   global model, or whose weight (``num-examples``) is not a positive finite number,
   is rejected.
2. An update holding a NaN or an Inf is rejected.
3. An update whose distance from the global model (L2 norm of the delta over all
   shared arrays) exceeds ``max_norm``, or ``norm_factor`` × the round's *lower*
   median distance, is rejected. The lower median (the smaller middle value for an
   even count) keeps one absurd update from moving the reference even when only two
   sites reply; with a single reply the reference is the median of earlier rounds.
4. If fewer than ``min_sites`` updates remain, the round is skipped (logged): the
   global model stays as it was. A site that does not answer within the round timeout
   simply has no update that round.

Every rejection is logged with the site's name and Flower node id, and the aggregate
itself is checked: a non-finite aggregate is never adopted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, Strategy

log = logging.getLogger("bci.federated")

ARRAYS, CONFIG, METRICS, SITE = "arrays", "config", "metrics", "site"
WEIGHT_KEY = "num-examples"
UNIT_WEIGHT_KEY = "unit-weight"  # DP accounting requires equal client weights


@dataclass(slots=True)
class Update:
    """One site's reply to a training message, unpacked."""

    node_id: int
    site: str
    arrays: dict[str, np.ndarray]
    weight: float


@dataclass(slots=True)
class Verdict:
    """The outcome of :func:`screen_updates`."""

    accepted: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (index, reason)
    norms: list[float | None] = field(default_factory=list)
    reference: float | None = None


def lower_median(values: Sequence[float]) -> float:
    """The middle value, or the smaller of the two middle values for an even count."""
    s = sorted(values)
    return float(s[(len(s) - 1) // 2])


def screen_updates(
    global_arrays: dict[str, np.ndarray],
    updates: Sequence[Update],
    *,
    norm_factor: float,
    max_norm: float,
    history: Sequence[float] = (),
) -> Verdict:
    """Decide which updates may enter the aggregate (the rules in the module docstring).

    Parameters
    ----------
    global_arrays : dict of str to ndarray
        The global shared arrays the round started from.
    updates : sequence of Update
    norm_factor, max_norm : float
    history : sequence of float
        Medians of accepted distances in earlier rounds (the reference when only one
        update is left to compare).

    Returns
    -------
    Verdict
    """
    verdict = Verdict(norms=[None] * len(updates))
    shapes = {k: np.shape(v) for k, v in global_arrays.items()}
    candidates: list[tuple[int, float]] = []
    for i, u in enumerate(updates):
        if set(u.arrays) != set(shapes):
            missing = sorted(set(shapes) - set(u.arrays))
            extra = sorted(set(u.arrays) - set(shapes))
            verdict.rejected.append((i, f"arrays are not the shared keys (missing {missing}, "
                                        f"unexpected {extra})"))
            continue
        wrong = [k for k, a in u.arrays.items() if np.shape(a) != shapes[k]]
        if wrong:
            verdict.rejected.append((i, f"wrong shapes for {wrong}"))
            continue
        if not (np.isfinite(u.weight) and u.weight > 0):
            verdict.rejected.append((i, f"weight {WEIGHT_KEY}={u.weight!r} is not positive "
                                        "and finite"))
            continue
        bad = {k: int((~np.isfinite(a)).sum()) for k, a in u.arrays.items()}
        bad = {k: n for k, n in bad.items() if n}
        if bad:
            verdict.rejected.append((i, f"not finite ({sum(bad.values())} NaN/Inf in "
                                        f"{sorted(bad)})"))
            continue
        with np.errstate(over="ignore"):
            sq = sum(float(np.sum((np.asarray(u.arrays[k], np.float64)
                                   - np.asarray(global_arrays[k], np.float64)) ** 2))
                     for k in shapes)
        norm = float(np.sqrt(sq))
        verdict.norms[i] = norm
        if not np.isfinite(norm) or norm > max_norm:
            verdict.rejected.append((i, f"update norm {norm:.3g} exceeds max_norm "
                                        f"{max_norm:.3g}"))
            continue
        candidates.append((i, norm))
    if len(candidates) >= 2:
        verdict.reference = lower_median([n for _, n in candidates])
    elif history:
        verdict.reference = float(np.median(history))
    for i, norm in candidates:
        ref = verdict.reference
        if ref is not None and norm > 1e-12 and norm > norm_factor * ref:
            verdict.rejected.append((i, f"update norm {norm:.3g} exceeds {norm_factor:g} × "
                                        f"the reference {ref:.3g}"))
        else:
            verdict.accepted.append(i)
    verdict.rejected.sort()
    return verdict


def arrays_finite(record: ArrayRecord) -> bool:
    """True when every array of the record is finite."""
    return all(bool(np.all(np.isfinite(a))) for a in record.to_numpy_ndarrays())


class SiteFedAvg(FedAvg):
    """Flower's FedAvg, sampling every connected site but never waiting forever.

    Flower's own sampling blocks until ``min_available_nodes`` are connected; a site
    that dropped out would then stall the run. Here a round waits at most
    ``wait_timeout`` seconds for ``min_train_nodes`` sites, then sends to all that are
    connected, or to none (the round is then skipped by the screening strategy).
    Aggregation is FedAvg's own (weighted by ``weighted_by_key``), which keeps Flower's
    DP accountant applicable.
    """

    def __init__(self, *, min_sites: int, wait_timeout: float,
                 weighted_by_key: str = WEIGHT_KEY) -> None:
        super().__init__(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=min_sites,
                         min_evaluate_nodes=1, min_available_nodes=min_sites,
                         weighted_by_key=weighted_by_key, arrayrecord_key=ARRAYS,
                         configrecord_key=CONFIG)
        self.wait_timeout = float(wait_timeout)

    def wait_for_nodes(self, grid: Grid, minimum: int) -> list[int]:
        """Connected node ids once at least ``minimum`` are there, else what there is."""
        deadline = time.monotonic() + self.wait_timeout
        while True:
            nodes = sorted(grid.get_node_ids())
            if len(nodes) >= minimum or time.monotonic() >= deadline:
                return nodes
            time.sleep(0.2)

    def _configure(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                   grid: Grid, minimum: int, message_type: str) -> list[Message]:
        nodes = self.wait_for_nodes(grid, minimum)
        if len(nodes) < minimum:
            log.warning("round %d: %d site(s) connected within %.0f s, %d needed; no %s "
                        "messages sent", server_round, len(nodes), self.wait_timeout,
                        minimum, message_type)
            return []
        config["server-round"] = server_round
        record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
        return list(self._construct_messages(record, nodes, message_type))

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        return self._configure(server_round, arrays, config, grid, self.min_train_nodes,
                               MessageType.TRAIN)

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord,
                           config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        return self._configure(server_round, arrays, config, grid, self.min_evaluate_nodes,
                               MessageType.EVALUATE)


def _site_of(msg: Message, names: dict[int, str]) -> str:
    """The site a reply comes from: its registered name when the node is registered
    (a site cannot pass itself off as another), else the name it gives."""
    node = msg.metadata.src_node_id
    claimed = None
    if msg.has_content() and SITE in msg.content.config_records:
        claimed = str(msg.content.config_records[SITE].get("name", "?"))
    registered = names.get(node)
    if registered is None:
        return claimed or "?"
    if claimed is not None and claimed != registered:
        return f"{registered} (claims {claimed})"
    return registered


class ScreenedStrategy(Strategy):
    """Screening, minimum-site and bookkeeping around an inner Flower strategy.

    Parameters
    ----------
    inner : Strategy
        :class:`SiteFedAvg`, or one of Flower's DP wrappers around it.
    min_sites : int
    norm_factor, max_norm : float
        See :func:`screen_updates`.
    node_names : dict of int to str
        Known node id → site name (deployment registers them); otherwise the name a
        site gives in its reply is logged, with its node id.
    """

    def __init__(self, inner: Strategy, *, min_sites: int, norm_factor: float,
                 max_norm: float, node_names: dict[int, str] | None = None) -> None:
        self.inner = inner
        self.min_sites = int(min_sites)
        self.norm_factor = float(norm_factor)
        self.max_norm = float(max_norm)
        self.node_names = dict(node_names or {})
        self.rounds: dict[int, dict[str, Any]] = {}
        self.rejections: list[dict[str, Any]] = []
        self.history: list[float] = []
        self.traffic: dict[str, set[str]] = {"sent_arrays": set(), "reply_arrays": set(),
                                             "reply_metrics": set(), "reply_configs": set()}
        self.evaluations: dict[int, dict[str, dict[str, Any]]] = {}
        self._global: ArrayRecord | None = None
        self._t0: dict[int, float] = {}

    # --- train ------------------------------------------------------------------------

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self._t0[server_round] = time.perf_counter()
        self._global = arrays
        self.traffic["sent_arrays"].update(arrays.keys())
        info = self.rounds.setdefault(server_round, {"round": server_round})
        try:
            messages = list(self.inner.configure_train(server_round, arrays, config, grid))
        except ValueError as err:
            # Flower's DP accountant refuses a round whose sample differs from the
            # accounted one (a site is missing): skip the round rather than mis-account
            log.warning("round %d: not configured (%s); round skipped", server_round, err)
            messages = []
        info["sent"] = len(messages)
        info["configured"] = bool(messages)
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        info = self.rounds.setdefault(server_round, {"round": server_round})
        info.update(replies=len(replies), accepted=[], rejected=[], aggregated=False)
        if not info.get("configured", False):
            return None, None
        errors = [m for m in replies if m.has_error()]
        for m in errors:
            self._reject(server_round, m.metadata.src_node_id, _site_of(m, self.node_names),
                         f"error reply: {m.error.reason}")
        updates, messages = [], []
        for m in replies:
            if m.has_error():
                continue
            site = _site_of(m, self.node_names)
            content = m.content
            self.traffic["reply_arrays"].update(k for r in content.array_records.values()
                                                for k in r.keys())
            self.traffic["reply_metrics"].update(k for r in content.metric_records.values()
                                                 for k in r.keys())
            self.traffic["reply_configs"].update(content.config_records.keys())
            if (len(content.array_records) != 1 or len(content.metric_records) != 1
                    or ARRAYS not in content.array_records):
                self._reject(server_round, m.metadata.src_node_id, site,
                             "expected one ArrayRecord 'arrays' and one MetricRecord")
                continue
            metrics = next(iter(content.metric_records.values()))
            weight = metrics.get(WEIGHT_KEY, float("nan"))
            weight = float(weight) if isinstance(weight, int | float) else float("nan")
            arrays = {k: v.numpy() for k, v in content.array_records[ARRAYS].items()}
            updates.append(Update(m.metadata.src_node_id, site, arrays, weight))
            messages.append(m)
        assert self._global is not None
        global_arrays = {k: v.numpy() for k, v in self._global.items()}
        verdict = screen_updates(global_arrays, updates, norm_factor=self.norm_factor,
                                 max_norm=self.max_norm, history=self.history)
        for i, reason in verdict.rejected:
            self._reject(server_round, updates[i].node_id, updates[i].site, reason)
        accepted = [messages[i] for i in verdict.accepted]
        info["accepted"] = [updates[i].site for i in verdict.accepted]
        info["norms"] = {u.site: n for u, n in zip(updates, verdict.norms, strict=True)}
        if len(accepted) < self.min_sites:
            log.warning("round %d skipped: %d valid update(s), min_sites is %d; the global "
                        "model is unchanged", server_round, len(accepted), self.min_sites)
            info["skipped"] = f"{len(accepted)} valid update(s) < min_sites {self.min_sites}"
            return None, None
        arrays, metrics = self.inner.aggregate_train(server_round, accepted)
        if arrays is None:
            info["skipped"] = "the aggregating strategy returned nothing"
            return None, metrics
        if not arrays_finite(arrays):
            log.error("round %d: the aggregate is not finite; the global model is unchanged",
                      server_round)
            info["skipped"] = "non-finite aggregate"
            return None, metrics
        self.history.append(float(np.median([verdict.norms[i] for i in verdict.accepted])))
        info["aggregated"] = True
        return arrays, metrics

    def _reject(self, server_round: int, node_id: int, site: str, reason: str) -> None:
        log.warning("round %d: update of site %s (node %d) rejected: %s", server_round,
                    site, node_id, reason)
        entry = {"round": server_round, "site": site, "node_id": int(node_id),
                 "reason": reason}
        self.rejections.append(entry)
        self.rounds.setdefault(server_round, {"round": server_round}).setdefault(
            "rejected", []).append(entry)

    # --- evaluate ---------------------------------------------------------------------

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord,
                           config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]
                           ) -> MetricRecord | None:
        replies = list(replies)
        per_site: dict[str, dict[str, Any]] = {}
        for m in replies:
            if m.has_error():
                log.warning("round %d: evaluation at site %s (node %d) failed: %s",
                            server_round, _site_of(m, self.node_names),
                            m.metadata.src_node_id, m.error.reason)
                continue
            site = _site_of(m, self.node_names)
            entry: dict[str, Any] = {"node_id": int(m.metadata.src_node_id)}
            for record in m.content.metric_records.values():
                entry.update({k: v for k, v in record.items()})
            if SITE in m.content.config_records:
                entry.update({k: v for k, v in m.content.config_records[SITE].items()
                              if k != "name"})
            per_site[site] = entry
        self.evaluations[server_round] = per_site
        info = self.rounds.setdefault(server_round, {"round": server_round})
        info["evaluated"] = sorted(per_site)
        if server_round in self._t0:
            info["seconds"] = time.perf_counter() - self._t0[server_round]
        good = [m for m in replies if not m.has_error()]
        if not good:
            return None
        try:
            return self.inner.aggregate_evaluate(server_round, good)
        except Exception as err:  # a metrics mismatch must not end the run
            log.warning("round %d: evaluation metrics not aggregated: %s", server_round, err)
            return None

    def summary(self) -> None:
        log.info("screening: norm_factor %g, max_norm %g, min_sites %d", self.norm_factor,
                 self.max_norm, self.min_sites)
        self.inner.summary()


def build_strategy(settings: dict[str, Any], *, n_sites: int,
                   node_names: dict[int, str] | None = None) -> ScreenedStrategy:
    """The federation's strategy from :meth:`FederationConfig.server_settings`.

    With ``dp.enabled``, Flower's ``DifferentialPrivacyServerSideFixedClipping`` (or the
    client-side variant, the ClientApp then clips with Flower's ``fixedclipping_mod``)
    wraps FedAvg, with Flower's RDP accountant (no sampling amplification: every
    connected site takes part in every round). The accountant requires equal weights,
    so under DP the average is unweighted, and a round in which not every one of the
    ``n_sites`` sites sends a valid update is skipped rather than mis-accounted.
    """
    dp = settings["dp"]
    round_timeout = float(settings["round_timeout"])
    if not dp["enabled"]:
        inner: Strategy = SiteFedAvg(min_sites=settings["min_sites"],
                                     wait_timeout=round_timeout)
    else:
        from flwr.serverapp import NeighboringRelation, PrivacyConfig, SamplingMethod
        from flwr.serverapp.strategy import (
            DifferentialPrivacyClientSideFixedClipping,
            DifferentialPrivacyServerSideFixedClipping,
        )
        from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

        base = SiteFedAvg(min_sites=settings["min_sites"], wait_timeout=round_timeout,
                          weighted_by_key=UNIT_WEIGHT_KEY)
        accountant = RdpAccountant(PrivacyConfig(
            target_delta=float(dp["delta"]), population_size=int(n_sites),
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION))
        wrapper = (DifferentialPrivacyServerSideFixedClipping if dp["clipping"] == "server"
                   else DifferentialPrivacyClientSideFixedClipping)
        inner = wrapper(base, float(dp["noise_multiplier"]), float(dp["clipping_norm"]),
                        int(n_sites), accountant=accountant)
    screening = settings["screening"]
    return ScreenedStrategy(inner, min_sites=settings["min_sites"],
                            norm_factor=screening["norm_factor"],
                            max_norm=screening["max_norm"], node_names=node_names)


def privacy_report(strategy: ScreenedStrategy, settings: dict[str, Any], *,
                   n_sites: int) -> dict[str, Any] | None:
    """What Flower's DP wrapper and accountant give: ε at δ, releases, noise, clipping."""
    dp = settings["dp"]
    if not dp["enabled"]:
        return None
    spent = strategy.inner.privacy_spent()  # type: ignore[attr-defined]
    return {
        "mechanism": f"central DP, {dp['clipping']}-side fixed clipping (Flower)",
        "noise_multiplier": float(dp["noise_multiplier"]),
        "clipping_norm": float(dp["clipping_norm"]),
        "noise_std": float(dp["noise_multiplier"]) * float(dp["clipping_norm"]) / n_sites,
        "sites_per_round": n_sites,
        "accounting": "RDP, no sampling amplification, add-or-remove-one site",
        "epsilon": None if spent is None else float(spent.epsilon),
        "delta": None if spent is None else float(spent.delta),
        "releases": 0 if spent is None else int(spent.num_releases),
    }
