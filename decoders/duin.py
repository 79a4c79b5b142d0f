"""Du-IN (Zheng et al., NeurIPS 2024): words from sEEG, with discrete-code pre-training.

Du-IN reads ~10 bipolar sEEG channels at 1000 Hz in 3 s trials, cut into 100 ms
patches (30 tokens), and is trained in three stages:

==============  ==========================================================================
stage           what it learns
==============  ==========================================================================
1. VQ-VAE       subject layer → tokenizer → encoder → vector quantiser → decoder → signal;
                loss: reconstruction MSE of the z-scored signal + commitment
2. MAE          a fresh subject layer → tokenizer → encoder predicts, for each masked
                token, the frozen VQ-VAE's code index (cross-entropy)
3. fine-tuning  the stage-2 encoder (stage 1's with ``pretrain="vqvae"``, a fresh one with
                ``"none"``) + a classification head, on the labelled words
==============  ==========================================================================

Modules (shapes for one subject with C channels, B windows of T samples, N = T / 100
tokens; published sizes in brackets, as the authors' code sets them for their sEEG data
set in ``params/duin_params.py`` of github.com/liulab-repository/Du-IN):

- :class:`SubjectLayer`: per-subject linear map C → ``d_neural`` [16] channels (with bias),
  so subjects with different electrodes share everything after it.
- :class:`PatchTokenizer`: per 100-sample patch, Conv1d(→128, k19, s10) + BN →
  Conv1d(→128, k3) + BN → Conv1d(→16, k3) + BN, flattened time-major to ``d_model`` =
  16 × 10 = [160]. As in the reference code, there is no activation between the
  convolutions.
- :class:`TransformerStack`: sin-cos time embedding + post-norm blocks [8 blocks, 8 heads
  of 64, d_ff 320, GELU, attention and feed-forward dropout 0.2].
- :class:`VectorQuantizer`: Linear-Tanh-Linear to ``d_code`` [64], L2-normalised, nearest
  code by cosine in a codebook [2048 × 64] initialised by spherical k-means and updated by
  EMA (decay 0.99, codes renormalised); straight-through gradient; commitment loss
  β·MSE(z, sg(q)) [β = 1]; LayerNorm + Linear back to ``d_model``.
- :class:`RegressionHead`: transposed convolutions over the token axis [128, 128, 128,
  128, 16 filters; kernels 3, 3, 10, 9, 19; strides 1, 1, 10, 1, 10] + Linear to
  ``d_neural``, then a per-subject map back to the subject's channels.
- :class:`DuINMAE`: half the tokens replaced by a learnt mask token; the mask and its
  complement both pass through the encoder, so every token is predicted exactly once,
  from the pass in which it was hidden.
- :class:`DuINNet`: encoder + flatten → Linear(N·d_model → 128) → ReLU → Linear(→ classes).
  The reference code squashes these logits with a sigmoid before the cross-entropy; it
  is left out here because the served probabilities would then be compressed towards
  uniform (at most e / (e + n_classes - 1) for the top word).

Training follows the authors' schedules (:meth:`DuINConfig.published`): AdamW (weight
decay 0.05), per-epoch linear warm-up then half-cosine decay between two learning rates;
VQ-VAE 800 epochs, batch 32, 3e-4 → 5e-5; MAE 400 epochs, batch 64, 3e-4 → 5e-5;
fine-tuning 200 epochs, batch 32, 2e-4 → 5e-6. One difference: k-means initialises the
codebook from the encoder outputs of up to 512 training windows rather than of the first
batch alone, which holds fewer vectors (32 × 30) than the published codebook has codes.
Batches hold one subject each (the reference pads channels to a common count instead).

Live use. The exported graph takes the stream's channels (contacts, in ``ch_names``
order) after the runtime's causal band-pass and notch (:meth:`DuINClassifier.
preprocessing`), and starts with a fixed :class:`FrontEnd`: the bipolar derivation as a
matrix (no runtime node re-references pairs, and a linear map across channels commutes
with the per-channel filters that run before it, so the result equals filtering the
bipolar channels), then the per-channel z-score. The z-score is inside the network for
the same reason: the runtime's nodes are causal filters and have no notion of training
statistics. With ``zscore="fit"`` (default) it uses each bipolar channel's mean and
standard deviation over the training windows — a fixed affine map, the live counterpart of
z-scoring a whole recording as the paper does; ``zscore="window"`` normalises each channel
within each 3 s window instead, which needs no statistics and is immune to gain drift
between sessions but also removes differences in overall power between trials.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from bci.decoders.base import check_windows, encode_labels
from bci.decoders.torch_classifier import seeded
from bci.decoders.torch_export import export_module
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

#: Pre-training options of :class:`DuINClassifier` (the paper's ablations).
PRETRAIN = ("vqvae+mae", "vqvae", "none")
#: Per-channel z-score options of :class:`DuINClassifier`.
ZSCORE = ("fit", "window")
#: Windows per forward pass when predicting or computing codes.
PREDICT_BATCH = 64
#: Windows whose encoder outputs initialise the codebook by k-means.
KMEANS_WINDOWS = 512


# --- configuration ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StageSchedule:
    """Optimiser schedule of one training stage.

    Attributes
    ----------
    epochs, batch_size : int
    lr, min_lr : float
        Peak learning rate after warm-up, and the floor the half-cosine decays to.
    warmup : int
        Epochs of linear warm-up from ``lr / warmup`` to ``lr``.
    weight_decay : float
        AdamW's decoupled weight decay.
    """

    epochs: int
    batch_size: int
    lr: float
    min_lr: float
    warmup: int
    weight_decay: float = 0.05

    def lr_at(self, epoch: int) -> float:
        """Learning rate of epoch ``epoch`` (from 0), as in the reference schedule."""
        if epoch < self.warmup:
            return self.lr * (epoch + 1) / self.warmup
        span = max(self.epochs - self.warmup, 1)
        cosine = 0.5 * (1.0 + math.cos(math.pi * (epoch - self.warmup) / span))
        return self.min_lr + (self.lr - self.min_lr) * cosine

    def set_lr(self, optimizer: torch.optim.Optimizer, epoch: int) -> float:
        """Put epoch ``epoch``'s learning rate into every group of ``optimizer``; return it."""
        lr = self.lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr


