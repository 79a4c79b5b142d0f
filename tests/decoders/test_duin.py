"""Du-IN on synthetic sEEG words: loaders, the three training stages, export, live use.

No real sEEG recording is available here. A synthetic session (``make_seeg_words``)
plants word-specific bursts in word-specific tokens and latent sources, seen by each
subject's contacts through its own mixing matrix. Recordings are written with MNE (FIF,
``seeg`` channels with MNI positions) and as a BIDS-iEEG dataset (mne-bids) and read
back by the loader. Epochs go through the runtime's own causal chain, so the decoder
is trained on the signal the live loop gives it; its ONNX export is then served by the
runtime's pipeline over the continuous recording, marker-locked, and must reproduce the
torch probabilities epoch for epoch. Everything uses the small preset (CI-sized).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")

import mne  # noqa: E402
import onnxruntime as ort  # noqa: E402
from bci.decoders.base import TrainableDecoder  # noqa: E402
from bci.decoders.duin import (  # noqa: E402
    DuINClassifier,
    DuINConfig,
    DuINMAE,
    DuINVQVAE,
    StageSchedule,
    fine_tune,
    mae_loss,
    vqvae_codes,
)
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from bci.chunk import Markers  # noqa: E402
from bci.datasets.seeg import (  # noqa: E402
    SEEGError,
    bipolar_matrix,
    bipolar_pairs,
    continuous_windows,
    make_seeg_words,
    parse_contact,
    read_seeg_epochs,
    read_seeg_raw,
)
from bci.decoder import OnnxDecoder  # noqa: E402
from bci.pipeline import Pipeline  # noqa: E402
from bci.recording import Recording  # noqa: E402
from bci.runner import replay_windows  # noqa: E402
from bci.session import SessionConfig  # noqa: E402

N_WORDS = 4
N_TRIALS = 40  # per word: 160 epochs, the first 112 for training
N_TRAIN = 112
CHANCE = 1 / N_WORDS
PREP = DuINClassifier().preprocessing()
TINY = DuINConfig.small(vqvae=StageSchedule(1, 16, 1e-3, 1e-4, 1),
                        mae=StageSchedule(1, 16, 1e-3, 1e-4, 1),
                        finetune=StageSchedule(0, 16, 1e-3, 1e-4, 1))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def subject():
    return make_seeg_words(n_words=N_WORDS, n_trials=N_TRIALS, seed=0)[0]


@pytest.fixture(scope="module")
def epochs(subject):
    """Contacts through the runtime's causal chain, cut at every cue: (X, y, info)."""
    return read_seeg_epochs(subject.to_raw(), bipolar=False, preprocessing=PREP)


@pytest.fixture(scope="module")
def fitted(subject, epochs):
    X, y, info = epochs
    clf = DuINClassifier(config="small", bipolar=subject.pairs, ch_names=info.ch_names, seed=0)
    return clf.fit(X[:N_TRAIN], y[:N_TRAIN])


def _zscored(clf, X):
    with torch.no_grad():
        return clf.module_.front(torch.from_numpy(X)).numpy()


# --- contacts, loader, generator -------------------------------------------------------


def test_contact_names_pair_neighbours_of_each_shaft_only():
    assert parse_contact("TI'12") == ("TI'", 12)
    assert parse_contact("LA3") == ("LA", 3)
    assert parse_contact("Fz") is None
    names = ["LA'1", "LA'2", "LA'4", "LA'5", "RB1", "RB2", "RB3", "Cz", "ECG"]
    # LA'3 is missing: LA'2 and LA'4 lie two pitches apart and must not be paired
    assert bipolar_pairs(names) == [("LA'1", "LA'2"), ("LA'4", "LA'5"), ("RB1", "RB2"),
                                    ("RB2", "RB3")]
    m = bipolar_matrix(names[:4], [("LA'1", "LA'2"), ("LA'4", "LA'5")])
    np.testing.assert_array_equal(m, [[1, -1, 0, 0], [0, 0, 1, -1]])
    with pytest.raises(SEEGError, match=r"not among the channels"):
        bipolar_matrix(names[:2], [("LA'1", "RB7")])


