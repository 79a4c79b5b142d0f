"""Running a session: live from LSL, or in replay from a recording.

Live, one thread acquires (pull → chain → windows, and the session recording) and never
waits for the decoder: windows go to a decode thread through a bounded backlog. When
the decoder falls behind, the oldest waiting window is dropped and counted (sliding
windows keep only the newest; epochs keep up to 16), so the lag cannot grow. Samples are
never dropped. In replay every window is decoded, in order, in the calling thread, as
fast as the machine allows; the output depends on the data alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bci.decision import Decision
from bci.latency import LatencyLog
from bci.outputs import DecisionOutlet, JsonlLog, Sink
from bci.pipeline import Pipeline, replay_windows
from bci.session import SessionConfig
from bci.windowing import Window

log = logging.getLogger(__name__)


@dataclass
class SessionResult:
    """What a session did: its decisions, what was skipped, what the source reported."""

    decisions: list[Decision] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    latency: LatencyLog = field(default_factory=LatencyLog)
    n_samples: int = 0
    duration: float = 0.0

    @property
    def accuracy(self) -> float | None:
        judged = [d.correct for d in self.decisions if d.correct is not None]
        return float(np.mean(judged)) if judged else None

    def summary(self) -> dict:
        return {
            "n_decisions": len(self.decisions),
            "accuracy": self.accuracy,
            "n_samples": self.n_samples,
            "duration_s": self.duration,
            "counts": self.counts,
            "events": self.events,
            "latency_ms": self.latency.summary(),
        }


class DecodeWorker:
    """Decodes windows in its own thread so that acquisition never waits for it.

    Parameters
    ----------
    pipeline : Pipeline
    sinks : iterable of callables
        Called with every decision, in order, from the decode thread.
    window_sinks : iterable of callables
        Called with each window and its decision after the sinks (online learning).
    backlog : int
        Windows that may wait; a new window arriving when the backlog is full drops the
        oldest waiting one (counted in ``skipped_backlog``).
    """

    def __init__(self, pipeline: Pipeline, sinks: Iterable[Sink], *, backlog: int,
                 window_sinks: Iterable[Callable[[Window, Decision], None]] = ()) -> None:
        self.pipeline = pipeline
        self.sinks = list(sinks)
        self.window_sinks = list(window_sinks)
        self.backlog = backlog
        self.skipped_backlog = 0
        self.decisions: list[Decision] = []
        self.error: BaseException | None = None
        self._queue: deque[Window] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="bci-decode", daemon=True)
        self._thread.start()

    def submit(self, window: Window) -> None:
        with self._cond:
            if len(self._queue) >= self.backlog:
                self._queue.popleft()
                self.skipped_backlog += 1
            self._queue.append(window)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                window = self._queue.popleft()
            try:
                decision = self.pipeline.decode(window, live=True)
                for sink in self.sinks:
                    sink(decision)
                for window_sink in self.window_sinks:
                    window_sink(window, decision)
                self.decisions.append(decision)
            except BaseException as err:  # surfaced to the acquisition loop
                self.error = err
                return

    def close(self, timeout: float = 10.0) -> None:
        """Decode what is waiting, then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)


class SessionRecording:
    """The session's own recording: raw input, markers and decisions in one XDF file."""

    def __init__(self, path: Path, info, *, classes: list[str], stream_name: str,
                 source_id: str) -> None:
        from bci.devices.recorder import SessionRecorder

        self._rec = SessionRecorder(path)
        types = info.get_channel_types()
        self.data_id = self._rec.add_stream(
            name=stream_name, type="EEG", channel_count=len(info["ch_names"]),
            nominal_srate=float(info["sfreq"]), channel_format="float32",
            source_id=source_id, ch_names=list(info["ch_names"]), ch_types=types,
            ch_units=["volts"] * len(types),
        )
        self.marker_id = self._rec.add_stream(
            name=f"{stream_name}-markers", type="Markers", channel_count=1, nominal_srate=0.0,
            channel_format="string", source_id=f"{source_id}-markers",
        )
        labels = ["index", *[f"p_{c}" for c in classes]]
        self.decision_id = self._rec.add_stream(
            name=f"{stream_name}-decisions", type="Decisions", channel_count=len(labels),
            nominal_srate=0.0, channel_format="double64", source_id=f"{source_id}-decisions",
            ch_names=labels,
        )
        self._classes = classes

    # SessionRecorder is thread-safe and syncs to disk from its own timer thread.
    def data(self, chunk) -> None:
        self._rec.write(self.data_id, chunk.data, chunk.timestamps)

    def markers(self, markers) -> None:
        self._rec.write(self.marker_id, list(markers.values), markers.timestamps)

    def __call__(self, d: Decision) -> None:
        if not self._classes:
            return
        row = np.array([[self._classes.index(d.label), *d.output]], np.float64).T
        self._rec.write(self.decision_id, row, np.array([d.last_sample_time]))

    def close(self) -> None:
        self._rec.close()


