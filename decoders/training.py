"""Train and evaluate decoders from recordings, with the live runtime's own windows.

``bci train`` and ``bci evaluate`` call these. Windows are cut by
:func:`bci.training_data.extract_windows` (the live chain and windower); everything that
is fitted (CSP, TRCA filters, scalers, networks) is fitted inside the training fold only,
because each fold fits a fresh clone of the decoder on the fold's training windows.
Decoders are found by name in :data:`bci.registry.decoders` (see
:mod:`bci.decoders.catalog`), and built by their registered builders.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mne
import numpy as np
from bci.decoders.adaptation import LiveAdaptation, save_state
from bci.devices.files import read_recording

from bci import registry
from bci.errors import BCIError, TrainingError
from bci.metrics import itr_bits_per_min
from bci.recording import Recording
from bci.session import SessionConfig, TrainingConfig
from bci.spec import DecoderSpec, WindowSpec, write_spec
from bci.training_data import TrainingWindows, extract_windows

log = logging.getLogger(__name__)

SPLITS = ("cross-session", "leave-one-block-out", "k-fold")


def training_config(config: SessionConfig, name: str | None = None) -> TrainingConfig:
    """The session's ``[training]`` table.

    A session that serves decoder ``name`` without a model file (``[decoder] kind =
    "fbcca"``) describes it fully, so it needs no ``[training]`` table to be evaluated.
    """
    if config.training is not None:
        return config.training
    if name is not None and config.decoder is not None and config.decoder.kind == name:
        entry = registry.decoders.get(name)
        if entry.meta["served_without_training"]:
            return TrainingConfig(paradigm=entry.meta["paradigms"][0])
    raise TrainingError(f"{config.path or 'session'}: no [training] table; add one with "
                        'paradigm = "ssvep" or "mi" (see examples/ssvep-exo.toml)')


def decoder_options(name: str, config: SessionConfig) -> dict[str, Any]:
    """The options decoder ``name`` is built with: ``[training.decoders.NAME]``.

    For a decoder the session also serves without a model file (``[decoder] kind =
    NAME``), the ``[decoder]`` table's options come first, so that ``bci evaluate``
    scores the decoder ``bci run`` serves; ``[training.decoders.NAME]`` may add options
    but not contradict them.
    """
    t = config.training
    options = dict(t.decoders.get(name, {})) if t is not None else {}
    d = config.decoder
    if (d is not None and d.kind == "onnx" and d.options
            and registry.decoders.get(name).meta.get("file_runtime")):
        # [decoder] recenter … of the .npz model bci run serves: evaluate scores the same
        d = copy.copy(d)
        d.kind = name
    if d is None or d.kind != name:
        return options
    for key, value in options.items():
        if key in d.options and d.options[key] != value:
            raise TrainingError(
                f"training.decoders.{name}.{key}: {value!r} contradicts decoder.{key} = "
                f"{d.options[key]!r}; bci evaluate scores what bci run serves: set it once, "
                "in [decoder]")
    return {**d.options, **options}


def make_decoder(name: str, config: SessionConfig, sfreq: float) -> Any:
    """A fresh, unfitted decoder named ``name`` with the session's hyperparameters."""
    entry = registry.decoders.get(name, where="decoder")
    if entry.meta["bank"] or entry.meta["federated"]:
        raise TrainingError(f"decoder: {name} is not built from a session's windows and "
                            f"classes; expected one of {registry.decoders.names(evaluable=True)}")
    t = training_config(config, name)
    options = decoder_options(name, config)
    try:
        return entry.load()(t, sfreq, options)
    except TypeError as err:
        raise TrainingError(f"training.decoders.{name}: {err}") from None


def classes_of(config: SessionConfig) -> list[str]:
    events = config.window.events
    if not events:
        raise TrainingError(f"{config.path or 'session'}: [window] events must map markers to "
                         "classes for training, found none")
    return list(dict.fromkeys(events.values()))


