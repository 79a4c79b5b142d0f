"""Frame timing of the SSVEP speller: how regular the frames are, and where the markers sit.

Runs ``--stims`` stimulations of the speller (``bci.gui.speller.SpellerWindow``, 40
targets by default) for ``--frames`` frames in all, and reports

* the inter-frame interval (time between the recorded times of consecutive frames):
  p50/p99/max, and its jitter relative to 1/refresh (|interval − 1/refresh|);
* lateness of each frame against its schedule ``t0 + i/refresh``, and dropped frames
  (intervals over 1.5/refresh);
* the cost of painting one frame (``repaint`` of the 40 targets);
* marker − first-frame time for every stimulation, read back through an LSL inlet, and
  how long the marker took to arrive.

By default Qt renders ``offscreen`` (no display: the frames are paced by the speller's
timer, and the times are paint times). ``--xvfb`` re-runs the script under ``xvfb-run``
when it is installed (``apt-get install xvfb``), so frames go through a real X server
(still no vertical blank: Xvfb has no display hardware); ``--vsync`` paces frames from
the OpenGL widget's ``frameSwapped`` (needs an OpenGL platform). On a lab monitor, run
with ``--platform xcb`` (or ``wayland``) and without ``--refresh``, and confirm with a
photodiode: these figures are what the software sees, not photons.

    python benchmarks/frame_timing.py --frames 1200
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time

import numpy as np


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=600, help="frames in all (default 600)")
    ap.add_argument("--stims", type=int, default=5, help="stimulations (default 5)")
    ap.add_argument("--targets", type=int, default=40, help="number of targets (default 40)")
    ap.add_argument("--refresh", type=float, default=None,
                    help="refresh rate in Hz (default: the screen's; 60 offscreen)")
    ap.add_argument("--platform", default=None,
                    help="Qt platform (default: offscreen, or xcb under --xvfb)")
    ap.add_argument("--xvfb", action="store_true",
                    help="re-run under xvfb-run (a real X server) if it is installed")
    ap.add_argument("--vsync", action="store_true",
                    help="OpenGL canvas paced by frameSwapped (not offscreen)")
    ap.add_argument("--json", help="also write the figures to this file")
    return ap.parse_args()


def maybe_reexec_under_xvfb(args: argparse.Namespace) -> None:
    if not args.xvfb or os.environ.get("BCI_UNDER_XVFB"):
        return
    exe = shutil.which("xvfb-run")
    if exe is None:
        print("xvfb-run not found (apt-get install xvfb); running offscreen instead")
        args.xvfb = False
        return
    os.environ["BCI_UNDER_XVFB"] = "1"
    os.environ["QT_QPA_PLATFORM"] = args.platform or "xcb"
    cmd = [exe, "-a", "-s", "-screen 0 1280x1024x24", sys.executable, *sys.argv]
    os.execv(exe, cmd)


def ms(v: np.ndarray) -> dict[str, float]:
    v = 1e3 * np.asarray(v, np.float64)
    if v.size == 0:
        return {"n": 0}
    return {"p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99)),
            "max": float(v.max()), "mean": float(v.mean()), "n": int(v.size)}


def fmt(d: dict[str, float]) -> str:
    if not d.get("n"):
        return "n=0"
    return (f"p50 {d['p50']:7.3f}  p99 {d['p99']:7.3f}  max {d['max']:7.3f}  "
            f"mean {d['mean']:7.3f} ms  (n={d['n']})")


def main() -> None:
    args = parse()
    maybe_reexec_under_xvfb(args)
    if not os.environ.get("BCI_UNDER_XVFB"):
        os.environ["QT_QPA_PLATFORM"] = args.platform or os.environ.get(
            "QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from bci.gui.speller import DEFAULT_CHARS, SpellerWindow
    from bci.lslconfig import get_pylsl

    pylsl = get_pylsl()
    app = QApplication.instance() or QApplication([])
    platform = app.platformName()
    screen_refresh = app.primaryScreen().refreshRate()
    chars = (list(DEFAULT_CHARS) if args.targets == 40
             else [f"{k}" for k in range(args.targets)])
    name = f"bci-frame-timing-{os.getpid()}"
    w = SpellerWindow(chars, refresh=args.refresh, marker_stream=name, vsync=args.vsync)
    w.resize(1024, 700)
    w.show()
    refresh = w.refresh
    period = 1.0 / refresh
    for _ in range(20):
        app.processEvents()
        time.sleep(0.005)

    inlet = pylsl.StreamInlet(pylsl.resolve_byprop("name", name, 1, 5.0)[0])
    inlet.open_stream(5.0)
    markers: list[tuple[float, str, float]] = []  # (timestamp, label, received)
    done = threading.Event()

    def pull_markers() -> None:  # as a recorder would, on its own thread
        while not done.is_set():
            sample, ts = inlet.pull_sample(timeout=0.05)
            if sample is not None:
                markers.append((ts, sample[0], pylsl.local_clock()))

    puller = threading.Thread(target=pull_markers, daemon=True)
    puller.start()

    # cost of painting one frame of all targets
    paint = []
    for i in range(100):
        w.canvas.levels[:] = (i % 2) * 1.0
        t = time.perf_counter()
        w.canvas.repaint()
        paint.append(time.perf_counter() - t)

    per_stim = max(2, args.frames // args.stims)
    stims: list[tuple[np.ndarray, np.ndarray]] = []
    loop = QEventLoop()
    w.stimulation_finished.connect(lambda _t: loop.quit())
    guard = QTimer()
    guard.setSingleShot(True)
    guard.timeout.connect(loop.quit)
    for s in range(args.stims):
        w.set_cue(s % len(chars))
        w.stimulate(n_frames=per_stim)
        guard.start(int(1e3 * (per_stim * period * 3 + 2)))
        loop.exec()
        stims.append((w.frame_times.copy(), w.frame_scheduled.copy()))
        end = time.perf_counter() + 0.25  # a short pause between stimulations
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.002)

    end = time.monotonic() + 3.0
    while len(markers) < args.stims and time.monotonic() < end:
        time.sleep(0.01)
    done.set()
    puller.join()
    inlet.close_stream()

    intervals = np.concatenate([np.diff(t) for t, _ in stims])
    lateness = np.concatenate([t[1:] - sch[1:] for t, sch in stims])
    jitter = np.abs(intervals - period)
    complete = sum(int(np.isfinite(t).all() and len(t) == per_stim) for t, _ in stims)
    firsts = np.array([t[0] for t, _ in stims])
    mk = np.array([m[0] for m in markers])
    marker_minus_frame = mk - firsts[:len(mk)] if len(mk) else np.empty(0)
    arrival = np.array([m[2] - m[0] for m in markers])
    labels_ok = [m[1] for m in markers] == [chars[s % len(chars)] for s in range(len(markers))]

    out = {
        "platform": platform, "vsync": args.vsync, "targets": len(chars),
        "refresh_hz": refresh, "screen_refresh_hz": screen_refresh,
        "stimulations": args.stims, "frames_per_stimulation": per_stim,
        "complete_stimulations": complete,
        "interval_ms": ms(intervals),
        "jitter_abs_ms": ms(jitter),
        "lateness_ms": ms(lateness),
        "dropped_frames": int((intervals > 1.5 * period).sum()),
        "paint_ms": ms(np.array(paint)),
        "markers": len(markers), "marker_labels_ok": labels_ok,
        "marker_minus_first_frame_ms": ms(np.abs(marker_minus_frame)),
        "marker_arrival_ms": ms(arrival),
    }
    print(f"SSVEP speller frame timing — platform {platform}"
          f"{' (Xvfb)' if os.environ.get('BCI_UNDER_XVFB') else ''}, "
          f"{'vsync/GL' if args.vsync else 'raster, timer-paced'}, {len(chars)} targets, "
          f"refresh {refresh:g} Hz (period {1e3 * period:.3f} ms)")
    print(f"{args.stims} stimulations × {per_stim} frames, {complete} complete")
    print(f"inter-frame interval      {fmt(out['interval_ms'])}")
    print(f"|interval − 1/refresh|    {fmt(out['jitter_abs_ms'])}")
    print(f"lateness vs schedule      {fmt(out['lateness_ms'])}")
    print(f"dropped (> 1.5 periods)   {out['dropped_frames']}")
    print(f"paint one frame           {fmt(out['paint_ms'])}")
    print(f"|marker − first frame|    {fmt(out['marker_minus_first_frame_ms'])}  "
          f"labels {'ok' if labels_ok else 'WRONG'}, {len(markers)}/{args.stims} markers")
    print(f"marker arrival at inlet   {fmt(out['marker_arrival_ms'])}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
    w.close()


if __name__ == "__main__":
    main()
