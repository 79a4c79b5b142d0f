"""Session files: a TOML description of source, chain, windowing, decoder and outputs.

Loaded with :mod:`tomllib` and validated at once; every error names the key, what was
expected and what was found. Example::

    [source]
    stream = "bci-sim-eeg"        # resolve by name (or: type = "EEG", source_id = "...")
    markers = "bci-sim-markers"   # marker stream, optional

    [chain]
    nodes = [{ kind = "notch", freqs = [50.0] }]

    [window]
    mode = "epoch"                # or "sliding" with length and step
    tmin = 0.14
    tmax = 1.64
    events = { "8Hz" = "8Hz", "10Hz" = "10Hz" }

    [decoder]
    kind = "fbcca"                # or "onnx" with path = "model.onnx"
    frequencies = [8.0, 10.0]

    [outputs]
    lsl = "bci-decisions"
    jsonl = "decisions.jsonl"
    record = "session.xdf"
    on_record_error = "continue"  # or "stop": end the session if the recording fails
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from bci import registry
from bci.chain import Chain
from bci.config import check, check_table, load_toml, no_unknown
from bci.errors import ConfigError
from bci.windowing import ALIGNS


@dataclass(slots=True)
class SourceConfig:
    """Where live data come from (ignored in replay but for ``stream`` in XDF).

    ``kind = "lsl"`` (the default) reads LSL streams (``stream``/``type``/``source_id``,
    ``markers``); any other kind names a source of :data:`bci.registry.sources` (such as
    ``"brainflow"``) whose own keys are kept, checked by the plug-in, in ``options``.
    ``scope``, ``gap_tolerance``, ``stall_timeout`` and ``ch_names`` apply to every kind.
    """

    stream: str | None = None
    type: str | None = None
    source_id: str | None = None
    markers: str | None = None
    resolve_timeout: float = 10.0
    scope: str = "machine"
    dejitter: bool = False
    gap_tolerance: float = 0.02
    stall_timeout: float = 1.0
    ch_names: list[str] = field(default_factory=list)
    kind: str = "lsl"
    options: dict[str, Any] = field(default_factory=dict)

    #: Keys every kind of source takes; the other keys of ``KEYS`` are LSL's.
    COMMON_KEYS: ClassVar[frozenset[str]] = frozenset(
        {"kind", "scope", "gap_tolerance", "stall_timeout", "ch_names"})
    KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "kind",
            "stream",
            "type",
            "source_id",
            "markers",
            "resolve_timeout",
            "scope",
            "dejitter",
            "gap_tolerance",
            "stall_timeout",
            "ch_names",
        }
    )

    @classmethod
    def from_table(cls, t: dict, where: str = "source", base: Path = Path()) -> SourceConfig:
        kind = check(t, "kind", str, where, "lsl")
        if kind != "lsl":
            return cls._plugin(kind, t, where, base)
        no_unknown(t, cls.KEYS, where)
        c = cls(
            stream=check(t, "stream", str, where, None),
            type=check(t, "type", str, where, None),
            source_id=check(t, "source_id", str, where, None),
            markers=check(t, "markers", str, where, None),
            resolve_timeout=check(t, "resolve_timeout", float, where, 10.0, above=0),
            scope=check(t, "scope", str, where, "machine", choices=("machine", "network")),
            dejitter=check(t, "dejitter", bool, where, False),
            gap_tolerance=check(t, "gap_tolerance", float, where, 0.02, at_least=0),
            stall_timeout=check(t, "stall_timeout", float, where, 1.0, above=0),
            ch_names=check(t, "ch_names", list, where, [], items=str),
        )
        return c

    @classmethod
    def _plugin(cls, kind: str, t: dict, where: str, base: Path) -> SourceConfig:
        """A ``[source]`` of another kind: common keys here, the rest checked by the plug-in
        (its ``OPTIONS`` and ``check_options(table, where=, base=)``, when it has them)."""
        source = registry.sources.get(kind, where=f"{where}.kind").load()
        own = getattr(source, "OPTIONS", None)
        if own is not None:
            no_unknown(t, cls.COMMON_KEYS | frozenset(own), where)
        options = {k: v for k, v in t.items() if k not in cls.COMMON_KEYS}
        if hasattr(source, "check_options"):
            options = source.check_options(options, where=where, base=base)
        return cls(
            kind=kind, options=options,
            scope=check(t, "scope", str, where, "machine", choices=("machine", "network")),
            gap_tolerance=check(t, "gap_tolerance", float, where, 0.02, at_least=0),
            stall_timeout=check(t, "stall_timeout", float, where, 1.0, above=0),
            ch_names=check(t, "ch_names", list, where, [], items=str),
        )


@dataclass(slots=True)
class WindowConfig:
    """Windowing; any key left out is taken from the decoder's spec."""

    mode: str | None = None
    length: float | None = None
    step: float | None = None
    tmin: float | None = None
    tmax: float | None = None
    events: dict[str, str] | None = None
    flag_margin: float = 0.0
    backlog: int | None = None
    #: Live sliding windows end on the newest sample (``"newest"``) or on the fixed grid
    #: a replay cuts (``"grid"``); see :class:`bci.windowing.SlidingWindower`.
    align: str = "newest"

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {"mode", "length", "step", "tmin", "tmax", "events", "flag_margin", "backlog", "align"}
    )

    @classmethod
    def from_table(cls, t: dict, where: str = "window") -> WindowConfig:
        no_unknown(t, cls.KEYS, where)
        events = check(t, "events", dict, where, None)
        if events is not None:
            events = {str(k): str(v) for k, v in events.items()}
        c = cls(
            mode=check(t, "mode", str, where, None, choices=("sliding", "epoch")),
            length=check(t, "length", float, where, None, above=0),
            step=check(t, "step", float, where, None, above=0),
            tmin=check(t, "tmin", float, where, None),
            tmax=check(t, "tmax", float, where, None),
            events=events,
            flag_margin=check(t, "flag_margin", float, where, 0.0),
            backlog=check(t, "backlog", int, where, None, at_least=1),
            align=check(t, "align", str, where, "newest", choices=ALIGNS),
        )
        if c.tmin is not None and c.tmax is not None and not c.tmax > c.tmin:
            raise ConfigError(f"{where}.tmax: expected a value above tmin={c.tmin}, found {c.tmax}")
        return c


