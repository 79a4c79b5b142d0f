"""Decoders behind one interface: ONNX models (onnxruntime) and numpy decoders (FBCCA,
and the covariance decoders served from an ``.npz`` model file).

``Decoder.run(window)`` takes one window and returns the output vector: class
probabilities in the order of ``spec.classes``, or a continuous output or embedding.
Decoders served without a model file are found by name in :data:`bci.registry.decoders`
(:func:`load_decoder`), never imported from :mod:`bci.decoders`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from threadpoolctl import ThreadpoolController

from bci import registry
from bci.errors import ConfigError, ModelError, SpecError
from bci.spec import SPEC_KEY, DecoderSpec, WindowSpec

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import mne

    from bci.session import DecoderConfig


class Decoder(Protocol):
    spec: DecoderSpec

    def run(self, window: np.ndarray) -> np.ndarray:
        """Decode one window, shape ``(n_channels, n_times)`` or ``(n_bands, …)``."""
        ...

    def input_shape(self) -> tuple[int | None, ...]:
        """Shape of one window the decoder takes; ``None`` where any size is accepted."""
        ...


def _rewritten(path: Path) -> tuple[str | bytes, int]:
    """What onnxruntime should load for ``path``: the rewritten graph's bytes, or the path.

    The file is served as it is (its path is returned, count 0) when no rewrite applies,
    and also when onnx cannot read it: onnxruntime then loads the path itself and
    reports a malformed file in the host's usual words.
    """
    import onnx

    from bci.onnx_rewrite import spatial_first

    try:
        # load_external_data resolves weights stored beside the file before they are folded
        model = onnx.load(str(path))
        rewritten, count = spatial_first(model)
        return (rewritten.SerializeToString(), count) if count else (str(path), 0)
    except Exception:  # any failure here leaves the file to onnxruntime, unchanged
        return str(path), 0


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
    optimize : bool
        Apply the exact graph rewrites of :mod:`bci.onnx_rewrite` when loading
        (:func:`~bci.onnx_rewrite.spatial_first`: EEGNet's first block ~10× cheaper).
        Models written by this project already hold the rewritten graph
        (:func:`bci.spec.write_spec`); this is for files exported elsewhere, and costs
        importing ``onnx`` (about a second) at start.

    Attributes
    ----------
    rewrites_ : int
        Rewrites applied to the served graph (0 when ``optimize`` is False or nothing
        matched).
    """

    def __init__(self, path: str | Path, *, threads: int = 1, optimize: bool = False) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"decoder file {self.path} does not exist")
        self.rewrites_ = 0
        source: str | bytes = str(self.path)
        if optimize:
            source, self.rewrites_ = _rewritten(self.path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            try:
                self.session = ort.InferenceSession(
                    source, options, providers=["CPUExecutionProvider"]
                )
            except Exception:
                if not self.rewrites_:
                    raise
                # A rewritten graph onnxruntime refuses is the rewrite's fault, not the
                # file's: serve the file as it is.
                log.warning("decoder %s: onnxruntime refused the rewritten graph; serving "
                            "the file as it is", self.path)
                self.rewrites_ = 0
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
        self._dynamic_batch = not isinstance(shape[0], int) or shape[0] != 1
        self._normalise = self.spec.output in ("logits", "scores")
        out_shape = self.session.get_outputs()[0].shape
        last = out_shape[-1] if out_shape else None
        #: Length of the output vector when the model declares it (a static last dim).
        self.n_outputs: int | None = last if isinstance(last, int) else None
        if self.n_outputs is not None:
            self.check_outputs(self.n_outputs)

    def check_outputs(self, n_outputs: int) -> None:
        """Refuse a model whose output does not give one value per class of its spec.

        Raises
        ------
        ModelError
            Naming the file, the classes in the spec and the outputs found.
        """
        if self.spec.output not in ("probabilities", "logits", "scores"):
            return  # continuous outputs and embeddings have no class per value
        if n_outputs != len(self.spec.classes):
            raise ModelError(
                f"decoder {self.path}: its spec names {len(self.spec.classes)} classes "
                f"{self.spec.classes} but the model outputs {n_outputs} values per window; "
                "the spec's classes must match the model's output"
            )

    def input_shape(self) -> tuple[int | None, ...]:
        return self._shape

    def run(self, window: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: window[None]})[0][0]
        out = np.asarray(out, np.float64).ravel()
        return softmax(out) if self._normalise else out

    def run_batch(self, windows: np.ndarray) -> np.ndarray:
        """Decode a stack of windows in one onnxruntime call.

        Parameters
        ----------
        windows : ndarray, shape (n_windows, *input_shape)

        Returns
        -------
        ndarray of float64, shape (n_windows, n_outputs)
            Row ``i`` is what :meth:`run` gives for ``windows[i]`` (where the model's
            kernels do not depend on the batch size; :meth:`bci.pipeline.Pipeline.decode_batch`
            checks). A model with a fixed batch of 1 is run one window at a time.
        """
        if not self._dynamic_batch:
            return np.stack([self.run(w) for w in windows])
        out = self.session.run(None, {self.input_name: windows})[0]
        out = np.asarray(out, np.float64).reshape(len(windows), -1)
        return np.stack([softmax(o) for o in out]) if self._normalise else out


