"""MEG image retrieval: top-1/top-5 of the brain module vs the ridge baseline on synthetic
MEG, and per-window inference latency at the published and the small size.

Retrieval. :func:`bci.datasets.meg.make_meg_images` simulates one subject (a Vectorview-like
helmet, ``--sites`` sites × magnetometer + 2 planar gradiometers, 600 Hz) viewing
``--images`` images ``--repeats`` times; epochs −0.5 … 1.0 s are cut by the runtime's
chain (band-pass 0.1–40 Hz, decimation to 120 Hz). The first ``--test-images`` images are
never trained on (zero-shot retrieval, as in the paper's test set); top-k is measured on
single trials among those candidates, and on the average of each test image's
repetitions (the paper's "averaged" setting). Brain module: ``small`` size, Adam 3e-3 (a
larger rate than the paper's 3e-4, for the few hundred windows here), batch 64, no
validation split. ``--jitter`` delays each trial's whole response by a random latency.

Decoding vs time. The fitted model, exported with the test images as its candidate bank,
is replayed through the runtime (``Pipeline`` + ``OnnxDecoder``) on sliding 1.5 s windows
every 50 ms; top-5 among the test images is binned by the lag between the onset a
window assumes (its last sample − 1.0 s) and each test image's real onset.

Latency. Untrained networks at the two sizes (``published``: 272 CTF-like sensors, 768-d
embedding as CLIP ViT-L/14; ``small``: 72 sensors, 32-d), one window at a time, one
thread: onnxruntime through the runtime's decoder host against the same inference path
in torch eager (the anchor), in the same run.

    python benchmarks/meg_retrieval.py [--repeats-latency 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bci.latency import percentiles_ms, time_calls


def retrieval(args: argparse.Namespace) -> dict:
    from bci.decoders.meg_retrieval import MEGRetrieval, RidgeRetrieval

    from bci.chunk import Markers
    from bci.datasets.meg import make_meg_images, meg_epochs
    from bci.recording import Recording

    data = make_meg_images(n_images=args.images, n_repeats=args.repeats, sfreq=600.0,
                           n_sites=args.sites, snr=args.snr, seed=args.seed,
                           latency_jitter=args.jitter)
    raw = data.raws[0]
    rec = Recording(raw.info, raw.get_data().astype(np.float32), raw.times.copy(),
                    Markers(raw.annotations.onset.astype(float),
                            list(raw.annotations.description)), "synthetic")
    ep = meg_epochs(rec)
    bank = data.bank()
    Y = bank.take(ep.names)
    test_names = data.names[: args.test_images]
    test = np.isin(ep.names, test_names)
    train = ~test
    test_bank = bank.take(test_names)
    # averaged setting: the mean of each test image's repetitions
    X_avg = np.stack([ep.X[ep.names == n].mean(0) for n in test_names])
    out = {"n_train_windows": int(train.sum()), "n_test_windows": int(test.sum()),
           "n_candidates": len(test_names), "sensors": len(ep.montage), "snr": args.snr,
           "jitter_s": args.jitter,
           "chance_top1": 1 / len(test_names), "chance_top5": 5 / len(test_names)}
    t0 = time.perf_counter()
    ridge = RidgeRetrieval().fit(ep.X[train], Y[train])
    out["ridge"] = {
        "fit_s": time.perf_counter() - t0, "alpha": ridge.alpha_,
        "top1": ridge.score(ep.X[test], Y[test], bank=test_bank, k=1),
        "top5": ridge.score(ep.X[test], Y[test], bank=test_bank, k=5),
        "top1_avg": ridge.score(X_avg, test_bank, bank=test_bank, k=1),
        "top5_avg": ridge.score(X_avg, test_bank, bank=test_bank, k=5),
    }
    t0 = time.perf_counter()
    deep = MEGRetrieval(config="small", epochs=args.epochs, lr=3e-3, batch_size=64,
                        validation_fraction=0.0, seed=args.seed).fit(
        ep.X[train], Y[train], positions=ep.montage)
    out["brain_module"] = {
        "fit_s": time.perf_counter() - t0, "epochs_run": len(deep.history_),
        "best_epoch": deep.best_epoch_,
        "top1": deep.score(ep.X[test], Y[test], bank=test_bank, k=1),
        "top5": deep.score(ep.X[test], Y[test], bank=test_bank, k=5),
        "top1_avg": deep.score(X_avg, test_bank, bank=test_bank, k=1),
        "top5_avg": deep.score(X_avg, test_bank, bank=test_bank, k=5),
    }
    out["curve"] = _replay_curve(deep, rec, test_names, test_bank)
    return out


def _replay_curve(model, rec, names: list[str], bank: np.ndarray) -> dict:
    from bci.decoders.meg_retrieval import retrieval_curve, tmax_of

    from bci.decoder import OnnxDecoder
    from bci.pipeline import Pipeline
    from bci.runner import replay_windows
    from bci.session import (
        DecoderConfig,
        OutputsConfig,
        SessionConfig,
        SourceConfig,
        WindowConfig,
    )
    from bci.spec import write_spec

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "meg.onnx"
        spec = model.decoder_spec(stream_sfreq=rec.sfreq, candidates=names, step=0.05)
        write_spec(model.to_onnx(bank=bank), spec, path)
        decoder = OnnxDecoder(path, threads=1)
        config = SessionConfig(source=SourceConfig(), chain=[], window=WindowConfig(),
                               decoder=DecoderConfig("onnx", path),
                               outputs=OutputsConfig(lsl=None))
        pipe = Pipeline(config, rec.info, clock=time.perf_counter, decoder=decoder)
        t0 = time.perf_counter()
        outputs, ends, inference = [], [], []
        for w in replay_windows(pipe, rec, chunk_size=64):
            d = pipe.decode(w, live=False)
            outputs.append(d.output)
            ends.append(d.last_sample_time)
            inference.append(d.stages["inference"])
        wall = time.perf_counter() - t0
    values = np.array(rec.markers.values)
    shown = np.isin(values, names)
    targets = np.array([names.index(v) for v in values[shown]])
    tmax = tmax_of(model.n_times_, sfreq=model.sfreq, tmin=model.tmin)
    lags, acc, counts = retrieval_curve(
        np.array(outputs), np.array(ends) - tmax + 1 / model.sfreq,
        np.asarray(rec.markers.timestamps)[shown], targets, k=5, max_lag=1.0,
        resolution=0.05)
    return {"windows": len(outputs), "replay_s": wall,
            "x_real_time": float(rec.timestamps[-1] - rec.timestamps[0]) / wall,
            "inference_ms": percentiles_ms(inference), "lags_s": lags.round(3).tolist(),
            "top5": [None if np.isnan(a) else float(a) for a in acc],
            "counts": counts.tolist()}


def latency(args: argparse.Namespace) -> dict:
    import torch
    from bci.decoders.meg_retrieval import BrainModuleConfig, MEGRetrieval

    from bci.datasets.meg import Montage, make_meg_info
    from bci.decoder import OnnxDecoder
    from bci.spec import write_spec

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = args.repeats_latency
    sizes = {"published": ("ctf275", 272, 768), "small": ("vectorview", 24, 32)}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size, (system, sites, dim) in sizes.items():
            info = make_meg_info(system, sfreq=1200.0, n_sites=sites)
            montage = Montage.from_info(info)
            X = (rng.standard_normal((16, len(montage), 180)) * 1e-13).astype(np.float32)
            Y = rng.standard_normal((16, dim))
            est = MEGRetrieval(config=size, epochs=0, validation_fraction=0.0)
            est.fit(X, Y, positions=montage)
            n_params = sum(p.numel() for p in est.module_.parameters())
            graph = est.inference_module()
            t0 = time.perf_counter()
            proto = est.to_onnx()
            export_s = time.perf_counter() - t0
            path = Path(tmp) / f"{size}.onnx"
            write_spec(proto, est.decoder_spec(stream_sfreq=1200.0), path)
            decoder = OnnxDecoder(path, threads=1)
            x = X[0]
            ref = graph(torch.from_numpy(x[None]))[0].detach().numpy()
            parity = float(np.abs(decoder.run(x) - ref).max() / np.abs(ref).max())

            def torch_run(w, graph=graph):
                with torch.no_grad():
                    return graph(torch.from_numpy(w[None]))

            results[size] = {
                "config": str(BrainModuleConfig.resolve(size)),
                "sensors": len(montage), "n_times": 180, "embedding_dim": dim,
                "parameters": int(n_params), "onnx_mb": path.stat().st_size / 1e6,
                "export_s": export_s, "max_rel_diff_onnx_vs_torch": parity,
                "onnxruntime_ms": time_calls(decoder.run, x, repeats=n, warmup=10),
                "torch_ms": time_calls(torch_run, x, repeats=n, warmup=10),
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=80)
    parser.add_argument("--test-images", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--sites", type=int, default=24)
    parser.add_argument("--snr", type=float, default=0.15)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--jitter", type=float, default=0.0,
                        help="per-trial latency jitter of the responses, seconds (std)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats-latency", type=int, default=300)
    parser.add_argument("--skip-retrieval", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    out = {}
    if not args.skip_retrieval:
        out["retrieval"] = retrieval(args)
    if not args.skip_latency:
        out["latency"] = latency(args)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    if "retrieval" in out:
        r = out["retrieval"]
        print(f"retrieval among {r['n_candidates']} unseen images ({r['sensors']} sensors, "
              f"{r['n_train_windows']} training / {r['n_test_windows']} test windows, "
              f"snr {r['snr']}, jitter {r['jitter_s']} s); chance top-1 "
              f"{r['chance_top1']:.3f}, top-5 {r['chance_top5']:.3f}")
        print(f"{'':14}{'top-1':>8}{'top-5':>8}{'top-1 avg':>11}{'top-5 avg':>11}{'fit s':>8}")
        for name in ("ridge", "brain_module"):
            m = r[name]
            print(f"{name:14}{m['top1']:8.3f}{m['top5']:8.3f}{m['top1_avg']:11.3f}"
                  f"{m['top5_avg']:11.3f}{m['fit_s']:8.1f}")
        c = r["curve"]
        print(f"replay: {c['windows']} sliding windows, ×{c['x_real_time']:.0f} real time, "
              f"inference p50 {c['inference_ms']['p50']:.3f} ms; top-5 vs lag (s):")
        print("  " + "  ".join(f"{lag:+.2f}:{a:.2f}" for lag, a in zip(
            c["lags_s"], c["top5"], strict=True) if a is not None and round(lag * 20) % 2 == 0))
    for size, m in out.get("latency", {}).items():
        o, t = m["onnxruntime_ms"], m["torch_ms"]
        print(f"{size}: {m['sensors']} sensors × {m['n_times']}, {m['parameters']:,} "
              f"parameters, {m['onnx_mb']:.1f} MB, export {m['export_s']:.1f} s, "
              f"|onnx − torch|/max {m['max_rel_diff_onnx_vs_torch']:.1e}")
        print(f"  onnxruntime p50 {o['p50']:.3f} ms p99 {o['p99']:.3f} ms | torch p50 "
              f"{t['p50']:.3f} ms p99 {t['p99']:.3f} ms")


if __name__ == "__main__":
    main()
