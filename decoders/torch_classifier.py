"""A scikit-learn classifier around a torch network, for the deep decoders.

:class:`TorchClassifier` holds what EEGNet, the SSVEP DNN and their kin share: label
handling, input checks, a seeded Adam training loop with optional early stopping on a
validation split carved from the training windows, batched prediction, and export to
ONNX through :func:`bci.decoders.torch_export.export_module`. A subclass only builds its
network (:meth:`TorchClassifier._build_module`) and declares its preprocessing.

Windows arrive in volts, like for every decoder; the network sees microvolts. The
conversion is a fixed layer at the front of ``module_`` (not a preprocessing step), so
the exported graph also takes volts and the runtime needs to know nothing about it.
Networks initialised for unit-scale inputs would barely move on 1e-5 V signals.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections import OrderedDict
from collections.abc import Container, Iterable, Iterator
from typing import Any, ClassVar

import numpy as np
import onnx
import torch
from bci.decoders.base import check_windows, encode_labels
from bci.decoders.torch_export import export_module
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

#: One INFO record per epoch (the CLI shows the newest as progress).
log = logging.getLogger(__name__)

#: Windows per forward pass in :meth:`TorchClassifier.predict_proba` and validation.
PREDICT_BATCH = 256


class Scale(nn.Module):
    """Multiply by a fixed factor (a buffer: exported, never trained).

    Parameters
    ----------
    factor : float
        E.g. 1e6 to turn volts into microvolts.
    """

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.register_buffer("factor", torch.tensor(float(factor), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


@contextlib.contextmanager
def seeded(seed: int, device: str = "cpu") -> Iterator[None]:
    """Seed torch inside a fork of its random state, so the caller's is untouched."""
    devices = []
    if str(device).startswith("cuda") and torch.cuda.is_available():
        devices = [torch.device(device).index or 0]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


def report_epoch(who: str, record: dict[str, Any], epochs: int) -> None:
    """Log one epoch's history ``record`` at INFO (the CLI shows the newest as progress)."""
    figures = ", ".join(f"{k.replace('_', ' ')} {v:.4g}" for k, v in record.items()
                        if k != "epoch" and isinstance(v, float))
    log.info("%s: epoch %d/%d%s", who, record["epoch"], epochs,
             f", {figures}" if figures else "")


class BestEpoch:
    """Early stopping: keeps the weights of the epoch with the lowest validation loss.

    Parameters
    ----------
    patience : int
        Epochs without a new best after which :meth:`update` says stop.
    """

    def __init__(self, patience: int) -> None:
        self.patience = int(patience)
        self.loss = np.inf
        self.epoch = 0
        self.state: dict[str, torch.Tensor] | None = None
        self.waited = 0

    def update(self, epoch: int, loss: float, module: nn.Module) -> bool:
        """Record epoch ``epoch``'s validation ``loss``; True when training should stop."""
        if loss < self.loss:
            self.loss, self.epoch, self.waited = loss, epoch, 0
            self.state = copy.deepcopy(module.state_dict())
        else:
            self.waited += 1
        return self.waited >= self.patience

    def restore(self, module: nn.Module, n_epochs: int) -> int:
        """Load the best weights into ``module``; the epoch they come from (the last one,
        ``n_epochs``, when nothing was validated)."""
        if self.state is None:
            return n_epochs
        module.load_state_dict(self.state)
        return self.epoch


def decay_groups(named_parameters: Iterable[tuple[str, nn.Parameter]], weight_decay: float,
                 *, exempt: Container[str] = ()) -> list[dict[str, Any]]:
    """Optimiser parameter groups: ``weight_decay`` on weights (conv kernels, dense
    matrices), none on biases, norm parameters and the ``exempt`` names."""
    named = list(named_parameters)
    decay = [p for k, p in named if p.ndim > 1 and k not in exempt]
    rest = [p for k, p in named if p.ndim <= 1 or k in exempt]
    return [{"params": decay, "weight_decay": float(weight_decay)},
            {"params": rest, "weight_decay": 0.0}]