@dataclass(frozen=True, slots=True)
class DuINConfig:
    """Sizes and schedules of Du-IN; :meth:`published` and :meth:`small` are presets.

    Attributes
    ----------
    sfreq : float
        Sampling rate the patch length refers to, Hz.
    patch_len, n_tokens : int
        Samples per token and tokens per window (window = ``patch_len · n_tokens``).
    d_neural : int
        Channels after the subject layer.
    tok_filters, tok_kernels, tok_strides : tuple of int
        Tokenizer convolutions; ``d_model = tok_filters[-1] · patch_len / Π strides``.
    n_blocks, n_heads, d_head, d_ff : int
        Encoder transformer.
    attn_dropout, ff_dropout : float
    codebook_size, d_code : int
        Codebook of the vector quantiser.
    vq_beta, vq_decay : float
        Commitment weight and EMA decay of the codebook.
    kmeans_iters : int
    dec_blocks : int
        Decoder transformer blocks (same width as the encoder).
    rgs_filters, rgs_kernels, rgs_strides : tuple of int
        Transposed convolutions of the regression head; the strides multiply to
        ``patch_len``.
    mask_ratio : float
        Share of tokens masked in each MAE pass.
    cls_hidden : int
        Hidden units of the classification head.
    cls_dropout : float
    vqvae, mae, finetune : StageSchedule
    """

    sfreq: float = 1000.0
    patch_len: int = 100
    n_tokens: int = 30
    d_neural: int = 16
    tok_filters: tuple[int, ...] = (128, 128, 16)
    tok_kernels: tuple[int, ...] = (19, 3, 3)
    tok_strides: tuple[int, ...] = (10, 1, 1)
    n_blocks: int = 8
    n_heads: int = 8
    d_head: int = 64
    d_ff: int = 320
    attn_dropout: float = 0.2
    ff_dropout: float = 0.2
    codebook_size: int = 2048
    d_code: int = 64
    vq_beta: float = 1.0
    vq_decay: float = 0.99
    kmeans_iters: int = 10
    dec_blocks: int = 4
    rgs_filters: tuple[int, ...] = (128, 128, 128, 128, 16)
    rgs_kernels: tuple[int, ...] = (3, 3, 10, 9, 19)
    rgs_strides: tuple[int, ...] = (1, 1, 10, 1, 10)
    mask_ratio: float = 0.5
    cls_hidden: int = 128
    cls_dropout: float = 0.0
    vqvae: StageSchedule = StageSchedule(800, 32, 3e-4, 5e-5, 80)
    mae: StageSchedule = StageSchedule(400, 64, 3e-4, 5e-5, 40)
    finetune: StageSchedule = StageSchedule(200, 32, 2e-4, 5e-6, 20)

    @classmethod
    def published(cls, **changes: Any) -> DuINConfig:
        """The sizes and schedules of the paper (sEEG word reading, 3 s at 1000 Hz)."""
        return replace(cls(), **changes).checked()

    @classmethod
    def small(cls, **changes: Any) -> DuINConfig:
        """Same input and structure, narrow and short enough to train on a laptop CPU.

        d_neural 8, tokenizer 16-16-4 filters (d_model 40), 2 blocks of 4 heads × 16,
        d_ff 80, dropout 0.1, codebook 64 × 16 with EMA decay 0.9, one decoder block,
        16-filter regression head, classification head of 32, and 30 epochs per stage
        (batch 16) at higher learning rates.
        """
        base = cls(
            d_neural=8, tok_filters=(16, 16, 4), n_blocks=2, n_heads=4, d_head=16, d_ff=80,
            attn_dropout=0.1, ff_dropout=0.1, codebook_size=64, d_code=16, dec_blocks=1,
            # a few updates per epoch instead of thousands: the codebook's EMA must track
            # the encoder faster than at 0.99, or unused codes die and the codebook collapses
            vq_decay=0.9,
            rgs_filters=(16, 16, 16, 16, 8), cls_hidden=32,
            vqvae=StageSchedule(30, 16, 1e-3, 1e-4, 3, 0.01),
            mae=StageSchedule(30, 16, 2e-3, 2e-4, 3, 0.01),
            finetune=StageSchedule(30, 16, 1e-3, 1e-4, 3, 0.01),
        )
        return replace(base, **changes).checked()

    @property
    def d_model(self) -> int:
        return self.tok_filters[-1] * (self.patch_len // math.prod(self.tok_strides))

    @property
    def n_times(self) -> int:
        """Samples per window."""
        return self.patch_len * self.n_tokens

    @property
    def duration(self) -> float:
        """Window length in seconds."""
        return self.n_times / self.sfreq

    def checked(self) -> DuINConfig:
        """``self``, after checking that the sizes fit together.

        Raises
        ------
        ValueError
            Naming the sizes that do not fit.
        """
        tok = (self.tok_filters, self.tok_kernels, self.tok_strides)
        rgs = (self.rgs_filters, self.rgs_kernels, self.rgs_strides)
        if len({len(t) for t in tok}) != 1 or len({len(t) for t in rgs}) != 1:
            raise ValueError(f"DuINConfig: tokenizer and regression-head filters, kernels "
                             f"and strides must have equal lengths, found {tok} and {rgs}")
        if self.patch_len % math.prod(self.tok_strides):
            raise ValueError(f"DuINConfig: patch_len {self.patch_len} must be a multiple of "
                             f"the tokenizer's strides' product {math.prod(self.tok_strides)}")
        length = self.patch_len
        for kernel, stride in zip(self.tok_kernels, self.tok_strides, strict=True):
            length = (length + 2 * ((kernel - 1) // 2) - kernel) // stride + 1
        if length != self.patch_len // math.prod(self.tok_strides):
            raise ValueError(f"DuINConfig: the tokenizer turns {self.patch_len} samples into "
                             f"{length} steps, expected {self.patch_len} / Π strides; use "
                             f"odd kernels")
        if math.prod(self.rgs_strides) != self.patch_len:
            raise ValueError(f"DuINConfig: the regression head's strides must multiply to "
                             f"patch_len {self.patch_len}, found {self.rgs_strides}")
        for k, s in zip(self.rgs_kernels, self.rgs_strides, strict=True):
            if k < s or (s == 1 and k % 2 == 0):
                raise ValueError(f"DuINConfig: regression kernel {k} with stride {s}: "
                                 f"expected kernel ≥ stride, and odd with stride 1")
        if self.n_heads < 1 or self.d_head < 1 or self.n_tokens < 1:
            raise ValueError(f"DuINConfig: expected positive n_heads, d_head, n_tokens, found "
                             f"{self.n_heads}, {self.d_head}, {self.n_tokens}")
        if not 0 < self.mask_ratio < 1 or int(self.n_tokens * (1 - self.mask_ratio)) < 1:
            raise ValueError(f"DuINConfig: mask_ratio must leave at least one of "
                             f"{self.n_tokens} tokens unmasked, found {self.mask_ratio}")
        if self.codebook_size < 2:
            raise ValueError(f"DuINConfig: codebook_size must be ≥ 2, found "
                             f"{self.codebook_size}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_config(config: DuINConfig | str) -> DuINConfig:
    """A configuration from itself or a preset name (``"published"``, ``"small"``)."""
    if isinstance(config, DuINConfig):
        return config.checked()
    if config == "published":
        return DuINConfig.published()
    if config == "small":
        return DuINConfig.small()
    raise ValueError(f"config: expected a DuINConfig, 'published' or 'small', found {config!r}")


# --- modules ----------------------------------------------------------------------------


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
        for m in (*self.pre, self.post):
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

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
        nn.init.trunc_normal_(self.out.weight, std=0.02)
        nn.init.zeros_(self.out.bias)

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
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, subject: int = 0) -> torch.Tensor:
        tokens = self.encoder.tokens(x, subject)
        hidden = mask[..., None]
        first = torch.where(hidden, self.mask_token, tokens)
        second = torch.where(hidden, tokens, self.mask_token)
        logits_first = self.head(self.encoder.transformer(first))
        logits_second = self.head(self.encoder.transformer(second))
        return torch.where(hidden, logits_first, logits_second)


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
        for m in self.head:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x, 0))


# --- training stages --------------------------------------------------------------------


def _batches(sizes: Sequence[int], batch_size: int, rng: np.random.Generator
             ) -> list[tuple[int, np.ndarray]]:
    """One epoch of single-subject batches over every subject, in random order."""
    out = []
    for s, n in enumerate(sizes):
        order = rng.permutation(n)
        starts = list(range(0, n, batch_size))
        # a lone trailing window would give batch norm a batch of one
        if len(starts) > 1 and n - starts[-1] == 1:
            starts.pop()
        out += [(s, order[i:i + batch_size]) for i in starts]
    return [out[i] for i in rng.permutation(len(out))]


def _optimizer(module: nn.Module, schedule: StageSchedule) -> torch.optim.Optimizer:
    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    rest = [p for p in params if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": schedule.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=schedule.lr)


def _tensors(windows: Sequence[np.ndarray], device: str) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(w, np.float32)).to(device) for w in windows]


