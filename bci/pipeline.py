"""The decoding path shared by live sessions and replay: chain → windows → decoder.

Live and replay run this same object through the same loop (:class:`bci.runner.Loop`);
only the source of chunks and the pacing differ.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import mne
import numpy as np

from bci.chain import Chain
from bci.chunk import Chunk, Markers
from bci.decision import Decision
from bci.decoder import Decoder
from bci.decoder import load_decoder as load_session_decoder
from bci.errors import ConfigError, ModelError, SpecError, StreamMismatchError
from bci.filters import Decimate, FilterBank, SosFilter
from bci.quality import NonFiniteGuard
from bci.recording import RecordedWindows
from bci.retrieval import CandidateBank, bank_folder, is_retrieval, top_k
from bci.session import SessionConfig
from bci.spatial import PickChannels
from bci.spec import WindowSpec
from bci.windowing import EpochWindower, SlidingWindower, Window

log = logging.getLogger(__name__)


def _window_spec(config: SessionConfig, decoder_window: WindowSpec | None) -> WindowSpec:
    w = config.window
    base = decoder_window or WindowSpec(mode=w.mode or "sliding")
    spec = WindowSpec(
        mode=w.mode or base.mode,
        length=w.length if w.length is not None else base.length,
        step=w.step if w.step is not None else base.step,
        tmin=w.tmin if w.tmin is not None else base.tmin,
        tmax=w.tmax if w.tmax is not None else base.tmax,
    )
    if spec.mode == "sliding" and spec.length is None and base.tmin is not None:
        spec.length = base.duration  # an epoch-trained model used on sliding windows
    if spec.mode == "epoch" and spec.tmin is None and base.length is not None:
        spec.tmin, spec.tmax = 0.0, base.length
    try:
        spec.validate("window")
    except SpecError as err:
        raise SpecError(f"{err} (set it in the session's [window] or the decoder spec)") \
            from None
    return spec


def load_decoder(config: SessionConfig, info: mne.Info) -> Decoder:
    """The session's decoder, for a stream described by ``info``.

    Raises
    ------
    ConfigError
        Naming the session file and the key: a model file that does not exist, or
        options the stream cannot serve (an FBCCA frequency above Nyquist).
    """
    where = str(config.path or "session")
    decoder = config.require_decoder()
    if decoder.kind == "onnx" and decoder.path is not None and not Path(decoder.path).is_file():
        raise ConfigError(f"{where}: decoder.path: file {decoder.path} does not exist")
    try:
        return load_session_decoder(decoder, info=info,
                                    window=lambda: _window_spec(config, None))
    except ConfigError as err:
        if str(err).startswith(where):
            raise
        raise ConfigError(f"{where}: {err}") from None


def _is_filter(node) -> bool:
    return isinstance(node, SosFilter | FilterBank | Decimate)


class Pipeline:
    """Chain, windower and decoder for one stream, checked against each other at start.

    Parameters
    ----------
    config : SessionConfig
    info : mne.Info
        The stream's channels and sampling rate.
    clock : callable
        Returns seconds; the LSL clock live, a performance counter in replay.
    decoder : Decoder | None
        Use this decoder instead of the one the session names.
    align : {"grid", "newest"}
        Where sliding windows end (:class:`bci.windowing.SlidingWindower`): ``"grid"``
        offline, the session's ``[window] align`` live.
    stops : array of int | None
        End sliding windows exactly there instead (replaying a live session's stops).

    Raises
    ------
    StreamMismatchError
        When the stream's rate or channels do not match the decoder's spec, naming what
        was expected and what was found.
    """

    def __init__(self, config: SessionConfig, info: mne.Info, *,
                 clock: Callable[[], float], decoder: Decoder | None = None,
                 align: str = "grid", stops: np.ndarray | None = None) -> None:
        self.config = config
        self.align, self.stops = align, stops
        self.clock = clock
        self.decoder = decoder or load_decoder(config, info)
        spec = self.decoder.spec
        sfreq = float(info["sfreq"])
        if not math.isclose(sfreq, spec.sfreq, rel_tol=1e-6):
            raise StreamMismatchError(
                f"decoder {spec.name or ''} expects a stream at {spec.sfreq:g} Hz, found "
                f"{sfreq:g} Hz"
            )
        self.window_spec = _window_spec(config, spec.window)
        self.guard = NonFiniteGuard()
        session_file = str(config.path or "session")
        model_file = str(getattr(self.decoder, "path", None) or f"decoder {spec.name or ''}")
        chain_nodes = Chain.from_config(config.chain, where="chain.nodes").nodes
        spec_nodes = Chain.from_config(spec.preprocessing, where="decoder preprocessing").nodes
        nodes = [self.guard, *chain_nodes, PickChannels(ch_names=spec.ch_names), *spec_nodes]
        # where each node was configured, for errors that name the key
        keys = ["", *(f"{session_file}: chain.nodes[{i}]" for i in range(len(chain_nodes))),
                "", *(f"{model_file}: spec preprocessing[{i}]" for i in range(len(spec_nodes)))]
        self.decimation = 1
        if isinstance(nodes[-1], Decimate):
            # the windower decimates, counting back from each window's newest sample
            last = nodes.pop()
            nodes.append(last.antialias)
            self.decimation = last.factor
        self.chain = Chain(nodes)
        out_info = info
        for node, key in zip(nodes, keys, strict=True):
            try:
                out_info = node.setup(out_info)
            except ValueError as err:
                if key and _is_filter(node):
                    raise ConfigError(f"{key} ({node.kind}): {err} (the stream is at "
                                      f"{sfreq:g} Hz)") from None
                raise StreamMismatchError(
                    f"{err} (stream has {len(info['ch_names'])} channels at {sfreq:g} Hz)"
                ) from None
        self.out_info = out_info
        self.windower = self._make_windower()
        sample_shape = self._sample_shape()
        self.windower.setup(float(out_info["sfreq"]), sample_shape)
        expected = self.decoder.input_shape()
        found = (*sample_shape, self.windower.n_times())
        if found[-1] < 2:
            raise StreamMismatchError(
                f"{session_file}: window: a {self.window_spec.mode} window of "
                f"{self.window_spec.duration:g} s holds {found[-1]} sample(s) at "
                f"{float(out_info['sfreq']) / self.decimation:g} Hz; expected at least 2 "
                "(is the stream's rate right?)")
        if len(expected) != len(found) or any(
            e is not None and e != f for e, f in zip(expected, found, strict=False)
        ):
            where = getattr(self.decoder, "path", None)
            raise StreamMismatchError(
                f"decoder{f' {where}' if where else ''} takes windows of shape "
                f"{expected}; the chain and window "
                f"({self.window_spec.mode}, {self.window_spec.duration:g} s at "
                f"{float(out_info['sfreq']) / self.decimation:g} Hz) give {found}"
            )
        self.n_decisions = 0
        self._batch_ok: bool | None = None  # batched decoding checked identical (decode_batch)
        self._batch_sizes: set[int] = set()  # batch sizes checked so far
        self.bank, self.top_k = self._retrieval(spec)
        self._check_outputs(found)

    def _check_outputs(self, window_shape: tuple[int, ...]) -> None:
        """A model with a dynamic output size: one dry run on zeros gives its length."""
        check = getattr(self.decoder, "check_outputs", None)
        if check is None or getattr(self.decoder, "n_outputs", None) is not None:
            return
        out = self.decoder.run(np.zeros(window_shape, np.float32))
        self.decoder.n_outputs = int(np.asarray(out).size)
        check(self.decoder.n_outputs)

    def _retrieval(self, spec) -> tuple[CandidateBank | None, int | None]:
        """The candidate bank of an embedding decoder, and how many candidates to name."""
        d = self.config.decoder
        top = d.top_k if d is not None else 5
        model = getattr(self.decoder, "path", None)
        folder = bank_folder(spec, None if model is None else Path(model),
                             d.bank if d is not None else None)
        if spec.output == "embedding" and folder is not None:
            bank = CandidateBank.load(folder)
            return bank, min(top, len(bank.names))
        if folder is not None and not is_retrieval(spec):
            raise ConfigError(f"decoder.bank: the decoder outputs {spec.output!r}, not an "
                              "embedding; a candidate bank needs output = 'embedding'")
        if is_retrieval(spec):
            return None, min(top, len(spec.classes))
        return None, None

    def _sample_shape(self) -> tuple[int, ...]:
        n_channels = len(self.out_info["ch_names"])
        banks = [n for n in self.chain.nodes if isinstance(n, FilterBank)]
        return (len(banks[-1].bands), n_channels) if banks else (n_channels,)

    def _make_windower(self):
        w, events = self.window_spec, self.config.window.events
        if w.mode == "sliding":
            return SlidingWindower(length=w.length, step=w.step, events=events,
                                   flag_margin=self.config.window.flag_margin,
                                   decimation=self.decimation, align=self.align,
                                   stops=self.stops)
        return EpochWindower(tmin=w.tmin, tmax=w.tmax, events=events,
                             flag_margin=self.config.window.flag_margin,
                             decimation=self.decimation)

    def recorded_window(self) -> dict[str, float | str] | None:
        """What a session recording keeps of the sliding window (None: epochs)."""
        w = self.window_spec
        if w.mode != "sliding":
            return None
        return {"length": w.length, "step": w.step, "align": self.align}

    def cut_as_recorded(self, windows: RecordedWindows | None) -> bool:
        """Cut sliding windows where a recorded live session cut them, if they fit.

        Returns whether the recorded stops are used: they are when the recording has
        some, for a sliding window of the same length and step, and the session aligned
        its windows otherwise than on the grid (a grid replays as it was anyway).
        """
        w = self.window_spec
        if (windows is None or w.mode != "sliding" or windows.align == "grid"
                or not windows.stops.size or not windows.fits(w.length, w.step)):
            if windows is not None and w.mode == "sliding" and windows.align != "grid":
                log.info("the recording's window ends (%g s every %g s) do not fit this "
                         "session's window (%g s every %g s); windows end on the grid",
                         windows.length, windows.step, w.length, w.step)
            return False
        self.stops = windows.stops
        self.windower = self._make_windower()
        self.windower.setup(float(self.out_info["sfreq"]), self._sample_shape())
        return True

    @property
    def default_backlog(self) -> int:
        """Windows waiting for the decoder before the oldest is dropped.

        Sliding windows: 1 (only the newest matters). Epochs: 16 (each is a trial).
        """
        if self.config.window.backlog is not None:
            return self.config.window.backlog
        return 1 if self.window_spec.mode == "sliding" else 16

    def process(self, chunk: Chunk, arrived: float) -> list[Window]:
        """Run the chain on a raw chunk and return the windows it completes.

        Parameters
        ----------
        chunk : Chunk
            Raw samples from the source.
        arrived : float
            Clock reading when the source handed the chunk over.
        """
        out = self.chain.process(chunk)
        filtered = self.clock()
        windows = self.windower.push(out)
        cut = self.clock()
        for w in windows:
            w.timings.update(arrived=arrived, filtered=filtered, cut=cut)
        return windows

    def add_markers(self, markers: Markers, arrived: float) -> list[Window]:
        """Take markers; return the epochs they complete (their data already here)."""
        self.windower.add_markers(markers)
        if isinstance(self.windower, EpochWindower):
            windows = self.windower.push(None)
            cut = self.clock()
            for w in windows:
                w.timings.update(arrived=arrived, filtered=arrived, cut=cut)
            return windows
        return []

    def decode(self, window: Window, *, live: bool) -> Decision:
        """Run the decoder on a window and stamp the decision's latency stages.

        Live, ``emitted`` is the LSL clock just before the decision leaves and the
        stages add up to ``emitted − last_sample_time`` (``pull`` is transport and
        waiting from the sample's timestamp to its arrival here). In replay the data's
        timestamps are not on the clock: ``pull`` is 0 and there is no ``emitted``.
        """
        start = self.clock()
        output = self.decoder.run(window.data)
        inferred = self.clock()
        return self._decision(window, output, start, inferred, inferred - start, live=live)

    def decode_batch(self, windows: list[Window]) -> list[Decision]:
        """Decode windows of a recording in one decoder call (unpaced replay).

        The decisions are those :meth:`decode` gives one window at a time: a decoder
        that cannot batch (no ``run_batch``) is called per window, and one whose
        batched output differs in any bit from its single-window output is used one
        window at a time from then on (checked on the first batch of each size). Each decision's
        ``inference`` stage is its share of the batch's time; ``queue`` includes the
        wait for the batch to fill.

        Parameters
        ----------
        windows : list of Window
            In the order they were cut.

        Returns
        -------
        list of Decision
            One per window, in order.
        """
        run_batch = getattr(self.decoder, "run_batch", None)
        if run_batch is None or len(windows) < 2 or self._batch_ok is False:
            return [self.decode(w, live=False) for w in windows]
        start = self.clock()
        outputs = run_batch(np.stack([w.data for w in windows]))
        inferred = self.clock()
        if len(windows) not in self._batch_sizes:
            # one window at a time must give exactly the same numbers (byte-identical
            # replays); kernels may differ by batch size, so each new size is checked,
            # and one that differs makes the rest of the replay fall back
            probe = [0, len(windows) - 1]
            self._batch_ok = all(
                np.array_equal(self.decoder.run(windows[i].data), outputs[i]) for i in probe)
            if not self._batch_ok:
                return [self.decode(w, live=False) for w in windows]
            self._batch_sizes.add(len(windows))
        share = (inferred - start) / len(windows)
        return [self._decision(w, out, start, inferred, share, live=False)
                for w, out in zip(windows, outputs, strict=True)]

    def _decision(self, window: Window, output: np.ndarray, start: float, inferred: float,
                  inference: float, *, live: bool) -> Decision:
        if not np.all(np.isfinite(output)):
            raise ModelError(f"the decoder returned non-finite output {output}")
        spec = self.decoder.spec
        classes = spec.classes if spec.output in ("probabilities", "logits", "scores") else []
        if self.bank is not None:  # retrieval: rank the embedding against the candidates
            output = self.bank.similarities(output)
            classes = self.bank.names
        label = classes[int(np.argmax(output))] if classes else None
        decision = Decision(
            index=self.n_decisions, label=label, output=output, classes=classes,
            last_sample_time=window.last_timestamp, stop=window.stop,
            true_label=window.label, marker=window.marker,
            candidates=None if self.top_k is None else top_k(output, classes, self.top_k),
        )
        self.n_decisions += 1
        t = window.timings
        emitted = self.clock()
        decision.stages = {
            "pull": (t["arrived"] - window.last_timestamp) if live else 0.0,
            "filter": t["filtered"] - t["arrived"],
            "window": t["cut"] - t["filtered"],
            "queue": start - t["cut"],
            "inference": inference,
            "emit": emitted - inferred,
        }
        if live:
            decision.emitted = emitted
        return decision

    def reset(self) -> None:
        self.chain.reset()
        self.windower.reset()
        self.n_decisions = 0

