"""MEG → image retrieval (Benchetrit, Banville & King, ICLR 2024) with the brain module of
Défossez, Caucheteux, Rapin, Kabeli & King (Nat. Mach. Intell. 2023).

A window of MEG around an image onset (−0.5 … 1.0 s at 120 Hz, 180 samples) is mapped
to an embedding of the image by a pretrained vision model (CLIP or DINOv2; here read
from ``.npy`` files, see :mod:`bci.datasets.meg`); the image is then retrieved among a bank of
candidates by cosine similarity.

Brain module (:class:`BrainModule`), for windows ``(batch, n_sensors, n_times)``:

=====================================================  ======================================
stage                                                  output
=====================================================  ======================================
spatial attention: Fourier embedding of each sensor's  V virtual channels × T
2-D position (K² frequency pairs, cos and sin: 2K²
features), one learned query per virtual channel
(per sensor kind), softmax over sensors; in training
the sensors in a random disc of radius 0.2 are dropped
1×1 convolution, no activation                          V × T
per-subject linear layer (V × V, identity at start)    V × T
``n_blocks`` residual dilated blocks: two k=3          H × T
convolutions (dilations 2^(2i mod 5), 2^(2i+1 mod 5)),
each batch norm + GELU with a residual connection
(not the very first), then a k=3 convolution to 2H
and a GLU
1×1 conv to 2H, GELU, 1×1 conv to F'                   F' × T
learned affine aggregation over time (T → 1)           F'
two heads, LayerNorm → GELU → Linear: CLIP, MSE        F each (the image embedding size)
=====================================================  ======================================

Loss: ``λ · CLIP + (1 − λ) · MSE``. CLIP is the symmetric InfoNCE of Radford et al.
(2021) between the CLIP head's outputs and the image embeddings of the batch, cosine
similarities times a learned temperature; windows of the same image count as positives
of each other. MSE regresses the MSE head onto the embeddings standardised per
dimension (so that λ means the same whatever the embedding's scale). Retrieval uses the
CLIP head, as in the paper; the MSE head is what an image generator would be fed.

Preprocessing (baseline over the 0.5 s before onset, robust scaling per channel fitted
on the training windows, clamping at ±20; see :mod:`bci.datasets.meg`) is applied to the
training windows in numpy and sits as fixed layers at the front of the exported graph,
so the runtime feeds the network band-passed, decimated windows in tesla and needs to
know nothing about it.

Sizes
-----
:meth:`BrainModuleConfig.published`: Benchetrit et al. (2024), Appendix A / Table S1,
which keeps Défossez et al.'s spatial attention (V = 270 virtual channels, K = 32 so
2048 position features, dropout radius 0.2), subject layer and blocks (H = 320, kernel
3), with 2 residual blocks instead of Défossez's 5, a projection to F' = 2048 and the
temporal aggregation and two MLP heads. The block count and F' are as we read Table S1
(through its public re-implementations); :meth:`BrainModuleConfig.defossez2023` is the
5-block speech model. :meth:`BrainModuleConfig.small` trains on a laptop CPU.
The training defaults (Adam, learning rate 3·10⁻⁴, batch 128, early stopping on a
validation split, λ = 0.75) are the paper's as we recall them, not checked against its
text here; the paper tunes λ.

Sensor kinds are an extension: Défossez et al.'s MEG data sets had one sensor type (CTF
and KIT axial gradiometers), so one query per virtual channel sufficed. On Elekta/MEGIN
systems a magnetometer and two planar gradiometers share each location; with one query
they would get the same weight in every virtual channel. Here each kind has its own
queries (:data:`bci.datasets.meg.KINDS`); with one kind this is exactly the published layer.

Exported graph (:meth:`MEGRetrieval.to_onnx`): one subject's montage, its positions
baked in as the softmax weights they produce, input ``(batch, n_sensors, n_times)`` in
T (T/m for gradiometers), output the CLIP-head embedding ``(batch, F)`` — or, given a
candidate bank, the logits of the candidates ``(batch, n_candidates)`` (temperature ×
cosine), which the runtime turns into a probability per candidate.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from bci.decoders.torch_classifier import BestEpoch, seeded
from bci.decoders.torch_export import export_module
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from torch import nn

from bci.datasets.meg import (
    CLAMP,
    EPOCH_TMAX,
    EPOCH_TMIN,
    H_FREQ,
    KINDS,
    L_FREQ,
    MEG_SFREQ,
    Montage,
    RobustClamp,
    baseline_correct,
    meg_preprocessing,
)

#: The ``bci`` spec's paradigm for these decoders. bci.spec knows no "meg-retrieval";
#: the task is named in ``extra["task"]``.
PARADIGM = "meg"
#: Windows per forward pass outside training.
PREDICT_BATCH = 256


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrainModuleConfig:
    """Sizes of the brain module.

    Attributes
    ----------
    n_virtual : int
        Virtual channels out of the spatial attention (D1; 270 published).
    fourier_freqs : int
        K: frequencies per axis of the position embedding, 2K² features (32 → 2048).
    dropout_radius : float
        Radius of the disc of sensors dropped in training, in the unit square (0.2).
    hidden : int
        Channels of the residual blocks (D2; 320).
    n_blocks : int
        Residual dilated blocks (2 in Benchetrit et al., 5 in Défossez et al.).
    kernel_size : int
        Odd temporal kernel of the block convolutions (3).
    features : int
        F', channels before the temporal aggregation (2048).
    conv_dropout : float
        Dropout after each block (0: none, as published).
    """

    n_virtual: int = 270
    fourier_freqs: int = 32
    dropout_radius: float = 0.2
    hidden: int = 320
    n_blocks: int = 2
    kernel_size: int = 3
    features: int = 2048
    conv_dropout: float = 0.0

    @classmethod
    def published(cls) -> BrainModuleConfig:
        """Benchetrit et al. (2024) sizes (see the module docstring for the sources)."""
        return cls()

    @classmethod
    def defossez2023(cls) -> BrainModuleConfig:
        """Défossez et al. (2023): five blocks, the rest as :meth:`published`."""
        return cls(n_blocks=5)

    @classmethod
    def small(cls) -> BrainModuleConfig:
        """A few ten thousand parameters: trains in seconds on one CPU core."""
        return cls(n_virtual=32, fourier_freqs=4, hidden=32, n_blocks=2, features=64)

    @classmethod
    def resolve(cls, config: str | BrainModuleConfig | Mapping[str, Any]) -> BrainModuleConfig:
        """A preset name (``"published"``, ``"defossez2023"``, ``"small"``), a mapping of
        fields, or a config."""
        if isinstance(config, BrainModuleConfig):
            out = config
        elif isinstance(config, str):
            presets = {"published": cls.published, "defossez2023": cls.defossez2023,
                       "small": cls.small}
            if config not in presets:
                raise ValueError(f"config: expected one of {sorted(presets)}, found {config!r}")
            out = presets[config]()
        elif isinstance(config, Mapping):
            unknown = sorted(set(config) - set(cls.__dataclass_fields__))
            if unknown:
                raise ValueError(f"config: unknown fields {unknown}; expected some of "
                                 f"{sorted(cls.__dataclass_fields__)}")
            out = cls(**config)
        else:
            raise ValueError(f"config: expected a preset name, a mapping or a "
                             f"BrainModuleConfig, found {config!r}")
        out.validate()
        return out

    def validate(self) -> None:
        for key in ("n_virtual", "fourier_freqs", "hidden", "n_blocks", "features"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"config.{key}: expected a positive integer, found {value!r}")
        if not isinstance(self.kernel_size, int) or self.kernel_size < 1 or \
                self.kernel_size % 2 == 0:
            raise ValueError(f"config.kernel_size: expected an odd positive integer, found "
                             f"{self.kernel_size!r}")
        if not 0 <= self.dropout_radius < 1.5 or not 0 <= self.conv_dropout < 1:
            raise ValueError(f"config: expected 0 ≤ dropout_radius < 1.5 and 0 ≤ conv_dropout "
                             f"< 1, found {self.dropout_radius}, {self.conv_dropout}")


# --- network ------------------------------------------------------------------------------


class FourierEmbedding(nn.Module):
    """Fourier features of 2-D positions in ``[0, 1]²`` (Défossez et al. 2023).

    ``cos`` and ``sin`` of ``2π (k x + l y) / w`` for ``k, l`` in ``0 … K−1``, with
    positions shifted by a margin of 0.2 and ``w = 1.4``, so the features are not
    periodic over the square.

    Shapes
    ------
    input : (..., 2); output : (..., 2 K²)
    """

    def __init__(self, n_freqs: int, *, margin: float = 0.2) -> None:
        super().__init__()
        k = torch.arange(n_freqs, dtype=torch.float32)
        kx, ky = torch.meshgrid(k, k, indexing="ij")
        freqs = 2 * math.pi / (1 + 2 * margin) * torch.stack([kx.flatten(), ky.flatten()], 1)
        self.register_buffer("freqs", freqs)
        self.margin = float(margin)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        phase = (positions + self.margin) @ self.freqs.T
        return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)


class SpatialAttention(nn.Module):
    """Sensors → virtual channels, weights from the sensors' positions and kinds.

    Parameters
    ----------
    n_virtual, n_freqs : int
    n_kinds : int
        Sensor kinds with their own queries.
    dropout_radius : float
        In training, each window loses the sensors within this distance of a random
        point of the unit square (unless that would remove them all).
    """

    def __init__(self, n_virtual: int, n_freqs: int, *, n_kinds: int = len(KINDS),
                 dropout_radius: float = 0.2) -> None:
        super().__init__()
        self.embedding = FourierEmbedding(n_freqs)
        dim = 2 * n_freqs**2
        self.queries = nn.Parameter(torch.randn(n_kinds, n_virtual, dim) / math.sqrt(dim))
        self.dropout_radius = float(dropout_radius)

    def scores(self, positions: torch.Tensor, kinds: torch.Tensor) -> torch.Tensor:
        """Attention logits of each virtual channel over the sensors of montages.

        Parameters
        ----------
        positions : tensor, shape (n_montages, n_sensors, 2)
        kinds : long tensor, shape (n_montages, n_sensors)

        Returns
        -------
        scores : tensor, shape (n_montages, n_virtual, n_sensors)
        """
        emb = self.embedding(positions)  # (M, C, E)
        per_kind = torch.einsum("mce,kve->mkvc", emb, self.queries)
        index = kinds[:, None, None, :].expand(-1, 1, per_kind.shape[2], -1)
        return per_kind.gather(1, index)[:, 0]

    def weights(self, scores: torch.Tensor, valid: torch.Tensor,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """Softmax over the valid (and, in training, not dropped) sensors.

        Parameters
        ----------
        scores : tensor, shape (batch, n_virtual, n_sensors)
        valid : bool tensor, shape (batch, n_sensors)
            False for padding (subjects with fewer sensors).
        positions : tensor, shape (batch, n_sensors, 2) | None
            Needed for the spatial dropout in training.
        """
        keep = valid
        if self.training and self.dropout_radius > 0 and positions is not None:
            centre = torch.rand(positions.shape[0], 1, 2, device=positions.device)
            dropped = (positions - centre).norm(dim=-1) <= self.dropout_radius
            keep_more = valid & ~dropped
            # a disc covering every sensor of a small montage would leave nothing
            keep = torch.where(keep_more.any(dim=1, keepdim=True), keep_more, valid)
        offset = torch.zeros_like(keep, dtype=scores.dtype).masked_fill(~keep, float("-inf"))
        return torch.softmax(scores + offset[:, None, :], dim=-1)


class DilatedBlock(nn.Module):
    """One residual dilated block of Défossez et al. (2023), block index ``index``."""

    def __init__(self, in_channels: int, hidden: int, *, kernel_size: int, index: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        d1, d2 = 2 ** ((2 * index) % 5), 2 ** ((2 * index + 1) % 5)
        half = kernel_size // 2
        self.conv1 = nn.Conv1d(in_channels, hidden, kernel_size, padding=d1 * half, dilation=d1)
        self.norm1 = nn.BatchNorm1d(hidden)
        self.conv2 = nn.Conv1d(hidden, hidden, kernel_size, padding=d2 * half, dilation=d2)
        self.norm2 = nn.BatchNorm1d(hidden)
        self.gate = nn.Conv1d(hidden, 2 * hidden, kernel_size, padding=half)
        self.residual = in_channels == hidden
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.norm1(self.conv1(x)))
        x = x + y if self.residual else y
        x = x + F.gelu(self.norm2(self.conv2(x)))
        return self.dropout(F.glu(self.gate(x), dim=1))


class Projector(nn.Module):
    """An output head: LayerNorm → GELU → Linear."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_features)
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(F.gelu(self.norm(x)))


