"""Trainable decoders on the real recordings, evaluated across sessions/runs, no leakage.

SSVEP (``$BCI_DATA/ssvep-exo``, 4 subjects × 2 sessions, 13/17/21 Hz): train on one
session, test on the other, both directions, windows of 1 s and 2 s from 2 s after each
event. FBCCA (training-free), TRCA, ensemble TRCA and pyriemann MDM (the SSVEP DNN, with
its global stage on the other subjects, is in ``ssvep_dnn_cross_session.py``).

Motor imagery (``$BCI_DATA/MNE-eegbci-data``, PhysioNet EEGMMIDB S001): train on run 4,
test on run 8 (left vs right fist); train on run 6, test on run 10 (fists vs feet).
CSP+LDA, FBCSP, EEGNet, RL-EEGNet frozen, RL-EEGNet adapting (each test trial is
predicted first, then learned from with its true cue, as in the online phase), and
pyriemann tangent space + logistic regression.

    python benchmarks/decoders_real_data.py [--only ssvep|mi] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from bci.decoders.training import evaluate, load_windows, make_decoder

from bci.session import SessionConfig

REPO = Path(__file__).resolve().parents[1]
# the SSVEP DNN's published schedule needs a GPU: benchmarks/ssvep_dnn_cross_session.py
SSVEP_DECODERS = ("fbcca", "trca", "etrca", "mdm")
MI_DECODERS = ("csp-lda", "fbcsp", "eegnet", "rl-eegnet", "ts-lr")


def ssvep(data: Path) -> list[dict]:
    config = SessionConfig.load(REPO / "examples" / "ssvep-exo.toml")
    subjects = sorted(p.name for p in (data / "ssvep-exo").iterdir() if p.is_dir())
    rows = []
    for subject in subjects:
        files = [data / "ssvep-exo" / subject / f"session{k}_raw.fif" for k in (1, 2)]
        for direction, (train, test) in (("1→2", files), ("2→1", files[::-1])):
            for window in (1.0, 2.0):
                for name in SSVEP_DECODERS:
                    result = evaluate(config, name, train=[train], test=[test],
                                      window=window)
                    s = result.summary()
                    rows.append({"subject": subject, "direction": direction,
                                 "window_s": window, "decoder": name,
                                 "accuracy": s["accuracy"], "kappa": s["kappa"],
                                 "itr_bits_per_min": s["itr_bits_per_min"],
                                 "train_seconds": s["train_seconds"],
                                 "n_test": s["n_windows"]})
                    print(f"ssvep {subject} {direction} {window:g}s {name:10} "
                          f"acc {s['accuracy']:.3f}", flush=True)
    return rows


def _rl_adapting(config: SessionConfig, train: Path, test: Path) -> dict:
    """RL-EEGNet trained on ``train``, then adapting online over ``test`` in time order."""
    from bci.devices.files import read_recording

    rec = read_recording(train)
    model = make_decoder("rl-eegnet", config, float(rec.info["sfreq"]))
    from bci.decoders.training import classes_of, decoder_spec

    spec = decoder_spec("rl-eegnet", model, config, rec.info, classes_of(config))
    tr, te = load_windows(config, spec, [train]), load_windows(config, spec, [test])
    t0 = time.perf_counter()
    model.fit(tr.X, tr.y)
    seconds = time.perf_counter() - t0
    order = np.argsort(te.stops)
    correct = []
    for i in order:  # predict first, then learn from the known cue
        correct.append(model.predict(te.X[i:i + 1])[0] == te.y[i])
        model.adapt(te.X[i:i + 1], te.y[i:i + 1])
    acc = float(np.mean(correct))
    return {"accuracy": acc, "train_seconds": seconds, "n_test": len(te)}


def mi(data: Path) -> list[dict]:
    import mne

    rows = []
    for toml, (run_train, run_test) in (("eegmmidb-mi.toml", (4, 8)),
                                        ("eegmmidb-mi-feet.toml", (6, 10))):
        config = SessionConfig.load(REPO / "examples" / toml)
        train, test = (Path(p) for p in mne.datasets.eegbci.load_data(
            1, [run_train, run_test], path=str(data), update_path=False))
        task = "left/right" if run_train == 4 else "fists/feet"
        for name in (*MI_DECODERS, "rl-eegnet-adapting"):
            if name == "rl-eegnet-adapting":
                s = _rl_adapting(config, train, test)
                s["kappa"] = None
            else:
                s = evaluate(config, name, train=[train], test=[test]).summary()
                s["n_test"] = s["n_windows"]
            rows.append({"task": task, "train_run": run_train, "test_run": run_test,
                         "decoder": name, "accuracy": s["accuracy"], "kappa": s["kappa"],
                         "train_seconds": s["train_seconds"], "n_test": s["n_test"]})
            print(f"mi {task} R{run_train:02d}→R{run_test:02d} {name:18} "
                  f"acc {s['accuracy']:.3f}", flush=True)
    return rows


def _ssvep_table(rows: list[dict]) -> None:
    print("\nSSVEP-exo, cross-session accuracy (mean over 4 subjects × 2 directions)")
    print(f"{'decoder':12}{'1 s':>8}{'2 s':>8}{'ITR 1 s':>10}{'ITR 2 s':>10}{'train s':>9}")
    for name in SSVEP_DECODERS:
        acc = {w: np.mean([r["accuracy"] for r in rows
                           if r["decoder"] == name and r["window_s"] == w]) for w in (1, 2)}
        itr = {w: np.mean([r["itr_bits_per_min"] for r in rows
                           if r["decoder"] == name and r["window_s"] == w]) for w in (1, 2)}
        t = np.mean([r["train_seconds"] for r in rows if r["decoder"] == name])
        print(f"{name:12}{acc[1]:8.3f}{acc[2]:8.3f}{itr[1]:10.1f}{itr[2]:10.1f}{t:9.2f}")
    print("\nper subject, 2 s windows (1→2 / 2→1):")
    subjects = sorted({r["subject"] for r in rows})
    print(f"{'decoder':12}" + "".join(f"{s:>16}" for s in subjects))
    for name in SSVEP_DECODERS:
        cells = []
        for s in subjects:
            a = [r["accuracy"] for r in rows if r["decoder"] == name and r["subject"] == s
                 and r["window_s"] == 2.0]
            cells.append(f"{a[0]:.3f}/{a[1]:.3f}")
        print(f"{name:12}" + "".join(f"{c:>16}" for c in cells))


def _mi_table(rows: list[dict]) -> None:
    print("\nEEGMMIDB S001, train on one run, test on another")
    print(f"{'decoder':20}{'R04→R08 L/R':>14}{'R06→R10 fists/feet':>20}{'train s':>9}")
    for name in (*MI_DECODERS, "rl-eegnet-adapting"):
        a = [r for r in rows if r["decoder"] == name]
        print(f"{name:20}{a[0]['accuracy']:14.3f}{a[1]['accuracy']:20.3f}"
              f"{np.mean([r['train_seconds'] for r in a]):9.2f}")
    print("(15 test trials per run: chance 0.5; one trial is 0.067)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("BCI_DATA", REPO.parent / "shared/data"))
    parser.add_argument("--only", choices=("ssvep", "mi"), default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # figures comparable across machines with more cores
    data = Path(args.data)
    out: dict = {}
    if args.only in (None, "ssvep"):
        out["ssvep"] = ssvep(data)
    if args.only in (None, "mi"):
        out["mi"] = mi(data)
    if args.json:
        print(json.dumps(out))
        return
    if "ssvep" in out:
        _ssvep_table(out["ssvep"])
    if "mi" in out:
        _mi_table(out["mi"])


if __name__ == "__main__":
    main()
