"""FLEEG: an EEGNet split into site-specific input layers and shared later layers, for
federated training across sites whose montages, channel counts and rates differ.

After Liu et al., "Aggregating Intrinsic Information to Enhance BCI Performance through
Federated Learning", Neural Networks 2024. Every site has its own recordings; what it
may share is only the weights of layers whose shape does not depend on its montage.

For windows of C channels × T samples at the site's rate ``fs``, with pools ``p1``,
``p2`` chosen per site (:func:`site_geometry`) so that ``p1 · p2 · shared_times ≤ T``:

=====================================================  ===========================
layer                                                  output
=====================================================  ===========================
**site** (personalised, never leaves the site)
scale volts → µV (a fixed buffer)                      C × T
temporal conv, F1 kernels 1 × k_t ('same'), BN         F1 × C × T
depthwise spatial conv C × 1, D per kernel (max-norm   F1·D × 1 × T
1), BN, ELU
centre crop to p1 · p2 · shared_times samples          F1·D × 1 × p1·p2·S
average pool 1 × p1, dropout                           F1·D × 1 × p2·S
early block: depthwise 1 × k_e ('same'), pointwise F2, F2 × 1 × p2·S
BN, ELU
average pool 1 × p2, dropout                           F2 × 1 × S
**shared** (aggregated across sites)
later block: depthwise 1 × shared_kernel ('same'),     F2 × 1 × S
pointwise F2, BN, ELU, dropout
dense (max-norm 0.25 per class)                        n_classes
=====================================================  ===========================

``k_t`` spans ``kernel_seconds`` (half a second, EEGNet's fs/2) and ``k_e`` half a
second at the pooled rate (EEGNet's 16 at 32 Hz), so every site's kernels span the
same time in seconds whatever its rate; ``p1`` brings each site near 32 Hz, like
EEGNet's first pool at 128 Hz. The local output, ``(F2, 1, shared_times)``, is the
same at every site, so the shared block and classifier fit all of them.

Federated averaging moves :meth:`FLEEGClassifier.get_shared` arrays only: the trained
parameters under ``shared.`` (convolution kernels, batch-norm scale and shift, dense
weights and bias). Batch-norm running statistics stay at the site, in the file
:meth:`FLEEGClassifier.save_site` writes with the site layers, since each site's
features have their own distribution (as in FedBN).

Two choices make averaging work from the first round, where sites whose site layers
start at unrelated random weights would send shared gradients that cancel (measured:
several sites stayed at chance for 15 rounds that way):

- *aligned initialisation*: every site layer starts as the same function of physical
  units (a 4–40 Hz filter bank in seconds; smooth scalp patterns at the electrodes'
  positions; the same numbers where shapes agree), drawn from ``seed`` alone, so that
  local feature ``j`` means about the same at every site before any training;
- *statistics refreshed after averaging*: :meth:`FLEEGClassifier.refresh_statistics`
  recomputes the local batch-norm statistics for the averaged shared weights.

Each site ends with one full model (its site layers + the shared layers), exported by
:meth:`FLEEGClassifier.export_onnx` as one ``.onnx`` file with its ``bci`` spec.

A federation round at a site is ``set_shared(global)`` → ``fit(X, y)`` (``epochs``
local epochs, warm start) → ``get_shared()`` to the server, which forms
:func:`weighted_average`; at the end each site takes the final average,
``refresh_statistics(X)`` and exports. On the planted sites of
:mod:`bci.datasets.planted_sites` (10 training trials at one site, 60 at two others), 10
rounds of one epoch (three at the small site, batch 4) with ``lr=5e-3`` lift the small
site from about 0.6 (alone) to about 0.95 (see ``benchmarks/fleeg_sites.py``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mne
import numpy as np
import onnx
import torch
from bci.decoders.base import check_windows, encode_labels
from bci.decoders.torch_classifier import (
    PREDICT_BATCH,
    Scale,
    apply_max_norm,
    batch_starts,
    decay_groups,
    report_epoch,
)
from bci.decoders.torch_export import export_module
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

from bci.errors import ModelError
from bci.spec import DecoderSpec, WindowSpec, write_spec

log = logging.getLogger(__name__)

#: Rate, in Hz, the first pool brings each site near (EEGNet's 128 Hz / 4).
POOLED_RATE = 32.0
#: How far (as a ratio) the first pool may stray from POOLED_RATE to waste fewer samples.
POOL_TOLERANCE = 1.5
#: Version of the site file format written by :meth:`FLEEGClassifier.save_site`.
SITE_FILE_VERSION = 1
#: Buffers that are statistics, not trained parameters: they stay at the site.
_LOCAL_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


@functools.lru_cache(maxsize=1)
def _standard_positions() -> dict[str, np.ndarray]:
    """Lower-cased 10-05 name → position in metres (MNE's template head)."""
    # MNE 1.13 renamed the template; the positions are identical.
    name = "colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages() \
        else "standard_1005"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        pos = mne.channels.make_standard_montage(name).get_positions()["ch_pos"]
    return {k.lower(): np.asarray(v, float) for k, v in pos.items()}


def standard_positions(ch_names: Sequence[str]) -> np.ndarray | None:
    """Positions of 10-05 channel names, shape (n_channels, 3) in metres, or ``None``
    when a name is not in the system. Case and trailing dots (EEGMMIDB's 'Fc5.') are
    ignored."""
    table = _standard_positions()
    keys = [str(n).strip().rstrip(".").lower() for n in ch_names]
    if not keys or any(k not in table for k in keys):
        return None
    return np.stack([table[k] for k in keys])


def _same_pad(kernel: int) -> nn.ZeroPad2d:
    """Zero padding that keeps the length under a 1 × kernel convolution (Keras' 'same')."""
    total = kernel - 1
    return nn.ZeroPad2d((total // 2, total - total // 2, 0, 0))


@dataclass(frozen=True, slots=True)
class SiteGeometry:
    """Per-site kernel, crop and pool sizes, all in samples.

    Attributes
    ----------
    temporal_kernel : int
        ``k_t``, the first convolution's length.
    crop_start, crop_length : int
        The part of the window kept before pooling: ``crop_length = pool1 · pool2 ·
        shared_times``, centred (the odd sample of the margin goes to the end).
    pool1 : int
        First average pool.
    early_kernel : int
        ``k_e``, the early block's depthwise convolution, at the rate after ``pool1``.
    pool2 : int
        Second average pool; its output has ``shared_times`` samples.
    """

    temporal_kernel: int
    crop_start: int
    crop_length: int
    pool1: int
    early_kernel: int
    pool2: int


def site_geometry(sfreq: float, n_times: int, *, shared_times: int,
                  kernel_seconds: float = 0.5) -> SiteGeometry:
    """Choose integer kernels and pools so a site's local output has ``shared_times`` samples.

    The first pool ``p1`` is the integer nearest ``sfreq / POOLED_RATE`` among those
    within a factor :data:`POOL_TOLERANCE` that waste the fewest samples (a window of
    500 samples at 250 Hz keeps 480 with ``p1 = 10``, against 448 with ``p1 = 8``);
    ``p2 = (T // p1) // shared_times``. Integer pools, not adaptive pooling, so the
    exported graph has fixed, plain operators.

    Raises
    ------
    ValueError
        If the window is shorter than ``shared_times`` samples, or the rate is not
        positive.
    """
    if not float(sfreq) > 0:
        raise ValueError(f"site_geometry: expected a positive sfreq, found {sfreq!r}")
    if not isinstance(shared_times, int | np.integer) or shared_times < 1:
        raise ValueError(f"site_geometry: expected shared_times >= 1, found {shared_times!r}")
    if not isinstance(n_times, int | np.integer) or n_times < shared_times:
        raise ValueError(f"site_geometry: expected windows of at least shared_times="
                         f"{shared_times} samples, found n_times={n_times!r}")
    n_times, shared_times = int(n_times), int(shared_times)
    target = float(sfreq) / POOLED_RATE
    feasible = range(1, n_times // shared_times + 1)
    near = [p for p in feasible if abs(math.log(p / target)) <= math.log(POOL_TOLERANCE)]

    def used(p: int) -> int:
        return p * ((n_times // p) // shared_times) * shared_times

    p1 = max(near or feasible, key=lambda p: (used(p), -abs(math.log(p / target))))
    p2 = (n_times // p1) // shared_times
    length = p1 * p2 * shared_times
    return SiteGeometry(
        temporal_kernel=max(round(float(sfreq) * float(kernel_seconds)), 1),
        crop_start=(n_times - length) // 2, crop_length=length, pool1=p1,
        early_kernel=max(round(0.5 * float(sfreq) / p1), 1), pool2=p2,
    )


class _Crop(nn.Module):
    """Keep samples ``start:start + length`` of the last axis (an ONNX Slice)."""

    def __init__(self, start: int, length: int) -> None:
        super().__init__()
        self.start, self.stop = int(start), int(start) + int(length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.start:self.stop]


class SiteLayers(nn.Module):
    """The personalised part: volts ``(batch, C, T)`` → features ``(batch, F2, 1, S)``."""

    def __init__(self, n_channels: int, geometry: SiteGeometry, *, F1: int, D: int, F2: int,
                 dropout: float, scale: float = 1e6) -> None:
        super().__init__()
        g = geometry
        self.scale = Scale(scale)
        self.temporal = nn.Sequential(
            _same_pad(g.temporal_kernel),
            nn.Conv2d(1, F1, (1, g.temporal_kernel), bias=False),
            nn.BatchNorm2d(F1, eps=1e-3, momentum=0.1),
        )
        spatial = nn.Conv2d(F1, F1 * D, (n_channels, 1), groups=F1, bias=False)
        spatial.max_norm = 1.0
        self.spatial = nn.Sequential(
            spatial, nn.BatchNorm2d(F1 * D, eps=1e-3, momentum=0.1), nn.ELU(),
            _Crop(g.crop_start, g.crop_length), nn.AvgPool2d((1, g.pool1)), nn.Dropout(dropout),
        )
        self.early = nn.Sequential(
            _same_pad(g.early_kernel),
            nn.Conv2d(F1 * D, F1 * D, (1, g.early_kernel), groups=F1 * D, bias=False),
            nn.Conv2d(F1 * D, F2, 1, bias=False),
            nn.BatchNorm2d(F2, eps=1e-3, momentum=0.1), nn.ELU(),
            nn.AvgPool2d((1, g.pool2)), nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.early(self.spatial(self.temporal(self.scale(x).unsqueeze(1))))


class SharedLayers(nn.Module):
    """The shared part: features ``(batch, F2, 1, S)`` → logits ``(batch, n_classes)``."""

    def __init__(self, n_classes: int, *, F2: int, shared_times: int, shared_kernel: int,
                 dropout: float) -> None:
        super().__init__()
        self.later = nn.Sequential(
            _same_pad(shared_kernel),
            nn.Conv2d(F2, F2, (1, shared_kernel), groups=F2, bias=False),
            nn.Conv2d(F2, F2, 1, bias=False),
            nn.BatchNorm2d(F2, eps=1e-3, momentum=0.1), nn.ELU(), nn.Dropout(dropout),
        )
        self.classify = nn.Linear(F2 * shared_times, n_classes)
        self.classify.max_norm = 0.25

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.classify(self.later(z).flatten(1))


class FLEEGNet(nn.Module):
    """The FLEEG network of one site: windows in volts → logits.

    Parameters
    ----------
    n_channels, n_times : int
        The site's window shape.
    n_classes : int
    sfreq : float
        The site's sampling rate (sets kernels and pools, :func:`site_geometry`).
    F1, D, F2 : int
        Temporal filters, spatial filters per temporal filter, early/later block
        filters (as in EEGNet).
    shared_times : int
        Time samples of the local output, the same at every site.
    shared_kernel : int
        Length of the later block's depthwise convolution.
    kernel_seconds : float
        Length of the temporal convolution, in seconds.
    dropout : float
    scale : float
        Factor from the input's unit to the network's (1e6: volts → µV).
    ch_pos : ndarray, shape (n_channels, 3) | None
        Electrode positions in metres; they make the spatial filters start as the same
        scalp patterns at every site (see :func:`_aligned_init`).
    init_seed : int
        Seeds every initial weight; sites of one federation use the same value.

    Attributes
    ----------
    site : SiteLayers
        Parameters and buffers that stay at the site.
    shared : SharedLayers
        Parameters that are averaged across sites (its batch-norm statistics stay).
    geometry : SiteGeometry

    Shapes
    ------
    input : (batch, n_channels, n_times); ``site`` output : (batch, F2, 1, shared_times);
    output : (batch, n_classes)
    """

    def __init__(
        self, n_channels: int, n_times: int, n_classes: int, *, sfreq: float, F1: int = 8,
        D: int = 2, F2: int = 16, shared_times: int = 8, shared_kernel: int = 4,
        kernel_seconds: float = 0.5, dropout: float = 0.25, scale: float = 1e6,
        ch_pos: np.ndarray | None = None, init_seed: int = 0,
    ) -> None:
        super().__init__()
        self.geometry = site_geometry(sfreq, n_times, shared_times=shared_times,
                                      kernel_seconds=kernel_seconds)
        self.site = SiteLayers(n_channels, self.geometry, F1=F1, D=D, F2=F2, dropout=dropout,
                               scale=scale)
        self.shared = SharedLayers(n_classes, F2=F2, shared_times=shared_times,
                                   shared_kernel=shared_kernel, dropout=dropout)
        _aligned_init(self, sfreq=float(sfreq), ch_pos=ch_pos, init_seed=int(init_seed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared(self.site(x))


def _xavier(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int,
            fan_out: int) -> np.ndarray:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape)


def _set(param: torch.Tensor, value: np.ndarray) -> None:
    with torch.no_grad():
        param.copy_(torch.as_tensor(value.reshape(param.shape), dtype=torch.float32))


def _aligned_init(net: FLEEGNet, *, sfreq: float, ch_pos: np.ndarray | None,
                  init_seed: int) -> None:
    """Initial weights that mean the same in seconds, hertz and scalp position at every
    site, drawn from ``init_seed`` alone.

    Federated averaging only makes sense if feature ``j`` of one site's local output
    means what feature ``j`` of another's does. Shared layers start identical anyway
    (same seed); the site layers cannot be copied (their shapes differ), so they are
    drawn as the same *functions*, sampled at each site's rate and electrodes:

    - temporal kernels: a Hann-windowed cosine filter bank, log-spaced 4–40 Hz;
    - spatial filters: smooth random fields over the scalp (random Fourier features of
      the electrode position, the same fields at every site) when positions are known,
      else Glorot-uniform from the site's draw (no alignment possible);
    - early depthwise kernels: a Hann smoothing window (a power envelope after ELU);
    - early pointwise, shared layers: Glorot-uniform from ``init_seed`` (same shapes at
      every site, so the same numbers).

    Kernels are scaled to the norm a Glorot-uniform draw has on average, so training
    dynamics are those of the usual initialisation.
    """
    site, shared = net.site, net.shared
    temporal = site.temporal[1]
    F1, _, _, k_t = temporal.weight.shape
    t = (np.arange(k_t) - (k_t - 1) / 2) / sfreq
    freqs = np.geomspace(4.0, 40.0, F1)
    bank = np.hanning(k_t + 2)[1:-1] * np.cos(2 * np.pi * freqs[:, None] * t[None, :])
    bank *= math.sqrt(2.0 / (1 + F1)) / np.linalg.norm(bank, axis=1, keepdims=True)
    _set(temporal.weight, bank)

    spatial = site.spatial[0]
    n_filters, _, n_channels, _ = spatial.weight.shape
    D = n_filters // F1
    target = math.sqrt(2.0 / (1 + D))  # the Glorot norm of one spatial filter
    rng = np.random.default_rng([init_seed, 1])
    n_waves = 8
    # wave vectors with wavelengths around 12 cm: scalp-wide, smooth patterns
    omega = rng.standard_normal((n_waves, 3)) / 0.12
    phase = rng.uniform(0, 2 * np.pi, n_waves)
    amp = rng.standard_normal((n_filters, n_waves))
    if ch_pos is not None:
        basis = np.cos(2 * np.pi * np.asarray(ch_pos, float) @ omega.T + phase)  # (C, waves)
        w = amp @ basis.T
    else:
        w = np.random.default_rng([init_seed, 2, n_channels]).standard_normal(
            (n_filters, n_channels))
    w *= target / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
    _set(spatial.weight, w)

    depthwise, pointwise = site.early[1], site.early[2]
    k_e = depthwise.weight.shape[-1]
    window = np.hanning(k_e + 2)[1:-1]
    window /= np.linalg.norm(window)
    _set(depthwise.weight, np.tile(window, (depthwise.weight.shape[0], 1)))
    rng = np.random.default_rng([init_seed, 3])
    f_out, f_in = pointwise.weight.shape[:2]
    _set(pointwise.weight, _xavier(rng, (f_out, f_in), f_in, f_out))

    rng = np.random.default_rng([init_seed, 4])
    for m in shared.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            shape = tuple(m.weight.shape)
            if isinstance(m, nn.Conv2d):
                receptive = shape[2] * shape[3]
                fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
            else:
                fan_in, fan_out = shape[1], shape[0]
            _set(m.weight, _xavier(rng, shape, fan_in, fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def weighted_average(updates: Sequence[Sequence[np.ndarray]],
                     weights: Sequence[float]) -> list[np.ndarray]:
    """Federated averaging: ``Σ_i w_i · update_i / Σ_i w_i``, array by array.

    Parameters
    ----------
    updates : sequence of sequences of ndarray
        Each site's :meth:`FLEEGClassifier.get_shared` arrays, in the same order.
    weights : sequence of float
        Per site, usually its number of training windows.

    Returns
    -------
    list of ndarray (float32)

    Raises
    ------
    ValueError
        If sites disagree on the number or shapes of arrays, an array is not finite,
        or the weights are not positive.
    """
    updates = [list(u) for u in updates]
    w = np.asarray(weights, dtype=np.float64)
    if not updates or w.shape != (len(updates),) or not (w > 0).all():
        raise ValueError(f"weighted_average: expected one positive weight per update, found "
                         f"{len(updates)} updates and weights {w.tolist()}")
    shapes = [tuple(np.shape(a)) for a in updates[0]]
    for i, u in enumerate(updates):
        found = [tuple(np.shape(a)) for a in u]
        if found != shapes:
            raise ValueError(f"weighted_average: update {i} has shapes {found}, expected "
                             f"{shapes}")
        for k, a in enumerate(u):
            if not np.isfinite(a).all():
                raise ValueError(f"weighted_average: update {i}, array {k}: expected finite "
                                 f"values, found NaN/Inf")
    w = w / w.sum()
    return [np.sum([wi * np.asarray(u[k], np.float64) for wi, u in zip(w, updates,
                                                                        strict=True)],
                   axis=0).astype(np.float32) for k in range(len(shapes))]


class FLEEGClassifier(ClassifierMixin, BaseEstimator):
    """One site's FLEEG model: scikit-learn training, shared-weight exchange, export.

    Parameters
    ----------
    sfreq : float
        The site's sampling rate, in Hz (of the windows given to ``fit``).
    epochs : int
        Passes over the windows per call of :meth:`fit`: one federated round's local
        work (the default, 1, suits rounds; for training a site alone give the whole
        budget, e.g. 30).
    batch_size : int
        Windows per Adam update.
    lr : float
        Adam's learning rate. A fresh optimizer starts at every ``fit``, as a site
        does in each federated round (its moments would be stale after averaging).
    weight_decay : float
        L2 penalty on weights (kernels, dense matrix); not on biases or batch norm.
    F1, D, F2, shared_times, shared_kernel, kernel_seconds, dropout : see :class:`FLEEGNet`
        All sites of a federation must agree on ``F2``, ``shared_times`` and
        ``shared_kernel`` (the shared layers' shapes) and on the class list.
    seed : int
        Seeds initialisation, and with the count of ``fit`` calls, shuffling and
        dropout; the caller's global torch random state is left as it was. Sites of
        one federation use the same seed, so that their layers start aligned (the
        shared layers then start identical, and the site layers as the same functions
        of time, frequency and scalp position).

    Attributes
    ----------
    module_ : FLEEGNet
    classes_ : ndarray of str, shape (n_classes,)
    n_channels_, n_times_ : int
    ch_names_ : list of str | None
        The site's channel names when :meth:`initialize` was given them.
    n_fits_ : int
        Calls of ``fit`` so far (varies the shuffling from round to round).
    history_ : list of dict
        Per epoch of every ``fit``: ``fit``, ``epoch``, ``train_loss``.
    """

    def __init__(
        self, *, sfreq: float, epochs: int = 1, batch_size: int = 16, lr: float = 5e-3,
        weight_decay: float = 0.0, F1: int = 8, D: int = 2, F2: int = 16,
        shared_times: int = 8, shared_kernel: int = 4, kernel_seconds: float = 0.5,
        dropout: float = 0.25, seed: int = 0,
    ) -> None:
        self.sfreq = sfreq
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.F1 = F1
        self.D = D
        self.F2 = F2
        self.shared_times = shared_times
        self.shared_kernel = shared_kernel
        self.kernel_seconds = kernel_seconds
        self.dropout = dropout
        self.seed = seed

    # --- building ---------------------------------------------------------------------

    def _who(self) -> str:
        return type(self).__name__

    @contextlib.contextmanager
    def _seeded(self, *entropy: int) -> Iterator[None]:
        """Seed torch inside a fork of its random state, so the caller's is untouched."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(np.random.SeedSequence([int(self.seed), *entropy])
                                  .generate_state(1)[0]))
            yield

    def initialize(self, n_channels: int, n_times: int, classes: Sequence[str], *,
                   ch_names: Sequence[str] | None = None,
                   ch_pos: np.ndarray | None = None) -> FLEEGClassifier:
        """Build a freshly initialised network for windows ``(n_channels, n_times)``.

        Sites of one federation call this with the same ``classes`` (in the same
        order: they index the shared classifier's outputs). The shared layers start
        from the weights ``seed`` gives; a federation overwrites them with
        :meth:`set_shared` before training.

        Parameters
        ----------
        n_channels, n_times : int
        classes : sequence of str
        ch_names : sequence of str | None
            The site's channel names, checked by :meth:`load_site` and
            :meth:`export_onnx`; 10-05 names also give the electrode positions.
        ch_pos : ndarray, shape (n_channels, 3) | None
            Electrode positions in metres (head coordinates of MNE's 10-05 template),
            when the names are not standard. With positions, the spatial filters
            start as the same scalp patterns at every site (see :class:`FLEEGNet`);
            without, they start at random.

        Returns
        -------
        self
        """
        classes = [str(c) for c in classes]
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ValueError(f"{self._who()}: expected at least 2 distinct classes, found "
                             f"{classes}")
        if not isinstance(n_channels, int | np.integer) or n_channels < 1:
            raise ValueError(f"{self._who()}: expected n_channels >= 1, found {n_channels!r}")
        if ch_names is not None and len(ch_names) != n_channels:
            raise ValueError(f"{self._who()}: expected {n_channels} channel names, found "
                             f"{len(ch_names)}")
        if ch_pos is None and ch_names is not None:
            ch_pos = standard_positions(ch_names)
        if ch_pos is not None:
            ch_pos = np.asarray(ch_pos, float)
            if ch_pos.shape != (n_channels, 3) or not np.isfinite(ch_pos).all():
                raise ValueError(f"{self._who()}: expected finite ch_pos of shape "
                                 f"({n_channels}, 3), found {ch_pos.shape}")
        else:
            log.info("%s: no electrode positions; spatial filters start at random",
                     self._who())
        with self._seeded(0):
            self.module_ = FLEEGNet(
                int(n_channels), int(n_times), len(classes), sfreq=float(self.sfreq),
                F1=int(self.F1), D=int(self.D), F2=int(self.F2),
                shared_times=int(self.shared_times), shared_kernel=int(self.shared_kernel),
                kernel_seconds=float(self.kernel_seconds), dropout=float(self.dropout),
                ch_pos=ch_pos, init_seed=int(self.seed),
            ).eval()
        self.classes_ = np.asarray(classes, dtype=str)
        self.n_channels_, self.n_times_ = int(n_channels), int(n_times)
        self.ch_names_ = None if ch_names is None else [str(c) for c in ch_names]
        self.n_fits_ = 0
        self.history_: list[dict[str, float]] = []
        return self

    def _check_X(self, X: Any) -> np.ndarray:
        X = check_windows(X, ndim=(3,), who=self._who())
        check_is_fitted(self, "module_")
        if tuple(X.shape[1:]) != (self.n_channels_, self.n_times_):
            raise ValueError(f"{self._who()}: expected windows of shape "
                             f"({self.n_channels_}, {self.n_times_}), found {X.shape[1:]}")
        return np.ascontiguousarray(X, dtype=np.float32)

    def _encode(self, y: Any, n: int) -> np.ndarray:
        return encode_labels(y, n, who=self._who(), known=self.classes_)[1]

    # --- training ---------------------------------------------------------------------

    def fit(self, X: np.ndarray, y: np.ndarray) -> FLEEGClassifier:
        """Train ``epochs`` epochs; initialise first if needed, else warm start.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_channels, n_times)
            Windows in volts, at ``sfreq``.
        y : array-like of str, shape (n_windows,)
            Labels; when not yet initialised, the sorted distinct labels become
            ``classes_``.

        Returns
        -------
        self
        """
        if not isinstance(self.epochs, int | np.integer) or self.epochs < 0:
            raise ValueError(f"{self._who()}: epochs must be a non-negative integer, found "
                             f"{self.epochs!r}")
        if not isinstance(self.batch_size, int | np.integer) or self.batch_size < 1:
            raise ValueError(f"{self._who()}: batch_size must be a positive integer, found "
                             f"{self.batch_size!r}")
        X = check_windows(X, ndim=(3,), who=self._who())
        if not hasattr(self, "module_"):
            self.initialize(X.shape[1], X.shape[2], np.unique(np.asarray(y).astype(str)))
        X = self._check_X(X)
        y_idx = self._encode(y, X.shape[0])
        self.n_fits_ += 1
        with self._seeded(1, self.n_fits_):
            self._train(torch.from_numpy(X), torch.from_numpy(y_idx))
        return self

    def fit_site(self, X: np.ndarray, y: np.ndarray, *,
                 epochs: int | None = None) -> FLEEGClassifier:
        """Train the site layers only, the shared parameters held fixed.

        A site that receives the federation's final shared weights adapts its own
        layers to them this way, so that its model is exactly "its site layers + the
        shared layers" (the shared block's batch-norm statistics follow the data, as
        they are local anyway).

        Parameters
        ----------
        X, y : see :meth:`fit` (the estimator must be initialised)
        epochs : int | None
            Default ``self.epochs``.

        Returns
        -------
        self
        """
        check_is_fitted(self, "module_")
        X = self._check_X(check_windows(X, ndim=(3,), who=self._who()))
        y_idx = self._encode(y, X.shape[0])
        self.n_fits_ += 1
        epochs = self.epochs if epochs is None else epochs
        with self._seeded(1, self.n_fits_):
            self._train(torch.from_numpy(X), torch.from_numpy(y_idx), epochs=int(epochs),
                        site_only=True)
        return self

    def _train(self, X: torch.Tensor, y: torch.Tensor, *, epochs: int | None = None,
               site_only: bool = False) -> None:
        module = self.module_
        rng = np.random.default_rng([int(self.seed), 2, self.n_fits_])
        trained = [(k, p) for k, p in module.named_parameters()
                   if not (site_only and k.startswith("shared."))]
        optimizer = torch.optim.Adam(decay_groups(trained, self.weight_decay),
                                     lr=float(self.lr))
        loss_fn = nn.CrossEntropyLoss()
        n, size = X.shape[0], int(self.batch_size)
        epochs = int(self.epochs) if epochs is None else epochs
        module.train()
        try:
            for epoch in range(1, epochs + 1):
                order = rng.permutation(n)
                total, seen = 0.0, 0
                for start in batch_starts(n, size):
                    idx = torch.from_numpy(order[start:start + size])
                    if idx.numel() < 2:
                        continue  # batch norm cannot train on a single window
                    optimizer.zero_grad()
                    loss = loss_fn(module(X[idx]), y[idx])
                    loss.backward()
                    optimizer.step()
                    apply_max_norm(module.site if site_only else module)
                    total += loss.item() * idx.numel()
                    seen += idx.numel()
                self.history_.append({"fit": self.n_fits_, "epoch": epoch,
                                      "site_only": site_only,
                                      "train_loss": total / max(seen, 1)})
                report_epoch(self._who(), self.history_[-1], epochs)
        finally:
            module.eval()

    def refresh_statistics(self, X: np.ndarray) -> FLEEGClassifier:
        """Recompute every batch-norm running statistic on ``X`` with the current weights.

        After :meth:`set_shared` the shared block's statistics still describe the
        features of the site's *own* last local weights, not the federation's average;
        a site calls this on its training windows before predicting or exporting with
        new shared weights. Only statistics change (no gradient, dropout off); they are
        the exact mean and variance over ``X`` (batch norm's cumulative average).

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_channels, n_times)
            The site's own windows, in volts (at least 2).

        Returns
        -------
        self
        """
        X = torch.from_numpy(self._check_X(X))
        if X.shape[0] < 2:
            raise ValueError(f"{self._who()}.refresh_statistics: expected at least 2 windows, "
                             f"found {X.shape[0]}")
        norms = [m for m in self.module_.modules() if isinstance(m, nn.BatchNorm2d)]
        momenta = [m.momentum for m in norms]
        try:
            self.module_.eval()
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the batches below
                m.train()
            with torch.no_grad():
                for i in range(0, X.shape[0], PREDICT_BATCH):
                    if X.shape[0] - i >= 2:  # a lone window has no variance
                        self.module_(X[i:i + PREDICT_BATCH])
        finally:
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum
            self.module_.eval()
        return self

    # --- inference --------------------------------------------------------------------

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n_windows, n_classes), columns as ``classes_``."""
        X = torch.from_numpy(self._check_X(X))
        self.module_.eval()
        with torch.no_grad():
            logits = torch.cat([self.module_(X[i:i + PREDICT_BATCH])
                                for i in range(0, X.shape[0], PREDICT_BATCH)])
        return torch.softmax(logits, dim=-1).numpy().astype(np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable class of each window, shape (n_windows,)."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    # --- the federated exchange ---------------------------------------------------------

    def shared_keys(self) -> list[str]:
        """State-dict keys of the shared, trained parameters, in a fixed order.

        Everything under ``shared.`` that is a parameter; batch-norm running
        statistics (buffers) are not among them and stay at the site.
        """
        check_is_fitted(self, "module_")
        return [k for k, _ in self.module_.named_parameters() if k.startswith("shared.")]

    def get_shared(self) -> list[np.ndarray]:
        """Copies of the shared parameters, float32, in :meth:`shared_keys` order."""
        state = self.module_.state_dict()
        return [state[k].detach().cpu().numpy().astype(np.float32, copy=True)
                for k in self.shared_keys()]

    def set_shared(self, arrays: Sequence[np.ndarray]) -> None:
        """Replace the shared parameters (e.g. by the federation's average).

        Parameters
        ----------
        arrays : sequence of ndarray
            In :meth:`shared_keys` order, with their shapes, finite.

        Raises
        ------
        ValueError
            On a wrong count, a wrong shape, a non-numeric or a non-finite array, naming
            the key, what was expected and what was found. Nothing is changed then.
        """
        keys = self.shared_keys()
        arrays = list(arrays)
        if len(arrays) != len(keys):
            raise ValueError(f"{self._who()}.set_shared: expected {len(keys)} arrays "
                             f"({keys}), found {len(arrays)}")
        params = dict(self.module_.named_parameters())
        checked = []
        for key, a in zip(keys, arrays, strict=True):
            a = np.asarray(a)
            expected = tuple(params[key].shape)
            if a.shape != expected:
                raise ValueError(f"{self._who()}.set_shared: {key}: expected shape {expected}, "
                                 f"found {a.shape}")
            if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
                raise ValueError(f"{self._who()}.set_shared: {key}: expected a numeric array, "
                                 f"found dtype {a.dtype}")
            bad = int((~np.isfinite(a)).sum())
            if bad:
                raise ValueError(f"{self._who()}.set_shared: {key}: expected finite values, "
                                 f"found {bad} NaN/Inf of {a.size}")
            checked.append(torch.from_numpy(np.array(a, dtype=np.float32)))
        with torch.no_grad():
            for key, t in zip(keys, checked, strict=True):
                params[key].copy_(t)

    # --- the part that stays at the site --------------------------------------------------

    def _signature(self) -> dict[str, Any]:
        """What a site file must match: shapes, classes, rate, architecture."""
        return {"n_channels": self.n_channels_, "n_times": self.n_times_,
                "classes": self.classes_.tolist(), "ch_names": self.ch_names_,
                "sfreq": float(self.sfreq), "geometry": asdict(self.module_.geometry),
                "architecture": {k: self.get_params()[k] for k in
                                 ("F1", "D", "F2", "shared_times", "shared_kernel",
                                  "kernel_seconds")}}

    def save_site(self, path: str | Path) -> Path:
        """Write everything that is not a shared key: the part that never leaves the site.

        The site layers, every batch-norm statistic (the shared block's too), the
        classes, shapes, channel names and hyperparameters, as a torch file readable
        with ``torch.load(weights_only=True)``.

        Returns
        -------
        path : Path
        """
        check_is_fitted(self, "module_")
        shared = set(self.shared_keys())
        state = {k: v.detach().cpu().clone() for k, v in self.module_.state_dict().items()
                 if k not in shared}
        path = Path(path)
        torch.save({"version": SITE_FILE_VERSION, "kind": "fleeg-site",
                    "signature": self._signature(), "params": self.get_params(),
                    "n_fits": self.n_fits_, "state": state}, path)
        return path

    def load_site(self, path: str | Path) -> FLEEGClassifier:
        """Restore the site layers and statistics written by :meth:`save_site`.

        An uninitialised estimator is initialised from the file (its shared layers
        then hold their seeded initial weights until :meth:`set_shared`); an
        initialised one keeps its shared parameters.

        Raises
        ------
        bci.errors.ModelError
            If the file is not a FLEEG site file, or was written for another montage,
            window shape, rate, class list or architecture (naming what differs).
        """
        path = Path(path)
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("kind") != "fleeg-site":
            raise ModelError(f"{self._who()}.load_site: {path} is not a FLEEG site file")
        if blob.get("version", 0) > SITE_FILE_VERSION:
            raise ModelError(f"{self._who()}.load_site: {path} has format version "
                             f"{blob['version']}, newer than {SITE_FILE_VERSION}")
        sig = blob["signature"]
        if not hasattr(self, "module_"):
            if not math.isclose(float(sig["sfreq"]), float(self.sfreq)):
                raise ModelError(f"{self._who()}.load_site: {path} is for a site at "
                                 f"{sig['sfreq']:g} Hz, this model is at {self.sfreq:g} Hz")
            self.initialize(sig["n_channels"], sig["n_times"], sig["classes"],
                            ch_names=sig["ch_names"])
        mine = self._signature()
        if sig["ch_names"] is None or mine["ch_names"] is None:
            # names unknown on one side: the montage can only be checked by its size
            sig, mine = {**sig, "ch_names": None}, {**mine, "ch_names": None}
        diffs = [k for k in mine if mine[k] != sig.get(k)]
        if diffs:
            detail = "; ".join(f"{k}: file {sig.get(k)!r}, model {mine[k]!r}" for k in diffs)
            raise ModelError(f"{self._who()}.load_site: {path} was written for another site "
                             f"({detail})")
        shared = set(self.shared_keys())
        expected = {k for k in self.module_.state_dict() if k not in shared}
        if set(blob["state"]) != expected:
            raise ModelError(f"{self._who()}.load_site: {path}: expected entries "
                             f"{sorted(expected)}, found {sorted(blob['state'])}")
        self.module_.load_state_dict(blob["state"], strict=False)
        self.n_fits_ = int(blob.get("n_fits", 0))
        self.module_.eval()
        return self

    # --- export -----------------------------------------------------------------------

    def preprocessing(self) -> list[dict[str, Any]]:
        """No nodes of its own: the site's chain is passed to :meth:`export_onnx`."""
        return []

    def to_onnx(self) -> onnx.ModelProto:
        """The site's full network followed by a softmax, as one ONNX graph.

        Input ``"x"`` ``("batch", n_channels, n_times)`` in volts, output
        ``"probabilities"`` ``(batch, n_classes)`` in the order of ``classes_``.
        """
        check_is_fitted(self, "module_")
        head = nn.Sequential(OrderedDict(net=self.module_, softmax=nn.Softmax(dim=-1)))
        return export_module(head, (self.n_channels_, self.n_times_),
                             output_names=("probabilities",))

    def export_onnx(self, path: str | Path, *, ch_names: Sequence[str],
                    preprocessing: list[dict[str, Any]] | None = None, tmin: float = 0.5,
                    tmax: float | None = None, name: str = "fleeg") -> Path:
        """Write the site's model as one ``.onnx`` file with its ``bci`` spec.

        Parameters
        ----------
        path : str | Path
        ch_names : sequence of str
            The site's channels, in the order of the windows' rows.
        preprocessing : list of dict | None
            The runtime nodes the training windows went through (e.g.
            :attr:`bci.datasets.planted_sites.SiteData.preprocessing`).
        tmin, tmax : float
            The epoch, in seconds after the cue; ``tmax`` defaults to
            ``tmin + n_times / sfreq``.
        name : str
            The spec's decoder name.

        Returns
        -------
        path : Path

        Raises
        ------
        ValueError
            If ``ch_names`` or the epoch does not fit the model's window.
        """
        check_is_fitted(self, "module_")
        ch_names = [str(c) for c in ch_names]
        if len(ch_names) != self.n_channels_:
            raise ValueError(f"{self._who()}.export_onnx: expected {self.n_channels_} channel "
                             f"names, found {len(ch_names)}")
        if self.ch_names_ is not None and ch_names != self.ch_names_:
            raise ValueError(f"{self._who()}.export_onnx: expected the site's channels "
                             f"{self.ch_names_}, found {ch_names}")
        tmax = float(tmin) + self.n_times_ / float(self.sfreq) if tmax is None else float(tmax)
        if round((tmax - float(tmin)) * float(self.sfreq)) != self.n_times_:
            raise ValueError(f"{self._who()}.export_onnx: the epoch {tmin}–{tmax} s holds "
                             f"{round((tmax - float(tmin)) * float(self.sfreq))} samples at "
                             f"{self.sfreq:g} Hz; the model takes {self.n_times_}")
        arch = self._signature()["architecture"]
        spec = DecoderSpec(
            paradigm="mi", classes=self.classes_.tolist(), ch_names=ch_names,
            sfreq=float(self.sfreq), window=WindowSpec(mode="epoch", tmin=float(tmin),
                                                       tmax=tmax),
            preprocessing=list(preprocessing or []), output="probabilities", name=name,
            extra={"decoder": "fleeg", "shared_keys": self.shared_keys(), **arch},
        )
        path = Path(path)
        write_spec(self.to_onnx(), spec, path)
        return path
