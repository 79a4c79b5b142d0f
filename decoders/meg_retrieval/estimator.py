"""The scikit-learn estimator :class:`MEGRetrieval`: training, inference, export."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import onnx
import torch
from bci.decoders.meg_retrieval.brain import BrainModule
from bci.decoders.meg_retrieval.config import PARADIGM, PREDICT_BATCH, BrainModuleConfig
from bci.decoders.meg_retrieval.export import MontageGraph
from bci.decoders.meg_retrieval.inputs import WindowsMixin, as_montage
from bci.decoders.meg_retrieval.losses import retrieval_loss
from bci.decoders.meg_retrieval.ranking import bank_targets, top_k_accuracy
from bci.decoders.torch_classifier import BestEpoch, decay_groups, report_epoch, seeded
from bci.decoders.torch_export import export_module
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from torch import nn

from bci.datasets.meg import (
    CLAMP,
    EPOCH_TMIN,
    H_FREQ,
    L_FREQ,
    MEG_SFREQ,
    Montage,
    RobustClamp,
    baseline_correct,
    meg_preprocessing,
)


class MEGRetrieval(WindowsMixin, BaseEstimator):
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
            out[s] = as_montage(value, n_sensors.pop(), f"MEGRetrieval: subject {s!r}")
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
        opt_cls = torch.optim.AdamW if self.weight_decay else torch.optim.Adam
        # the subject layers start at the identity; decay would pull them towards zero
        groups = decay_groups(module.named_parameters(), self.weight_decay,
                              exempt={"subject_layers"})
        optimizer = opt_cls(groups, lr=float(self.lr))
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
            report_epoch(type(self).__name__, record, int(self.epochs))
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
        bank, targets = bank_targets(Y, bank)
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
        return MontageGraph(self, s, bank=bank, head=head)

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