def _check_windows(windows: Sequence[np.ndarray], config: DuINConfig) -> None:
    if not len(windows):
        raise ValueError("expected windows of at least one subject, found none")
    for s, w in enumerate(windows):
        if w.ndim != 3 or w.shape[-1] != config.n_times or w.shape[0] < 2:
            raise ValueError(f"subject {s}: expected windows (n ≥ 2, n_channels, "
                             f"{config.n_times}), found {w.shape}")


def train_vqvae(
    windows: Sequence[np.ndarray], config: DuINConfig, *, seed: int = 0,
    device: str = "cpu",
) -> tuple[DuINVQVAE, list[dict[str, float]]]:
    """Stage 1: train the Du-IN VQ-VAE to reconstruct z-scored windows.

    Parameters
    ----------
    windows : sequence of ndarray, each (n_windows_s, n_channels_s, n_times)
        Z-scored windows of each subject (subject ``s`` gets subject layer ``s``).
    config : DuINConfig
        Sizes and ``config.vqvae`` schedule.
    seed : int
        Seeds initialisation, k-means, dropout and batch order.
    device : str

    Returns
    -------
    model : DuINVQVAE
        In eval mode.
    history : list of dict
        Per epoch: ``epoch``, ``lr``, ``recon`` (MSE), ``commit``, ``codes_used``
        (distinct codes assigned during the epoch) and ``perplexity`` (of their histogram).
    """
    _check_windows(windows, config)
    schedule = config.vqvae
    rng = np.random.default_rng(seed)
    with seeded(seed, device):
        gen = torch.Generator().manual_seed(int(seed))
        model = DuINVQVAE(config, [w.shape[1] for w in windows]).to(device)
        data = _tensors(windows, device)
        _kmeans_init(model, data, config, rng, gen)
        optimizer = _optimizer(model, schedule)
        history = []
        for epoch in range(schedule.epochs):
            lr = schedule.set_lr(optimizer, epoch)
            model.train()
            recon_sum = commit_sum = 0.0
            seen = 0
            counts = torch.zeros(config.codebook_size, dtype=torch.long, device=device)
            for s, idx in _batches([w.shape[0] for w in windows], schedule.batch_size, rng):
                x = data[s][torch.from_numpy(idx).to(device)]
                recon, commit, codes = model(x, s)
                mse = F.mse_loss(recon, x)
                optimizer.zero_grad()
                (mse + commit).backward()
                optimizer.step()
                recon_sum += mse.item() * len(idx)
                commit_sum += commit.item() * len(idx)
                seen += len(idx)
                counts += torch.bincount(codes.reshape(-1), minlength=config.codebook_size)
            p = (counts / counts.sum()).double()
            entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
            history.append({"epoch": epoch + 1, "lr": lr, "recon": recon_sum / seen,
                            "commit": commit_sum / seen,
                            "codes_used": int((counts > 0).sum()),
                            "perplexity": math.exp(entropy)})
    model.eval()
    return model, history


