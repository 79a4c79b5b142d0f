"""Euclidean alignment (He & Wu 2019) of the signal decoders: online it uses no label and
never looks ahead; per session it undoes a shift between sessions; ``bci evaluate
--recenter`` applies it to any decoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bci.decoders.alignment import (
    EuclideanAlignment,
    align,
    window_covariances,
    with_recentering,
)
from bci.decoders.csp_lda import CSPLDA
from bci.decoders.riemann import TangentSpaceLR

from bci.cli import main
from bci.datasets.synthetic import make_recording

N_CH = 6


def _session(seed: int, shift: np.ndarray, n_per_class: int = 20, n_times: int = 250
             ) -> tuple[np.ndarray, np.ndarray]:
    """Two classes differing in the power of one source, seen through a session's
    ``shift`` (channel gains and cross-talk); trials in random order, float32 volts."""
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
    return (np.stack(X) * 1e-5).astype(np.float32)[order], np.asarray(y)[order]


def _shift(seed: int, strength: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gains = np.exp(strength * rng.standard_normal(N_CH))
    return np.diag(gains) @ (np.eye(N_CH) + 0.1 * rng.standard_normal((N_CH, N_CH)))


def _train(mode: str, **kw) -> tuple[EuclideanAlignment, np.ndarray, np.ndarray]:
    X1, y1 = _session(1, _shift(101))
    X2, y2 = _session(2, _shift(102))
    model = EuclideanAlignment(CSPLDA(sfreq=250.0, l_freq=8.0, h_freq=30.0, n_components=2),
                               recenter=mode, **kw)
    model.fit(np.concatenate([X1, X2]), np.concatenate([y1, y2]),
              groups=np.repeat([0, 1], len(y1)))
    X_test, y_test = _session(3, _shift(103), n_per_class=30)
    return model, X_test, y_test


def test_aligned_session_has_identity_mean_covariance():
    X, _ = _session(4, _shift(104))
    R = window_covariances(X).mean(axis=0)
    A = align(X, R)
    np.testing.assert_allclose(window_covariances(A).mean(axis=0), np.eye(N_CH), atol=1e-5)
    # filter-bank windows are aligned band by band
    Xb = np.stack([X, 3 * X], axis=1)
    Rb = window_covariances(Xb).mean(axis=0)
    Ab = align(Xb, Rb)
    np.testing.assert_allclose(window_covariances(Ab).mean(axis=0),
                               np.broadcast_to(np.eye(N_CH), (2, N_CH, N_CH)), atol=1e-5)


def test_online_alignment_never_looks_ahead_and_ignores_labels():
    model, X, _ = _train("online", recenter_warmup=3, recenter_forget=0.1)
    out = model.predict_proba(X)
    rng = np.random.default_rng(0)
    for cut in (1, 3, 4, 17, 59):
        future = cut + rng.permutation(len(X) - cut)
        permuted = np.concatenate([X[:cut], X[future]])
        # the decisions up to the cut are those of the same past, bit for bit
        np.testing.assert_array_equal(model.predict_proba(permuted)[:cut], out[:cut])
    # the warm-up windows are aligned at the training mean, whatever the session
    warm = align(X[:3], model.train_mean_, model.scale_)
    np.testing.assert_array_equal(model.transform(X)[:3], warm)
    # each group starts afresh, as a new live session does
    both = model.predict_proba(np.concatenate([X, X]), groups=np.repeat([0, 1], len(X)))
    np.testing.assert_array_equal(both, np.concatenate([out, out]))
    # and it does adapt: a different past changes how later windows are aligned
    changed = model.transform(np.concatenate([X[::-1][:10], X[10:]]))
    assert not np.allclose(changed[10:], model.transform(X)[10:], rtol=1e-3, atol=0)
    # no label reaches the test path: the signature takes none, and relabelling the
    # training windows' classes consistently gives the same decisions
    X1, y1 = _session(1, _shift(101))
    X2, y2 = _session(2, _shift(102))
    swap = {"c0": "a", "c1": "b"}
    relabelled = EuclideanAlignment(CSPLDA(sfreq=250.0, n_components=2), recenter="online",
                                    recenter_warmup=3, recenter_forget=0.1).fit(
        np.concatenate([X1, X2]), np.array([swap[v] for v in np.concatenate([y1, y2])]),
        groups=np.repeat([0, 1], len(y1)))
    np.testing.assert_allclose(relabelled.predict_proba(X), out, atol=1e-12)


def test_alignment_undoes_a_shift_between_sessions():
    accuracy = {}
    for mode in ("none", "session", "online"):
        model, X, y = _train(mode, recenter_warmup=5)
        accuracy[mode] = float(np.mean(model.predict(X) == y))
    # without alignment the shifted session decodes near chance (0.5)
    assert accuracy["session"] >= 0.9 and accuracy["session"] >= accuracy["none"] + 0.2, accuracy
    assert accuracy["online"] >= 0.85 and accuracy["online"] >= accuracy["none"] + 0.2, accuracy


def test_with_recentering_picks_the_decoders_own_or_euclidean():
    ts = TangentSpaceLR(sfreq=250.0, recenter_warmup=7)
    assert with_recentering(ts, "online") is ts and ts.recenter == "online"
    assert ts.recenter_warmup == 7  # kept unless given
    csp = CSPLDA(sfreq=250.0)
    assert with_recentering(csp, "none") is csp
    wrapped = with_recentering(csp, "session", warmup=2, forget=0.2)
    assert isinstance(wrapped, EuclideanAlignment)
    assert (wrapped.recenter, wrapped.recenter_warmup, wrapped.recenter_forget) == (
        "session", 2, 0.2)
    with pytest.raises(ValueError, match="recenter: expected one of"):
        with_recentering(csp, "always")
    with pytest.raises(ValueError, match="recenter_forget: expected a weight in"):
        with_recentering(csp, "online", forget=0.0)


def test_evaluate_cli_recenters_any_decoder(tmp_path, capsys):
    session = tmp_path / "mi.toml"
    session.write_text('[window]\nmode = "epoch"\ntmin = 0.5\ntmax = 2.5\n'
                       'events = { left = "left", right = "right" }\n\n'
                       '[training]\nparadigm = "mi"\n')
    paths = []
    for seed in (1, 2):
        rec = make_recording(100.0, paradigm="mi", n_channels=8, seed=seed, erd_depth=0.8)
        paths.append(tmp_path / f"r{seed}_raw.fif")
        rec.to_raw().save(paths[-1], verbose="error")
    # the test file again, its markers' values (the labels) shuffled among the same onsets
    values = list(rec.markers.values)
    rec.markers.values = list(np.random.default_rng(0).permutation(values))
    assert rec.markers.values != values
    shuffled = tmp_path / "shuffled_raw.fif"
    rec.to_raw().save(shuffled, verbose="error")
    common = ["evaluate", str(session), "--train", str(paths[0]), "--test", str(paths[1]),
              "--json"]
    preds = {}
    for decoder in ("csp-lda", "mdm"):
        for mode in ("none", "session", "online"):
            out = tmp_path / f"{decoder}-{mode}.jsonl"
            assert main([*common, "--decoder", decoder, "--recenter", mode,
                         "--recenter-warmup", "2", "--predictions", str(out)]) == 0
            summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
            assert summary["accuracy"] > 0.5
            rows = [json.loads(x) for x in out.read_text().splitlines()]
            preds[decoder, mode] = [r["probabilities"] for r in rows]
            truth = [r["true_label"] for r in rows]
        # the modes are really applied: each gives different probabilities
        assert preds[decoder, "none"] != preds[decoder, "session"]
        assert preds[decoder, "session"] != preds[decoder, "online"]
        # and no test label reaches them: shuffled labels, the same probabilities
        for mode in ("session", "online"):
            out = tmp_path / f"{decoder}-{mode}-shuffled.jsonl"
            assert main(["evaluate", str(session), "--train", str(paths[0]), "--test",
                         str(shuffled), "--json", "--decoder", decoder, "--recenter", mode,
                         "--recenter-warmup", "2", "--predictions", str(out)]) == 0
            capsys.readouterr()
            rows = [json.loads(x) for x in out.read_text().splitlines()]
            assert [r["true_label"] for r in rows] != truth
            assert [r["probabilities"] for r in rows] == preds[decoder, mode]
    # validated: a bad mode is refused by argparse, a bad factor by one line
    with pytest.raises(SystemExit):
        main([*common, "--decoder", "csp-lda", "--recenter", "always"])
    assert main([*common, "--decoder", "csp-lda", "--recenter", "online",
                 "--recenter-forget", "2"]) != 0
    err = capsys.readouterr().err
    assert "recenter_forget: expected a weight in (0, 1], found 2.0" in err
    assert main([*common, "--decoder", "csp-lda", "--recenter-warmup", "2"]) != 0
    assert "expected --recenter online" in capsys.readouterr().err