def decoder_spec(name: str, estimator: Any, config: SessionConfig, info: mne.Info,
                 classes: Sequence[str]) -> DecoderSpec:
    """The ``bci`` spec of a decoder trained on streams like ``info``."""
    t = training_config(config, name)
    w = config.window
    if w.tmin is None or w.tmax is None:
        raise TrainingError(f"{config.path or 'session'}: training needs epochs: set [window] "
                         "tmin and tmax (seconds after each event)")
    ch_names = (getattr(estimator, "ch_names", None) or t.ch_names
                or [info["ch_names"][i]
                    for i in mne.pick_types(info, eeg=True, seeg=True, ecog=True, exclude=[])])
    if not ch_names:
        raise TrainingError("the recording has no EEG, sEEG or ECoG channel; name the "
                            "channels in [training] ch_names")
    extra: dict[str, Any] = {"decoder": name}
    if t.paradigm == "ssvep" and t.frequencies:
        extra["frequencies"] = [t.frequencies.get(c) for c in classes]
    return DecoderSpec(
        paradigm=t.paradigm, classes=[str(c) for c in classes], ch_names=list(ch_names),
        sfreq=float(info["sfreq"]), window=WindowSpec(mode="epoch", tmin=w.tmin, tmax=w.tmax),
        preprocessing=list(estimator.preprocessing()), output="probabilities", name=name,
        extra=extra,
    )


def _read(path: str | Path) -> list[tuple[int, Recording]]:
    """A recording file as ``[(0, recording)]``; a published many-target SSVEP ``.mat``
    set (:func:`bci.datasets.ssvep_jfpm.read_mat_trials`) as one recording per trial,
    numbered by its block."""
    if str(path).lower().endswith(".mat"):
        from bci.datasets.ssvep_jfpm import read_mat_trials

        return read_mat_trials(path)
    return [(0, read_recording(path))]


def load_windows(config: SessionConfig, spec: DecoderSpec,
                 paths: Sequence[str | Path]) -> TrainingWindows:
    """Labelled windows of every recording in ``paths``, cut by the live code.

    ``recording`` numbers the files in order; for a ``.mat`` set it numbers its blocks
    (continuing across files), so that leave-one-block-out holds out one block.
    """
    parts, ids = [], []
    offset = 0
    for path in paths:
        trials = _read(path)
        for block, rec in trials:
            parts.append(extract_windows(config, spec, rec))
            ids.append(offset + block)
        offset += max(block for block, _ in trials) + 1
        log.info("%s: %d windows", path, sum(len(p) for p in parts[-len(trials):]))
    data = TrainingWindows.concatenate(parts)
    data.recording = np.concatenate([np.full(len(p), i, np.int64)
                                     for p, i in zip(parts, ids, strict=True)])
    return data


@contextlib.contextmanager
def _estimator_errors(where: str = "") -> Iterator[None]:
    """Estimators check their hyperparameters ([training.decoders.NAME]) and windows
    scikit-learn style, with ValueError; the user gets them as one line."""
    try:
        yield
    except BCIError:
        raise
    except ValueError as err:
        raise TrainingError(f"{where}: {err}" if where else str(err)) from None


def _prepare(name: str, config: SessionConfig, first: str | Path):
    rec = _read(first)[0][1]
    classes = classes_of(config)
    with _estimator_errors(f"training.decoders.{name}"):
        estimator = make_decoder(name, config, float(rec.info["sfreq"]))
        spec = decoder_spec(name, estimator, config, rec.info, classes)
    return estimator, spec, classes


def _takes_groups(method: Callable) -> bool:
    """Whether a ``fit``/``predict_proba`` takes ``groups`` (the file of each window:
    covariance decoders re-centre each session at its own reference)."""
    import inspect

    try:
        return "groups" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def _fit(estimator: Any, X: np.ndarray, y: np.ndarray, glob: TrainingWindows | None,
         groups: np.ndarray | None = None) -> Any:
    """Fit; with global-stage windows, fit on them first and fine-tune on ``X``."""
    if glob is not None and not hasattr(estimator, "fine_tune"):
        raise TrainingError(f"{type(estimator).__name__} has no global/fine-tune stages; "
                            "--global applies to ssvep-dnn")
    with _estimator_errors():
        if glob is not None:
            estimator.fit(glob.X, glob.y)
            return estimator.fine_tune(X, y)
        if groups is not None and _takes_groups(estimator.fit):
            return estimator.fit(X, y, groups=groups)
        return estimator.fit(X, y)