@torch.no_grad()
def _kmeans_init(model: DuINVQVAE, data: list[torch.Tensor], config: DuINConfig,
                 rng: np.random.Generator, gen: torch.Generator) -> None:
    """Codebook from k-means over the projected encoder outputs of training windows."""
    total = sum(d.shape[0] for d in data)
    share = min(1.0, KMEANS_WINDOWS / total)
    vectors = []
    model.train()  # the statistics the first training batches will see
    for s, d in enumerate(data):
        n = max(2, round(d.shape[0] * share))
        idx = torch.from_numpy(rng.choice(d.shape[0], size=min(n, d.shape[0]), replace=False))
        for chunk in idx.split(max(config.vqvae.batch_size, 2)):
            if chunk.numel() < 2:
                continue
            z = model.vq.project(model.encoder(d[chunk.to(d.device)], s))
            vectors.append(z.reshape(-1, z.shape[-1]))
    model.vq.init_kmeans(torch.cat(vectors), iters=config.kmeans_iters, generator=gen)


@torch.no_grad()
def vqvae_codes(vqvae: DuINVQVAE, windows: Sequence[np.ndarray], *,
                device: str = "cpu") -> list[np.ndarray]:
    """Code index of every token of every window, per subject.

    Returns
    -------
    codes : list of ndarray of int64, each (n_windows_s, n_tokens)
    """
    vqvae.eval()
    out = []
    for s, x in enumerate(_tensors(windows, device)):
        out.append(torch.cat([vqvae.codes(x[i:i + PREDICT_BATCH], s)
                              for i in range(0, x.shape[0], PREDICT_BATCH)]).cpu().numpy())
    return out


