"""Per-window latency of the Du-IN word decoder in onnxruntime, with torch as the anchor.

For the published sizes (8 blocks, d_model 160, 2048-code VQ-VAE) and the small preset,
a Du-IN classifier on 11 contacts of one shaft (10 bipolar channels, as in the paper),
3 s epochs at 1000 Hz and 61 words is built (its weights are barely trained: latency
does not depend on them), exported with its ``bci`` spec and timed one epoch at a time
(batch 1, one thread on both sides): onnxruntime through the runtime's decoder host
(:class:`bci.decoder.OnnxDecoder`) against torch eager on the same module in the same
run. The inference path is front end (bipolar matrix, z-score), subject layer,
tokenizer, encoder and head; the VQ-VAE and MAE are training-only.

    python benchmarks/duin_latency.py [--repeats 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bci.decoder import OnnxDecoder
from bci.latency import time_calls

N_CONTACTS = 11
N_WORDS = 61


def _build(preset: str):
    from bci.decoders.duin import DuINClassifier, DuINConfig, StageSchedule

    base = DuINConfig.published() if preset == "published" else DuINConfig.small()
    # one short fine-tuning epoch: the timed graph is complete, its weights are not
    config = replace(base, finetune=StageSchedule(1, 16, 1e-4, 1e-5, 1))
    names = [f"A{i + 1}" for i in range(N_CONTACTS)]
    pairs = [(names[i], names[i + 1]) for i in range(N_CONTACTS - 1)]
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((2 * N_WORDS, N_CONTACTS, config.n_times)) * 5e-5).astype(
        np.float32)
    y = np.array([f"word{k:02d}" for k in range(N_WORDS)] * 2)
    clf = DuINClassifier(config=config, pretrain="none", ch_names=names, bipolar=pairs)
    return clf.fit(X, y), X



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in ("published", "small"):
            clf, X = _build(preset)
            module = torch.nn.Sequential(clf.module_, torch.nn.Softmax(dim=-1)).eval()
            x = X[0]
            xt = torch.from_numpy(x[None])

            def eager(module=module, xt=xt):
                with torch.no_grad():
                    return module(xt)

            path = Path(tmp) / f"duin-{preset}.onnx"
            t0 = time.perf_counter()
            clf.export(path)
            export_s = time.perf_counter() - t0
            decoder = OnnxDecoder(path, threads=1)
            # log-probabilities: the barely trained model's probabilities are near-uniform,
            # so their absolute difference would say little about the graph's precision
            diff = float(np.abs(np.log(decoder.run(x)) - np.log(eager().numpy()[0])).max())
            results[preset] = {
                "window_shape": list(x.shape),
                "parameters": int(sum(p.numel() for p in clf.module_.parameters())),
                "onnx_mb": path.stat().st_size / 1e6,
                "export_s": export_s,
                "max_abs_dlogp": diff,
                "onnx_ms": time_calls(decoder.run, x, repeats=args.repeats),
                "torch_ms": time_calls(eager, repeats=args.repeats),
            }
            r = results[preset]
            r["ratio_p50"] = r["torch_ms"]["p50"] / r["onnx_ms"]["p50"]
            print(f"{preset} done", flush=True)
    if args.json:
        print(json.dumps(results))
        return
    print(f"\nDu-IN per-epoch inference ({N_CONTACTS} contacts → {N_CONTACTS - 1} bipolar, "
          f"3 s at 1000 Hz, {N_WORDS} words), batch 1, 1 thread, {args.repeats} runs (ms)")
    print(f"{'preset':10}{'params':>10}{'onnx MB':>9}{'onnxruntime p50/p99':>22}"
          f"{'torch p50/p99':>16}{'torch/onnx':>12}{'max |Δlog p|':>14}{'export s':>10}")
    for name, r in results.items():
        o, t = r["onnx_ms"], r["torch_ms"]
        print(f"{name:10}{r['parameters']:>10,}{r['onnx_mb']:>9.2f}"
              f"{o['p50']:>13.3f}/{o['p99']:<8.3f}{t['p50']:>8.3f}/{t['p99']:<7.3f}"
              f"{'×' + format(r['ratio_p50'], '.1f'):>12}{r['max_abs_dlogp']:>14.1e}"
              f"{r['export_s']:>10.1f}")


if __name__ == "__main__":
    main()
