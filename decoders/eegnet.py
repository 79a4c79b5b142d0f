"""EEGNet (Lawhern et al., J. Neural Eng. 2018), the compact convolutional network for
EEG decoding, as a trainable decoder.

EEGNet-F1,D (default EEGNet-8,2), for windows of C channels × T samples at the model's
rate ``fs`` (the stream rate divided by ``decimation``):

==========================================  ==================================
layer                                       output
==========================================  ==================================
temporal conv, F1 kernels 1 × fs/2, 'same'  F1 × C × T
batch norm
depthwise spatial conv C × 1, D per kernel  F1·D × 1 × T
(max-norm 1 per filter), batch norm, ELU
average pool 1 × 4, dropout                 F1·D × 1 × T/4
separable conv: depthwise 1 × 16 'same',    F2 × 1 × T/4
pointwise F2; batch norm, ELU
average pool 1 × 8, dropout                 F2 × 1 × T/32
dense (max-norm 0.25 per class), softmax    n_classes
==========================================  ==================================

Convolutions have no bias (batch norm follows), weights start Glorot-uniform as in the
Keras reference. Two choices differ from the Keras reference implementation and are
deliberate: batch norm uses PyTorch's momentum 0.1 (Keras' 0.99 corresponds to 0.01
here), so that running statistics settle within the few hundred updates a calibration
session gives; Keras' epsilon 1e-3 is kept. 'same' padding puts the odd extra sample
on the right, as Keras does.

Preprocessing is the runtime's causal band-pass (and decimation), so the windows used
for training are those the live loop decodes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from bci.decoders.torch_classifier import TorchClassifier
from torch import nn

#: Pooling of the two blocks: the window must hold at least their product in samples.
POOL1, POOL2 = 4, 8


def _same_pad(kernel: int) -> nn.ZeroPad2d:
    """Zero padding that keeps the length under a 1 × kernel convolution (Keras' 'same')."""
    total = kernel - 1
    return nn.ZeroPad2d((total // 2, total - total // 2, 0, 0))


class EEGNet(nn.Module):
    """The EEGNet network, windows in µV → logits.

    Parameters
    ----------
    n_channels, n_times : int
        Window shape at the model's rate; ``n_times`` ≥ 32.
    n_classes : int
    kernel_length : int
        Temporal kernel, half the model's sampling rate in the paper (64 at 128 Hz).
    F1, D, F2 : int
        Temporal filters, spatial filters per temporal filter, separable filters.
    dropout : float
        Dropout probability (paper: 0.5 within subject, 0.25 across subjects).
    separable_length : int
        Kernel of the separable convolution's depthwise part (16 in the paper).

    Shapes
    ------
    input : (batch, n_channels, n_times); output : (batch, n_classes)
    """

    def __init__(
        self, n_channels: int, n_times: int, n_classes: int, *, kernel_length: int = 64,
        F1: int = 8, D: int = 2, F2: int = 16, dropout: float = 0.5,
        separable_length: int = 16,
    ) -> None:
        super().__init__()
        if n_times < POOL1 * POOL2:
            raise ValueError(f"EEGNet: expected windows of at least {POOL1 * POOL2} samples "
                             f"at the model's rate, found {n_times}")
        self.temporal = nn.Sequential(
            _same_pad(kernel_length),
            nn.Conv2d(1, F1, (1, kernel_length), bias=False),
            nn.BatchNorm2d(F1, eps=1e-3, momentum=0.1),
        )
        spatial = nn.Conv2d(F1, F1 * D, (n_channels, 1), groups=F1, bias=False)
        spatial.max_norm = 1.0
        self.spatial = nn.Sequential(
            spatial, nn.BatchNorm2d(F1 * D, eps=1e-3, momentum=0.1), nn.ELU(),
            nn.AvgPool2d((1, POOL1)), nn.Dropout(dropout),
        )
        self.separable = nn.Sequential(
            _same_pad(separable_length),
            nn.Conv2d(F1 * D, F1 * D, (1, separable_length), groups=F1 * D, bias=False),
            nn.Conv2d(F1 * D, F2, 1, bias=False),
            nn.BatchNorm2d(F2, eps=1e-3, momentum=0.1), nn.ELU(),
            nn.AvgPool2d((1, POOL2)), nn.Dropout(dropout),
        )
        self.classify = nn.Linear(F2 * (n_times // POOL1 // POOL2), n_classes)
        self.classify.max_norm = 0.25
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.separable(self.spatial(self.temporal(x.unsqueeze(1))))
        return self.classify(x.flatten(1))


class EEGNetClassifier(TorchClassifier):
    """EEGNet trained with Adam on cross-entropy, early-stopped on a validation split.

    Parameters
    ----------
    sfreq : float
        Sampling rate of the stream, in Hz (before decimation).
    l_freq, h_freq : float
        Causal band-pass edges in Hz, applied at the stream rate.
    decimation : int
        Integer decimation after the band-pass (1: none). ``h_freq`` must lie below
        the Nyquist frequency after decimation.
    F1, D, F2, dropout : see :class:`EEGNet`
    kernel_length : int | None
        Temporal kernel; default half the model's rate, ``round(sfreq / decimation / 2)``.
    epochs, lr, weight_decay, batch_size, validation_fraction, patience, scale, seed,
    device : see :class:`bci.decoders.torch_classifier.TorchClassifier`
        Lawhern et al. trained 500 epochs with Adam at its default rate and kept the
        weights with the lowest validation loss.

    Attributes
    ----------
    classes_, module_, input_shape_, history_, best_epoch_
        As in :class:`~bci.decoders.torch_classifier.TorchClassifier`; ``module_.net`` is
        the :class:`EEGNet`.

    Notes
    -----
    ``fit`` takes windows ``(n_windows, n_channels, n_times)`` in volts that went
    through :meth:`preprocessing`, at ``sfreq / decimation``.
    """

    _input_ndim: ClassVar[tuple[int, ...]] = (3,)

    def __init__(
        self, *, sfreq: float, l_freq: float = 4.0, h_freq: float = 40.0,
        decimation: int = 1, F1: int = 8, D: int = 2, F2: int = 16,
        dropout: float = 0.5, kernel_length: int | None = None, epochs: int = 300,
        lr: float = 1e-3, weight_decay: float = 0.0, batch_size: int | None = 16,
        validation_fraction: float = 0.2, patience: int = 50, scale: float = 1e6,
        seed: int = 0, device: str = "cpu",
    ) -> None:
        super().__init__(
            lr=lr, weight_decay=weight_decay, epochs=epochs, batch_size=batch_size,
            validation_fraction=validation_fraction, patience=patience, scale=scale,
            seed=seed, device=device,
        )
        self.sfreq = sfreq
        self.l_freq = l_freq
        self.h_freq = h_freq
        self.decimation = decimation
        self.F1 = F1
        self.D = D
        self.F2 = F2
        self.dropout = dropout
        self.kernel_length = kernel_length

    def _model_sfreq(self) -> float:
        if not isinstance(self.decimation, int | np.integer) or self.decimation < 1:
            raise ValueError(f"EEGNetClassifier: decimation must be a positive integer, "
                             f"found {self.decimation!r}")
        if not float(self.sfreq) > 0:
            raise ValueError(f"EEGNetClassifier: sfreq must be positive, found {self.sfreq!r}")
        return float(self.sfreq) / int(self.decimation)

    def preprocessing(self) -> list[dict[str, Any]]:
        """Band-pass at the stream rate, then decimation when ``decimation > 1``.

        Raises
        ------
        ValueError
            If ``h_freq`` is not below the Nyquist frequency of the model's rate.
        """
        nyquist = self._model_sfreq() / 2
        if not 0 < float(self.l_freq) < float(self.h_freq) < nyquist:
            raise ValueError(
                f"EEGNetClassifier: expected 0 < l_freq < h_freq < {nyquist:g} Hz (Nyquist "
                f"after decimation by {self.decimation}), found l_freq={self.l_freq}, "
                f"h_freq={self.h_freq}"
            )
        nodes: list[dict[str, Any]] = [
            {"kind": "bandpass", "l_freq": float(self.l_freq), "h_freq": float(self.h_freq)}
        ]
        if self.decimation > 1:
            nodes.append({"kind": "decimate", "factor": int(self.decimation)})
        return nodes

    def _build_module(self, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
        self.preprocessing()  # validates sfreq, band edges and decimation
        n_channels, n_times = input_shape
        kernel = self.kernel_length or max(round(self._model_sfreq() / 2), 1)
        return EEGNet(n_channels, n_times, n_classes, kernel_length=int(kernel), F1=self.F1,
                      D=self.D, F2=self.F2, dropout=float(self.dropout))
