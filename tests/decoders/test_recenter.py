"""Riemannian re-centering (Zanini et al. 2018) of the covariance decoders: online it uses
no label and never looks ahead; per session it undoes a shift between sessions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bci.decoders.riemann import RiemannMDM, TangentSpaceLR, invsqrtm

from bci.cli import main
from bci.datasets.synthetic import make_recording

pytest.importorskip("pyriemann")

N_CH = 6


def _session(seed: int, shift: np.ndarray, n_per_class: int = 20, n_times: int = 250
             ) -> tuple[np.ndarray, np.ndarray]:
    """Two classes differing in the power of one source, seen through a session's
    ``shift`` (electrodes moved, impedances changed); trials in random order."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(0).standard_normal((N_CH, N_CH)) + 2 * np.eye(N_CH)
    X, y = [], []
    for k in range(2):
        for _ in range(n_per_class):
            s = rng.standard_normal((N_CH, n_times))
            s[k] *= 1.6
            X.append(shift @ mixing @ s)
            y.append(f"c{k}")
    order = rng.permutation(len(y))
    return (np.stack(X) * 1e-5)[order], np.asarray(y)[order]


def _shift(seed: int, strength: float = 1.0) -> np.ndarray:
    """Channel gains (impedances) and a little cross-talk that change between sessions."""
    rng = np.random.default_rng(seed)
    gains = np.exp(strength * rng.standard_normal(N_CH))
    return np.diag(gains) @ (np.eye(N_CH) + 0.1 * rng.standard_normal((N_CH, N_CH)))


@pytest.fixture(scope="module")
def online_model():
    X1, y1 = _session(1, _shift(101))
    X2, y2 = _session(2, _shift(102))
    X = np.concatenate([X1, X2])
    y = np.concatenate([y1, y2])
    groups = np.repeat([0, 1], len(y1))
    model = TangentSpaceLR(sfreq=250.0, recenter="online", recenter_warmup=3,
                           recenter_forget=0.1).fit(X, y, groups=groups)
    X_test, y_test = _session(3, _shift(103))
    return model, X_test, y_test


def _run(model, X: np.ndarray) -> np.ndarray:
    model.model_.reset()
    return np.stack([model.model_.run(w) for w in X])


def test_online_decisions_never_look_ahead(online_model):
    model, X, _ = online_model
    out = _run(model, X)
    rng = np.random.default_rng(0)
    for cut in (1, 3, 4, 17, 39):
        future = cut + rng.permutation(len(X) - cut)
        permuted = np.concatenate([X[:cut], X[future]])
        # the decisions up to the cut are those of the same past, bit for bit
        np.testing.assert_array_equal(_run(model, permuted)[:cut], out[:cut])
        offline = model.predict_proba(permuted)
        np.testing.assert_array_equal(offline[:cut], out[:cut])
    # offline evaluation of each session from a fresh reference equals the live run
    np.testing.assert_array_equal(model.predict_proba(X), out)
    both = model.predict_proba(np.concatenate([X, X]), groups=np.repeat([0, 1], len(X)))
    np.testing.assert_array_equal(both, np.concatenate([out, out]))
    # and it does adapt: a different past changes the present decision
    changed = _run(model, np.concatenate([X[::-1][:10], X[10:]]))
    assert not np.allclose(changed[10:], out[10:])


def test_online_reference_is_the_recursive_geodesic_mean(online_model):
    from pyriemann.geometry.geodesic import geodesic_riemann

    model, X, _ = online_model
    m = model.model_
    C = m.covariances(X)
    expected, ref = [], None
    for n, c in enumerate(C, start=1):
        ref = c if ref is None else geodesic_riemann(ref, c, max(1 / n, 0.1))
        # warm-up: the first 3 windows are re-centred at the training mean
        P = invsqrtm(m.arrays["train_mean"] if n <= 3 else ref)
        expected.append(m.classify((P @ c @ P)[None])[0])
    np.testing.assert_allclose(_run(model, X), np.stack(expected), rtol=0, atol=1e-10)


def test_recentering_undoes_a_shift_between_sessions():
    X1, y1 = _session(1, _shift(101))
    X2, y2 = _session(2, _shift(102))
    X, y = np.concatenate([X1, X2]), np.concatenate([y1, y2])
    groups = np.repeat([0, 1], len(y1))
    X_test, y_test = _session(3, _shift(103), n_per_class=40)
    accuracy = {}
    for cls in (RiemannMDM, TangentSpaceLR):
        for mode in ("none", "session", "online"):
            model = cls(sfreq=250.0, recenter=mode, recenter_warmup=5).fit(X, y, groups=groups)
            accuracy[cls.__name__, mode] = float(np.mean(model.predict(X_test) == y_test))
    for name in ("RiemannMDM", "TangentSpaceLR"):
        none, session, online = (accuracy[name, m] for m in ("none", "session", "online"))
        # without re-centering the shifted session decodes at chance (0.5)
        assert session >= 0.9 and session >= none + 0.3, accuracy
        assert online >= 0.85 and online >= none + 0.25, accuracy


def test_replayed_decisions_do_not_depend_on_the_labels(tmp_path, capsys):
    """The markers' values (the labels) shuffled among the same onsets: the online
    decoder's outputs are identical, only the true labels differ."""
    session = tmp_path / "mi.toml"
    session.write_text('[window]\nmode = "epoch"\ntmin = 0.5\ntmax = 2.5\n'
                       'events = { left = "left", right = "right" }\n\n'
                       '[training]\nparadigm = "mi"\n\n[training.decoders.mdm]\n'
                       'recenter = "online"\nrecenter_warmup = 2\n')
    train = make_recording(100.0, paradigm="mi", n_channels=8, seed=1, erd_depth=0.8)
    train.to_raw().save(tmp_path / "train_raw.fif", verbose="error")
    test = make_recording(100.0, paradigm="mi", n_channels=8, seed=2, erd_depth=0.8)
    test.to_raw().save(tmp_path / "test_raw.fif", verbose="error")
    values = list(test.markers.values)
    test.markers.values = list(np.random.default_rng(0).permutation(values))
    assert test.markers.values != values
    test.to_raw().save(tmp_path / "shuffled_raw.fif", verbose="error")

    model = tmp_path / "m.npz"
    assert main(["train", str(session), "--decoder", "mdm", "--train",
                 str(tmp_path / "train_raw.fif"), "--output", str(model)]) == 0
    outs = []
    for name in ("test_raw.fif", "shuffled_raw.fif"):
        out = tmp_path / f"{name}.jsonl"
        assert main(["replay", str(session), "--model", str(model), "--input",
                     str(tmp_path / name), "--output", str(out), "--json"]) == 0
        outs.append([json.loads(x) for x in out.read_text().splitlines()])
    capsys.readouterr()
    assert len(outs[0]) == len(outs[1]) > 10
    assert [d["true_label"] for d in outs[0]] != [d["true_label"] for d in outs[1]]
    for a, b in zip(*outs, strict=True):
        assert a["stop"] == b["stop"] and a["probabilities"] == b["probabilities"]
