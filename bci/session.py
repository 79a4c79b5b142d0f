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
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bci.chain import Chain
from bci.errors import ConfigError


def _type_name(t: Any) -> str:
    names = {
        str: "a string",
        float: "a number",
        int: "an integer",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }
    if isinstance(t, tuple):
        return " or ".join(names.get(x, x.__name__) for x in t)
    return names.get(t, t.__name__)


def _check(
    table: dict,
    key: str,
    types: Any,
    where: str,
    default: Any = ...,
    *,
    choices: tuple | None = None,
) -> Any:
    if key not in table:
        if default is ...:
            raise ConfigError(f"{where}.{key}: required, expected {_type_name(types)}")
        return default
    value = table[key]
    ok = isinstance(value, types) and not (
        isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,))
    )
    if (
        float in (types if isinstance(types, tuple) else (types,))
        and isinstance(value, int)
        and not isinstance(value, bool)
    ):
        ok, value = True, float(value)
    if not ok:
        raise ConfigError(f"{where}.{key}: expected {_type_name(types)}, found {value!r}")
    if choices is not None and value not in choices:
        raise ConfigError(f"{where}.{key}: expected one of {list(choices)}, found {value!r}")
    return value


def _no_unknown(table: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {unknown}; "
            f"expected some of {sorted(known)}"
        )


def _positive(value: float | None, where: str) -> None:
    if value is not None and not value > 0:
        raise ConfigError(f"{where}: expected a positive number, found {value!r}")


@dataclass(slots=True)
class SourceConfig:
    """Which LSL streams to read live (ignored in replay but for ``stream`` in XDF)."""

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

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {
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
    def from_table(cls, t: dict, where: str = "source") -> SourceConfig:
        _no_unknown(t, cls.KEYS, where)
        c = cls(
            stream=_check(t, "stream", str, where, None),
            type=_check(t, "type", str, where, None),
            source_id=_check(t, "source_id", str, where, None),
            markers=_check(t, "markers", str, where, None),
            resolve_timeout=_check(t, "resolve_timeout", float, where, 10.0),
            scope=_check(t, "scope", str, where, "machine", choices=("machine", "network")),
            dejitter=_check(t, "dejitter", bool, where, False),
            gap_tolerance=_check(t, "gap_tolerance", float, where, 0.02),
            stall_timeout=_check(t, "stall_timeout", float, where, 1.0),
            ch_names=_check(t, "ch_names", list, where, []),
        )
        _positive(c.resolve_timeout, f"{where}.resolve_timeout")
        _positive(c.stall_timeout, f"{where}.stall_timeout")
        if c.gap_tolerance < 0:
            raise ConfigError(f"{where}.gap_tolerance: expected ≥ 0 s, found {c.gap_tolerance}")
        return c


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

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {"mode", "length", "step", "tmin", "tmax", "events", "flag_margin", "backlog"}
    )

    @classmethod
    def from_table(cls, t: dict, where: str = "window") -> WindowConfig:
        _no_unknown(t, cls.KEYS, where)
        events = _check(t, "events", dict, where, None)
        if events is not None:
            events = {str(k): str(v) for k, v in events.items()}
        c = cls(
            mode=_check(t, "mode", str, where, None, choices=("sliding", "epoch")),
            length=_check(t, "length", float, where, None),
            step=_check(t, "step", float, where, None),
            tmin=_check(t, "tmin", float, where, None),
            tmax=_check(t, "tmax", float, where, None),
            events=events,
            flag_margin=_check(t, "flag_margin", float, where, 0.0),
            backlog=_check(t, "backlog", int, where, None),
        )
        _positive(c.length, f"{where}.length")
        _positive(c.step, f"{where}.step")
        if c.backlog is not None and c.backlog < 1:
            raise ConfigError(f"{where}.backlog: expected an integer ≥ 1, found {c.backlog}")
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

    KINDS: ClassVar[tuple[str, ...]] = ("onnx", "fbcca")
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
        kind = _check(t, "kind", str, where, "onnx" if "path" in t else ..., choices=cls.KINDS)
        threads = _check(t, "threads", int, where, 1)
        if threads < 1:
            raise ConfigError(f"{where}.threads: expected an integer ≥ 1, found {threads}")
        if kind == "onnx":
            _no_unknown(t, {"kind", "path", "threads", "adapt", "save", "swap_every", "bank",
                            "top_k"}, where)
            path = Path(_check(t, "path", str, where))
            save = _check(t, "save", str, where, None)
            swap_every = _check(t, "swap_every", int, where, 10)
            if swap_every < 1:
                raise ConfigError(f"{where}.swap_every: expected an integer ≥ 1, found "
                                  f"{swap_every}")
            bank = _check(t, "bank", str, where, None)
            top_k = _check(t, "top_k", int, where, 5)
            if top_k < 1:
                raise ConfigError(f"{where}.top_k: expected an integer ≥ 1, found {top_k}")
            return cls(kind, path if path.is_absolute() else base / path, threads,
                       adapt=_check(t, "adapt", bool, where, False),
                       save=None if save is None else base / save, swap_every=swap_every,
                       bank=None if bank is None else (
                           Path(bank) if Path(bank).is_absolute() else base / bank),
                       top_k=top_k)
        _no_unknown(t, {"kind", "threads"} | cls.FBCCA_KEYS, where)
        freqs = _check(t, "frequencies", list, where)
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
                options[key] = _check(t, key, types, where)
        return cls(kind, None, threads, options)