def test_generator_plants_word_bursts_in_their_source_and_tokens(subject):
    others = make_seeg_words(n_subjects=2, n_words=N_WORDS, n_trials=2, n_shafts=[2, 3],
                             seed=5)
    # subjects differ in contacts and mixing; the word code is the same for all
    assert [s.X.shape[1] for s in others] == [10, 15]
    assert others[0].code == others[1].code == subject.code
    assert not np.allclose(others[0].mixing, subject.mixing)
    Xb, _ = subject.bipolar()
    t = np.arange(Xb.shape[-1]) / 1000.0
    hg = Xb - np.stack([np.convolve(x, np.ones(9) / 9, "same") for x in
                        Xb.reshape(-1, Xb.shape[-1])]).reshape(Xb.shape)  # crude high-pass
    power = hg ** 2
    for word, (source, onset) in subject.code.items():
        gains = subject.mixing[:, source]
        m = bipolar_matrix(subject.ch_names, subject.pairs) @ gains
        channel = int(np.argmax(np.abs(m)))
        window = (t >= onset) & (t < onset + 0.2)
        mine = power[subject.y == word][:, channel][:, window].mean()
        rest = power[subject.y != word][:, channel][:, window].mean()
        assert mine > 3 * rest, word


def test_loader_reads_fif_with_seeg_types_positions_and_bad_contacts(subject, tmp_path):
    raw = subject.to_raw()
    raw.info["bads"] = ["RA3"]
    path = tmp_path / "words_raw.fif"
    raw.save(path, verbose="error")
    X, y, info = read_seeg_epochs(path, tmin=0.5, tmax=1.5)
    names = info.ch_names
    # the bad contact breaks its shaft's chain: RA2-RA3 and RA3-RA4 are gone
    assert "RA2-RA3" not in names and "RA3-RA4" not in names
    assert names[:2] == ["RA1-RA2", "RA4-RA5"] and len(names) == 6
    assert set(info.get_channel_types()) == {"seeg"}
    assert X.shape == (len(subject.y), 6, 1000) and X.dtype == np.float32
    np.testing.assert_array_equal(y, subject.y)
    i, j = subject.ch_names.index("RA4"), subject.ch_names.index("RA5")
    expect = subject.X[:, i, 500:1500] - subject.X[:, j, 500:1500]
    np.testing.assert_allclose(X[:, 1], expect, atol=1e-9)
    # a bipolar channel sits midway between its contacts
    mid = (subject.info["chs"][i]["loc"][:3] + subject.info["chs"][j]["loc"][:3]) / 2
    np.testing.assert_allclose(info["chs"][1]["loc"][:3], mid, atol=1e-7)
    with pytest.raises(SEEGError, match=r"picks \['RA2-RA3'\] not found"):
        read_seeg_raw(path, picks=["RA2-RA3"])
    with pytest.raises(SEEGError, match=r"expected good channels of type"):
        read_seeg_raw(mne.io.RawArray(np.zeros((2, 100)), mne.create_info(2, 1000.0, "eeg"),
                                      verbose="error"))


def test_loader_takes_stim_channel_events_when_there_are_no_annotations(subject):
    n = 3 * 4000
    stim = np.zeros((1, n))
    stim[0, [500, 4500, 8500]] = [1, 2, 1]
    info = mne.create_info([*subject.ch_names[:5], "STI"], 1000.0, [*["seeg"] * 5, "stim"])
    raw = mne.io.RawArray(np.vstack([subject.data[:5, :n], stim]), info, verbose="error")
    X, y, info = read_seeg_epochs(raw, event_id={"1": "yes", "2": "no"}, tmax=1.0)
    assert list(y) == ["yes", "no", "yes"] and X.shape == (3, 4, 1000)
    assert "STI" not in info.ch_names
    np.testing.assert_allclose(X[1, 0], subject.data[0, 4500:5500] - subject.data[1, 4500:5500],
                               atol=1e-9)
    with pytest.raises(SEEGError, match=r"no epoch of 0.0…1.0 s fits; markers found"):
        read_seeg_epochs(raw, event_id=["7"], tmax=1.0)


