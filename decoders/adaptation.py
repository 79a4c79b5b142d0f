"""Online adaptation in a live session: the decoder keeps learning from cued trials.

Registered as the adapter ``"online"`` in :data:`bci.registry.adapters`: the runner finds
:class:`LiveAdaptation` there when a session says ``[decoder] adapt = true``.

A decoder trained with ``bci train --decoder rl-eegnet`` is written as ``MODEL.onnx``
(served) and ``MODEL.pt`` (its trainable state). With ``[decoder] adapt = true`` the live
loop hands every decided window whose true class is known (its cue) to
:class:`bci.decoders.rl_eegnet.OnlineAdapter`, which learns in its own thread; every
``swap_every`` learned trials the updated network is exported to ONNX and loaded, off
the decode path, and the decode thread swaps it in between two windows. At the end the
adapted decoder is saved (``[decoder] save``) as ``.onnx`` and ``.pt`` again.

Acquisition never waits for learning or exporting; both take CPU time from the same
machine, which shows in the latency accounting. A replay of such a session serves the
model it is given (not the sequence of adapted models), so it reproduces the decisions
made before the first swap.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

from bci.decision import Decision
from bci.decoder import OnnxDecoder
from bci.errors import ModelError
from bci.windowing import Window

log = logging.getLogger(__name__)


def save_state(estimator: Any, path: str | Path) -> None:
    estimator.save_state(Path(path))


def load_state(path: str | Path) -> Any:
    """Load a decoder's trainable state (tensors and plain values, no pickled class)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"adaptation needs the decoder's trainable state {path}, written by "
                         "bci train next to the .onnx file; not found")
    try:
        from bci.decoders.rl_eegnet import RLEEGNet
    except ImportError:
        raise ModelError("adaptation needs torch: pip install 'bci-runtime[train]'") from None
    try:
        return RLEEGNet.load_state(path)
    except Exception as err:  # torch/pickle raise many types on a bad file
        raise ModelError(f"cannot read decoder state {path}: {type(err).__name__}: "
                         f"{err}") from None


class LiveAdaptation:
    """Learns from cued windows beside the decode thread and swaps in updated models.

    Parameters
    ----------
    pipeline : bci.pipeline.Pipeline
        Its decoder is replaced as adapted models become ready.
    state : str | Path
        The decoder's trainable state (``MODEL.pt``).
    save : str | Path | None
        Where to write the adapted model at the end (``.onnx``, plus ``.pt`` beside it).
    swap_every : int
        Learned trials between two exports.
    threads : int
        onnxruntime threads of the swapped-in models.
    """

    def __init__(self, pipeline, *, state: str | Path, save: str | Path | None = None,
                 swap_every: int = 10, threads: int = 1) -> None:
        # rl_eegnet imports torch: only a session that adapts pays for it
        from bci.decoders.rl_eegnet import OnlineAdapter

        self.pipeline = pipeline
        self.spec = pipeline.decoder.spec
        self.estimator = load_state(state)
        classes = [str(c) for c in getattr(self.estimator, "classes_", [])]
        if classes != list(self.spec.classes):
            raise ModelError(f"decoder state {state} has classes {classes}, the served model "
                             f"{self.spec.classes}: they must come from the same training")
        if not hasattr(self.estimator, "adapt"):
            raise ModelError(f"decoder state {state} ({type(self.estimator).__name__}) cannot "
                             "adapt online")
        self.adapter = OnlineAdapter(self.estimator)
        self.save = None if save is None else Path(save)
        self.swap_every = int(swap_every)
        self.threads = threads
        self.n_swaps = 0
        self.n_submitted = 0
        self._since_export = 0
        self._ready: OnnxDecoder | None = None
        self._exporting: threading.Thread | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="bci-adapt-")
        self.error: BaseException | None = None

    @staticmethod
    def state_path(model: str | Path) -> Path:
        """Where the trainable state of ``MODEL.onnx`` lives: ``MODEL.pt``."""
        return Path(model).with_suffix(".pt")

    def __call__(self, window: Window, decision: Decision) -> None:
        """Called from the decode thread after each decision."""
        if self.error is not None:
            raise self.error
        if self._ready is not None:
            # between two windows: the next decision uses the adapted model
            self.pipeline.decoder, self._ready = self._ready, None
            self.n_swaps += 1
        if decision.true_label is None or decision.true_label not in self.spec.classes:
            return
        self.adapter.submit(window.data, decision.true_label)
        self.n_submitted += 1
        self._since_export += 1
        if self._since_export >= self.swap_every and self._exporting is None:
            self._since_export = 0
            self._exporting = threading.Thread(target=self._export, name="bci-adapt-export",
                                               daemon=True)
            self._exporting.start()

    def _export(self) -> None:
        try:
            self.adapter.flush()
            path = Path(self._tmp.name) / f"adapted-{self.n_swaps + 1}.onnx"
            self.adapter.export(path, self.spec)
            self._ready = OnnxDecoder(path, threads=self.threads)
        except BaseException as err:
            log.error("online adaptation failed: %s", err)
            self.error = err
        finally:
            self._exporting = None

    def close(self) -> dict[str, int]:
        """Learn what is pending, save the adapted model, and return the counts."""
        exporting = self._exporting
        if exporting is not None:
            exporting.join()
        self.adapter.close(drain=True)
        if self.save is not None and self.error is None:
            self.adapter.export(self.save, self.spec)
            save_state(self.estimator, self.state_path(self.save))
        self._tmp.cleanup()
        return {"adapt_submitted": self.n_submitted, "adapt_learned": self.adapter.n_adapted,
                "adapt_dropped": self.adapter.n_dropped, "adapt_swaps": self.n_swaps}
