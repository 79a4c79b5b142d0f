"""Sizes and training schedules of Du-IN (:class:`DuINConfig`, :class:`StageSchedule`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

#: Pre-training options of :class:`~bci.decoders.duin.DuINClassifier` (the paper's ablations).
PRETRAIN = ("vqvae+mae", "vqvae", "none")
#: Per-channel z-score options of :class:`~bci.decoders.duin.DuINClassifier`.
ZSCORE = ("fit", "window")
#: Windows per forward pass when predicting or computing codes.
PREDICT_BATCH = 64


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