def random_mask(batch: int, n_tokens: int, ratio: float, generator: torch.Generator | None
                ) -> torch.Tensor:
    """Per window, exactly ``n_tokens − int(n_tokens·(1 − ratio))`` tokens set True."""
    keep = int(n_tokens * (1.0 - ratio))
    order = torch.rand(batch, n_tokens, generator=generator).argsort(dim=1)
    return order >= keep


def train_mae(
    windows: Sequence[np.ndarray], vqvae: DuINVQVAE, config: DuINConfig, *, seed: int = 0,
    device: str = "cpu",
) -> tuple[DuINMAE, list[dict[str, float]]]:
    """Stage 2: predict the frozen VQ-VAE's code of every masked token.

    Parameters
    ----------
    windows : sequence of ndarray, each (n_windows_s, n_channels_s, n_times)
        Z-scored windows per subject, as for :func:`train_vqvae`.
    vqvae : DuINVQVAE
        Trained on the same subjects; frozen here (its codes are computed once).
    config : DuINConfig
        Sizes and ``config.mae`` schedule.

    Returns
    -------
    model : DuINMAE
        In eval mode.
    history : list of dict
        Per epoch: ``epoch``, ``lr``, ``loss`` (cross-entropy over masked tokens, nats)
        and ``accuracy`` (masked tokens whose code is the top prediction).
    """
    _check_windows(windows, config)
    schedule = config.mae
    rng = np.random.default_rng(seed + 1)
    targets = [torch.from_numpy(c).to(device) for c in vqvae_codes(vqvae, windows,
                                                                    device=device)]
    with seeded(seed + 1, device):
        gen = torch.Generator().manual_seed(int(seed) + 1)
        model = DuINMAE(config, [w.shape[1] for w in windows]).to(device)
        data = _tensors(windows, device)
        optimizer = _optimizer(model, schedule)
        history = []
        for epoch in range(schedule.epochs):
            lr = schedule.set_lr(optimizer, epoch)
            model.train()
            loss_sum = hits = 0.0
            seen = 0
            for s, idx in _batches([w.shape[0] for w in windows], schedule.batch_size, rng):
                sel = torch.from_numpy(idx).to(device)
                mask = random_mask(len(idx), config.n_tokens, config.mask_ratio, gen).to(device)
                logits = model(data[s][sel], mask, s)
                target = targets[s][sel]
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                n = target.numel()
                loss_sum += loss.item() * n
                hits += float((logits.argmax(-1) == target).sum())
                seen += n
            history.append({"epoch": epoch + 1, "lr": lr, "loss": loss_sum / seen,
                            "accuracy": hits / seen})
    model.eval()
    return model, history


@torch.no_grad()
def mae_loss(mae: DuINMAE, windows: Sequence[np.ndarray], codes: Sequence[np.ndarray],
             config: DuINConfig, *, seed: int = 0, device: str = "cpu") -> float:
    """Masked-code cross-entropy (nats per token) of ``mae`` in eval mode, fixed masks.

    Parameters
    ----------
    windows, codes : sequences per subject
        Z-scored windows and their VQ-VAE codes (:func:`vqvae_codes`).
    """
    mae.eval()
    gen = torch.Generator().manual_seed(int(seed))
    total, n = 0.0, 0
    for s, (x, c) in enumerate(zip(_tensors(windows, device), codes, strict=True)):
        target = torch.from_numpy(c).to(device)
        for i in range(0, x.shape[0], PREDICT_BATCH):
            xb, tb = x[i:i + PREDICT_BATCH], target[i:i + PREDICT_BATCH]
            mask = random_mask(xb.shape[0], config.n_tokens, config.mask_ratio, gen).to(device)
            logits = mae(xb, mask, s)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                           tb.reshape(-1), reduction="sum"))
            n += tb.numel()
    return total / n


