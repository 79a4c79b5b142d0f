"""Where decisions go: an LSL outlet, a JSON-lines log, and registered callbacks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

from bci.decision import Decision
from bci.lslconfig import get_pylsl


class DecisionOutlet:
    """Decisions as an LSL stream any program can read.

    Each sample is ``[class index, p_class_1, …, p_class_K, emitted]`` (double); its LSL
    timestamp is the timestamp of the last data sample the decision used, so consumers
    can align decisions with data. Class labels are listed in the header under
    ``desc/classes/class``; for continuous outputs the channels are the output values.

    Parameters
    ----------
    name : str
        Stream name (type ``Decisions``).
    classes : list of str
        Class labels (empty for continuous outputs).
    n_outputs : int
        Length of the decoder's output vector.
    source_id : str
        Lets consumers recover the stream after a restart.
    """

    def __init__(self, name: str, *, classes: list[str], n_outputs: int,
                 source_id: str = "") -> None:
        pylsl = get_pylsl()
        labels = ["index", *[f"p_{c}" for c in classes]] if classes else [
            f"out_{i}" for i in range(n_outputs)]
        labels.append("emitted")
        info = pylsl.StreamInfo(name, "Decisions", len(labels), pylsl.IRREGULAR_RATE,
                                pylsl.cf_double64, source_id or f"bci-decisions-{name}")
        chans = info.desc().append_child("channels")
        for label in labels:
            chans.append_child("channel").append_child_value("label", label)
        cls = info.desc().append_child("classes")
        for c in classes:
            cls.append_child_value("class", c)
        self._outlet = pylsl.StreamOutlet(info)
        self._sample = np.zeros(len(labels), np.float64)
        self._classes = classes

    def __call__(self, d: Decision) -> None:
        s = self._sample
        if self._classes:
            s[0] = -1 if d.label is None else self._classes.index(d.label)
            s[1:-1] = d.output
        else:
            s[:-1] = d.output
        s[-1] = d.emitted if d.emitted is not None else np.nan
        self._outlet.push_sample(s, d.last_sample_time)

    def close(self) -> None:
        self._outlet = None


class JsonlLog:
    """Decisions as JSON lines, one per decision, flushed as they come.

    Parameters
    ----------
    path : str | Path
    timing : bool
        Include emission time and latency; without them, the file depends on the data
        alone, so two replays of one recording are byte-identical.
    """

    def __init__(self, path: str | Path, *, timing: bool) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = self.path.open("w", encoding="utf-8")
        self.timing = timing

    def __call__(self, d: Decision) -> None:
        self._file.write(d.to_json(timing=self.timing) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class DecisionList(list):
    """A sink that keeps every decision, in order (tests and short protocol phases).

    :class:`bci.runner.SessionResult` keeps only the newest decisions; give this sink to
    a run whose every decision is needed afterwards, knowing it grows without bound.
    """

    def __call__(self, d: Decision) -> None:
        self.append(d)


Sink = Callable[[Decision], None]
