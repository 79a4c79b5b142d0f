"""Graz-style motor imagery: calibration → training (tangent space + logistic regression
by default, or CSP+LDA, FBCSP, MDM, EEGNet, RL-EEGNet) → online runs with continuous
feedback.

Each trial: ``"fixation"`` marker (cross) → class cue marker (``"left"``, ``"right"`` …;
imagery starts) → ``"end"`` marker after ``imagery`` seconds (rest, plus a random extra
of up to ``rest_jitter``). The decoder is trained on the calibration recording on epochs
``[tmin, tmax]`` after the cue. Online, the trained model decides once per trial on that
epoch (accuracy, recorded decisions that ``bci replay`` reproduces) and, during imagery,
gives continuous feedback from sliding windows of the same length every
``feedback_step`` seconds: ``p(second class) − p(first class)`` in [−1, 1] for two
classes (e.g. right − left), the top class's probability otherwise. RL-EEGNet keeps
adapting online from the cued epochs (``bci.decoders.adaptation.LiveAdaptation``): the
adapted model serves later trials and is saved as ``adapted.onnx``. Online, windows are
decoded on the loop's decode threads (:class:`bci.runner.Loop`), as in ``bci run``.
The covariance decoders (``ts-lr``, ``mdm`` …) are trained into ``model.npz`` and served
by their numpy forward pass; the others into ``model.onnx``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from bci.decoders.adaptation import LiveAdaptation
from bci.decoders.training import train
from bci.protocols import base

from bci import registry
from bci.datasets.synthetic import MI_CLASSES
from bci.pipeline import Pipeline
from bci.runner import Branch
from bci.session import SessionConfig, WindowConfig

log = logging.getLogger(__name__)

NAME = "mi-feedback"
FIXATION = "fixation"

DEFAULTS: dict[str, Any] = {
    "protocol": {"name": NAME, "stream": "bci-sim-eeg", "markers": "bci-protocol-cues",
                 "cue_lead": 0.1, "seed": 0},
    "trial": {"classes": ["left", "right"], "fixation": 2.0, "imagery": 4.0, "rest": 1.5,
              "rest_jitter": 1.0},
    "calibration": {"n_trials": 40},
    "online": {"n_runs": 1, "n_trials": 20, "feedback_step": 0.1},
    # The default follows benchmarks/recentering.py (benchmarks/README.md, "Re-centering
    # across sessions", EEGMMIDB S001, train one run, test another, 15 test trials):
    # ts-lr is the best served decoder on both splits, R04→R08 0.600 (CSP+LDA 0.467,
    # FBCSP 0.533, MDM 0.533, EEGNet 0.533, RL-EEGNet 0.333) and R06→R10 0.933 (tied with
    # CSP+LDA and RL-EEGNet), equal to pyRiemann's TS+LR on both. Online re-centering
    # leaves it at 0.600 / 0.933 (no gain), so it stays off: options = {recenter =
    # "online"} turns it on.
    "decoder": {"name": "ts-lr", "tmin": 0.5, "tmax": 2.5, "options": {},
                "swap_every": 5},
    "simulate": {
        "mode": "thread", "seed": 11, "n_channels": 8, "sfreq": 160.0, "chunk_size": 8,
        "erd_depth": 0.8, "noise_scale": 1.0,
        "trial": {"fixation": 0.25, "imagery": 1.5, "rest": 0.25, "rest_jitter": 0.1},
        "calibration": {"n_trials": 14},
        "online": {"n_trials": 8},
        "decoder": {"tmin": 0.5, "tmax": 1.5},
    },
}
#: The trainable MI decoders of the registry.
DECODERS = tuple(e.name for e in registry.decoders
                 if e.meta["trainable"] and "mi" in e.meta["paradigms"])


def load(path=None, *, simulate: bool = False) -> dict:
    c = base.load_config(path, DEFAULTS, simulate=simulate)
    where = c["_path"] or "defaults"
    tr, dec, cal, on = c["trial"], c["decoder"], c["calibration"], c["online"]
    bad = [x for x in tr["classes"] if x not in MI_CLASSES]
    base.require(len(tr["classes"]) >= 2 and not bad and len(set(tr["classes"])) ==
                 len(tr["classes"]), f"{where}: trial.classes: expected ≥ 2 distinct classes "
                                     f"among {list(MI_CLASSES)}, found {tr['classes']}")
    base.require(dec["name"] in DECODERS, f"{where}: decoder.name: expected one of "
                                          f"{list(DECODERS)}, found {dec['name']!r}")
    base.require(0 <= dec["tmin"] < dec["tmax"] <= tr["imagery"] + tr["rest"],
                 f"{where}: decoder.tmax: expected tmin < tmax ≤ trial.imagery + trial.rest, "
                 f"found tmin={dec['tmin']}, tmax={dec['tmax']}")
    for key in ("fixation", "imagery", "rest", "rest_jitter"):
        base.require(tr[key] >= 0, f"{where}: trial.{key}: expected seconds ≥ 0, found "
                                   f"{tr[key]}")
    n_cls = len(tr["classes"])
    base.require(cal["n_trials"] >= 2 * n_cls, f"{where}: calibration.n_trials: expected ≥ "
                                               f"{2 * n_cls}, found {cal['n_trials']}")
    base.require(on["n_trials"] >= 1 and on["n_runs"] >= 1,
                 f"{where}: online.n_trials / n_runs: expected ≥ 1, found "
                 f"{on['n_trials']} / {on['n_runs']}")
    base.require(on["feedback_step"] > 0, f"{where}: online.feedback_step: expected a "
                                          f"positive number, found {on['feedback_step']}")
    return c


def _balanced(classes: list[str], n: int, rng: np.random.Generator) -> list[str]:
    reps = -(-n // len(classes))
    seq = [c for _ in range(reps) for c in classes][:n]
    return [seq[i] for i in rng.permutation(len(seq))]


def feedback_value(probabilities: np.ndarray, classes: list[str],
                   order: list[str]) -> float:
    """``p(order[1]) − p(order[0])`` for two classes, else the top probability."""
    if len(order) == 2:
        return float(probabilities[classes.index(order[1])]
                     - probabilities[classes.index(order[0])])
    return float(np.max(probabilities))


class _Trials:
    """Sends one run of Graz trials and records what happened."""

    def __init__(self, c: dict, cues: base.CueOutlet, acq: base.Acquisition, hooks,
                 stop, rng) -> None:
        self.c, self.cues, self.acq, self.hooks, self.stop, self.rng = (
            c, cues, acq, hooks, stop, rng)
        self.current: tuple[float, float, str] | None = None  # imagery start, end, class

    def mark(self, value: str, t: float) -> None:
        self.cues.send(value, t)
        self.acq.marker(value, t)

    def run(self, sequence: list[str], t: float) -> float:
        tr, lead = self.c["trial"], self.c["protocol"]["cue_lead"]
        for label in sequence:
            base.wait_until(t - lead, self.stop)
            self.mark(FIXATION, t)
            base.wait_until(t, self.stop)
            base.call_hook(self.hooks, "on_cue", FIXATION)
            cue = t + tr["fixation"]
            end = cue + tr["imagery"]
            base.wait_until(cue - lead, self.stop)
            self.mark(label, cue)
            self.mark(base.END_MARKER, end)
            self.current = (cue, end, label)
            base.wait_until(cue, self.stop)
            base.call_hook(self.hooks, "on_cue", label)
            base.wait_until(end, self.stop)
            base.call_hook(self.hooks, "on_cue", "rest")
            self.acq.check()
            t = end + tr["rest"] + float(self.rng.uniform(0, tr["rest_jitter"]))
        return t


def run(config: dict, *, hooks: Any = None, simulate: bool = False,
        out_dir: str | Path | None = None, stop: threading.Event | None = None) -> dict:
    """Calibrate, train and run the feedback runs; return the summary."""
    t_start = time.monotonic()
    c = config
    out = base.output_dir(out_dir, NAME)
    proto, tr, cal, on, dec = (c["protocol"], c["trial"], c["calibration"], c["online"],
                               c["decoder"])
    classes = list(tr["classes"])
    rng = np.random.default_rng(proto["seed"])
    stream, markers = proto["stream"], proto["markers"]
    if simulate:
        suffix = f"{NAME}-{np.random.default_rng().integers(1 << 30):x}"
        stream, markers = f"{stream}-{suffix}", f"{markers}-{suffix}"
    cues = base.CueOutlet(markers)
    sim = acq = adaptation = None
    trials: list[dict] = []
    feedback: list[dict] = []
    online_counts: list[dict] = []
    online_events: list[dict] = []
    try:
        if simulate:
            s = c["simulate"]
            sim = base.Simulator(mode=s["mode"], follow=markers, name=stream, paradigm="mi",
                                 seed=s["seed"], n_channels=s["n_channels"], sfreq=s["sfreq"],
                                 chunk_size=s["chunk_size"], classes=classes,
                                 trial_duration=tr["imagery"], erd_depth=s["erd_depth"],
                                 noise_scale=s["noise_scale"])
            sim.wait_until_following(cues)
        acq = base.Acquisition(stream)

        # -- calibration ------------------------------------------------------------
        calib = out / "calibration.xdf"
        acq.start(calib)
        base.call_hook(hooks, "on_phase", "calibration")
        runner = _Trials(c, cues, acq, hooks, stop, rng)
        t = runner.run(_balanced(classes, cal["n_trials"], rng), base.clock() + 0.5)
        acq.wait_for(t)
        acq.stop()

        # -- training ---------------------------------------------------------------
        file_runtime = registry.decoders.get(dec["name"]).meta.get("file_runtime")
        model = out / ("model.npz" if file_runtime else "model.onnx")
        tables = base.session_tables(name=NAME, stream=stream, markers=markers,
                                     tmin=dec["tmin"], tmax=dec["tmax"], classes=classes,
                                     model=model.name, paradigm="mi")
        tables["training"] = {"paradigm": "mi", "seed": proto["seed"],
                              "decoders": {dec["name"]: dict(dec["options"])}}
        session = out / "session.toml"
        session.write_text(base.dumps_toml(tables), encoding="utf-8")
        cfg = SessionConfig.load(session)
        base.call_hook(hooks, "on_phase", "training")
        t_train = time.monotonic()
        fitted = train(cfg, dec["name"], [calib], output=model)
        train_seconds = time.monotonic() - t_train

        # -- online runs ----------------------------------------------------------------
        served = cfg.with_model(model)
        epochs = Pipeline(served, acq.info, clock=acq.source.clock)
        length = round(dec["tmax"] - dec["tmin"], 6)
        sliding_cfg = replace(served, window=WindowConfig(
            mode="sliding", length=length, step=on["feedback_step"]))
        # an adapting decoder is shared, so that feedback follows the adapted model;
        # otherwise the feedback windows get their own copy, so that they never advance
        # the epochs' online re-centering reference (and vice versa)
        sliding = Pipeline(sliding_cfg, acq.info, clock=acq.source.clock,
                           decoder=epochs.decoder if fitted.get("state") else None)
        spec_classes = list(epochs.decoder.spec.classes)
        if fitted.get("state"):
            adaptation = LiveAdaptation(epochs, state=fitted["state"],
                                        save=out / "adapted.onnx",
                                        swap_every=dec["swap_every"])
        lock = threading.Lock()
        run_index = 0

        # both run on the decode threads, never on the acquisition thread
        def on_epoch(d) -> None:
            row = {"run": run_index, **d.to_dict(timing=False),
                   "latency_ms": None if d.latency is None else 1e3 * d.latency,
                   "feedback": feedback_value(d.output, spec_classes, classes)}
            with lock:
                trials.append(row)
            base.call_hook(hooks, "on_decision", d)

        def follow(window, d) -> None:
            sliding.decoder = epochs.decoder  # feedback follows the adapted model

        def in_imagery(window) -> bool:
            current = runner.current
            return current is not None and (
                current[0] + dec["tmin"] <= window.last_timestamp <= current[1])

        def on_feedback(d) -> None:
            current = runner.current
            if current is None:
                return
            value = feedback_value(d.output, spec_classes, classes)
            with lock:
                feedback.append({"run": run_index, "time": d.last_sample_time,
                                 "true_label": current[2], "value": value})
            base.call_hook(hooks, "on_feedback", value)

        recordings = []
        base.call_hook(hooks, "on_phase", "online")
        for run_index in range(on["n_runs"]):
            path = out / (f"online-run{run_index + 1}.xdf" if on["n_runs"] > 1
                          else "online.xdf")
            epochs.reset()
            sliding.reset()
            runner.current = None
            decided = Branch(epochs, [acq.decision, on_epoch], window_sinks=(
                [adaptation, follow] if adaptation is not None else []))
            acq.start(path, classes=spec_classes, branches=[
                decided, Branch(sliding, [on_feedback], decode=in_imagery)])
            t = runner.run(_balanced(classes, on["n_trials"], rng), base.clock() + 0.5)
            # the last epoch closes at tmax after its cue
            acq.wait_for(max(t, runner.current[0] + dec["tmax"]) + 0.1)
            result = acq.stop()[0]
            online_counts.append(result.counts)
            online_events.extend(result.events)
            recordings.append(str(path))
    finally:
        if acq is not None:
            acq.close()
        if sim is not None:
            sim.close()
        cues.close()
        adapted = adaptation.close() if adaptation is not None else {}

    base.write_jsonl(out / "online-decisions.jsonl", trials)
    base.write_jsonl(out / "online-feedback.jsonl", feedback)
    signed = [f["value"] * (1 if f["true_label"] == classes[-1] else -1) for f in feedback]
    return {
        "protocol": NAME, "decoder": dec["name"], "simulated": simulate,
        "classes": classes, "n_trials": len(trials), "accuracy": base.accuracy_of(trials),
        "train_accuracy": fitted["train_accuracy"],
        "n_feedback": len(feedback),
        "mean_feedback_toward_cue": (float(np.mean(signed)) if signed and len(classes) == 2
                                     else None),
        "recording": recordings[0], "recordings": recordings,
        "calibration_recording": str(calib), "session": str(session), "model": str(model),
        "adapted_model": str(out / "adapted.onnx") if adaptation is not None else None,
        "adaptation": adapted,
        "online_counts": online_counts, "online_events": online_events,
        "decisions_file": str(out / "online-decisions.jsonl"),
        "feedback_file": str(out / "online-feedback.jsonl"),
        "train_seconds": train_seconds, "duration_s": time.monotonic() - t_start,
        "simulator_late_cues": sim.late_cues if sim is not None else None,
        "output_dir": str(out),
    }