def test_loader_reads_a_bids_ieeg_dataset_and_resamples(tmp_path):
    mne_bids = pytest.importorskip("mne_bids")
    s = make_seeg_words(n_words=2, n_trials=3, sfreq=2000.0, seed=3)[0]
    raw = s.to_raw()
    raw.set_meas_date(1_700_000_000)
    path = mne_bids.BIDSPath(subject="01", session="01", task="words", run=1,
                             datatype="ieeg", root=tmp_path / "bids")
    mne_bids.write_raw_bids(raw, path, format="BrainVision", allow_preload=True,
                            verbose="error")
    assert (tmp_path / "bids" / "sub-01" / "ses-01" / "ieeg").is_dir()
    X, y, info = read_seeg_epochs(path, event_id={"word00": "yes", "word01": "no"})
    assert info["sfreq"] == 1000.0 and X.shape == (6, 8, 3000)
    assert set(info.get_channel_types()) == {"seeg"}  # from channels.tsv
    assert np.isfinite(np.stack([c["loc"][:3] for c in info["chs"]])).all()  # electrodes.tsv
    assert sorted(y) == ["no"] * 3 + ["yes"] * 3
    # the same epochs as cutting the re-referenced signal by hand, after resampling
    Xb, _ = s.bipolar()
    want = mne.filter.resample(Xb.astype(np.float64), down=2.0, axis=-1, verbose="error")
    inner = slice(100, 2900)  # away from the edges FFT resampling treats differently
    assert np.corrcoef(X[..., inner].ravel(), want[..., inner].ravel())[0, 1] > 0.99
    windows = continuous_windows(read_seeg_raw(path), length=3.0, step=1.5)
    assert windows.shape[1:] == (8, 3000) and windows.shape[0] > 10


# --- the three stages ------------------------------------------------------------------


@pytest.mark.slow
def test_vqvae_reconstruction_falls_and_uses_several_codes(fitted, epochs):
    h = fitted.history_["vqvae"]
    assert h[-1]["recon"] < 0.85 * h[0]["recon"]
    assert h[-1]["recon"] < 0.9  # well below the 1.0 of predicting zero for z-scores
    Z = _zscored(fitted, epochs[0][N_TRAIN:])
    codes = vqvae_codes(fitted.vqvae_, [Z])[0]
    counts = np.bincount(codes.ravel())
    p = counts[counts > 0] / codes.size
    assert (counts > 0).sum() >= 4
    assert math.exp(-(p * np.log(p)).sum()) > 3.0  # perplexity on held-out windows


@pytest.mark.slow
def test_mae_masked_code_cross_entropy_falls(fitted, epochs):
    h = fitted.history_["mae"]
    config = fitted.config_
    assert h[-1]["loss"] < h[0]["loss"] - 1.0
    Z_train = _zscored(fitted, epochs[0][:N_TRAIN])
    Z_test = _zscored(fitted, epochs[0][N_TRAIN:])
    train_codes = vqvae_codes(fitted.vqvae_, [Z_train])[0]
    test_codes = vqvae_codes(fitted.vqvae_, [Z_test])[0]
    held_out = mae_loss(fitted.mae_, [Z_test], [test_codes], config)
    # a fresh MAE of the same architecture starts near log(codebook size)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        fresh = DuINMAE(config, [Z_test.shape[1]]).eval()
    untrained = mae_loss(fresh, [Z_test], [test_codes], config)
    assert untrained > math.log(config.codebook_size) - 0.5
    # held out, the MAE predicts codes at least as well as their training frequencies do
    freq = np.bincount(train_codes.ravel(), minlength=config.codebook_size) + 0.5
    freq = freq / freq.sum()
    marginal = -np.log(freq[test_codes.ravel()]).mean()
    assert held_out < untrained - 1.0
    assert held_out < marginal + 0.05


@pytest.mark.slow
def test_classifies_held_out_words_well_above_chance(fitted, epochs):
    X, y, _ = epochs
    accuracy = fitted.score(X[N_TRAIN:], y[N_TRAIN:])
    assert accuracy >= 0.6, accuracy  # chance is 0.25; 48 held-out epochs
    proba = fitted.predict_proba(X[N_TRAIN:])
    assert proba.shape == (len(y) - N_TRAIN, N_WORDS)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.slow
def test_shuffled_labels_stay_at_chance(fitted, epochs):
    # stages 1 and 2 never see labels, so fitting on shuffled labels is fine-tuning the
    # same pre-trained encoder on them
    X, y, _ = epochs
    rng = np.random.default_rng(7)
    y_idx = np.unique(y, return_inverse=True)[1]
    Z = _zscored(fitted, X)
    net, _ = fine_tune(Z[:N_TRAIN], rng.permutation(y_idx[:N_TRAIN]),
                       fitted.mae_.encoder.for_subject(0), N_WORDS, fitted.config_, seed=0)
    with torch.no_grad():
        pred = net(torch.from_numpy(Z[N_TRAIN:])).argmax(-1).numpy()
    assert np.mean(pred == y_idx[N_TRAIN:]) <= CHANCE + 0.2


