"""Training from recordings: ``bci train --decoder meg-retrieval``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from bci.decoders.meg_retrieval.estimator import MEGRetrieval


def train_retrieval(
    paths: Sequence[str | Path], *, bank: str | Path, output: str | Path,
    images: Sequence[str] | None = None, options: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit :class:`MEGRetrieval` on recordings of one subject and write its ``.onnx``.

    Epochs are cut at each marker that names an image of ``bank`` (and of ``images``,
    when given) by :func:`bci.datasets.meg.meg_epochs` — the live loop's own chain and
    windower — and regressed onto that image's embedding. The model is exported in its
    embedding form with the bank's folder in its spec (relative to ``output``), so
    ``bci run``/``bci replay`` rank each window against the bank.

    Returns
    -------
    dict
        ``output``, ``n_windows``, ``n_images``, ``train_seconds`` and ``bank``.
    """
    import os
    import time

    from bci.devices.files import read_recording

    from bci.datasets.meg import meg_epochs
    from bci.errors import TrainingError
    from bci.retrieval import load_embedding_bank
    from bci.spec import write_spec

    if not paths:
        raise TrainingError("meg-retrieval: expected at least one recording to train on")
    embeddings = load_embedding_bank(bank)
    known = set(embeddings.names) if images is None else set(embeddings.names) & set(images)
    Xs, names, montage, sfreq = [], [], None, None
    for path in paths:
        rec = read_recording(path)
        shown = sorted(known & set(rec.markers.values))
        if not shown:
            raise TrainingError(f"meg-retrieval: {path}: no marker names an image of the "
                                f"bank {bank} (markers: {sorted(set(rec.markers.values))[:10]})")
        ep = meg_epochs(rec, events=shown)
        if montage is None:
            montage, sfreq = ep.montage, rec.sfreq
        elif ep.montage.ch_names != montage.ch_names or rec.sfreq != sfreq:
            raise TrainingError(f"meg-retrieval: {path} has other sensors or rate than "
                                f"{paths[0]}; train one subject's recordings together")
        Xs.append(ep.X)
        names.extend(ep.names.tolist())
    X = np.concatenate(Xs)
    model = MEGRetrieval(**{"seed": seed, **dict(options or {})})
    t0 = time.perf_counter()
    model.fit(X, embeddings.take(names), positions=montage)
    seconds = time.perf_counter() - t0
    output = Path(output)
    rel = os.path.relpath(Path(bank).resolve(), output.resolve().parent)
    write_spec(model.to_onnx(), model.decoder_spec(stream_sfreq=sfreq, bank_path=rel), output)
    return {"output": str(output), "decoder": "meg-retrieval", "n_windows": int(X.shape[0]),
            "n_images": len(set(names)), "train_seconds": seconds, "bank": str(bank)}
