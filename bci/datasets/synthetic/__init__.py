"""Synthetic EEG with known ground truth: SSVEP and motor-imagery paradigms.

Pure numpy/scipy; nothing here touches LSL (:mod:`bci.devices.simulated_amplifier` streams
it). The signal is a sum of

- background: 1/f ("pink") noise per channel, mixed across channels through a fixed
  matrix so that neighbouring electrodes correlate as volume conduction makes them;
- a posterior alpha rhythm (~10 Hz) from two parieto-occipital sources;
- line noise (50 Hz by default) with a fixed amplitude and phase per channel;
- the paradigm's responses, placed by a seeded trial schedule:

  * ``"ssvep"``: a steady-state response at the attended target's frequency and its
    harmonics, with the target's stimulation phase, an occipital topography centred on
    Oz, a visual latency and a per-trial amplitude jitter;
  * ``"mi"``: mu (8–13 Hz) and beta (18–26 Hz) rhythms from sources under C3, C4 and
    Cz, desynchronised (ERD) during imagery: left hand → C4, right hand → C3,
    feet → Cz.

Determinism: the noise of fixed blocks of :data:`BLOCK_SIZE` samples is drawn from a
generator seeded by ``(seed, block index)`` and filtered with filters whose state
carries over from block to block; the responses depend only on the absolute sample
index. So the same seed gives the same samples however they are pulled: reading
``0..N`` in chunks of any sizes returns exactly the array that one read of ``N`` returns.

Modules: :mod:`~bci.datasets.synthetic.generator` (the source and its schedule),
:mod:`~bci.datasets.synthetic.background`, :mod:`~bci.datasets.synthetic.ssvep` and
:mod:`~bci.datasets.synthetic.mi` (what the signal is made of),
:mod:`~bci.datasets.synthetic.montage` (10-05 sites), :mod:`~bci.datasets.synthetic.labels`
(SSVEP labels), :mod:`~bci.datasets.synthetic.options` (paradigms and defaults) and
:mod:`~bci.datasets.synthetic.recording` (whole recordings).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The paradigms and defaults are plain constants, loaded at once: `bci --help` and the
# simulator's options need them, not the signal model.
from bci.datasets.synthetic.options import (
    DEFAULT_FREQUENCIES,
    DEFAULT_ITI,
    DEFAULT_MI_CLASSES,
    DEFAULT_MI_N_CHANNELS,
    DEFAULT_SFREQ,
    DEFAULT_SSVEP_CHANNELS,
    DEFAULT_TRIAL_DURATION,
    MI_CLASSES,
    PARADIGMS,
    PHASE_STEP,
)

if TYPE_CHECKING:
    from bci.datasets.synthetic.generator import BLOCK_SIZE, SyntheticEEG, Trial
    from bci.datasets.synthetic.labels import (
        label_frequencies,
        label_frequency,
        ssvep_label,
    )
    from bci.datasets.synthetic.montage import pick_channels
    from bci.datasets.synthetic.recording import make_recording

#: Name → submodule of the names loaded on first use (PEP 562), so that importing the
#: package (or its options) costs no import of the generator, the recording or mne.
_LAZY = {
    "BLOCK_SIZE": "generator", "SyntheticEEG": "generator", "Trial": "generator",
    "label_frequencies": "labels", "label_frequency": "labels", "ssvep_label": "labels",
    "pick_channels": "montage", "make_recording": "recording",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BLOCK_SIZE", "DEFAULT_FREQUENCIES", "DEFAULT_ITI", "DEFAULT_MI_CLASSES",
    "DEFAULT_MI_N_CHANNELS", "DEFAULT_SFREQ", "DEFAULT_SSVEP_CHANNELS",
    "DEFAULT_TRIAL_DURATION", "MI_CLASSES", "PARADIGMS", "PHASE_STEP", "SyntheticEEG",
    "Trial", "label_frequencies", "label_frequency", "make_recording", "pick_channels",
    "ssvep_label",
]
