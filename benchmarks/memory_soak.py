"""Memory soak: a simulated live session of many hours through the live code path, sped up.

An accelerated amplifier (8 channels at 256 Hz, 1 s chunks, timestamps on a clock that
runs ``--speed`` times faster than real time) feeds :class:`bci.runner.Loop` paced and
live: the decode thread (:class:`bci.runner.DecodeWorker`), the band-pass chain, 0.5 s
sliding windows every 0.25 s (4 decisions/s of simulated time, 345,600 in 24 h), a small
ONNX decoder and a decision sink, exactly as ``bci run`` runs them, minus LSL. The
process's RSS is read after a warm-up (the first 5 % of the session, at least one
simulated hour when there is one) and at the end; a flat RSS means no per-decision or
per-chunk state grows with the session.

    python benchmarks/memory_soak.py --hours 24       # ~10 min on 2 busy cores
    python benchmarks/memory_soak.py --hours 1 --speed 300

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import mne
import numpy as np
import psutil
from bci.decoders.onnx_graphs import linear_softmax_model

from bci.chunk import Chunk
from bci.pipeline import Pipeline
from bci.runner import Branch, Loop
from bci.session import SessionConfig
from bci.source import Pull, Source
from bci.spec import DecoderSpec, WindowSpec, write_spec

CH = [f"EEG{i}" for i in range(8)]
SFREQ = 256.0
CHUNK = 256
WINDOW_S, STEP_S = 0.5, 0.25


class AcceleratedAmplifier(Source):
    """Synthetic EEG handed out as a live stream whose clock runs ``speed`` times fast.

    Like an amplifier, it hands over only the samples its clock has reached, so the
    decode thread sees the real live pacing, compressed; data are drawn once and
    recycled so that the source itself allocates nothing per chunk.
    """

    live = True

    def __init__(self, *, hours: float, speed: float, seed: int = 0) -> None:
        super().__init__()
        self.speed = speed
        self.n_total = round(hours * 3600 * SFREQ)
        self.name = "soak"
        rng = np.random.default_rng(seed)
        self._block = (1e-5 * rng.standard_normal((len(CH), 64 * CHUNK))).astype(np.float32)
        self._sent = 0
        self._t0 = 0.0
        self._p0 = time.perf_counter()

    def clock(self) -> float:  # type: ignore[override]
        return self._t0 + self.speed * (time.perf_counter() - self._p0)

    def open(self) -> mne.Info:
        self.info = mne.create_info(CH, SFREQ, "eeg")
        self._p0 = time.perf_counter()
        return self.info

    def pull(self, timeout: float) -> Pull | None:
        if self._sent >= self.n_total:
            return None
        due = min(int((self.clock() - self._t0) * SFREQ), self.n_total)
        if due - self._sent < CHUNK:
            time.sleep(min(timeout, CHUNK / SFREQ / self.speed))
            return Pull()
        n = (due - self._sent) // CHUNK * CHUNK
        at = self._sent % self._block.shape[1]
        data = np.roll(self._block, -at, axis=1)[:, :n] if n <= self._block.shape[1] else (
            np.resize(self._block, (len(CH), n)))
        stamps = self._t0 + (self._sent + np.arange(n)) / SFREQ
        self._sent += n
        return Pull(Chunk(data, stamps))

    def close(self) -> None:
        pass


def _session(folder: Path) -> SessionConfig:
    rng = np.random.default_rng(1)
    n_times = round(WINDOW_S * SFREQ)
    spec = DecoderSpec(paradigm="mi", classes=["left", "right"], ch_names=CH, sfreq=SFREQ,
                       window=WindowSpec(mode="sliding", length=WINDOW_S, step=STEP_S),
                       preprocessing=[{"kind": "bandpass", "l_freq": 8.0, "h_freq": 30.0}])
    model = folder / "soak.onnx"
    write_spec(linear_softmax_model(1e3 * rng.standard_normal((2, len(CH), n_times)),
                                    np.zeros(2)), spec, model)
    return SessionConfig.from_dict({"decoder": {"path": str(model)},
                                    "outputs": {"lsl": False}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours")
    parser.add_argument("--speed", type=float, default=150.0,
                        help="simulated seconds per real second (default 150: 24 h in 9.6 min)")
    args = parser.parse_args()
    process = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        config = _session(Path(tmp))
        source = AcceleratedAmplifier(hours=args.hours, speed=args.speed)
        info = source.open()
        pipeline = Pipeline(config, info, clock=source.clock)
        n_sunk = [0]

        def sink(decision) -> None:
            n_sunk[0] += 1

        warmup_s = max(0.05 * args.hours * 3600, min(3600.0, args.hours * 3600 / 2))
        rss: dict[str, float] = {}
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.5):
                sim = source._sent / SFREQ
                rss["peak"] = max(rss.get("peak", 0.0), process.memory_info().rss / 2**20)
                if "warm" not in rss and sim >= warmup_s:
                    rss["warm"] = process.memory_info().rss / 2**20
                    rss["warm_at_h"] = sim / 3600

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        t0 = time.perf_counter()
        # a backlog of 64: a 1 s chunk completes 4 windows at once, all of them decoded
        (result,) = Loop(source, [Branch(pipeline, [sink], backlog=64)], paced=True,
                         stall_timeout=3600.0).run()
        wall = time.perf_counter() - t0
        done.set()
        watcher.join()
        end = process.memory_info().rss / 2**20
    warm = rss.get("warm", end)
    out = {
        "hours": args.hours, "speed": args.speed, "wall_s": round(wall, 1),
        "decisions": result.n_decisions, "sunk": n_sunk[0],
        "skipped_backlog": result.counts.get("skipped_backlog", 0),
        "kept_decisions": len(result.decisions),
        "rss_warm_mb": round(warm, 1), "warm_at_h": round(rss.get("warm_at_h", 0.0), 2),
        "rss_end_mb": round(end, 1), "rss_peak_mb": round(rss.get("peak", end), 1),
        "growth_mb": round(end - warm, 1),
        "events": sorted({e["kind"] for e in result.events}),
    }
    print(f"{args.hours:g} h simulated in {wall:.0f} s: {result.n_decisions} decisions "
          f"({out['skipped_backlog']} windows skipped behind the decoder); RSS "
          f"{warm:.1f} MB after warm-up ({out['warm_at_h']:.2f} h), {end:.1f} MB at the end: "
          f"growth {end - warm:+.1f} MB")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
