"""Federation and site configuration (TOML), validated on load.

A federation file (``examples/fl-sites.toml``) holds the federation's settings and, for
a simulation, the sites::

    [federation]
    rounds = 8                # federated rounds
    local_epochs = 3          # epochs each site trains per round
    min_sites = 2             # fewer valid updates in a round: the round is skipped
    round_timeout = 300.0     # seconds to wait for the sites' replies in a round
    classes = ["left", "right"]
    seed = 0
    baseline = true           # also train every site alone, same epoch budget
    workdir = "fl-run"        # relative to this file (default ./bci-fl-<file name>);
                              # a simulated site's folder is <workdir>/<site name>

    [model]                   # bci.decoders.fleeg.FLEEGClassifier keyword arguments
    batch_size = 16
    lr = 0.003

    [screening]               # before aggregation
    norm_factor = 10.0        # reject an update farther from the global model than this
                              # × the round's (lower) median distance
    max_norm = 1e4            # and any update farther than this

    [dp]                      # optional: Flower's central-DP fixed-clipping wrappers
    enabled = false
    clipping = "server"       # or "client" (Flower's fixedclipping_mod in the ClientApp)
    noise_multiplier = 1.0
    clipping_norm = 10.0
    delta = 1e-5

    [simulation]
    engine = "ray"            # Flower's simulation runtime; or "deployment" (loopback)
    num_cpus = 2
    cpus_per_site = 1

    [[site]]                  # one table per site
    name = "clinic-8ch"
    kind = "planted"          # bci.datasets.planted_sites.make_site
    n_channels = 8
    sfreq = 128.0
    n_trials = 40
    seed = 1
    test_fraction = 0.5

    [[site]]
    name = "eegbci"
    kind = "eegbci"           # bci.datasets.planted_sites.load_eegbci_site
    folder = "../../shared/data/MNE-eegbci-data"   # relative to this file; or $BCI_DATA
    subjects = [1]

    [[site]]
    name = "our-lab"
    kind = "recordings"       # bci.datasets.planted_sites.load_recordings_site: own files
    files = ["rec/s01.xdf", "rec/s02.fif"]           # relative to this file
    events = { left_hand = "left", right_hand = "right" }   # marker → class
    tmin = 0.5
    tmax = 2.5

A site file for ``bci fl site --data SITE.toml`` holds one ``[site]`` table (the same
keys, plus ``workdir``: the site's own folder for its layers and models), or
``[[site]]`` tables from which ``--site NAME`` picks one.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bci.config import check, check_table, load_toml, no_unknown
from bci.errors import ConfigError
from bci.federated.certs import check_site_name

#: FLEEGClassifier keywords a federation may set ([model]); sfreq, epochs and seed
#: come from the site and the federation.
MODEL_KEYS = frozenset({"batch_size", "lr", "weight_decay", "F1", "D", "F2", "shared_times",
                        "shared_kernel", "kernel_seconds", "dropout"})
#: What a misbehaving test site sends instead of its update.
MISBEHAVIOURS = ("nan", "huge")


#: How messages name the files read here.
WHAT = "federation/site file"


@dataclass(slots=True)
class SiteConfig:
    """One site: where its data come from and where its own files live.

    Attributes
    ----------
    name : str
    kind : {"planted", "eegbci", "recordings"}
    params : dict
        The data source's arguments (``make_site``, ``load_eegbci_site`` or
        ``load_recordings_site``: a site's own files, ``files`` and ``events``).
    test_fraction : float
        Held-out share of the site's windows (stratified).
    split_seed : int
    workdir : Path | None
        The site's own folder (site layers between rounds and runs, its model). In a
        simulation, ``<federation workdir>/<name>`` unless given.
    misbehave : str | None
        Testing only: "nan" sends NaN weights, "huge" weights scaled by 1e6.
    local_epochs, batch_size : int | None
        The site's own training schedule, overriding the federation's (a site with a
        handful of windows takes small batches and more epochs per round, or it would
        make one update per round); its local-only baseline gets the same schedule.
    """

    name: str
    kind: str
    params: dict[str, Any]
    test_fraction: float = 0.3
    split_seed: int = 0
    workdir: Path | None = None
    misbehave: str | None = None
    local_epochs: int | None = None
    batch_size: int | None = None

    COMMON: ClassVar[frozenset[str]] = frozenset(
        {"name", "kind", "test_fraction", "split_seed", "workdir", "misbehave",
         "local_epochs", "batch_size"})
    PLANTED: ClassVar[frozenset[str]] = frozenset(
        {"n_channels", "sfreq", "n_trials", "seed", "structure_seed", "classes", "tmin",
         "tmax", "snr"})
    EEGBCI: ClassVar[frozenset[str]] = frozenset(
        {"folder", "subjects", "runs", "tmin", "tmax", "l_freq", "h_freq"})
    RECORDINGS: ClassVar[frozenset[str]] = frozenset(
        {"files", "events", "ch_names", "tmin", "tmax", "l_freq", "h_freq"})

    @classmethod
    def from_table(cls, t: dict, where: str, *, base: Path) -> SiteConfig:
        """Validate one ``[site]`` table; relative paths are relative to ``base``."""
        check_table(t, where)
        name = check_site_name(check(t, "name", str, where), where=f"{where}.name")
        kind = check(t, "kind", str, where, "planted",
                     choices=("planted", "eegbci", "recordings"))
        extra = {"planted": cls.PLANTED, "eegbci": cls.EEGBCI,
                 "recordings": cls.RECORDINGS}[kind]
        no_unknown(t, cls.COMMON | extra, where)
        params: dict[str, Any] = {}
        if kind == "recordings":
            files = check(t, "files", list, where)
            if not files or not all(isinstance(f, str) for f in files):
                raise ConfigError(f"{where}.files: expected a list of recording paths, found "
                                  f"{files!r}")
            params["files"] = [str((base / Path(f).expanduser()).resolve()) for f in files]
            events = check(t, "events", dict, where)
            if not events or not all(isinstance(v, str) for v in events.values()):
                raise ConfigError(f"{where}.events: expected a table of marker = class, "
                                  f"found {events!r}")
            params["events"] = {str(k): v for k, v in events.items()}
            if "ch_names" in t:
                params["ch_names"] = check(t, "ch_names", list, where, items=str, min_items=1)
            for key in ("tmin", "tmax", "l_freq", "h_freq"):
                if key in t:
                    params[key] = check(t, key, float, where)
            params["name"] = name
        elif kind == "planted":
            params["n_channels"] = check(t, "n_channels", int, where, at_least=1)
            params["sfreq"] = check(t, "sfreq", float, where, above=0)
            params["n_trials"] = check(t, "n_trials", int, where, at_least=1)
            params["seed"] = check(t, "seed", int, where)
            params["structure_seed"] = check(t, "structure_seed", int, where, 0)
            for key in ("tmin", "tmax", "snr"):
                if key in t:
                    params[key] = check(t, key, float, where)
            if "classes" in t:
                params["classes"] = [str(c) for c in check(t, "classes", list, where)]
        else:
            folder = check(t, "folder", str, where, None)
            if folder is None:
                data = os.environ.get("BCI_DATA")
                if data is None:
                    raise ConfigError(f"{where}.folder: required (the MNE-eegbci-data "
                                      "folder) unless BCI_DATA is set")
                folder = data
            params["folder"] = str((base / Path(folder).expanduser()).resolve())
            for key in ("subjects", "runs"):
                if key in t:
                    params[key] = check(t, key, list, where, items=int, min_items=1)
            for key in ("tmin", "tmax", "l_freq", "h_freq"):
                if key in t:
                    params[key] = check(t, key, float, where)
        workdir = check(t, "workdir", str, where, None)
        misbehave = check(t, "misbehave", str, where, None, choices=(*MISBEHAVIOURS, None))
        return cls(name=name, kind=kind, params=params,
                   test_fraction=check(t, "test_fraction", float, where, 0.3, above=0, below=1),
                   split_seed=check(t, "split_seed", int, where, 0),
                   workdir=None if workdir is None else (base / workdir).resolve(),
                   misbehave=misbehave,
                   local_epochs=check(t, "local_epochs", int, where, None, at_least=1)
                   if "local_epochs" in t else None,
                   batch_size=check(t, "batch_size", int, where, None, at_least=1)
                   if "batch_size" in t else None)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for JSON, node configs and pickling into Flower's workers)."""
        d = asdict(self)
        d["workdir"] = None if self.workdir is None else str(self.workdir)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SiteConfig:
        return cls(**{**d, "workdir": None if d.get("workdir") is None
                      else Path(d["workdir"])})


