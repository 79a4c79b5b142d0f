"""Stage 2 network: masked prediction of the VQ-VAE's codes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from bci.decoders.duin.config import DuINConfig
from bci.decoders.duin.model import DuINEncoder, init_weights
from torch import nn


class DuINMAE(nn.Module):
    """Stage 2: masked code prediction with a fresh encoder.

    Shapes
    ------
    ``forward(x, mask, subject)``: x (batch, C, n_times), mask (batch, n_tokens) bool
    (True = hidden in the first pass) → logits (batch, n_tokens, codebook_size), each
    token's from the pass in which it was hidden.
    """

    def __init__(self, config: DuINConfig, n_channels: Sequence[int]) -> None:
        super().__init__()
        self.encoder = DuINEncoder(config, n_channels)
        self.mask_token = nn.Parameter(torch.empty(config.d_model))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.head = nn.Linear(config.d_model, config.codebook_size)
        init_weights([self.head])

    def forward(self, x: torch.Tensor, mask: torch.Tensor, subject: int = 0) -> torch.Tensor:
        tokens = self.encoder.tokens(x, subject)
        hidden = mask[..., None]
        first = torch.where(hidden, self.mask_token, tokens)
        second = torch.where(hidden, tokens, self.mask_token)
        logits_first = self.head(self.encoder.transformer(first))
        logits_second = self.head(self.encoder.transformer(second))
        return torch.where(hidden, logits_first, logits_second)


def random_mask(batch: int, n_tokens: int, ratio: float, generator: torch.Generator | None
                ) -> torch.Tensor:
    """Per window, exactly ``n_tokens − int(n_tokens·(1 − ratio))`` tokens set True."""
    keep = int(n_tokens * (1.0 - ratio))
    order = torch.rand(batch, n_tokens, generator=generator).argsort(dim=1)
    return order >= keep
