"""RL-EEGNet: motor-imagery decoding as deep Q-learning (Nallani & Ramachandran 2024).

A trial is a state, a class is an action, and the reward is ``+1`` for the right class
and ``−1`` for a wrong one. A Q-network (Conv1D → Conv1D → LSTM → dense) learns one
Q-value per class from trials in one-versus-rest CSP space, with ε-greedy exploration,
a replay buffer and a target network; at test time the greedy action is the decision.
Because the reward only needs the cue of each trial, learning can go on online from
cued trials (:meth:`RLEEGNet.adapt`, :class:`OnlineAdapter`) without refitting CSP.

Differences from the published code, on purpose:

* The published code projects each trial with the CSP filters *of its true class*,
  which hands the answer to the network (and cannot be done on an unlabelled trial).
  Here every trial goes through the same filters, all classes' one-versus-rest filters
  concatenated, fitted on the training trials alone.
* Trials are acted on in groups of ``batch_size`` (parallel one-step environments)
  and each group is followed by ``updates_per_step`` gradient steps on replayed
  transitions, which makes training far faster than one network update per trial.
* An optional max-pooling (``pool``) between the convolutions and the LSTM shortens
  the sequence the LSTM steps through; ``pool=1`` gives the published layer stack.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bci.decoders.base import check_windows
from bci.decoders.csp import CSP, check_labels
from bci.decoders.torch_export import export_module
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn

from bci.errors import ModelError
from bci.spec import DecoderSpec, write_spec

#: Format of the files :meth:`RLEEGNet.save_state` writes.
STATE_KIND, STATE_VERSION = "rl-eegnet-state", 1


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters with numpy scalars turned into Python ones (weights-only loadable)."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}


class QNetwork(nn.Module):
    """CSP projection, standardisation and the Q-network, as one torch module.

    ``q_values`` gives the Q-values used for learning; ``forward`` gives their softmax,
    the output the ONNX graph carries.

    Parameters
    ----------
    projection : ndarray, shape (n_filters, n_channels)
        CSP filters divided by the standard deviation of each filter's output on the
        training trials: a fixed buffer, so the exported graph takes band-passed
        windows in volts and applies the training-data scaling itself.
    n_classes : int
    pool : int
        Max-pooling factor in time after the convolutions (1: none).
    """

    def __init__(self, projection: np.ndarray, n_classes: int, *, pool: int = 1) -> None:
        super().__init__()
        n_filters = projection.shape[0]
        self.register_buffer("projection", torch.as_tensor(projection, dtype=torch.float32))
        self.conv1 = nn.Conv1d(n_filters, 32, kernel_size=3)
        self.conv2 = nn.Conv1d(32, 32, kernel_size=3)
        self.pool = nn.MaxPool1d(pool) if pool > 1 else nn.Identity()
        self.lstm = nn.LSTM(32, 32, batch_first=True)
        self.dense = nn.Linear(32, 64)
        self.head = nn.Linear(64, n_classes)

    def q_values(self, x: torch.Tensor) -> torch.Tensor:
        """Q-values, shape (batch, n_classes), of windows ``x`` (batch, n_channels, n_times)."""
        z = torch.matmul(self.projection, x)
        z = torch.relu(self.conv2(torch.relu(self.conv1(z))))
        z = self.pool(z).transpose(1, 2)
        out, _ = self.lstm(z)
        return self.head(torch.relu(self.dense(out[:, -1])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.q_values(x), dim=-1)


class ReplayBuffer:
    """A ring of transitions ``(state, action, reward, next_state, done)``.

    Next states are stored only when ``store_next`` (a discount γ > 0 needs them); with
    γ = 0 each trial is a one-step episode and the target is the reward alone.

    Parameters
    ----------
    capacity : int
    state_shape : tuple of int
        Shape of one state, ``(n_channels, n_times)``.
    store_next : bool
    """

    def __init__(self, capacity: int, state_shape: tuple[int, ...], *, store_next: bool) -> None:
        self.capacity = int(capacity)
        self.states = np.zeros((self.capacity, *state_shape), np.float32)
        self.next_states = (np.zeros((self.capacity, *state_shape), np.float32)
                            if store_next else None)
        self.actions = np.zeros(self.capacity, np.int64)
        self.rewards = np.zeros(self.capacity, np.float32)
        self.done = np.ones(self.capacity, np.float32)
        self.size = 0
        self._head = 0

    def __len__(self) -> int:
        return self.size

    def push(self, states: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
             next_states: np.ndarray | None, done: np.ndarray) -> None:
        """Add transitions, overwriting the oldest once full.

        Parameters
        ----------
        states : ndarray, shape (n, n_channels, n_times)
        actions, rewards, done : ndarray, shape (n,)
        next_states : ndarray, shape (n, n_channels, n_times) | None
        """
        for i in range(states.shape[0]):
            j = self._head
            self.states[j] = states[i]
            self.actions[j], self.rewards[j], self.done[j] = actions[i], rewards[i], done[i]
            if self.next_states is not None and next_states is not None:
                self.next_states[j] = next_states[i]
            self._head = (j + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def state(self) -> dict[str, Any]:
        """The ring's contents as tensors and integers (see :meth:`RLEEGNet.to_state`)."""
        arrays = {"states": self.states, "next_states": self.next_states,
                  "actions": self.actions, "rewards": self.rewards, "done": self.done}
        return {"capacity": self.capacity, "size": self.size, "head": self._head,
                **{k: None if v is None else torch.from_numpy(v.copy())
                   for k, v in arrays.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ReplayBuffer:
        """The buffer :meth:`state` describes."""
        buffer = cls(state["capacity"], tuple(state["states"].shape[1:]),
                     store_next=state["next_states"] is not None)
        for key in ("states", "next_states", "actions", "rewards", "done"):
            if state[key] is not None:
                getattr(buffer, key)[:] = state[key].numpy()
        buffer.size, buffer._head = int(state["size"]), int(state["head"])
        return buffer

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """``n`` transitions drawn uniformly with replacement (indices into the ring)."""
        idx = rng.integers(0, self.size, size=n)
        nxt = self.next_states[idx] if self.next_states is not None else None
        return self.states[idx], self.actions[idx], self.rewards[idx], nxt, self.done[idx]


class RLEEGNet(ClassifierMixin, BaseEstimator):
    """RL-EEGNet classifier: a deep Q-network on one-versus-rest CSP signals.

    Every trial, in training and at test time, is projected with the same filters: all
    classes' one-versus-rest CSP filters, concatenated, fitted on the training trials
    only. (The published code picks each trial's filters by its true label, which leaks
    the answer into the input.) The projected signals keep their time axis and are
    scaled by their spread on the training trials; both steps are fixed buffers of
    :attr:`module_`, so the ONNX graph takes band-passed windows in volts.

    Parameters
    ----------
    sfreq : float
        Sampling rate of the windows, in Hz (checks the band against Nyquist).
    l_freq, h_freq : float
        Band-pass the runtime applies before windows reach the decoder, in Hz.
    filter_order : int
        Order of that band-pass.
    n_csp : int
        CSP filters per class (one-versus-rest); two classes share one set of
        ``n_csp`` filters, since "class a versus rest" is then "a versus b".
    reward_correct, reward_wrong : float
        Reward of choosing the cued class, and of any other class.
    gamma : float
        Discount. 0 (default): each trial is a one-step episode and the Q-target is the
        reward. Above 0: the trials of one pass form an episode, the next state being
        the next trial, and the target bootstraps from the target network.
    epsilon_start, epsilon_end : float
        Exploration probability at the first training pass, and its floor.
    epsilon_decay : float
        Factor applied to ε after each training pass.
    buffer_size : int
        Capacity of the replay buffer, in transitions.
    batch_size : int
        Trials acted on per step, and transitions per gradient step.
    updates_per_step : int
        Gradient steps after each group of ``batch_size`` trials.
    target_update : int
        Gradient steps between copies of the network into the target network.
    lr : float
        Adam learning rate during :meth:`fit`.
    n_epochs : int
        Passes over the training trials.
    pool : int
        Max-pooling factor in time before the LSTM (1: the published stack).
    seed : int
        Seeds the weights, the exploration and the replay sampling.
    adapt_lr : float
        Adam learning rate during :meth:`adapt`.
    adapt_epsilon : float
        Exploration probability during :meth:`adapt`.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
    csp_ : bci.decoders.csp.CSP
        One-versus-rest CSP fitted on the training trials; :meth:`adapt` keeps it.
    module_ : QNetwork
        The online network; ``module_(x)`` maps band-passed windows (batch, n_channels,
        n_times) in volts to class probabilities (softmax of the Q-values).
    target_ : QNetwork
        The target network.
    replay_ : ReplayBuffer
    epsilon_ : float
        Exploration probability reached at the end of training.
    n_updates_ : int
        Gradient steps taken, in :meth:`fit` and :meth:`adapt`.
    history_ : list of float
        Mean reward of each training pass (of :meth:`fit`, then of :meth:`adapt`).
    """

    def __init__(
        self, *, sfreq: float, l_freq: float = 8.0, h_freq: float = 30.0,
        filter_order: int = 4, n_csp: int = 4, reward_correct: float = 1.0,
        reward_wrong: float = -1.0, gamma: float = 0.0, epsilon_start: float = 1.0,
        epsilon_end: float = 0.05, epsilon_decay: float = 0.9, buffer_size: int = 2000,
        batch_size: int = 32, updates_per_step: int = 2, target_update: int = 50,
        lr: float = 1e-3, n_epochs: int = 40, pool: int = 4, seed: int = 0,
        adapt_lr: float = 1e-3, adapt_epsilon: float = 0.1,
    ) -> None:
        self.sfreq = sfreq
        self.l_freq = l_freq
        self.h_freq = h_freq
        self.filter_order = filter_order
        self.n_csp = n_csp
        self.reward_correct = reward_correct
        self.reward_wrong = reward_wrong
        self.gamma = gamma
        self.epsilon_start = epsilon_start
        self.epsilon_end = epsilon_end
        self.epsilon_decay = epsilon_decay
        self.buffer_size = buffer_size
        self.batch_size = batch_size
        self.updates_per_step = updates_per_step
        self.target_update = target_update
        self.lr = lr
        self.n_epochs = n_epochs
        self.pool = pool
        self.seed = seed
        self.adapt_lr = adapt_lr
        self.adapt_epsilon = adapt_epsilon

    # -- contract -------------------------------------------------------------------

    def preprocessing(self) -> list[dict[str, Any]]:
        """The band-pass the runtime runs before cutting windows."""
        return [{"kind": "bandpass", "l_freq": float(self.l_freq),
                 "h_freq": float(self.h_freq), "order": int(self.filter_order)}]

    def _check_params(self) -> None:
        if not self.sfreq > 0:
            raise ValueError(f"RLEEGNet: sfreq must be positive, found {self.sfreq!r}")
        if not 0 < self.l_freq < self.h_freq < self.sfreq / 2:
            raise ValueError(f"RLEEGNet: expected 0 < l_freq < h_freq < sfreq/2 = "
                             f"{self.sfreq / 2}, found {self.l_freq}, {self.h_freq}")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"RLEEGNet: gamma must be in [0, 1), found {self.gamma!r}")
        for name in ("epsilon_start", "epsilon_end", "epsilon_decay", "adapt_epsilon"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"RLEEGNet: {name} must be in [0, 1], found "
                                 f"{getattr(self, name)!r}")
        for name in ("buffer_size", "batch_size", "updates_per_step", "target_update",
                     "n_epochs", "pool", "n_csp"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"RLEEGNet: {name} must be a positive integer, found "
                                 f"{value!r}")
        if self.buffer_size < self.batch_size:
            raise ValueError(f"RLEEGNet: buffer_size ({self.buffer_size}) must hold at least "
                             f"one batch ({self.batch_size})")

    def fit(self, X: np.ndarray, y: np.ndarray) -> RLEEGNet:
        """Fit CSP on these trials, then train the Q-network on them by Q-learning.

        Parameters
        ----------
        X : ndarray, shape (n_trials, n_channels, n_times)
            Band-passed windows (see :meth:`preprocessing`), in volts.
        y : ndarray, shape (n_trials,)
            Class labels.
        """
        X = check_windows(X, who="RLEEGNet").astype(np.float32)
        y = check_labels(y, X.shape[0], who="RLEEGNet")
        self._check_params()
        self.classes_ = np.unique(y)
        yi = np.searchsorted(self.classes_, y)
        # CSP sees the training trials only; nothing later (predict, adapt) refits it.
        self.csp_ = CSP(self.n_csp, multiclass="ovr", transform_into="csp_space").fit(X, y)
        z = np.matmul(self.csp_.filters_, X.astype(np.float64))
        scale = z.std(axis=(0, 2))
        scale[scale == 0] = 1.0
        projection = self.csp_.filters_ / scale[:, None]

        self.rng_ = np.random.default_rng(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.module_ = QNetwork(projection, self.classes_.size, pool=self.pool)
        self.target_ = copy.deepcopy(self.module_)
        self.target_.requires_grad_(False)
        self.optimizer_ = torch.optim.Adam(self.module_.parameters(), lr=self.lr)
        self.replay_ = ReplayBuffer(self.buffer_size, X.shape[1:], store_next=self.gamma > 0)
        self.n_updates_ = 0
        self.history_ = []
        self.n_features_in_ = X.shape[1]
        self.input_shape_ = tuple(int(d) for d in X.shape[1:])
        epsilon = float(self.epsilon_start)
        for _ in range(self.n_epochs):
            self._run_pass(X, yi, epsilon)
            epsilon = max(float(self.epsilon_end), epsilon * float(self.epsilon_decay))
        self.epsilon_ = epsilon
        self.module_.eval()
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Softmax of the Q-values: ranks the classes, but is not a calibrated probability.

        Parameters
        ----------
        X : ndarray, shape (n_trials, n_channels, n_times)

        Returns
        -------
        proba : ndarray, shape (n_trials, n_classes)
            In the order of ``classes_``.
        """
        X = self._check_X(X)
        out = []
        with torch.no_grad():
            for start in range(0, X.shape[0], 256):
                out.append(self.module_(torch.from_numpy(X[start:start + 256])).numpy())
        if not out:
            return np.zeros((0, self.classes_.size))
        return np.concatenate(out).astype(np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The greedy action: the class of highest Q-value, shape (n_trials,)."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def to_onnx(self) -> Any:
        """The network (CSP projection included) as ONNX: ``x`` (batch, C, T) → probabilities."""
        self._check_fitted()
        return export_module(self.module_, self.input_shape_)

    # -- online learning ------------------------------------------------------------

    def adapt(self, X: np.ndarray, y: np.ndarray, *, n_epochs: int = 1) -> RLEEGNet:
        """Continue Q-learning on newly cued trials; CSP and its scaling stay fixed.

        The new transitions join the replay buffer (which still holds earlier ones, so
        the network keeps some memory of the training session), with exploration
        ``adapt_epsilon`` and learning rate ``adapt_lr``.

        Parameters
        ----------
        X : ndarray, shape (n_trials, n_channels, n_times)
            Band-passed windows, as for :meth:`fit`.
        y : ndarray, shape (n_trials,)
            Their cues; every label must be one of ``classes_``.
        n_epochs : int
            Passes over these trials.
        """
        self._check_fitted()
        X = self._check_X(X)
        y = np.asarray(y)
        if y.shape != (X.shape[0],):
            raise ValueError(f"RLEEGNet.adapt: expected one label per window, shape "
                             f"({X.shape[0]},), found {y.shape}")
        unknown = sorted(set(y.tolist()) - set(self.classes_.tolist()))
        if unknown:
            raise ValueError(f"RLEEGNet.adapt: labels {unknown} are not among the fitted "
                             f"classes {self.classes_.tolist()}")
        if not isinstance(n_epochs, int | np.integer) or n_epochs < 1:
            raise ValueError(f"RLEEGNet.adapt: n_epochs must be a positive integer, found "
                             f"{n_epochs!r}")
        yi = np.searchsorted(self.classes_, y)
        for group in self.optimizer_.param_groups:
            group["lr"] = float(self.adapt_lr)
        for _ in range(int(n_epochs)):
            self._run_pass(X, yi, float(self.adapt_epsilon))
        self.module_.eval()
        return self

    # -- state files ----------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Everything the fitted decoder needs to predict and to keep adapting.

        Plain values, lists, dicts and tensors only, no pickled class, so the file
        :meth:`save_state` writes loads with ``torch.load(weights_only=True)`` and
        survives a move of this module: hyperparameters, classes, the CSP filters, the
        online and target networks' state dicts, the optimiser's, the replay buffer,
        the random generator's state and the counters.
        """
        self._check_fitted()
        csp = self.csp_
        return {
            "kind": STATE_KIND, "version": STATE_VERSION,
            "params": _plain(self.get_params()), "classes": self.classes_.tolist(),
            "csp": {"params": _plain(csp.get_params()), "classes": csp.classes_.tolist(),
                    **{k: torch.from_numpy(np.array(getattr(csp, f"{k}_")))
                       for k in ("filters", "eigenvalues", "patterns")}},
            "module": self.module_.state_dict(), "target": self.target_.state_dict(),
            "optimizer": self.optimizer_.state_dict(), "replay": self.replay_.state(),
            "rng": self.rng_.bit_generator.state, "epsilon": float(self.epsilon_),
            "n_updates": int(self.n_updates_), "history": [float(h) for h in self.history_],
            "input_shape": list(self.input_shape_),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RLEEGNet:
        """The fitted decoder :meth:`to_state` describes."""
        est = cls(**state["params"])
        est.classes_ = np.asarray(state["classes"])
        c = state["csp"]
        est.csp_ = CSP(**c["params"])
        est.csp_.classes_ = np.asarray(c["classes"])
        for key in ("filters", "eigenvalues", "patterns"):
            setattr(est.csp_, f"{key}_", c[key].numpy())
        projection = state["module"]["projection"].numpy()
        # the fresh weights are overwritten at once; leave the caller's torch RNG alone
        with torch.random.fork_rng(devices=[]):
            est.module_ = QNetwork(projection, est.classes_.size, pool=est.pool)
        est.module_.load_state_dict(state["module"])
        est.target_ = copy.deepcopy(est.module_)
        est.target_.load_state_dict(state["target"])
        est.target_.requires_grad_(False)
        est.optimizer_ = torch.optim.Adam(est.module_.parameters(), lr=est.lr)
        est.optimizer_.load_state_dict(state["optimizer"])
        est.replay_ = ReplayBuffer.from_state(state["replay"])
        est.rng_ = np.random.default_rng()
        est.rng_.bit_generator.state = state["rng"]
        est.epsilon_ = float(state["epsilon"])
        est.n_updates_ = int(state["n_updates"])
        est.history_ = list(state["history"])
        est.input_shape_ = tuple(int(d) for d in state["input_shape"])
        est.n_features_in_ = est.input_shape_[0]
        est.module_.eval()
        return est

    def save_state(self, path: str | Path) -> Path:
        """Write :meth:`to_state` to ``path`` (a torch file); return the path."""
        path = Path(path)
        torch.save(self.to_state(), path)
        return path

    @classmethod
    def load_state(cls, path: str | Path) -> RLEEGNet:
        """Read a file written by :meth:`save_state` (``torch.load(weights_only=True)``).

        Raises
        ------
        bci.errors.ModelError
            If the file holds something else, or a newer format.
        """
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("kind") != STATE_KIND:
            raise ModelError(f"{path}: expected an RL-EEGNet state file "
                             f"(kind {STATE_KIND!r}), found something else")
        if state.get("version", 0) > STATE_VERSION:
            raise ModelError(f"{path}: state format version {state['version']}, newer than "
                             f"{STATE_VERSION} which this version reads")
        return cls.from_state(state)

    # -- internals ------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise RuntimeError("RLEEGNet: call fit before predict_proba, adapt or to_onnx")

    def _check_X(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        X = check_windows(X, who="RLEEGNet")
        if X.shape[1:] != self.input_shape_:
            raise ValueError(f"RLEEGNet: fitted on windows of shape {self.input_shape_} "
                             f"(n_channels, n_times), found {X.shape[1:]}")
        return np.ascontiguousarray(X, dtype=np.float32)

    def _run_pass(self, X: np.ndarray, yi: np.ndarray, epsilon: float) -> None:
        """One pass over the trials in random order: act, store, learn."""
        n_classes = self.classes_.size
        order = self.rng_.permutation(X.shape[0])
        rewards = []
        for start in range(0, order.size, self.batch_size):
            idx = order[start:start + self.batch_size]
            self.module_.eval()
            with torch.no_grad():
                greedy = self.module_.q_values(torch.from_numpy(X[idx])).argmax(1).numpy()
            explore = self.rng_.random(idx.size) < epsilon
            actions = np.where(explore, self.rng_.integers(0, n_classes, idx.size), greedy)
            reward = np.where(actions == yi[idx], self.reward_correct,
                              self.reward_wrong).astype(np.float32)
            # With γ > 0 a pass is one episode: the next state is the next trial drawn.
            nxt = order[start + 1:start + 1 + idx.size]
            done = np.zeros(idx.size, np.float32)
            if nxt.size < idx.size:
                nxt = np.append(nxt, idx[-1])
                done[-1] = 1.0
            self.replay_.push(X[idx], actions, reward,
                              X[nxt] if self.gamma > 0 else None, done)
            rewards.append(reward)
            if len(self.replay_) >= self.batch_size:
                self.module_.train()
                for _ in range(self.updates_per_step):
                    self._update()
        self.history_.append(float(np.concatenate(rewards).mean()))

    def _update(self) -> None:
        """One gradient step of the Q-network towards the (Huber) Q-learning target."""
        s, a, r, s2, done = self.replay_.sample(self.batch_size, self.rng_)
        q = self.module_.q_values(torch.from_numpy(s))
        q = q.gather(1, torch.from_numpy(a)[:, None])[:, 0]
        target = torch.from_numpy(r)
        if self.gamma > 0:
            with torch.no_grad():
                best = self.target_.q_values(torch.from_numpy(s2)).max(1).values
            target = target + float(self.gamma) * (1.0 - torch.from_numpy(done)) * best
        loss = nn.functional.smooth_l1_loss(q, target)
        self.optimizer_.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.module_.parameters(), 10.0)
        self.optimizer_.step()
        self.n_updates_ += 1
        if self.n_updates_ % self.target_update == 0:
            self.target_.load_state_dict(self.module_.state_dict())


class OnlineAdapter:
    """Q-learning from cued trials in a background thread, while the decoder is in use.

    :meth:`submit` hands a window and its cue to the thread and returns at once; the
    thread takes every pending trial (up to ``max_group``) and runs
    :meth:`RLEEGNet.adapt` on them. When trials arrive faster than they are learned, the
    pending queue keeps the newest ``max_pending`` and counts the dropped ones.
    :meth:`export` writes the current weights to a new ``.onnx`` at any time, from a
    snapshot taken between two adaptation steps.

    While an adapter runs, it owns the decoder: read the model through
    :meth:`snapshot` or :meth:`export`, not through the decoder itself. How trials are
    grouped depends on timing, so the adapted weights are not reproducible run to run.
    Leaving a ``with`` block closes the adapter and drops what is still pending (call
    :meth:`flush` first to learn it).

    Parameters
    ----------
    decoder : RLEEGNet
        Fitted; adapted in place.
    max_pending : int
        Trials waiting to be learned, at most.
    max_group : int
        Trials learned in one :meth:`RLEEGNet.adapt` call, at most.
    n_epochs : int
        Passes over each group.

    Attributes
    ----------
    n_submitted, n_dropped, n_adapted : int
        Trials submitted, dropped from a full queue, and learned.
    """

    def __init__(self, decoder: RLEEGNet, *, max_pending: int = 64, max_group: int = 32,
                 n_epochs: int = 1) -> None:
        decoder._check_fitted()
        if max_pending < 1 or max_group < 1 or n_epochs < 1:
            raise ValueError(f"OnlineAdapter: max_pending, max_group and n_epochs must be "
                             f"positive, found {max_pending}, {max_group}, {n_epochs}")
        self.decoder = decoder
        self.max_pending = int(max_pending)
        self.max_group = int(max_group)
        self.n_epochs = int(n_epochs)
        self.n_submitted = self.n_dropped = self.n_adapted = 0
        self._pending: deque[tuple[np.ndarray, Any]] = deque()
        # _cond guards the queue and the counters and is held only for list operations,
        # so submit never waits for learning; _model_lock is held during one adapt call
        # and while the weights are copied.
        self._cond = threading.Condition()
        self._model_lock = threading.Lock()
        self._busy = False
        self._closed = False
        self._error: BaseException | None = None
        self._classes = set(decoder.classes_.tolist())
        self._thread = threading.Thread(target=self._work, name="rl-eegnet-adapter",
                                        daemon=True)
        self._thread.start()

    def submit(self, window: np.ndarray, true_label: Any) -> None:
        """Queue one cued trial for learning; returns without waiting.

        Parameters
        ----------
        window : ndarray, shape (n_channels, n_times)
            Band-passed, as the decoder's input; copied, so the caller may reuse it.
        true_label : str
            The cue, one of the decoder's ``classes_``.

        Raises
        ------
        ValueError
            For a window of the wrong shape or an unknown label.
        RuntimeError
            If the adapter is closed or its thread failed (the cause is chained).
        """
        window = np.array(window, dtype=np.float32)
        if window.shape != self.decoder.input_shape_:
            raise ValueError(f"OnlineAdapter.submit: expected a window of shape "
                             f"{self.decoder.input_shape_}, found {window.shape}")
        if true_label not in self._classes:
            raise ValueError(f"OnlineAdapter.submit: label {true_label!r} is not among the "
                             f"classes {sorted(self._classes)}")
        if not np.isfinite(window).all():
            raise ValueError("OnlineAdapter.submit: the window holds NaN or Inf")
        with self._cond:
            self._raise_if_failed()
            if self._closed:
                raise RuntimeError("OnlineAdapter.submit: the adapter is closed")
            if len(self._pending) >= self.max_pending:
                self._pending.popleft()
                self.n_dropped += 1
            self._pending.append((window, true_label))
            self.n_submitted += 1
            self._cond.notify_all()

    @property
    def n_pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted trial is learned or dropped.

        Returns
        -------
        done : bool
            False if ``timeout`` (seconds) ran out first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while (self._pending or self._busy) and self._error is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            self._raise_if_failed()
            return True

    def snapshot(self) -> QNetwork:
        """A copy of the current network, taken between two adaptation steps."""
        with self._model_lock:
            module = copy.deepcopy(self.decoder.module_)
        return module.eval()

    def export(self, path: str | Path, spec: DecoderSpec) -> Path:
        """Write the current network, with ``spec``, to a new ``.onnx`` file.

        The file is written next to ``path`` and renamed into place, so a reader never
        sees half a model.

        Parameters
        ----------
        path : str | Path
        spec : DecoderSpec
            Its ``classes`` must be the decoder's ``classes_``, in order.

        Returns
        -------
        path : Path
        """
        classes = [str(c) for c in self.decoder.classes_]
        if list(spec.classes) != classes:
            raise ValueError(f"OnlineAdapter.export: spec.classes {spec.classes} differ from "
                             f"the decoder's classes {classes}")
        path = Path(path)
        snapshot = self.snapshot()
        # torch.export keeps global tracing state (torch.fx's current_meta) that a training
        # step in the adaptation thread would corrupt: learning waits while we export.
        with self._model_lock:
            model = export_module(snapshot, self.decoder.input_shape_)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            write_spec(model, spec, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def close(self, *, drain: bool = True, timeout: float | None = None) -> None:
        """Stop the thread; with ``drain``, learn the pending trials first."""
        with self._cond:
            self._closed = True
            if not drain:
                self.n_dropped += len(self._pending)
                self._pending.clear()
            self._cond.notify_all()
        self._thread.join(timeout)

    def __enter__(self) -> OnlineAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(drain=False)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError("OnlineAdapter: the adaptation thread failed") from self._error

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                n = min(len(self._pending), self.max_group)
                group = [self._pending.popleft() for _ in range(n)]
                self._busy = True
            try:
                X = np.stack([w for w, _ in group])
                y = np.array([label for _, label in group])
                with self._model_lock:
                    self.decoder.adapt(X, y, n_epochs=self.n_epochs)
            except BaseException as err:  # reported to the caller by submit and flush
                with self._cond:
                    self._error = err
                    self._busy = False
                    self._cond.notify_all()
                return
            with self._cond:
                self._busy = False
                self.n_adapted += n
                self._cond.notify_all()
