"""What every protocol shares: validated TOML settings, cue markers, acquisition with
recording, the optional presentation hook, the simulated amplifier, and the summary.

A protocol runs in three phases against one LSL EEG stream: calibration (cues only,
recorded), training (``bci.decoders.training.train`` on the calibration recording) and
online runs (the runtime's own :class:`~bci.pipeline.Pipeline` on the live stream,
recorded with its decisions). Every recording is an XDF file that ``bci replay`` reads,
written beside the session TOML and the trained ``.onnx`` it was decoded with.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from bci.devices.lsl_source import LSLInput
from bci.devices.session_recording import SessionRecording

from bci.config import load_toml, validate
from bci.errors import ConfigError
from bci.lslconfig import get_pylsl
from bci.runner import Branch, Loop, SessionResult
from bci.source import CuedSource

log = logging.getLogger(__name__)

#: Marker that ends the running stimulation / imagery (the simulator stops its response).
END_MARKER = "end"


class ProtocolConfigError(ConfigError):
    """A protocol file names an unknown key or gives a value of the wrong type."""


# -- settings ---------------------------------------------------------------------------
def load_config(path: str | Path | None, defaults: dict, *, simulate: bool = False) -> dict:
    """Read a protocol TOML file (or none: the defaults) and validate it against
    ``defaults`` (:func:`bci.config.validate`: each key must have its default's type).

    With ``simulate``, the tables of ``[simulate]`` named like a top-level table
    (``[simulate.calibration]`` …) replace those keys: the compressed timing of a run
    with no person.

    Raises
    ------
    ProtocolConfigError
        Naming the file, the key, what was expected and what was found.
    """
    try:
        data = {} if path is None else load_toml(path, what="protocol file")
    except ConfigError as err:
        raise ProtocolConfigError(str(err)) from None
    try:
        config = validate(data, defaults)
        if simulate:
            for table, values in config.get("simulate", {}).items():
                if isinstance(values, dict) and table in config:
                    config[table].update(values)
    except ConfigError as err:
        raise ProtocolConfigError(f"{path or 'protocol file'}: {err}") from None
    config["_path"] = None if path is None else str(path)
    return config


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ProtocolConfigError(message)


# -- presentation hook ------------------------------------------------------------------
class Hooks:
    """Presentation of stimuli and feedback; every method is optional and a no-op here.

    A GUI (:mod:`bci.protocols.presentation`) passes an object with any of these methods.
    They are called from the protocol's threads and must return quickly (a GUI queues
    them to its own thread), except :meth:`stimulate`, which blocks until the
    stimulation's first frame is on screen.
    """

    def on_phase(self, phase: str) -> None:
        """``"calibration"``, ``"training"``, ``"online"`` or ``"done"``."""

    def on_cue(self, label: str) -> None:
        """Show a cue: a class label, ``"fixation"`` or ``"rest"`` (nothing shown)."""

    def stimulate(self, label: str, at: float, duration: float,
                  send: Callable[[str, float], None]) -> float | None:
        """Start the stimulus of ``label`` with its first frame at LSL time ``at``.

        On the first frame the presenter calls ``send(label, t_frame)``, which pushes the
        cue marker (stamped with the frame's time) and records it, and returns
        ``t_frame``. ``None`` means nothing is presented here; the protocol then sends
        the marker itself, stamped with the scheduled time ``at``.
        """
        return None

    def end_stimulation(self) -> None:
        """Stop the running stimulation now (a decision was reached)."""

    def on_feedback(self, value: float) -> None:
        """Continuous decoder output in [−1, 1] during imagery."""

    def on_decision(self, decision) -> None:
        """A :class:`~bci.decision.Decision` with its ``true_label`` set."""

    def on_text(self, text: str) -> None:
        """The text spelled so far."""


def call_hook(hooks: Any, name: str, *args: Any) -> Any:
    method = getattr(hooks, name, None) if hooks is not None else None
    if method is None:
        return None
    try:
        return method(*args)
    except Exception:  # a broken display never stops the experiment
        log.exception("presentation hook %s failed", name)
        return None


# -- LSL: cues, acquisition, recording --------------------------------------------------
def clock() -> float:
    return get_pylsl().local_clock()


def wait_until(t: float, stop: threading.Event | None = None) -> None:
    """Sleep until the LSL clock reads ``t``."""
    while True:
        delay = t - clock()
        if delay <= 0:
            return
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt("protocol stopped")
        time.sleep(min(delay, 0.02))


class CueOutlet:
    """The protocol's marker stream (strings): what the amplifier's simulator follows."""

    def __init__(self, name: str, source_id: str | None = None) -> None:
        pylsl = get_pylsl()
        info = pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
                                source_id or f"bci-protocol:{name}")
        self.name = name
        self._outlet = pylsl.StreamOutlet(info)

    def wait_for_consumers(self, timeout: float) -> bool:
        """Block until someone (the simulator, a recorder) reads the cues."""
        return bool(self._outlet.wait_for_consumers(timeout))

    def send(self, value: str, timestamp: float) -> None:
        self._outlet.push_sample([str(value)], timestamp)

    def close(self) -> None:
        self._outlet = None


class Acquisition:
    """The protocol's EEG stream through the runtime's one loop (:class:`bci.runner.Loop`).

    The inlet stays open for the whole protocol; each phase (:meth:`start` …
    :meth:`stop`) runs the loop in an acquisition thread that records the stream with the
    cues (and decisions) and feeds the phase's branches, whose windows are decoded on
    their own decode threads behind a bounded backlog, never on the acquisition thread.
    Cues given with :meth:`marker` go through the loop like a marker stream, so the
    recording replays (``bci replay``) to the same windows and decisions.
    """

    def __init__(self, stream: str, *, resolve_timeout: float = 20.0) -> None:
        self.source = CuedSource(LSLInput(name=stream, resolve_timeout=resolve_timeout))
        try:
            self.info = self.source.open()
        except BaseException:
            self.source.close()
            raise
        self.stream = stream
        self.sfreq = float(self.info["sfreq"])
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.recording: SessionRecording | None = None
        self.loop: Loop | None = None
        self.results: list[SessionResult] = []

    @property
    def n_samples(self) -> int:
        """Samples received in the current (or last) phase."""
        return 0 if self.loop is None else self.loop.n_samples

    @property
    def last_time(self) -> float | None:
        """Timestamp of the newest sample processed in the current phase."""
        return None if self.loop is None else self.loop.last_timestamp

    def start(self, record: str | Path, *, classes: Iterable[str] = (),
              branches: Iterable[Branch] = ()) -> None:
        """Start a phase: record to ``record`` and feed ``branches`` (none: record only)."""
        self.recording = SessionRecording(
            Path(record), self.info, classes=list(classes), stream_name=self.stream,
            source_id=self.source.source_id or "bci-protocol")
        self.loop = Loop(self.source, list(branches), paced=True, record=self.recording,
                         poll=0.02)
        self.results = []
        self.error = None
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(self.loop,),
                                        name="protocol-acquisition", daemon=True)
        self._thread.start()

    def _run(self, loop: Loop) -> None:
        try:
            self.results = loop.run(stop=self._stop)
        except BaseException as err:  # surfaced by check()
            log.exception("acquisition failed")
            self.error = err

    def marker(self, value: str, timestamp: float) -> None:
        """Give a cue (thread-safe): recorded and handed over with its data."""
        self.source.mark(value, timestamp)

    def decision(self, decision) -> None:
        """Record a decision (thread-safe)."""
        if self.recording is not None:
            self.recording(decision)

    def wait_for(self, t: float, timeout: float = 10.0) -> None:
        """Block until a sample stamped at or after ``t`` has been processed."""
        end = time.monotonic() + timeout
        while self.last_time is None or self.last_time < t:
            self.check()
            if time.monotonic() > end:
                raise RuntimeError(f"no EEG sample up to t={t:.3f} within {timeout} s "
                                   "(is the amplifier streaming?)")
            time.sleep(0.005)

    def check(self) -> None:
        if self.error is not None:
            raise RuntimeError("acquisition failed") from self.error

    def stop(self) -> list[SessionResult]:
        """End the phase once every waiting window is decoded; one result per branch."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)
            self._thread = None
        if self.recording is not None:
            self.recording.close()
            self.recording = None
        return self.results

    def close(self) -> None:
        self.stop()
        self.source.close()


# -- files ------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}"
                                for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} to TOML")


