"""The motor-imagery paradigm: mu and beta rhythms over C3, C4 and Cz, and their ERD."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bci.datasets.synthetic.options import (
    DEFAULT_MI_CLASSES,
    MI_CLASSES,
    RNG_FIXED,
    as_non_negative,
)
from bci.datasets.synthetic.signals import bandpass_sos, envelope, rms_scales, topography

# Amplitudes of the rhythms, volts RMS.
_MU_RMS = 6e-6
_BETA_RMS = 2.5e-6
# Spread of each source's topography, metres.
_MU_SPREAD = 0.03


class MotorImageryRhythms:
    """The motor-imagery part of :class:`~bci.datasets.synthetic.SyntheticEEG`.

    Relies on the host's ``seed``, ``sfreq``, ``_xyz`` and its schedule
    (``_response_spans``, ``_duration``); the host resets ``_zi_mu`` and ``_zi_beta``.
    """

    def _setup_mi(self, classes: Sequence[str] | None, erd_depth: float) -> None:
        classes = DEFAULT_MI_CLASSES if classes is None else classes
        if isinstance(classes, str):
            raise ValueError(f"expected a sequence of MI classes, found the string {classes!r}")
        classes = [str(c) for c in classes]
        bad = [c for c in classes if c not in MI_CLASSES]
        if bad or len(classes) < 1 or len(set(classes)) != len(classes):
            raise ValueError(f"expected distinct MI classes among {list(MI_CLASSES)}, "
                             f"found {classes}")
        depth = as_non_negative("erd_depth", erd_depth)
        if depth > 1:
            raise ValueError(f"expected erd_depth between 0 and 1, found {erd_depth!r}")
        self.labels = classes
        self.frequencies = None
        self.erd_depth = depth
        rng = np.random.default_rng([self.seed, RNG_FIXED, 2])
        sites = ("C3", "C4", "Cz")
        # hand areas sit under C3/C4, the feet area on the midline (Cz)
        self._mu_topo = np.stack([topography(self._xyz, s, _MU_SPREAD) for s in sites],
                                 axis=1) * np.array([1.0, 1.0, 0.7])
        mu_freqs = 10.5 + rng.uniform(-0.7, 0.7, 3)
        beta_freqs = 22.0 + rng.uniform(-1.5, 1.5, 3)
        nyquist = self.sfreq / 2
        self._mu_sos = [bandpass_sos(f - 1.5, f + 1.5, self.sfreq) for f in mu_freqs]
        self._beta_sos = [bandpass_sos(f - 4.0, min(f + 4.0, 0.95 * nyquist), self.sfreq)
                          for f in beta_freqs]
        self._mu_scale = rms_scales(self._mu_sos, _MU_RMS, self.sfreq)
        self._beta_scale = rms_scales(self._beta_sos, _BETA_RMS, self.sfreq)
        # ERD per class on the (C3, C4, Cz) sources: contralateral hand area, or the
        # midline for the feet, with a weak ipsilateral/bilateral share
        self._erd_pattern = {
            "left": np.array([0.2, 1.0, 0.2]),
            "right": np.array([1.0, 0.2, 0.2]),
            "feet": np.array([0.15, 0.15, 1.0]),
        }

    def _mi_rhythms(self, white: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mu and beta of the (C3, C4, Cz) sources, (3, n) each, from white noise (6, n)."""
        from scipy import signal  # on first use: importing the package stays cheap

        n = white.shape[1]
        mu = np.empty((3, n))
        beta = np.empty((3, n))
        for i in range(3):
            mu[i], self._zi_mu[i] = signal.sosfilt(
                self._mu_sos[i], white[i] * self._mu_scale[i], zi=self._zi_mu[i])
            beta[i], self._zi_beta[i] = signal.sosfilt(
                self._beta_sos[i], white[3 + i] * self._beta_scale[i], zi=self._zi_beta[i])
        return mu, beta

    def _mi(self, start: int, n: int, white: np.ndarray) -> np.ndarray:
        """Sensorimotor rhythms with their ERD, shape (n_channels, n)."""
        mu, beta = self._mi_rhythms(white)
        return self._mi_mix(mu, beta, self._erd_gain(start, n))

    def _erd_gain(self, start: int, n: int) -> np.ndarray:
        """Gain of the (C3, C4, Cz) mu sources under the trials' ERD, shape (3, n)."""
        # ERD begins 0.3 s after the cue, is full 0.5 s later and recovers after imagery
        delay, ramp = 0.3, 0.5
        loss = np.zeros((3, n))
        spans = self._response_spans(start, n, delay, tail=math.ceil(ramp * self.sfreq))
        for trial, span, t in spans:
            env = envelope(t, self._duration(trial) + ramp, ramp)
            pattern = self._erd_pattern[trial.label] * trial.strength
            loss[:, span] += pattern[:, None] * env[None]
        return np.clip(1.0 - loss, 0.0, 1.0)

    def _mi_mix(self, mu: np.ndarray, beta: np.ndarray, gain: np.ndarray) -> np.ndarray:
        # beta desynchronises less deeply than mu
        beta_gain = 1.0 - 0.7 * (1.0 - gain)
        return self._mu_topo @ (mu * gain + beta * beta_gain)

