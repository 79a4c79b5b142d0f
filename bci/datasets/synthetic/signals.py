"""Building blocks of the synthetic signals: band filters, noise scaling, envelopes and
Gaussian scalp topographies."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bci.datasets.synthetic.montage import site_position


def bandpass_sos(low: float, high: float, sfreq: float) -> np.ndarray:
    """Second-order Butterworth band-pass, as second-order sections."""
    from scipy import signal  # on first use: importing the package stays cheap

    return signal.butter(2, [low, high], "bandpass", fs=sfreq, output="sos")


def noise_gain(sos: np.ndarray, n: int) -> float:
    """RMS of the filter's output for unit white noise (√ of its impulse energy)."""
    impulse = np.zeros(n)
    impulse[0] = 1.0
    from scipy import signal

    return float(np.sqrt(np.sum(signal.sosfilt(sos, impulse) ** 2)))


def rms_scales(filters: Sequence[np.ndarray], rms: float, sfreq: float) -> np.ndarray:
    """Gain on unit white noise that gives each filter's output an RMS of ``rms``.

    The impulse response is summed over 20 s, long enough for the narrowest band.
    """
    return np.array([rms / noise_gain(s, 20 * int(sfreq)) for s in filters])


def topography(xyz: np.ndarray, site: str, spread: float) -> np.ndarray:
    """Gaussian fall-off with the distance of each electrode to ``site``, shape (n,).

    Parameters
    ----------
    xyz : ndarray, shape (n, 3)
        Electrode positions, metres.
    site : str
        A 10-05 name.
    spread : float
        Standard deviation of the fall-off, metres.
    """
    dist = np.linalg.norm(xyz - site_position(site), axis=1)
    return np.exp(-0.5 * (dist / spread) ** 2)


def envelope(t: np.ndarray, duration: float, ramp: float) -> np.ndarray:
    """Raised-cosine on/off envelope: 0 outside ``[0, duration]``, 1 in the plateau.

    Parameters
    ----------
    t : ndarray, shape (n,)
        Seconds since the start of the response.
    """
    rise = np.clip(t / ramp, 0.0, 1.0)
    fall = np.clip((duration - t) / ramp, 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * rise)) * (0.5 - 0.5 * np.cos(np.pi * fall))