def batch_starts(n: int, size: int) -> list[int]:
    """Start of each batch of ``size`` among ``n`` windows taken in order.

    A lone trailing window is left out: batch norm cannot train on a batch of one.
    """
    starts = list(range(0, n, size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return starts


def apply_max_norm(module: nn.Module) -> None:
    """Renormalise the weights of every submodule that declares a ``max_norm``.

    Each output unit's incoming weight vector (dimension 0 of ``weight``) is scaled
    down to an L2 norm of at most ``max_norm``, as Keras' ``max_norm`` constraint does
    after each update.
    """
    with torch.no_grad():
        for m in module.modules():
            limit = getattr(m, "max_norm", None)
            if limit is not None:
                m.weight.copy_(torch.renorm(m.weight, p=2, dim=0, maxnorm=float(limit)))


def _stratified_split(
    y: np.ndarray, fraction: float, rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a training and a validation part holding every class in proportion."""
    train, val = [], []
    for k in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == k))
        n_val = round(fraction * idx.size)
        n_val = min(max(n_val, 1), idx.size - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


class TorchClassifier(ClassifierMixin, BaseEstimator):
    """Base of the torch decoders: train, predict and export a network.

    Subclasses define ``__init__`` with every hyperparameter keyword-only (scikit-learn
    reads them from its signature), :meth:`_build_module` and ``preprocessing()``, and
    set ``_input_ndim`` to the rank of ``X`` they take.

    Parameters
    ----------
    lr : float
        Adam's learning rate.
    weight_decay : float
        L2 penalty, on weights only (conv kernels, dense matrices); biases and batch
        norm parameters are not decayed.
    epochs : int
        Maximum passes over the training windows.
    batch_size : int | None
        Windows per update; ``None`` for full-batch training.
    validation_fraction : float
        Share of each class held out from the windows given to ``fit`` to pick the
        epoch with the lowest validation loss (early stopping); 0 trains on all of
        them for ``epochs`` epochs.
    patience : int
        Epochs without a lower validation loss before training stops.
    scale : float
        Factor applied to the windows inside the network (1e6: volts → µV).
    seed : int
        Seeds weight initialisation, dropout, shuffling and the validation split;
        the caller's global torch random state is left as it was.
    device : str
        Torch device to train on (``"cpu"``, ``"cuda"``); the exported graph and
        ``predict_proba`` results do not depend on it beyond float rounding.

    Attributes
    ----------
    classes_ : ndarray of str, shape (n_classes,)
    module_ : torch.nn.Module
        ``Sequential(scale=Scale, net=<network>)``, mapping windows in volts to logits.
    input_shape_ : tuple of int
        Shape of one window, without the batch axis.
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss`` and, with a validation split,
        ``val_loss`` and ``val_accuracy``.
    best_epoch_ : int
        Epoch (from 1) whose weights were kept.
    """

    _input_ndim: ClassVar[tuple[int, ...]] = (3,)

    def __init__(
        self, *, lr: float = 1e-3, weight_decay: float = 0.0, epochs: int = 100,
        batch_size: int | None = 16, validation_fraction: float = 0.2, patience: int = 20,
        scale: float = 1e6, seed: int = 0, device: str = "cpu",
    ) -> None:
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.scale = scale
        self.seed = seed
        self.device = device

    # --- to be provided by subclasses -------------------------------------------------

    def _build_module(self, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
        """The network, mapping ``(batch, *input_shape)`` in µV to logits
        ``(batch, n_classes)``, freshly initialised (the global torch seed is set)."""
        raise NotImplementedError

    def preprocessing(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    # --- checks -------------------------------------------------------------------------

    def _who(self) -> str:
        return type(self).__name__

    def _check_params(self, *, epochs: int, batch_size: int | None) -> None:
        who = self._who()
        if not isinstance(epochs, int | np.integer) or epochs < 0:
            raise ValueError(f"{who}: epochs must be a non-negative integer, found {epochs!r}")
        if batch_size is not None and (
            not isinstance(batch_size, int | np.integer) or batch_size < 1
        ):
            raise ValueError(f"{who}: batch_size must be a positive integer or None, found "
                             f"{batch_size!r}")
        if not 0.0 <= float(self.validation_fraction) < 1.0:
            raise ValueError(f"{who}: validation_fraction must lie in [0, 1), found "
                             f"{self.validation_fraction!r}")
        if not isinstance(self.patience, int | np.integer) or self.patience < 1:
            raise ValueError(f"{who}: patience must be a positive integer, found "
                             f"{self.patience!r}")
        if not float(self.lr) > 0 or not float(self.weight_decay) >= 0:
            raise ValueError(f"{who}: expected lr > 0 and weight_decay >= 0, found "
                             f"{self.lr!r} and {self.weight_decay!r}")

    def _check_X(self, X: Any, *, fitted: bool) -> np.ndarray:
        X = check_windows(X, ndim=self._input_ndim, who=self._who())
        if fitted:
            check_is_fitted(self, "module_")
            if tuple(X.shape[1:]) != self.input_shape_:
                raise ValueError(
                    f"{self._who()}: expected windows of shape {self.input_shape_} (as in "
                    f"fit), found {tuple(X.shape[1:])}"
                )
        return np.ascontiguousarray(X, dtype=np.float32)

    def _encode_labels(self, y: Any, n: int, *, known: np.ndarray | None = None) -> np.ndarray:
        """Class indices of ``y`` (labels as strings), in ``known`` or in sorted order."""
        classes, idx = encode_labels(y, n, who=self._who(), known=known)
        if known is None:
            self.classes_ = classes
        return idx

    # --- training -------------------------------------------------------------------

    def fit(self, X: np.ndarray, y: np.ndarray) -> TorchClassifier:
        """Train a freshly initialised network.

        Parameters
        ----------
        X : ndarray, shape (n_windows, *window_shape)
            Preprocessed windows in volts.
        y : array-like, shape (n_windows,)
            Class labels; stored as strings in ``classes_``.

        Returns
        -------
        self
        """
        self._check_params(epochs=self.epochs, batch_size=self.batch_size)
        X = self._check_X(X, fitted=False)
        y_idx = self._encode_labels(y, X.shape[0])
        self.input_shape_ = tuple(int(d) for d in X.shape[1:])
        with self._seeded():
            net = self._build_module(self.input_shape_, len(self.classes_))
            self.module_ = nn.Sequential(OrderedDict(scale=Scale(self.scale), net=net))
            self.history_, self.best_epoch_ = self._train(
                self.module_, X, y_idx, epochs=self.epochs, batch_size=self.batch_size,
            )
        return self

    def _seeded(self) -> contextlib.AbstractContextManager[None]:
        return seeded(self.seed, self.device)

    def _train(
        self, module: nn.Module, X: np.ndarray, y: np.ndarray, *, epochs: int,
        batch_size: int | None,
    ) -> tuple[list[dict[str, float]], int]:
        """Adam on cross-entropy; keeps the epoch with the lowest validation loss."""
        rng = np.random.default_rng(int(self.seed))
        if self.validation_fraction > 0:
            counts = np.bincount(y)
            if counts[counts > 0].min() < 2:
                raise ValueError(
                    f"{self._who()}: a validation split needs at least 2 windows of every "
                    f"class, found counts {dict(enumerate(counts.tolist()))}; set "
                    f"validation_fraction=0"
                )
            train_idx, val_idx = _stratified_split(y, float(self.validation_fraction), rng)
        else:
            train_idx, val_idx = np.arange(y.size), np.zeros(0, np.int64)
        device = torch.device(self.device)
        module.to(device)
        Xt = torch.from_numpy(X).to(device)
        yt = torch.from_numpy(y).to(device)
        optimizer = torch.optim.Adam(decay_groups(module.named_parameters(), self.weight_decay),
                                     lr=float(self.lr))
        loss_fn = nn.CrossEntropyLoss()
        size = train_idx.size if batch_size is None else int(batch_size)
        history: list[dict[str, float]] = []
        best = BestEpoch(self.patience)
        for epoch in range(1, int(epochs) + 1):
            module.train()
            order = rng.permutation(train_idx)
            total, seen = 0.0, 0
            for start in batch_starts(order.size, size):
                idx = torch.from_numpy(order[start:start + size]).to(device)
                optimizer.zero_grad()
                loss = loss_fn(module(Xt[idx]), yt[idx])
                loss.backward()
                optimizer.step()
                apply_max_norm(module)
                total += loss.item() * idx.numel()
                seen += idx.numel()
            record = {"epoch": epoch, "train_loss": total / max(seen, 1)}
            if val_idx.size:
                logits = self._logits(module, Xt[torch.from_numpy(val_idx).to(device)])
                val_y = yt[torch.from_numpy(val_idx).to(device)]
                val_loss = float(loss_fn(logits, val_y))
                record["val_loss"] = val_loss
                record["val_accuracy"] = float((logits.argmax(-1) == val_y).float().mean())
            history.append(record)
            report_epoch(self._who(), record, int(epochs))
            if val_idx.size and best.update(epoch, val_loss, module):
                break
        best_epoch = best.restore(module, len(history))
        module.eval()
        return history, best_epoch

    @staticmethod
    def _logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        module.eval()
        with torch.no_grad():
            return torch.cat([module(x[i:i + PREDICT_BATCH])
                              for i in range(0, x.shape[0], PREDICT_BATCH)])

    # --- inference ----------------------------------------------------------------------

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, softmax of the network's logits.

        Parameters
        ----------
        X : ndarray, shape (n_windows, *input_shape_)

        Returns
        -------
        proba : ndarray of float64, shape (n_windows, n_classes)
            Columns in the order of ``classes_``.
        """
        X = self._check_X(X, fitted=True)
        device = next(self.module_.buffers()).device
        logits = self._logits(self.module_, torch.from_numpy(X).to(device))
        return torch.softmax(logits, dim=-1).cpu().numpy().astype(np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable class of each window, shape (n_windows,), from ``classes_``."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def to_onnx(self) -> onnx.ModelProto:
        """The fitted network followed by a softmax, as one ONNX graph.

        Returns
        -------
        model : onnx.ModelProto
            Input ``"x"`` of shape ``("batch", *input_shape_)`` in volts, output
            ``"probabilities"`` of shape ``(batch, n_classes)`` in the order of
            ``classes_``; see :func:`bci.decoders.torch_export.export_module`.
        """
        check_is_fitted(self, "module_")
        head = nn.Sequential(self.module_, nn.Softmax(dim=-1))
        return export_module(head, self.input_shape_, output_names=("probabilities",))
