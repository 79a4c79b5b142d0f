"""The Du-IN network: fixed front end, subject layer, tokenizer, encoder, classifier."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from bci.decoders.duin.config import ZSCORE, DuINConfig
from torch import nn


def init_weights(modules: Iterable[nn.Module]) -> None:
    """The reference code's initialisation of its linear layers and 1×1 convolutions.

    Weights from a normal of standard deviation 0.02 truncated at ±2, biases zero, in
    the order given (other modules are skipped).
    """
    for m in modules:
        if isinstance(m, nn.Linear | nn.Conv1d):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)


class FrontEnd(nn.Module):
    """Fixed bipolar derivation and per-channel z-score (buffers, never trained).

    Parameters
    ----------
    matrix : ndarray, shape (n_out, n_in) | None
        Bipolar matrix (``bci.datasets.seeg.bipolar_matrix``); ``None`` passes channels on.
    mean, std : ndarray, shape (n_out,) | None
        Channel statistics for ``mode="fit"``.
    mode : "fit" | "window"
        Fixed statistics, or each window's own mean and standard deviation.

    Shapes
    ------
    input : (batch, n_in, n_times); output : (batch, n_out, n_times)
    """

    def __init__(self, matrix: np.ndarray | None, mean: np.ndarray | None,
                 std: np.ndarray | None, *, mode: str = "fit") -> None:
        super().__init__()
        if mode not in ZSCORE:
            raise ValueError(f"zscore: expected one of {ZSCORE}, found {mode!r}")
        self.mode = mode
        self.bipolar = matrix is not None
        if matrix is not None:
            self.register_buffer("matrix", torch.as_tensor(matrix, dtype=torch.float32))
        if mode == "fit":
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32)[:, None])
            self.register_buffer("inv_std",
                                 1.0 / torch.as_tensor(std, dtype=torch.float32)[:, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bipolar:
            x = torch.matmul(self.matrix, x)
        if self.mode == "fit":
            return (x - self.mean) * self.inv_std
        mean = x.mean(dim=-1, keepdim=True)
        centred = x - mean
        std = torch.sqrt((centred * centred).mean(dim=-1, keepdim=True) + 1e-20)
        return centred / std


class SubjectLayer(nn.Module):
    """One linear map (with bias) per subject, across channels at every sample.

    Parameters
    ----------
    in_sizes, out_sizes : sequence of int
        Channels in and out, per subject.

    Shapes
    ------
    input : (batch, in_sizes[s], n_times); output : (batch, out_sizes[s], n_times)
    """

    def __init__(self, in_sizes: Sequence[int], out_sizes: Sequence[int]) -> None:
        super().__init__()
        if len(in_sizes) != len(out_sizes) or not in_sizes:
            raise ValueError(f"SubjectLayer: expected as many input as output sizes (≥ 1), "
                             f"found {list(in_sizes)} and {list(out_sizes)}")
        self.maps = nn.ModuleList(nn.Conv1d(int(i), int(o), 1)
                                  for i, o in zip(in_sizes, out_sizes, strict=True))

    @property
    def n_subjects(self) -> int:
        return len(self.maps)

    def forward(self, x: torch.Tensor, subject: int = 0) -> torch.Tensor:
        return self.maps[subject](x)

    def keep(self, subject: int) -> SubjectLayer:
        """A copy holding only ``subject``'s map (which becomes subject 0)."""
        out = copy.deepcopy(self)
        out.maps = nn.ModuleList([out.maps[subject]])
        return out


