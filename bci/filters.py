"""Causal IIR filter nodes: band-pass, high-pass, low-pass, notch, filter bank, decimation.

Filters run as second-order sections in float64 with their state (``zi``) kept between
chunks, so chunked and whole-recording processing agree to float32 round-off. Each chunk
is filtered in place in one float64 work copy by scipy's own kernel (the one
:func:`scipy.signal.sosfilt` calls), with the state stored in the kernel's layout: the
same numbers as ``sosfilt`` at about a sixth of its cost on 10-sample chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mne
import numpy as np
from scipy import signal

try:  # scipy's second-order-section kernel (in place, state per signal)
    from scipy.signal._sosfilt import _sosfilt
except ImportError:  # pragma: no cover - layout of scipy's private modules changed
    _sosfilt = None

from bci.chain import Node, check_positive
from bci.chunk import Chunk

FTYPES = ("butter", "cheby1", "cheby2", "ellip", "bessel")


def _update_info(info: mne.Info, **values: float) -> mne.Info:
    info = info.copy()
    with info._unlock():
        for key, value in values.items():
            info[key] = value
    return info


class SosFilter(Node):
    """A causal filter given as second-order sections, designed at :meth:`setup`.

    Subclasses implement :meth:`design` returning the sections for a sampling rate.
    """

    def __init__(self) -> None:
        self.sos_: np.ndarray | None = None
        self._zi: np.ndarray | None = None

    def design(self, sfreq: float) -> np.ndarray:
        raise NotImplementedError

    def setup(self, info: mne.Info) -> mne.Info:
        sfreq = float(info["sfreq"])
        self.sos_ = self.design(sfreq)
        self._zi = None
        return info

    def process(self, chunk: Chunk) -> Chunk:
        x = chunk.data
        lead, n = x.shape[:-1], x.shape[-1]
        if self._zi is None:
            # one row of (n_sections, 2) states per signal, the layout scipy's kernel takes
            self._zi = np.zeros((int(np.prod(lead)), self.sos_.shape[0], 2))
        if _sosfilt is None:  # a scipy without the kernel: the public call, same numbers
            zi = np.moveaxis(self._zi, 1, 0).reshape(self.sos_.shape[0], *lead, 2)
            y, zi = signal.sosfilt(self.sos_, x, axis=-1, zi=zi)
            self._zi = np.ascontiguousarray(np.moveaxis(zi.reshape(
                self.sos_.shape[0], -1, 2), 0, 1))
            return chunk.with_data(y.astype(np.float32, copy=False))
        # float64 work copy filtered in place with the stored state: what
        # scipy.signal.sosfilt computes, without its per-call checks and reshapes
        y = np.array(x.reshape(-1, n), np.float64, order="C")
        _sosfilt(self.sos_, y, self._zi)
        return chunk.with_data(y.astype(np.float32).reshape(*lead, n))

    def reset(self) -> None:
        self._zi = None


def _check_band(name: str, freq: float, sfreq: float) -> None:
    if not 0 < freq < sfreq / 2:
        raise ValueError(
            f"{name} must lie between 0 and the Nyquist frequency {sfreq / 2:g} Hz, "
            f"found {freq:g} Hz"
        )


class _IIRDesign(SosFilter):
    def __init__(self, *, order: int, ftype: str, rp: float, rs: float) -> None:
        super().__init__()
        if not isinstance(order, int) or order < 1:
            raise ValueError(f"order must be a positive integer, found {order!r}")
        if ftype not in FTYPES:
            raise ValueError(f"ftype must be one of {FTYPES}, found {ftype!r}")
        self.order, self.ftype, self.rp, self.rs = order, ftype, float(rp), float(rs)

    def _iir(self, wn: float | list[float], btype: str, sfreq: float) -> np.ndarray:
        return signal.iirfilter(
            self.order, wn, btype=btype, ftype=self.ftype, rp=self.rp, rs=self.rs,
            fs=sfreq, output="sos",
        )

    def _design_params(self) -> dict[str, Any]:
        return {"order": self.order, "ftype": self.ftype, "rp": self.rp, "rs": self.rs}


class BandPass(_IIRDesign):
    """Causal band-pass filter.

    Parameters
    ----------
    l_freq, h_freq : float
        Pass-band edges in Hz.
    order : int
        Order of the prototype (the band-pass has twice as many poles).
    ftype : str
        ``"butter"`` (default), ``"cheby1"``, ``"cheby2"``, ``"ellip"`` or ``"bessel"``.
    rp, rs : float
        Pass-band ripple and stop-band attenuation in dB (Chebyshev/elliptic only).
    """

    kind = "bandpass"

    def __init__(
        self, *, l_freq: float, h_freq: float, order: int = 4, ftype: str = "butter",
        rp: float = 0.5, rs: float = 40.0,
    ) -> None:
        super().__init__(order=order, ftype=ftype, rp=rp, rs=rs)
        self.l_freq = check_positive("l_freq", l_freq)
        self.h_freq = check_positive("h_freq", h_freq)
        if self.l_freq >= self.h_freq:
            raise ValueError(f"l_freq must be below h_freq, found {l_freq} >= {h_freq}")

    def design(self, sfreq: float) -> np.ndarray:
        _check_band("l_freq", self.l_freq, sfreq)
        _check_band("h_freq", self.h_freq, sfreq)
        return self._iir([self.l_freq, self.h_freq], "bandpass", sfreq)

    def setup(self, info: mne.Info) -> mne.Info:
        info = super().setup(info)
        return _update_info(
            info, highpass=max(self.l_freq, info["highpass"]),
            lowpass=min(self.h_freq, info["lowpass"]),
        )

    def get_params(self) -> dict[str, Any]:
        return {"l_freq": self.l_freq, "h_freq": self.h_freq, **self._design_params()}


class HighPass(_IIRDesign):
    """Causal high-pass filter at ``l_freq`` Hz (see :class:`BandPass` for options)."""

    kind = "highpass"

    def __init__(
        self, *, l_freq: float, order: int = 4, ftype: str = "butter", rp: float = 0.5,
        rs: float = 40.0,
    ) -> None:
        super().__init__(order=order, ftype=ftype, rp=rp, rs=rs)
        self.l_freq = check_positive("l_freq", l_freq)

    def design(self, sfreq: float) -> np.ndarray:
        _check_band("l_freq", self.l_freq, sfreq)
        return self._iir(self.l_freq, "highpass", sfreq)

    def setup(self, info: mne.Info) -> mne.Info:
        info = super().setup(info)
        return _update_info(info, highpass=max(self.l_freq, info["highpass"]))

    def get_params(self) -> dict[str, Any]:
        return {"l_freq": self.l_freq, **self._design_params()}


class LowPass(_IIRDesign):
    """Causal low-pass filter at ``h_freq`` Hz (see :class:`BandPass` for options)."""

    kind = "lowpass"

    def __init__(
        self, *, h_freq: float, order: int = 4, ftype: str = "butter", rp: float = 0.5,
        rs: float = 40.0,
    ) -> None:
        super().__init__(order=order, ftype=ftype, rp=rp, rs=rs)
        self.h_freq = check_positive("h_freq", h_freq)

    def design(self, sfreq: float) -> np.ndarray:
        _check_band("h_freq", self.h_freq, sfreq)
        return self._iir(self.h_freq, "lowpass", sfreq)

    def setup(self, info: mne.Info) -> mne.Info:
        info = super().setup(info)
        return _update_info(info, lowpass=min(self.h_freq, info["lowpass"]))

    def get_params(self) -> dict[str, Any]:
        return {"h_freq": self.h_freq, **self._design_params()}


class Notch(SosFilter):
    """Causal notch filters (one second-order section per frequency).

    Parameters
    ----------
    freqs : float | sequence of float
        Frequencies to remove, e.g. ``[50, 100]``; those at or above Nyquist are an error.
    quality : float
        Quality factor Q = f / bandwidth (default 30).
    """

    kind = "notch"

    def __init__(self, *, freqs: float | Sequence[float], quality: float = 30.0) -> None:
        super().__init__()
        freqs = [freqs] if isinstance(freqs, int | float) else list(freqs)
        if not freqs:
            raise ValueError("freqs must name at least one frequency, found []")
        self.freqs = [check_positive("freqs", f) for f in freqs]
        self.quality = check_positive("quality", quality)

    def design(self, sfreq: float) -> np.ndarray:
        sections = []
        for f in self.freqs:
            _check_band("notch frequency", f, sfreq)
            b, a = signal.iirnotch(f, self.quality, fs=sfreq)
            sections.append(signal.tf2sos(b, a))
        return np.concatenate(sections)

    def get_params(self) -> dict[str, Any]:
        return {"freqs": self.freqs, "quality": self.quality}


class FilterBank(Node):
    """Split each channel into sub-bands: ``(n_channels, n)`` → ``(n_bands, n_channels, n)``.

    Parameters
    ----------
    bands : sequence of (float, float)
        Pass-bands in Hz, e.g. FBCCA's ``[(8, 88), (16, 88), (24, 88)]``.
    order : int
        Prototype order of each band-pass.
    ftype : str
        Filter family (default ``"cheby1"``, as in Chen et al. 2015).
    rp, rs : float
        Ripple and attenuation in dB.
    """

    kind = "filterbank"

    def __init__(
        self, *, bands: Sequence[Sequence[float]], order: int = 4, ftype: str = "cheby1",
        rp: float = 0.5, rs: float = 40.0,
    ) -> None:
        if isinstance(bands, str) or not bands:
            raise ValueError(f"bands must be a non-empty list of [low, high], found {bands!r}")
        self.bands = [[float(lo), float(hi)] for lo, hi in bands]
        self.order, self.ftype, self.rp, self.rs = order, ftype, rp, rs
        self.filters_ = [
            BandPass(l_freq=lo, h_freq=hi, order=order, ftype=ftype, rp=rp, rs=rs)
            for lo, hi in self.bands
        ]

    def setup(self, info: mne.Info) -> mne.Info:
        for f in self.filters_:
            f.setup(info)
        return info

    def process(self, chunk: Chunk) -> Chunk:
        if chunk.data.ndim != 2:
            raise ValueError(
                f"a filter bank takes (n_channels, n_samples) chunks, found shape "
                f"{chunk.data.shape}"
            )
        out = np.stack([f.process(chunk).data for f in self.filters_])
        return chunk.with_data(out)

    def reset(self) -> None:
        for f in self.filters_:
            f.reset()

    def get_params(self) -> dict[str, Any]:
        return {
            "bands": self.bands, "order": self.order, "ftype": self.ftype, "rp": self.rp,
            "rs": self.rs,
        }


class AntiAlias(SosFilter):
    """The causal low-pass that precedes decimation by ``factor``.

    Chebyshev I at 80 % of the new Nyquist frequency, as :func:`scipy.signal.decimate`.
    """

    kind = "antialias"

    def __init__(self, *, factor: int, order: int = 8) -> None:
        super().__init__()
        if not isinstance(factor, int) or factor < 2:
            raise ValueError(f"factor must be an integer of at least 2, found {factor!r}")
        self.factor, self.order = factor, order

    def design(self, sfreq: float) -> np.ndarray:
        return signal.cheby1(self.order, 0.05, 0.8 * sfreq / (2 * self.factor),
                             btype="lowpass", fs=sfreq, output="sos")

    def setup(self, info: mne.Info) -> mne.Info:
        info = super().setup(info)
        return _update_info(
            info, lowpass=min(0.8 * float(info["sfreq"]) / (2 * self.factor), info["lowpass"])
        )

    def get_params(self) -> dict[str, Any]:
        return {"factor": self.factor, "order": self.order}


class Decimate(Node):
    """Anti-aliased decimation by an integer factor.

    :class:`AntiAlias`, then every ``factor``-th sample, counted from the first sample
    ever seen so that chunk boundaries do not matter. A kept sample carries the flags of
    every input sample since the previous kept one. When a decimation ends the decoder's
    chain, the runtime instead keeps every ``factor``-th sample counting back from each
    window's last sample (see :class:`bci.windowing.SlidingWindower`), so that a window
    always ends on the newest sample.

    Parameters
    ----------
    factor : int
        Decimation factor (≥ 2).
    order : int
        Order of the anti-aliasing filter (default 8).
    """

    kind = "decimate"

    def __init__(self, *, factor: int, order: int = 8) -> None:
        self.antialias = AntiAlias(factor=factor, order=order)
        self.factor, self.order = factor, order
        self._phase = 0  # input samples seen, modulo factor
        self._pending_flags = np.uint8(0)

    def setup(self, info: mne.Info) -> mne.Info:
        info = self.antialias.setup(info)
        self.reset()
        return _update_info(info, sfreq=float(info["sfreq"]) / self.factor)

    def process(self, chunk: Chunk) -> Chunk:
        filtered = self.antialias.process(chunk)
        n = chunk.n_samples
        first = (-self._phase) % self.factor  # offset of the first kept sample
        keep = np.arange(first, n, self.factor)
        flags = None
        if chunk.flags is not None or self._pending_flags:
            f = chunk.sample_flags()
            # OR of flags in (previous kept, this kept]; leftovers wait for the next chunk
            edges = np.concatenate(([0], keep + 1))
            if keep.size:
                flags = np.bitwise_or.reduceat(f[: keep[-1] + 1], edges[:-1])
                flags[0] |= self._pending_flags
                tail = f[keep[-1] + 1 :]
                self._pending_flags = np.bitwise_or.reduce(tail) if tail.size else np.uint8(0)
            else:
                self._pending_flags |= np.bitwise_or.reduce(f)
                flags = np.zeros(0, np.uint8)
        self._phase = (self._phase + n) % self.factor
        return Chunk(filtered.data[..., keep], chunk.timestamps[keep], flags)

    def reset(self) -> None:
        self.antialias.reset()
        self._phase = 0
        self._pending_flags = np.uint8(0)

    def get_params(self) -> dict[str, Any]:
        return {"factor": self.factor, "order": self.order}
