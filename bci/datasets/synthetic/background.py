"""The background every paradigm shares: volume-conducted pink noise, a posterior alpha
rhythm and line noise."""

from __future__ import annotations

import math

import numpy as np

from bci.datasets.synthetic.options import RNG_FIXED, RNG_NOISE
from bci.datasets.synthetic.signals import bandpass_sos, rms_scales, topography

# Amplitudes, in volts (amplitude spectral density in V/√Hz for the pink noise).
_PINK_ASD_10HZ = 1.5e-6
_ALPHA_RMS = 6e-6
_LINE_AMPLITUDE = 2e-6
# Spatial scales, in metres on the 10-05 montage (head radius ≈ 0.095 m).
_CORRELATION_LENGTH = 0.07
_ALPHA_SPREAD = 0.05
# Classic 1/f filter (J. O. Smith, "Spectral Audio Signal Processing"): −10 dB/decade
# from about 2e-4·sfreq to Nyquist, whatever the sampling rate.
_PINK_B = (0.049922035, -0.095993537, 0.050612699, -0.004408786)
_PINK_A = (1.0, -2.494956002, 2.017265875, -0.522189400)


class Background:
    """The background part of :class:`~bci.datasets.synthetic.SyntheticEEG`.

    Relies on the host's ``seed``, ``sfreq``, ``ch_names``, ``line_freq`` and ``_xyz``;
    the host resets the filter states ``_zi_pink`` and ``_zi_alpha``.
    """

    def _setup_background(self) -> None:
        # scipy.signal (and the scipy.stats it loads) only once a generator is built:
        # importing the package, as the simulator's options do, stays cheap
        from scipy import signal

        rng = np.random.default_rng([self.seed, RNG_FIXED, 0])
        n_ch = len(self.ch_names)
        # volume conduction: exponential decay of correlation with electrode distance;
        # its symmetric square root mixes independent sources into channels
        dist = np.linalg.norm(self._xyz[:, None] - self._xyz[None], axis=-1)
        eigval, eigvec = np.linalg.eigh(np.exp(-dist / _CORRELATION_LENGTH))
        root = (eigvec * np.sqrt(np.clip(eigval, 0, None))) @ eigvec.T
        gains = rng.uniform(0.85, 1.15, n_ch)
        self._mix = gains[:, None] * root

        pink = signal.tf2sos(_PINK_B, _PINK_A)
        highpass = signal.butter(1, 0.5, "highpass", fs=self.sfreq, output="sos")
        self._pink_sos = np.concatenate([pink, highpass])
        # white noise of variance σ² has a one-sided PSD 2σ²/sfreq; scale σ so that the
        # pink noise has the same density at 10 Hz whatever the sampling rate
        _, h10 = signal.sosfreqz(self._pink_sos, worN=[10.0], fs=self.sfreq)
        self._pink_scale = _PINK_ASD_10HZ * math.sqrt(self.sfreq / 2) / abs(h10[0])

        alpha_freqs = 10.0 + rng.uniform(-0.4, 0.4, 2)
        self._alpha_sos = [bandpass_sos(f - 1.2, f + 1.2, self.sfreq) for f in alpha_freqs]
        self._alpha_scale = rms_scales(self._alpha_sos, _ALPHA_RMS, self.sfreq)
        self._alpha_topo = np.stack([topography(self._xyz, s, _ALPHA_SPREAD)
                                     for s in ("PO3", "PO4")], axis=1)

        if self.line_freq is not None:
            amp = rng.uniform(0.5, 1.5, n_ch) * _LINE_AMPLITUDE
            phase = rng.uniform(0, 2 * np.pi, n_ch)
            # a·sin(ωt + φ) = a·cos φ·sin ωt + a·sin φ·cos ωt
            self._line_weights = np.stack([amp * np.cos(phase), amp * np.sin(phase)], axis=1)

    def _noise(self, index: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The seeded noise of block ``index`` (``n`` samples), filters carried over.

        Returns
        -------
        pink : ndarray, shape (n_channels, n)
            Pink noise mixed across channels by volume conduction.
        alpha : ndarray, shape (2, n)
            The two posterior alpha sources, before their topography.
        mi_white : ndarray, shape (6, n)
            White noise that drives the motor-imagery rhythms.
        """
        from scipy import signal  # loaded by _setup_background already

        rng = np.random.default_rng([self.seed, RNG_NOISE, index])
        # every draw happens whatever the options, so the noise depends on the seed only
        white = rng.standard_normal((len(self.ch_names), n))
        alpha_white = rng.standard_normal((2, n))
        mi_white = rng.standard_normal((6, n))
        pink, self._zi_pink = signal.sosfilt(self._pink_sos, white * self._pink_scale,
                                             axis=-1, zi=self._zi_pink)
        alpha = np.empty((2, n))
        for i, sos in enumerate(self._alpha_sos):
            alpha[i], self._zi_alpha[i] = signal.sosfilt(
                sos, alpha_white[i] * self._alpha_scale[i], zi=self._zi_alpha[i])
        return self._mix @ pink, alpha, mi_white

    def _line(self, start: int, n: int) -> np.ndarray:
        """Line noise of samples ``start … start + n``, shape (n_channels, n)."""
        arg = 2 * np.pi * self.line_freq * ((start + np.arange(n)) / self.sfreq)
        return self._line_weights @ np.stack([np.sin(arg), np.cos(arg)])
