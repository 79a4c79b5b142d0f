"""FLEEG: each site alone against weighted FedAvg of the shared layers, per site.

Sites (``bci.datasets.planted_sites``): three simulated ones sharing a planted class
structure — 8 channels at 128 Hz with only ``--small`` training trials, 22 channels at
250 Hz and 64 channels at 160 Hz with ``--large`` each — and the real EEGMMIDB site
(PhysioNet, Schalk et al. 2004; Goldberger et al. 2000), subject S001, 64 channels at
160 Hz, left/right fist imagery: trained on run 4, tested on run 8 (15 trials each,
windows 0.5–2.5 s after the cue, causal 8–30 Hz band-pass, cut by the runtime's code).
Simulated sites are tested on 200 held-out trials each.

Both arms use the same model, initialisation and schedule: ``--rounds`` rounds of one
local epoch (three, in batches of 4, at a site with fewer than 20 training trials);
"alone" trains each site for as many epochs without exchanging anything; "federated"
averages the shared parameters (weighted by training trials) after every round, and
each site finally takes the average and refreshes its batch-norm statistics. The loop
is plain python over ``get_shared``/``set_shared`` (no Flower).

    python benchmarks/fleeg_sites.py [--seeds 0 1 2] [--rounds 10] [--no-real] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from bci.decoders.fleeg import FLEEGClassifier, weighted_average

from bci.datasets.planted_sites import SiteData, load_eegbci_site, make_site, split

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["left", "right"]
N_TEST = 200
SMALL_SITE = 20  # fewer training trials than this: batches of 4, three epochs a round


def planted(seed: int, *, small: int, large: int, snr: float) -> list[tuple[str, SiteData,
                                                                             SiteData]]:
    out = []
    for i, (n_ch, sfreq, n_train) in enumerate(((8, 128.0, small), (22, 250.0, large),
                                                (64, 160.0, large))):
        site = make_site(n_channels=n_ch, sfreq=sfreq, n_trials=n_train + N_TEST,
                         seed=100 * seed + i, snr=snr)
        train, test = split(site, test_fraction=N_TEST / (n_train + N_TEST), seed=seed)
        out.append((f"sim {n_ch} ch {sfreq:g} Hz, {n_train} train", train, test))
    return out


def real(data: Path) -> tuple[str, SiteData, SiteData]:
    train = load_eegbci_site(data, runs=(4,))
    test = load_eegbci_site(data, runs=(8,))
    return (f"EEGMMIDB S001 R04→R08, {len(train)} train", train, test)


def model_for(site: SiteData, *, seed: int, lr: float) -> FLEEGClassifier:
    small = len(site) < SMALL_SITE
    model = FLEEGClassifier(sfreq=site.sfreq, epochs=3 if small else 1,
                            batch_size=4 if small else 16, lr=lr, seed=seed)
    return model.initialize(site.X.shape[1], site.X.shape[2], CLASSES, ch_names=site.ch_names)


def alone(sites, *, seed: int, rounds: int, lr: float) -> list[float]:
    scores = []
    for _, train, test in sites:
        model = model_for(train, seed=seed, lr=lr)
        model.set_params(epochs=model.epochs * rounds)
        scores.append(model.fit(train.X, train.y).score(test.X, test.y))
    return scores


def federated(sites, *, seed: int, rounds: int, lr: float) -> list[float]:
    models = [model_for(train, seed=seed, lr=lr) for _, train, _ in sites]
    weights = [len(train) for _, train, _ in sites]
    shared = models[0].get_shared()
    for _ in range(rounds):
        updates = []
        for model, (_, train, _) in zip(models, sites, strict=True):
            model.set_shared(shared)
            model.fit(train.X, train.y)
            updates.append(model.get_shared())  # the only thing that leaves the site
        shared = weighted_average(updates, weights)
    scores = []
    for model, (_, train, test) in zip(models, sites, strict=True):
        model.set_shared(shared)
        model.refresh_statistics(train.X)
        scores.append(model.score(test.X, test.y))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--small", type=int, default=10, help="training trials, small site")
    parser.add_argument("--large", type=int, default=80, help="training trials, large sites")
    parser.add_argument("--snr", type=float, default=1.5)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--data", default=os.environ.get("BCI_DATA", REPO.parent / "shared/data"))
    parser.add_argument("--no-real", action="store_true", help="simulated sites only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # figures comparable across machines with more cores
    rows = []
    for seed in args.seeds:
        sites = planted(seed, small=args.small, large=args.large, snr=args.snr)
        if not args.no_real:
            sites.append(real(Path(args.data)))
        t0 = time.perf_counter()
        solo = alone(sites, seed=seed, rounds=args.rounds, lr=args.lr)
        fed = federated(sites, seed=seed, rounds=args.rounds, lr=args.lr)
        for (name, _, test), a, f in zip(sites, solo, fed, strict=True):
            rows.append({"seed": seed, "site": name, "alone": a, "federated": f,
                         "n_test": len(test)})
        print(f"seed {seed}: " + "  ".join(f"{a:.3f}→{f:.3f}" for a, f in zip(solo, fed,
                                                                           strict=True))
              + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.json:
        print(json.dumps(rows))
        return
    print(f"\nheld-out accuracy, mean over seeds {args.seeds} ({args.rounds} rounds)")
    print(f"{'site':42}{'alone':>8}{'federated':>11}{'gain':>8}{'n test':>8}")
    for name in dict.fromkeys(r["site"] for r in rows):
        a = np.mean([r["alone"] for r in rows if r["site"] == name])
        f = np.mean([r["federated"] for r in rows if r["site"] == name])
        n = next(r["n_test"] for r in rows if r["site"] == name)
        print(f"{name:42}{a:8.3f}{f:11.3f}{f - a:+8.3f}{n:8d}")


if __name__ == "__main__":
    main()
