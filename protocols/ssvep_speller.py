"""SSVEP speller: calibration → training (TRCA by default) → online spelling with
dynamic stopping.

Calibration cues every target in turn (shuffled within each block) for ``n_blocks``
blocks; the cue marker is the target's class label (``"8Hz"``), stimulation ends at an
``"end"`` marker. The decoder is trained on that recording once per window length
``min_window, min_window + step, … max_window`` (each an ONNX model, epochs from
``latency`` after the cue). Online, each trial cues a target; the models decide in turn
as their windows fill, and the first whose top probability reaches ``threshold`` selects
(the longest always does): easy trials end early. Stimulation stops at the selection.

Figures: accuracy over online trials; selection time = the cue-to-last-sample time of the
deciding window (``latency + window``); ITR = Wolpaw's bits per selection × 60 / (mean
selection time + ``iti``), i.e. the inter-trial gaze shift is counted.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from bci.decoders.training import train
from bci.protocols import base

from bci import registry
from bci.datasets.synthetic import ssvep_label
from bci.errors import DeviceError
from bci.metrics import itr_bits_per_min
from bci.pipeline import Pipeline
from bci.runner import Branch
from bci.session import SessionConfig

log = logging.getLogger(__name__)

NAME = "ssvep-speller"

DEFAULTS: dict[str, Any] = {
    "protocol": {"name": NAME, "stream": "bci-sim-eeg", "markers": "bci-protocol-cues",
                 "cue_lead": 0.1, "seed": 0},
    # phases (rad) default to JFPM's 0.35π steps; refresh 0 = the screen's own rate
    "speller": {"targets": ["A", "B", "C", "D"], "frequencies": [8.0, 10.0, 12.0, 15.0],
                "phases": [], "refresh": 0.0},
    "calibration": {"n_blocks": 5, "duration": 3.0, "iti": 1.0},
    "online": {"n_trials": 20, "text": "", "min_window": 0.5, "max_window": 2.0,
               "step": 0.25, "threshold": 0.9, "iti": 1.0},
    "decoder": {"name": "trca", "latency": 0.14, "options": {}},
    "simulate": {
        "mode": "thread", "seed": 7, "n_channels": 8, "sfreq": 256.0, "chunk_size": 8,
        "noise_scale": 0.5,
        "calibration": {"n_blocks": 4, "duration": 1.2, "iti": 0.4},
        "online": {"n_trials": 12, "min_window": 0.5, "max_window": 1.0, "step": 0.25,
                   "iti": 0.4},
    },
}
#: The trainable SSVEP decoders of the registry.
DECODERS = tuple(e.name for e in registry.decoders
                 if e.meta["trainable"] and "ssvep" in e.meta["paradigms"])
#: Seconds before a frame-locked stimulation is due that the presenter is asked for it.
GUI_LEAD = 0.05


def load(path=None, *, simulate: bool = False) -> dict:
    """The validated settings of a speller file (or the defaults)."""
    c = base.load_config(path, DEFAULTS, simulate=simulate)
    sp, on, cal = c["speller"], c["online"], c["calibration"]
    where = c["_path"] or "defaults"
    base.require(len(sp["targets"]) == len(sp["frequencies"]) >= 2,
                 f"{where}: speller.targets: expected one target per frequency (≥ 2), found "
                 f"{len(sp['targets'])} targets and {len(sp['frequencies'])} frequencies")
    base.require(not sp["phases"] or (
        len(sp["phases"]) == len(sp["targets"])
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in sp["phases"])),
        f"{where}: speller.phases: expected one phase in radians per target "
        f"({len(sp['targets'])}), found {sp['phases']!r}")
    base.require(sp["refresh"] >= 0, f"{where}: speller.refresh: expected a refresh rate in "
                                      f"Hz (0 = the screen's), found {sp['refresh']}")
    base.require(len(set(sp["targets"])) == len(sp["targets"]),
                 f"{where}: speller.targets: expected distinct targets, found {sp['targets']}")
    base.require(c["decoder"]["name"] in DECODERS,
                 f"{where}: decoder.name: expected one of {list(DECODERS)}, found "
                 f"{c['decoder']['name']!r}")
    for key in ("min_window", "max_window", "step", "iti"):
        base.require(on[key] > 0 or (key == "iti" and on[key] == 0),
                     f"{where}: online.{key}: expected a positive number, found {on[key]}")
    base.require(on["max_window"] >= on["min_window"],
                 f"{where}: online.max_window: expected ≥ min_window ({on['min_window']}), "
                 f"found {on['max_window']}")
    base.require(0 < on["threshold"] <= 1,
                 f"{where}: online.threshold: expected a probability in (0, 1], found "
                 f"{on['threshold']}")
    base.require(on["n_trials"] >= 1 or on["text"],
                 f"{where}: online.n_trials: expected ≥ 1, found {on['n_trials']}")
    bad = sorted(set(on["text"]) - set(sp["targets"]))
    base.require(not bad, f"{where}: online.text: letters {bad} are not targets "
                          f"{sp['targets']}")
    base.require(cal["n_blocks"] >= 2, f"{where}: calibration.n_blocks: expected ≥ 2 (the "
                                       f"decoder needs repeated trials), found {cal['n_blocks']}")
    base.require(cal["duration"] >= c["decoder"]["latency"] + on["max_window"],
                 f"{where}: calibration.duration: expected ≥ decoder.latency + "
                 f"online.max_window ({c['decoder']['latency'] + on['max_window']:g} s), found "
                 f"{cal['duration']}")
    c["labels"] = [ssvep_label(f) for f in sp["frequencies"]]
    return c


def windows_of(online: dict) -> list[float]:
    n = int(np.floor((online["max_window"] - online["min_window"]) / online["step"] + 1e-9))
    out = [round(online["min_window"] + k * online["step"], 6) for k in range(n + 1)]
    if out[-1] < online["max_window"] - 1e-9:
        out.append(online["max_window"])
    return out


def run(config: dict, *, hooks: Any = None, simulate: bool = False,
        out_dir: str | Path | None = None, stop: threading.Event | None = None) -> dict:
    """Calibrate, train and spell; return the summary (see the module's docstring)."""
    t_start = time.monotonic()
    c = config
    out = base.output_dir(out_dir, NAME)
    proto, sp, cal, on, dec = (c["protocol"], c["speller"], c["calibration"], c["online"],
                               c["decoder"])
    labels = c["labels"]
    target_of = dict(zip(labels, sp["targets"], strict=True))
    label_of = {v: k for k, v in target_of.items()}
    rng = np.random.default_rng(proto["seed"])
    stream, markers = proto["stream"], proto["markers"]
    if simulate:  # names of our own, so that runs side by side never cross
        suffix = f"{NAME}-{np.random.default_rng().integers(1 << 30):x}"
        stream, markers = f"{stream}-{suffix}", f"{markers}-{suffix}"
    cues = base.CueOutlet(markers)
    sim = None
    acq = None
    stage_results = []
    try:
        if simulate:
            s = c["simulate"]
            longest = max(cal["duration"], dec["latency"] + on["max_window"] + 1.0)
            sim = base.Simulator(mode=s["mode"], follow=markers, name=stream,
                                 paradigm="ssvep", seed=s["seed"], n_channels=s["n_channels"],
                                 sfreq=s["sfreq"], chunk_size=s["chunk_size"],
                                 frequencies=sp["frequencies"], trial_duration=longest,
                                 noise_scale=s["noise_scale"])
            sim.wait_until_following(cues)
        acq = base.Acquisition(stream)
        lead = proto["cue_lead"]

        def start(label: str, t: float, duration: float) -> float:
            """Cue a stimulation due at ``t``; return its marker time (first frame)."""
            def send(value: str, timestamp: float) -> None:
                cues.send(value, timestamp)
                acq.marker(value, timestamp)

            # headless, a simulator needs the cue ahead of time (lead)
            base.wait_until(t - max(lead, GUI_LEAD), stop)
            onset = base.call_hook(hooks, "stimulate", label, t, duration, send)
            if onset is not None:  # frame-locked: the presenter sent the marker
                return float(onset)
            send(label, t)
            return t

        # -- calibration ------------------------------------------------------------
        calib = out / "calibration.xdf"
        acq.start(calib)
        t = base.clock() + 0.5
        base.call_hook(hooks, "on_phase", "calibration")
        for block in range(cal["n_blocks"]):
            for k in rng.permutation(len(labels)):
                label = labels[k]
                base.call_hook(hooks, "on_cue", label)  # the gaze shift is the ITI
                t = start(label, t, cal["duration"])
                cues.send(base.END_MARKER, t + cal["duration"])
                acq.marker(base.END_MARKER, t + cal["duration"])
                base.wait_until(t, stop)
                acq.check()
                t += cal["duration"] + cal["iti"]
            log.info("calibration block %d/%d done", block + 1, cal["n_blocks"])
        acq.wait_for(t)
        acq.stop()

        # -- training: one model per window length -----------------------------------
        base.call_hook(hooks, "on_phase", "training")
        stages = []
        t_train = time.monotonic()
        for length in windows_of(on):
            tag = f"w{length:.2f}"
            model = out / f"model-{tag}.onnx"
            tables = base.session_tables(
                name=f"{NAME}-{tag}", stream=stream, markers=markers,
                tmin=dec["latency"], tmax=round(dec["latency"] + length, 6), classes=labels,
                model=model.name, paradigm="ssvep")
            tables["training"] = {
                "paradigm": "ssvep", "seed": proto["seed"],
                "frequencies": dict(zip(labels, sp["frequencies"], strict=True)),
                "decoders": {dec["name"]: dict(dec["options"])}}
            session = out / f"session-{tag}.toml"
            session.write_text(base.dumps_toml(tables), encoding="utf-8")
            cfg = SessionConfig.load(session)
            fitted = train(cfg, dec["name"], [calib], output=model)
            stages.append({"window": length, "session": str(session), "model": str(model),
                           "train_accuracy": fitted["train_accuracy"], "config": cfg})
        train_seconds = time.monotonic() - t_train

        # -- online -------------------------------------------------------------------
        results: dict[tuple[float, int], Any] = {}
        cond = threading.Condition()
        stage_rows: list[dict] = []

        def taker(k: int):
            def take(d) -> None:  # on stage k's decode thread
                row = {"stage": k, "window": stages[k]["window"], **d.to_dict(timing=False)}
                with cond:
                    stage_rows.append(row)
                    if d.marker is not None:
                        results[(round(d.marker[0], 6), k)] = d
                    cond.notify_all()
            return take

        branches = [
            Branch(Pipeline(st["config"].with_model(st["model"]), acq.info,
                            clock=acq.source.clock), [taker(k)])
            for k, st in enumerate(stages)]
        online = out / "online.xdf"
        acq.start(online, classes=branches[0].pipeline.decoder.spec.classes, branches=branches)
        if on["text"]:
            sequence = [label_of[ch] for ch in on["text"]]
        else:
            reps = -(-on["n_trials"] // len(labels))
            sequence = [labels[i] for _ in range(reps) for i in rng.permutation(len(labels))]
            sequence = sequence[: on["n_trials"]]
        trials = []
        text = ""
        t = base.clock() + 0.5
        base.call_hook(hooks, "on_phase", "online")
        for i, label in enumerate(sequence):
            base.call_hook(hooks, "on_cue", label)
            t = start(label, t, dec["latency"] + on["max_window"] + 5.0)
            base.wait_until(t, stop)
            chosen = None
            for k, st in enumerate(stages):
                key = (round(t, 6), k)
                limit = time.monotonic() + dec["latency"] + st["window"] + 5.0
                with cond:
                    while key not in results:
                        acq.check()
                        if time.monotonic() > limit:
                            raise DeviceError(f"no decision of the {st['window']:g} s window "
                                              f"for trial {i} (is the EEG stream flowing?)")
                        cond.wait(0.05)
                    d = results[key]
                if float(np.max(d.output)) >= on["threshold"] or k == len(stages) - 1:
                    chosen = (k, d)
                    break
            k, d = chosen
            base.call_hook(hooks, "end_stimulation")
            end = base.clock()
            cues.send(base.END_MARKER, end)
            acq.marker(base.END_MARKER, end)
            acq.decision(d)
            text += target_of[d.label]
            trial = {"trial": i, "true_label": label, "label": d.label,
                     "target": target_of[d.label], "true_target": target_of[label],
                     "window": stages[k]["window"],
                     "selection_s": dec["latency"] + stages[k]["window"],
                     "probability": float(np.max(d.output)), "stop": d.stop,
                     "latency_ms": None if d.latency is None else 1e3 * d.latency}
            trials.append(trial)
            d.true_label = label
            base.call_hook(hooks, "on_decision", d)
            base.call_hook(hooks, "on_text", text)
            t = end + on["iti"] + lead
        # let the longest window of the last trial close so every stage is recorded
        acq.wait_for(t + dec["latency"] + on["max_window"] - lead + 0.1)
        stage_results = acq.stop()
    finally:
        if acq is not None:
            acq.close()
        if sim is not None:
            sim.close()
        cues.close()

    base.write_jsonl(out / "online-trials.jsonl", trials)
    stage_rows.sort(key=lambda r: (r["stage"], r["stop"]))
    base.write_jsonl(out / "online-stages.jsonl", stage_rows)
    acc = base.accuracy_of(trials)
    sel = float(np.mean([tr["selection_s"] for tr in trials]))
    longest = stages[-1]
    return {
        "protocol": NAME, "decoder": dec["name"], "simulated": simulate,
        "n_targets": len(labels), "n_trials": len(trials), "accuracy": acc,
        "text": text, "target_text": "".join(target_of[lab] for lab in sequence),
        "mean_selection_s": sel, "mean_window_s": sel - dec["latency"],
        "itr_bits_per_min": itr_bits_per_min(len(labels), acc, sel + on["iti"]),
        "itr_convention": ("Wolpaw; selection time = cue to last sample of the deciding "
                           "window (latency + window) plus the inter-trial gaze shift "
                           f"online.iti = {on['iti']:g} s"),
        "early_stops": sum(tr["window"] < longest["window"] for tr in trials),
        "recording": str(online), "calibration_recording": str(calib),
        "session": longest["session"], "model": longest["model"],
        "stages": [{k: v for k, v in st.items() if k != "config"} for st in stages],
        "stage_counts": [r.counts for r in stage_results],
        "online_events": stage_results[0].events if stage_results else [],
        "trials_file": str(out / "online-trials.jsonl"),
        "stages_file": str(out / "online-stages.jsonl"),
        "train_seconds": train_seconds, "duration_s": time.monotonic() - t_start,
        "simulator_late_cues": sim.late_cues if sim is not None else None,
        "output_dir": str(out),
    }