def train(config: SessionConfig, name: str, paths: Sequence[str | Path], *,
          output: str | Path, global_paths: Sequence[str | Path] = (),
          bank: str | Path | None = None) -> dict[str, Any]:
    """Fit decoder ``name`` on every labelled window of ``paths``; write ``output`` (.onnx).

    ``meg-retrieval`` regresses windows onto image embeddings instead of classes: its
    targets come from ``bank`` (a folder of ``.npy`` files, one per image), and the
    session's ``[window] events`` (when given) name the images to train on.

    Returns
    -------
    dict
        ``output``, ``n_windows``, ``classes``, ``train_seconds`` and training accuracy.
    """
    entry = registry.decoders.get(name, where="decoder")
    if entry.meta["bank"]:
        if bank is None:
            raise TrainingError(f"{name} learns image embeddings: give the bank folder "
                                "with --bank DIR (one .npy embedding per image)")
        t = training_config(config)
        events = config.window.events
        return entry.load()(paths, bank=bank, output=output,
                            images=list(events) if events else None,
                            options=t.decoders.get(name, {}), seed=t.seed)
    if bank is not None:
        raise TrainingError(f"--bank is for {registry.decoders.names(bank=True)}, not {name}")
    if entry.meta["served_without_training"]:
        raise TrainingError(f"{name} is training-free: serve it with [decoder] kind = "
                            f'"{name}"')
    if not entry.meta["trainable"]:
        raise TrainingError(f"{name} cannot be trained into an ONNX model; train one of "
                            f"{registry.decoders.names(trainable=True)}")
    if entry.meta.get("file_runtime") and Path(output).suffix.lower() != ".npz":
        raise TrainingError(f"--output: {name} is served from an .npz model file; expected "
                            f"a path ending in .npz, found {str(output)!r}")
    estimator, spec, _ = _prepare(name, config, paths[0])
    data = load_windows(config, spec, paths)
    glob = load_windows(config, spec, global_paths) if global_paths else None
    t0 = time.perf_counter()
    estimator = _fit(estimator, data.X, data.y, glob, groups=data.recording)
    seconds = time.perf_counter() - t0
    _check_class_order(estimator, spec)
    if _takes_groups(estimator.predict):
        train_acc = float(np.mean(estimator.predict(data.X, groups=data.recording) == data.y))
    else:
        train_acc = float(np.mean(estimator.predict(data.X) == data.y))
    spec.extra.update(train_windows=len(data), train_seconds=round(seconds, 3),
                      train_files=[Path(p).name for p in paths])
    if entry.meta.get("file_runtime"):
        # served by numpy from one .npz file (arrays + spec), not exported to ONNX
        estimator.save(output, spec)
    else:
        write_spec(estimator.to_onnx(), spec, output)
    state = None
    if hasattr(estimator, "adapt"):
        # decoders that learn online keep their trainable state next to the model
        state = LiveAdaptation.state_path(output)
        save_state(estimator, state)
    return {"output": str(output), "state": None if state is None else str(state),
            "decoder": name, "n_windows": len(data),
            "classes": spec.classes, "train_seconds": seconds, "train_accuracy": train_acc}


def _check_class_order(estimator: Any, spec: DecoderSpec) -> None:
    """The ONNX outputs follow ``classes_``: the spec must list the classes in that order."""
    found = [str(c) for c in estimator.classes_]
    if sorted(found) != sorted(spec.classes):
        raise TrainingError(f"the decoder learned classes {found}, expected {spec.classes} "
                         "(a class has no window in the training data?)")
    spec.classes = found  # scikit-learn-style decoders sort their labels


