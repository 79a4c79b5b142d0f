"""MEG image retrieval: sensors from mne.Info, preprocessing, embedding banks, the brain
module, its training, export and live use (decoders/meg_retrieval/, bci/datasets/meg.py).

Synthetic sessions carry a planted image code (bci.datasets.meg.make_meg_images); they are
written as FIF and read back through the runtime's file reader.
"""

from __future__ import annotations

import time
from pathlib import Path

import mne
import numpy as np
import onnxruntime as ort
import pytest
import torch
from bci.decoders.meg_retrieval import (
    BrainModule,
    BrainModuleConfig,
    DilatedBlock,
    FourierEmbedding,
    MEGRetrieval,
    RidgeRetrieval,
    SpatialAttention,
    clip_loss,
    retrieval_curve,
    retrieval_loss,
    retrieve,
    top_candidates,
    top_k_accuracy,
)
from bci.devices.files import read_recording

from bci.datasets.meg import (
    KINDS,
    MEGError,
    Montage,
    RobustClamp,
    baseline_correct,
    make_meg_images,
    make_meg_info,
    meg_epochs,
    meg_picks,
    meg_preprocessing,
    sensor_positions,
)
from bci.decoder import OnnxDecoder
from bci.errors import ConfigError
from bci.pipeline import Pipeline
from bci.retrieval import load_embedding_bank, save_embedding_bank
from bci.runner import replay_windows
from bci.session import DecoderConfig, OutputsConfig, SessionConfig, SourceConfig, WindowConfig
from bci.spec import DecoderSpec, write_spec

N_IMAGES, N_TEST = 60, 20


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _recording(raw: mne.io.BaseRaw, tmp: Path, name: str):
    path = tmp / f"{name}_raw.fif"
    raw.save(path, overwrite=True, verbose="error")
    return read_recording(path)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """One subject, 24 Vectorview sites (72 sensors) at 240 Hz, 60 images × 4, as FIF."""
    tmp = tmp_path_factory.mktemp("meg")
    data = make_meg_images(n_images=N_IMAGES, n_repeats=4, sfreq=240.0, n_sites=24,
                           snr=0.3, seed=0)
    rec = _recording(data.raws[0], tmp, "s0")
    ep = meg_epochs(rec)
    bank = data.bank()
    test_names = data.names[:N_TEST]  # never trained on: zero-shot retrieval
    test = np.isin(ep.names, test_names)
    return {"data": data, "rec": rec, "ep": ep, "Y": bank.take(ep.names), "bank": bank,
            "test_names": test_names, "test": test, "train": ~test, "tmp": tmp}


def _fit(session, Y=None, **options):
    ep, train = session["ep"], session["train"]
    Y = session["Y"] if Y is None else Y
    # no validation split: 40 training images leave too few to stop early on reliably
    params = {"epochs": 40, "batch_size": 64, "lr": 3e-3, "validation_fraction": 0.0,
              **options}
    return MEGRetrieval(**params).fit(ep.X[train], Y[train], positions=ep.montage)


@pytest.fixture(scope="module")
def fitted(session):
    return _fit(session)


# --- sensors, files and preprocessing --------------------------------------------------


def test_vectorview_fif_gives_types_kinds_and_positions(tmp_path):
    data = make_meg_images(n_images=6, n_repeats=1, sfreq=600.0, seed=1)
    raw = data.raws[0]
    rec = _recording(raw, tmp_path, "vv")
    info = rec.info
    assert info.get_channel_types().count("mag") == 102
    assert info.get_channel_types().count("grad") == 204
    montage = Montage.from_info(info)
    assert len(montage) == 306
    # each planar pair splits into one polar and one azimuthal gradiometer
    assert np.bincount(montage.kinds, minlength=len(KINDS)).tolist() == [102, 102, 102]
    names = montage.ch_names
    for site in ("MEG011", "MEG253"):
        trio = [names.index(site + s) for s in "123"]
        assert montage.kinds[trio].tolist() in ([0, 1, 2], [0, 2, 1])
        np.testing.assert_allclose(montage.positions[trio], montage.positions[trio[:1]].repeat(
            3, 0), atol=1e-6)
    assert (montage.positions >= 0).all() and (montage.positions <= 1).all()
    # orientation: right of the head → x > 0.5, front → y > 0.5 (head frame via dev_head_t)
    head = mne.transforms.apply_trans(info["dev_head_t"], np.array(
        [ch["loc"][:3] for ch in info["chs"]]))
    right, front = head[:, 0] > 0.03, head[:, 1] > 0.03
    assert (montage.positions[right, 0] > 0.5).all()
    assert (montage.positions[front, 1] > 0.5).all()
    # the positions survive the FIF round trip
    np.testing.assert_allclose(montage.positions, Montage.from_info(raw.info).positions,
                               atol=1e-6)
    # epochs through the runtime's chain: 1.5 s at 120 Hz, one per annotation
    ep = meg_epochs(rec)
    assert ep.X.shape == (6, 306, 180)
    assert ep.names.tolist() == [data.names[i] for i in data.order[0]]
    assert ep.preprocessing == [
        {"kind": "bandpass", "l_freq": 0.1, "h_freq": 40.0, "order": 4},
        {"kind": "decimate", "factor": 5},
    ]