def dumps_toml(tables: dict[str, dict]) -> str:
    """A session file from ``{table: {key: value}}`` (values: scalars, lists, tables)."""
    lines = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
        lines.append("")
    return "\n".join(lines)


def session_tables(*, name: str, stream: str, markers: str, tmin: float, tmax: float,
                   classes: Iterable[str], model: str, paradigm: str) -> dict[str, dict]:
    """The session that serves ``model`` on epochs after each cue (``bci run``/``replay``)."""
    return {
        "session": {"name": name},
        "source": {"stream": stream, "markers": markers},
        "window": {"mode": "epoch", "tmin": tmin, "tmax": tmax,
                   "events": {c: c for c in classes}},
        "decoder": {"path": model},
        "outputs": {"lsl": False},
        "training": {"paradigm": paradigm},
    }


def output_dir(path: str | Path | None, protocol: str) -> Path:
    if path is None:
        path = Path("protocol-runs") / f"{protocol}-{time.strftime('%Y%m%d-%H%M%S')}"
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- simulated amplifier ----------------------------------------------------------------
class Simulator:
    """The simulated amplifier in cue-following mode, in a thread of this process
    (``mode = "thread"``, which takes every SyntheticEEG option) or in another process
    (``"process"``, ``bci simulate --follow-markers``: default signal strength)."""

    def __init__(self, *, mode: str, follow: str, name: str, **options: Any) -> None:
        from bci.devices import simulated_amplifier as sim

        self.name = name
        self._proc = self._amp = None
        #: Cues that reached the simulator after their onset sample had been streamed
        #: (thread mode; ``None`` in process mode, where it is not known here).
        self.late_cues: int | None = None
        options = {k: v for k, v in options.items() if v is not None}
        if mode == "process":
            # the command line of `bci simulate` has no signal-strength options
            for key in ("noise_scale", "erd_depth"):
                options.pop(key, None)
            self._proc = sim.spawn(name=name, marker_name=f"{name}-truth",
                                   follow_markers=follow, **options)
        else:
            self._amp = sim.SimulatedAmplifier(name=name, marker_name=f"{name}-truth",
                                               follow_markers=follow, **options).start()

    def wait_until_following(self, cues: CueOutlet, timeout: float = 20.0) -> None:
        """Return once the simulator reads the cue stream (earlier cues would be lost)."""
        if not cues.wait_for_consumers(timeout):
            raise RuntimeError(f"the simulated amplifier did not open the cue stream "
                               f"{cues.name!r} within {timeout} s")

    def close(self) -> None:
        from bci.devices import simulated_amplifier as sim

        if self._proc is not None:
            sim.stop_spawned(self._proc)
            self._proc = None
        if self._amp is not None:
            self._amp.stop()
            self.late_cues = self._amp.late_cues
            self._amp = None


# -- summary ----------------------------------------------------------------------------
def accuracy_of(trials: list[dict]) -> float | None:
    judged = [t["label"] == t["true_label"] for t in trials if t.get("label") is not None]
    return float(np.mean(judged)) if judged else None


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")