class NumpyDecoder:
    """A numpy estimator with ``predict_proba`` behind the decoder interface.

    BLAS/OpenMP pools are limited to ``threads`` while it decodes: on a busy machine an
    unbounded pool made FBCCA 8× slower (45 ms median for 5.7 ms on one thread) and let
    it starve acquisition. The controller is built once (discovering the loaded BLAS
    libraries costs ~0.3 ms); entering its limit per call costs ~20 µs.

    Parameters
    ----------
    estimator : object
        Fitted; ``predict_proba`` takes a batch of windows.
    spec : DecoderSpec
    input_shape : tuple
        Shape of one window.
    threads : int
        BLAS/OpenMP threads while decoding (``[decoder] threads``, default 1).
    """

    def __init__(self, estimator: Any, spec: DecoderSpec, input_shape: tuple[int, ...], *,
                 threads: int = 1) -> None:
        self.estimator, self.spec, self._shape = estimator, spec, tuple(input_shape)
        self.threads = threads
        self._pools: ThreadpoolController | None = None

    def input_shape(self) -> tuple[int | None, ...]:
        return self._shape

    def run(self, window: np.ndarray) -> np.ndarray:
        if self._pools is None:
            self._pools = ThreadpoolController()
        with self._pools.limit(limits=int(self.threads)):
            return np.asarray(self.estimator.predict_proba(window[None])[0], np.float64)


class NpzDecoder:
    """A decoder served by numpy from one ``.npz`` model file (no pickle).

    The file holds the fitted arrays and, under ``bci``, the spec's JSON; the spec's
    ``extra["decoder"]`` names the decoder of :data:`bci.registry.decoders` whose
    ``file_runtime`` loader turns the arrays into a model with ``run(window)`` and
    ``input_shape()`` (the covariance decoders of :mod:`bci.decoders.riemann`).

    Parameters
    ----------
    path : str | Path
    threads : int
        BLAS/OpenMP threads while decoding (as :class:`NumpyDecoder`).
    options : dict | None
        ``[decoder]`` options passed to the loader (``recenter`` …).

    Raises
    ------
    ModelError
        Naming the file, what was expected and what was found: not a numpy archive,
        truncated, no spec, a decoder not served from ``.npz``, missing or malformed
        arrays.
    """

    def __init__(self, path: str | Path, *, threads: int = 1,
                 options: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"decoder file {self.path} does not exist")
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as err:  # zipfile, zlib, numpy format and OS errors
            raise ModelError(
                f"cannot load decoder {self.path}: expected an .npz model file written by "
                f"bci train, found {type(err).__name__}: {str(err).strip()[:200]} (a "
                "truncated or damaged file?)") from None
        if SPEC_KEY not in arrays or np.asarray(arrays[SPEC_KEY]).dtype.kind != "U" \
                or np.asarray(arrays[SPEC_KEY]).ndim != 0:
            raise ModelError(f"decoder {self.path}: expected a '{SPEC_KEY}' entry holding "
                             f"the spec JSON, found arrays {sorted(arrays)}")
        try:
            self.spec = DecoderSpec.from_json(str(arrays.pop(SPEC_KEY)), source=str(self.path))
        except SpecError as err:
            raise ModelError(str(err)) from None
        name = self.spec.extra.get("decoder", self.spec.name)
        served = [e.name for e in registry.decoders if e.meta.get("file_runtime")]
        if name not in served:
            raise ModelError(f"decoder {self.path}: its spec names decoder {name!r}; expected "
                             f"one served from an .npz file: {served}")
        load = registry.resolve(registry.decoders.get(name).meta["file_runtime"])
        try:
            self.model = load(arrays, options=options or {})
        except (KeyError, ValueError, TypeError) as err:
            raise ModelError(f"decoder {self.path} ({name}): {err}") from None
        classes = [str(c) for c in getattr(self.model, "classes", self.spec.classes)]
        if classes != list(self.spec.classes):
            raise ModelError(f"decoder {self.path}: its spec names classes "
                             f"{self.spec.classes}, its arrays {classes}")
        self.threads = threads
        self._pools: ThreadpoolController | None = None

    def input_shape(self) -> tuple[int | None, ...]:
        return tuple(self.model.input_shape())

    def run(self, window: np.ndarray) -> np.ndarray:
        if self._pools is None:
            self._pools = ThreadpoolController()
        with self._pools.limit(limits=int(self.threads)):
            return np.asarray(self.model.run(window), np.float64)