def fine_tune(
    X: np.ndarray, y: np.ndarray, encoder: DuINEncoder, n_classes: int, config: DuINConfig,
    *, seed: int = 0, device: str = "cpu",
) -> tuple[DuINNet, list[dict[str, float]]]:
    """Stage 3: train encoder and classification head on labelled windows.

    Parameters
    ----------
    X : ndarray, shape (n_windows, n_channels, n_times)
        Z-scored windows of the subject ``encoder`` holds (its subject 0).
    y : ndarray of int, shape (n_windows,)
        Class indices.
    encoder : DuINEncoder
        Pre-trained (copied, not modified) or fresh.
    n_classes : int
    config : DuINConfig
        Sizes and ``config.finetune`` schedule.

    Returns
    -------
    net : DuINNet
        In eval mode.
    history : list of dict
        Per epoch: ``epoch``, ``lr``, ``loss`` (cross-entropy) and ``accuracy`` on the
        training windows, as seen during the epoch.
    """
    schedule = config.finetune
    rng = np.random.default_rng(seed + 2)
    with seeded(seed + 2, device):
        net = DuINNet(copy.deepcopy(encoder), n_classes, config).to(device)
        x = _tensors([X], device)[0]
        target = torch.from_numpy(np.asarray(y, np.int64)).to(device)
        optimizer = _optimizer(net, schedule)
        history = []
        for epoch in range(schedule.epochs):
            lr = schedule.set_lr(optimizer, epoch)
            net.train()
            loss_sum = hits = 0.0
            seen = 0
            for _, idx in _batches([X.shape[0]], schedule.batch_size, rng):
                sel = torch.from_numpy(idx).to(device)
                logits = net(x[sel])
                loss = F.cross_entropy(logits, target[sel])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                loss_sum += loss.item() * len(idx)
                hits += float((logits.argmax(-1) == target[sel]).sum())
                seen += len(idx)
            history.append({"epoch": epoch + 1, "lr": lr, "loss": loss_sum / seen,
                            "accuracy": hits / seen})
    net.eval()
    return net, history


# --- scikit-learn estimator ---------------------------------------------------------------