def run_live(
    config: SessionConfig, *, duration: float | None = None,
    stop: threading.Event | None = None, callbacks: Iterable[Callable[[Decision], None]] = (),
    on_ready: Callable[[Pipeline], None] | None = None,
) -> SessionResult:
    """Run a session against live LSL streams.

    Parameters
    ----------
    config : SessionConfig
    duration : float | None
        Seconds to run (default: the session's ``duration``, else until ``stop``).
    stop : threading.Event | None
        Set it to end the session.
    callbacks : iterable of callables
        Called with every decision (e.g. the GUI).
    on_ready : callable | None
        Called with the pipeline once streams are open and checked.
    """
    from bci.lslconfig import configure_lsl

    configure_lsl(config.source.scope)
    from bci.devices.lsl_source import LSLSource, MarkerSource
    from bci.lslconfig import get_pylsl

    pylsl = get_pylsl()
    src_cfg = config.source
    source = LSLSource(
        name=src_cfg.stream, type=src_cfg.type, source_id=src_cfg.source_id,
        resolve_timeout=src_cfg.resolve_timeout, dejitter=src_cfg.dejitter,
        gap_tolerance=src_cfg.gap_tolerance, stall_timeout=src_cfg.stall_timeout,
        ch_names=src_cfg.ch_names or None,
    )
    info = source.open()
    markers = None
    if src_cfg.markers:
        markers = MarkerSource(name=src_cfg.markers, resolve_timeout=src_cfg.resolve_timeout)
        markers.open()
    pipeline = Pipeline(config, info, clock=pylsl.local_clock)
    spec = pipeline.decoder.spec
    result = SessionResult()
    sinks: list[Sink] = []
    closers = []
    # a retrieval decoder's decisions score the bank's candidates, one "class" each
    classes = pipeline.bank.names if pipeline.bank is not None else spec.classes
    if config.outputs.lsl:
        outlet = DecisionOutlet(config.outputs.lsl, classes=classes if (
            pipeline.bank is not None or spec.output in ("probabilities", "logits", "scores")
        ) else [], n_outputs=len(classes))
        sinks.append(outlet)
    if config.outputs.jsonl:
        jsonl = JsonlLog(config.outputs.jsonl, timing=True)
        sinks.append(jsonl)
        closers.append(jsonl.close)
    recording = None
    if config.outputs.record:
        recording = SessionRecording(
            config.outputs.record, info, classes=classes,
            stream_name=src_cfg.stream or source.stream_info.name(),
            source_id=source.stream_info.source_id() or "bci-session",
        )
        sinks.append(recording)
    sinks.append(result.latency.add)
    sinks.extend(callbacks)
    adaptation = None
    dec_cfg = config.require_decoder()
    if dec_cfg.adapt:
        from bci.adaptation import LiveAdaptation, state_path

        adaptation = LiveAdaptation(pipeline, state=state_path(dec_cfg.path),
                                    save=dec_cfg.save, swap_every=dec_cfg.swap_every,
                                    threads=dec_cfg.threads)
    worker = DecodeWorker(pipeline, sinks, backlog=pipeline.default_backlog,
                          window_sinks=[adaptation] if adaptation is not None else [])
    if on_ready is not None:
        on_ready(pipeline)
    duration = duration if duration is not None else config.duration
    t_start = pylsl.local_clock()
    deadline = None if duration is None else t_start + duration
    try:
        while not (stop is not None and stop.is_set()):
            now = pylsl.local_clock()
            if deadline is not None and now >= deadline:
                break
            chunk = source.pull(timeout=0.05)
            arrived = pylsl.local_clock()
            if markers is not None:
                m = markers.pull()
                if len(m):
                    if recording is not None:
                        recording.markers(m)
                    for w in pipeline.add_markers(m, arrived):
                        worker.submit(w)
            if chunk is not None:
                if recording is not None:
                    recording.data(chunk)
                for w in pipeline.process(chunk, arrived):
                    worker.submit(w)
            if worker.error is not None:
                raise worker.error
    finally:
        worker.close()
        source.close()
        if markers is not None:
            markers.close()
        if recording is not None:
            recording.close()
        for close in closers:
            close()
        adapted = adaptation.close() if adaptation is not None else {}
    if worker.error is not None:
        raise worker.error
    result.decisions = worker.decisions
    result.counts = {**pipeline.windower.counts.as_dict(),
                     "skipped_backlog": worker.skipped_backlog,
                     "nonfinite_samples": pipeline.guard.n_flagged_, **adapted}
    result.events = [{"kind": e.kind, "time": e.time, **e.detail} for e in source.events]
    result.n_samples = source.n_samples
    result.duration = pylsl.local_clock() - t_start
    return result


def run_replay(
    config: SessionConfig, recording, *, output: str | Path | None = None,
    timing: bool = False, chunk_size: int = 32,
    callbacks: Iterable[Callable[[Decision], None]] = (),
) -> SessionResult:
    """Run a session over a recording as fast as possible.

    Parameters
    ----------
    config : SessionConfig
    recording : bci.devices.recording.Recording
    output : str | Path | None
        JSON-lines file for the decisions.
    timing : bool
        Write processing times too (the file is then no longer byte-reproducible).
    chunk_size : int
        Samples per chunk fed to the chain (the output does not depend on it).
    """
    pipeline = Pipeline(config, recording.info, clock=time.perf_counter)
    result = SessionResult()
    sinks: list[Sink] = [*callbacks, result.latency.add]
    jsonl = None
    if output is not None:
        jsonl = JsonlLog(output, timing=timing)
        sinks.insert(0, jsonl)
    t0 = time.perf_counter()
    try:
        for w in replay_windows(pipeline, recording, chunk_size=chunk_size):
            d = pipeline.decode(w, live=False)
            for sink in sinks:
                sink(d)
            result.decisions.append(d)
    finally:
        if jsonl is not None:
            jsonl.close()
    result.counts = {**pipeline.windower.counts.as_dict(), "skipped_backlog": 0,
                     "nonfinite_samples": pipeline.guard.n_flagged_}
    result.n_samples = int(recording.timestamps.shape[0])
    result.duration = time.perf_counter() - t0
    return result