@dataclass(slots=True)
class ScreeningConfig:
    """Which updates are refused before aggregation (see :mod:`bci.federated.strategy`)."""

    norm_factor: float = 10.0
    max_norm: float = 1e4

    @classmethod
    def from_table(cls, t: dict, where: str = "screening") -> ScreeningConfig:
        no_unknown(t, {"norm_factor", "max_norm"}, where)
        return cls(norm_factor=check(t, "norm_factor", float, where, 10.0, above=1),
                   max_norm=check(t, "max_norm", float, where, 1e4, above=0))


@dataclass(slots=True)
class DPConfig:
    """Central differential privacy through Flower's fixed-clipping strategy wrappers."""

    enabled: bool = False
    clipping: str = "server"
    noise_multiplier: float = 1.0
    clipping_norm: float = 10.0
    delta: float = 1e-5

    @classmethod
    def from_table(cls, t: dict, where: str = "dp") -> DPConfig:
        no_unknown(t, {"enabled", "clipping", "noise_multiplier", "clipping_norm", "delta"},
                   where)
        return cls(enabled=check(t, "enabled", bool, where, True),
                   clipping=check(t, "clipping", str, where, "server",
                                  choices=("server", "client")),
                   noise_multiplier=check(t, "noise_multiplier", float, where, 1.0, above=0),
                   clipping_norm=check(t, "clipping_norm", float, where, 10.0, above=0),
                   delta=check(t, "delta", float, where, 1e-5, above=0, below=1))