class PatchTokenizer(nn.Module):
    """Convolutions within each patch, flattened to one token per patch.

    Shapes
    ------
    input : (batch, d_neural, n_tokens · patch_len); output : (batch, n_tokens, d_model)
    """

    def __init__(self, config: DuINConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = config.d_neural
        for filters, kernel, stride in zip(config.tok_filters, config.tok_kernels,
                                           config.tok_strides, strict=True):
            # (k - 1) // 2 is the reference's padding for strided convolutions and
            # "same" for the odd kernels at stride 1
            layers += [nn.Conv1d(channels, filters, kernel, stride=stride,
                                 padding=(kernel - 1) // 2),
                       nn.BatchNorm1d(filters)]
            channels = filters
        self.convs = nn.Sequential(*layers)
        self.patch_len = config.patch_len
        self.n_tokens = config.n_tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[1]
        n, p = self.n_tokens, self.patch_len
        patches = x.reshape(b, c, n, p).transpose(1, 2).reshape(b * n, c, p)
        h = self.convs(patches)
        return h.transpose(1, 2).reshape(b, n, -1)


def sincos_embedding(n_positions: int, d_model: int) -> torch.Tensor:
    """The fixed sin-cos position table, shape (n_positions, d_model)."""
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]
    i = torch.arange(0, d_model, 2, dtype=torch.float32)
    angle = pos / torch.pow(10000.0, i / d_model)
    table = torch.zeros(n_positions, d_model)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return table


class Attention(nn.Module):
    """Multi-head self-attention with its own head width (heads × d_head ≠ d_model)."""

    def __init__(self, d_model: int, n_heads: int, d_head: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_head
        self.qkv = nn.Linear(d_model, 3 * n_heads * d_head)
        self.out = nn.Linear(n_heads * d_head, d_model)
        self.drop = nn.Dropout(dropout)
        self.scale = d_head ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape[0], x.shape[1]
        qkv = self.qkv(x).reshape(b, n, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        weights = self.drop(torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.scale,
                                          dim=-1))
        return self.out(torch.matmul(weights, v).transpose(1, 2).reshape(b, n, -1))


class TransformerBlock(nn.Module):
    """Post-norm block: LN(x + attention(x)), then LN(x + FFN(x))."""

    def __init__(self, config: DuINConfig) -> None:
        super().__init__()
        d = config.d_model
        self.attn = Attention(d, config.n_heads, config.d_head, config.attn_dropout)
        self.norm1 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, config.d_ff), nn.GELU(),
                                nn.Dropout(config.ff_dropout), nn.Linear(config.d_ff, d))
        self.norm2 = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.ff(x))


class TransformerStack(nn.Module):
    """Sin-cos time embedding added to the tokens, then ``n_blocks`` blocks.

    Shapes
    ------
    input, output : (batch, n_tokens, d_model)
    """

    def __init__(self, config: DuINConfig, n_blocks: int) -> None:
        super().__init__()
        self.register_buffer("time", sincos_embedding(config.n_tokens, config.d_model))
        self.blocks = nn.Sequential(*[TransformerBlock(config) for _ in range(n_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x + self.time)


class DuINEncoder(nn.Module):
    """Subject layer → tokenizer → time embedding + transformer.

    Parameters
    ----------
    config : DuINConfig
    n_channels : sequence of int
        Channels of each subject.

    Shapes
    ------
    input : (batch, n_channels[subject], n_times); output : (batch, n_tokens, d_model)
    """

    def __init__(self, config: DuINConfig, n_channels: Sequence[int]) -> None:
        super().__init__()
        self.subject = SubjectLayer(n_channels, [config.d_neural] * len(n_channels))
        self.tokenizer = PatchTokenizer(config)
        self.transformer = TransformerStack(config, config.n_blocks)

    def tokens(self, x: torch.Tensor, subject: int = 0) -> torch.Tensor:
        """Tokens before the transformer, (batch, n_tokens, d_model)."""
        return self.tokenizer(self.subject(x, subject))

    def forward(self, x: torch.Tensor, subject: int = 0) -> torch.Tensor:
        return self.transformer(self.tokens(x, subject))

    def for_subject(self, subject: int) -> DuINEncoder:
        """A copy that keeps only ``subject``'s channel map (as subject 0)."""
        out = copy.deepcopy(self)
        out.subject = self.subject.keep(subject)
        return out


class DuINNet(nn.Module):
    """Stage 3 network: one subject's encoder + the classification head.

    Shapes
    ------
    input : (batch, n_channels, n_times), z-scored; output : (batch, n_classes) logits
    """

    def __init__(self, encoder: DuINEncoder, n_classes: int, config: DuINConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(
            nn.Flatten(1), nn.Linear(config.n_tokens * config.d_model, config.cls_hidden),
            nn.ReLU(), nn.Dropout(config.cls_dropout), nn.Linear(config.cls_hidden, n_classes),
        )
        init_weights(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x, 0))
