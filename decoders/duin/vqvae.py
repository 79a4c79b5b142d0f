"""Stage 1 network: the VQ-VAE (vector quantiser, regression head, decoder)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from bci.decoders.duin.config import DuINConfig
from bci.decoders.duin.model import DuINEncoder, SubjectLayer, TransformerStack, init_weights
from torch import nn


def _l2norm(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, p=2.0, dim=-1, eps=1e-12)


class VectorQuantizer(nn.Module):
    """Cosine nearest-code quantiser with an EMA codebook (LaBraM's, used by Du-IN).

    Shapes
    ------
    input : (batch, n_tokens, d_model); outputs: quantised (batch, n_tokens, d_model),
    commitment loss (scalar), code indices (batch, n_tokens)
    """

    def __init__(self, config: DuINConfig) -> None:
        super().__init__()
        d, k = config.d_model, config.codebook_size
        self.beta, self.decay = config.vq_beta, config.vq_decay
        self.pre = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, config.d_code))
        self.register_buffer("codebook", _l2norm(torch.randn(k, config.d_code)))
        self.register_buffer("initialised", torch.tensor(False))
        self.norm = nn.LayerNorm(config.d_code)
        self.post = nn.Linear(config.d_code, d)
        init_weights((*self.pre, self.post))

    @property
    def size(self) -> int:
        return int(self.codebook.shape[0])

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """Unit vectors in code space, (..., d_code)."""
        return _l2norm(self.pre(z))

    def assign(self, z_e: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code: highest cosine, i.e. smallest distance on the sphere."""
        return torch.matmul(z_e, self.codebook.T).argmax(dim=-1)

    @torch.no_grad()
    def init_kmeans(self, z_e: torch.Tensor, *, iters: int, generator: torch.Generator) -> None:
        """Spherical k-means on unit vectors ``z_e`` (n, d_code) sets the codebook."""
        n, k = z_e.shape[0], self.size
        if n >= k:
            start = torch.randperm(n, generator=generator)[:k]
        else:
            start = torch.randint(0, n, (k,), generator=generator)
        means = z_e[start].clone()
        for _ in range(int(iters)):
            idx = torch.matmul(z_e, means.T).argmax(dim=-1)
            counts = torch.bincount(idx, minlength=k)
            sums = torch.zeros_like(means).index_add_(0, idx, z_e)
            means = torch.where((counts > 0)[:, None], _l2norm(sums), means)
        self.codebook.copy_(_l2norm(means))
        self.initialised.fill_(True)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z_e = self.project(z)
        idx = self.assign(z_e)
        z_q = F.embedding(idx, self.codebook)
        loss = self.beta * F.mse_loss(z_e, z_q.detach())
        if self.training:
            self._ema(z_e.detach(), idx)
        z_st = z_e + (z_q - z_e).detach()
        return self.post(self.norm(z_st)), loss, idx

    @torch.no_grad()
    def _ema(self, z_e: torch.Tensor, idx: torch.Tensor) -> None:
        flat, idx = z_e.reshape(-1, z_e.shape[-1]), idx.reshape(-1)
        counts = torch.bincount(idx, minlength=self.size)
        sums = torch.zeros_like(self.codebook).index_add_(0, idx, flat)
        target = torch.where((counts > 0)[:, None], _l2norm(sums), self.codebook)
        self.codebook.mul_(self.decay).add_(target, alpha=1.0 - self.decay)
        self.codebook.copy_(_l2norm(self.codebook))


class RegressionHead(nn.Module):
    """Transposed convolutions from tokens back to samples, then Linear to ``d_neural``.

    Shapes
    ------
    input : (batch, n_tokens, d_model); output : (batch, d_neural, n_times)
    """

    def __init__(self, config: DuINConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = config.d_model
        for filters, kernel, stride in zip(config.rgs_filters, config.rgs_kernels,
                                           config.rgs_strides, strict=True):
            # padding that makes the output exactly `stride` times longer
            diff = kernel - stride
            pad = math.ceil(diff / 2)
            layers.append(nn.ConvTranspose1d(channels, filters, kernel, stride=stride,
                                             padding=pad, output_padding=2 * pad - diff))
            channels = filters
        self.deconv = nn.Sequential(*layers)
        self.out = nn.Conv1d(channels, config.d_neural, 1)
        init_weights([self.out])

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.out(self.deconv(e.transpose(1, 2)))


class DuINVQVAE(nn.Module):
    """Stage 1: encoder → quantiser → decoder → regression head → subject's channels.

    Parameters
    ----------
    config : DuINConfig
    n_channels : sequence of int
        Channels of each subject.
    """

    def __init__(self, config: DuINConfig, n_channels: Sequence[int]) -> None:
        super().__init__()
        self.encoder = DuINEncoder(config, n_channels)
        self.vq = VectorQuantizer(config)
        self.decoder = TransformerStack(config, config.dec_blocks)
        self.head = RegressionHead(config)
        self.desubject = SubjectLayer([config.d_neural] * len(n_channels), n_channels)

    def forward(self, x: torch.Tensor, subject: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction (batch, C, n_times), commitment loss, codes (batch, n_tokens)."""
        quantised, loss, codes = self.vq(self.encoder(x, subject))
        recon = self.desubject(self.head(self.decoder(quantised)), subject)
        return recon, loss, codes

    @torch.no_grad()
    def codes(self, x: torch.Tensor, subject: int = 0) -> torch.Tensor:
        """Code index of every token, (batch, n_tokens); the module must be in eval mode."""
        return self.vq.assign(self.vq.project(self.encoder(x, subject)))
