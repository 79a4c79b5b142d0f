"""Training windows cut by the live code: a recording through the session's pipeline.

A decoder trained on these windows sees, in ``bci run`` and ``bci replay``, exactly the
signal it was trained on: same causal chain, same channel pick and order, same
preprocessing (read from the decoder's spec), same window arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bci.errors import TrainingError
from bci.pipeline import Pipeline
from bci.recording import Recording, RecordingSource
from bci.runner import Branch, run
from bci.session import SessionConfig
from bci.spec import DecoderSpec
from bci.windowing import Window


class _SpecOnly:
    """A decoder stand-in: declares channels, preprocessing and window; decodes nothing."""

    def __init__(self, spec: DecoderSpec, n_dims: int) -> None:
        self.spec, self._n_dims = spec, n_dims

    def input_shape(self) -> tuple[None, ...]:
        return (None,) * self._n_dims

    def run(self, window: np.ndarray) -> np.ndarray:  # pragma: no cover - never called
        raise RuntimeError("training windows are cut, not decoded")


@dataclass(slots=True)
class TrainingWindows:
    """Labelled windows from one or more recordings.

    Attributes
    ----------
    X : ndarray of float32, shape (n_windows, n_channels, n_times) or
        (n_windows, n_bands, n_channels, n_times)
    y : ndarray of str, shape (n_windows,)
    stops : ndarray of int, shape (n_windows,)
        One past each window's last sample, counted from its recording's first sample.
    recording : ndarray of int, shape (n_windows,)
        Index of the recording each window came from.
    """

    X: np.ndarray
    y: np.ndarray
    stops: np.ndarray
    recording: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @classmethod
    def concatenate(cls, parts: list[TrainingWindows]) -> TrainingWindows:
        if not parts:
            raise TrainingError("expected at least one set of windows, found none")
        shapes = {p.X.shape[1:] for p in parts if len(p)}
        if len(shapes) > 1:
            raise TrainingError(f"windows of different shapes cannot be pooled: {sorted(shapes)}")
        offset = 0
        recs = []
        for p in parts:
            recs.append(p.recording + offset)
            offset += int(p.recording.max()) + 1 if len(p) else 1
        return cls(np.concatenate([p.X for p in parts]), np.concatenate([p.y for p in parts]),
                   np.concatenate([p.stops for p in parts]), np.concatenate(recs))


def extract_windows(config: SessionConfig, spec: DecoderSpec, recording: Recording, *,
                    chunk_size: int = 256) -> TrainingWindows:
    """Cut the labelled windows a decoder with ``spec`` would see when replaying ``recording``.

    Parameters
    ----------
    config : SessionConfig
        Its chain, window and event map are used (the decoder table is not).
    spec : DecoderSpec
        Channels, sampling rate, preprocessing and window of the decoder to train.
    recording : bci.recording.Recording
    chunk_size : int
        Samples per chunk; the windows do not depend on it.

    Returns
    -------
    TrainingWindows
        Only windows whose marker names a class; windows touching NaN/Inf samples or
        spanning a gap in the timestamps are left out, as live.

    Raises
    ------
    bci.pipeline.StreamMismatchError
        When the recording lacks the spec's channels or has another sampling rate.
    TrainingError
        When no labelled window was found (naming the markers that were).
    """
    kinds = [n.get("kind") for n in (*config.chain, *spec.preprocessing)]
    n_dims = 3 if "filterbank" in kinds else 2
    source = RecordingSource(recording, chunk_size=chunk_size)
    pipeline = Pipeline(config, source.open(), clock=source.clock,
                        decoder=_SpecOnly(spec, n_dims))
    X, y, stops = [], [], []

    def take(w: Window) -> None:
        if w.label is not None:
            X.append(w.data)
            y.append(w.label)
            stops.append(w.stop)

    # the live loop, unpaced, with a window sink in place of the decoder
    run(source, [Branch(pipeline, on_window=[take], decode=False)], paced=False)
    if not X:
        found = sorted(set(recording.markers.values))[:20]
        events = config.window.events
        raise TrainingError(
            f"{recording.source or 'recording'}: expected windows labelled by the events "
            f"{events}, found none (markers in the recording: {found})"
        )
    return TrainingWindows(np.stack(X).astype(np.float32, copy=False), np.asarray(y, str),
                           np.asarray(stops, np.int64), np.zeros(len(y), np.int64))
