"""The decoders this package provides, registered by name in :data:`bci.registry.decoders`.

Every decoder name is defined here, once; ``bci train``/``bci evaluate`` (their
``--decoder`` choices and help), :mod:`bci.decoders.training` and the runtime's
``[decoder] kind`` all look names up in the registry. Registering imports nothing: the
targets are loaded when used, so torch stays off the runtime path.

Target: a builder ``(training, sfreq, options) -> estimator`` (see
:mod:`bci.decoders.builders`), except for ``bank`` decoders, whose target trains and
writes the model itself, and ``federated`` ones, whose target is the estimator class
that ``bci fl`` builds at each site.

Meta (every entry has each key):

paradigms : tuple of str
    What it decodes (``[training] paradigm``).
trainable : bool
    ``bci train`` fits it and writes its model file (``.onnx``, or ``.npz`` when it has a
    ``file_runtime``).
evaluable : bool
    ``bci evaluate`` scores it.
exportable : bool
    It exports to ONNX, so ``bci run`` can serve it from an ``.onnx`` file.
file_runtime : str | None
    ``"module:attribute"`` of the loader ``(arrays, *, options) -> model`` that serves its
    ``.npz`` model file (numpy forward pass; :func:`bci.decoder.open_model`): trained by
    ``bci train --output MODEL.npz``, served where an ``.onnx`` goes.
needs_torch : bool
    Building or training it imports torch.
served_without_training : bool
    ``[decoder] kind = NAME`` serves it with no model file; ``runtime`` is then the
    builder ``(options, *, info, window) -> Decoder`` the runtime calls.
bank : bool
    Trained on image embeddings (``bci train --bank DIR``), not on classes.
federated : bool
    Trained across sites by ``bci fl``.
help : str
    One line for ``--help``.
"""

from __future__ import annotations

from bci.registry import adapters, decoders


def _register(name: str, target: str, *, paradigms: tuple[str, ...], help: str,
              trainable: bool = True, evaluable: bool = True, exportable: bool = True,
              needs_torch: bool = False, runtime: str | None = None, bank: bool = False,
              federated: bool = False, file_runtime: str | None = None) -> None:
    decoders.register(name, target, paradigms=paradigms, help=help, trainable=trainable,
                      evaluable=evaluable, exportable=exportable, needs_torch=needs_torch,
                      served_without_training=runtime is not None, runtime=runtime,
                      bank=bank, federated=federated, file_runtime=file_runtime)


_B = "bci.decoders.builders"

_register("fbcca", "bci.decoders.fbcca:build", paradigms=("ssvep",), trainable=False,
          exportable=False, runtime="bci.decoders.fbcca:serve",
          help='filter-bank CCA (Chen et al. 2015), training-free: [decoder] kind = "fbcca"')
_register("trca", f"{_B}:trca", paradigms=("ssvep",),
          help="task-related component analysis (Nakanishi et al. 2018)")
_register("etrca", f"{_B}:etrca", paradigms=("ssvep",), help="ensemble TRCA")
_register("ssvep-dnn", f"{_B}:ssvep_dnn", paradigms=("ssvep",), needs_torch=True,
          help="SSVEP DNN (Guney et al. 2022), global stage with --global, then fine-tuned")
_register("csp-lda", f"{_B}:csp_lda", paradigms=("mi",), help="CSP + LDA (Blankertz et al. 2008)")
_register("fbcsp", f"{_B}:fbcsp", paradigms=("mi",), help="filter-bank CSP (Ang et al. 2008)")
_register("eegnet", f"{_B}:eegnet", paradigms=("mi",), needs_torch=True,
          help="EEGNet (Lawhern et al. 2018)")
_register("rl-eegnet", f"{_B}:rl_eegnet", paradigms=("mi",), needs_torch=True,
          help="RL-EEGNet, deep Q-learning (Nallani & Ramachandran 2024); adapts online")
_register("duin", f"{_B}:duin", paradigms=("seeg",), needs_torch=True,
          help="Du-IN speech decoding from sEEG (Zheng et al. 2024)")
# covariance decoders: fitted with pyriemann, served by numpy from one .npz model file
_NPZ = "bci.decoders.riemann:load_model"
_register("mdm", f"{_B}:mdm", paradigms=("ssvep", "mi"), exportable=False, file_runtime=_NPZ,
          help="Riemannian minimum distance to mean; model file MODEL.npz")
_register("fgmdm", f"{_B}:fgmdm", paradigms=("mi", "ssvep"), exportable=False,
          file_runtime=_NPZ, help="MDM after Fisher geodesic filtering; model file MODEL.npz")
_register("ts-lr", f"{_B}:ts_lr", paradigms=("mi", "ssvep"), exportable=False,
          file_runtime=_NPZ,
          help="tangent space + logistic regression; model file MODEL.npz")
_register("ts-svm", f"{_B}:ts_svm", paradigms=("mi", "ssvep"), exportable=False,
          file_runtime=_NPZ, help="tangent space + linear SVM; model file MODEL.npz")
_register("meg-retrieval", "bci.decoders.meg_retrieval:train_retrieval", paradigms=("meg",),
          evaluable=False, needs_torch=True, bank=True,
          help="MEG → image retrieval (Benchetrit et al. 2024); --bank DIR of embeddings")
_register("fleeg", "bci.decoders.fleeg:FLEEGClassifier", paradigms=("mi",), trainable=False,
          evaluable=False, needs_torch=True, federated=True,
          help="FLEEG site and shared layers, trained across sites by bci fl")

# online learning of a served decoder ([decoder] adapt = true): the runner asks for "online"
adapters.register("online", "bci.decoders.adaptation:LiveAdaptation",
                  help="keeps training the decoder's .pt state from cued windows")
