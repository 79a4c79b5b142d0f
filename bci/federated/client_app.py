"""The ClientApp: one site's training, evaluation, baseline and export.

A site's ClientApp reads only its own site's data (its :class:`SiteConfig`, found from
the SuperNode's node config, or in a simulation from the node's partition id) and
keeps what is not shared on the site's own disk:

- ``train``: load the site layers (``site_layers.pt``; fresh ones the first time), put
  the global shared arrays in, train ``local-epochs`` epochs (or the site's own
  ``local_epochs``), save the site layers,
  reply with the shared arrays only (exactly :meth:`FLEEGClassifier.shared_keys`), the
  number of training windows and the training loss.
- ``evaluate``: the site's model (its layers + the global shared arrays, batch-norm
  statistics recomputed on its training windows for them) scored on the site's
  held-out windows; in the last round the model is also saved and exported to
  ``NAME.onnx`` in the site's folder, runnable by ``bci run`` at that site.
- ``query.baseline``: the same model trained on the site alone, from the same
  initialisation and schedule, for as many epochs as in the whole federation
  (``rounds × local epochs``), scored on the same held-out windows.

Message contents: ``arrays`` (ArrayRecord), ``config`` (ConfigRecord, from the server:
``model`` as JSON, ``local-epochs``, ``seed``, ``num-rounds``, ``classes`` as JSON),
replies ``metrics`` (MetricRecord) and ``site`` (ConfigRecord: the site's name and,
after export, the model's path on the site's disk).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from bci.errors import ConfigError
from bci.federated.config import SiteConfig, load_site
from bci.federated.sites import SiteFiles, load_site_data, site_files
from bci.federated.strategy import ARRAYS, CONFIG, METRICS, SITE, UNIT_WEIGHT_KEY, WEIGHT_KEY

if TYPE_CHECKING:
    from bci.datasets.planted_sites import SiteData
    from bci.decoders.fleeg import FLEEGClassifier

log = logging.getLogger("bci.federated")

# One site's data at a time per process: a simulation worker that serves several sites
# in turn never holds two sites' windows at once.
_CACHE: dict[str, Any] = {}


def site_from_context(context: Context, sites: Sequence[SiteConfig] | None = None
                      ) -> SiteConfig:
    """The site this ClientApp serves.

    A SuperNode names it in its node config (``site-config`` = path of the site file,
    optionally ``site-name``); a simulated node by its ``partition-id`` into ``sites``.

    Raises
    ------
    ConfigError
        When neither is available.
    """
    nc = context.node_config
    if "site-config" in nc:
        name = nc.get("site-name") or None
        return load_site(str(nc["site-config"]), name=None if name is None else str(name))
    if sites is not None and "partition-id" in nc:
        return sites[int(nc["partition-id"])]
    raise ConfigError("node config: expected site-config=\"PATH/site.toml\" (bci fl site "
                      f"sets it), found keys {sorted(nc)}")


def _data(site: SiteConfig) -> tuple[SiteData, SiteData]:
    key = json.dumps(site.to_dict(), sort_keys=True)
    if _CACHE.get("key") != key:
        _CACHE.clear()
        train, test = load_site_data(site)
        _CACHE.update(key=key, data=(train, test))
    return _CACHE["data"]


def _settings(msg: Message) -> dict[str, Any]:
    config = msg.content.config_records.get(CONFIG)
    if config is None:
        raise ValueError("message without a 'config' ConfigRecord")
    return {"model": json.loads(str(config.get("model", "{}"))),
            "classes": json.loads(str(config["classes"])),
            "local_epochs": int(config.get("local-epochs", 1)),
            "seed": int(config.get("seed", 0)),
            "num_rounds": int(config.get("num-rounds", 1)),
            "server_round": int(config.get("server-round", 0))}


def _local_epochs(site: SiteConfig, settings: dict[str, Any]) -> int:
    """Epochs per round at this site: its own schedule, else the federation's."""
    return site.local_epochs if site.local_epochs is not None else settings["local_epochs"]


def _model(site: SiteConfig, train: SiteData, settings: dict[str, Any], *, epochs: int,
           files: SiteFiles | None) -> FLEEGClassifier:
    """The site's model, with its own layers from disk when it has any."""
    from bci.decoders.fleeg import FLEEGClassifier

    kwargs = dict(settings["model"])
    if site.batch_size is not None:
        kwargs["batch_size"] = site.batch_size
    clf = FLEEGClassifier(sfreq=train.sfreq, epochs=int(epochs), seed=settings["seed"],
                          **kwargs)
    clf.initialize(train.X.shape[1], train.X.shape[2], settings["classes"],
                   ch_names=train.ch_names)
    if files is not None and files.layers.exists():
        try:
            clf.load_site(files.layers)
        except ValueError as err:
            # written for another montage, classes or architecture: start afresh, and
            # say so in the site's own log (the next save replaces the file)
            log.warning("site %s: %s; starting from fresh site layers", site.name, err)
            files.log("site-layers-discarded", reason=str(err))
            clf.initialize(train.X.shape[1], train.X.shape[2], settings["classes"],
                           ch_names=train.ch_names)
    return clf


