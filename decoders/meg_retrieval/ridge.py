"""The linear baseline :class:`RidgeRetrieval`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from bci.decoders.meg_retrieval.inputs import WindowsMixin
from bci.decoders.meg_retrieval.ranking import bank_targets, top_k_accuracy
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from bci.datasets.meg import CLAMP, EPOCH_TMIN, MEG_SFREQ, RobustClamp, baseline_correct


class RidgeRetrieval(WindowsMixin, BaseEstimator):
    """The linear baseline: ridge regression from the flattened window to the embedding.

    The same per-window preprocessing as :class:`MEGRetrieval` (baseline, robust
    scaling, clamp), then every (sensor, time) value is a feature; the penalty is chosen
    among ``alphas`` by efficient leave-one-out (scikit-learn's ``RidgeCV``), shared by
    all embedding dimensions. One subject (montage) per model.

    Parameters
    ----------
    alphas : sequence of float
    sfreq, tmin, clamp : float
        As in :class:`MEGRetrieval`.

    Attributes
    ----------
    scaler_ : bci.datasets.meg.RobustClamp
    ridge_ : sklearn.linear_model.RidgeCV
    alpha_ : float
    n_sensors_, n_times_ : int
    """

    def __init__(self, *, alphas: Sequence[float] = tuple(10.0 ** np.arange(-3, 8)),
                 sfreq: float = MEG_SFREQ, tmin: float = EPOCH_TMIN, clamp: float = CLAMP) -> None:
        self.alphas = alphas
        self.sfreq = sfreq
        self.tmin = tmin
        self.clamp = clamp

    def _features(self, X: Any, *, fit: bool) -> np.ndarray:
        items = self._windows(X)
        shapes = {x.shape for x in items}
        if len(shapes) > 1:
            raise ValueError(f"RidgeRetrieval: expected windows of one shape (one montage), "
                             f"found {sorted(shapes)}")
        block = baseline_correct(np.stack(items), self._n_baseline())
        if fit:
            self.scaler_ = RobustClamp(clamp=float(self.clamp)).fit(block)
            self.n_sensors_, self.n_times_ = block.shape[1:]
        elif block.shape[1:] != (self.n_sensors_, self.n_times_):
            raise ValueError(f"RidgeRetrieval: expected windows of shape "
                             f"{(self.n_sensors_, self.n_times_)}, found {block.shape[1:]}")
        return self.scaler_.transform(block).reshape(len(block), -1).astype(np.float64)

    def fit(self, X: Any, Y: Any) -> RidgeRetrieval:
        """Fit on windows ``(n_windows, n_sensors, n_times)`` and embeddings ``(n, F)``."""
        from sklearn.linear_model import RidgeCV

        Z = self._features(X, fit=True)
        Y = self._targets(Y, len(Z), "RidgeRetrieval")
        self.ridge_ = RidgeCV(alphas=np.asarray(self.alphas, np.float64)).fit(Z, Y)
        self.alpha_ = float(self.ridge_.alpha_)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Predicted embeddings, shape (n_windows, F)."""
        check_is_fitted(self, "ridge_")
        return np.asarray(self.ridge_.predict(self._features(X, fit=False)), np.float64)

    def score(self, X: Any, Y: Any, *, bank: np.ndarray | None = None, k: int = 5) -> float:
        """Top-``k`` retrieval accuracy, as :meth:`MEGRetrieval.score`."""
        items = self._windows(X)
        Y = self._targets(Y, len(items), "RidgeRetrieval")
        bank, targets = bank_targets(Y, bank)
        return top_k_accuracy(self.transform(items), bank, targets, k=k)
