"""The one acquisition→decision loop, and the sessions built on it.

:class:`Loop` drives live sessions (:func:`run_live`), replay (:func:`run_replay`),
training-window extraction (:func:`bci.training_data.extract_windows`,
:func:`replay_windows`) and the protocols' phases alike. Whatever the
:class:`~bci.source.Source`, one implementation pulls, checks (gaps and clock faults
from timestamps, stalls live; NaN/Inf in each pipeline's first node), records, hands
each marker over with the chunk that holds its timestamp, and cuts windows.

Paced (live), acquisition never waits for the decoder: each pipeline's windows go to
its decode thread through a bounded backlog, and when the decoder falls behind the
oldest waiting window is dropped and counted (sliding windows keep only the newest;
epochs keep up to 16), so the lag cannot grow. Samples are never dropped. Unpaced (a
recording), every window is decoded, in order, in the calling thread, as fast as the
machine allows (:func:`run_replay` cuts windows in a second thread and decodes them in
batches, which changes nothing in the output): the output depends on the data alone,
and equals the live session's whenever the live decoder kept up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bci import registry
from bci.chunk import Chunk, Markers
from bci.decision import Decision
from bci.latency import LatencyLog
from bci.outputs import DecisionOutlet, JsonlLog, Sink
from bci.pipeline import Pipeline
from bci.quality import AmplitudeCheck, ClockCheck, RateCheck, StallCheck, TimestampCheck
from bci.recording import Recording, RecordingSource
from bci.session import SessionConfig
from bci.source import Source, SourceEvent
from bci.windowing import Window

log = logging.getLogger(__name__)

WindowSink = Callable[[Window, Decision], None]


#: Windows a replay decodes per decoder call, and whether it filters in a second thread
#: (benchmarks/replay_throughput.py measures both; the decisions do not depend on them).
#: On the 2-core development machine (EEGNet-sized model, 64 ch at 1000 Hz) the second
#: thread gave +12 % (one onnxruntime thread) and batches of 64 +15 % more with two
#: onnxruntime threads (no change with one).
REPLAY_BATCH = 64
REPLAY_PREFETCH = True

#: Decisions a :class:`SessionResult` keeps (the newest); the rest went to the sinks.
KEEP_DECISIONS = 1000


@dataclass
class SessionResult:
    """What a session did, in bounded memory whatever its length.

    Decisions go to their sinks as they come; the result keeps their count, running
    accuracy and latency summaries, and only the newest ``keep`` decisions (a 24-hour
    session at 10 decisions/s would otherwise hold ~700 MB). Use
    :class:`bci.outputs.DecisionList` as a sink to keep every decision of a short run.

    Attributes
    ----------
    decisions : deque of Decision
        The newest ``keep`` decisions, oldest first.
    n_decisions : int
        Decisions made.
    n_labelled, n_correct : int
        Decisions whose true label is one of the decoder's classes, and those right.
    """

    decisions: deque[Decision] = field(default_factory=lambda: deque(maxlen=KEEP_DECISIONS))
    counts: dict[str, int] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    latency: LatencyLog = field(default_factory=LatencyLog)
    n_samples: int = 0
    duration: float = 0.0
    n_decisions: int = 0
    n_labelled: int = 0
    n_correct: int = 0
    keep: int = KEEP_DECISIONS

    def __post_init__(self) -> None:
        if not isinstance(self.decisions, deque) or self.decisions.maxlen != self.keep:
            self.decisions = deque(self.decisions, maxlen=self.keep)

    def add(self, decision: Decision) -> None:
        """Count a decision, keep it among the newest, and add its latency."""
        self.n_decisions += 1
        self.decisions.append(decision)
        self.latency.add(decision)
        # a window labelled with something the decoder cannot say is not a trial of it
        if (decision.true_label is not None and decision.label is not None
                and decision.true_label in decision.classes):
            self.n_labelled += 1
            self.n_correct += decision.label == decision.true_label

    @property
    def accuracy(self) -> float | None:
        """Over decisions whose true label is a decoder class; ``None`` when there are none."""
        return self.n_correct / self.n_labelled if self.n_labelled else None

    @property
    def found_no_events(self) -> bool:
        """An epoch session in which no marker named one of ``[window] events``."""
        return any(e.get("kind") == "no_events" for e in self.events)

    def summary(self) -> dict:
        return {
            "n_decisions": self.n_decisions,
            "n_labelled": self.n_labelled,
            "accuracy": self.accuracy,
            "n_samples": self.n_samples,
            "duration_s": self.duration,
            "counts": self.counts,
            "events": self.events,
            "latency_ms": self.latency.summary(),
        }


class RawSink(Protocol):
    """Where the loop writes what it received (e.g. the session's XDF recording)."""

    def data(self, chunk: Chunk) -> None: ...

    def markers(self, markers: Markers) -> None: ...

    def windows(self, due: list[tuple[int, float]]) -> None:
        """Where the sliding windows that fell due ended: ``(stop, last timestamp)``
        pairs, skipped windows included (called only when the first branch's windower
        keeps a ``due_log``)."""


@dataclass
class Branch:
    """One pipeline fed by the loop, and where its windows and decisions go.

    Attributes
    ----------
    pipeline : Pipeline
    sinks : list of callables
        Called with every decision, in order (the decode thread's, when paced).
    window_sinks : list of callables
        Called with each window and its decision after the sinks (online learning).
    on_window : list of callables
        Called with each window the decoding side takes, before it is decoded (training
        windows are collected here).
    decode : bool or callable
        Whether to decode a window (a predicate: only some of them).
    backlog : int | None
        Windows that may wait for the decode thread (default: the pipeline's).
    """

    pipeline: Pipeline
    sinks: list[Sink] = field(default_factory=list)
    window_sinks: list[WindowSink] = field(default_factory=list)
    on_window: list[Callable[[Window], None]] = field(default_factory=list)
    decode: bool | Callable[[Window], bool] = True
    backlog: int | None = None
    result: SessionResult = field(default_factory=SessionResult)

    def take(self, window: Window, *, live: bool) -> Decision | None:
        """Decode a window and hand the decision on (the one decoding path)."""
        for hook in self.on_window:
            hook(window)
        if not (self.decode(window) if callable(self.decode) else self.decode):
            return None
        decision = self.pipeline.decode(window, live=live)
        for sink in self.sinks:
            sink(decision)
        for window_sink in self.window_sinks:
            window_sink(window, decision)
        self.result.add(decision)
        return decision

    def take_batch(self, windows: list[Window]) -> None:
        """Decode a recording's windows in one decoder call; as :meth:`take` for each."""
        for hook in self.on_window:
            for window in windows:
                hook(window)
        if callable(self.decode):
            windows = [w for w in windows if self.decode(w)]
        elif not self.decode:
            return
        for decision in self.pipeline.decode_batch(windows):
            for sink in self.sinks:
                sink(decision)
            self.result.add(decision)


def _prefetched(windows: Iterator[tuple[int, Window]], *,
                size: int) -> Generator[tuple[int, Window], None, None]:
    """Run a window generator in a second thread, ``size`` windows ahead (unpaced).

    Its exceptions are raised here, in order; closing this generator stops the thread.
    """
    import queue

    q: queue.Queue = queue.Queue(maxsize=size)
    done = object()
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in windows:
                if not put(item):
                    return
        except BaseException as err:  # handed to the consumer
            put((None, err))
            return
        put(done)

    thread = threading.Thread(target=produce, name="bci-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if item[0] is None:
                raise item[1]
            yield item
    finally:
        stop.set()
        thread.join()
        windows.close()


class DecodeWorker:
    """Decodes a branch's windows in its own thread so that acquisition never waits.

    Parameters
    ----------
    branch : Branch
    backlog : int
        Windows that may wait; a new window arriving when the backlog is full drops the
        oldest waiting one (counted in ``skipped_backlog``).
    live : bool
        Windows' timestamps are on the pipeline's clock (latency is then measured).
    """

    def __init__(self, branch: Branch, *, backlog: int, live: bool) -> None:
        if backlog < 1:
            raise ValueError(f"a decode backlog holds at least one window, found {backlog}")
        self.branch = branch
        self.backlog = backlog
        self.live = live
        self.skipped_backlog = 0
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
                self.branch.take(window, live=self.live)
            except BaseException as err:  # surfaced to the acquisition loop
                self.error = err
                return

    def close(self, timeout: float = 10.0) -> None:
        """Decode what is waiting, then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)


class _PendingMarkers:
    """Markers held until the data they point at arrive, then handed over in time order."""

    def __init__(self) -> None:
        self.times = np.empty(0, np.float64)
        self.values: list[str] = []

    def add(self, markers: Markers) -> None:
        times = np.concatenate([self.times, np.asarray(markers.timestamps, np.float64)])
        values = [*self.values, *markers.values]
        order = np.argsort(times, kind="stable")
        self.times, self.values = times[order], [values[i] for i in order]

    def until(self, t: float | None) -> Markers:
        """Take the markers stamped at or before ``t`` (all of them for ``None``)."""
        end = len(self.values) if t is None else int(
            np.searchsorted(self.times, t, side="right"))
        if end == 0:
            return Markers()
        out = Markers(self.times[:end], self.values[:end])
        self.times, self.values = self.times[end:], self.values[end:]
        return out


class Loop:
    """The acquisition→decision loop, the same for every source and every use.

    Per pull: the source's markers are recorded and held until the chunk holding their
    timestamp arrives; the chunk's timestamps are checked (gaps and time going
    backwards flag the sample after them; live, a stall and stamps ahead of the clock
    are reported), the chunk is recorded, the due markers and then the chunk go through
    every branch's pipeline, and the windows they complete are decoded. Because each of
    these steps depends on the samples and their timestamps alone, a recording of a
    live session replays to the same windows, skips and (when the live decoder kept up)
    decisions.

    Parameters
    ----------
    source : Source
        Already opened; the loop does not close it.
    branches : sequence of Branch
        The pipelines fed (none: only record).
    paced : bool
        ``True``: real time; each branch decodes on its own thread behind its backlog,
        and a source that is not live is played at the pace of its timestamps.
        ``False``: every window is decoded in order in the calling thread, as fast as
        possible (deterministic); only for sources that are not live.
    record : RawSink | None
        Gets every chunk and every marker as received.
    gap_tolerance, stall_timeout : float | None
        Seconds; default: the first branch's session ``[source]`` (else 0.02 and 1.0).
    clock_tolerance : float
        Seconds a live sample may seem to come from the future before a ``clock`` event.
    poll : float
        Seconds one pull waits for data.
    check_span : float
        Seconds of data at the start over which the declared rate is compared with the
        timestamps' (a ``rate`` event beyond 1 %) and the amplitudes with volts (an
        ``amplitude`` event for likely microvolts); both depend on the data alone, so
        replay reports what live did.
    batch : int
        Unpaced only: windows of a branch decoded in one decoder call
        (:meth:`bci.pipeline.Pipeline.decode_batch`; the decisions are those of one
        window at a time). Branches with ``window_sinks`` (online learning, which must
        learn from a decision before the next window) are decoded one at a time.
    prefetch : bool
        Unpaced only: read, check, filter and cut windows in a second thread while this
        one decodes (the order of windows and decisions is unchanged).
    """

    def __init__(
        self, source: Source, branches: Sequence[Branch] = (), *, paced: bool,
        record: RawSink | None = None, gap_tolerance: float | None = None,
        stall_timeout: float | None = None, clock_tolerance: float = 0.25, poll: float = 0.05,
        check_span: float = 5.0, batch: int = 1, prefetch: bool = False,
    ) -> None:
        if source.info is None:
            raise ValueError("open the source before running the loop on it")
        if source.live and not paced:
            raise ValueError("a live source is paced by its stream; paced=False replays "
                             "sources that are not live (recordings)")
        self.source = source
        self.branches = list(branches)
        self.paced = paced
        self.record = record
        src_cfg = self.branches[0].pipeline.config.source if self.branches else None
        self.gap_tolerance = gap_tolerance if gap_tolerance is not None else (
            src_cfg.gap_tolerance if src_cfg is not None else 0.02)
        self.stall_timeout = stall_timeout if stall_timeout is not None else (
            src_cfg.stall_timeout if src_cfg is not None else 1.0)
        self.clock_tolerance = clock_tolerance
        self.poll = poll
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive integer, found {batch!r}")
        self.batch = batch if not paced else 1
        self.prefetch = prefetch and not paced
        #: What the loop noticed, and what the source told, in order.
        self.events: list[SourceEvent] = []
        #: Samples received so far, and the timestamp of the newest.
        self.n_samples = 0
        self.last_timestamp: float | None = None
        #: Seconds at the start over which the sampling rate and amplitudes are checked.
        self.check_span = check_span
        #: Distinct marker values seen (the first 20), for the ``no_events`` message.
        self.marker_values: set[str] = set()
        self._matched = [False] * len(self.branches)

    def windows(self, *, stop: threading.Event | None = None, duration: float | None = None,
                check: Callable[[], None] | None = None) -> Iterator[tuple[int, Window]]:
        """Run the acquisition half: yield ``(branch index, window)`` as windows complete.

        Ends when the source does, when ``stop`` is set or after ``duration`` seconds
        of its clock; then the markers still held are handed over. ``check`` is called
        after every pull (to surface a decode thread's error).
        """
        src, clock = self.source, self.source.clock
        sfreq = float(src.info["sfreq"])
        stamps = TimestampCheck(sfreq, gap_tolerance=self.gap_tolerance)
        rate = RateCheck(sfreq, span=self.check_span, gap_threshold=stamps.threshold)
        amplitude = AmplitudeCheck.for_info(src.info, span=self.check_span)
        stall = StallCheck(self.stall_timeout) if src.live else None
        clock_check = ClockCheck(self.clock_tolerance) if src.live else None
        pending = _PendingMarkers()
        pipelines = [b.pipeline for b in self.branches]
        told = len(src.events)
        start = clock()
        deadline = None if duration is None else start + duration
        pace: tuple[float, float] | None = None  # (clock, timestamp) of the first chunk
        while not (stop is not None and stop.is_set()):
            if deadline is not None and clock() >= deadline:
                break
            pulled = src.pull(self.poll)
            arrived = clock()
            if len(src.events) > told:
                self.events.extend(src.events[told:])
                told = len(src.events)
            if pulled is None:
                break
            if len(pulled.markers):
                if self.record is not None:
                    self.record.markers(pulled.markers)
                if self.last_timestamp is not None:
                    # its sliding windows were cut without it; a replay would label them
                    late = np.asarray(pulled.markers.timestamps) <= self.last_timestamp
                    if late.any():
                        self.events.append(SourceEvent("late_marker", arrived,
                                                       {"count": int(late.sum())}))
                pending.add(pulled.markers)
                self._saw_markers(pulled.markers.values)
            chunk = pulled.chunk
            if chunk is None or not chunk.n_samples:
                if stall is not None:
                    self._note(stall.idle(arrived))
                if self.last_timestamp is not None:
                    yield from self._markers(pipelines, pending.until(self.last_timestamp),
                                             arrived)
            else:
                last = float(chunk.timestamps[-1])
                if self.paced and not src.live:
                    pace = pace or (arrived, float(chunk.timestamps[0]))
                    arrived = self._wait(pace[0] + last - pace[1], stop)
                chunk, gaps = stamps.check(chunk, arrived)
                for gap in gaps:
                    self._note(gap)
                self._note(rate.check(chunk.timestamps, arrived))
                self._note(amplitude.check(chunk.data, arrived))
                if stall is not None:
                    self._note(stall.data(arrived, last))
                    self._note(clock_check.check(last, arrived))
                if self.record is not None:
                    self.record.data(chunk)
                yield from self._markers(pipelines, pending.until(last), arrived)
                for i, pipeline in enumerate(pipelines):
                    for w in pipeline.process(chunk, arrived):
                        yield i, w
                due = getattr(pipelines[0].windower, "due_log", None) if pipelines else None
                if due and self.record is not None:
                    self.record.windows(due)
                    due.clear()
                self.n_samples += chunk.n_samples
                self.last_timestamp = last
            if check is not None:
                check()
        yield from self._markers(pipelines, pending.until(None), clock())

    @staticmethod
    def _markers(pipelines: list[Pipeline], markers: Markers,
                 arrived: float) -> Iterator[tuple[int, Window]]:
        if len(markers):
            for i, pipeline in enumerate(pipelines):
                for w in pipeline.add_markers(markers, arrived):
                    yield i, w

    def _saw_markers(self, values: Sequence[str]) -> None:
        for v in values:
            if len(self.marker_values) < 20:
                self.marker_values.add(str(v))
        for i, b in enumerate(self.branches):
            events = b.pipeline.config.window.events
            if not self._matched[i] and values and (
                    events is None or any(str(v) in events for v in values)):
                self._matched[i] = True

    def _no_events(self, branch: int) -> SourceEvent | None:
        """The ``no_events`` event of an epoch branch that no marker opened a window for."""
        p = self.branches[branch].pipeline
        if p.window_spec.mode != "epoch" or self._matched[branch]:
            return None
        events = p.config.window.events
        expected = sorted(events) if events is not None else "any marker"
        found = sorted(self.marker_values)
        return SourceEvent("no_events", self.source.clock(), {
            "expected": expected, "found": found,
            "message": f"no marker named one of the epoch events {expected} ([window] "
                       f"events); marker values found: {found or 'none (no marker at all)'}",
        })

    def _note(self, event: SourceEvent | None) -> None:
        if event is not None:
            self.events.append(event)
            message = event.detail.get("message")
            log.warning("source %r: %s %s", self.source.name, event.kind,
                        message or event.detail or "")

    def _wait(self, due: float, stop: threading.Event | None) -> float:
        clock = self.source.clock
        while (now := clock()) < due and not (stop is not None and stop.is_set()):
            time.sleep(min(due - now, 0.05))
        return clock()

    def run(self, *, stop: threading.Event | None = None, duration: float | None = None,
            on_stats: Callable[[dict[str, int]], None] | None = None,
            stats_every: float = 5.0) -> list[SessionResult]:
        """Run until the source ends, ``stop`` is set or ``duration`` s have passed.

        ``on_stats`` is called every ``stats_every`` s (of the source's clock, as windows
        arrive) with the first branch's counts so far (windows skipped and why).

        Returns
        -------
        list of SessionResult
            One per branch: its decisions and counts, with the loop's events.
        """
        clock = self.source.clock
        t0 = clock()
        live = self.source.live
        workers = [DecodeWorker(b, backlog=b.backlog or b.pipeline.default_backlog, live=live)
                   for b in self.branches] if self.paced else []

        def check() -> None:
            for worker in workers:
                if worker.error is not None:
                    raise worker.error

        n_stats = 0
        pending: list[list[Window]] = [[] for _ in self.branches]
        batched = [self.batch > 1 and not b.window_sinks for b in self.branches]

        def flush(i: int) -> None:
            self.branches[i].take_batch(pending[i])
            pending[i] = []

        windows = self.windows(stop=stop, duration=duration, check=check)
        if self.prefetch:
            windows = _prefetched(windows, size=max(8, 2 * self.batch))
        try:
            for i, window in windows:
                if workers:
                    workers[i].submit(window)
                elif batched[i]:
                    pending[i].append(window)
                    if len(pending[i]) >= self.batch:
                        flush(i)
                else:
                    self.branches[i].take(window, live=live)
                if on_stats is not None and clock() - t0 >= stats_every * (n_stats + 1):
                    n_stats += 1
                    p = self.branches[0].pipeline
                    on_stats({**p.windower.counts.as_dict(),
                              "skipped_backlog": workers[0].skipped_backlog if workers else 0,
                              "nonfinite_samples": p.guard.n_flagged_})
            for i in range(len(self.branches)):
                if pending[i]:
                    flush(i)
        finally:
            windows.close()
            for worker in workers:
                worker.close()
        check()
        elapsed = clock() - t0
        shared = [{"kind": e.kind, "time": e.time, **e.detail} for e in self.events]
        results = []
        for i, branch in enumerate(self.branches):
            events = list(shared)
            if (no_events := self._no_events(i)) is not None:
                self._note(no_events)
                events.append({"kind": no_events.kind, "time": no_events.time,
                               **no_events.detail})
            p, result = branch.pipeline, branch.result
            result.counts = {**p.windower.counts.as_dict(),
                             "skipped_backlog": workers[i].skipped_backlog if workers else 0,
                             "nonfinite_samples": p.guard.n_flagged_}
            result.events = events
            result.n_samples = self.n_samples
            result.duration = elapsed
            results.append(result)
        return results


def run(source: Source, branches: Sequence[Branch], *, paced: bool,
        record: RawSink | None = None, stop: threading.Event | None = None,
        duration: float | None = None, gap_tolerance: float | None = None,
        stall_timeout: float | None = None, batch: int = 1,
        prefetch: bool = False) -> list[SessionResult]:
    """Run :class:`Loop` on an opened source (see there); one result per branch."""
    return Loop(source, branches, paced=paced, record=record, gap_tolerance=gap_tolerance,
                stall_timeout=stall_timeout, batch=batch,
                prefetch=prefetch).run(stop=stop, duration=duration)


def replay_windows(pipeline: Pipeline, recording: Recording, *,
                   chunk_size: int = 32) -> Iterator[Window]:
    """The windows the loop cuts from a recording, in the order live would emit them.

    Replay, training and evaluation all cut windows here, which is what makes a trained
    decoder see in the live loop the signal it was trained on.

    Parameters
    ----------
    pipeline : Pipeline
    recording : Recording
    chunk_size : int
        Samples per chunk (the windows do not depend on it).
    """
    source = RecordingSource(recording, chunk_size=chunk_size)
    source.open()
    for _, window in Loop(source, [Branch(pipeline)], paced=False).windows():
        yield window


def _decision_classes(pipeline: Pipeline) -> list[str]:
    # a retrieval decoder's decisions score the bank's candidates, one "class" each
    return pipeline.bank.names if pipeline.bank is not None else pipeline.decoder.spec.classes


def run_live(
    config: SessionConfig, *, duration: float | None = None,
    stop: threading.Event | None = None, callbacks: Iterable[Callable[[Decision], None]] = (),
    on_ready: Callable[[Pipeline], None] | None = None,
    on_stats: Callable[[dict[str, int]], None] | None = None,
) -> SessionResult:
    """Run a session against its live source (``[source] kind``: an LSL stream, a board).

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
    on_stats : callable | None
        Called every few seconds with the windows skipped so far (see :meth:`Loop.run`).

    Notes
    -----
    A recording that fails (disk full, unwritable) stops with a ``record_failed`` event;
    the session goes on, or ends when ``[outputs] on_record_error = "stop"``.
    """
    source = registry.sources.get(config.source.kind, where="source.kind").load().from_config(
        config.source)
    closers: list[Callable[[], Any]] = [source.close]
    adaptation = None
    stop = stop if stop is not None else threading.Event()
    failures: list[SourceEvent] = []

    def record_failed(path: str, error: str) -> None:
        failures.append(SourceEvent("record_failed", source.clock(),
                                    {"path": path, "error": error}))
        if config.outputs.on_record_error == "stop":
            stop.set()

    try:
        info = source.open()
        # live, a due window ends on the newest sample; the recording keeps where
        pipeline = Pipeline(config, info, clock=source.clock,
                            align=config.window.align if source.live else "grid")
        spec = pipeline.decoder.spec
        classes = _decision_classes(pipeline)
        sinks: list[Sink] = []
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
            session_recording = registry.sinks.get("xdf", where="outputs.record").load()
            window = pipeline.recorded_window()
            recording = session_recording(
                config.outputs.record, info, classes=classes,
                stream_name=config.source.stream or source.name,
                source_id=source.source_id or "bci-session", on_error=record_failed,
                window=window)
            if window is not None:
                pipeline.windower.due_log = []  # the loop hands them to the recording
            sinks.append(recording)
            closers.append(recording.close)
        sinks.extend(callbacks)
        dec_cfg = config.require_decoder()
        if dec_cfg.adapt:
            adapter = registry.adapters.get("online", where="decoder.adapt").load()
            adaptation = adapter(pipeline, state=adapter.state_path(dec_cfg.path),
                                 save=dec_cfg.save, swap_every=dec_cfg.swap_every,
                                 threads=dec_cfg.threads)
        branch = Branch(pipeline, sinks, window_sinks=[] if adaptation is None else [adaptation])
        loop = Loop(source, [branch], paced=True, record=recording)
        if on_ready is not None:
            on_ready(pipeline)
        loop.events = failures  # the recording's failure, from whichever thread, in order
        (result,) = loop.run(stop=stop, on_stats=on_stats,
                             duration=duration if duration is not None else config.duration)
    finally:
        for close in reversed(closers):
            close()
        adapted = adaptation.close() if adaptation is not None else {}
    result.counts.update(adapted)
    return result


def run_replay(
    config: SessionConfig, recording: Recording, *, output: str | Path | None = None,
    timing: bool = False, chunk_size: int = 32,
    callbacks: Iterable[Callable[[Decision], None]] = (), batch: int = REPLAY_BATCH,
    prefetch: bool = REPLAY_PREFETCH,
) -> SessionResult:
    """Run a session over a recording as fast as possible (the loop, unpaced).

    Parameters
    ----------
    config : SessionConfig
    recording : Recording
    output : str | Path | None
        JSON-lines file for the decisions.
    timing : bool
        Write processing times too (the file is then no longer byte-reproducible).
    chunk_size : int
        Samples per chunk fed to the chain (the output does not depend on it).
    callbacks : iterable of callables
        Called with every decision.
    batch : int
        Windows decoded per decoder call (the decisions do not depend on it; see
        :meth:`bci.pipeline.Pipeline.decode_batch`).
    prefetch : bool
        Filter and cut windows in a second thread while decoding (same decisions).

    Notes
    -----
    A session recording of this runtime keeps where its live sliding windows ended
    (on the newest sample of a chunk); when the replayed window has the same length and
    step, the replay cuts exactly those windows, and so reproduces the live decisions.
    """
    source = RecordingSource(recording, chunk_size=chunk_size)
    info = source.open()
    pipeline = Pipeline(config, info, clock=source.clock)
    pipeline.cut_as_recorded(recording.windows)
    sinks: list[Sink] = list(callbacks)
    jsonl = None
    if output is not None:
        jsonl = JsonlLog(output, timing=timing)
        sinks.insert(0, jsonl)
    try:
        (result,) = run(source, [Branch(pipeline, sinks)], paced=False, batch=batch,
                        prefetch=prefetch)
    finally:
        if jsonl is not None:
            jsonl.close()
    return result
