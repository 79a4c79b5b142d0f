"""Ranking candidate images by cosine similarity, and the scores built on it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bci.retrieval import top_k


def unit_rows(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)


def retrieve(embeddings: np.ndarray, bank: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` candidates most similar to each embedding.

    Parameters
    ----------
    embeddings : ndarray, shape (n, F)
    bank : ndarray, shape (n_candidates, F)
    k : int

    Returns
    -------
    indices : ndarray of int64, shape (n, k)
        Rows of ``bank``, most similar first (ties broken by lower index).
    similarities : ndarray of float64, shape (n, k)
        Cosine similarities.
    """
    embeddings, bank = np.atleast_2d(embeddings), np.atleast_2d(bank)
    if embeddings.shape[1] != bank.shape[1]:
        raise ValueError(f"retrieve: embeddings of size {embeddings.shape[1]} cannot be "
                         f"compared with a bank of size {bank.shape[1]}")
    if not 1 <= int(k) <= bank.shape[0]:
        raise ValueError(f"retrieve: expected 1 ≤ k ≤ {bank.shape[0]} candidates, found {k}")
    sim = unit_rows(embeddings) @ unit_rows(bank).T
    idx = np.argsort(-sim, axis=1, kind="stable")[:, : int(k)]
    return idx, np.take_along_axis(sim, idx, axis=1)


def top_k_accuracy(embeddings: np.ndarray, bank: np.ndarray, targets: np.ndarray, *,
                   k: int = 5) -> float:
    """Share of embeddings whose true candidate (row ``targets[i]`` of ``bank``) is among
    the ``k`` most similar."""
    idx, _ = retrieve(embeddings, bank, k)
    return float((idx == np.asarray(targets)[:, None]).any(axis=1).mean())


def bank_targets(Y: np.ndarray, bank: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The bank (default: distinct rows of ``Y``) and the row of each ``Y`` in it."""
    Y = np.asarray(Y, np.float64)
    if bank is None:
        bank, targets = np.unique(Y, axis=0, return_inverse=True)
        return bank, targets.ravel()
    bank = np.asarray(bank, np.float64)
    d = ((Y[:, None, :] - bank[None]) ** 2).sum(-1)
    targets = d.argmin(1)
    scale = max(float(np.abs(bank).max()), 1e-30)
    if not np.all(d[np.arange(len(Y)), targets] <= (1e-6 * scale) ** 2 * Y.shape[1]):
        raise ValueError("score: every row of Y must be one of the bank's candidates")
    return bank, targets


def top_candidates(scores: np.ndarray, names: Sequence[str], k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` best candidates of one decision: ``[(name, score), …]``, best first.

    ``scores`` is a decision's output over the candidates (probabilities from the bank
    graph, or similarities).
    """
    scores = np.asarray(scores, np.float64).ravel()
    if scores.size != len(names):
        raise ValueError(f"top_candidates: {scores.size} scores for {len(names)} names")
    return top_k(scores, [str(n) for n in names], int(k))


def retrieval_curve(
    scores: np.ndarray, window_onsets: np.ndarray, event_onsets: np.ndarray,
    event_targets: np.ndarray, *, k: int = 5, max_lag: float = 1.0, resolution: float = 0.05,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k retrieval against the shift between a sliding window and image onsets.

    A window trained as ``tmin … tmax`` around an onset assumes one at ``last sample −
    tmax``; its *lag* to an actual onset is that assumed onset minus the actual one.
    Every (window, event) pair within ``max_lag`` counts once, binned by lag.

    Parameters
    ----------
    scores : ndarray, shape (n_windows, n_candidates)
        Higher is better (probabilities, logits or similarities).
    window_onsets : ndarray, shape (n_windows,)
        Onset each window assumes, seconds.
    event_onsets : ndarray, shape (n_events,)
    event_targets : ndarray of int, shape (n_events,)
        Candidate (column of ``scores``) shown at each event.
    k : int
    max_lag, resolution : float
        Seconds.

    Returns
    -------
    lags : ndarray, shape (n_bins,)
        Bin centres, seconds, from ``−max_lag`` to ``max_lag``.
    accuracy : ndarray, shape (n_bins,)
        Top-k accuracy in each bin (NaN where no window fell).
    counts : ndarray of int, shape (n_bins,)
    """
    scores = np.asarray(scores, np.float64)
    top = np.argsort(-scores, axis=1, kind="stable")[:, : int(k)]
    lags = np.arange(-max_lag, max_lag + resolution / 2, resolution)
    hits = np.zeros(lags.size)
    counts = np.zeros(lags.size, np.int64)
    for onset, target in zip(np.asarray(event_onsets), np.asarray(event_targets), strict=True):
        lag = np.asarray(window_onsets) - onset
        near = np.abs(lag) <= max_lag + resolution / 2
        b = np.clip(np.round((lag[near] + max_lag) / resolution).astype(int), 0, lags.size - 1)
        np.add.at(counts, b, 1)
        np.add.at(hits, b, (top[near] == target).any(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return lags, hits / counts, counts
