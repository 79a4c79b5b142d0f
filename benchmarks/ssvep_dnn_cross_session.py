"""SSVEP DNN on SSVEP-exo as published: global stage on the other subjects, fine-tuned on
one session of the subject, tested on the other session (both directions), 1 s and 2 s.

The published schedule (1000 global + 1000 fine-tuning epochs) takes ~10 minutes per fold
on a 2-core CPU, so the windows are cut here (by the runtime's own chain, exactly as
``bci evaluate`` cuts them) and the training can run where a GPU is:

    python benchmarks/ssvep_dnn_cross_session.py --export-windows windows.npz
    python benchmarks/ssvep_dnn_cross_session.py --windows windows.npz --device cuda

``--epochs`` and ``--fine-tune-epochs`` shorten the schedule (say so when quoting).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WINDOWS = (1.0, 2.0)


def export_windows(data: Path, out: Path) -> None:
    from dataclasses import replace

    from bci.decoders.training import _prepare, load_windows

    from bci.session import SessionConfig

    config = SessionConfig.load(REPO / "examples" / "ssvep-exo.toml")
    arrays = {}
    for window in WINDOWS:
        cfg = replace(config, window=replace(config.window, tmax=config.window.tmin + window))
        for subject_dir in sorted(p for p in (data / "ssvep-exo").iterdir() if p.is_dir()):
            for k in (1, 2):
                path = subject_dir / f"session{k}_raw.fif"
                _, spec, _ = _prepare("ssvep-dnn", cfg, path)
                w = load_windows(cfg, spec, [path])
                key = f"{subject_dir.name}_s{k}_w{window:g}"
                arrays[f"X_{key}"], arrays[f"y_{key}"] = w.X, w.y
    np.savez_compressed(out, **arrays)
    print(f"wrote {len(arrays) // 2} window sets to {out}")


def run(windows: Path, *, device: str, epochs: int, fine_tune_epochs: int) -> list[dict]:
    import torch
    from bci.decoders.ssvep_dnn import SSVEPDNNClassifier

    torch.manual_seed(0)
    z = np.load(windows)
    subjects = sorted({k.split("_")[1] for k in z.files})
    rows = []
    for window in WINDOWS:
        for subject in subjects:
            def get(s, k, window=window):
                key = f"{s}_s{k}_w{window:g}"
                return z[f"X_{key}"], z[f"y_{key}"]

            others = [get(s, k) for s in subjects if s != subject for k in (1, 2)]
            Xg = np.concatenate([x for x, _ in others])
            yg = np.concatenate([y for _, y in others])
            for direction, (a, b) in (("1→2", (1, 2)), ("2→1", (2, 1))):
                (Xtr, ytr), (Xte, yte) = get(subject, a), get(subject, b)
                model = SSVEPDNNClassifier(sfreq=256.0, epochs=epochs,
                                           fine_tune_epochs=fine_tune_epochs, device=device)
                t0 = time.perf_counter()
                model.fit(Xg, yg)  # global stage: the other subjects only
                acc_global = float(np.mean(model.predict(Xte) == yte))
                tuned = model.fine_tune(Xtr, ytr)
                seconds = time.perf_counter() - t0
                acc = float(np.mean(tuned.predict(Xte) == yte))
                rows.append({"subject": subject, "direction": direction, "window_s": window,
                             "accuracy": acc, "global_only_accuracy": acc_global,
                             "train_seconds": seconds, "n_test": int(yte.size)})
                print(f"{subject} {direction} {window:g}s acc {acc:.3f} (global only "
                      f"{acc_global:.3f}) {seconds:.1f} s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("BCI_DATA", REPO.parent / "shared/data"))
    parser.add_argument("--export-windows", type=Path, default=None)
    parser.add_argument("--windows", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--fine-tune-epochs", type=int, default=1000)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    if args.export_windows:
        export_windows(Path(args.data), args.export_windows)
        return
    if args.windows is None:
        parser.error("give --export-windows FILE or --windows FILE")
    rows = run(args.windows, device=args.device, epochs=args.epochs,
               fine_tune_epochs=args.fine_tune_epochs)
    for window in WINDOWS:
        sel = [r for r in rows if r["window_s"] == window]
        print(f"{window:g} s windows: mean accuracy {np.mean([r['accuracy'] for r in sel]):.3f}"
              f" (global stage alone {np.mean([r['global_only_accuracy'] for r in sel]):.3f}),"
              f" {len(sel)} folds")
    if args.json:
        args.json.write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
