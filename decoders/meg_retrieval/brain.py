"""The brain module of Défossez et al. (2023): spatial attention, dilated blocks, heads."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from bci.decoders.meg_retrieval.config import BrainModuleConfig
from torch import nn

from bci.datasets.meg import KINDS


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
