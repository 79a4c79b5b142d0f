"""The training objective: symmetric CLIP loss plus MSE on standardised embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
