"""Decoders behind one interface: ONNX models (onnxruntime) and numpy decoders (FBCCA).

``Decoder.run(window)`` takes one window and returns the output vector: class
probabilities in the order of ``spec.classes``, or a continuous output or embedding.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import mne
import numpy as np

from bci.errors import ModelError, SpecError
from bci.spec import SPEC_KEY, DecoderSpec, WindowSpec


class Decoder(Protocol):
    spec: DecoderSpec

    def run(self, window: np.ndarray) -> np.ndarray:
        """Decode one window, shape ``(n_channels, n_times)`` or ``(n_bands, …)``."""
        ...

    def input_shape(self) -> tuple[int | None, ...]:
        """Shape of one window the decoder takes; ``None`` where any size is accepted."""
        ...


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class OnnxDecoder:
    """An ``.onnx`` decoder served by onnxruntime.

    Parameters
    ----------
    path : str | Path
        The model file; its ``metadata_props`` must hold the ``bci`` spec.
    threads : int
        onnxruntime intra-op threads (1 keeps latency predictable next to acquisition).
    """

    def __init__(self, path: str | Path, *, threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"decoder file {self.path} does not exist")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises several private exception types
            raise ModelError(
                f"cannot load decoder {self.path}: expected an ONNX model, onnxruntime "
                f"says: {str(err).strip()[:300]}"
            ) from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if SPEC_KEY not in meta:
            raise ModelError(
                f"decoder {self.path} has no '{SPEC_KEY}' entry in its metadata_props; "
                f"found keys {sorted(meta)}. Add one with bci.spec.write_spec"
            )
        try:
            self.spec = DecoderSpec.from_json(meta[SPEC_KEY], source=str(self.path))
        except SpecError as err:
            raise ModelError(str(err)) from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(
                f"decoder {self.path}: expected one input, found {[i.name for i in inputs]}"
            )
        self.input_name = inputs[0].name
        if inputs[0].type != "tensor(float)":
            raise ModelError(
                f"decoder {self.path}: expected a float32 input, found {inputs[0].type}"
            )
        shape = inputs[0].shape
        if len(shape) not in (3, 4):
            raise ModelError(
                f"decoder {self.path}: expected input (batch, channels, times) or (batch, "
                f"bands, channels, times), found shape {shape}"
            )
        self._shape = tuple(d if isinstance(d, int) else None for d in shape[1:])
        self._normalise = self.spec.output in ("logits", "scores")

    def input_shape(self) -> tuple[int | None, ...]:
        return self._shape

    def run(self, window: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: window[None]})[0][0]
        out = np.asarray(out, np.float64).ravel()
        return softmax(out) if self._normalise else out


class NumpyDecoder:
    """A numpy estimator with ``predict_proba`` behind the decoder interface.

    Parameters
    ----------
    estimator : object
        Fitted; ``predict_proba`` takes a batch of windows.
    spec : DecoderSpec
    input_shape : tuple
        Shape of one window.
    """

    def __init__(self, estimator: Any, spec: DecoderSpec, input_shape: tuple[int, ...]) -> None:
        self.estimator, self.spec, self._shape = estimator, spec, tuple(input_shape)

    def input_shape(self) -> tuple[int | None, ...]:
        return self._shape

    def run(self, window: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(window[None])[0], np.float64)


def fbcca_decoder(
    options: Mapping[str, Any], *, info: mne.Info, window: WindowSpec
) -> NumpyDecoder:
    """Build a training-free FBCCA decoder for a stream described by ``info``.

    Parameters
    ----------
    options : mapping
        ``frequencies`` (required), and optionally ``classes``, ``phases``,
        ``n_harmonics``, ``n_bands`` or ``bands``, ``ch_names``, ``filter_order``,
        ``temperature``.
    info : mne.Info
        The stream's channels and sampling rate.
    window : WindowSpec
    """
    from bci.decoders.fbcca import FBCCA, chen_bands

    freqs = options["frequencies"]
    classes = options.get("classes") or [f"{float(f):g}Hz" for f in freqs]
    if len(classes) != len(freqs):
        raise SpecError(
            f"decoder.classes: expected one label per frequency ({len(freqs)}), "
            f"found {len(classes)}"
        )
    sfreq = float(info["sfreq"])
    n_bands = int(options.get("n_bands", 5))
    bands = options.get("bands") or [
        b for b in chen_bands(n_bands, high=min(88.0, 0.45 * sfreq)) if b[0] < b[1]
    ]
    ch_names = options.get("ch_names") or [
        info["ch_names"][i] for i in mne.pick_types(info, eeg=True, exclude=[])
    ] or list(info["ch_names"])
    preprocessing = [*options.get("preprocessing", []), {
        "kind": "filterbank", "bands": bands, "order": int(options.get("filter_order", 4)),
        "ftype": "cheby1", "rp": 0.5,
    }]
    spec = DecoderSpec(
        paradigm="ssvep", classes=[str(c) for c in classes], ch_names=list(ch_names),
        sfreq=sfreq, window=window, preprocessing=preprocessing, output="probabilities",
        name="FBCCA", extra={"frequencies": [float(f) for f in freqs]},
    )
    spec.validate()
    n_times = round(window.duration * sfreq)
    estimator = FBCCA(
        freqs, sfreq=sfreq, n_harmonics=int(options.get("n_harmonics", 5)),
        phases=options.get("phases"), temperature=float(options.get("temperature", 0.02)),
    ).fit(n_times=n_times, n_bands=len(bands))
    return NumpyDecoder(estimator, spec, (len(bands), len(ch_names), n_times))