def test_ctf_sensors_and_subsets_keep_their_positions(tmp_path):
    info = make_meg_info("ctf275", sfreq=1200.0)
    raw = mne.io.RawArray(np.zeros((275, 1200)), info, verbose="error")
    back = _recording(raw, tmp_path, "ctf").info
    assert {ch["coil_type"] for ch in back["chs"]} == {mne.io.constants.FIFF.FIFFV_COIL_CTF_GRAD}
    full = Montage.from_info(back)
    assert (full.kinds == 0).all()
    # a subject with a subset of the sensors sees them where the full helmet has them
    subset = full.ch_names[::7][::-1]
    part = Montage.from_info(back, subset)
    idx = [full.ch_names.index(n) for n in subset]
    np.testing.assert_allclose(part.positions, full.positions[idx])
    # and Vectorview / CTF sensors over the same patch of head land close together
    vv = Montage.from_info(make_meg_info("vectorview"))
    d = np.linalg.norm(vv.positions[:, None] - full.positions[None], axis=-1).min(1)
    assert np.median(d) < 0.05


def test_sensor_errors_are_named():
    info = make_meg_info("vectorview", n_sites=4)
    with pytest.raises(MEGError, match="MEG9999"):
        meg_picks(info, ["MEG9999"])
    eeg = mne.create_info(["Fz", "Cz"], 600.0, "eeg")
    with pytest.raises(MEGError, match="expected MEG channels"):
        meg_picks(eeg)
    mixed = mne.create_info(["MEG0111", "EOG"], 600.0, ["mag", "eog"])
    with pytest.raises(MEGError, match="EOG"):
        meg_picks(mixed, ["MEG0111", "EOG"])
    no_loc = mne.create_info(["MEG0111", "MEG0112"], 600.0, ["mag", "grad"])
    with pytest.raises(MEGError, match="sensor locations"):
        sensor_positions(no_loc)


def test_preprocessing_nodes_and_their_checks():
    assert meg_preprocessing(1200.0)[-1] == {"kind": "decimate", "factor": 10}
    assert len(meg_preprocessing(120.0)) == 1
    with pytest.raises(MEGError, match="integer multiple of 120"):
        meg_preprocessing(1000.0)
    with pytest.raises(MEGError, match="h_freq"):
        meg_preprocessing(600.0, h_freq=70.0)


def test_baseline_robust_scaling_and_clamp():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3, 50)) * np.array([1e-13, 1e-12, 5e-12])[:, None] + 3e-12
    Xb = baseline_correct(X, 10)
    np.testing.assert_allclose(Xb[..., :10].mean(-1), 0, atol=1e-18)
    np.testing.assert_allclose(Xb - X, Xb[..., :1] - X[..., :1] + 0 * X, rtol=1e-4, atol=1e-18)
    scaler = RobustClamp().fit(Xb)
    flat = np.moveaxis(Xb, 1, -1).reshape(-1, 3).astype(np.float64)
    q75, q25 = np.percentile(flat, [75, 25], axis=0)
    np.testing.assert_allclose(scaler.center_, np.median(flat, 0), rtol=1e-6)
    np.testing.assert_allclose(scaler.scale_, q75 - q25, rtol=1e-6)
    test = Xb[:2].copy()
    test[0, 1, 5] = 1e-9  # an artefact thousands of IQRs away
    Z = scaler.transform(test)
    assert Z[0, 1, 5] == pytest.approx(20.0)
    assert np.abs(Z).max() <= 20.0
    # test windows are scaled with the training statistics, not their own
    np.testing.assert_allclose(Z[1, 0], (test[1, 0] - scaler.center_[0]) / scaler.scale_[0],
                               rtol=1e-5, atol=1e-5)


