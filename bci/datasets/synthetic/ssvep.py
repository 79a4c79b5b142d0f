"""The SSVEP paradigm: targets' frequencies and phases, and the steady-state response."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bci.datasets.synthetic.labels import ssvep_label
from bci.datasets.synthetic.options import (
    DEFAULT_FREQUENCIES,
    PHASE_STEP,
    RNG_FIXED,
    as_non_negative,
    as_positive,
)
from bci.datasets.synthetic.signals import envelope, topography

#: SSVEP fundamental amplitude at Oz, volts.
SSVEP_AMPLITUDE = 5e-6
# Amplitude of harmonic h is _HARMONIC_DECAY^(h-1) of the fundamental's.
_HARMONIC_DECAY = 0.6
# Spread of the occipital topography around Oz, metres.
_SSVEP_SPREAD = 0.04


class SSVEPResponse:
    """The SSVEP part of :class:`~bci.datasets.synthetic.SyntheticEEG`.

    Relies on the host's ``seed``, ``sfreq``, ``latency``, ``_xyz`` and its
    schedule (``_response_spans``, ``_duration``).
    """

    def _setup_ssvep(self, frequencies: Sequence[float] | None,
                     phases: Sequence[float] | None, n_harmonics: int,
                     amplitude: float) -> None:
        freqs = DEFAULT_FREQUENCIES if frequencies is None else frequencies
        freqs = [as_positive("an SSVEP frequency", f) for f in freqs]
        if not freqs:
            raise ValueError("expected at least one SSVEP frequency, found none")
        nyquist = self.sfreq / 2
        too_high = [f for f in freqs if f >= nyquist]
        if too_high:
            raise ValueError(f"SSVEP frequencies must be below Nyquist ({nyquist:g} Hz), "
                             f"found {too_high}")
        labels = [ssvep_label(f) for f in freqs]
        if len(set(labels)) != len(labels):
            raise ValueError(f"expected distinct SSVEP frequencies, found {freqs}")
        if phases is None:
            phases = [(k * PHASE_STEP) % (2 * math.pi) for k in range(len(freqs))]
        phases = [float(p) for p in phases]
        if len(phases) != len(freqs):
            raise ValueError(f"expected one phase per frequency ({len(freqs)}), "
                             f"found {len(phases)}")
        if isinstance(n_harmonics, bool) or not isinstance(n_harmonics, int) \
                or n_harmonics < 1:
            raise ValueError(f"expected n_harmonics ≥ 1, found {n_harmonics!r}")
        self.frequencies = freqs
        self.phases = phases
        self.n_harmonics = n_harmonics
        self.labels = labels
        self.ssvep_amplitude = as_non_negative("ssvep_amplitude", amplitude)
        rng = np.random.default_rng([self.seed, RNG_FIXED, 1])
        # phase lag of each harmonic's generator, beyond the latency's own lag
        self._harmonic_phase = rng.uniform(0, 2 * np.pi, n_harmonics)
        self._ssvep_topo = topography(self._xyz, "Oz", _SSVEP_SPREAD)

    def _ssvep(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """SSVEP waveform at Oz and the stimulation envelope, shape (n,) each."""
        response = np.zeros(n)
        blocking = np.zeros(n)
        ramp = 0.1
        nyquist = self.sfreq / 2
        # t: seconds since the response began (latency after the cue)
        for trial, span, t in self._response_spans(start, n, self.latency):
            env = envelope(t, self._duration(trial), ramp)
            k = self.labels.index(trial.label)
            freq, phase = self.frequencies[k], self.phases[k]
            wave = np.zeros(t.size)
            for h in range(1, self.n_harmonics + 1):
                if h * freq >= nyquist:
                    break
                wave += _HARMONIC_DECAY ** (h - 1) * np.sin(
                    2 * np.pi * h * freq * t + h * phase + self._harmonic_phase[h - 1])
            response[span] += self.ssvep_amplitude * trial.strength * env * wave
            blocking[span] = np.maximum(blocking[span], env)
        return response, blocking