def _set_global(clf: FLEEGClassifier, msg: Message) -> list[str]:
    record = msg.content.array_records.get(ARRAYS)
    keys = clf.shared_keys()
    if record is None or list(record.keys()) != keys:
        found = None if record is None else list(record.keys())
        raise ValueError(f"expected the shared arrays {keys}, found {found}")
    clf.set_shared([record[k].numpy() for k in keys])
    return keys


def _site_record(site: SiteConfig, **extra: str) -> ConfigRecord:
    return ConfigRecord({"name": site.name, **extra})


def make_client_app(sites: Sequence[SiteConfig] | None = None) -> ClientApp:
    """A ClientApp serving the site its node is configured for.

    Parameters
    ----------
    sites : sequence of SiteConfig | None
        For a simulation: the sites, indexed by the node's partition id. A deployed
        SuperNode names its site file in its node config instead.
    """
    sites = None if sites is None else list(sites)
    resolve: Callable[[Context], SiteConfig] = lambda ctx: site_from_context(ctx, sites)  # noqa: E731
    app = ClientApp()

    def clip_if_asked(msg: Message, ctx: Context, call_next: Callable) -> Message:
        """Flower's fixedclipping_mod, when the server's DP wrapper asks for clipping."""
        from flwr.clientapp.mod import fixedclipping_mod
        from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

        config = msg.content.config_records.get(CONFIG)
        if config is not None and KEY_CLIPPING_NORM in config:
            return fixedclipping_mod(msg, ctx, call_next)
        return call_next(msg, ctx)

    @app.train(mods=[clip_if_asked])
    def train(msg: Message, context: Context) -> Message:
        site = resolve(context)
        settings = _settings(msg)
        train_data, _ = _data(site)
        files = site_files(site)
        clf = _model(site, train_data, settings, epochs=_local_epochs(site, settings),
                     files=files)
        keys = _set_global(clf, msg)
        clf.fit(train_data.X, train_data.y)
        clf.save_site(files.layers)
        shared = clf.get_shared()
        if site.misbehave == "nan":
            shared = [np.full_like(a, np.nan) for a in shared]
        elif site.misbehave == "huge":
            shared = [a * np.float32(1e6) for a in shared]
        files.log("train", round=settings["server_round"], n_train=len(train_data),
                  sent=keys, misbehave=site.misbehave)
        loss = clf.history_[-1]["train_loss"] if clf.history_ else float("nan")
        content = RecordDict({
            ARRAYS: ArrayRecord({k: Array(np.ascontiguousarray(a)) for k, a in
                                 zip(keys, shared, strict=True)}),
            METRICS: MetricRecord({WEIGHT_KEY: len(train_data), UNIT_WEIGHT_KEY: 1,
                                   "train-loss": float(loss)}),
            SITE: _site_record(site),
        })
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        site = resolve(context)
        settings = _settings(msg)
        train_data, test_data = _data(site)
        files = site_files(site)
        clf = _model(site, train_data, settings, epochs=0, files=files)
        _set_global(clf, msg)
        # the site's batch-norm statistics describe its own last local weights: recompute
        # them for the federation's average before predicting (FLEEG's protocol)
        clf.refresh_statistics(train_data.X)
        accuracy = float(clf.score(test_data.X, test_data.y))
        extra: dict[str, str] = {}
        if settings["server_round"] >= settings["num_rounds"]:
            # the model on the site's disk is the one it exports
            clf.save_site(files.layers)
            path = clf.export_onnx(files.model(site.name), ch_names=train_data.ch_names,
                                   preprocessing=train_data.preprocessing,
                                   tmin=train_data.tmin, tmax=train_data.tmax,
                                   name=f"fleeg-{site.name}")
            extra["model"] = str(path)
            files.log("export", round=settings["server_round"], model=str(path))
        files.log("evaluate", round=settings["server_round"], n_test=len(test_data),
                  accuracy=accuracy)
        content = RecordDict({
            METRICS: MetricRecord({WEIGHT_KEY: len(test_data), "accuracy": accuracy,
                                   "n-train": len(train_data)}),
            SITE: _site_record(site, **extra),
        })
        return Message(content=content, reply_to=msg)

    @app.query("baseline")
    def baseline(msg: Message, context: Context) -> Message:
        site = resolve(context)
        settings = _settings(msg)
        train_data, test_data = _data(site)
        epochs = settings["num_rounds"] * _local_epochs(site, settings)
        # the same seed as the federated model: the same initial site layers
        clf = _model(site, train_data, settings, epochs=epochs, files=None)
        clf.fit(train_data.X, train_data.y)
        accuracy = float(clf.score(test_data.X, test_data.y))
        site_files(site).log("baseline", epochs=epochs, accuracy=accuracy)
        content = RecordDict({
            METRICS: MetricRecord({WEIGHT_KEY: len(test_data), "accuracy": accuracy,
                                   "n-train": len(train_data), "epochs": epochs}),
            SITE: _site_record(site),
        })
        return Message(content=content, reply_to=msg)

    return app


#: The deployed ClientApp (``bci.federated.client_app:app``): a SuperNode started by
#: ``bci fl site`` names its site file in its node config.
app = make_client_app()
