"""A site's data and its own folder, as its ClientApp sees them.

Only the ClientApp of a site calls :func:`load_site_data`, with that site's own
:class:`~bci.federated.config.SiteConfig`; every load is appended to the site's
``access.jsonl`` (which data, for which site, by which process), so a run can show that
no site read another's data. The folder also holds what never leaves the site: its
layers between rounds and runs (``site_layers.pt``) and its final model (``NAME.onnx``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bci.datasets.planted_sites import (
    SiteData,
    load_eegbci_site,
    load_recordings_site,
    make_site,
    split,
)
from bci.federated.config import SiteConfig

SITE_LAYERS = "site_layers.pt"
ACCESS_LOG = "access.jsonl"


@dataclass(slots=True)
class SiteFiles:
    """The paths under one site's folder."""

    root: Path

    @property
    def layers(self) -> Path:
        return self.root / SITE_LAYERS

    @property
    def access_log(self) -> Path:
        return self.root / ACCESS_LOG

    def model(self, name: str) -> Path:
        return self.root / f"{name}.onnx"

    def log(self, event: str, **fields: Any) -> None:
        """Append one event to the site's access log."""
        self.root.mkdir(parents=True, exist_ok=True)
        record = {"time": time.time(), "pid": os.getpid(), "event": event, **fields}
        with self.access_log.open("a") as f:
            f.write(json.dumps(record) + "\n")


def site_files(site: SiteConfig) -> SiteFiles:
    """The site's folder (created)."""
    if site.workdir is None:
        raise ValueError(f"site {site.name}: no workdir set")
    site.workdir.mkdir(parents=True, exist_ok=True)
    return SiteFiles(site.workdir)


def load_site_data(site: SiteConfig) -> tuple[SiteData, SiteData]:
    """Load (or simulate) one site's windows and split them into train and held-out.

    Returns
    -------
    train, test : bci.datasets.planted_sites.SiteData
    """
    if site.kind == "planted":
        data = make_site(**site.params)
        source = {"kind": "planted", "seed": site.params["seed"],
                  "n_channels": site.params["n_channels"], "sfreq": site.params["sfreq"]}
    elif site.kind == "recordings":
        data = load_recordings_site(**site.params)
        source = {"kind": "recordings", "files": site.params["files"]}
    else:
        data = load_eegbci_site(**site.params)
        source = {"kind": "eegbci", "folder": site.params["folder"],
                  "subjects": site.params.get("subjects", [1])}
    data.name = site.name
    train, test = split(data, test_fraction=site.test_fraction, seed=site.split_seed)
    site_files(site).log("load", site=site.name, source=source, n_train=len(train),
                         n_test=len(test))
    return train, test