@dataclass(slots=True)
class DecoderConfig:
    """``kind = "onnx"`` with ``path``, or a numpy decoder (``"fbcca"``) with options."""

    kind: str
    path: Path | None = None
    threads: int = 1
    options: dict[str, Any] = field(default_factory=dict)
    adapt: bool = False
    save: Path | None = None
    swap_every: int = 10
    bank: Path | None = None
    top_k: int = 5
    #: ``optimize = true``: apply the exact graph rewrites of :mod:`bci.onnx_rewrite` when
    #: loading an ONNX model exported elsewhere (this project's own files hold them).
    optimize: bool = False

    #: ``[decoder]`` keys of an ``.npz`` covariance decoder (``path = "model.npz"``):
    #: ``recenter = "none" | "online"``, ``recenter_warmup`` (windows), ``recenter_forget``
    #: (0 < w ≤ 1); they override what the model was trained with.
    RECENTER_KEYS: ClassVar[tuple[str, ...]] = ("recenter", "recenter_warmup",
                                                "recenter_forget")
    FBCCA_KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "frequencies",
            "classes",
            "phases",
            "n_harmonics",
            "n_bands",
            "bands",
            "ch_names",
            "filter_order",
            "temperature",
            "preprocessing",
        }
    )

    @classmethod
    def from_table(cls, t: dict, where: str = "decoder", base: Path = Path()) -> DecoderConfig:
        # a model file, or a decoder of the registry served without one (FBCCA)
        kinds = ("onnx", *registry.decoders.names(served_without_training=True))
        kind = check(t, "kind", str, where, "onnx" if "path" in t else ..., choices=kinds)
        threads = check(t, "threads", int, where, 1, at_least=1)
        if kind == "onnx":
            no_unknown(t, {"kind", "path", "threads", "adapt", "save", "swap_every", "bank",
                            "top_k", "optimize", *cls.RECENTER_KEYS}, where)
            path = Path(check(t, "path", str, where))
            # re-centering of a covariance decoder served from an .npz model file
            recenter = {k: v for k, v in (
                ("recenter", check(t, "recenter", str, where, None,
                                   choices=("none", "online"))),
                ("recenter_warmup", check(t, "recenter_warmup", int, where, None,
                                          at_least=0)),
                ("recenter_forget", check(t, "recenter_forget", float, where, None,
                                          above=0.0, at_most=1.0)),
            ) if v is not None}
            if recenter and path.suffix.lower() != ".npz":
                raise ConfigError(f"{where}: {sorted(recenter)} apply to covariance decoders "
                                  f"served from an .npz model file, found path {str(path)!r}")
            save = check(t, "save", str, where, None)
            swap_every = check(t, "swap_every", int, where, 10, at_least=1)
            bank = check(t, "bank", str, where, None)
            top_k = check(t, "top_k", int, where, 5, at_least=1)
            return cls(kind, path if path.is_absolute() else base / path, threads,
                       adapt=check(t, "adapt", bool, where, False),
                       save=None if save is None else base / save, swap_every=swap_every,
                       bank=None if bank is None else (
                           Path(bank) if Path(bank).is_absolute() else base / bank),
                       top_k=top_k, options=recenter,
                       optimize=check(t, "optimize", bool, where, False))
        no_unknown(t, {"kind", "threads"} | cls.FBCCA_KEYS, where)
        freqs = check(t, "frequencies", list, where)
        if not freqs or not all(isinstance(f, int | float) and f > 0 for f in freqs):
            raise ConfigError(
                f"{where}.frequencies: expected a list of positive numbers (Hz), found {freqs!r}"
            )
        options = {k: v for k, v in t.items() if k not in ("kind", "threads")}
        for key, types in (
            ("n_harmonics", int),
            ("n_bands", int),
            ("filter_order", int),
            ("temperature", float),
            ("classes", list),
            ("bands", list),
            ("ch_names", list),
            ("phases", list),
            ("preprocessing", list),
        ):
            if key in options:
                options[key] = check(t, key, types, where)
        return cls(kind, None, threads, options)


