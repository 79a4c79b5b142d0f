"""Re-centering across sessions: every decoder with recenter none / session / online.

Each figure is ``bci evaluate``'s own code (:func:`bci.decoders.training.evaluate` with
``recenter=…``): the covariance decoders (MDM, TS+LR) re-centre covariances at a
Riemannian mean (Zanini et al. 2018), the signal decoders (CSP+LDA, FBCSP, EEGNet,
RL-EEGNet) are behind Euclidean alignment (He & Wu 2019, :mod:`bci.decoders.alignment`).
Training aligns each training file at its own mean; ``session`` aligns the test file at
the mean of all its windows (an offline upper bound), ``online`` at the running mean of
the windows seen so far (after ``--warmup`` windows at the training mean; forgetting
factor ``--forget``), as a live session would.

The baseline column is pyRiemann's own pipeline (``Covariances("lwf") → TangentSpace →
LogisticRegression``) fitted on the same windows as the served TS+LR, without
re-centering.

SSVEP (``$BCI_DATA/ssvep-exo``): each subject, session 1 → 2 and 2 → 1, windows of 1 s
and 2 s; MDM and TS+LR on MOABB's stacked narrow bands, FBCCA (training-free, no
re-centering) for reference. Motor imagery (``$BCI_DATA/MNE-eegbci-data``, S001): R04 →
R08 (left/right fist), R06 → R10 (fists/feet), and leave-one-block-out (5 blocks of
consecutive trials) within each of those four runs. The deep decoders train with short
schedules (EEGNet 60 epochs, RL-EEGNet 20) so that the whole run fits in about 15
minutes on 2 CPU cores; their figures are those of these schedules.

    python benchmarks/recentering.py [--only ssvep|mi] [--warmup 3] [--forget 0.05]

Prints tables, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
from bci.decoders.training import classes_of, decoder_spec, evaluate, load_windows, make_decoder

from bci.session import SessionConfig

REPO = Path(__file__).resolve().parents[1]
MODES = ("none", "session", "online")
MI_DECODERS = ("csp-lda", "fbcsp", "mdm", "ts-lr", "eegnet", "rl-eegnet")
SSVEP_DECODERS = ("mdm", "ts-lr")
SHORT = {"eegnet": {"epochs": 60, "patience": 20}, "rl-eegnet": {"n_epochs": 20}}


def _short(config: SessionConfig) -> SessionConfig:
    """The session with the deep decoders' short schedules."""
    t = config.training
    decoders = {k: dict(v) for k, v in t.decoders.items()}
    for name, opts in SHORT.items():
        decoders[name] = {**decoders.get(name, {}), **opts}
    return dataclasses.replace(config, training=dataclasses.replace(t, decoders=decoders))


def _window(config: SessionConfig, window: float | None) -> SessionConfig:
    if window is None:
        return config
    w = config.window
    return dataclasses.replace(config, window=dataclasses.replace(w, tmax=w.tmin + window))


def pyriemann_baseline(config: SessionConfig, train: list[Path], test: list[Path] | None,
                       *, n_blocks: int = 5) -> float:
    """pyRiemann's TS+LR, no re-centering, on the windows the served ``ts-lr`` gets."""
    from bci.devices.files import read_recording
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    info = read_recording(train[0]).info
    est = make_decoder("ts-lr", config, float(info["sfreq"]))
    spec = decoder_spec("ts-lr", est, config, info, classes_of(config))

    def stacked(X: np.ndarray) -> np.ndarray:
        return X.reshape(X.shape[0], -1, X.shape[-1]).astype(np.float64)

    def pipe():
        return make_pipeline(Covariances("lwf"), TangentSpace(metric="riemann"),
                             LogisticRegression(C=1.0, max_iter=1000))

    tr = load_windows(config, spec, train)
    if test is not None:
        te = load_windows(config, spec, test)
        model = pipe().fit(stacked(tr.X), tr.y)
        return float(np.mean(model.predict(stacked(te.X)) == te.y))
    order = np.argsort(tr.stops, kind="stable")  # the blocks bci evaluate holds out
    blocks = np.empty(len(tr), np.int64)
    blocks[order] = np.arange(len(tr)) * n_blocks // len(tr)
    correct = 0
    for b in np.unique(blocks):
        model = pipe().fit(stacked(tr.X[blocks != b]), tr.y[blocks != b])
        correct += int(np.sum(model.predict(stacked(tr.X[blocks == b])) == tr.y[blocks == b]))
    return correct / len(tr)


def _row(config, name, mode, train, test, args, **where) -> dict:
    t0 = time.perf_counter()
    kw = {} if mode is None else {"recenter": mode}
    if mode == "online":
        kw.update(recenter_warmup=args.warmup, recenter_forget=args.forget)
    if test is None:
        result = evaluate(config, name, train=train, split="leave-one-block-out",
                          n_splits=5, **kw)
    else:
        result = evaluate(config, name, train=train, test=test, **kw)
    s = result.summary()
    row = {**where, "decoder": name, "recenter": mode or "—", "accuracy": s["accuracy"],
           "n_test": s["n_windows"], "seconds": round(time.perf_counter() - t0, 2)}
    print(" ".join(f"{v}" for v in where.values()), f"{name:10} {row['recenter']:8}"
          f"acc {s['accuracy']:.3f}", flush=True)
    return row


