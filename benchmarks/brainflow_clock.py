"""How well BrainFlow's samples line up with LSL markers: the BrainFlow → LSL clock mapping.

BrainFlow stamps samples with the wall clock (UNIX seconds); the runtime maps them onto
LSL's ``local_clock()`` (:class:`bci.devices.brainflow_source.UnixClockMap`). This
measures the error of that mapping on BrainFlow's synthetic board, in two ways, while a
:class:`~bci.devices.brainflow_source.BrainFlowSource` streams (re-estimating its offset
every second, as in a session):

mapping
    Every ~0.1 s, one bracketed read ``local_clock / time.time / local_clock``: the wall
    time mapped by the source's current offset against the midpoint of the two
    ``local_clock`` reads. This is the mapping's error at arbitrary moments, drift
    between estimates included.
marker alignment
    At the same moments a marker is inserted (``insert_marker``) at a known
    ``local_clock`` time ``t``. BrainFlow writes it into the next sample it reads, so with
    an exact mapping ``t`` lies between the mapped stamps of that sample's predecessor
    and of that sample. The error is how far ``t`` falls outside that interval (0 when
    inside). The lag ``stamp − t`` (the board's sample grid, up to one sample period) is
    printed too, and so is the same error with the offset deliberately wrong by 2 ms,
    to show the measure sees an error of that size.

Usage::

    python benchmarks/brainflow_clock.py [--seconds 60] [--dejitter] [--json]

By default the samples keep BrainFlow's own (mapped) stamps, which is what the mapping's
error is about. With ``--dejitter`` they are stamped as a session stamps them, by the
board's package counter on a regular grid (:class:`PackageClock`): then a marker's
"alignment error" also holds how late the synthetic board's thread produced the sample
the marker landed on — the grid says when the sample was due, not when it was made.

Prints p50/p99/max in ms and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time

import numpy as np
from bci.devices.brainflow_source import BrainFlowSource

from bci.lslconfig import get_pylsl


def percentiles(x: np.ndarray) -> dict[str, float]:
    """p50, p99 and max of ``x`` in ms."""
    x = np.abs(np.asarray(x, np.float64)) * 1e3
    return {"p50": float(np.percentile(x, 50)), "p99": float(np.percentile(x, 99)),
            "max": float(x.max()), "n": int(x.size)}


def outside(t: np.ndarray, stamps: np.ndarray, marker_stamps: np.ndarray) -> np.ndarray:
    """Seconds each insert time ``t`` lies outside (previous sample, marker's sample]."""
    k = np.searchsorted(stamps, marker_stamps)  # index of the marker's sample
    prev = stamps[np.maximum(k - 1, 0)]
    return np.maximum(0.0, np.maximum(prev - t, t - marker_stamps))


def run(seconds: float, *, dejitter: bool = False) -> dict:
    pylsl = get_pylsl()
    source = BrainFlowSource("synthetic", dejitter=dejitter)
    source.open()
    stop = threading.Event()
    probes: list[tuple[float, float]] = []  # (mapping error, half bracket)
    inserted: list[tuple[float, int]] = []  # (local time, marker value)

    def probe_and_mark() -> None:
        rng = random.Random(0)
        value = 1
        while not stop.wait(rng.uniform(0.05, 0.15)):
            before = pylsl.local_clock()
            wall = time.time()
            after = pylsl.local_clock()
            mapped = wall - source.clock_map.offset
            probes.append((mapped - 0.5 * (before + after), 0.5 * (after - before)))
            t = pylsl.local_clock()
            source.insert_marker(value)
            inserted.append((t, value))
            value = value % 1000 + 1

    stamps: list[np.ndarray] = []
    marker_t: list[float] = []
    marker_v: list[str] = []
    thread = threading.Thread(target=probe_and_mark, daemon=True)
    thread.start()
    end = pylsl.local_clock() + seconds
    try:
        while pylsl.local_clock() < end:
            pulled = source.pull(0.05)
            if pulled.chunk is not None:
                stamps.append(pulled.chunk.timestamps)
            marker_t += pulled.markers.timestamps.tolist()
            marker_v += pulled.markers.values
    finally:
        stop.set()
        thread.join()
        drain = pylsl.local_clock() + 0.2  # the samples of the last markers
        while pylsl.local_clock() < drain:
            pulled = source.pull(0.05)
            if pulled.chunk is not None:
                stamps.append(pulled.chunk.timestamps)
            marker_t += pulled.markers.timestamps.tolist()
            marker_v += pulled.markers.values
        source.close()
    all_stamps = np.concatenate(stamps)
    got = dict(zip(marker_v, marker_t, strict=True))
    pairs = [(t, got[str(v)]) for t, v in inserted if str(v) in got]
    t = np.array([p[0] for p in pairs])
    m = np.array([p[1] for p in pairs])
    err = outside(t, all_stamps, m)
    shifted = outside(t, all_stamps + 2e-3, m + 2e-3)
    mapping = np.array([p[0] for p in probes])
    return {
        "seconds": seconds, "sfreq": source.sfreq, "markers_inserted": len(inserted),
        "markers_found": len(pairs), "n_samples": int(all_stamps.size),
        "mapping_error_ms": percentiles(mapping),
        "bracket_half_width_ms": percentiles(np.array([p[1] for p in probes])),
        "marker_alignment_error_ms": percentiles(err),
        "marker_lag_ms": percentiles(m - t),
        "marker_alignment_error_offset_2ms_wrong_ms": percentiles(shifted),
        "resyncs_every_s": source.clock_map.resync,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--dejitter", action="store_true",
                        help="stamp samples by the package counter, as sessions do")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()
    result = run(args.seconds, dejitter=args.dejitter)
    result["dejitter"] = args.dejitter
    if not args.json:
        print(f"synthetic board, {result['seconds']:g} s, {result['n_samples']} samples at "
              f"{result['sfreq']:g} Hz, {result['markers_found']}/"
              f"{result['markers_inserted']} markers found")
        print("| measure | p50 ms | p99 ms | max ms | n |\n|---|---|---|---|---|")
        for key, label in (
                ("mapping_error_ms", "mapping error (mapped wall time − local_clock)"),
                ("marker_alignment_error_ms", "marker alignment error (outside its sample "
                                              "interval)"),
                ("marker_lag_ms", "marker lag to the sample it lands on (sample grid)"),
                ("marker_alignment_error_offset_2ms_wrong_ms",
                 "alignment error with the offset 2 ms wrong (sensitivity)")):
            r = result[key]
            print(f"| {label} | {r['p50']:.4f} | {r['p99']:.4f} | {r['max']:.4f} | {r['n']} |")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
