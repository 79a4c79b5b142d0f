"""A simulated amplifier: :class:`~bci.datasets.synthetic.SyntheticEEG` streamed over LSL in
real time (``bci simulate``).

Two outlets: the EEG (float32, type ``"EEG"``, channel labels, units and types in the
stream description) and the cues (strings, type ``"Markers"``, irregular rate). Sample i
carries the timestamp ``t0 + i / sfreq`` exactly, ``t0`` being ``local_clock()`` at
start; each chunk is pushed once the wall clock reaches its last sample's timestamp, on a
schedule computed from ``t0`` so that no drift accumulates. A cue is pushed with the
timestamp of its onset sample, just before the chunk that holds that sample.

Opt-in cue following (``follow_markers=NAME``, ``bci simulate --follow-markers NAME``):
the source has no schedule of its own; it reads an experiment's cue marker stream and
starts a response (SSVEP at the cued target, ERD for the cued class) at the sample whose
timestamp matches each cue's, and ends it early at an ``"end"`` marker. It then waits
for a chunk's deadline *before* generating it, so every cue that has arrived by then
shapes the samples after its onset; a cue whose onset was already sent is started at the
next unsent sample instead and counted in ``late_cues``. Send cues a little ahead of the
onset (their timestamp in the future) and none is late.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bci.datasets.synthetic import SyntheticEEG
from bci.errors import ConfigError, DeviceError
from bci.lslconfig import get_pylsl

DEFAULT_NAME = "bci-sim-eeg"
DEFAULT_MARKER_NAME = "bci-sim-markers"
DEFAULT_CHUNK_SIZE = 8
#: Marker values that end the running cued response in cue-following mode.
END_MARKERS = ("end",)


class SimulatedAmplifier:
    """Stream synthetic EEG and its cues over LSL from a background thread.

    Parameters
    ----------
    eeg : SyntheticEEG | None
        The source to stream; by default one is built from ``**synthetic_options``.
    name : str
        Name of the EEG stream.
    marker_name : str
        Name of the marker stream.
    chunk_size : int
        Samples per pushed chunk.
    source_id : str | None
        LSL source id of the EEG stream (the marker stream gets ``<source_id>-markers``);
        inlets use it to reconnect to a restarted amplifier. Default ``"bci-sim:<name>"``.
    duration : float | None
        Stop by itself after this many seconds of data; ``None`` streams until
        :meth:`stop`.
    follow_markers : str | None
        Opt-in cue following: the name of a marker stream whose cues (values among the
        source's labels) place the responses; the source is built (or must be) with
        ``external_cues=True``. ``None`` (default) keeps the source's own schedule.
    **synthetic_options
        Keyword options of :class:`~bci.datasets.synthetic.SyntheticEEG` (paradigm,
        ch_names, n_channels, sfreq, seed, frequencies, line_freq …).

    Examples
    --------
    >>> with SimulatedAmplifier(seed=1, name="my-eeg") as amp:  # doctest: +SKIP
    ...     amp.wait(2.0)
    """

    def __init__(
        self, eeg: SyntheticEEG | None = None, *, name: str = DEFAULT_NAME,
        marker_name: str = DEFAULT_MARKER_NAME, chunk_size: int = DEFAULT_CHUNK_SIZE,
        source_id: str | None = None, duration: float | None = None,
        follow_markers: str | None = None, **synthetic_options: Any,
    ) -> None:
        if eeg is not None and synthetic_options:
            raise ValueError("give a SyntheticEEG or its options, not both (found eeg and "
                             f"options {sorted(synthetic_options)})")
        if follow_markers is not None:
            if not isinstance(follow_markers, str) or not follow_markers.strip():
                raise ValueError(f"expected a marker stream name for follow_markers, found "
                                 f"{follow_markers!r}")
            if eeg is None:
                synthetic_options["external_cues"] = True
            elif not eeg.external_cues:
                raise ValueError("follow_markers needs a SyntheticEEG(external_cues=True)")
        self.follow_markers = follow_markers
        self.late_cues = 0
        self.eeg = SyntheticEEG(**synthetic_options) if eeg is None else eeg
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) \
                or chunk_size < 1:
            raise ValueError(f"expected a positive integer chunk_size, found {chunk_size!r}")
        for label, value in (("name", name), ("marker_name", marker_name)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"expected a non-empty stream {label}, found {value!r}")
        if name == marker_name:
            raise ValueError(f"the EEG and marker streams need different names, found "
                             f"{name!r} for both")
        if duration is not None and not (isinstance(duration, int | float)
                                         and math.isfinite(duration) and duration > 0):
            raise ValueError(f"expected a positive duration in seconds or None, "
                             f"found {duration!r}")
        self.chunk_size = int(chunk_size)
        self._name = name
        self._marker_name = marker_name
        self._source_id = f"bci-sim:{name}" if source_id is None else str(source_id)
        self.duration = duration
        self._n_total = None if duration is None else round(duration * self.eeg.sfreq)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outlet = None
        self._marker_outlet = None
        self._t0: float | None = None
        self._n_sent = 0
        self.error: BaseException | None = None

    # -- properties -----------------------------------------------------------------
    @property
    def name(self) -> str:
        """Name of the EEG stream."""
        return self._name

    @property
    def marker_name(self) -> str:
        """Name of the marker stream."""
        return self._marker_name

    @property
    def source_id(self) -> str:
        return self._source_id

    @property
    def sfreq(self) -> float:
        return self.eeg.sfreq

    @property
    def t0(self) -> float | None:
        """LSL timestamp of sample 0 (``None`` before :meth:`start`)."""
        return self._t0

    @property
    def n_samples_sent(self) -> int:
        return self._n_sent

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> SimulatedAmplifier:
        """Create the outlets and start streaming; returns once both are resolvable."""
        if self._thread is not None:
            raise RuntimeError(f"the simulated amplifier {self._name!r} was already started")
        pylsl = get_pylsl()
        # markers first, so that a client that resolved the EEG can find them too
        self._marker_outlet = pylsl.StreamOutlet(self._marker_info(pylsl))
        self._outlet = pylsl.StreamOutlet(self._eeg_info(pylsl), self.chunk_size)
        self._t0 = pylsl.local_clock()
        self._thread = threading.Thread(target=self._run, args=(pylsl,),
                                        name=f"simulated-amplifier-{self._name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop streaming and close the outlets; re-raise the thread's error, if any."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise DeviceError(f"the simulated amplifier {self._name!r} did not stop "
                                  f"within {timeout} s")
        # dropping the last reference destroys liblsl's outlet and withdraws the stream
        self._outlet = None
        self._marker_outlet = None
        if self.error is not None:
            error, self.error = self.error, None
            raise DeviceError(f"the simulated amplifier {self._name!r} failed: "
                              f"{type(error).__name__}: {error}") from error

    def wait(self, timeout: float | None = None) -> bool:
        """Block until streaming ends (its ``duration`` is over, or :meth:`stop`).

        Returns
        -------
        finished : bool
            ``False`` if the timeout ran out first.
        """
        if self._thread is None:
            raise RuntimeError(f"the simulated amplifier {self._name!r} was not started")
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> SimulatedAmplifier:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- LSL ------------------------------------------------------------------------
    def _eeg_info(self, pylsl):
        eeg = self.eeg
        info = pylsl.StreamInfo(self._name, "EEG", eeg.n_channels, eeg.sfreq,
                                pylsl.cf_float32, self._source_id)
        desc = info.desc()
        desc.append_child_value("manufacturer", "bci-runtime")
        desc.append_child_value("model", f"simulated {eeg.paradigm}")
        channels = desc.append_child("channels")
        for ch in eeg.ch_names:
            node = channels.append_child("channel")
            node.append_child_value("label", ch)
            node.append_child_value("unit", "volts")
            node.append_child_value("type", "EEG")
        desc.append_child_value("seed", str(eeg.seed))
        return info

    def _marker_info(self, pylsl):
        info = pylsl.StreamInfo(self._marker_name, "Markers", 1, pylsl.IRREGULAR_RATE,
                                pylsl.cf_string, f"{self._source_id}-markers")
        info.desc().append_child_value("classes", ",".join(self.eeg.labels))
        return info

    def _run(self, pylsl) -> None:
        try:
            self._stream(pylsl)
        except BaseException as exc:  # reported by stop(); a thread cannot raise
            self.error = exc

    def _stream(self, pylsl) -> None:
        if self.follow_markers is not None:
            return self._stream_following(pylsl)
        sfreq = self.eeg.sfreq
        t0 = self._t0
        while not self._stop.is_set():
            first = self._n_sent
            n = self.chunk_size
            if self._n_total is not None:
                n = min(n, self._n_total - first)
                if n <= 0:
                    return
            # generate first, then push when the wall clock reaches the chunk's last
            # sample, as an amplifier does; the deadline comes from t0, so a late
            # wake-up never shifts the following chunks
            data, cues = self.eeg.read(n)
            samples = np.ascontiguousarray(data.T)
            # a list of floats selects liblsl's per-sample timestamps
            stamps = (t0 + np.arange(first, first + n) / sfreq).tolist()
            deadline = t0 + (first + n - 1) / sfreq
            delay = deadline - pylsl.local_clock()
            if delay > 0 and self._stop.wait(delay):
                return
            for onset, label in cues:
                self._marker_outlet.push_sample([label], t0 + onset / sfreq)
            self._outlet.push_chunk(samples, stamps)
            self._n_sent = first + n


    def _stream_following(self, pylsl) -> None:
        """Cue-following mode: wait for the deadline, take the cues, then generate."""
        sfreq = self.eeg.sfreq
        t0 = self._t0
        resolver = pylsl.ContinuousResolver(prop="name", value=self.follow_markers)
        inlet = None
        next_resolve = 0.0
        try:
            while not self._stop.is_set():
                first = self._n_sent
                n = self.chunk_size
                if self._n_total is not None:
                    n = min(n, self._n_total - first)
                    if n <= 0:
                        return
                deadline = t0 + (first + n - 1) / sfreq
                delay = deadline - pylsl.local_clock()
                if delay > 0 and self._stop.wait(delay):
                    return
                if inlet is None and pylsl.local_clock() >= next_resolve:
                    found = resolver.results()
                    if found:
                        inlet = pylsl.StreamInlet(found[0], processing_flags=(
                            pylsl.proc_clocksync | pylsl.proc_monotonize))
                        inlet.open_stream(1.0)
                    next_resolve = pylsl.local_clock() + 0.2
                if inlet is not None:
                    self._take_cues(inlet, t0, sfreq)
                data, cues = self.eeg.read(n)
                samples = np.ascontiguousarray(data.T)
                stamps = (t0 + np.arange(first, first + n) / sfreq).tolist()
                for onset, label in cues:
                    self._marker_outlet.push_sample([label], t0 + onset / sfreq)
                self._outlet.push_chunk(samples, stamps)
                self._n_sent = first + n
        finally:
            if inlet is not None:
                inlet.close_stream()
            del resolver

    def _take_cues(self, inlet, t0: float, sfreq: float) -> None:
        values, stamps = inlet.pull_chunk(timeout=0.0)
        for value, stamp in zip(values, stamps, strict=True):
            text = str(value[0]).strip()
            sample = max(0, round((stamp - t0) * sfreq))
            if sample < self.eeg.position:
                if text in self.eeg.labels:
                    self.late_cues += 1
                sample = self.eeg.position
            if text in self.eeg.labels:
                self.eeg.add_cue(text, sample)
            elif text in END_MARKERS:
                self.eeg.end_cue(sample)


# -- a separate process ----------------------------------------------------------------
def spawn(*, timeout: float = 20.0, **options: Any) -> subprocess.Popen:
    """Start ``python -m bci simulate`` and wait until it streams.

    Parameters
    ----------
    timeout : float
        Seconds to wait for the EEG stream to be resolvable on this machine.
    **options
        paradigm, n_channels, ch_names, sfreq, chunk_size, seed, duration, name,
        marker_name, frequencies, line_freq, classes, trial_duration, iti, source_id:
        the options of ``bci simulate``.

    Returns
    -------
    subprocess.Popen
        The running process; end it with :func:`stop_spawned`.

    Raises
    ------
    RuntimeError
        If the process exits, or its stream cannot be resolved, within ``timeout``.
    """
    argv = [sys.executable, "-m", "bci", "simulate", *_options_to_argv(options)]
    name = options.get("name", DEFAULT_NAME)
    pylsl = get_pylsl()  # sets LSLAPICFG, which the child inherits
    errors = tempfile.TemporaryFile()
    # a background resolver, polled, so that a process that dies is noticed at once
    # (and one-shot resolves with some timeouts overrun them by seconds in liblsl)
    resolver = pylsl.ContinuousResolver(prop="name", value=name)
    started = pylsl.local_clock()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=errors, env=os.environ.copy())
    proc.stderr_file = errors  # kept open for messages; closed by stop_spawned
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            message = _read(errors)
            errors.close()
            raise DeviceError(f"the simulated amplifier exited with code {proc.returncode} "
                              f"before its stream {name!r} appeared: {message}")
        # a stream created before this call belongs to someone else
        if any(info.created_at() >= started for info in resolver.results()):
            return proc
        time.sleep(0.05)
    stop_spawned(proc)
    raise DeviceError(f"the simulated amplifier's stream {name!r} could not be resolved "
                      f"within {timeout} s (command: {' '.join(argv)})")


def stop_spawned(proc: subprocess.Popen, *, timeout: float = 10.0) -> int:
    """Terminate a process from :func:`spawn` (SIGTERM, which it handles cleanly).

    Returns
    -------
    returncode : int
        The process's exit status: 130 after a clean stop by SIGTERM (streams closed,
        as for any interrupted ``bci`` command), 0 if it had already ended on its own
        (``duration``); negative when it had to be killed after ``timeout``.
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    errors = getattr(proc, "stderr_file", None)
    if errors is not None:
        errors.close()
    return proc.returncode


def _read(file) -> str:
    file.seek(0)
    text = file.read().decode(errors="replace").strip()
    return text[-2000:] or "(no output on stderr)"


def _options_to_argv(options: dict[str, Any]) -> list[str]:
    flags = {
        "paradigm": "--paradigm", "n_channels": "--channels", "ch_names": "--ch-names",
        "sfreq": "--sfreq", "chunk_size": "--chunk-size", "seed": "--seed",
        "duration": "--duration", "name": "--name", "marker_name": "--marker-name",
        "frequencies": "--frequencies", "line_freq": "--line-freq", "classes": "--classes",
        "trial_duration": "--trial-duration", "iti": "--iti", "source_id": "--source-id",
        "follow_markers": "--follow-markers",
    }
    unknown = sorted(set(options) - set(flags))
    if unknown:
        raise ConfigError(f"unknown simulated amplifier options {unknown}; expected some of "
                          f"{sorted(flags)}")
    argv: list[str] = []
    for key, value in options.items():
        if value is None and key != "line_freq":
            continue
        if key == "line_freq" and value in (None, 0):
            value = "none"
        elif isinstance(value, Sequence) and not isinstance(value, str):
            value = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        argv += [flags[key], str(value)]
    return argv
