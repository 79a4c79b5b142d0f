"""Federated training on Flower: configuration, screening, and simulations on Ray.

The simulation runs the real ServerApp and ClientApps (bci.decoders.fleeg, planted sites of
8, 22 and 64 channels at 128, 250 and 160 Hz) in Flower's simulation runtime, with two
sites that misbehave by configuration: one sends NaN weights, one weights a million
times too large. Every site's model is then loaded by the runtime's ONNX host.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bci.errors import ConfigError
from bci.federated.config import FederationConfig, load_site

pytest.importorskip("flwr")
pytest.importorskip("torch")

ROUNDS = 10

# Held-out sets of 200 windows per site (one window is 0.005 of accuracy); the model's
# schedule follows bci.decoders.fleeg (lr 5e-3, one epoch per round; the small site takes
# batches of 4 and three epochs per round, and so does its local-only baseline).
FEDERATION = f"""
[federation]
rounds = {ROUNDS}
local_epochs = 1
min_sites = 2
round_timeout = 120.0
seed = 0
workdir = "run"

[model]
batch_size = 16
lr = 0.005

[screening]
norm_factor = 10.0
max_norm = 1e4

[simulation]
num_cpus = 2
cpus_per_site = 1

# very little data here: 10 training windows
[[site]]
name = "small-8ch"
n_channels = 8
sfreq = 128.0
n_trials = 210
test_fraction = 0.952381
seed = 1
snr = 1.5
local_epochs = 3
batch_size = 4

[[site]]
name = "mid-22ch"
n_channels = 22
sfreq = 250.0
n_trials = 260
test_fraction = 0.769231
seed = 2
snr = 1.5

[[site]]
name = "big-64ch"
n_channels = 64
sfreq = 160.0
n_trials = 260
test_fraction = 0.769231
seed = 3
snr = 1.5

[[site]]
name = "rogue-nan"
n_channels = 16
sfreq = 200.0
n_trials = 16
seed = 4
misbehave = "nan"