def test_ablations_and_subject_layers_share_everything_but_the_channel_map(subject):
    other = make_seeg_words(n_subjects=2, n_words=N_WORDS, n_trials=2, n_shafts=[2, 3],
                            seed=9)[1]
    Xo, _ = other.bipolar()  # 12 bipolar channels, pre-training only
    X, y = subject.X[:24], subject.y[:24]
    full = DuINClassifier(config=TINY, bipolar=subject.pairs).fit(X, y, pretrain_X=[Xo])
    maps = full.mae_.encoder.subject.maps
    assert [m.in_channels for m in maps] == [8, 12] == [
        m.in_channels for m in full.vqvae_.encoder.subject.maps]
    assert {m.out_channels for m in maps} == {TINY.d_neural}
    # fine-tuning starts from the MAE's encoder for subject 0 (no fine-tuning epoch here)
    net = full.module_.net.encoder
    assert len(net.subject.maps) == 1
    for a, b in zip(net.state_dict().values(),
                    full.mae_.encoder.for_subject(0).state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    vq_only = DuINClassifier(config=TINY, pretrain="vqvae", bipolar=subject.pairs).fit(X, y)
    assert vq_only.mae_ is None and set(vq_only.history_) == {"vqvae", "finetune"}
    for a, b in zip(vq_only.module_.net.encoder.state_dict().values(),
                    vq_only.vqvae_.encoder.for_subject(0).state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    none = DuINClassifier(config=TINY, pretrain="none", bipolar=subject.pairs).fit(X, y)
    assert none.vqvae_ is None and none.mae_ is None and set(none.history_) == {"finetune"}


def test_published_sizes_wire_up():
    config = DuINConfig.published()
    assert (config.d_model, config.n_tokens, config.n_times) == (160, 30, 3000)
    assert (config.codebook_size, config.d_code, config.n_blocks, config.d_ff) == (
        2048, 64, 8, 320)
    x = torch.randn(2, 10, config.n_times)
    with torch.no_grad():
        vq = DuINVQVAE(config, [10]).eval()
        recon, loss, codes = vq(x)
        mask = torch.zeros(2, 30, dtype=torch.bool)
        mask[:, ::2] = True
        logits = DuINMAE(config, [10]).eval()(x, mask)
    assert recon.shape == x.shape and codes.shape == (2, 30) and loss.ndim == 0
    assert logits.shape == (2, 30, 2048)
    with pytest.raises(ValueError, match=r"strides must multiply to patch_len"):
        DuINConfig.published(rgs_strides=(1, 1, 10, 1, 5))


# --- export and live use -------------------------------------------------------------


@pytest.mark.slow
def test_front_end_equals_mne_bipolar_reference(fitted, subject, epochs, tmp_path):
    raw = subject.to_raw()
    bip, _, info = read_seeg_epochs(raw, preprocessing=PREP)  # mne.set_bipolar_reference
    assert info.ch_names == [f"{a}-{c}" for a, c in subject.pairs]
    with torch.no_grad():
        front = fitted.module_.front
        mine = torch.matmul(front.matrix, torch.from_numpy(epochs[0])).numpy()
    np.testing.assert_allclose(mine, bip, atol=1e-9)


@pytest.mark.slow
def test_onnx_matches_torch_and_serves_marker_locked_epochs(fitted, subject, epochs, tmp_path):
    X, y, _ = epochs
    path = tmp_path / "duin.onnx"
    fitted.export(path)
    decoder = OnnxDecoder(path, threads=1)
    spec = decoder.spec
    assert spec.paradigm == "seeg" and spec.output == "probabilities"
    assert (spec.window.mode, spec.window.tmin, spec.window.tmax) == ("epoch", 0.0, 3.0)
    assert spec.ch_names == subject.ch_names and spec.classes == list(fitted.classes_)
    assert [n["kind"] for n in spec.preprocessing] == ["bandpass", "notch"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (X[:1], X[N_TRAIN:N_TRAIN + 5]):
        out = session.run(None, {"x": batch})[0]
        np.testing.assert_allclose(out, fitted.predict_proba(batch), atol=1e-5)

    # live: the continuous contacts and their cue markers through the runtime
    t0 = 1000.0
    stamps = t0 + np.arange(subject.data.shape[1]) / 1000.0
    markers = Markers(t0 + subject.onsets / 1000.0, [str(w) for w in subject.y])
    recording = Recording(subject.info, subject.data, stamps, markers)
    config = SessionConfig.from_dict({
        "decoder": {"path": str(path)}, "outputs": {"lsl": False},
        "window": {"events": {w: w for w in np.unique(subject.y)}}})
    pipe = Pipeline(config, subject.info, clock=lambda: 0.0)
    decisions = [pipe.decode(w, live=False) for w in replay_windows(pipe, recording,
                                                                    chunk_size=100)]
    assert len(decisions) == len(y)
    probs = np.stack([d.output for d in decisions])
    # the runtime cuts the epochs the loader cut: same probabilities, epoch for epoch
    np.testing.assert_allclose(probs, fitted.predict_proba(X), atol=1e-5)
    live = [d.label == d.true_label for d in decisions[N_TRAIN:]]
    assert np.mean(live) >= 0.6


@pytest.mark.slow
def test_follows_the_estimator_contract_and_names_bad_inputs(fitted, epochs):
    X, y, _ = epochs
    assert isinstance(fitted, TrainableDecoder)
    copy = clone(fitted)
    assert copy.get_params()["bipolar"] == fitted.bipolar and not hasattr(copy, "module_")
    with pytest.raises(NotFittedError):
        copy.predict(X[:2])
    with pytest.raises(ValueError, match=r"expected windows of shape \(10, 3000\)"):
        fitted.predict(X[:2, :, :1000])
    with pytest.raises(ValueError, match=r"expected windows of 3000 samples"):
        clone(fitted).fit(X[:8, :, :2000], y[:8])
    with pytest.raises(ValueError, match=r"expected 10 channels"):
        clone(fitted).fit(X[:8, :9], y[:8])
    with pytest.raises(ValueError, match=r"pretrain must be one of"):
        clone(fitted).set_params(pretrain="mae").fit(X[:8], y[:8])
    with pytest.raises(ValueError, match=r"counts patches at 1000 Hz, found sfreq=500"):
        clone(fitted).set_params(sfreq=500.0).fit(X[:8], y[:8])
    with pytest.raises(ValueError, match=r"at least 2 classes"):
        clone(fitted).fit(X[:8], np.array(["a"] * 8))
    nameless = DuINClassifier(config=TINY, pretrain="none", zscore="window").fit(X[:8], y[:8])
    with pytest.raises(ValueError, match=r"fit with ch_names"):
        nameless.decoder_spec()
    # per-window z-scoring inside the graph: each channel of each window, mean 0, SD 1
    with torch.no_grad():
        z = nameless.module_.front(torch.from_numpy(X[:3])).numpy()
    np.testing.assert_allclose(z.mean(-1), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(-1), 1, atol=1e-3)
    out = ort.InferenceSession(nameless.to_onnx().SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"x": X[:3]})[0]
    np.testing.assert_allclose(out, nameless.predict_proba(X[:3]), atol=1e-5)


@pytest.mark.slow
def test_bci_train_and_replay_a_seeg_session(subject, tmp_path):
    """The command line: `bci train --decoder duin` on one FIF, `bci replay` on another."""
    import json

    from bci.cli import main as bci_main

    raw = subject.to_raw()
    split = subject.onsets[N_TRAIN] / raw.info["sfreq"] - 0.5
    raw.copy().crop(0, split).save(tmp_path / "train_raw.fif", verbose="error")
    raw.copy().crop(split, None).save(tmp_path / "test_raw.fif", verbose="error")
    words = sorted(set(subject.y))
    session = tmp_path / "seeg.toml"
    session.write_text(
        '[source]\nstream = "seeg"\n[window]\ntmin = 0.0\ntmax = 3.0\n'
        f"events = {{ {', '.join(f'{w} = {json.dumps(w)}' for w in words)} }}\n"
        '[decoder]\npath = "duin.onnx"\n[outputs]\nlsl = false\n'
        f'[training]\nparadigm = "seeg"\nch_names = {json.dumps(subject.ch_names)}\n'
        '[training.decoders.duin]\nconfig = "small"\npretrain = "none"\nbipolar = true\n')
    model = tmp_path / "duin.onnx"
    assert bci_main(["train", str(session), "--decoder", "duin", "--train",
                     str(tmp_path / "train_raw.fif"), "--output", str(model)]) == 0
    spec = OnnxDecoder(model, threads=1).spec
    assert spec.paradigm == "seeg" and spec.ch_names == subject.ch_names
    out = tmp_path / "decisions.jsonl"
    assert bci_main(["replay", str(session), "--input", str(tmp_path / "test_raw.fif"),
                     "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(subject.y) - N_TRAIN
    assert np.mean([r["label"] == r["true_label"] for r in rows]) >= 0.6  # chance 0.25