@dataclass(slots=True)
class OutputsConfig:
    lsl: str | None = "bci-decisions"
    jsonl: Path | None = None
    record: Path | None = None
    #: What a failed recording (disk full, unwritable) does to the session: "continue"
    #: without it, or "stop" the session (``bci run`` then exits with status 1).
    on_record_error: str = "continue"

    KEYS: ClassVar[frozenset[str]] = frozenset({"lsl", "jsonl", "record", "on_record_error"})

    @classmethod
    def from_table(cls, t: dict, where: str = "outputs", base: Path = Path()) -> OutputsConfig:
        no_unknown(t, cls.KEYS, where)
        lsl = check(t, "lsl", (str, bool), where, "bci-decisions")
        if lsl is True:
            lsl = "bci-decisions"
        jsonl = check(t, "jsonl", str, where, None)
        record = check(t, "record", str, where, None)
        on_record_error = check(t, "on_record_error", str, where, "continue",
                                choices=("continue", "stop"))
        return cls(
            lsl or None,
            None if jsonl is None else base / jsonl,
            None if record is None else base / record,
            on_record_error,
        )


#: Paradigms a session can train for.
PARADIGMS = ("ssvep", "mi", "seeg", "meg")


@dataclass(slots=True)
class TrainingConfig:
    """How ``bci train`` and ``bci evaluate`` build decoders for this session's data.

    ``paradigm`` (``"ssvep"``, ``"mi"``, ``"seeg"`` or ``"meg"``), ``frequencies`` (class
    → Hz, SSVEP), ``ch_names`` (default: every EEG channel), ``gaze_shift`` (seconds added to each
    selection for the ITR, default 0), ``seed``, and per-decoder hyperparameters in
    ``[training.decoders.NAME]`` tables.
    """

    paradigm: str
    frequencies: dict[str, float] = field(default_factory=dict)
    ch_names: list[str] | None = None
    gaze_shift: float = 0.0
    seed: int = 0
    decoders: dict[str, dict[str, Any]] = field(default_factory=dict)

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {"paradigm", "frequencies", "ch_names", "gaze_shift", "seed", "decoders"})

    @classmethod
    def from_table(cls, t: dict, where: str = "training") -> TrainingConfig:
        no_unknown(t, cls.KEYS, where)
        freqs = check(t, "frequencies", dict, where, {})
        for k, v in freqs.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise ConfigError(f"{where}.frequencies.{k}: expected a positive number "
                                  f"(Hz), found {v!r}")
        ch_names = check(t, "ch_names", list, where, None, items=str)
        decoders = check(t, "decoders", dict, where, {})
        for name, opts in decoders.items():
            if not isinstance(opts, dict):
                raise ConfigError(f"{where}.decoders.{name}: expected a table of "
                                  f"hyperparameters, found {opts!r}")
        gaze = check(t, "gaze_shift", float, where, 0.0, at_least=0)
        return cls(
            paradigm=check(t, "paradigm", str, where, choices=PARADIGMS),
            frequencies={str(k): float(v) for k, v in freqs.items()},
            ch_names=ch_names, gaze_shift=gaze, seed=check(t, "seed", int, where, 0),
            decoders=decoders,
        )


