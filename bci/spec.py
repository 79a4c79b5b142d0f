"""The ``bci`` specification carried by every decoder artifact.

A trained decoder is one ``.onnx`` file whose ``metadata_props`` hold, under the key
``bci``, a JSON object: paradigm, class labels, expected channels and sampling rate,
window, and the preprocessing chain that must run before the model. A session can be
started from the model file and a stream name alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bci.errors import SpecError

SPEC_KEY = "bci"
SPEC_VERSION = 1
PARADIGMS = ("ssvep", "mi", "erp", "seeg", "meg", "other")
OUTPUTS = ("probabilities", "logits", "scores", "continuous", "embedding")
WINDOW_MODES = ("sliding", "epoch")



@dataclass(slots=True)
class WindowSpec:
    """How windows are cut: ``sliding`` (length, step) or ``epoch`` (tmin, tmax)."""

    mode: str = "sliding"
    length: float | None = None
    step: float | None = None
    tmin: float | None = None
    tmax: float | None = None

    @property
    def duration(self) -> float:
        if self.mode == "sliding":
            return float(self.length)
        return float(self.tmax) - float(self.tmin)

    def validate(self, where: str = "window") -> None:
        if self.mode not in WINDOW_MODES:
            raise SpecError(f"{where}.mode: expected one of {WINDOW_MODES}, found {self.mode!r}")
        needed = ("length", "step") if self.mode == "sliding" else ("tmin", "tmax")
        for key in needed:
            value = getattr(self, key)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise SpecError(
                    f"{where}.{key}: expected a number of seconds for mode "
                    f"{self.mode!r}, found {value!r}"
                )
        if self.mode == "sliding" and not (self.length > 0 and self.step > 0):
            raise SpecError(
                f"{where}: length and step must be positive, found {self.length}, {self.step}"
            )
        if self.mode == "epoch" and not self.tmax > self.tmin:
            raise SpecError(f"{where}: tmax must exceed tmin, found {self.tmin}, {self.tmax}")


@dataclass(slots=True)
class DecoderSpec:
    """What a decoder expects and declares.

    Attributes
    ----------
    paradigm : str
        One of ``ssvep``, ``mi``, ``erp``, ``seeg``, ``meg``, ``other``.
    classes : list of str
        Class labels, in the order of the model's outputs.
    ch_names : list of str
        Channels taken from the stream, matched by name and reordered to this order
        before the preprocessing chain runs.
    sfreq : float
        Sampling rate of the stream, in Hz, that the chain expects.
    window : WindowSpec
        Window length/step or epoch limits, in seconds.
    preprocessing : list of dict
        Node configurations (``{"kind": ..., **options}``) run after the channel pick.
    output : str
        What the model returns: ``probabilities``, ``logits`` (softmax is applied),
        ``scores`` (softmax is applied), ``continuous`` or ``embedding``.
    name : str
        A human-readable name of the decoder.
    extra : dict
        Anything decoder-specific (training figures, hyperparameters).
    """

    paradigm: str
    classes: list[str]
    ch_names: list[str]
    sfreq: float
    window: WindowSpec
    preprocessing: list[dict[str, Any]] = field(default_factory=list)
    output: str = "probabilities"
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = SPEC_VERSION

    def validate(self) -> None:
        if self.paradigm not in PARADIGMS:
            raise SpecError(f"paradigm: expected one of {PARADIGMS}, found {self.paradigm!r}")
        if self.output not in OUTPUTS:
            raise SpecError(f"output: expected one of {OUTPUTS}, found {self.output!r}")
        for key in ("classes", "ch_names"):
            value = getattr(self, key)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SpecError(f"{key}: expected a list of strings, found {value!r}")
        if not self.ch_names:
            raise SpecError("ch_names: expected at least one channel name, found []")
        if len(set(self.ch_names)) != len(self.ch_names):
            raise SpecError(f"ch_names: expected unique names, found {self.ch_names}")
        if not isinstance(self.sfreq, int | float) or not self.sfreq > 0:
            raise SpecError(f"sfreq: expected a positive rate in Hz, found {self.sfreq!r}")
        self.window.validate()
        if not isinstance(self.preprocessing, list) or not all(
            isinstance(n, dict) and "kind" in n for n in self.preprocessing
        ):
            raise SpecError(
                f"preprocessing: expected a list of tables with a 'kind' key, found "
                f"{self.preprocessing!r}"
            )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "spec") -> DecoderSpec:
        if not isinstance(d, dict):
            raise SpecError(f"{source}: expected a JSON object, found {type(d).__name__}")
        required = ("paradigm", "classes", "ch_names", "sfreq", "window")
        missing = [k for k in required if k not in d]
        if missing:
            raise SpecError(f"{source}: missing keys {missing}; expected {list(required)}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SpecError(f"{source}: unknown keys {unknown}; expected some of {sorted(known)}")
        window = d["window"]
        if not isinstance(window, dict):
            raise SpecError(f"{source}: window: expected an object, found {window!r}")
        try:
            spec = cls(**{**d, "window": WindowSpec(**window)})
        except TypeError as err:
            raise SpecError(f"{source}: window: {err}") from None
        if spec.version > SPEC_VERSION:
            raise SpecError(
                f"{source}: spec version {spec.version} is newer than this runtime reads "
                f"({SPEC_VERSION}); upgrade the runtime"
            )
        try:
            spec.validate()
        except SpecError as err:
            raise SpecError(f"{source}: {err}") from None
        return spec

    @classmethod
    def from_json(cls, text: str, *, source: str = "spec") -> DecoderSpec:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError(f"{source}: the '{SPEC_KEY}' metadata is not valid JSON: {err}") \
                from None
        return cls.from_dict(d, source=source)


def write_spec(model: Any, spec: DecoderSpec, path: str | Path | None = None, *,
               optimize: bool = True) -> Any:
    """Store ``spec`` in an ONNX model's ``metadata_props`` under ``bci``.

    Parameters
    ----------
    model : onnx.ModelProto | str | Path
        The model, or the path of an ``.onnx`` file.
    spec : DecoderSpec
    path : str | Path | None
        Where to save the model; default: back to ``model`` if it is a path.
    optimize : bool
        Apply the exact graph rewrites of :mod:`bci.onnx_rewrite` first, so that the
        file the runtime serves is already the cheap graph (the host then needs
        onnxruntime only, and no time at start).

    Returns
    -------
    model : onnx.ModelProto
    """
    import onnx

    from bci.onnx_rewrite import spatial_first

    spec.validate()
    if isinstance(model, str | Path):
        path = path or model
        model = onnx.load(str(model))
    if optimize:
        model, _ = spatial_first(model)
    for prop in list(model.metadata_props):
        if prop.key == SPEC_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = SPEC_KEY, spec.to_json()
    if path is not None:
        onnx.save(model, str(path))
    return model