@dataclass(slots=True)
class Evaluation:
    """Pooled out-of-fold predictions and the figures computed from them."""

    decoder: str
    split: str
    classes: list[str]
    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray
    stops: np.ndarray
    recording: np.ndarray
    fold_accuracy: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    window_seconds: float = 0.0
    gaze_shift: float = 0.0
    paradigm: str = "mi"

    def summary(self) -> dict[str, Any]:
        from sklearn.metrics import cohen_kappa_score, confusion_matrix

        acc = float(np.mean(self.y_true == self.y_pred))
        out: dict[str, Any] = {
            "decoder": self.decoder, "split": self.split, "n_windows": int(self.y_true.size),
            "accuracy": acc, "kappa": float(cohen_kappa_score(self.y_true, self.y_pred)),
            "classes": self.classes,
            "confusion": confusion_matrix(self.y_true, self.y_pred,
                                          labels=self.classes).tolist(),
            "fold_accuracy": self.fold_accuracy, "train_seconds": self.train_seconds,
            "chance": float(max(np.mean(self.y_true == c) for c in self.classes)),
        }
        if self.paradigm == "ssvep":
            t = self.window_seconds + self.gaze_shift
            out["itr_bits_per_min"] = itr_bits_per_min(len(self.classes), acc, t)
            out["itr_convention"] = (
                f"Wolpaw; {t:g} s per selection ({self.window_seconds:g} s window"
                + (f" + {self.gaze_shift:g} s gaze shift)" if self.gaze_shift
                   else ", gaze shift not included)"))
        return out

    def write_predictions(self, path: str | Path) -> None:
        """One JSON line per window, in the format of ``bci replay --output``.

        Keys: recording (index into the training/test list), stop, true_label, label,
        probabilities (class → value).
        """
        with open(path, "w", encoding="utf-8") as f:
            for i in range(self.y_true.size):
                f.write(json.dumps({
                    "recording": int(self.recording[i]), "stop": int(self.stops[i]),
                    "true_label": str(self.y_true[i]), "label": str(self.y_pred[i]),
                    "probabilities": {c: float(v) for c, v in
                                      zip(self.classes, self.proba[i], strict=True)},
                }) + "\n")


def _folds(split: str, data: TrainingWindows, n_splits: int, seed: int):
    from sklearn.model_selection import StratifiedKFold

    if split == "k-fold":
        skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        yield from skf.split(data.X, data.y)
        return
    # leave-one-block-out: a block is a recording when there are several, otherwise a
    # run of consecutive trials (in time order), so neighbouring trials never straddle
    # training and test
    if np.unique(data.recording).size > 1:
        blocks = data.recording
    else:
        order = np.argsort(data.stops, kind="stable")
        blocks = np.empty(len(data), np.int64)
        blocks[order] = np.arange(len(data)) * n_splits // len(data)
    for b in np.unique(blocks):
        yield np.flatnonzero(blocks != b), np.flatnonzero(blocks == b)


