"""Causal nodes: chunked processing equals whole processing, and each node does its job."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from bci.chain import Chain, make_node
from bci.chunk import FLAG_GAP, FLAG_NONFINITE, Chunk
from bci.errors import ChannelMismatchError, ConfigError
from bci.quality import NonFiniteGuard

SFREQ = 250.0
CH = ["Fz", "Cz", "Pz", "Oz", "C3", "C4"]

CONFIGS = [
    {"kind": "bandpass", "l_freq": 1.0, "h_freq": 40.0},
    {"kind": "bandpass", "l_freq": 8.0, "h_freq": 30.0, "ftype": "cheby1", "order": 5},
    {"kind": "highpass", "l_freq": 0.5},
    {"kind": "lowpass", "h_freq": 45.0},
    {"kind": "notch", "freqs": [50.0, 100.0]},
    {"kind": "car"},
    {"kind": "pick", "ch_names": ["Oz", "c3", "Fz"]},
    {"kind": "filterbank", "bands": [[8, 88], [16, 88], [24, 88]]},
    {"kind": "decimate", "factor": 4},
    {"kind": "bipolar", "anodes": ["Fz", "Cz", "C3"], "cathodes": ["Cz", "Pz", "C4"]},
    {"kind": "standardize", "center": [0.0, 1e-6, 0, 0, 0, 0], "scale": [1e-5] * 6,
     "clip": 3.0},
]


def _info() -> mne.Info:
    return mne.create_info(CH, SFREQ, "eeg")


def _signal(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = (rng.standard_normal((len(CH), n)).cumsum(axis=1) * 1e-6).astype(np.float32)
    return data, 100.0 + np.arange(n) / SFREQ


def _run(node_cfgs, data, ts, sizes, flags=None):
    chain = Chain.from_config(node_cfgs)
    chain.setup(_info())
    outs, out_ts, out_flags, i = [], [], [], 0
    for size in sizes:
        f = None if flags is None else flags[i : i + size]
        c = chain.process(Chunk(data[:, i : i + size], ts[i : i + size], f))
        outs.append(c.data)
        out_ts.append(c.timestamps)
        out_flags.append(c.sample_flags())
        i += size
    return (np.concatenate(outs, axis=-1), np.concatenate(out_ts),
            np.concatenate(out_flags))


def _random_sizes(n: int, rng) -> list[int]:
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(min(rng.integers(1, 97), n - sum(sizes))))
    return sizes


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["kind"])
def test_chunked_equals_whole(cfg):
    data, ts = _signal(3000)
    whole, whole_ts, _ = _run([cfg], data, ts, [3000])
    rng = np.random.default_rng(1)
    for _ in range(3):
        chunked, chunked_ts, _ = _run([cfg], data, ts, _random_sizes(3000, rng))
        assert chunked.shape == whole.shape
        np.testing.assert_array_equal(chunked_ts, whole_ts)
        scale = np.abs(whole).max()
        assert np.abs(chunked - whole).max() <= 1e-5 * scale


def test_full_chain_chunk_invariant_with_flags():
    data, ts = _signal(4000, seed=3)
    flags = np.zeros(4000, np.uint8)
    flags[[17, 1500, 1501, 3999]] = FLAG_GAP
    cfgs = [{"kind": "notch", "freqs": [50.0]}, {"kind": "car"},
            {"kind": "bandpass", "l_freq": 1.0, "h_freq": 30.0}, {"kind": "decimate", "factor": 3}]
    whole, _, wf = _run(cfgs, data, ts, [4000], flags)
    chunked, _, cf = _run(cfgs, data, ts, _random_sizes(4000, np.random.default_rng(5)), flags)
    assert np.abs(chunked - whole).max() <= 1e-5 * np.abs(whole).max()
    np.testing.assert_array_equal(cf, wf)
    # a flagged input sample marks the first kept sample at or after it (kept: 0, 3, 6, …)
    assert set(np.flatnonzero(wf).tolist()) == {-(-i // 3) for i in (17, 1500, 1501, 3999)}


def _tone_gain(cfg, freq, n=5000):
    t = np.arange(n) / SFREQ
    x = np.tile(np.sin(2 * np.pi * freq * t), (len(CH), 1)).astype(np.float32)
    y, _, _ = _run([cfg], x, t, [n])
    return np.abs(y[..., y.shape[-1] // 2 :]).max()


def test_bandpass_passes_band_and_stops_outside():
    cfg = {"kind": "bandpass", "l_freq": 8.0, "h_freq": 30.0}
    assert _tone_gain(cfg, 15.0) > 0.9
    assert _tone_gain(cfg, 2.0) < 0.05
    assert _tone_gain(cfg, 80.0) < 0.05


def test_notch_removes_line_noise_only():
    cfg = {"kind": "notch", "freqs": [50.0]}
    assert _tone_gain(cfg, 50.0) < 0.02
    assert _tone_gain(cfg, 20.0) > 0.95


def test_decimate_halves_rate_and_rejects_alias():
    chain = Chain.from_config([{"kind": "decimate", "factor": 2}])
    info = chain.setup(_info())
    assert info["sfreq"] == SFREQ / 2
    # 100 Hz would alias to 25 Hz at 125 Hz; the anti-aliasing filter removes it
    assert _tone_gain({"kind": "decimate", "factor": 2}, 100.0) < 0.02
    assert _tone_gain({"kind": "decimate", "factor": 2}, 10.0) > 0.95


def test_car_zero_mean_and_pick_reorders_by_name():
    data, ts = _signal(100)
    car, _, _ = _run([{"kind": "car"}], data, ts, [100])
    np.testing.assert_allclose(car.mean(axis=0), 0, atol=1e-12)
    picked, _, _ = _run([{"kind": "pick", "ch_names": ["Oz", "c3", "Fz"]}], data, ts, [100])
    np.testing.assert_array_equal(picked, data[[3, 4, 0]])


def test_pick_missing_channel_names_both_sides():
    node = make_node({"kind": "pick", "ch_names": ["Oz", "O9"]})
    with pytest.raises(ChannelMismatchError, match=r"missing \['O9'\].*Fz"):
        node.setup(_info())


def test_filterbank_shape():
    data, ts = _signal(500)
    out, _, _ = _run([CONFIGS[7]], data, ts, [500])
    assert out.shape == (3, len(CH), 500)


def test_nonfinite_guard_flags_and_zeroes():
    data, ts = _signal(50)
    data[2, 10] = np.nan
    data[0, 20] = np.inf
    guard = NonFiniteGuard()
    out = guard.process(Chunk(data, ts))
    assert np.isfinite(out.data).all()
    assert set(np.flatnonzero(out.flags)) == {10, 20}
    assert (out.flags[[10, 20]] & FLAG_NONFINITE).all()
    assert guard.n_flagged_ == 2
    assert out.data[2, 10] == 0 and out.data[1, 10] == data[1, 10]


@pytest.mark.parametrize(("cfg", "match"), [
    ({"kind": "bandpas", "l_freq": 1}, r"kind: expected one of .*bandpass.*found 'bandpas'"),
    ({"kind": "bandpass", "l_freq": 1}, r"h_freq"),
    ({"kind": "bandpass", "l_freq": 30, "h_freq": 10}, r"l_freq must be below h_freq"),
    ({"kind": "notch", "freqs": [-50]}, r"freqs must be a positive number, found -50"),
    ({"kind": "decimate", "factor": 1.5}, r"factor must be an integer"),
    ("car", r"expected a table with a 'kind' key"),
])
def test_bad_node_config_names_the_problem(cfg, match):
    with pytest.raises(ConfigError, match=match):
        make_node(cfg)


def test_filter_above_nyquist_is_reported_at_setup():
    node = make_node({"kind": "lowpass", "h_freq": 200.0})
    with pytest.raises(ValueError, match=r"Nyquist frequency 125 Hz, found 200 Hz"):
        node.setup(_info())


def test_bipolar_equals_mne_and_names_pairs():
    data, ts = _signal(500)
    node = make_node({"kind": "bipolar", "anodes": ["Fz", "cz"], "cathodes": ["Cz", "Pz"]})
    info = node.setup(_info())
    assert info["ch_names"] == ["Fz-Cz", "cz-Pz"]
    out = node.process(Chunk(data, ts)).data
    raw = mne.io.RawArray(data.astype(np.float64), _info(), verbose="error")
    ref = mne.set_bipolar_reference(raw, ["Fz", "Cz"], ["Cz", "Pz"], verbose="error")
    np.testing.assert_allclose(out, ref.get_data(picks=["Fz-Cz", "Cz-Pz"]), atol=1e-12)
    assert make_node(node.to_config()).output_names() == info["ch_names"]


@pytest.mark.parametrize(("cfg", "match"), [
    ({"kind": "bipolar", "anodes": ["Fz"], "cathodes": ["Cz", "Pz"]}, "one cathode per anode"),
    ({"kind": "bipolar", "anodes": ["Fz"], "cathodes": ["fz"]}, "two different contacts"),
    ({"kind": "bipolar", "anodes": "Fz", "cathodes": ["Cz"]}, "non-empty list"),
])
def test_bipolar_config_errors(cfg, match):
    with pytest.raises(ConfigError, match=match):
        make_node(cfg)


def test_bipolar_missing_contact_is_named():
    node = make_node({"kind": "bipolar", "anodes": ["Fz", "T7"], "cathodes": ["Cz", "Pz"]})
    with pytest.raises(ChannelMismatchError, match=r"missing \['T7'\]"):
        node.setup(_info())


def test_standardize_scales_clips_and_checks_channels():
    data, ts = _signal(400)
    center = data.mean(axis=1)
    scale = data.std(axis=1)
    node = make_node({"kind": "standardize", "center": center.tolist(),
                      "scale": scale.tolist(), "clip": 1.5})
    node.setup(_info())
    out = node.process(Chunk(data, ts)).data
    z = (data - center[:, None]) / scale[:, None]
    np.testing.assert_allclose(out, np.clip(z, -1.5, 1.5), rtol=1e-5, atol=1e-5)
    assert out.dtype == np.float32 and np.abs(out).max() <= 1.5
    with pytest.raises(ChannelMismatchError, match=r"expected 2 channels.*found 6"):
        make_node({"kind": "standardize", "center": [0, 0], "scale": [1, 1]}).setup(_info())
    with pytest.raises(ConfigError, match="scale finite and > 0"):
        make_node({"kind": "standardize", "center": [0], "scale": [0.0]})
