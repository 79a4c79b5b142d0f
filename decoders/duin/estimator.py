"""The scikit-learn estimator :class:`DuINClassifier`: stages, inference, ONNX export."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import torch
from bci.decoders.base import check_windows, encode_labels
from bci.decoders.duin.config import PREDICT_BATCH, PRETRAIN, ZSCORE, DuINConfig, resolve_config
from bci.decoders.duin.model import DuINEncoder, FrontEnd
from bci.decoders.duin.stages import fine_tune, train_mae, train_vqvae
from bci.decoders.torch_classifier import seeded
from bci.decoders.torch_export import export_module
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn


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
