"""Sizes of the brain module (:class:`BrainModuleConfig`) and the window geometry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bci.datasets.meg import EPOCH_TMIN, MEG_SFREQ

#: The ``bci`` spec's paradigm for these decoders. bci.spec knows no "meg-retrieval";
#: the task is named in ``extra["task"]``.
PARADIGM = "meg"
#: Windows per forward pass outside training.
PREDICT_BATCH = 256


@dataclass(frozen=True, slots=True)
class BrainModuleConfig:
    """Sizes of the brain module.

    Attributes
    ----------
    n_virtual : int
        Virtual channels out of the spatial attention (D1; 270 published).
    fourier_freqs : int
        K: frequencies per axis of the position embedding, 2K² features (32 → 2048).
    dropout_radius : float
        Radius of the disc of sensors dropped in training, in the unit square (0.2).
    hidden : int
        Channels of the residual blocks (D2; 320).
    n_blocks : int
        Residual dilated blocks (2 in Benchetrit et al., 5 in Défossez et al.).
    kernel_size : int
        Odd temporal kernel of the block convolutions (3).
    features : int
        F', channels before the temporal aggregation (2048).
    conv_dropout : float
        Dropout after each block (0: none, as published).
    """

    n_virtual: int = 270
    fourier_freqs: int = 32
    dropout_radius: float = 0.2
    hidden: int = 320
    n_blocks: int = 2
    kernel_size: int = 3
    features: int = 2048
    conv_dropout: float = 0.0

    @classmethod
    def published(cls) -> BrainModuleConfig:
        """Benchetrit et al. (2024) sizes (see the module docstring for the sources)."""
        return cls()

    @classmethod
    def defossez2023(cls) -> BrainModuleConfig:
        """Défossez et al. (2023): five blocks, the rest as :meth:`published`."""
        return cls(n_blocks=5)

    @classmethod
    def small(cls) -> BrainModuleConfig:
        """A few ten thousand parameters: trains in seconds on one CPU core."""
        return cls(n_virtual=32, fourier_freqs=4, hidden=32, n_blocks=2, features=64)

    @classmethod
    def resolve(cls, config: str | BrainModuleConfig | Mapping[str, Any]) -> BrainModuleConfig:
        """A preset name (``"published"``, ``"defossez2023"``, ``"small"``), a mapping of
        fields, or a config."""
        if isinstance(config, BrainModuleConfig):
            out = config
        elif isinstance(config, str):
            presets = {"published": cls.published, "defossez2023": cls.defossez2023,
                       "small": cls.small}
            if config not in presets:
                raise ValueError(f"config: expected one of {sorted(presets)}, found {config!r}")
            out = presets[config]()
        elif isinstance(config, Mapping):
            unknown = sorted(set(config) - set(cls.__dataclass_fields__))
            if unknown:
                raise ValueError(f"config: unknown fields {unknown}; expected some of "
                                 f"{sorted(cls.__dataclass_fields__)}")
            out = cls(**config)
        else:
            raise ValueError(f"config: expected a preset name, a mapping or a "
                             f"BrainModuleConfig, found {config!r}")
        out.validate()
        return out

    def validate(self) -> None:
        for key in ("n_virtual", "fourier_freqs", "hidden", "n_blocks", "features"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"config.{key}: expected a positive integer, found {value!r}")
        if not isinstance(self.kernel_size, int) or self.kernel_size < 1 or \
                self.kernel_size % 2 == 0:
            raise ValueError(f"config.kernel_size: expected an odd positive integer, found "
                             f"{self.kernel_size!r}")
        if not 0 <= self.dropout_radius < 1.5 or not 0 <= self.conv_dropout < 1:
            raise ValueError(f"config: expected 0 ≤ dropout_radius < 1.5 and 0 ≤ conv_dropout "
                             f"< 1, found {self.dropout_radius}, {self.conv_dropout}")


def tmax_of(n_times: int, *, sfreq: float = MEG_SFREQ, tmin: float = EPOCH_TMIN) -> float:
    """End of a window of ``n_times`` samples starting at ``tmin`` (1.0 s for 180)."""
    return float(tmin) + int(n_times) / float(sfreq)
