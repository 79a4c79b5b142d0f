"""How long one frame of ``bci scope`` takes: 64 channels at 1000 Hz, 10 s on screen.

A synthetic source hands the scope one frame's worth of samples (1000 / fps) per frame,
as an LSL inlet would at 30 frames per second; the buffer is filled first so every frame
draws 10 s. Reported, in ms (p50 / p99 / max):

* ``update``: pull + display filters + ring buffer + min/max decimation + ``setData`` of
  the 64 traces and the markers (what the scope's timer does each frame);
* ``paint``: rendering the plot widget afterwards (``grab()``, Qt's software raster when
  offscreen): what the screen costs on top;
* ``spectrum``: one Welch PSD of the 10 s window for all channels, when that view is on.

A frame budget at 30 Hz is 33 ms; update + paint must stay well inside it.

    QT_QPA_PLATFORM=offscreen python benchmarks/scope_update.py --frames 300
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


class SyntheticSource:
    """``info`` and ``pull(timeout)``: noise plus a 10 Hz rhythm, ``block`` samples a pull."""

    def __init__(self, n_channels: int, sfreq: float, block: int, seed: int = 0) -> None:
        import mne

        from bci.chunk import Chunk

        self._chunk = Chunk
        self.info = mne.create_info([f"EEG{i:03d}" for i in range(n_channels)], sfreq, "eeg")
        self.sfreq, self.block = sfreq, block
        self.rng = np.random.default_rng(seed)
        self.n = 0
        self.pending = 0  # blocks to hand out before returning None

    def pull(self, timeout: float = 0.0):
        if self.pending <= 0:
            return None
        self.pending -= 1
        t = (self.n + np.arange(self.block)) / self.sfreq
        data = 10e-6 * self.rng.standard_normal((len(self.info.ch_names), self.block))
        data += 20e-6 * np.sin(2 * np.pi * 10 * t)
        self.n += self.block
        return self._chunk(data.astype(np.float32), t)


def stats(values: list[float]) -> str:
    a = 1e3 * np.asarray(values)
    return (f"p50 {np.percentile(a, 50):6.2f}  p99 {np.percentile(a, 99):6.2f}  "
            f"max {a.max():6.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--sfreq", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--max-points", type=int, default=2000)
    ap.add_argument("--filter", action="store_true",
                    help="display band-pass 1-40 Hz and notch 50 Hz")
    ap.add_argument("--size", type=int, nargs=2, default=(1400, 1000))
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from bci.gui.scope import ScopeWindow, display_filters

    app = QApplication.instance() or QApplication([])
    block = round(args.sfreq / args.fps)
    source = SyntheticSource(args.channels, args.sfreq, block)
    filters = display_filters((1.0, 40.0), (50.0,)) if args.filter else None
    w = ScopeWindow(source, seconds=args.seconds, filters=filters, max_points=args.max_points,
                    fps=args.fps, autostart=False, scale=100e-6)
    w.resize(*args.size)
    w.show()
    app.processEvents()
    source.pending = int(args.seconds * args.sfreq / block) + 1  # fill the buffer
    while source.pending:
        w.tick()
    updates, paints = [], []
    for i in range(args.frames):
        source.pending = 1
        if i % 30 == 0:
            w.add_marker(source.n / args.sfreq, f"m{i}")
        t0 = time.perf_counter()
        w.tick()
        t1 = time.perf_counter()
        w.trace_widget.grab()
        t2 = time.perf_counter()
        updates.append(t1 - t0)
        paints.append(t2 - t1)
    w.show_spectrum(True)
    spectra = []
    for _ in range(max(10, args.frames // 10)):
        t0 = time.perf_counter()
        w._draw_spectrum()
        spectra.append(time.perf_counter() - t0)
    n_points = len(w.curves[0].getData()[0])
    print(f"{args.channels} ch x {args.sfreq:g} Hz x {args.seconds:g} s buffer, "
          f"{n_points} points per trace, {args.frames} frames, window {args.size[0]}x"
          f"{args.size[1]}{', display filters' if args.filter else ''}")
    print(f"update   {stats(updates)}")
    print(f"paint    {stats(paints)}")
    print(f"total    {stats([a + b for a, b in zip(updates, paints, strict=True)])}")
    print(f"spectrum {stats(spectra)}")
    w.close()


if __name__ == "__main__":
    main()