@dataclass(slots=True)
class SessionConfig:
    """A whole session, as read from a TOML file."""

    source: SourceConfig
    chain: list[dict[str, Any]]
    window: WindowConfig
    decoder: DecoderConfig | None
    outputs: OutputsConfig
    name: str = "session"
    training: TrainingConfig | None = None
    duration: float | None = None
    path: Path | None = None

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {"session", "source", "chain", "window", "decoder", "outputs", "training"}
    )

    @classmethod
    def from_dict(cls, d: dict, *, path: Path | None = None) -> SessionConfig:
        where = str(path) if path else "session file"
        try:
            no_unknown(d, cls.KEYS, "")
            base = path.parent if path else Path()
            for key in ("source", "chain", "window", "outputs", "session", "training",
                        "decoder"):
                if key in d:
                    check_table(d[key], key)
            # a training description may leave the decoder to `bci train` / `--model`
            if "decoder" not in d and "training" not in d:
                raise ConfigError("decoder: required table [decoder] with kind/path, not found")
            meta = d.get("session", {})
            no_unknown(meta, {"name", "duration"}, "session")
            duration = check(meta, "duration", float, "session", None, above=0)
            chain_t = d.get("chain", {})
            no_unknown(chain_t, {"nodes"}, "chain")
            nodes = check(chain_t, "nodes", list, "chain", [])
            Chain.from_config(nodes, where="chain.nodes")  # validates every node now
            return cls(
                source=SourceConfig.from_table(d.get("source", {}), base=base),
                chain=nodes,
                window=WindowConfig.from_table(d.get("window", {})),
                decoder=(DecoderConfig.from_table(d["decoder"], base=base)
                         if "decoder" in d else None),
                outputs=OutputsConfig.from_table(d.get("outputs", {}), base=base),
                name=check(meta, "name", str, "session", path.stem if path else "session"),
                duration=duration,
                path=path,
                training=(TrainingConfig.from_table(d["training"])
                          if "training" in d else None),
            )
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None

    def with_model(self, model: str | Path, *, threads: int | None = None) -> SessionConfig:
        """A copy whose decoder is the model file ``model`` (``--model`` on the command
        line); an ``.npz`` model keeps the session's ``[decoder] recenter`` options."""
        old = self.decoder
        t = threads if threads is not None else (old.threads if old else 1)
        options = {}
        if old is not None and old.kind == "onnx" and Path(model).suffix.lower() == ".npz":
            options = {k: v for k, v in old.options.items() if k in DecoderConfig.RECENTER_KEYS}
        optimize = old.optimize if old is not None else False
        return replace(self, decoder=DecoderConfig("onnx", Path(model), t, options=options,
                                                   optimize=optimize))

    def require_decoder(self) -> DecoderConfig:
        if self.decoder is None:
            raise ConfigError(f"{self.path or 'session'}: no [decoder] table; name a trained "
                              "model with --model MODEL.onnx or add [decoder] path = ...")
        return self.decoder

    @classmethod
    def load(cls, path: str | Path) -> SessionConfig:
        """Read and validate a session file.

        Raises
        ------
        ConfigError
            Naming the file, the bad key, and the expected and found values.
        """
        path = Path(path)
        return cls.from_dict(load_toml(path, what="session file"), path=path)