def evaluate(config: SessionConfig, name: str, *, train: Sequence[str | Path],
             test: Sequence[str | Path] = (), split: str | None = None, n_splits: int = 5,
             global_paths: Sequence[str | Path] = (),
             window: float | None = None, recenter: str | None = None,
             recenter_warmup: int | None = None,
             recenter_forget: float | None = None) -> Evaluation:
    """Evaluate decoder ``name`` without leakage.

    Parameters
    ----------
    config : SessionConfig
        With ``[window]`` (epochs and event map) and ``[training]``.
    name : str
        A decoder of :data:`bci.registry.decoders` that is ``evaluable``.
    train, test : sequences of paths
        With ``test``, the split is ``cross-session``: fit on ``train``, score on ``test``.
    split : str | None
        ``cross-session`` (needs ``test``), ``leave-one-block-out`` or ``k-fold``.
    n_splits : int
        Folds for k-fold; blocks for leave-one-block-out on a single recording.
    global_paths : sequence of paths
        Other subjects' recordings for a decoder's global stage (``ssvep-dnn``).
    window : float | None
        Window length in seconds from ``[window] tmin`` (default: ``tmax − tmin``).
    recenter : str | None
        ``"none"``, ``"session"`` or ``"online"`` re-centering of every test file (and of
        each training file at its own mean): a covariance decoder's Riemannian
        re-centering, any other decoder's Euclidean alignment
        (:func:`bci.decoders.alignment.with_recentering`). ``None``: as the session says.
    recenter_warmup, recenter_forget : optional
        Online re-centering's warm-up (windows) and forgetting factor.
    """
    from dataclasses import replace

    from sklearn.base import clone

    if not registry.decoders.get(name, where="decoder").meta["evaluable"]:
        raise TrainingError(f"decoder: {name} is not scored by bci evaluate; expected one of "
                            f"{registry.decoders.names(evaluable=True)}")
    split = split or ("cross-session" if test else "k-fold")
    if split not in SPLITS:
        raise TrainingError(f"split: expected one of {SPLITS}, found {split!r}")
    if split == "cross-session" and not test:
        raise TrainingError("split cross-session: expected --test recordings, found none")
    if split != "cross-session" and test:
        raise TrainingError(f"split {split} runs within --train; --test is for cross-session")
    if window is not None:
        if config.window.tmin is None:
            raise TrainingError("--window needs [window] tmin in the session file")
        config = replace(config, window=replace(config.window,
                                                tmax=config.window.tmin + float(window)))
    estimator, spec, classes = _prepare(name, config, train[0])
    if recenter is None and (recenter_warmup is not None or recenter_forget is not None):
        raise TrainingError("--recenter-warmup/--recenter-forget: expected --recenter online "
                            "with them, found no --recenter")
    if recenter is not None:
        from bci.decoders.alignment import with_recentering

        with _estimator_errors("--recenter"):
            estimator = with_recentering(estimator, recenter, warmup=recenter_warmup,
                                         forget=recenter_forget)
    data = load_windows(config, spec, train)
    glob = load_windows(config, spec, global_paths) if global_paths else None
    if split == "cross-session":
        test_data = load_windows(config, spec, test)
        folds = [(data, test_data)]
    else:
        folds = [(_subset(data, tr), _subset(data, te))
                 for tr, te in _folds(split, data, n_splits, training_config(config, name).seed)]
    y_true, y_pred, proba, stops, recs, fold_acc = [], [], [], [], [], []
    seconds = 0.0
    for tr, te in folds:
        est = _clone(estimator, clone)
        t0 = time.perf_counter()
        est = _fit(est, tr.X, tr.y, glob, groups=tr.recording)
        seconds += time.perf_counter() - t0
        if _takes_groups(est.predict_proba):
            # each test file is a session: re-centred at its own mean, or online from a
            # fresh reference in time order, as bci run serves it
            p = np.asarray(est.predict_proba(te.X, groups=te.recording))
        else:
            p = np.asarray(est.predict_proba(te.X))
        pred = np.asarray(est.classes_, str)[np.argmax(p, axis=1)]
        order = [list(map(str, est.classes_)).index(c) for c in classes]
        y_true.append(te.y)
        y_pred.append(pred)
        proba.append(p[:, order])  # reported in the session's class order
        stops.append(te.stops)
        recs.append(te.recording)
        fold_acc.append(float(np.mean(pred == te.y)))
    t = training_config(config, name)
    return Evaluation(
        decoder=name, split=split, classes=classes, y_true=np.concatenate(y_true),
        y_pred=np.concatenate(y_pred), proba=np.concatenate(proba),
        stops=np.concatenate(stops), recording=np.concatenate(recs), fold_accuracy=fold_acc,
        train_seconds=seconds, window_seconds=float(config.window.tmax - config.window.tmin),
        gaze_shift=t.gaze_shift, paradigm=t.paradigm,
    )


def _subset(data: TrainingWindows, idx: np.ndarray) -> TrainingWindows:
    return TrainingWindows(data.X[idx], data.y[idx], data.stops[idx], data.recording[idx])


def _clone(estimator: Any, clone: Callable) -> Any:
    try:
        return clone(estimator)
    except (TypeError, RuntimeError):
        return copy.deepcopy(estimator)
