"""Whole recordings of synthetic EEG, as the file readers return them."""

from __future__ import annotations

import numpy as np

from bci.chunk import Markers
from bci.datasets.synthetic.generator import SyntheticEEG
from bci.datasets.synthetic.options import as_non_negative
from bci.recording import Recording


def make_recording(duration: float, *, t0: float = 0.0, **options) -> Recording:
    """A :class:`~bci.recording.Recording` of synthetic EEG from sample 0.

    Parameters
    ----------
    duration : float
        Seconds of data (rounded to whole samples).
    t0 : float
        Timestamp of the first sample; sample i is at ``t0 + i / sfreq``.
    **options
        Keyword options of :class:`SyntheticEEG` (paradigm, n_channels, sfreq, seed …).

    Returns
    -------
    Recording
        Data float32 (n_channels, n_samples) in volts, timestamps, and one marker per
        cue with the class label as value.
    """
    eeg = SyntheticEEG(**options)
    seconds = as_non_negative("duration", duration)
    n = round(seconds * eeg.sfreq)
    data, cues = eeg.read(n)
    timestamps = t0 + np.arange(n) / eeg.sfreq
    onsets = np.array([s for s, _ in cues], dtype=np.int64)
    markers = Markers(t0 + onsets / eeg.sfreq, [label for _, label in cues])
    return Recording(eeg.info, data, timestamps, markers,
                     source=f"synthetic:{eeg.paradigm}:seed={eeg.seed}")