@dataclass(slots=True)
class OutputsConfig:
    lsl: str | None = "bci-decisions"
    jsonl: Path | None = None
    record: Path | None = None

    KEYS: ClassVar[frozenset[str]] = frozenset({"lsl", "jsonl", "record"})

    @classmethod
    def from_table(cls, t: dict, where: str = "outputs", base: Path = Path()) -> OutputsConfig:
        _no_unknown(t, cls.KEYS, where)
        lsl = _check(t, "lsl", (str, bool), where, "bci-decisions")
        if lsl is True:
            lsl = "bci-decisions"
        jsonl = _check(t, "jsonl", str, where, None)
        record = _check(t, "record", str, where, None)
        return cls(
            lsl or None,
            None if jsonl is None else base / jsonl,
            None if record is None else base / record,
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
        _no_unknown(t, cls.KEYS, where)
        freqs = _check(t, "frequencies", dict, where, {})
        for k, v in freqs.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise ConfigError(f"{where}.frequencies.{k}: expected a positive number "
                                  f"(Hz), found {v!r}")
        ch_names = _check(t, "ch_names", list, where, None)
        if ch_names is not None and not all(isinstance(c, str) for c in ch_names):
            raise ConfigError(f"{where}.ch_names: expected a list of strings, found {ch_names!r}")
        decoders = _check(t, "decoders", dict, where, {})
        for name, opts in decoders.items():
            if not isinstance(opts, dict):
                raise ConfigError(f"{where}.decoders.{name}: expected a table of "
                                  f"hyperparameters, found {opts!r}")
        gaze = _check(t, "gaze_shift", float, where, 0.0)
        if gaze < 0:
            raise ConfigError(f"{where}.gaze_shift: expected seconds ≥ 0, found {gaze}")
        return cls(
            paradigm=_check(t, "paradigm", str, where, choices=PARADIGMS),
            frequencies={str(k): float(v) for k, v in freqs.items()},
            ch_names=ch_names, gaze_shift=gaze, seed=_check(t, "seed", int, where, 0),
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
            _no_unknown(d, cls.KEYS, "top level")
            base = path.parent if path else Path()
            for key in ("source", "chain", "window", "outputs", "session", "training",
                        "decoder"):
                if key in d and not isinstance(d[key], dict):
                    raise ConfigError(f"{key}: expected a table [{key}], found {d[key]!r}")
            # a training description may leave the decoder to `bci train` / `--model`
            if "decoder" not in d and "training" not in d:
                raise ConfigError("decoder: required table [decoder] with kind/path, not found")
            meta = d.get("session", {})
            _no_unknown(meta, {"name", "duration"}, "session")
            duration = _check(meta, "duration", float, "session", None)
            _positive(duration, "session.duration")
            chain_t = d.get("chain", {})
            _no_unknown(chain_t, {"nodes"}, "chain")
            nodes = _check(chain_t, "nodes", list, "chain", [])
            Chain.from_config(nodes, where="chain.nodes")  # validates every node now
            return cls(
                source=SourceConfig.from_table(d.get("source", {})),
                chain=nodes,
                window=WindowConfig.from_table(d.get("window", {})),
                decoder=(DecoderConfig.from_table(d["decoder"], base=base)
                         if "decoder" in d else None),
                outputs=OutputsConfig.from_table(d.get("outputs", {}), base=base),
                name=_check(meta, "name", str, "session", path.stem if path else "session"),
                duration=duration,
                path=path,
                training=(TrainingConfig.from_table(d["training"])
                          if "training" in d else None),
            )
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None

    def with_model(self, model: str | Path, *, threads: int | None = None) -> SessionConfig:
        """A copy whose decoder is the ONNX file ``model`` (``--model`` on the command line)."""
        from dataclasses import replace

        old = self.decoder
        t = threads if threads is not None else (old.threads if old else 1)
        return replace(self, decoder=DecoderConfig("onnx", Path(model), t))

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
        if not path.is_file():
            raise ConfigError(f"session file {path} does not exist")
        try:
            d = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from None
        return cls.from_dict(d, path=path)
