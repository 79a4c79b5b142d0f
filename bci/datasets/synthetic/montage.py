"""Electrode sites of the 10-05 system: positions, and picking sites for a paradigm."""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING

import numpy as np

from bci.datasets.synthetic.options import DEFAULT_SSVEP_CHANNELS, check_paradigm

if TYPE_CHECKING:
    import mne

# Names of the 10-20 and 10-10 systems in the 10-05 montage (the rest are 10-05 only);
# "T3", "T4", "T5", "T6" duplicate T7, T8, P7, P8 and the mastoid/ear sites are not
# scalp EEG, so neither is picked when only a channel count is given.
_N_1010 = 86
_NOT_PICKED = {"t3", "t4", "t5", "t6", "m1", "m2", "a1", "a2"}


@functools.lru_cache(maxsize=1)
def standard_montage() -> mne.channels.DigMontage:
    import mne  # on first use: importing the package stays cheap

    # MNE 1.13 renamed the template; the positions are identical.
    name = "colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages() \
        else "standard_1005"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return mne.channels.make_standard_montage(name)


@functools.lru_cache(maxsize=1)
def site_positions() -> dict[str, tuple[str, np.ndarray]]:
    """Lower-cased name → (name as the montage spells it, position in metres)."""
    pos = standard_montage().get_positions()["ch_pos"]
    return {name.lower(): (name, np.asarray(xyz, float)) for name, xyz in pos.items()}


def site_position(name: str) -> np.ndarray:
    return site_positions()[name.lower()][1]


def pick_channels(n_channels: int, *, paradigm: str = "ssvep") -> list[str]:
    """Choose ``n_channels`` names of the 10-05 system for a paradigm.

    SSVEP takes the default occipital set (Oz, O1, O2, PO3, POz, PO7, PO8, PO4) first,
    then the remaining 10-10 sites nearest to Oz; MI takes C3, Cz, C4 first, then the
    10-10 sites nearest to any of them. 10-05-only sites follow once the 10-10 ones run
    out, in the same order of distance.

    Raises
    ------
    ValueError
        If the count is not a positive integer no larger than the available sites.
    """
    check_paradigm(paradigm)
    names = [name for name, _ in site_positions().values() if name.lower() not in _NOT_PICKED]
    if isinstance(n_channels, bool) or not isinstance(n_channels, int | np.integer) \
            or not 1 <= n_channels <= len(names):
        raise ValueError(
            f"expected a channel count between 1 and {len(names)}, found {n_channels!r}"
        )
    if paradigm == "ssvep":
        first = list(DEFAULT_SSVEP_CHANNELS)
        centres = [site_position("Oz")]
    else:
        first = ["C3", "Cz", "C4"]
        centres = [site_position(n) for n in first]
    tier = {name: 0 if i < _N_1010 else 1 for i, name in enumerate(standard_montage().ch_names)}
    rest = [n for n in names if n not in first]
    dist = {n: min(np.linalg.norm(site_position(n) - c) for c in centres) for n in rest}
    rest.sort(key=lambda n: (tier[n], round(dist[n], 6)))
    return (first + rest)[: int(n_channels)]
