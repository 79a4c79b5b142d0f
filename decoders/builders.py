"""How each trainable decoder of :mod:`bci.decoders.catalog` is built from a session.

Every builder takes the session's ``[training]`` table, the stream's sampling rate and
the decoder's options (``[training.decoders.NAME]``) and returns a fresh, unfitted
estimator (scikit-learn style, see :mod:`bci.decoders.base`). The deep decoders are
imported when their builder runs: they need torch, which registering and serving do
without.
"""

from __future__ import annotations

from typing import Any

from bci.decoders.csp_lda import CSPLDA, FBCSP
from bci.decoders.riemann import RiemannFgMDM, RiemannMDM, TangentSpaceLR, TangentSpaceSVM
from bci.decoders.trca import TRCA

from bci.datasets.seeg import bipolar_pairs
from bci.errors import TrainingError
from bci.session import TrainingConfig


def trca(training: TrainingConfig, sfreq: float, options: dict) -> Any:
    return TRCA(sfreq=sfreq, ensemble=False, **options)


def etrca(training: TrainingConfig, sfreq: float, options: dict) -> Any:
    return TRCA(sfreq=sfreq, ensemble=True, **options)


def ssvep_dnn(training: TrainingConfig, sfreq: float, options: dict) -> Any:
    from bci.decoders.ssvep_dnn import SSVEPDNNClassifier

    return SSVEPDNNClassifier(sfreq=sfreq, **{"seed": training.seed, **options})


def csp_lda(training: TrainingConfig, sfreq: float, options: dict) -> Any:
    return CSPLDA(sfreq=sfreq, **options)


def fbcsp(training: TrainingConfig, sfreq: float, options: dict) -> Any:
    return FBCSP(sfreq=sfreq, **{"random_state": training.seed, **options})


def eegnet(training: TrainingConfig, sfreq: float, options: dict) -> Any:
    from bci.decoders.eegnet import EEGNetClassifier

    return EEGNetClassifier(sfreq=sfreq, **{"seed": training.seed, **options})


def rl_eegnet(training: TrainingConfig, sfreq: float, options: dict) -> Any:
    from bci.decoders.rl_eegnet import RLEEGNet

    return RLEEGNet(sfreq=sfreq, **{"seed": training.seed, **options})


def duin(training: TrainingConfig, sfreq: float, options: dict) -> Any:
    """Du-IN; ``bipolar = true`` pairs neighbouring contacts of ``[training] ch_names``."""
    from bci.decoders.duin import DuINClassifier

    options = dict(options)
    bipolar = options.pop("bipolar", None)
    ch_names = training.ch_names
    if bipolar is True:  # neighbouring contacts of each shaft, from the contacts' names
        if not ch_names:
            raise TrainingError("training.decoders.duin.bipolar = true needs the contacts: "
                                "list them in [training] ch_names")
        bipolar = bipolar_pairs(ch_names)
    elif bipolar is not None:
        if not all(isinstance(p, list | tuple) and len(p) == 2 for p in bipolar):
            raise TrainingError("training.decoders.duin.bipolar: expected true or a list of "
                                f"[anode, cathode] pairs, found {bipolar!r}")
        bipolar = [tuple(p) for p in bipolar]
        if ch_names is None:  # the contacts of the pairs, in order of appearance
            ch_names = list(dict.fromkeys(c for p in bipolar for c in p))
    return DuINClassifier(sfreq=sfreq, ch_names=ch_names, bipolar=bipolar,
                          **{"seed": training.seed, **options})


def _ssvep_bands(training: TrainingConfig, options: dict) -> dict:
    if training.paradigm == "ssvep" and "bands" not in options and training.frequencies:
        # MOABB's SSVEP-exo pipeline: narrow bands around each stimulation frequency
        options = {"bands": [[f - 0.5, f + 0.5] for f in training.frequencies.values()],
                   **options}
    return options


def mdm(training: TrainingConfig, sfreq: float, options: dict) -> Any:
    return RiemannMDM(sfreq=sfreq, **_ssvep_bands(training, options))


def fgmdm(training: TrainingConfig, sfreq: float, options: dict) -> Any:
    return RiemannFgMDM(sfreq=sfreq, **_ssvep_bands(training, options))


def ts_lr(training: TrainingConfig, sfreq: float, options: dict) -> Any:
    return TangentSpaceLR(sfreq=sfreq, **_ssvep_bands(training, options))


def ts_svm(training: TrainingConfig, sfreq: float, options: dict) -> Any:
    return TangentSpaceSVM(sfreq=sfreq, **_ssvep_bands(training, options))
