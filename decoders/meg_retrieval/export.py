"""One subject's inference path as a constant-folded torch module, ready for ONNX."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from bci.decoders.meg_retrieval.ranking import unit_rows
from torch import nn

if TYPE_CHECKING:
    from bci.decoders.meg_retrieval.estimator import MEGRetrieval


class MontageGraph(nn.Module):
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
            unit = torch.tensor(unit_rows(bank).T, dtype=torch.float32)
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