def test_embedding_bank_loader(tmp_path):
    rng = np.random.default_rng(0)
    names = ["cat", "dog", "apple"]
    folder = save_embedding_bank(tmp_path / "bank", names, rng.standard_normal((3, 8)))
    bank = load_embedding_bank(folder)
    assert bank.names == sorted(names) and bank.vectors.shape == (3, 8)
    np.save(folder / "egg.npy", rng.standard_normal((1, 8)))  # (1, dim) is accepted
    assert load_embedding_bank(folder, names=["egg", "cat"], dim=8).vectors.shape == (2, 8)
    with pytest.raises(ConfigError, match="no such folder"):
        load_embedding_bank(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="found none"):
        load_embedding_bank(tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"missing \['pear.npy'\]"):
        load_embedding_bank(folder, names=["cat", "pear"])
    with pytest.raises(ConfigError, match="size 16"):
        load_embedding_bank(folder, dim=16)
    np.save(folder / "wide.npy", rng.standard_normal(9))
    with pytest.raises(ConfigError, match="one embedding size"):
        load_embedding_bank(folder)
    (folder / "wide.npy").unlink()
    bad = rng.standard_normal(8)
    bad[3] = np.nan
    np.save(folder / "nan.npy", bad)
    with pytest.raises(ConfigError, match=r"nan\.npy holds 1 NaN"):
        load_embedding_bank(folder)
    (folder / "nan.npy").unlink()
    np.save(folder / "text.npy", np.array(["a", "b"]))
    with pytest.raises(ConfigError, match="numeric vector"):
        load_embedding_bank(folder)
    (folder / "text.npy").unlink()
    with pytest.raises(ConfigError, match=r"\['pear'\]"):
        load_embedding_bank(folder).take(["cat", "pear"])


# --- the network -------------------------------------------------------------------------


def test_published_sizes_and_block_dilations():
    p = BrainModuleConfig.published()
    assert (p.n_virtual, 2 * p.fourier_freqs**2, p.hidden, p.n_blocks, p.features,
            p.dropout_radius) == (270, 2048, 320, 2, 2048, 0.2)
    assert BrainModuleConfig.defossez2023().n_blocks == 5
    with pytest.raises(ValueError, match="kernel_size"):
        BrainModuleConfig.resolve({"kernel_size": 4})
    with pytest.raises(ValueError, match="unknown fields"):
        BrainModuleConfig.resolve({"depth": 4})
    # Défossez et al.: dilations 2^(2k mod 5), 2^(2k+1 mod 5)
    dil = [(b.conv1.dilation[0], b.conv2.dilation[0]) for b in (
        DilatedBlock(8, 8, kernel_size=3, index=k) for k in range(5))]
    assert dil == [(1, 2), (4, 8), (16, 1), (2, 4), (8, 16)]
    assert FourierEmbedding(32)(torch.rand(5, 2)).shape == (5, 2048)


@pytest.mark.slow
def test_published_size_exports_with_parity():
    info = make_meg_info("ctf275", n_sites=272)
    montage = Montage.from_info(info)
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((8, 272, 180)) * 1e-13).astype(np.float32)
    est = MEGRetrieval(config="published", epochs=0, validation_fraction=0.0).fit(
        X, rng.standard_normal((8, 768)), positions=montage)
    n_params = sum(p.numel() for p in est.module_.parameters())
    assert 8e6 < n_params < 1e7
    proto = est.to_onnx()
    ref = est.transform(X[:2])
    out = ort.InferenceSession(proto.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"x": X[:2]})[0]
    assert out.shape == (2, 768)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_spatial_dropout_removes_a_disc_and_never_everything():
    torch.manual_seed(0)
    att = SpatialAttention(4, 3, dropout_radius=0.3).train()
    pos = torch.rand(64, 50, 2)
    valid = torch.ones(64, 50, dtype=torch.bool)
    valid[:, 45:] = False  # padding
    scores = torch.randn(64, 4, 50)
    w = att.weights(scores, valid, pos)
    dropped = (w == 0).all(dim=1)
    assert dropped[:, 45:].all()
    for b in range(64):
        gone = pos[b, :45][dropped[b, :45]]
        kept = pos[b, :45][~dropped[b, :45]]
        if gone.shape[0]:  # the dropped sensors fit in a disc of radius 0.3 …
            assert torch.cdist(gone, gone).max() <= 0.6 + 1e-6
            # … that none of the kept ones is in: some kept sensor is far from each gone one
            assert torch.cdist(gone, kept).max() > 0.0
    assert dropped[:, :45].any(dim=1).float().mean() > 0.5
    torch.testing.assert_close(w.sum(-1), torch.ones(64, 4))
    # a disc over a one-sensor montage would remove all of it: the sensor is kept
    one = att.weights(torch.randn(32, 4, 1), torch.ones(32, 1, dtype=torch.bool),
                      torch.full((32, 1, 2), 0.5))
    torch.testing.assert_close(one, torch.ones(32, 4, 1))
    att.eval()
    assert (att.weights(scores, valid, pos)[:, :, :45] > 0).all()