[[site]]
name = "rogue-huge"
n_channels = 32
sfreq = 128.0
n_trials = 16
seed = 5
misbehave = "huge"
"""

HONEST = ("small-8ch", "mid-22ch", "big-64ch")
ROGUES = ("rogue-nan", "rogue-huge")


def _write(tmp: Path, text: str, name: str = "fed.toml") -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text))
    return path


# --- configuration -------------------------------------------------------------------


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    cases = {
        "[federation]\nrounds = 0\n": "federation.rounds",
        "[federation]\nroundz = 3\n": "unknown key",
        "[model]\nlr = 'fast'\n": "model.lr",
        "[model]\nlayers = 3\n": "unknown key",
        "[screening]\nnorm_factor = 0.5\n": "screening.norm_factor",
        "[dp]\nclipping = 'both'\n": "dp.clipping",
        "[[site]]\nname = 'a b'\nn_channels = 8\nsfreq = 128\nn_trials = 10\nseed = 1\n":
            "site[0].name",
        "[[site]]\nname = 'a'\nn_channels = 8\nsfreq = 128\nseed = 1\n": "site[0].n_trials",
        "[[site]]\nname = 'a'\nkind = 'eeg'\n": "site[0].kind",
        "[[site]]\nname = 'a'\nn_channels = 8\nsfreq = 128\nn_trials = 10\nseed = 1\n"
        "test_fraction = 1.5\n": "site[0].test_fraction",
    }
    for text, key in cases.items():
        with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
            FederationConfig.load(_write(tmp_path, text))
    cfg = FederationConfig.load(_write(tmp_path, "[federation]\nrounds = 2\n"))
    with pytest.raises(ConfigError, match="at least 2"):
        cfg.require_sites(2)


def test_site_file_picks_one_site(tmp_path: Path) -> None:
    path = _write(tmp_path, FEDERATION)
    site = load_site(path, name="mid-22ch")
    assert site.params["n_channels"] == 22 and site.workdir == tmp_path / "bci-fl-mid-22ch"
    with pytest.raises(ConfigError, match="--site NAME"):
        load_site(path)
    with pytest.raises(ConfigError, match="named 'nope'"):
        load_site(path, name="nope")


def test_a_site_of_its_own_recordings(tmp_path: Path) -> None:
    """kind = "recordings": the site's files (here FIF), cut by the runtime's own code."""
    from bci.chunk import Markers
    from bci.datasets.synthetic import SyntheticEEG
    from bci.federated.sites import load_site_data
    from bci.recording import Recording

    n_cues = 0
    for k in range(2):
        eeg = SyntheticEEG(paradigm="mi", n_channels=16, sfreq=200.0, seed=k)
        data, cues = eeg.read(int(120 * eeg.sfreq))
        # a cue whose window would run past the end of the file gives no window
        n_cues += sum(i + 2.5 * eeg.sfreq <= data.shape[1] for i, _ in cues)
        ts = np.arange(data.shape[1]) / eeg.sfreq
        markers = Markers(np.array([ts[i] for i, _ in cues]),
                          [f"cue_{v}" for _, v in cues])
        Recording(eeg.info, data, ts, markers).to_raw().save(tmp_path / f"s{k}_raw.fif")
    (tmp_path / "lab.toml").write_text(textwrap.dedent("""
        [site]
        name = "our-lab"
        kind = "recordings"
        files = ["s0_raw.fif", "s1_raw.fif"]
        events = { cue_left = "left", cue_right = "right" }
        tmin = 0.5
        tmax = 2.5
        test_fraction = 0.25
        workdir = "lab"
    """))
    site = load_site(tmp_path / "lab.toml")
    train, test = load_site_data(site)
    assert len(train) + len(test) == n_cues > 20
    assert train.X.shape[1:] == (16, 400) and set(train.y) == {"left", "right"}
    assert train.preprocessing[0]["kind"] == "bandpass"
    log = [json.loads(line) for line in (tmp_path / "lab" / "access.jsonl").read_text()
           .splitlines()]
    assert log[-1]["source"]["files"] == [str(tmp_path / "s0_raw.fif"),
                                          str(tmp_path / "s1_raw.fif")]
    # a missing file or a marker table that matches nothing is named
    bad = (tmp_path / "lab.toml").read_text().replace("s1_raw.fif", "gone_raw.fif")
    (tmp_path / "bad.toml").write_text(bad)
    with pytest.raises(ValueError, match=r"gone_raw\.fif"):
        load_site_data(load_site(tmp_path / "bad.toml"))
    none = (tmp_path / "lab.toml").read_text().replace("cue_left", "x").replace("cue_right", "y")
    (tmp_path / "none.toml").write_text(none)
    with pytest.raises(ValueError, match="expected windows labelled by the events"):
        load_site_data(load_site(tmp_path / "none.toml"))


def test_importing_bci_federated_imports_neither_torch_nor_flower() -> None:
    code = ("import sys, bci.federated, bci.federated.config, "
            "bci.federated.certs, bci.federated.deployment, bci.cli, bci.cli.federated; "
            "print(sorted(m for m in ('torch', 'flwr', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# --- screening -----------------------------------------------------------------------


def _updates(rng: np.random.Generator, global_arrays: dict, scales: list[float]):
    from bci.federated.strategy import Update

    return [Update(i, f"site{i}", {k: v + s * rng.standard_normal(v.shape).astype(np.float32)
                                   for k, v in global_arrays.items()}, 10.0)
            for i, s in enumerate(scales)]


def test_screening_rejects_nan_huge_and_foreign_updates() -> None:
    from bci.federated.strategy import Update, lower_median, screen_updates

    rng = np.random.default_rng(0)
    g = {"w": rng.standard_normal((4, 3)).astype(np.float32),
         "b": np.zeros(3, np.float32)}
    ups = _updates(rng, g, [0.1, 0.12, 0.09])
    ups.append(Update(7, "nan", {"w": np.full((4, 3), np.nan, np.float32), "b": g["b"]}, 5))
    ups.append(Update(8, "huge", {k: v * 1e3 for k, v in g.items()}, 5))
    ups.append(Update(9, "foreign", {"w": g["w"]}, 5))
    ups.append(Update(10, "shape", {"w": g["w"][:2], "b": g["b"]}, 5))
    ups.append(Update(11, "weight", dict(g), float("inf")))
    v = screen_updates(g, ups, norm_factor=10.0, max_norm=1e4)
    assert v.accepted == [0, 1, 2]
    reasons = dict(v.rejected)
    assert "not finite" in reasons[3] and "10 ×" in reasons[4]
    assert "shared keys" in reasons[5] and "shapes" in reasons[6] and "weight" in reasons[7]
    # two sites, one absurd: the lower median keeps the honest one as the reference
    v2 = screen_updates(g, [*_updates(rng, g, [0.1]), ups[4]], norm_factor=10.0,
                        max_norm=1e9)
    assert v2.accepted == [0] and v2.rejected[0][0] == 1
    # one site left: earlier rounds' median is the reference
    v3 = screen_updates(g, [ups[4]], norm_factor=10.0, max_norm=1e9, history=[0.5])
    assert v3.accepted == [] and v3.reference == 0.5
    assert lower_median([3.0, 1.0]) == 1.0 and lower_median([1.0, 5.0, 2.0]) == 2.0


# --- simulation ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulation(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, FederationConfig]:
    from bci.federated.simulation import simulate

    tmp = tmp_path_factory.mktemp("fl-sim")
    cfg = FederationConfig.load(_write(tmp, FEDERATION))
    summary = simulate(cfg, engine="ray")
    return summary, cfg


@pytest.mark.slow
def test_federated_beats_local_most_at_the_smallest_site(simulation) -> None:
    summary, _ = simulation
    sites = summary["sites"]
    assert set(sites) == {*HONEST, *ROGUES}
    gain = {n: sites[n]["federated_accuracy"] - sites[n]["local_accuracy"] for n in HONEST}
    print(json.dumps({n: {k: sites[n][k] for k in ("n_train", "n_test", "local_accuracy",
                                                   "federated_accuracy")} for n in HONEST}))
    assert sites["small-8ch"]["n_train"] == 10 and sites["small-8ch"]["n_test"] == 200
    assert gain["small-8ch"] >= 0.1
    assert gain["small-8ch"] >= max(gain["mid-22ch"], gain["big-64ch"])
    assert all(g >= -0.05 for g in gain.values())
    assert summary["round_seconds"] and all(t > 0 for t in summary["round_seconds"])


@pytest.mark.slow
def test_nan_and_huge_sites_are_rejected_and_the_model_stays_finite(simulation) -> None:
    summary, _ = simulation
    assert summary["global_finite"] is True
    assert summary["skipped_rounds"] == []
    by_site: dict[str, list[str]] = {}
    for r in summary["rejections"]:
        assert isinstance(r["node_id"], int)
        by_site.setdefault(r["site"], []).append(r["reason"])
    assert set(by_site) == set(ROGUES)
    assert len(by_site["rogue-nan"]) == ROUNDS and "not finite" in by_site["rogue-nan"][0]
    assert len(by_site["rogue-huge"]) == ROUNDS and "norm" in by_site["rogue-huge"][0]
    for r in summary["round_log"]:
        assert sorted(r["accepted"]) == sorted(HONEST)


@pytest.mark.slow
def test_no_site_sees_another_sites_data(simulation) -> None:
    summary, cfg = simulation
    # only the shared keys travel; replies carry scalars and the site's name
    assert summary["traffic"]["sent_arrays"] == sorted(summary["shared_keys"])
    assert summary["traffic"]["reply_arrays"] == sorted(summary["shared_keys"])
    assert all(k.startswith("shared.") for k in summary["shared_keys"])
    assert summary["traffic"]["reply_configs"] == ["site"]
    assert set(summary["traffic"]["reply_metrics"]) <= {"num-examples", "unit-weight",
                                                        "train-loss"}
    for site in cfg.sites:
        events = [json.loads(line) for line in
                  (site.workdir / "access.jsonl").read_text().splitlines()]
        loads = [e for e in events if e["event"] == "load"]
        assert loads and all(e["site"] == site.name for e in loads)
        assert {e["source"]["seed"] for e in loads} == {site.params["seed"]}
        # the site's folder holds its own layers and model and nothing of the others
        names = {p.name for p in site.workdir.iterdir()}
        assert names <= {"access.jsonl", "site_layers.pt", f"{site.name}.onnx"}


@pytest.mark.slow
def test_each_site_model_runs_in_the_runtime(simulation) -> None:
    from bci.decoder import OnnxDecoder
    from bci.federated.sites import load_site_data

    summary, cfg = simulation
    for site in cfg.sites:
        if site.name in ROGUES:
            continue
        model = Path(summary["sites"][site.name]["model"])
        assert model == site.workdir / f"{site.name}.onnx"
        decoder = OnnxDecoder(model)
        _, test = load_site_data(site)
        assert decoder.spec.ch_names == test.ch_names and decoder.spec.sfreq == test.sfreq
        probs = np.stack([decoder.run(x) for x in test.X])
        accuracy = float(np.mean(np.asarray(decoder.spec.classes)[probs.argmax(1)] == test.y))
        assert accuracy == pytest.approx(summary["sites"][site.name]["federated_accuracy"],
                                         abs=1.5 / len(test))


@pytest.mark.parametrize("clipping", ["server", "client"])
@pytest.mark.slow
def test_differential_privacy_reports_its_budget(tmp_path: Path, clipping: str) -> None:
    from bci.federated.simulation import simulate

    text = """
    [federation]
    rounds = 2
    local_epochs = 1
    min_sites = 2
    baseline = false
    workdir = "run"

    [dp]
    clipping = "CLIPPING"
    noise_multiplier = 1.0
    clipping_norm = CLIP
    delta = 1e-5

    [[site]]
    name = "a"
    n_channels = 8
    sfreq = 128.0
    n_trials = 24
    seed = 1

    [[site]]
    name = "b"
    n_channels = 16
    sfreq = 250.0
    n_trials = 24
    seed = 2
    """
    clip = 5.0 if clipping == "server" else 0.05  # client: below any update's norm
    cfg = FederationConfig.load(_write(tmp_path, text.replace("CLIPPING", clipping)
                                       .replace("CLIP", str(clip))))
    assert cfg.dp.enabled and not cfg.baseline and cfg.dp.clipping == clipping
    summary = simulate(cfg, engine="ray")
    dp = summary["privacy"]
    assert dp["releases"] == 2 and dp["sites_per_round"] == 2
    assert np.isfinite(dp["epsilon"]) and dp["epsilon"] > 0 and dp["delta"] == 1e-5
    assert dp["noise_std"] == pytest.approx(1.0 * clip / 2)
    assert summary["global_finite"] and summary["skipped_rounds"] == []
    assert all("local_accuracy" not in s for s in summary["sites"].values())
    if clipping == "client":
        # Flower's fixedclipping_mod ran in each ClientApp: updates arrive clipped
        norms = [n for r in summary["round_log"] for n in r["norms"].values()]
        assert len(norms) == 4 and np.allclose(norms, clip, rtol=1e-4)
        return

    # a later run resumes: the site layers on each site's disk and the global weights
    import torch

    cfg = FederationConfig.load(cfg.path)
    cfg.dp.enabled, cfg.rounds = False, 1
    again = simulate(cfg, engine="ray", resume=True)
    assert again["global_finite"] and again["privacy"] is None
    for site in cfg.sites:
        blob = torch.load(site.workdir / "site_layers.pt", weights_only=True)
        assert blob["n_fits"] == 3  # two fits in the first run, one in this one
        events = [json.loads(line)["event"] for line in
                  (site.workdir / "access.jsonl").read_text().splitlines()]
        assert "site-layers-discarded" not in events and events.count("load") >= 2
