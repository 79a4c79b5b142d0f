"""Retrieval decoders in the live loop: an embedding ranked against a candidate bank.

A decoder whose spec says ``output = "embedding"`` (e.g. the MEG image-retrieval brain
module) gives one vector per window. With a bank of candidate embeddings (a folder of
``.npy`` files, one per candidate: ``[decoder] bank`` in the session, or
``extra["bank"]`` in the model's spec, relative to the model file), each decision
carries the cosine similarity to every candidate, the best candidate as its label and
the ``top_k`` best as its candidates. A decoder that holds the bank in its graph
(``extra["task"] = "retrieval"``, one class per candidate) gets the same candidates from
its probabilities.

A bank is a folder holding one ``.npy`` file per candidate, its stem the candidate's
name (the marker value that announces the image in a recording): see
:func:`load_embedding_bank` and :func:`save_embedding_bank`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bci.errors import ConfigError, ModelError
from bci.spec import DecoderSpec


@dataclass(slots=True)
class EmbeddingBank:
    """Candidates (images …) and their embeddings, as read from a folder of ``.npy`` files.

    Attributes
    ----------
    names : list of str, length n_images
    vectors : ndarray of float32, shape (n_images, dim)
    """

    names: list[str]
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def index(self, names: Sequence[str]) -> np.ndarray:
        """Row of each name, shape (len(names),); ConfigError naming the unknown ones."""
        lookup = {n: i for i, n in enumerate(self.names)}
        missing = sorted({str(n) for n in names} - set(lookup))
        if missing:
            raise ConfigError(f"expected embeddings for images {missing[:10]} "
                              f"({len(missing)} missing) in the bank of {len(self.names)}")
        return np.array([lookup[str(n)] for n in names], np.int64)

    def take(self, names: Sequence[str]) -> np.ndarray:
        """Embeddings of ``names``, shape (len(names), dim)."""
        return self.vectors[self.index(names)]


def load_embedding_bank(
    folder: str | Path, *, names: Sequence[str] | None = None, dim: int | None = None,
) -> EmbeddingBank:
    """Read one embedding per image from ``folder/<name>.npy``.

    Parameters
    ----------
    folder : str | Path
    names : sequence of str | None
        Images to read, in that order; default every ``.npy`` file, sorted by name.
    dim : int | None
        Expected embedding size; checked when given.

    Returns
    -------
    EmbeddingBank

    Raises
    ------
    ConfigError
        The folder is missing or holds no ``.npy`` file; a named image has no file; a
        file is not a numeric vector (shape ``(dim,)`` or ``(1, dim)``), has another
        size than the others (or than ``dim``), or holds NaN/Inf.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"embedding bank {folder}: no such folder (expected one .npy file "
                          f"per image)")
    if names is None:
        files = sorted(folder.glob("*.npy"))
        if not files:
            raise ConfigError(f"embedding bank {folder}: expected .npy files (one per image), "
                              f"found none")
    else:
        files = [folder / f"{n}.npy" for n in names]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ConfigError(f"embedding bank {folder}: expected a file per image, missing "
                              f"{missing[:10]} ({len(missing)} of {len(files)})")
    vectors, sizes = [], {}
    for f in files:
        try:
            v = np.load(f, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ConfigError(f"embedding bank: {f} is not a readable .npy array: {err}") from None
        if v.ndim == 2 and v.shape[0] == 1:
            v = v[0]
        if v.ndim != 1 or not np.issubdtype(v.dtype, np.number):
            raise ConfigError(f"embedding bank: {f} holds {v.dtype} of shape {v.shape}; expected "
                              f"a numeric vector (dim,) or (1, dim)")
        if not np.isfinite(v).all():
            raise ConfigError(f"embedding bank: {f} holds {int((~np.isfinite(v)).sum())} NaN/Inf "
                              f"values")
        sizes.setdefault(v.shape[0], []).append(f.name)
        vectors.append(v.astype(np.float32))
    if dim is not None and set(sizes) != {int(dim)}:
        wrong = {d: fs[:5] for d, fs in sizes.items() if d != int(dim)}
        raise ConfigError(f"embedding bank {folder}: expected embeddings of size {dim}, found "
                          f"sizes {wrong}")
    if len(sizes) > 1:
        raise ConfigError(f"embedding bank {folder}: expected one embedding size, found "
                          f"{ {d: fs[:3] for d, fs in sizes.items()} }")
    return EmbeddingBank([f.stem for f in files], np.stack(vectors))


def save_embedding_bank(folder: str | Path, names: Sequence[str], vectors: np.ndarray) -> Path:
    """Write ``folder/<name>.npy`` for each row of ``vectors`` (n_images, dim)."""
    folder = Path(folder)
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != len(names):
        raise ConfigError(f"expected vectors of shape ({len(names)}, dim), found {vectors.shape}")
    folder.mkdir(parents=True, exist_ok=True)
    for name, v in zip(names, vectors, strict=True):
        np.save(folder / f"{name}.npy", np.asarray(v, np.float32))
    return folder


@dataclass(frozen=True)
class CandidateBank:
    """Candidate names and their unit-norm embeddings, shape (n_candidates, dim)."""

    names: list[str]
    unit: np.ndarray
    source: str = ""

    @classmethod
    def load(cls, folder: str | Path) -> CandidateBank:
        try:
            bank = load_embedding_bank(folder)
        except ConfigError as err:
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