class BrainModule(nn.Module):
    """The brain module: preprocessed MEG windows → CLIP and MSE embeddings.

    Parameters
    ----------
    config : BrainModuleConfig
    n_times : int
        Samples per window (180 for 1.5 s at 120 Hz).
    n_subjects : int
        Subject layers (one V × V matrix each).
    embedding_dim : int
        F, the size of the image embeddings.

    Shapes
    ------
    :meth:`forward` takes ``x`` (batch, n_sensors, n_times), ``subject`` (batch,), and
    per-subject montages ``positions`` (n_subjects, n_sensors, 2), ``kinds`` and
    ``valid`` (n_subjects, n_sensors); returns two (batch, F) tensors.
    """

    def __init__(self, config: BrainModuleConfig, *, n_times: int, n_subjects: int,
                 embedding_dim: int) -> None:
        super().__init__()
        c = config
        self.config = c
        self.attention = SpatialAttention(c.n_virtual, c.fourier_freqs,
                                          dropout_radius=c.dropout_radius)
        self.merge = nn.Conv1d(c.n_virtual, c.n_virtual, 1)
        self.subject_layers = nn.Parameter(torch.eye(c.n_virtual).repeat(n_subjects, 1, 1))
        self.blocks = nn.Sequential(*[
            DilatedBlock(c.n_virtual if i == 0 else c.hidden, c.hidden,
                         kernel_size=c.kernel_size, index=i, dropout=c.conv_dropout)
            for i in range(c.n_blocks)
        ])
        self.projection = nn.Sequential(
            nn.Conv1d(c.hidden, 2 * c.hidden, 1), nn.GELU(),
            nn.Conv1d(2 * c.hidden, c.features, 1),
        )
        self.aggregate = nn.Linear(n_times, 1)
        self.clip_head = Projector(c.features, embedding_dim)
        self.mse_head = Projector(c.features, embedding_dim)
        # CLIP's learned temperature, starting at 1/0.07 (Radford et al. 2021)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def temperature(self) -> torch.Tensor:
        """The factor on cosine similarities (at most 100, as CLIP)."""
        return self.logit_scale.exp().clamp(max=100.0)

    def trunk(self, virtual: torch.Tensor, subject_matrix: torch.Tensor) -> torch.Tensor:
        """Virtual channels (batch, V, T) and subject matrices (batch, V, V) → (batch, F')."""
        x = self.merge(virtual)
        x = torch.einsum("bvt,bvw->bwt", x, subject_matrix)
        x = self.projection(self.blocks(x))
        return self.aggregate(x)[..., 0]

    def forward(self, x: torch.Tensor, subject: torch.Tensor, positions: torch.Tensor,
                kinds: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.attention.scores(positions, kinds)[subject]
        weights = self.attention.weights(scores, valid[subject], positions[subject])
        virtual = torch.einsum("bvc,bct->bvt", weights, x)
        h = self.trunk(virtual, self.subject_layers[subject])
        return self.clip_head(h), self.mse_head(h)


# --- losses -------------------------------------------------------------------------------


def clip_loss(pred: torch.Tensor, target: torch.Tensor, *, temperature: torch.Tensor | float,
              groups: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric contrastive loss between predictions and targets of one batch.

    Parameters
    ----------
    pred, target : tensor, shape (batch, F)
    temperature : tensor | float
        Factor on the cosine similarities.
    groups : long tensor, shape (batch,) | None
        Image of each window: windows of one image are positives of each other, with
        soft targets spread over them (default: only the diagonal). When the image's
        embedding is simply repeated the two give the same loss; they differ when one
        image has several embeddings (e.g. of several crops).

    Returns
    -------
    loss : scalar tensor
        Mean of the brain→image and image→brain cross-entropies.
    """
    logits = temperature * F.normalize(pred, dim=-1) @ F.normalize(target, dim=-1).T
    n = logits.shape[0]
    if groups is None:
        same = torch.eye(n, device=logits.device, dtype=logits.dtype)
    else:
        same = (groups[:, None] == groups[None, :]).to(logits.dtype)
    rows = -(same / same.sum(1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(1).mean()
    cols = -(same / same.sum(0, keepdim=True) * F.log_softmax(logits, dim=0)).sum(0).mean()
    return (rows + cols) / 2


def retrieval_loss(clip_out: torch.Tensor, mse_out: torch.Tensor, target: torch.Tensor,
                   target_std: torch.Tensor, *, lam: float, temperature: torch.Tensor | float,
                   groups: torch.Tensor | None = None) -> torch.Tensor:
    """``λ · CLIP(clip_out, target) + (1 − λ) · MSE(mse_out, target_std)``.

    ``target_std`` is ``target`` standardised per dimension with training statistics.
    """
    loss = 0.0
    if lam > 0:
        loss = lam * clip_loss(clip_out, target, temperature=temperature, groups=groups)
    if lam < 1:
        loss = loss + (1 - lam) * F.mse_loss(mse_out, target_std)
    return loss


# --- retrieval ----------------------------------------------------------------------------


def _unit(a: np.ndarray) -> np.ndarray:
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
    sim = _unit(embeddings) @ _unit(bank).T
    idx = np.argsort(-sim, axis=1, kind="stable")[:, : int(k)]
    return idx, np.take_along_axis(sim, idx, axis=1)


def top_k_accuracy(embeddings: np.ndarray, bank: np.ndarray, targets: np.ndarray, *,
                   k: int = 5) -> float:
    """Share of embeddings whose true candidate (row ``targets[i]`` of ``bank``) is among
    the ``k`` most similar."""
    idx, _ = retrieve(embeddings, bank, k)
    return float((idx == np.asarray(targets)[:, None]).any(axis=1).mean())


def _bank_targets(Y: np.ndarray, bank: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
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
    order = np.argsort(-scores, kind="stable")[: int(k)]
    return [(str(names[i]), float(scores[i])) for i in order]


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


# --- estimators ---------------------------------------------------------------------------


def _as_montage(value: Any, n_sensors: int | None, who: str) -> Montage:
    if isinstance(value, Montage):
        montage = value
    else:
        pos = np.asarray(value, np.float64)
        if pos.ndim != 2 or pos.shape[1] != 2:
            raise ValueError(f"{who}: expected positions as a Montage or an array (n_sensors, "
                             f"2), found shape {pos.shape}")
        montage = Montage([f"S{i:03d}" for i in range(pos.shape[0])], pos)
    if n_sensors is not None and len(montage) != n_sensors:
        raise ValueError(f"{who}: windows have {n_sensors} sensors, the montage "
                         f"{len(montage)}")
    return montage


class _WindowsMixin:
    """Input checks shared by the estimators."""

    def _n_baseline(self) -> int:
        if not float(self.sfreq) > 0:
            raise ValueError(f"{type(self).__name__}: sfreq must be positive, found {self.sfreq}")
        return max(0, round(-float(self.tmin) * float(self.sfreq)))

    def _windows(self, X: Any) -> list[np.ndarray]:
        who = type(self).__name__
        if isinstance(X, np.ndarray) and X.ndim == 3:
            items = list(X)
        elif isinstance(X, Sequence) and not isinstance(X, np.ndarray | str):
            items = [np.asarray(x) for x in X]
        else:
            raise ValueError(f"{who}: expected windows (n_windows, n_sensors, n_times) or a "
                             f"list of (n_sensors, n_times) arrays, found "
                             f"{getattr(X, 'shape', type(X).__name__)}")
        if not items:
            raise ValueError(f"{who}: expected at least one window, found none")
        for i, x in enumerate(items):
            if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
                raise ValueError(f"{who}: window {i}: expected a float array (n_sensors, "
                                 f"n_times), found {x.dtype} {x.shape}")
            if not np.isfinite(x).all():
                raise ValueError(f"{who}: window {i} holds {int((~np.isfinite(x)).sum())} "
                                 f"NaN/Inf samples")
        times = {x.shape[1] for x in items}
        if len(times) > 1:
            raise ValueError(f"{who}: expected windows of one length, found {sorted(times)}")
        return items

    @staticmethod
    def _targets(Y: Any, n: int, who: str) -> np.ndarray:
        Y = np.asarray(Y, np.float64)
        if Y.ndim != 2 or Y.shape[0] != n:
            raise ValueError(f"{who}: expected one embedding per window, shape ({n}, F), "
                             f"found {Y.shape}")
        if not np.isfinite(Y).all():
            raise ValueError(f"{who}: embeddings hold NaN/Inf")
        return Y


class MEGRetrieval(_WindowsMixin, BaseEstimator):
    """The brain module trained on ``λ · CLIP + (1 − λ) · MSE``, scikit-learn style.

    Parameters
    ----------
    config : str | BrainModuleConfig | mapping
        ``"small"`` (default), ``"published"``, ``"defossez2023"`` or explicit sizes.
    lam : float
        λ, the weight of the CLIP loss.
    sfreq : float
        Rate of the windows, Hz (120 as published).
    tmin : float
        Start of the windows relative to onset, seconds; the samples before onset are the
        baseline (0.5 s as published).
    clamp : float
        Robust-scaled values are clipped to ± this.
    lr, weight_decay : float
        Adam (decoupled weight decay when > 0, AdamW).
    batch_size : int
        Windows per update; also the CLIP loss's pool of negatives.
    epochs, patience : int
        Maximum passes; epochs without a lower validation loss before stopping.
    validation_fraction : float
        Share of the *images* held out to pick the epoch (0: train on all, keep the last).
    seed : int
        Seeds initialisation, dropout, shuffling and the split; the caller's torch random
        state is left as it was.
    device : str

    Attributes
    ----------
    module_ : BrainModule
    config_ : BrainModuleConfig
    subjects_ : list
        Subject labels, in the order of the subject layers.
    montages_ : dict
        Subject → :class:`bci.datasets.meg.Montage`.
    scalers_ : dict
        Subject → fitted :class:`bci.datasets.meg.RobustClamp`.
    n_times_, embedding_dim_ : int
    y_mean_, y_std_ : ndarray, shape (F,)
        Standardisation of the MSE head's targets.
    history_ : list of dict
        Per epoch: ``train_loss`` and, with a validation split, ``val_loss``.
    best_epoch_ : int
    """

    def __init__(
        self, *, config: str | BrainModuleConfig | Mapping[str, Any] = "small",
        lam: float = 0.75, sfreq: float = MEG_SFREQ, tmin: float = EPOCH_TMIN,
        clamp: float = CLAMP, lr: float = 3e-4, weight_decay: float = 0.0,
        batch_size: int = 128, epochs: int = 50, patience: int = 10,
        validation_fraction: float = 0.1, seed: int = 0, device: str = "cpu",
    ) -> None:
        self.config = config
        self.lam = lam
        self.sfreq = sfreq
        self.tmin = tmin
        self.clamp = clamp
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.device = device

    # --- data -----------------------------------------------------------------------------

    def _subject_labels(self, subjects: Any, n: int) -> np.ndarray:
        if subjects is None:
            return np.zeros(n, dtype=object)
        s = np.asarray(subjects, dtype=object)
        if s.shape != (n,):
            raise ValueError(f"MEGRetrieval: expected one subject per window, shape ({n},), "
                             f"found {s.shape}")
        return s

    def _montages(self, positions: Any, subjects: np.ndarray, items: list[np.ndarray]
                  ) -> dict[Any, Montage]:
        out: dict[Any, Montage] = {}
        for s in dict.fromkeys(subjects.tolist()):
            n_sensors = {items[i].shape[0] for i in np.flatnonzero(subjects == s)}
            if len(n_sensors) > 1:
                raise ValueError(f"MEGRetrieval: subject {s!r} has windows with "
                                 f"{sorted(n_sensors)} sensors; one montage per subject")
            if isinstance(positions, Mapping):
                if s not in positions:
                    raise ValueError(f"MEGRetrieval: no positions for subject {s!r}; "
                                     f"found subjects {list(positions)}")
                value = positions[s]
            else:
                value = positions
            out[s] = _as_montage(value, n_sensors.pop(), f"MEGRetrieval: subject {s!r}")
        return out

    def _prepare(self, items: list[np.ndarray], subjects: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Baseline, scale and clamp each subject's windows; pad to the widest montage."""
        n_b = self._n_baseline()
        width = max(len(m) for m in self.montages_.values())
        out = np.zeros((len(items), width, self.n_times_), np.float32)
        index = np.empty(len(items), np.int64)
        lookup = {s: i for i, s in enumerate(self.subjects_)}
        for s in dict.fromkeys(subjects.tolist()):
            if s not in lookup:
                raise ValueError(f"MEGRetrieval: subject {s!r} was not in fit (subjects "
                                 f"{self.subjects_})")
            rows = np.flatnonzero(subjects == s)
            block = np.stack([items[i] for i in rows])
            m = self.montages_[s]
            if block.shape[1] != len(m):
                raise ValueError(f"MEGRetrieval: subject {s!r} has {len(m)} sensors, found "
                                 f"windows with {block.shape[1]}")
            out[rows, : len(m)] = self.scalers_[s].transform(baseline_correct(block, n_b))
            index[rows] = lookup[s]
        return out, index

    def _montage_tensors(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        width = max(len(m) for m in self.montages_.values())
        S = len(self.subjects_)
        pos = np.zeros((S, width, 2), np.float32)
        kinds = np.zeros((S, width), np.int64)
        valid = np.zeros((S, width), bool)
        for i, s in enumerate(self.subjects_):
            m = self.montages_[s]
            pos[i, : len(m)], kinds[i, : len(m)], valid[i, : len(m)] = m.positions, m.kinds, True
        return tuple(torch.from_numpy(a).to(device) for a in (pos, kinds, valid))

    # --- training -------------------------------------------------------------------------

    def fit(self, X: Any, Y: Any, *, subjects: Any = None, positions: Any,
            groups: Any = None) -> MEGRetrieval:
        """Train a freshly initialised brain module.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_sensors, n_times), or list of (n_sensors_i, n_times)
            Band-passed, decimated windows in T (T/m), −0.5 … 1.0 s around onsets; a list
            when subjects have different sensor sets.
        Y : array-like, shape (n_windows, F)
            Embedding of the image shown in each window.
        subjects : array-like, shape (n_windows,) | None
            Subject of each window (any hashable labels); default one subject.
        positions : Montage | ndarray (n_sensors, 2) | mapping subject → either
            Each subject's sensors (:meth:`bci.datasets.meg.Montage.from_info`); a bare
            array means 2-D positions of sensors of one kind.
        groups : array-like, shape (n_windows,) | None
            Image identity of each window; default the distinct rows of ``Y``. Windows
            of one image are positives of each other in the CLIP loss and fall on the
            same side of the validation split.

        Returns
        -------
        self
        """
        config = BrainModuleConfig.resolve(self.config)
        if not 0.0 <= float(self.lam) <= 1.0:
            raise ValueError(f"MEGRetrieval: lam must lie in [0, 1], found {self.lam!r}")
        if not isinstance(self.batch_size, int | np.integer) or self.batch_size < 2:
            raise ValueError(f"MEGRetrieval: batch_size must be an integer ≥ 2 (the CLIP "
                             f"loss needs negatives), found {self.batch_size!r}")
        if not 0.0 <= float(self.validation_fraction) < 1.0:
            raise ValueError(f"MEGRetrieval: validation_fraction must lie in [0, 1), found "
                             f"{self.validation_fraction!r}")
        items = self._windows(X)
        Y = self._targets(Y, len(items), "MEGRetrieval")
        subjects = self._subject_labels(subjects, len(items))
        if groups is None:
            groups = np.unique(Y, axis=0, return_inverse=True)[1].ravel()
        else:
            groups = np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
            if groups.shape != (len(items),):
                raise ValueError(f"MEGRetrieval: expected one group per window, found "
                                 f"{groups.shape}")
        self.config_ = config
        self.n_times_ = int(items[0].shape[1])
        self.embedding_dim_ = int(Y.shape[1])
        self.montages_ = self._montages(positions, subjects, items)
        self.subjects_ = list(self.montages_)
        n_b = self._n_baseline()
        if n_b >= self.n_times_:
            raise ValueError(f"MEGRetrieval: the baseline ({n_b} samples before onset) "
                             f"covers the whole window of {self.n_times_}")
        self.scalers_ = {}
        for s in self.subjects_:
            block = np.stack([items[i] for i in np.flatnonzero(subjects == s)])
            self.scalers_[s] = RobustClamp(clamp=float(self.clamp)).fit(
                baseline_correct(block, n_b))
        Xp, subj = self._prepare(items, subjects)
        self.y_mean_ = Y.mean(0)
        self.y_std_ = np.maximum(Y.std(0), 1e-12)
        with seeded(self.seed, self.device):
            self.module_ = BrainModule(config, n_times=self.n_times_,
                                       n_subjects=len(self.subjects_),
                                       embedding_dim=self.embedding_dim_)
            self.history_, self.best_epoch_ = self._train(Xp, subj, Y, groups)
        return self

    def _split(self, groups: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        ids = np.unique(groups)
        n_val = round(float(self.validation_fraction) * ids.size)
        if self.validation_fraction > 0:
            n_val = min(max(n_val, 2), ids.size - 2)
        if n_val <= 0:
            return np.arange(groups.size), np.zeros(0, np.int64)
        held = rng.permutation(ids)[:n_val]
        val = np.isin(groups, held)
        return np.flatnonzero(~val), np.flatnonzero(val)

    def _train(self, X: np.ndarray, subj: np.ndarray, Y: np.ndarray, groups: np.ndarray
               ) -> tuple[list[dict[str, float]], int]:
        rng = np.random.default_rng(int(self.seed))
        train_idx, val_idx = self._split(groups, rng)
        device = torch.device(self.device)
        module = self.module_.to(device)
        pos, kinds, valid = self._montage_tensors(device)
        Xt = torch.from_numpy(X).to(device)
        St = torch.from_numpy(subj).to(device)
        Yt = torch.from_numpy(Y.astype(np.float32)).to(device)
        Yz = torch.from_numpy(((Y - self.y_mean_) / self.y_std_).astype(np.float32)).to(device)
        Gt = torch.from_numpy(groups.astype(np.int64)).to(device)
        decay = [p for n, p in module.named_parameters() if p.ndim > 1 and n != "subject_layers"]
        rest = [p for n, p in module.named_parameters() if p.ndim <= 1 or n == "subject_layers"]
        opt_cls = torch.optim.AdamW if self.weight_decay else torch.optim.Adam
        optimizer = opt_cls([{"params": decay, "weight_decay": float(self.weight_decay)},
                             {"params": rest, "weight_decay": 0.0}], lr=float(self.lr))
        size = int(self.batch_size)
        lam = float(self.lam)

        def loss_of(idx: torch.Tensor) -> torch.Tensor:
            # validation: forward in slices (the set can be large), one loss over all of it
            parts = (idx,) if module.training else torch.split(idx, PREDICT_BATCH)
            outs = [module(Xt[part], St[part], pos, kinds, valid) for part in parts]
            clip_out = torch.cat([o[0] for o in outs])
            mse_out = torch.cat([o[1] for o in outs])
            return retrieval_loss(clip_out, mse_out, Yt[idx], Yz[idx], lam=lam,
                                  temperature=module.temperature(), groups=Gt[idx])

        history: list[dict[str, float]] = []
        best = BestEpoch(self.patience)
        for epoch in range(1, int(self.epochs) + 1):
            module.train()
            order = rng.permutation(train_idx)
            total, seen = 0.0, 0
            for start in range(0, order.size, size):
                chunk = order[start:start + size]
                if chunk.size < 2:  # batch norm and the CLIP loss need two windows
                    continue
                idx = torch.from_numpy(chunk).to(device)
                optimizer.zero_grad()
                loss = loss_of(idx)
                loss.backward()
                optimizer.step()
                total += loss.item() * chunk.size
                seen += chunk.size
            record = {"epoch": epoch, "train_loss": total / max(seen, 1)}
            if val_idx.size:
                module.eval()
                with torch.no_grad():
                    val = float(loss_of(torch.from_numpy(val_idx).to(device)))
                record["val_loss"] = val
            history.append(record)
            if val_idx.size and best.update(epoch, val, module):
                break
        best_epoch = best.restore(module, len(history))
        module.eval()
        return history, best_epoch

    # --- inference ------------------------------------------------------------------------

    def transform(self, X: Any, *, subjects: Any = None, head: str = "clip") -> np.ndarray:
        """Embeddings of windows.

        Parameters
        ----------
        X, subjects
            As in :meth:`fit` (subjects seen in fit only).
        head : str
            ``"clip"`` (retrieval) or ``"mse"`` (regression onto the embeddings, in
            their original scale).

        Returns
        -------
        embeddings : ndarray of float64, shape (n_windows, F)
        """
        check_is_fitted(self, "module_")
        if head not in ("clip", "mse"):
            raise ValueError(f"MEGRetrieval: head must be 'clip' or 'mse', found {head!r}")
        items = self._windows(X)
        if items[0].shape[1] != self.n_times_:
            raise ValueError(f"MEGRetrieval: expected windows of {self.n_times_} samples (as "
                             f"in fit), found {items[0].shape[1]}")
        Xp, subj = self._prepare(items, self._subject_labels(subjects, len(items)))
        device = next(self.module_.parameters()).device
        pos, kinds, valid = self._montage_tensors(device)
        self.module_.eval()
        outs = []
        with torch.no_grad():
            for i in range(0, len(Xp), PREDICT_BATCH):
                x = torch.from_numpy(Xp[i:i + PREDICT_BATCH]).to(device)
                s = torch.from_numpy(subj[i:i + PREDICT_BATCH]).to(device)
                clip_out, mse_out = self.module_(x, s, pos, kinds, valid)
                outs.append((clip_out if head == "clip" else mse_out).cpu().numpy())
        out = np.concatenate(outs).astype(np.float64)
        return out if head == "clip" else out * self.y_std_ + self.y_mean_

    def score(self, X: Any, Y: Any, *, subjects: Any = None, bank: np.ndarray | None = None,
              k: int = 5) -> float:
        """Top-``k`` retrieval accuracy.

        Parameters
        ----------
        X, subjects
            As in :meth:`transform`.
        Y : array-like, shape (n_windows, F)
            True embedding of each window; each must be a row of ``bank``.
        bank : ndarray, shape (n_candidates, F) | None
            The candidates; default the distinct rows of ``Y``. Chance is ``k /
            n_candidates``.
        k : int
        """
        items = self._windows(X)
        Y = self._targets(Y, len(items), "MEGRetrieval")
        bank, targets = _bank_targets(Y, bank)
        return top_k_accuracy(self.transform(items, subjects=subjects), bank, targets, k=k)

    # --- export ---------------------------------------------------------------------------

    def _subject(self, subject: Any) -> Any:
        check_is_fitted(self, "module_")
        if subject is None:
            if len(self.subjects_) != 1:
                raise ValueError(f"MEGRetrieval: name the subject to export among "
                                 f"{self.subjects_}")
            return self.subjects_[0]
        if subject not in self.montages_:
            raise ValueError(f"MEGRetrieval: subject {subject!r} was not in fit "
                             f"({self.subjects_})")
        return subject

    def inference_module(self, *, subject: Any = None, bank: np.ndarray | None = None,
                         head: str = "clip") -> nn.Module:
        """The inference path for one subject as a torch module (what is exported).

        Parameters
        ----------
        subject : hashable | None
            Default the only subject.
        bank : ndarray, shape (n_candidates, F) | None
            Candidates: the module then returns their logits.
        head : str
            ``"clip"`` or ``"mse"`` (de-standardised); ignored with a bank (CLIP).

        Returns
        -------
        module : torch.nn.Module
            ``(batch, n_sensors, n_times)`` windows in T (T/m) → ``(batch, F)``
            embeddings or ``(batch, n_candidates)`` logits, on the CPU, in eval mode.
        """
        s = self._subject(subject)
        return _MontageGraph(self, s, bank=bank, head=head)

    def to_onnx(self, *, subject: Any = None, bank: np.ndarray | None = None,
                head: str = "clip") -> onnx.ModelProto:
        """:meth:`inference_module` as one ONNX graph (input ``"x"``, dynamic batch).

        Output ``"embedding"`` (batch, F), or ``"logits"`` (batch, n_candidates) with a
        ``bank``.
        """
        s = self._subject(subject)
        graph = self.inference_module(subject=s, bank=bank, head=head)
        name = "logits" if bank is not None else "embedding"
        return export_module(graph, (len(self.montages_[s]), self.n_times_),
                             output_names=(name,))

    def decoder_spec(
        self, *, stream_sfreq: float, subject: Any = None, candidates: Sequence[str] | None = None,
        bank_path: str | None = None, l_freq: float = L_FREQ, h_freq: float = H_FREQ,
        step: float | None = None, name: str = "meg-retrieval",
    ) -> Any:
        """The ``bci`` spec of the exported graph.

        Parameters
        ----------
        stream_sfreq : float
            Rate of the MEG stream (an integer multiple of ``sfreq``).
        subject : hashable | None
        candidates : sequence of str | None
            Names of the bank's candidates when the graph holds the bank (output
            ``logits``, one class per candidate); else the graph outputs embeddings.
        bank_path : str | None
            Folder of ``.npy`` candidate embeddings, stored in ``extra["bank"]`` for the
            consumer of embedding decisions.
        l_freq, h_freq : float
            Band-pass run on the stream before decimation.
        step : float | None
            Sliding-window step, seconds; default an epoch window (``tmin`` … ``tmax``).
        name : str

        Returns
        -------
        spec : bci.spec.DecoderSpec
        """
        from bci.spec import DecoderSpec, WindowSpec

        s = self._subject(subject)
        tmax = float(self.tmin) + self.n_times_ / float(self.sfreq)
        window = (WindowSpec(mode="epoch", tmin=float(self.tmin), tmax=tmax) if step is None
                  else WindowSpec(mode="sliding", length=tmax - float(self.tmin),
                                  step=float(step)))
        extra = {
            "task": "retrieval", "head": "clip", "embedding_dim": self.embedding_dim_,
            "subject": str(s), "model_sfreq": float(self.sfreq), "onset_in_window":
            -float(self.tmin), "config": asdict(self.config_), "lam": float(self.lam),
            "sensor_kinds": self.montages_[s].kinds.tolist(),
            "sensor_positions": self.montages_[s].positions.tolist(),
        }
        if bank_path is not None:
            extra["bank"] = str(bank_path)
        return DecoderSpec(
            paradigm=PARADIGM, classes=[str(c) for c in candidates or []],
            ch_names=list(self.montages_[s].ch_names), sfreq=float(stream_sfreq),
            window=window,
            preprocessing=meg_preprocessing(stream_sfreq, l_freq=l_freq, h_freq=h_freq,
                                            target_sfreq=float(self.sfreq)),
            output="logits" if candidates is not None else "embedding", name=name,
            extra=extra,
        )


class _MontageGraph(nn.Module):
    """One subject's inference path with everything data-dependent made constant.

    The softmax weights of the spatial attention depend on the positions only, so they
    are computed once here (eval mode: no dropout) and stored as a matrix; the baseline,
    the subject's robust scaler and the clamp come first.
    """

    def __init__(self, est: MEGRetrieval, subject: Any, *, bank: np.ndarray | None,
                 head: str) -> None:
        super().__init__()
        if head not in ("clip", "mse"):
            raise ValueError(f"head must be 'clip' or 'mse', found {head!r}")
        m, scaler = est.montages_[subject], est.scalers_[subject]
        net = copy.deepcopy(est.module_).cpu().eval()
        self.n_baseline = est._n_baseline()
        self.clamp = float(est.clamp)
        self.register_buffer("center", torch.tensor(scaler.center_[:, None], dtype=torch.float32))
        self.register_buffer("inv_scale", torch.tensor(1.0 / scaler.scale_[:, None],
                                                       dtype=torch.float32))
        with torch.no_grad():
            pos = torch.tensor(m.positions[None], dtype=torch.float32)
            kinds = torch.tensor(m.kinds[None], dtype=torch.int64)
            scores = net.attention.scores(pos, kinds)
            weights = net.attention.weights(scores, torch.ones(1, len(m), dtype=torch.bool))[0]
        self.register_buffer("spatial", weights.contiguous())
        # the queries and position features are folded into `spatial`; keep them out
        # of the exported graph
        net.attention = nn.Identity()
        index = est.subjects_.index(subject)
        self.register_buffer("subject_matrix", net.subject_layers[index].detach().clone())
        self.net = net
        self.head = head
        self.bank = bank is not None
        if bank is not None:
            bank = np.asarray(bank, np.float64)
            if bank.ndim != 2 or bank.shape[1] != est.embedding_dim_:
                raise ValueError(f"bank: expected shape (n_candidates, {est.embedding_dim_}), "
                                 f"found {bank.shape}")
            unit = torch.tensor(_unit(bank).T, dtype=torch.float32)
            self.register_buffer("candidates", unit * net.temperature().detach())
        else:
            self.register_buffer("y_mean", torch.tensor(est.y_mean_, dtype=torch.float32))
            self.register_buffer("y_std", torch.tensor(est.y_std_, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.n_baseline:
            x = x - x[..., : self.n_baseline].mean(dim=-1, keepdim=True)
        x = torch.clamp((x - self.center) * self.inv_scale, -self.clamp, self.clamp)
        virtual = torch.einsum("vc,bct->bvt", self.spatial, x)
        h = self.net.trunk(virtual, self.subject_matrix.expand(x.shape[0], -1, -1))
        if self.bank:
            return F.normalize(self.net.clip_head(h), dim=-1) @ self.candidates
        if self.head == "clip":
            return self.net.clip_head(h)
        return self.net.mse_head(h) * self.y_std + self.y_mean


class RidgeRetrieval(_WindowsMixin, BaseEstimator):
    """The linear baseline: ridge regression from the flattened window to the embedding.

    The same per-window preprocessing as :class:`MEGRetrieval` (baseline, robust
    scaling, clamp), then every (sensor, time) value is a feature; the penalty is chosen
    among ``alphas`` by efficient leave-one-out (scikit-learn's ``RidgeCV``), shared by
    all embedding dimensions. One subject (montage) per model.

    Parameters
    ----------
    alphas : sequence of float
    sfreq, tmin, clamp : float
        As in :class:`MEGRetrieval`.

    Attributes
    ----------
    scaler_ : bci.datasets.meg.RobustClamp
    ridge_ : sklearn.linear_model.RidgeCV
    alpha_ : float
    n_sensors_, n_times_ : int
    """

    def __init__(self, *, alphas: Sequence[float] = tuple(10.0 ** np.arange(-3, 8)),
                 sfreq: float = MEG_SFREQ, tmin: float = EPOCH_TMIN, clamp: float = CLAMP) -> None:
        self.alphas = alphas
        self.sfreq = sfreq
        self.tmin = tmin
        self.clamp = clamp

    def _features(self, X: Any, *, fit: bool) -> np.ndarray:
        items = self._windows(X)
        shapes = {x.shape for x in items}
        if len(shapes) > 1:
            raise ValueError(f"RidgeRetrieval: expected windows of one shape (one montage), "
                             f"found {sorted(shapes)}")
        block = baseline_correct(np.stack(items), self._n_baseline())
        if fit:
            self.scaler_ = RobustClamp(clamp=float(self.clamp)).fit(block)
            self.n_sensors_, self.n_times_ = block.shape[1:]
        elif block.shape[1:] != (self.n_sensors_, self.n_times_):
            raise ValueError(f"RidgeRetrieval: expected windows of shape "
                             f"{(self.n_sensors_, self.n_times_)}, found {block.shape[1:]}")
        return self.scaler_.transform(block).reshape(len(block), -1).astype(np.float64)

    def fit(self, X: Any, Y: Any) -> RidgeRetrieval:
        """Fit on windows ``(n_windows, n_sensors, n_times)`` and embeddings ``(n, F)``."""
        from sklearn.linear_model import RidgeCV

        Z = self._features(X, fit=True)
        Y = self._targets(Y, len(Z), "RidgeRetrieval")
        self.ridge_ = RidgeCV(alphas=np.asarray(self.alphas, np.float64)).fit(Z, Y)
        self.alpha_ = float(self.ridge_.alpha_)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Predicted embeddings, shape (n_windows, F)."""
        check_is_fitted(self, "ridge_")
        return np.asarray(self.ridge_.predict(self._features(X, fit=False)), np.float64)

    def score(self, X: Any, Y: Any, *, bank: np.ndarray | None = None, k: int = 5) -> float:
        """Top-``k`` retrieval accuracy, as :meth:`MEGRetrieval.score`."""
        items = self._windows(X)
        Y = self._targets(Y, len(items), "RidgeRetrieval")
        bank, targets = _bank_targets(Y, bank)
        return top_k_accuracy(self.transform(items), bank, targets, k=k)


def tmax_of(n_times: int, *, sfreq: float = MEG_SFREQ, tmin: float = EPOCH_TMIN) -> float:
    """End of a window of ``n_times`` samples starting at ``tmin`` (1.0 s for 180)."""
    return float(tmin) + int(n_times) / float(sfreq)


__all__ = [
    "EPOCH_TMAX", "PARADIGM", "BrainModule", "BrainModuleConfig", "MEGRetrieval",
    "RidgeRetrieval", "clip_loss", "retrieval_curve", "retrieval_loss", "retrieve",
    "tmax_of", "top_candidates", "top_k_accuracy",
]


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

    from bci.datasets.meg import load_embedding_bank, meg_epochs
    from bci.errors import TrainingError
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