@dataclass(slots=True)
class SimulationConfig:
    """How ``bci fl simulate`` runs the sites on one machine."""

    engine: str = "ray"
    num_cpus: int = 2
    cpus_per_site: float = 1.0

    @classmethod
    def from_table(cls, t: dict, where: str = "simulation") -> SimulationConfig:
        no_unknown(t, {"engine", "num_cpus", "cpus_per_site"}, where)
        return cls(engine=check(t, "engine", str, where, "ray",
                                choices=("ray", "deployment")),
                   num_cpus=check(t, "num_cpus", int, where, 2, at_least=1),
                   cpus_per_site=check(t, "cpus_per_site", float, where, 1.0, above=0))


@dataclass(slots=True)
class FederationConfig:
    """A federation: rounds, model, screening, privacy, and (for a simulation) sites."""

    rounds: int = 8
    local_epochs: int = 3
    min_sites: int = 2
    round_timeout: float = 300.0
    classes: list[str] = field(default_factory=lambda: ["left", "right"])
    seed: int = 0
    baseline: bool = True
    workdir: Path = Path("fl-run")
    model: dict[str, Any] = field(default_factory=dict)
    screening: ScreeningConfig = field(default_factory=ScreeningConfig)
    dp: DPConfig = field(default_factory=DPConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    sites: list[SiteConfig] = field(default_factory=list)
    path: Path | None = None
    _own_workdir: frozenset[str] = frozenset()  # sites whose table names their folder

    FEDERATION: ClassVar[frozenset[str]] = frozenset(
        {"rounds", "local_epochs", "min_sites", "round_timeout", "classes", "seed",
         "baseline", "workdir", "name"})

    @classmethod
    def load(cls, path: str | Path) -> FederationConfig:
        """Read and validate a federation file; errors name the file and the key."""
        path = Path(path).resolve()
        d = load_toml(path, what=WHAT)
        try:
            return cls.from_dict(d, base=path.parent, path=path)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None

    @classmethod
    def from_dict(cls, d: dict, *, base: Path, path: Path | None = None) -> FederationConfig:
        no_unknown(d, {"federation", "model", "screening", "dp", "simulation", "site"}, "")
        where = "federation"
        fed = check_table(d.get("federation", {}), where)
        no_unknown(fed, cls.FEDERATION, where)
        classes = [str(c) for c in check(fed, "classes", list, where, ["left", "right"])]
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ConfigError(f"{where}.classes: expected at least 2 distinct labels, "
                              f"found {classes}")
        model = check_table(d.get("model", {}), "model")
        no_unknown(model, set(MODEL_KEYS), "model")
        for key, value in model.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"model.{key}: expected a number, found {value!r}")
        raw_sites = d.get("site", [])
        if isinstance(raw_sites, dict):
            raw_sites = [raw_sites]
        if not isinstance(raw_sites, list):
            raise ConfigError(f"site: expected [[site]] tables, found {raw_sites!r}")
        if "workdir" in fed:
            workdir = (base / check(fed, "workdir", str, where)).resolve()
        else:
            stem = path.stem if path is not None else "federation"
            workdir = (Path.cwd() / f"bci-fl-{stem}").resolve()
        sites = [SiteConfig.from_table(t, f"site[{i}]", base=base)
                 for i, t in enumerate(raw_sites)]
        names = [s.name for s in sites]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"site.name: expected distinct site names, found {dup} twice")
        cfg = cls(
            rounds=check(fed, "rounds", int, where, 8, at_least=1),
            local_epochs=check(fed, "local_epochs", int, where, 3, at_least=1),
            min_sites=check(fed, "min_sites", int, where, 2, at_least=1),
            round_timeout=check(fed, "round_timeout", float, where, 300.0, above=0),
            classes=classes,
            seed=check(fed, "seed", int, where, 0),
            baseline=check(fed, "baseline", bool, where, True),
            workdir=workdir,
            model=dict(model),
            screening=ScreeningConfig.from_table(d.get("screening", {})),
            dp=DPConfig.from_table(d["dp"]) if "dp" in d else DPConfig(),
            simulation=SimulationConfig.from_table(d.get("simulation", {})),
            sites=sites,
            path=path,
            _own_workdir=frozenset(s.name for s in sites if s.workdir is not None),
        )
        if sites and cfg.min_sites > len(sites):
            raise ConfigError(f"federation.min_sites: expected at most the {len(sites)} "
                              f"sites, found {cfg.min_sites}")
        return cfg

    def resolve_sites(self, workdir: str | Path | None = None) -> list[SiteConfig]:
        """Give every site without a ``workdir`` of its own ``<workdir>/<name>``.

        Parameters
        ----------
        workdir : path | None
            Replaces the federation's ``workdir`` first (``bci fl simulate --workdir``).
        """
        if workdir is not None:
            self.workdir = Path(workdir).resolve()
        for s in self.sites:
            if s.name not in self._own_workdir:
                s.workdir = self.workdir / s.name
        return self.sites

    def require_sites(self, n: int = 2) -> None:
        """Raise ConfigError unless at least ``n`` ``[[site]]`` tables are given."""
        if len(self.sites) < n:
            where = self.path or "federation file"
            raise ConfigError(f"{where}: site: expected at least {n} [[site]] tables for a "
                              f"simulation, found {len(self.sites)}")

    def server_settings(self) -> dict[str, Any]:
        """What the ServerApp needs (everything but the sites), as plain values."""
        return {
            "rounds": self.rounds, "local_epochs": self.local_epochs,
            "min_sites": self.min_sites, "round_timeout": self.round_timeout,
            "classes": list(self.classes), "seed": self.seed, "baseline": self.baseline,
            "model": dict(self.model), "screening": asdict(self.screening),
            "dp": asdict(self.dp),
        }