def zscore_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over windows and samples.

    Parameters
    ----------
    X : ndarray, shape (n_windows, n_channels, n_times)

    Returns
    -------
    mean, std : ndarray of float64, shape (n_channels,)
        A flat channel gets a standard deviation of 1 (it stays at 0 after centring).
    """
    x = np.asarray(X, np.float64)
    mean = x.mean(axis=(0, 2))
    std = x.std(axis=(0, 2))
    return mean, np.where(std > 0, std, 1.0)


def _zscored(X: np.ndarray) -> np.ndarray:
    mean, std = zscore_stats(X)
    return ((X - mean[:, None]) / std[:, None]).astype(np.float32)


class DuINClassifier(ClassifierMixin, BaseEstimator):
    """Du-IN word decoder: pre-training stages, fine-tuning, ONNX export with its spec.

    Parameters
    ----------
    config : DuINConfig | "small" | "published"
        Sizes and per-stage schedules.
    pretrain : "vqvae+mae" | "vqvae" | "none"
        Full Du-IN; the ablation fine-tuning the VQ-VAE's encoder; no pre-training.
    sfreq : float
        Stream rate in Hz; must equal ``config.sfreq`` (patches are counted in samples).
    ch_names : sequence of str | None
        Names of the channels (rows) of ``X``: the contacts when ``bipolar`` is given,
        else whatever ``X`` holds. Needed for :meth:`decoder_spec`; with ``bipolar`` and
        no ``ch_names``, the contacts of the pairs in order of appearance.
    bipolar : sequence of (str, str) | None
        (anode, cathode) pairs among ``ch_names`` (e.g. ``bci.datasets.seeg.bipolar_pairs``);
        the derivation becomes the first, fixed layer of the network. ``None``: ``X`` is
        used as given (already bipolar, or another montage).
    zscore : "fit" | "window"
        Per-channel z-score with training statistics, or within each window (see the
        module notes).
    tmin : float
        Epoch start after the cue, seconds; the epoch lasts ``config.duration``.
    l_freq, h_freq : float | None
        Causal band-pass run by the runtime before the network (``None`` drops an edge;
        both ``None``: no band-pass).
    line_freq : float | None
        Notch at this frequency and its harmonics below ``h_freq`` (or Nyquist).
    seed : int
        Seeds every stage; the caller's torch random state is left as it was.
    device : str
        Torch device for training.

    Attributes
    ----------
    classes_ : ndarray of str
    config_ : DuINConfig
    ch_names_ : list of str | None
        Input channels, in the order the exported graph takes them.
    input_shape_ : tuple of int
        ``(n_input_channels, n_times)``.
    module_ : torch.nn.Sequential
        ``front`` (:class:`FrontEnd`) then ``net`` (:class:`DuINNet`): windows → logits.
    vqvae_ : DuINVQVAE | None
    mae_ : DuINMAE | None
    history_ : dict of str to list of dict
        Per stage (``vqvae``, ``mae``, ``finetune``), as the stage functions return it.
    n_subjects_ : int
        Subjects seen in pre-training (1 + ``len(pretrain_X)``).
    """

    def __init__(
        self, *, config: DuINConfig | str = "small", pretrain: str = "vqvae+mae",
        sfreq: float = 1000.0, ch_names: Sequence[str] | None = None,
        bipolar: Sequence[tuple[str, str]] | None = None, zscore: str = "fit",
        tmin: float = 0.0, l_freq: float | None = 0.5, h_freq: float | None = 200.0,
        line_freq: float | None = 50.0, seed: int = 0, device: str = "cpu",
    ) -> None:
        self.config = config
        self.pretrain = pretrain
        self.sfreq = sfreq
        self.ch_names = ch_names
        self.bipolar = bipolar
        self.zscore = zscore
        self.tmin = tmin
        self.l_freq = l_freq
        self.h_freq = h_freq
        self.line_freq = line_freq
        self.seed = seed
        self.device = device

    # --- declarations ---------------------------------------------------------------

    def preprocessing(self) -> list[dict[str, Any]]:
        """Causal runtime nodes before the network: band-pass (or high/low-pass), notch.

        Raises
        ------
        ValueError
            If the band edges or the line frequency do not fit below Nyquist.
        """
        nyquist = float(self.sfreq) / 2
        lo, hi = self.l_freq, self.h_freq
        for name, f in (("l_freq", lo), ("h_freq", hi), ("line_freq", self.line_freq)):
            if f is not None and not 0 < float(f) < nyquist:
                raise ValueError(f"DuINClassifier: {name} must lie in (0, {nyquist:g}) Hz, "
                                 f"found {f}")
        if lo is not None and hi is not None and not float(lo) < float(hi):
            raise ValueError(f"DuINClassifier: expected l_freq < h_freq, found {lo}, {hi}")
        nodes: list[dict[str, Any]] = []
        if lo is not None and hi is not None:
            nodes.append({"kind": "bandpass", "l_freq": float(lo), "h_freq": float(hi)})
        elif lo is not None:
            nodes.append({"kind": "highpass", "l_freq": float(lo)})
        elif hi is not None:
            nodes.append({"kind": "lowpass", "h_freq": float(hi)})
        if self.line_freq is not None:
            top = min(float(hi) if hi is not None else nyquist, nyquist)
            freqs = [float(self.line_freq) * k for k in range(1, 1 + int(top // self.line_freq))
                     if float(self.line_freq) * k < top]
            if freqs:
                nodes.append({"kind": "notch", "freqs": freqs})
        return nodes

    def _input_names(self) -> list[str] | None:
        if self.ch_names is not None:
            return [str(c) for c in self.ch_names]
        if self.bipolar is not None:
            return list(dict.fromkeys(str(c) for pair in self.bipolar for c in pair))
        return None

    def _check_params(self) -> DuINConfig:
        config = resolve_config(self.config)
        if self.pretrain not in PRETRAIN:
            raise ValueError(f"DuINClassifier: pretrain must be one of {PRETRAIN}, found "
                             f"{self.pretrain!r}")
        if self.zscore not in ZSCORE:
            raise ValueError(f"DuINClassifier: zscore must be one of {ZSCORE}, found "
                             f"{self.zscore!r}")
        if not math.isclose(float(self.sfreq), config.sfreq, rel_tol=1e-9):
            raise ValueError(f"DuINClassifier: the configuration counts patches at "
                             f"{config.sfreq:g} Hz, found sfreq={self.sfreq:g}; resample the "
                             f"stream or scale patch_len and the strides")
        self.preprocessing()
        return config

    # --- fitting --------------------------------------------------------------------

    def fit(self, X: np.ndarray, y: np.ndarray, *,
            pretrain_X: Sequence[np.ndarray] = ()) -> DuINClassifier:
        """Run the pre-training stages, then fine-tune on the labelled windows.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_channels, n_times)
            Epochs after :meth:`preprocessing` (volts, though the z-score makes the unit
            irrelevant); channels as ``ch_names``.
        y : array-like of str, shape (n_windows,)
        pretrain_X : sequence of ndarray, each (n_s, n_channels_s, n_times)
            Unlabelled windows of other subjects or sessions, already re-referenced,
            each z-scored on its own statistics; every array gets its own subject layer
            in stages 1 and 2 (``X`` is subject 0). Unused with ``pretrain="none"``.

        Returns
        -------
        self
        """
        config = self._check_params()
        X = check_windows(X, ndim=(3,), who="DuINClassifier")
        names = self._input_names()
        if names is not None and len(names) != X.shape[1]:
            raise ValueError(f"DuINClassifier: expected {len(names)} channels ({names}), "
                             f"found {X.shape[1]}")
        if X.shape[-1] != config.n_times:
            raise ValueError(f"DuINClassifier: expected windows of {config.n_times} samples "
                             f"({config.duration:g} s at {config.sfreq:g} Hz), found "
                             f"{X.shape[-1]}")
        y_idx = self._encode(y, X.shape[0])
        extra = [check_windows(w, ndim=(3,), who="DuINClassifier pretrain_X")
                 for w in pretrain_X]
        for w in extra:
            if w.shape[-1] != config.n_times:
                raise ValueError(f"DuINClassifier: pretrain_X windows must have "
                                 f"{config.n_times} samples, found {w.shape}")
        matrix = None
        if self.bipolar is not None:
            from bci.datasets.seeg import bipolar_matrix

            matrix = bipolar_matrix(names, [tuple(p) for p in self.bipolar])
        derived = X if matrix is None else np.einsum("pc,nct->npt", matrix, X)
        mean = std = None
        if self.zscore == "fit":
            mean, std = zscore_stats(derived)
        front = FrontEnd(matrix, mean, std, mode=self.zscore)
        with torch.no_grad():
            Z = front(torch.from_numpy(np.ascontiguousarray(X, np.float32))).numpy()
        windows = [Z, *(_zscored(w) for w in extra)]

        self.config_, self.ch_names_ = config, names
        self.input_shape_ = (int(X.shape[1]), int(X.shape[2]))
        self.n_subjects_ = len(windows)
        self.history_: dict[str, list[dict[str, float]]] = {}
        self.vqvae_ = self.mae_ = None
        device = str(self.device)
        if self.pretrain == "none":
            with seeded(self.seed, device):
                encoder = DuINEncoder(config, [Z.shape[1]])
        else:
            self.vqvae_, self.history_["vqvae"] = train_vqvae(windows, config, seed=self.seed,
                                                              device=device)
            encoder = self.vqvae_.encoder
            if self.pretrain == "vqvae+mae":
                self.mae_, self.history_["mae"] = train_mae(windows, self.vqvae_, config,
                                                            seed=self.seed, device=device)
                encoder = self.mae_.encoder
            encoder = encoder.for_subject(0)
        net, self.history_["finetune"] = fine_tune(Z, y_idx, encoder, len(self.classes_),
                                                   config, seed=self.seed, device=device)
        self.module_ = nn.Sequential()
        self.module_.add_module("front", front.to(device))
        self.module_.add_module("net", net)
        self.module_.eval()
        return self

    def _encode(self, y: Any, n: int) -> np.ndarray:
        self.classes_, idx = encode_labels(y, n, who="DuINClassifier")
        return idx

    # --- inference ------------------------------------------------------------------

    def _check_X(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "module_")
        X = check_windows(X, ndim=(3,), who="DuINClassifier")
        if tuple(X.shape[1:]) != self.input_shape_:
            raise ValueError(f"DuINClassifier: expected windows of shape {self.input_shape_} "
                             f"(as in fit), found {tuple(X.shape[1:])}")
        return np.ascontiguousarray(X, np.float32)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logits, shape (n_windows, n_classes), columns in the order of ``classes_``."""
        X = self._check_X(X)
        device = next(self.module_.parameters()).device
        self.module_.eval()
        with torch.no_grad():
            x = torch.from_numpy(X).to(device)
            out = torch.cat([self.module_(x[i:i + PREDICT_BATCH])
                             for i in range(0, x.shape[0], PREDICT_BATCH)])
        return out.cpu().numpy().astype(np.float64)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Word probabilities, shape (n_windows, n_classes), in the order of ``classes_``.

        Parameters
        ----------
        X : ndarray, shape (n_windows, *input_shape_)
        """
        z = self.decision_function(X)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable word per window, shape (n_windows,)."""
        scores = self.decision_function(X)
        return self.classes_[np.argmax(scores, axis=1)]

    # --- export -----------------------------------------------------------------------

    def to_onnx(self) -> onnx.ModelProto:
        """Front end, encoder and head with a softmax, as one ONNX graph.

        Returns
        -------
        model : onnx.ModelProto
            Input ``"x"`` ``("batch", *input_shape_)`` in volts after
            :meth:`preprocessing`; output ``"probabilities"`` ``(batch, n_classes)``.
        """
        check_is_fitted(self, "module_")
        head = nn.Sequential(self.module_, nn.Softmax(dim=-1))
        return export_module(head, self.input_shape_, output_names=("probabilities",))

    def decoder_spec(self, *, name: str = "duin", extra: dict[str, Any] | None = None):
        """The ``bci`` spec for marker-locked epochs of ``config.duration`` seconds.

        Raises
        ------
        ValueError
            When the channel names are unknown (give ``ch_names``).
        """
        from bci.spec import DecoderSpec, WindowSpec

        check_is_fitted(self, "module_")
        if self.ch_names_ is None:
            raise ValueError("DuINClassifier: the spec names the stream's channels; fit "
                             "with ch_names (or bipolar pairs)")
        info = {"pretrain": self.pretrain, "zscore": self.zscore,
                "bipolar": [list(p) for p in self.bipolar] if self.bipolar else None,
                "n_tokens": self.config_.n_tokens, "d_model": self.config_.d_model,
                "codebook_size": self.config_.codebook_size, **(extra or {})}
        return DecoderSpec(
            paradigm="seeg", classes=[str(c) for c in self.classes_],
            ch_names=list(self.ch_names_), sfreq=float(self.sfreq),
            window=WindowSpec(mode="epoch", tmin=float(self.tmin),
                              tmax=float(self.tmin) + self.config_.duration),
            preprocessing=self.preprocessing(), output="probabilities", name=name,
            extra=info,
        )

    def export(self, path: Any, *, name: str = "duin") -> onnx.ModelProto:
        """Write the ONNX graph with its ``bci`` spec to ``path``; return the model."""
        from bci.spec import write_spec

        return write_spec(self.to_onnx(), self.decoder_spec(name=name), path)
