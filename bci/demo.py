"""``bci demo``: a complete closed loop with no arguments.

A simulated SSVEP amplifier runs in its own process and streams 8 occipital channels at
256 Hz over LSL (on this machine only), with a marker at each trial's onset naming the
target, in chunks of 4 samples (every 15.6 ms) as a real amplifier at that rate would send
them, so that the latency shown is the runtime's rather than the simulator's. The live
FBCCA session resolves both streams, decodes the window 0.14–2.14 s
after each cue (the simulated visual latency is 0.14 s), prints each decision next to
the true target, and ends with accuracy, ITR and decision latency.

ITR convention (Wolpaw): the selection time is the whole trial, 2 s of stimulation plus
the 1 s inter-trial gaze shift, i.e. 3 s per selection.
"""

from __future__ import annotations

import json
import os
import sys
import uuid

from bci.devices.simulated_amplifier import spawn, stop_spawned
from bci.metrics import itr_bits_per_min
from bci.runner import run_live
from bci.session import SessionConfig

FREQUENCIES = (8.0, 10.0, 12.0, 15.0)
STIM_S, ITI_S, LATENCY_S = 2.0, 1.0, 0.14
SFREQ = 256.0
#: Samples per chunk the simulated amplifier sends (an amplifier at 256 Hz sends 1–4).
CHUNK = 4


def demo_config(name: str, marker_name: str, duration: float) -> SessionConfig:
    classes = [f"{f:g}Hz" for f in FREQUENCIES]
    return SessionConfig.from_dict({
        "session": {"name": "demo", "duration": duration},
        "source": {"stream": name, "markers": marker_name, "resolve_timeout": 20.0},
        "chain": {"nodes": [{"kind": "notch", "freqs": [50.0]}]},
        "window": {"mode": "epoch", "tmin": LATENCY_S, "tmax": LATENCY_S + STIM_S,
                   "events": {c: c for c in classes}},
        "decoder": {"kind": "fbcca", "frequencies": list(FREQUENCIES), "classes": classes,
                    "n_harmonics": 3, "n_bands": 5},
        "outputs": {"lsl": f"{name}-decisions"},
    })


def run_demo(*, duration: float = 30.0, as_json: bool = False, seed: int = 7) -> int:
    """Run the demo; return the process exit code."""
    tag = uuid.uuid4().hex[:6]
    name, marker_name = f"bci-demo-eeg-{tag}", f"bci-demo-markers-{tag}"
    out = sys.stdout

    def say(text: str) -> None:
        if not as_json:
            print(text, file=out, flush=True)

    say(f"bci demo: simulated SSVEP amplifier ({len(FREQUENCIES)} targets at "
        f"{', '.join(f'{f:g}' for f in FREQUENCIES)} Hz, 8 channels, {SFREQ:g} Hz, chunks "
        f"of {CHUNK} samples = {1e3 * CHUNK / SFREQ:.1f} ms) → LSL → FBCCA, for "
        f"{duration:g} s. LSL config: {os.environ.get('LSLAPICFG')}")
    sim = spawn(paradigm="ssvep", name=name, marker_name=marker_name, seed=seed,
                sfreq=SFREQ, chunk_size=CHUNK,
                frequencies=list(FREQUENCIES), trial_duration=STIM_S, iti=ITI_S,
                duration=duration + 30.0)
    try:
        def show(d):
            mark = "✓" if d.correct else "✗"
            p = max(d.output)
            say(f"trial {d.index + 1:3d}   true {d.true_label:>5}   decided {d.label:>5} "
                f"{mark}   p={p:.2f}   latency {1e3 * d.latency:6.1f} ms")

        result = run_live(demo_config(name, marker_name, duration), callbacks=[show])
    finally:
        stop_spawned(sim)
    acc = result.accuracy
    lat = result.latency.summary()["total"]
    summary = {
        "accuracy": acc,
        "itr_bits_per_min": None if acc is None else itr_bits_per_min(
            len(FREQUENCIES), acc, STIM_S + ITI_S),
        "n_decisions": result.n_decisions,
        "latency_ms": {"p50": lat.get("p50"), "p99": lat.get("p99")},
        "amplifier": {"sfreq": SFREQ, "chunk_size": CHUNK,
                      "chunk_ms": 1e3 * CHUNK / SFREQ},
        "itr_convention": f"Wolpaw; {STIM_S + ITI_S:g} s per selection "
                          f"({STIM_S:g} s stimulation + {ITI_S:g} s gaze shift)",
        "counts": result.counts,
    }
    if as_json:
        print(json.dumps(summary))
    else:
        if acc is None:
            say("no decisions were made")
        else:
            say(f"\n{summary['n_decisions']} decisions, accuracy {acc:.1%} (chance "
                f"{1 / len(FREQUENCIES):.0%}), ITR {summary['itr_bits_per_min']:.1f} bits/min "
                f"({summary['itr_convention']})")
            say(f"decision latency (emitted − last sample): p50 {lat['p50']:.1f} ms, "
                f"p99 {lat['p99']:.1f} ms (the amplifier sends a chunk every "
                f"{1e3 * CHUNK / SFREQ:.1f} ms; the epoch's last sample waits for its chunk)")
    return 0 if result.n_decisions else 1