def test_clip_and_mse_losses():
    torch.manual_seed(0)
    t = torch.randn(6, 5)
    p = torch.randn(6, 5)
    # against a direct computation of the symmetric InfoNCE
    logits = 3.0 * torch.nn.functional.normalize(p, dim=1) @ torch.nn.functional.normalize(
        t, dim=1).T
    ref = (torch.nn.functional.cross_entropy(logits, torch.arange(6))
           + torch.nn.functional.cross_entropy(logits.T, torch.arange(6))) / 2
    torch.testing.assert_close(clip_loss(p, t, temperature=3.0), ref)
    assert clip_loss(t, t, temperature=100.0) < 1e-3
    # windows of one image are positives of each other: with the image's embedding
    # repeated, that is what the diagonal targets already give …
    dup = t[[0, 0, 1, 2, 3, 4]]
    groups = torch.tensor([0, 0, 1, 2, 3, 4])
    torch.testing.assert_close(clip_loss(p, dup, temperature=3.0, groups=groups),
                               clip_loss(p, dup, temperature=3.0))
    # … and with two different embeddings of one image (two crops), both are positives
    two = dup.clone()
    two[1] += 0.3 * torch.randn(5)
    swapped = p[[1, 0, 2, 3, 4, 5]]
    torch.testing.assert_close(clip_loss(p, two, temperature=3.0, groups=groups),
                               clip_loss(p, two[[1, 0, 2, 3, 4, 5]], temperature=3.0,
                                         groups=groups))
    assert not torch.isclose(clip_loss(p, two, temperature=3.0),
                             clip_loss(swapped, two, temperature=3.0))
    # at best, the loss is the entropy of the soft targets (two windows share one image)
    best = clip_loss(dup, dup, temperature=100.0, groups=groups)
    assert best == pytest.approx(2 * np.log(2) / 6, abs=1e-3)
    z = torch.randn(6, 5)
    mse = torch.nn.functional.mse_loss(p, z)
    torch.testing.assert_close(retrieval_loss(p, p, t, z, lam=1.0, temperature=3.0), ref)
    torch.testing.assert_close(retrieval_loss(p, p, t, z, lam=0.0, temperature=3.0), mse)
    torch.testing.assert_close(retrieval_loss(p, p, t, z, lam=0.75, temperature=3.0),
                               0.75 * ref + 0.25 * mse)