def ssvep(data: Path, args: argparse.Namespace) -> list[dict]:
    base = SessionConfig.load(REPO / "examples" / "ssvep-exo.toml")
    subjects = sorted(p.name for p in (data / "ssvep-exo").iterdir() if p.is_dir())
    rows = []
    for subject in subjects:
        files = [data / "ssvep-exo" / subject / f"session{k}_raw.fif" for k in (1, 2)]
        for direction, (train, test) in (("1→2", files), ("2→1", files[::-1])):
            for window in (1.0, 2.0):
                config = _window(base, window)
                where = {"subject": subject, "split": direction, "window_s": window}
                rows.append(_row(config, "fbcca", None, [train], [test], args, **where))
                for name in SSVEP_DECODERS:
                    for mode in MODES:
                        rows.append(_row(config, name, mode, [train], [test], args, **where))
                acc = pyriemann_baseline(config, [train], [test])
                rows.append({**where, "decoder": "pyriemann-ts-lr", "recenter": "none",
                             "accuracy": acc})
    return rows


def mi(data: Path, args: argparse.Namespace) -> list[dict]:
    import mne

    rows = []
    for toml, runs in (("eegmmidb-mi.toml", (4, 8)), ("eegmmidb-mi-feet.toml", (6, 10))):
        config = _short(SessionConfig.load(REPO / "examples" / toml))
        paths = [Path(p) for p in mne.datasets.eegbci.load_data(
            1, list(runs), path=str(data), update_path=False)]
        splits = [(f"R{runs[0]:02d}→R{runs[1]:02d}", [paths[0]], [paths[1]])]
        splits += [(f"R{r:02d} LOBO", [p], None) for r, p in zip(runs, paths, strict=True)]
        for split, train, test in splits:
            for name in MI_DECODERS:
                for mode in MODES:
                    rows.append(_row(config, name, mode, train, test, args, split=split))
            rows.append({"split": split, "decoder": "pyriemann-ts-lr", "recenter": "none",
                         "accuracy": pyriemann_baseline(config, train, test)})
    return rows


def _cell(rows: list[dict], **key) -> float:
    a = [r["accuracy"] for r in rows if all(r.get(k) == v for k, v in key.items())]
    return float(np.mean(a)) if a else float("nan")


def _tables(out: dict) -> None:
    head = f"{'decoder':11}{'none':>7}{'session':>9}{'online':>8}{'Δsess':>7}{'Δonl':>7}"
    if "ssvep" in out:
        rows = out["ssvep"]
        for w in (1.0, 2.0):
            print(f"\nSSVEP-exo cross-session, {w:g} s windows, mean of 4 subjects × 2 "
                  f"directions")
            print(head)
            print(f"{'fbcca':11}{_cell(rows, decoder='fbcca', window_s=w):7.3f}")
            for name in SSVEP_DECODERS:
                a = [_cell(rows, decoder=name, recenter=m, window_s=w) for m in MODES]
                print(f"{name:11}{a[0]:7.3f}{a[1]:9.3f}{a[2]:8.3f}{a[1] - a[0]:+7.3f}"
                      f"{a[2] - a[0]:+7.3f}")
            print(f"{'pyRiemann TS+LR':16}"
                  f"{_cell(rows, decoder='pyriemann-ts-lr', window_s=w):7.3f}")
    if "mi" in out:
        rows = out["mi"]
        for split in dict.fromkeys(r["split"] for r in rows):
            print(f"\nEEGMMIDB S001 {split}")
            print(head)
            for name in MI_DECODERS:
                a = [_cell(rows, decoder=name, recenter=m, split=split) for m in MODES]
                print(f"{name:11}{a[0]:7.3f}{a[1]:9.3f}{a[2]:8.3f}{a[1] - a[0]:+7.3f}"
                      f"{a[2] - a[0]:+7.3f}")
            base = _cell(rows, decoder="pyriemann-ts-lr", split=split)
            print(f"{'pyRiemann TS+LR':16}{base:7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("BCI_DATA", REPO.parent / "shared/data"))
    parser.add_argument("--only", choices=("ssvep", "mi"), default=None)
    parser.add_argument("--warmup", type=int, default=3,
                        help="online: windows at the training mean first (default 3)")
    parser.add_argument("--forget", type=float, default=0.05,
                        help="online: smallest weight of a new window (default 0.05)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    data = Path(args.data)
    t0 = time.perf_counter()
    out: dict = {"warmup": args.warmup, "forget": args.forget}
    if args.only in (None, "mi"):
        out["mi"] = mi(data, args)
    if args.only in (None, "ssvep"):
        out["ssvep"] = ssvep(data, args)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    _tables(out)
    print(f"\nwhole run {out['seconds']:.0f} s")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
