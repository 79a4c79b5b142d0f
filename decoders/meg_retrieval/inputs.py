"""Input checks shared by the retrieval estimators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bci.datasets.meg import Montage


def as_montage(value: Any, n_sensors: int | None, who: str) -> Montage:
    if isinstance(value, Montage):
        montage = value
    else:
        pos = np.asarray(value, np.float64)
        if pos.ndim != 2 or pos.shape[1] != 2:
            raise ValueError(f"{who}: expected positions as a Montage or an array (n_sensors, "
                             f"2), found shape {pos.shape}")
        montage = Montage([f"S{i:03d}" for i in range(pos.shape[0])], pos)
    if n_sensors is not None and len(montage) != n_sensors:
        raise ValueError(f"{who}: windows have {n_sensors} sensors, the montage "
                         f"{len(montage)}")
    return montage


class WindowsMixin:
    """Input checks shared by the estimators."""

    def _n_baseline(self) -> int:
        if not float(self.sfreq) > 0:
            raise ValueError(f"{type(self).__name__}: sfreq must be positive, found {self.sfreq}")
        return max(0, round(-float(self.tmin) * float(self.sfreq)))

    def _windows(self, X: Any) -> list[np.ndarray]:
        who = type(self).__name__
        if isinstance(X, np.ndarray) and X.ndim == 3:
            items = list(X)
        elif isinstance(X, Sequence) and not isinstance(X, np.ndarray | str):
            items = [np.asarray(x) for x in X]
        else:
            raise ValueError(f"{who}: expected windows (n_windows, n_sensors, n_times) or a "
                             f"list of (n_sensors, n_times) arrays, found "
                             f"{getattr(X, 'shape', type(X).__name__)}")
        if not items:
            raise ValueError(f"{who}: expected at least one window, found none")
        for i, x in enumerate(items):
            if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
                raise ValueError(f"{who}: window {i}: expected a float array (n_sensors, "
                                 f"n_times), found {x.dtype} {x.shape}")
            if not np.isfinite(x).all():
                raise ValueError(f"{who}: window {i} holds {int((~np.isfinite(x)).sum())} "
                                 f"NaN/Inf samples")
        times = {x.shape[1] for x in items}
        if len(times) > 1:
            raise ValueError(f"{who}: expected windows of one length, found {sorted(times)}")
        return items

    @staticmethod
    def _targets(Y: Any, n: int, who: str) -> np.ndarray:
        Y = np.asarray(Y, np.float64)
        if Y.ndim != 2 or Y.shape[0] != n:
            raise ValueError(f"{who}: expected one embedding per window, shape ({n}, F), "
                             f"found {Y.shape}")
        if not np.isfinite(Y).all():
            raise ValueError(f"{who}: embeddings hold NaN/Inf")
        return Y