def test_retrieval_helpers():
    bank = np.eye(4)
    emb = np.array([[0.9, 0.1, 0, 0], [0, 0, 0.2, 1.0]])
    idx, sim = retrieve(emb, bank, k=2)
    assert idx.tolist() == [[0, 1], [3, 2]]
    assert sim[0, 0] == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    assert top_k_accuracy(emb, bank, np.array([1, 3]), k=1) == 0.5
    assert top_k_accuracy(emb, bank, np.array([1, 3]), k=2) == 1.0
    assert top_candidates(np.array([0.1, 0.6, 0.3]), ["a", "b", "c"], k=2) == [
        ("b", 0.6), ("c", 0.3)]
    with pytest.raises(ValueError, match="k ≤ 4"):
        retrieve(emb, bank, k=5)
    # a curve: windows every 0.1 s; a window is right only when it is aligned with an onset
    onsets, targets = np.array([10.0, 20.0]), np.array([1, 2])
    win = np.arange(8.0, 22.0, 0.1)
    scores = np.zeros((win.size, 4))
    for o, t in zip(onsets, targets, strict=True):
        scores[np.abs(win - o) < 0.05, t] = 1.0
    lags, acc, counts = retrieval_curve(scores, win, onsets, targets, k=1, max_lag=0.5,
                                        resolution=0.1)
    assert counts.tolist() == [2] * 11
    assert acc[lags.size // 2] == 1.0 and np.nansum(acc) == 1.0


# --- training, evaluation, export, live use ------------------------------------------


@pytest.mark.slow
def test_retrieval_well_above_chance_and_ridge_baseline(session, fitted):
    ep, test, train = session["ep"], session["test"], session["train"]
    Y, test_bank = session["Y"], session["bank"].take(session["test_names"])
    chance = 5 / N_TEST
    deep = fitted.score(ep.X[test], Y[test], bank=test_bank, k=5)
    ridge = RidgeRetrieval().fit(ep.X[train], Y[train])
    assert deep >= 2.5 * chance, deep
    assert ridge.score(ep.X[test], Y[test], bank=test_bank, k=5) >= 2.5 * chance
    # the default bank is the distinct embeddings given: the same candidates here
    assert fitted.score(ep.X[test], Y[test], k=5) == pytest.approx(deep)
    assert fitted.best_epoch_ == len(fitted.history_) == 40
    # the MSE head regresses onto the embeddings in their own scale
    mse_out = fitted.transform(ep.X[test], head="mse")
    r = np.corrcoef(mse_out.ravel(), Y[test].ravel())[0, 1]
    assert r > 0.3, r


@pytest.mark.slow
def test_shuffled_labels_give_chance(session):
    rng = np.random.default_rng(1)
    Y = session["Y"].copy()
    train = np.flatnonzero(session["train"])
    Y[train] = Y[rng.permutation(train)]
    # as long a training as the real model's
    model = _fit(session, Y=Y)
    ep, test = session["ep"], session["test"]
    test_bank = session["bank"].take(session["test_names"])
    acc = model.score(ep.X[test], session["Y"][test], bank=test_bank, k=5)
    assert acc <= 5 / N_TEST + 0.2, acc
    # it did learn something: the shuffled pairs it was trained on
    assert model.history_[-1]["train_loss"] < 0.8 * model.history_[0]["train_loss"]


@pytest.mark.slow
def test_early_stopping_keeps_the_best_validation_epoch(session):
    model = _fit(session, epochs=12, patience=2, validation_fraction=0.25, lr=3e-2)
    val = [h["val_loss"] for h in model.history_]
    assert model.best_epoch_ == int(np.argmin(val)) + 1
    assert len(val) == 12 or len(val) == model.best_epoch_ + 2
    # the weights kept are those of the best epoch: recomputing its loss gives it back
    ep, train = session["ep"], np.flatnonzero(session["train"])
    groups = np.unique(session["Y"][train], axis=0, return_inverse=True)[1].ravel()
    _, val_idx = model._split(groups, np.random.default_rng(model.seed))
    X, subj = model._prepare(list(ep.X[train][val_idx]), np.zeros(val_idx.size, dtype=object))
    pos, kinds, valid = model._montage_tensors(torch.device("cpu"))
    Y = session["Y"][train][val_idx]
    with torch.no_grad():
        c, m = model.module_(torch.from_numpy(X), torch.from_numpy(subj), pos, kinds, valid)
        loss = retrieval_loss(c, m, torch.tensor(Y, dtype=torch.float32),
                              torch.tensor((Y - model.y_mean_) / model.y_std_,
                                           dtype=torch.float32),
                              lam=model.lam, temperature=model.module_.temperature(),
                              groups=torch.from_numpy(groups[val_idx]))
    assert float(loss) == pytest.approx(min(val), rel=1e-4)


@pytest.mark.slow
def test_output_invariant_to_joint_permutation_of_channels_and_positions(session, fitted):
    ep, test = session["ep"], session["test"]
    X, _ = fitted._prepare(list(ep.X[test][:16]), np.zeros(16, dtype=object))
    pos, kinds, valid = fitted._montage_tensors(torch.device("cpu"))
    x = torch.from_numpy(X)
    s = torch.zeros(16, dtype=torch.int64)
    perm = torch.from_numpy(np.random.default_rng(0).permutation(X.shape[1]))
    module = fitted.module_.eval()
    with torch.no_grad():
        ref = module(x, s, pos, kinds, valid)[0]
        same = module(x[:, perm], s, pos[:, perm], kinds[:, perm], valid[:, perm])[0]
        moved = module(x[:, perm], s, pos, kinds, valid)[0]
    torch.testing.assert_close(same, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))
    # control: channels moved without their positions do change the output
    assert (moved - ref).abs().max() > 0.05 * ref.abs().max()


