"""``bci train`` and ``bci evaluate``: decoders fitted and scored on recordings.

The ``--decoder`` choices and their help come from :data:`bci.registry.decoders`.
"""

from __future__ import annotations

import argparse
import json

from bci import registry
from bci.cli import progress

# the training stack (mne, scipy, sklearn …) and the session loader are imported by the
# commands that use them: the parser needs the registry's names and help only


def _decoder_help(names: list[str]) -> str:
    return "; ".join(f"{n}: {registry.decoders.get(n).meta['help']}" for n in names)


def add_commands(sub: argparse._SubParsersAction) -> None:
    # training-free decoders stay choices of `train`, which says how to serve them instead
    trainable = [e.name for e in registry.decoders
                 if e.meta["trainable"] or e.meta["served_without_training"]]
    p = sub.add_parser("train", help="fit a decoder on recordings and write its model file "
                       "(.onnx; .npz for the covariance decoders)")
    p.add_argument("session", help="session TOML file with [window] events and [training]")
    p.add_argument("--decoder", required=True, choices=trainable, metavar="NAME",
                   help=_decoder_help(trainable))
    p.add_argument("--bank", default=None, metavar="DIR",
                   help=f"{', '.join(registry.decoders.names(bank=True))}: the images' "
                        "embeddings, one .npy file per image")
    p.add_argument("--train", required=True, nargs="+", metavar="FILE", help="recordings")
    p.add_argument("--global", dest="global_", nargs="+", metavar="FILE",
                   help="other subjects' recordings for the global stage (ssvep-dnn)")
    p.add_argument("--output", required=True, metavar="MODEL.onnx|MODEL.npz")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=train_command)

    evaluable = registry.decoders.names(evaluable=True)
    p = sub.add_parser("evaluate", help="accuracy, kappa, confusion (and ITR) on held-out "
                       "data")
    p.add_argument("session", help="session TOML file with [window] events and [training]")
    p.add_argument("--decoder", required=True, choices=evaluable, metavar="NAME",
                   help=_decoder_help(evaluable))
    p.add_argument("--train", required=True, nargs="+", metavar="FILE")
    p.add_argument("--test", nargs="+", metavar="FILE",
                   help="held-out recordings (cross-session split)")
    p.add_argument("--split", choices=("cross-session", "leave-one-block-out", "k-fold"),
                   default=None, help="default: cross-session with --test, else k-fold")
    p.add_argument("--n-splits", type=int, default=5,
                   help="folds, or blocks within a single recording (default 5)")
    p.add_argument("--global", dest="global_", nargs="+", metavar="FILE",
                   help="other subjects' recordings for the global stage (ssvep-dnn)")
    p.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="window length from [window] tmin (default: tmax − tmin)")
    p.add_argument("--recenter", choices=("none", "session", "online"), default=None,
                   help="re-centre each recording: covariance decoders at their Riemannian "
                        "mean, the others by Euclidean alignment; session = the test file's "
                        "mean from all its windows (upper bound), online = running mean of "
                        "past windows only (default: as the session file says)")
    p.add_argument("--recenter-warmup", type=int, default=None, metavar="N",
                   help="online: windows decided at the training mean first (default 10)")
    p.add_argument("--recenter-forget", type=float, default=None, metavar="W",
                   help="online: smallest weight of a new window, in (0, 1] (default 0.05)")
    p.add_argument("--predictions", default=None, metavar="FILE.jsonl",
                   help="write each test window's prediction")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.set_defaults(func=evaluate_command)


def train_command(args: argparse.Namespace) -> int:
    from bci.decoders.training import train
    from bci.session import SessionConfig

    config = SessionConfig.load(args.session)
    with progress.waiting(f"training {args.decoder}", follow="bci.decoders"):
        out = train(config, args.decoder, args.train, output=args.output,
                    global_paths=args.global_ or (), bank=args.bank)
    if args.json:
        print(json.dumps(out))
    elif "n_images" in out:
        print(f"{out['decoder']}: trained on {out['n_windows']} windows of {out['n_images']} "
              f"images in {out['train_seconds']:.1f} s; wrote {out['output']} (bank "
              f"{out['bank']})")
    else:
        print(f"{out['decoder']}: trained on {out['n_windows']} windows "
              f"({', '.join(out['classes'])}) in {out['train_seconds']:.1f} s, training "
              f"accuracy {out['train_accuracy']:.3f}; wrote {out['output']}")
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    from bci.decoders.training import evaluate
    from bci.session import SessionConfig

    config = SessionConfig.load(args.session)
    with progress.waiting(f"evaluating {args.decoder} ({args.split})",
                          follow="bci.decoders"):
        result = evaluate(config, args.decoder, train=args.train, test=args.test or (),
                          split=args.split, n_splits=args.n_splits,
                          global_paths=args.global_ or (), window=args.window,
                          recenter=args.recenter, recenter_warmup=args.recenter_warmup,
                          recenter_forget=args.recenter_forget)
    if args.predictions:
        result.write_predictions(args.predictions)
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{summary['decoder']}, {summary['split']}: {summary['n_windows']} test windows, "
          f"accuracy {summary['accuracy']:.3f} (chance {summary['chance']:.3f}), "
          f"kappa {summary['kappa']:.3f}")
    if "itr_bits_per_min" in summary:
        print(f"ITR {summary['itr_bits_per_min']:.1f} bits/min ({summary['itr_convention']})")
    width = max(len(c) for c in summary["classes"]) + 2
    print("confusion (rows true, columns predicted):")
    print(" " * width + "".join(f"{c:>{width}}" for c in summary["classes"]))
    for c, row in zip(summary["classes"], summary["confusion"], strict=True):
        print(f"{c:>{width}}" + "".join(f"{v:>{width}}" for v in row))
    return 0
