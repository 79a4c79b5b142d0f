"""The SSVEP deep neural network of Guney, Oblokulov and Ozkan (IEEE Trans. Biomed.
Eng. 69(2), 2022; arXiv 2011.08562), with its two-stage training.

Network, for windows of ``N_sub`` sub-bands × C channels × T samples (the paper uses
3 sub-bands, 9 occipital channels, T = 0.2–1 s at 250 Hz):

=====================================================  ===========================
layer                                                  output
=====================================================  ===========================
conv 1 × 1 across sub-bands, 1 filter, weights 1,      1 × C × T
no bias (a learnt weighted sum of the sub-bands)
conv C × 1, 120 filters (channel combination)          120 × 1 × T
dropout p1
conv 1 × 2, stride 2, 120 filters                      120 × 1 × T/2
dropout p2, ReLU
conv 1 × 10, 'same', 120 filters                       120 × 1 × T/2
dropout p3
fully connected, softmax                               n_classes
=====================================================  ===========================

Weights other than the first layer's start from N(0, 0.01²) (MATLAB's
"narrow-normal"), biases at zero. The layer order, sizes, initialisation and
hyperparameters follow the authors' reference code (github.com/osmanberke/
Deep-SSVEP-BCI, ``main.m``):

* first stage, :meth:`SSVEPDNNClassifier.fit` — a global model on the data of all
  subjects: Adam, learning rate 1e-4, L2 1e-3 (on weights, not biases, as MATLAB's
  ``L2Regularization`` does), mini-batches of 100, dropout (0.1, 0.1, 0.95), 1000
  epochs on the benchmark data set (800 on BETA);
* second stage, :meth:`SSVEPDNNClassifier.fine_tune` — a copy per subject, starting
  from the global weights: the first two dropouts raised to 0.6 on the benchmark data
  set (0.7 on BETA; 0.6 is the default here), the third kept at 0.95, same Adam and
  L2, full-batch (all of the subject's training trials), 1000 epochs.

Neither stage uses early stopping in the paper; ``validation_fraction`` defaults to 0.

Sub-band filters differ from the paper on purpose. The published ones are Chebyshev
type I band-passes ``[8k, 90]`` Hz (MATLAB ``designfilt`` order 2, 1 dB ripple) run
zero-phase (``filtfilt``) on each cut trial at 250 Hz. Zero-phase filtering needs the
future and a trial's edges, which a live loop does not have. Here the sub-bands are the
runtime's causal filter bank at the stream rate (:meth:`SSVEPDNNClassifier.preprocessing`,
Chebyshev I of order ``filter_order`` with ``rp`` dB ripple, upper edge 90 Hz or 0.45 ×
the stream rate if lower), and training windows are cut from the causally filtered
stream by the same code, so training and the live loop see the same signal. The phase
lag of a causal filter is learnt like any other fixed property of the input.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from bci.decoders.torch_classifier import TorchClassifier
from sklearn.utils.validation import check_is_fitted
from torch import nn

#: Upper edge of every sub-band in the paper, Hz.
PAPER_HIGH = 90.0
#: Lowest edge of sub-band k is k × this, Hz.
PAPER_SPACING = 8.0


def ssvep_bands(n_bands: int, sfreq: float) -> list[list[float]]:
    """The sub-bands ``[8k, 90]`` Hz, k = 1 … n_bands, upper edge ≤ 0.45·sfreq.

    Raises
    ------
    ValueError
        If a band's lower edge is not below the upper one at this rate.
    """
    high = min(PAPER_HIGH, 0.45 * float(sfreq))
    bands = [[PAPER_SPACING * k, high] for k in range(1, int(n_bands) + 1)]
    empty = [b for b in bands if not b[0] < b[1]]
    if empty:
        raise ValueError(
            f"SSVEPDNNClassifier: expected sub-bands below the upper edge {high:g} Hz "
            f"(0.45 × {sfreq:g} Hz), found empty bands {empty}; lower n_bands"
        )
    return bands


class SSVEPDNN(nn.Module):
    """The network, sub-band windows in µV → logits.

    Parameters
    ----------
    n_bands, n_channels, n_times : int
        Window shape; ``n_times`` ≥ 2.
    n_classes : int
    n_filters : int
        Filters of the channel and time convolutions (120 in the paper).
    dropout : (float, float, float)
        Probabilities of the three dropout layers.
    time_kernel : int
        Kernel of the last convolution (10 in the paper).

    Shapes
    ------
    input : (batch, n_bands, n_channels, n_times); output : (batch, n_classes)
    """

    def __init__(
        self, n_bands: int, n_channels: int, n_times: int, n_classes: int, *,
        n_filters: int = 120, dropout: Sequence[float] = (0.1, 0.1, 0.95),
        time_kernel: int = 10,
    ) -> None:
        super().__init__()
        if n_times < 2:
            raise ValueError(f"SSVEPDNN: expected windows of at least 2 samples, found "
                             f"{n_times}")
        p1, p2, p3 = _three(dropout)
        self.subbands = nn.Conv2d(n_bands, 1, 1, bias=False)
        self.channels = nn.Conv2d(1, n_filters, (n_channels, 1))
        self.drop1 = nn.Dropout(p1)
        self.downsample = nn.Conv2d(n_filters, n_filters, (1, 2), stride=(1, 2))
        self.drop2 = nn.Dropout(p2)
        # MATLAB's 'same' pads an odd total with the extra column on the right
        total = time_kernel - 1
        self.pad = nn.ZeroPad2d((total // 2, total - total // 2, 0, 0))
        self.time = nn.Conv2d(n_filters, n_filters, (1, time_kernel))
        self.drop3 = nn.Dropout(p3)
        self.classify = nn.Linear(n_filters * (n_times // 2), n_classes)
        nn.init.ones_(self.subbands.weight)
        for m in (self.channels, self.downsample, self.time, self.classify):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)

    def set_dropout(self, dropout: Sequence[float]) -> None:
        """Change the three dropout probabilities (the second training stage)."""
        self.drop1.p, self.drop2.p, self.drop3.p = _three(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(self.channels(self.subbands(x)))
        x = torch.relu(self.drop2(self.downsample(x)))
        x = self.drop3(self.time(self.pad(x)))
        return self.classify(x.flatten(1))


def _three(dropout: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(p) for p in dropout)
    if len(values) != 3 or not all(0.0 <= p < 1.0 for p in values):
        raise ValueError(f"SSVEPDNN: expected three dropout probabilities in [0, 1), found "
                         f"{dropout!r}")
    return values  # type: ignore[return-value]


class SSVEPDNNClassifier(TorchClassifier):
    """The SSVEP DNN: a global model by :meth:`fit`, per-subject copies by :meth:`fine_tune`.

    Parameters
    ----------
    sfreq : float
        Sampling rate of the stream, in Hz; sets the sub-band edges.
    n_bands : int
        Sub-bands ``[8k, 90]`` Hz (3 in the paper).
    filter_order, rp : int, float
        Chebyshev I prototype order and pass-band ripple (dB) of the causal sub-band
        filters.
    n_filters : int
        Filters of the convolutions (120).
    dropout : (float, float, float)
        Dropout of the first stage (0.1, 0.1, 0.95).
    fine_tune_dropout : (float, float, float)
        Dropout of the second stage (0.6, 0.6, 0.95 on the benchmark data set).
    fine_tune_epochs : int
        Epochs of the second stage (1000).
    fine_tune_batch_size : int | None
        Mini-batch of the second stage; ``None`` (the paper) uses all the subject's
        windows at once.
    epochs, lr, weight_decay, batch_size, validation_fraction, patience, scale, seed,
    device : see :class:`bci.decoders.torch_classifier.TorchClassifier`
        Defaults are the paper's first stage: 1000 epochs, 1e-4, 1e-3, 100, no early
        stopping. The learning rate and L2 apply to both stages.

    Attributes
    ----------
    classes_, module_, input_shape_, history_, best_epoch_
        As in :class:`~bci.decoders.torch_classifier.TorchClassifier`; ``module_.net`` is
        the :class:`SSVEPDNN`.
    fine_tuned_ : bool
        Whether this estimator came out of :meth:`fine_tune`.

    Notes
    -----
    ``fit`` takes windows ``(n_windows, n_bands, n_channels, n_times)`` in volts that
    went through :meth:`preprocessing`.
    """

    _input_ndim: ClassVar[tuple[int, ...]] = (4,)

    def __init__(
        self, *, sfreq: float, n_bands: int = 3, filter_order: int = 4, rp: float = 0.5,
        n_filters: int = 120, dropout: Sequence[float] = (0.1, 0.1, 0.95),
        fine_tune_dropout: Sequence[float] = (0.6, 0.6, 0.95), fine_tune_epochs: int = 1000,
        fine_tune_batch_size: int | None = None, epochs: int = 1000, lr: float = 1e-4,
        weight_decay: float = 1e-3, batch_size: int | None = 100,
        validation_fraction: float = 0.0, patience: int = 50, scale: float = 1e6,
        seed: int = 0, device: str = "cpu",
    ) -> None:
        super().__init__(
            lr=lr, weight_decay=weight_decay, epochs=epochs, batch_size=batch_size,
            validation_fraction=validation_fraction, patience=patience, scale=scale,
            seed=seed, device=device,
        )
        self.sfreq = sfreq
        self.n_bands = n_bands
        self.filter_order = filter_order
        self.rp = rp
        self.n_filters = n_filters
        self.dropout = dropout
        self.fine_tune_dropout = fine_tune_dropout
        self.fine_tune_epochs = fine_tune_epochs
        self.fine_tune_batch_size = fine_tune_batch_size

    def preprocessing(self) -> list[dict[str, Any]]:
        """The causal Chebyshev I filter bank ``[8k, min(90, 0.45·sfreq)]`` Hz."""
        return [{
            "kind": "filterbank", "bands": ssvep_bands(self.n_bands, self.sfreq),
            "order": int(self.filter_order), "ftype": "cheby1", "rp": float(self.rp),
        }]

    def _build_module(self, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
        n_bands, n_channels, n_times = input_shape
        if n_bands != self.n_bands:
            raise ValueError(f"SSVEPDNNClassifier: expected windows with n_bands="
                             f"{self.n_bands} sub-bands, found {n_bands}")
        self.preprocessing()  # validates the band edges at this rate
        return SSVEPDNN(n_bands, n_channels, n_times, n_classes,
                        n_filters=int(self.n_filters), dropout=self.dropout)

    def fit(self, X: np.ndarray, y: np.ndarray) -> SSVEPDNNClassifier:
        """First stage: train the global model (see :meth:`TorchClassifier.fit`)."""
        super().fit(X, y)
        self.fine_tuned_ = False
        return self

    def fine_tune(self, X: np.ndarray, y: np.ndarray) -> SSVEPDNNClassifier:
        """Second stage: a copy trained on one subject, from this model's weights.

        The global model is not modified.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_bands, n_channels, n_times)
            One subject's preprocessed windows, in volts.
        y : array-like, shape (n_windows,)
            Labels among ``classes_``.

        Returns
        -------
        tuned : SSVEPDNNClassifier
            Same hyperparameters and classes, ``fine_tuned_ = True``, with its own
            ``history_`` of the second stage and ``fine_tune_dropout`` in its network.
        """
        check_is_fitted(self, "module_")
        self._check_params(epochs=self.fine_tune_epochs, batch_size=self.fine_tune_batch_size)
        _three(self.fine_tune_dropout)
        X = self._check_X(X, fitted=True)
        y_idx = self._encode_labels(y, X.shape[0], known=self.classes_)
        tuned = copy.deepcopy(self)
        tuned.module_.net.set_dropout(self.fine_tune_dropout)
        with tuned._seeded():
            tuned.history_, tuned.best_epoch_ = tuned._train(
                tuned.module_, X, y_idx, epochs=self.fine_tune_epochs,
                batch_size=self.fine_tune_batch_size,
            )
        tuned.fine_tuned_ = True
        return tuned