@pytest.mark.slow
def test_onnx_parity_and_live_replay_curve(session, fitted):
    ep, test, rec = session["ep"], session["test"], session["rec"]
    names = session["test_names"]
    test_bank = session["bank"].take(names)
    emb = fitted.transform(ep.X[test])
    proto = fitted.to_onnx()
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"x": ep.X[test]})[0]
    np.testing.assert_allclose(out, emb, rtol=1e-4, atol=1e-4 * np.abs(emb).max())
    # the embedding form, served as is; the bank's folder travels in the spec
    spec = fitted.decoder_spec(stream_sfreq=rec.sfreq, bank_path="bank/")
    write_spec(proto, spec, session["tmp"] / "meg-embedding.onnx")
    served = OnnxDecoder(session["tmp"] / "meg-embedding.onnx")
    assert served.spec.output == "embedding" and served.spec.classes == []
    assert served.spec.extra["bank"] == "bank/"
    assert (served.spec.window.tmin, served.spec.window.tmax) == (-0.5, 1.0)
    np.testing.assert_allclose(served.run(ep.X[test][0]), emb[0], rtol=1e-4,
                               atol=1e-4 * np.abs(emb).max())

    # the served form: candidates inside the graph, one probability per image
    spec = fitted.decoder_spec(stream_sfreq=rec.sfreq, candidates=names, step=0.05)
    path = session["tmp"] / "meg.onnx"
    write_spec(fitted.to_onnx(bank=test_bank), spec, path)
    decoder = OnnxDecoder(path)
    assert decoder.spec.output == "logits" and decoder.spec.paradigm == "meg"
    assert decoder.spec.extra["task"] == "retrieval"
    assert DecoderSpec.from_json(decoder.spec.to_json()).classes == names
    logits = sess_logits = decoder.session.run(None, {"x": ep.X[test][:8]})[0]
    sim = emb[:8] / np.linalg.norm(emb[:8], axis=1, keepdims=True) @ (
        test_bank / np.linalg.norm(test_bank, axis=1, keepdims=True)).T
    np.testing.assert_allclose(sess_logits, sim * fitted.module_.temperature().item(),
                               rtol=1e-4, atol=1e-3)
    assert logits.shape == (8, N_TEST)

    config = SessionConfig(source=SourceConfig(), chain=[], window=WindowConfig(),
                           decoder=DecoderConfig("onnx", path), outputs=OutputsConfig(lsl=None))
    pipe = Pipeline(config, rec.info, clock=time.perf_counter, decoder=decoder)
    outputs, ends = [], []
    for w in replay_windows(pipe, rec, chunk_size=64):
        d = pipe.decode(w, live=False)
        outputs.append(d.output)
        ends.append(d.last_sample_time)
    outputs = np.array(outputs)
    assert np.allclose(outputs.sum(1), 1.0)  # the runtime's softmax over candidates
    top = top_candidates(outputs[0], names, k=5)
    assert len(top) == 5 and top[0][1] >= top[-1][1]
    values = np.array(rec.markers.values)
    shown = np.isin(values, names)
    targets = np.array([names.index(v) for v in values[shown]])
    # a window assumes its onset at last sample − tmax (+ one sample: the window's end)
    lags, acc, _ = retrieval_curve(outputs, np.array(ends) - 1.0 + 1 / 120,
                                   np.asarray(rec.markers.timestamps)[shown], targets,
                                   k=5, max_lag=1.0, resolution=0.05)
    at_onset = acc[np.argmin(np.abs(lags))]
    far = np.nanmean(acc[np.abs(lags) >= 0.5])
    assert at_onset >= 2.5 * 5 / N_TEST, at_onset
    assert at_onset > far + 0.25, (at_onset, far)