def open_model(path: str | Path, *, threads: int = 1,
               options: dict[str, Any] | None = None,
               optimize: bool = False) -> OnnxDecoder | NpzDecoder:
    """The decoder of a model file, by its suffix: ``.npz`` (numpy) or ONNX (any other).

    ``optimize`` is passed to :class:`OnnxDecoder` (exact graph rewrites; no effect on an
    ``.npz`` model).

    Raises
    ------
    ModelError
        A missing or unreadable file, or ``options`` an ONNX model does not take.
    """
    if Path(path).suffix.lower() == ".npz":
        return NpzDecoder(path, threads=threads, options=options)
    if options:
        raise ModelError(f"decoder {path}: options {sorted(options)} apply to covariance "
                         "decoders served from an .npz file, not to an ONNX model")
    return OnnxDecoder(path, threads=threads, optimize=optimize)


def load_decoder(decoder: DecoderConfig, *, info: mne.Info,
                 window: Callable[[], WindowSpec]) -> Decoder:
    """The decoder a session's ``[decoder]`` table names, for a stream described by ``info``.

    ``kind = "onnx"`` loads the model file (an ``.npz`` file is served by numpy, see
    :func:`open_model`). Any other kind is a decoder of
    :data:`bci.registry.decoders` served without a model file (FBCCA): its entry's
    ``runtime`` builder makes it from the table's options, the stream's ``info`` and
    the session's window.

    Parameters
    ----------
    decoder : bci.session.DecoderConfig
    info : mne.Info
        The stream's channels and sampling rate.
    window : callable
        Returns the session's window; called only for decoders without a model file
        (an ONNX model declares its own window, so a session may leave it out).

    Raises
    ------
    ConfigError
        When ``kind`` names no decoder served without a model file.
    """
    if decoder.kind == "onnx":
        return open_model(decoder.path, threads=decoder.threads,
                          options=decoder.options or None, optimize=decoder.optimize)
    served = registry.decoders.names(served_without_training=True)
    if decoder.kind not in served:
        hint = ""
        if decoder.kind in registry.decoders:
            hint = (f"; {decoder.kind} is served from its trained model: bci train --decoder "
                    f"{decoder.kind} … --output MODEL.onnx, then [decoder] path = "
                    '"MODEL.onnx"')
        raise ConfigError(f"decoder.kind: expected 'onnx' or one of {served}, found "
                          f"{decoder.kind!r}{hint}")
    build = registry.resolve(registry.decoders.get(decoder.kind).meta["runtime"])
    served_decoder = build(decoder.options, info=info, window=window())
    if isinstance(served_decoder, NumpyDecoder):
        served_decoder.threads = decoder.threads
    return served_decoder
