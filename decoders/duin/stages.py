"""The three training stages: VQ-VAE, masked code prediction, fine-tuning."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from bci.decoders.duin.config import PREDICT_BATCH, DuINConfig, StageSchedule
from bci.decoders.duin.mae import DuINMAE, random_mask
from bci.decoders.duin.model import DuINEncoder, DuINNet
from bci.decoders.duin.vqvae import DuINVQVAE
from bci.decoders.torch_classifier import batch_starts, decay_groups, report_epoch, seeded
from torch import nn

#: Windows whose encoder outputs initialise the codebook by k-means.
KMEANS_WINDOWS = 512


def _batches(sizes: Sequence[int], batch_size: int, rng: np.random.Generator
             ) -> list[tuple[int, np.ndarray]]:
    """One epoch of single-subject batches over every subject, in random order."""
    out = []
    for s, n in enumerate(sizes):
        order = rng.permutation(n)
        out += [(s, order[i:i + batch_size]) for i in batch_starts(n, batch_size)]
    return [out[i] for i in rng.permutation(len(out))]


def _optimizer(module: nn.Module, schedule: StageSchedule) -> torch.optim.Optimizer:
    named = [(k, p) for k, p in module.named_parameters() if p.requires_grad]
    return torch.optim.AdamW(decay_groups(named, schedule.weight_decay), lr=schedule.lr)


def _tensors(windows: Sequence[np.ndarray], device: str) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(w, np.float32)).to(device) for w in windows]


def _check_windows(windows: Sequence[np.ndarray], config: DuINConfig) -> None:
    if not len(windows):
        raise ValueError("expected windows of at least one subject, found none")
    for s, w in enumerate(windows):
        if w.ndim != 3 or w.shape[-1] != config.n_times or w.shape[0] < 2:
            raise ValueError(f"subject {s}: expected windows (n ≥ 2, n_channels, "
                             f"{config.n_times}), found {w.shape}")


def _fit_epochs(
    model: nn.Module, schedule: StageSchedule, sizes: Sequence[int], rng: np.random.Generator,
    step: Callable[[int, np.ndarray], tuple[torch.Tensor, dict[str, Any]]],
    summary: Callable[[dict[str, Any]], dict[str, float]],
) -> list[dict[str, float]]:
    """The loop every stage runs: AdamW on single-subject batches, per-epoch schedule.

    ``step(subject, indices)`` computes one batch's loss and the sums the epoch
    accumulates (numbers or tensors); ``summary(sums)`` turns an epoch's sums into its
    history entry after ``epoch`` and ``lr``. The model is left in eval mode.
    """
    optimizer = _optimizer(model, schedule)
    history = []
    for epoch in range(schedule.epochs):
        lr = schedule.set_lr(optimizer, epoch)
        model.train()
        sums: dict[str, Any] = {}
        for s, idx in _batches(sizes, schedule.batch_size, rng):
            loss, batch = step(s, idx)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for key, value in batch.items():
                sums[key] = sums.get(key, 0) + value
        history.append({"epoch": epoch + 1, "lr": lr, **summary(sums)})
        report_epoch("Du-IN", history[-1], schedule.epochs)
    model.eval()
    return history


def _hits(loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """A classification batch's sums: loss and correct top predictions, over its targets."""
    n = target.numel()
    return {"loss": loss.item() * n, "hits": float((logits.argmax(-1) == target).sum()),
            "seen": n}


def _loss_accuracy(sums: dict[str, Any]) -> dict[str, float]:
    return {"loss": sums["loss"] / sums["seen"], "accuracy": sums["hits"] / sums["seen"]}


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

        def step(s: int, idx: np.ndarray) -> tuple[torch.Tensor, dict[str, Any]]:
            x = data[s][torch.from_numpy(idx).to(device)]
            recon, commit, codes = model(x, s)
            mse = F.mse_loss(recon, x)
            n = len(idx)
            return mse + commit, {
                "recon": mse.item() * n, "commit": commit.item() * n, "seen": n,
                "counts": torch.bincount(codes.reshape(-1), minlength=config.codebook_size),
            }

        def summary(sums: dict[str, Any]) -> dict[str, float]:
            counts, seen = sums["counts"], sums["seen"]
            p = (counts / counts.sum()).double()
            entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
            return {"recon": sums["recon"] / seen, "commit": sums["commit"] / seen,
                    "codes_used": int((counts > 0).sum()), "perplexity": math.exp(entropy)}

        history = _fit_epochs(model, schedule, [w.shape[0] for w in windows], rng, step,
                              summary)
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

        def step(s: int, idx: np.ndarray) -> tuple[torch.Tensor, dict[str, Any]]:
            sel = torch.from_numpy(idx).to(device)
            mask = random_mask(len(idx), config.n_tokens, config.mask_ratio, gen).to(device)
            logits = model(data[s][sel], mask, s)
            target = targets[s][sel]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
            return loss, _hits(loss, logits, target)

        history = _fit_epochs(model, schedule, [w.shape[0] for w in windows], rng, step,
                              _loss_accuracy)
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

        def step(_: int, idx: np.ndarray) -> tuple[torch.Tensor, dict[str, Any]]:
            sel = torch.from_numpy(idx).to(device)
            logits = net(x[sel])
            loss = F.cross_entropy(logits, target[sel])
            return loss, _hits(loss, logits, target[sel])

        history = _fit_epochs(net, schedule, [X.shape[0]], rng, step, _loss_accuracy)
    return net, history
