"""Experiment protocols: SSVEP speller and Graz-style motor imagery with feedback.

Each runs calibration → training → online runs against an LSL EEG stream (or, with
``simulate``, against a simulated amplifier that follows the protocol's cue markers),
records everything to XDF, and returns a summary. Kept import-light: the protocol
modules are imported when used.
"""

#: ``bci protocol NAME`` → module implementing ``load(path, simulate=)`` and ``run(...)``.
PROTOCOLS = {
    "ssvep-speller": "bci.protocols.ssvep_speller",
    "mi-feedback": "bci.protocols.mi_feedback",
}