def load_site(path: str | Path, *, name: str | None = None) -> SiteConfig:
    """Read one site from a site file (``[site]``) or a federation file (``[[site]]``).

    Parameters
    ----------
    path : path
    name : str | None
        Which ``[[site]]`` to take when the file lists several.

    Raises
    ------
    ConfigError
        When the file has no site of that name, or several and no name is given.
    """
    path = Path(path).resolve()
    d = load_toml(path, what=WHAT)
    raw = d.get("site")
    tables = [raw] if isinstance(raw, dict) else raw if isinstance(raw, list) else None
    if not tables:
        raise ConfigError(f"{path}: site: expected a [site] table, found none")
    if name is None:
        if len(tables) != 1:
            names = [t.get("name") for t in tables if isinstance(t, dict)]
            raise ConfigError(f"{path}: site: {len(tables)} sites ({names}); expected "
                              "--site NAME to pick one")
        chosen = tables[0]
    else:
        matches = [t for t in tables if isinstance(t, dict) and t.get("name") == name]
        if not matches:
            names = [t.get("name") for t in tables if isinstance(t, dict)]
            raise ConfigError(f"{path}: site: expected a site named {name!r}, found {names}")
        chosen = matches[0]
    try:
        site = SiteConfig.from_table(chosen, "site", base=path.parent)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    if site.workdir is None:
        # a deployed site's own folder: beside its file unless the file says where
        site.workdir = (path.parent / f"bci-fl-{site.name}").resolve()
    return site