@pytest.mark.slow
def test_bci_replay_ranks_embeddings_against_the_bank_folder(session, fitted, capsys):
    """The embedding form served by `bci replay`: the bank is a folder named in the spec,
    each decision names its top-5 candidates, ranked by cosine similarity."""
    import json

    from bci.cli import main as bci_main

    ep, test, rec, tmp = session["ep"], session["test"], session["rec"], session["tmp"]
    names = session["test_names"]
    test_bank = session["bank"].take(names)
    save_embedding_bank(tmp / "bank", names, test_bank)
    model = tmp / "meg-bank.onnx"
    write_spec(fitted.to_onnx(), fitted.decoder_spec(stream_sfreq=rec.sfreq, bank_path="bank"),
               model)
    toml = tmp / "meg-replay.toml"
    toml.write_text(
        f'[source]\nstream = "meg"\n[decoder]\npath = "{model.name}"\ntop_k = 5\n'
        "[window]\nevents = { " + ", ".join(f'"{n}" = "{n}"' for n in names) + " }\n"
        "[outputs]\nlsl = false\n")
    out = tmp / "meg-decisions.jsonl"
    assert bci_main(["replay", str(toml), "--input", str(tmp / "s0_raw.fif"),
                     "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == int(test.sum())
    emb = fitted.transform(ep.X[test])
    idx, sim = retrieve(emb, test_bank, k=5)
    for row, i, s in zip(rows, idx, sim, strict=True):
        got = row["candidates"]
        assert [c["name"] for c in got] == [names[j] for j in i]
        np.testing.assert_allclose([c["score"] for c in got], s, atol=1e-4)
        assert row["label"] == got[0]["name"]
    hits = [r["true_label"] in {c["name"] for c in r["candidates"]} for r in rows]
    assert np.mean(hits) >= 2.5 * 5 / N_TEST  # top-5 among 20 unseen images

    # a bank that is missing, or of the wrong size, is named at start / at the first window
    bad = toml.read_text().replace("top_k = 5", 'top_k = 5\nbank = "nowhere"')
    toml.write_text(bad)
    assert bci_main(["replay", str(toml), "--input", str(tmp / "s0_raw.fif"),
                     "--output", str(out)]) == 2
    assert "decoder.bank" in capsys.readouterr().err and "nowhere" in toml.read_text()
    save_embedding_bank(tmp / "short", names, test_bank[:, :7])
    toml.write_text(bad.replace('"nowhere"', '"short"'))
    assert bci_main(["replay", str(toml), "--input", str(tmp / "s0_raw.fif"),
                     "--output", str(out)]) == 2
    assert "holds embeddings of 7" in capsys.readouterr().err


@pytest.mark.slow
def test_bci_train_on_some_images_then_retrieve_unseen_ones(session, capsys):
    """`bci train --decoder meg-retrieval --bank` on the 40 training images of a FIF
    recording, then `bci replay` ranks the 20 images it never saw."""
    import json

    from bci.cli import main as bci_main

    tmp, data = session["tmp"], session["data"]
    names = session["test_names"]
    train_names = [n for n in data.names if n not in names]
    save_embedding_bank(tmp / "all-images", data.names, session["bank"].take(data.names))
    save_embedding_bank(tmp / "unseen", names, session["bank"].take(names))
    opts = ('config = "small"\nepochs = 40\nbatch_size = 64\nlr = 0.003\n'
            "validation_fraction = 0.0\n")
    events = ", ".join(f'"{n}" = "{n}"' for n in train_names)
    train_toml = tmp / "meg-train.toml"
    train_toml.write_text(f'[window]\nevents = {{ {events} }}\n[training]\nparadigm = "meg"\n'
                          f'[training.decoders.meg-retrieval]\n{opts}')
    model = tmp / "meg-trained.onnx"
    args = ["train", str(train_toml), "--decoder", "meg-retrieval", "--train",
            str(tmp / "s0_raw.fif"), "--output", str(model)]
    assert bci_main(args) == 2  # no bank given: named
    assert "--bank DIR" in capsys.readouterr().err
    assert bci_main([*args, "--bank", str(tmp / "all-images"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_images"] == len(train_names) and out["n_windows"] == 4 * len(train_names)

    events = ", ".join(f'"{n}" = "{n}"' for n in names)
    replay_toml = tmp / "meg-unseen.toml"
    replay_toml.write_text(f'[decoder]\npath = "{model.name}"\nbank = "unseen"\n'
                           f"[window]\nevents = {{ {events} }}\n[outputs]\nlsl = false\n")
    decisions = tmp / "meg-unseen.jsonl"
    assert bci_main(["replay", str(replay_toml), "--input", str(tmp / "s0_raw.fif"),
                     "--output", str(decisions)]) == 0
    rows = [json.loads(line) for line in decisions.read_text().splitlines()]
    assert len(rows) == 4 * len(names)
    hits = [r["true_label"] in {c["name"] for c in r["candidates"]} for r in rows]
    assert np.mean(hits) >= 2.5 * 5 / N_TEST  # top-5 among 20 images never trained on


@pytest.mark.slow
def test_subjects_with_different_sensor_sets(tmp_path):
    data = make_meg_images(n_images=48, n_repeats=4, n_subjects=2,
                           systems=["vectorview", "ctf275"], n_sites=[16, 60],
                           sfreq=240.0, snr=0.3, seed=3)
    eps = [meg_epochs(_recording(raw, tmp_path, f"s{i}")) for i, raw in enumerate(data.raws)]
    assert [len(e.montage) for e in eps] == [48, 60]
    bank = data.bank()
    test_names = data.names[:16]
    X, Y, subjects = [], [], []
    for s, e in enumerate(eps):
        keep = ~np.isin(e.names, test_names)
        X += list(e.X[keep])
        Y.append(bank.take(e.names[keep]))
        subjects += [f"sub-{s}"] * int(keep.sum())
    # no validation split: 32 training images leave too few to stop on
    est = MEGRetrieval(epochs=40, batch_size=64, lr=3e-3, validation_fraction=0.0).fit(
        X, np.concatenate(Y), subjects=subjects,
        positions={f"sub-{s}": e.montage for s, e in enumerate(eps)})
    assert est.subjects_ == ["sub-0", "sub-1"]
    test_bank = bank.take(test_names)
    for s, e in enumerate(eps):
        test = np.isin(e.names, test_names)
        acc = est.score(e.X[test], bank.take(e.names[test]), subjects=[f"sub-{s}"] * int(
            test.sum()), bank=test_bank, k=5)
        assert acc >= 2 * 5 / 16, (s, acc)
    # each subject's graph takes that subject's sensors
    proto = est.to_onnx(subject="sub-1")
    x = eps[1].X[:4]
    out = ort.InferenceSession(proto.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    ref = est.transform(x, subjects=["sub-1"] * 4)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    with pytest.raises(ValueError, match="name the subject"):
        est.to_onnx()
    with pytest.raises(ValueError, match="sub-9"):
        est.transform(x, subjects=["sub-9"] * 4)
    with pytest.raises(ValueError, match="48 sensors"):
        est.transform(x, subjects=["sub-0"] * 4)


@pytest.mark.slow
def test_estimator_input_errors(session, fitted):
    ep = session["ep"]
    X = ep.X[:8]
    with pytest.raises(ValueError, match="180 samples"):
        fitted.transform(X[..., :100])
    bad = X.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fitted.transform(bad)
    with pytest.raises(ValueError, match="one of the bank"):
        fitted.score(X, session["Y"][:8] + 1.0, bank=session["bank"].vectors)
    with pytest.raises(ValueError, match="one embedding per window"):
        MEGRetrieval(epochs=1).fit(X, session["Y"][:5], positions=ep.montage)
    with pytest.raises(ValueError, match="windows have 10 sensors, the montage 72"):
        MEGRetrieval(epochs=1).fit(X[:, :10], session["Y"][:8], positions=ep.montage)
    with pytest.raises(ValueError, match="lam"):
        MEGRetrieval(lam=1.5).fit(X, session["Y"][:8], positions=ep.montage)


def test_brain_module_forward_shapes():
    cfg = BrainModuleConfig.small()
    net = BrainModule(cfg, n_times=180, n_subjects=2, embedding_dim=12).eval()
    x = torch.randn(3, 10, 180)
    pos, kinds = torch.rand(2, 10, 2), torch.randint(0, 3, (2, 10))
    valid = torch.ones(2, 10, dtype=torch.bool)
    a, b = net(x, torch.tensor([0, 1, 1]), pos, kinds, valid)
    assert a.shape == b.shape == (3, 12)
    # the subject layer matters once it differs from the identity
    with torch.no_grad():
        net.subject_layers[1] += 0.5 * torch.randn(cfg.n_virtual, cfg.n_virtual)
        a2, _ = net(x, torch.tensor([0, 1, 1]), pos, kinds, valid)
    torch.testing.assert_close(a2[0], a[0])
    assert not torch.allclose(a2[1:], a[1:])
