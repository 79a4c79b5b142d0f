"""Per-window inference latency of each trainable decoder: onnxruntime vs its reference.

Each decoder is fitted on synthetic windows of the real data sets' shapes (SSVEP: 8
channels, 256 Hz, 1 s; motor imagery: 64 channels, 160 Hz, 2 s), exported to ONNX and
timed on one window at a time (batch 1), one thread on both sides: onnxruntime through
the runtime's decoder host against torch eager (deep decoders) or the numpy/scikit-learn
``predict_proba`` (classic decoders). FBCCA has no ONNX form: its numpy time is shown.

    python benchmarks/decoder_inference.py [--repeats 500] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from bci.decoder import OnnxDecoder
from bci.latency import time_calls
from bci.spec import DecoderSpec, WindowSpec, write_spec

SHAPES = {"ssvep": (8, 256.0, 1.0), "mi": (64, 160.0, 2.0)}


def _decoders():
    from bci.decoders.csp_lda import CSPLDA, FBCSP
    from bci.decoders.eegnet import EEGNetClassifier
    from bci.decoders.fbcca import FBCCAClassifier
    from bci.decoders.rl_eegnet import RLEEGNet
    from bci.decoders.ssvep_dnn import SSVEPDNNClassifier
    from bci.decoders.trca import TRCA

    freqs = {"13Hz": 13.0, "17Hz": 17.0, "21Hz": 21.0}
    return {
        "fbcca": ("ssvep", lambda s: FBCCAClassifier(sfreq=s, frequencies=freqs)),
        "trca": ("ssvep", lambda s: TRCA(sfreq=s)),
        "etrca": ("ssvep", lambda s: TRCA(sfreq=s, ensemble=True)),
        "ssvep-dnn": ("ssvep", lambda s: SSVEPDNNClassifier(sfreq=s, epochs=2)),
        "csp-lda": ("mi", lambda s: CSPLDA(sfreq=s)),
        "fbcsp": ("mi", lambda s: FBCSP(sfreq=s)),
        "eegnet": ("mi", lambda s: EEGNetClassifier(sfreq=s, epochs=2)),
        "rl-eegnet": ("mi", lambda s: RLEEGNet(sfreq=s, n_epochs=2)),
    }


def _windows(paradigm: str, n_bands: int | None, rng: np.random.Generator):
    n_ch, sfreq, seconds = SHAPES[paradigm]
    shape = (n_ch, round(sfreq * seconds))
    if n_bands:
        shape = (n_bands, *shape)
    X = (rng.standard_normal((48, *shape)) * 1e-5).astype(np.float32)
    y = np.array(["13Hz", "17Hz", "21Hz"] if paradigm == "ssvep" else ["left", "right"])
    return X, np.resize(y, 48), sfreq



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (paradigm, build) in _decoders().items():
            n_ch, sfreq, seconds = SHAPES[paradigm]
            model = build(sfreq)
            bank = [n for n in model.preprocessing() if n["kind"] == "filterbank"]
            X, y, _ = _windows(paradigm, len(bank[0]["bands"]) if bank else None, rng)
            model.fit(X, y)
            x = X[0]
            row = {"paradigm": paradigm, "window_shape": list(x.shape)}
            if hasattr(model, "module_"):
                module = model.module_.eval()
                xt = torch.from_numpy(x[None])

                def eager(_, module=module, xt=xt):
                    with torch.no_grad():
                        return module(xt)

                row["reference"] = "torch eager"
                row["reference_ms"] = time_calls(eager, x, repeats=args.repeats)
            else:
                row["reference"] = "numpy predict_proba"
                row["reference_ms"] = time_calls(lambda w, m=model: m.predict_proba(w[None]), x,
                                                 repeats=args.repeats)
            try:
                proto = model.to_onnx()
            except NotImplementedError:
                proto = None
            if proto is not None:
                spec = DecoderSpec(
                    paradigm=paradigm, classes=[str(c) for c in model.classes_],
                    ch_names=[f"C{i}" for i in range(n_ch)], sfreq=sfreq,
                    window=WindowSpec(mode="epoch", tmin=0.0, tmax=seconds),
                    preprocessing=model.preprocessing())
                path = Path(tmp) / f"{name}.onnx"
                write_spec(proto, spec, path)
                decoder = OnnxDecoder(path, threads=1)
                row["onnx_ms"] = time_calls(decoder.run, x, repeats=args.repeats)
                row["ratio_p50"] = row["reference_ms"]["p50"] / row["onnx_ms"]["p50"]
            results[name] = row
            print(f"{name} done", flush=True)
    if args.json:
        print(json.dumps(results))
        return
    print(f"\nper-window inference, batch 1, 1 thread, {args.repeats} runs (ms)")
    print(f"{'decoder':11}{'window':>16}{'onnxruntime p50/p99':>22}{'reference p50/p99':>20}"
          f"{'ref/onnx':>10}  reference")
    for name, r in results.items():
        o = r.get("onnx_ms")
        onnx = f"{o['p50']:.3f}/{o['p99']:.3f}" if o else "—"
        ref = f"{r['reference_ms']['p50']:.3f}/{r['reference_ms']['p99']:.3f}"
        ratio = f"×{r['ratio_p50']:.1f}" if o else ""
        print(f"{name:11}{'×'.join(map(str, r['window_shape'])):>16}{onnx:>22}{ref:>20}"
              f"{ratio:>10}  {r['reference']}")


if __name__ == "__main__":
    main()
