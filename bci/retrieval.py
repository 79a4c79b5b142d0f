"""Retrieval decoders in the live loop: an embedding ranked against a candidate bank.

A decoder whose spec says ``output = "embedding"`` (e.g. the MEG image-retrieval brain
module) gives one vector per window. With a bank of candidate embeddings (a folder of
``.npy`` files, one per candidate: ``[decoder] bank`` in the session, or
``extra["bank"]`` in the model's spec, relative to the model file), each decision
carries the cosine similarity to every candidate, the best candidate as its label and
the ``top_k`` best as its candidates. A decoder that holds the bank in its graph
(``extra["task"] = "retrieval"``, one class per candidate) gets the same candidates from
its probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bci.errors import ConfigError, ModelError
from bci.spec import DecoderSpec


@dataclass(frozen=True)
class CandidateBank:
    """Candidate names and their unit-norm embeddings, shape (n_candidates, dim)."""

    names: list[str]
    unit: np.ndarray
    source: str = ""

    @classmethod
    def load(cls, folder: str | Path) -> CandidateBank:
        from bci.datasets.meg import MEGError, load_embedding_bank

        try:
            bank = load_embedding_bank(folder)
        except MEGError as err:
            raise ConfigError(f"decoder.bank: {err}") from None
        v = bank.vectors.astype(np.float64)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        if np.any(norms == 0):
            zero = [n for n, z in zip(bank.names, norms[:, 0] == 0, strict=True) if z]
            raise ConfigError(f"decoder.bank: embedding bank {folder}: candidates "
                              f"{zero[:10]} have an all-zero embedding (no direction to "
                              "compare)")
        return cls(list(bank.names), v / norms, str(folder))

    def similarities(self, embedding: np.ndarray) -> np.ndarray:
        """Cosine similarity of ``embedding`` (dim,) to every candidate, (n_candidates,)."""
        e = np.asarray(embedding, np.float64).ravel()
        if e.shape[0] != self.unit.shape[1]:
            raise ModelError(f"the decoder's embedding has {e.shape[0]} values; the bank "
                             f"{self.source} holds embeddings of {self.unit.shape[1]}")
        n = np.linalg.norm(e)
        return self.unit @ (e / n) if n > 0 else np.zeros(len(self.names))


def top_k(scores: np.ndarray, names: list[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` best ``(name, score)`` pairs, best first (ties: the earlier name)."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")[:k]
    return [(names[i], float(scores[i])) for i in order]


def bank_folder(spec: DecoderSpec, model_path: Path | None,
                session_bank: Path | None) -> Path | None:
    """The session's bank, else the spec's (relative to the model file), else None."""
    if session_bank is not None:
        return session_bank
    extra = spec.extra.get("bank") if spec.extra else None
    if not extra:
        return None
    path = Path(str(extra))
    if not path.is_absolute() and model_path is not None:
        path = model_path.parent / path
    return path


def is_retrieval(spec: DecoderSpec) -> bool:
    """A classifier over candidates (the bank inside the graph)."""
    return bool(spec.extra) and spec.extra.get("task") == "retrieval"
