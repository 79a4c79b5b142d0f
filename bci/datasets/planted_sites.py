"""Sites for federated training: heterogeneous montages sharing one planted class structure.

Each simulated site records motor-imagery-like trials with its own channel count,
montage and sampling rate. What the sites share is the *planted structure*: a few
latent sources at fixed places on the head, whose rhythms (a mu peak at 9–13 Hz and a
beta peak at 18–26 Hz) and class-specific event-related desynchronisation (which source
loses power, how deeply, how soon after the cue) are fixed by ``structure_seed``. What
differs per site (``seed``) is how those sources reach its electrodes: its own
electrodes (10-05 names), its own head (sources up to 1 cm elsewhere, its own spread of
volume conduction, channel gains within ±20 %), its own background sources and noise,
its own trials. A model that has learnt the structure's time/frequency signature at one
site only has to learn the new site's spatial unmixing — which is what the
site-specific input layers of :class:`bci.decoders.fleeg.FLEEGNet` are for.

Per trial, in volts, shape ``(n_channels, n_times)``::

    x = A @ (g * s(t) * (1 - depth_c(k) * env_c(t)))  +  noise

with ``s`` narrow-band source rhythms of unit RMS, ``g`` log-normal trial and source
gains (so that overall power carries no class information), ``env_c`` a raised-cosine
onset after the cue, ``A`` the site's gain of each source at each electrode (a Gaussian
of the distance, :data:`SOURCE_RMS` volts right above the source) and ``noise`` 70 %
volume-conducted pink background sources, 30 % pink sensor noise, scaled to ``1 / snr``
of the signal's RMS over the site's channels.

:func:`load_eegbci_site` turns the real EEGMMIDB recordings (PhysioNet, Schalk et al.
2004) into a site with the runtime's own window cutting, so a model trained on it sees
exactly what ``bci run`` will feed it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import mne
import numpy as np

from bci.datasets.synthetic.montage import pick_channels, site_position, standard_montage
from bci.devices.files import read_recording
from bci.errors import ConfigError, RecordingError, TrainingError
from bci.session import SessionConfig
from bci.spec import DecoderSpec, WindowSpec
from bci.training_data import extract_windows

log = logging.getLogger(__name__)

#: RMS, in volts, of a latent source at an electrode right above it (before gains).
SOURCE_RMS = 5e-6
#: Background pink sources mixed into every site's channels (volume-conducted noise).
N_BACKGROUND = 12
#: Centre of the 10-05 montage's electrodes (metres, head coordinates): the scalp is
#: about a sphere of 9.5 cm around it.
_SCALP_CENTRE = np.array([0.0007, -0.0168, 0.0212])
#: Layout of the EEGMMIDB files as MNE's ``eegbci.load_data`` writes them.
EEGBCI_LAYOUT = ("files", "eegmmidb", "1.0.0")
#: EEGMMIDB left/right fist imagery: T1 = left, T2 = right (runs 4, 8, 12).
EEGBCI_EVENTS = {"T1": "left", "T2": "right"}

# Independent random streams, so that no two draws share a generator.
_RNG_STRUCTURE, _RNG_MIXING, _RNG_TRIALS = 0x5EED, 1, 2


@dataclass(slots=True)
class SiteData:
    """One site's labelled windows.

    Attributes
    ----------
    X : ndarray of float32, shape (n_windows, n_channels, n_times)
        Windows in volts.
    y : ndarray of str, shape (n_windows,)
        Class labels.
    info : mne.Info
        Channel names (with standard 10-05 positions when the names allow), sampling
        rate.
    tmin, tmax : float
        The window, in seconds relative to the cue.
    preprocessing : list of dict
        The runtime nodes the windows went through before being cut (empty for
        simulated sites, whose windows are generated directly); a model exported for
        this site declares them in its spec.
    name : str
        For messages and tables.
    """

    X: np.ndarray
    y: np.ndarray
    info: mne.Info
    tmin: float
    tmax: float
    preprocessing: list[dict[str, Any]] = field(default_factory=list)
    name: str = ""

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def sfreq(self) -> float:
        return float(self.info["sfreq"])

    @property
    def ch_names(self) -> list[str]:
        return list(self.info["ch_names"])

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.y.tolist()))

    def subset(self, idx: np.ndarray) -> SiteData:
        """The windows ``idx`` (same info, window and preprocessing)."""
        idx = np.asarray(idx, dtype=np.int64)
        return replace(self, X=self.X[idx], y=self.y[idx])


@dataclass(frozen=True, slots=True)
class PlantedStructure:
    """The class structure every site shares (drawn from ``structure_seed``).

    Attributes
    ----------
    mu_hz, beta_hz : ndarray, shape (n_sources,)
        Centre of each source's mu and beta peaks.
    beta_ratio : float
        Beta amplitude relative to mu.
    depth : ndarray, shape (n_classes, n_sources)
        Fraction of each source's amplitude removed during imagery of each class.
    onset : ndarray, shape (n_classes,)
        Seconds after the cue at which each class's desynchronisation starts.
    position : ndarray, shape (n_sources, 3)
        Where each source lies, in metres (head coordinates of the 10-05 montage,
        projected on the scalp: the point its field is strongest at).
    """

    mu_hz: np.ndarray
    beta_hz: np.ndarray
    beta_ratio: float
    depth: np.ndarray
    onset: np.ndarray
    position: np.ndarray

    @property
    def n_sources(self) -> int:
        return int(self.mu_hz.shape[0])


def planted_structure(n_classes: int, *, structure_seed: int = 0) -> PlantedStructure:
    """The latent sources and their class-specific behaviour.

    There is one source per class, desynchronised (60–80 % of its amplitude) when that
    class is imagined, plus two distractor sources with rhythms of their own and no
    class behaviour: the model has to find *which* rhythm carries the class, not
    merely that rhythms exist. Class sources lie under the motor strip as in motor
    imagery (first class under C4, second under C3, then Cz, CPz, FCz …; e.g. left hand
    → right hemisphere), distractors under Pz and Fz, each moved by up to 1.5 cm.
    """
    rng = np.random.default_rng([int(structure_seed), _RNG_STRUCTURE])
    n_sources = n_classes + 2
    depth = np.zeros((n_classes, n_sources))
    for c in range(n_classes):
        depth[c, c] = rng.uniform(0.6, 0.8)
    motor = ["C4", "C3", "Cz", "CPz", "FCz", "C2", "C1", "CP4", "CP3"]
    if n_classes > len(motor):
        raise ConfigError(f"planted_structure: at most {len(motor)} classes, found {n_classes}")
    anchors = np.array([site_position(n) for n in (*motor[:n_classes], "Pz", "Fz")])
    return PlantedStructure(
        mu_hz=rng.uniform(9.0, 13.0, n_sources), beta_hz=rng.uniform(18.0, 26.0, n_sources),
        beta_ratio=0.5, depth=depth, onset=rng.uniform(0.3, 0.6, n_classes),
        position=_jitter(anchors, rng, 0.015),
    )


def _jitter(points: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Move points on the scalp by up to ``scale`` metres, keeping their distance from
    the montage's centre (so they stay on the scalp)."""
    centre = _SCALP_CENTRE
    moved = points + rng.uniform(-scale, scale, points.shape)
    radius = np.linalg.norm(points - centre, axis=1, keepdims=True)
    return centre + (moved - centre) * radius / np.linalg.norm(moved - centre, axis=1,
                                                               keepdims=True)


def _field(electrodes: np.ndarray, sources: np.ndarray, spread: float) -> np.ndarray:
    """Gain of each source at each electrode, shape (n_electrodes, n_sources): a
    Gaussian of the distance on the scalp, 1 right above the source (volume conduction
    blurs a cortical source over several centimetres)."""
    d2 = ((electrodes[:, None, :] - sources[None, :, :]) ** 2).sum(-1)
    return np.exp(-0.5 * d2 / spread ** 2)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _narrowband(rng: np.random.Generator, shape: tuple[int, ...], n_times: int, sfreq: float,
                centre: np.ndarray, width: float) -> np.ndarray:
    """Gaussian-shaped narrow-band noise of unit RMS, shape ``(*shape, n_times)``.

    Built in the frequency domain, so the same band at any sampling rate has the same
    spectrum in Hz; ``centre`` broadcasts against ``shape``.
    """
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    gain = np.exp(-0.5 * ((freqs - np.asarray(centre)[..., None]) / width) ** 2)
    return _coloured(rng, shape, n_times, gain)


def _pink(rng: np.random.Generator, shape: tuple[int, ...], n_times: int,
          sfreq: float) -> np.ndarray:
    """1/f noise of unit RMS above 1 Hz, shape ``(*shape, n_times)``."""
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    gain = 1.0 / np.sqrt(np.maximum(freqs, 1.0))
    gain[0] = 0.0
    return _coloured(rng, shape, n_times, gain)


def _coloured(rng: np.random.Generator, shape: tuple[int, ...], n_times: int,
              gain: np.ndarray) -> np.ndarray:
    """Gaussian noise with amplitude spectrum ``gain`` (over ``rfftfreq(n_times)``,
    broadcast against ``shape``), scaled to unit RMS; shape ``(*shape, n_times)``."""
    n_freqs = n_times // 2 + 1
    spec = (rng.standard_normal((*shape, n_freqs))
            + 1j * rng.standard_normal((*shape, n_freqs))) * gain
    x = np.fft.irfft(spec, n=n_times, axis=-1)
    return x / np.sqrt(np.mean(x ** 2, axis=-1, keepdims=True) + 1e-30)


def site_info(n_channels: int, sfreq: float) -> mne.Info:
    """Info of a simulated site: ``n_channels`` 10-05 names around C3/Cz/C4, positions set."""
    names = pick_channels(int(n_channels), paradigm="mi")
    info = mne.create_info(names, float(sfreq), "eeg")
    info.set_montage(standard_montage(), on_missing="ignore", verbose="error")
    return info


def make_site(
    *, n_channels: int, sfreq: float, n_trials: int, seed: int, structure_seed: int = 0,
    classes: Sequence[str] = ("left", "right"), tmin: float = 0.5, tmax: float = 2.5,
    snr: float = 1.5,
) -> SiteData:
    """Simulate one site's trials, windows ``tmin``–``tmax`` s after each cue.

    Parameters
    ----------
    n_channels : int
        Electrodes of the site (10-05 names nearest to C3, Cz, C4).
    sfreq : float
        The site's sampling rate in Hz (≥ 64, so that the beta band is below Nyquist).
    n_trials : int
        Trials, split as evenly as possible across ``classes``, in random order.
    seed : int
        The site: its mixing of the sources into its channels, its noise and trials.
    structure_seed : int
        The planted class structure (:func:`planted_structure`); sites that should
        share a structure share this seed.
    classes : sequence of str
        Class labels (≥ 2).
    tmin, tmax : float
        Window relative to the cue, in seconds.
    snr : float
        RMS of the source signal over RMS of the noise, per channel.

    Returns
    -------
    SiteData
        ``X`` float32 of shape ``(n_trials, n_channels, round((tmax - tmin) * sfreq))``.

    Raises
    ------
    bci.errors.ConfigError
        On a rate below 64 Hz, fewer trials than classes, fewer than 2 classes, a
        non-positive SNR or an empty window.
    """
    classes = [str(c) for c in classes]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ConfigError(f"make_site: expected at least 2 distinct classes, found {classes}")
    if not float(sfreq) >= 64.0:
        raise ConfigError(f"make_site: expected sfreq >= 64 Hz (beta up to 26 Hz must lie "
                          f"below Nyquist), found {sfreq!r}")
    if not isinstance(n_trials, int | np.integer) or n_trials < len(classes):
        raise ConfigError(f"make_site: expected n_trials >= {len(classes)} (one per class), "
                          f"found {n_trials!r}")
    if not float(snr) > 0:
        raise ConfigError(f"make_site: expected snr > 0, found {snr!r}")
    sfreq = float(sfreq)
    n_times = round((float(tmax) - float(tmin)) * sfreq)
    if n_times < 2:
        raise ConfigError(f"make_site: expected tmax - tmin to span samples, found "
                          f"tmin={tmin}, tmax={tmax} at {sfreq:g} Hz")
    info = site_info(n_channels, sfreq)
    structure = planted_structure(len(classes), structure_seed=structure_seed)
    n_src = structure.n_sources

    # The site's view of the shared sources: its own electrodes, its own head (each
    # source up to 1 cm elsewhere, its own spread of volume conduction, channel gains
    # within ±20 %), and its own background sources anywhere on the scalp.
    mixing_rng = np.random.default_rng([int(seed), _RNG_MIXING])
    electrodes = np.array([site_position(n) for n in info["ch_names"]])
    spread = mixing_rng.uniform(0.03, 0.045)
    sources = _jitter(structure.position, mixing_rng, 0.01)
    gains = mixing_rng.uniform(0.8, 1.2, (n_channels, 1))
    A = SOURCE_RMS * gains * _field(electrodes, sources, spread)
    background = _SCALP_CENTRE + 0.095 * _unit(mixing_rng.standard_normal((N_BACKGROUND, 3)))
    background[:, 2] = np.abs(background[:, 2] - _SCALP_CENTRE[2]) + _SCALP_CENTRE[2]
    B = gains * _field(electrodes, background, spread)

    rng = np.random.default_rng([int(seed), _RNG_TRIALS])
    y_idx = rng.permutation(np.arange(n_trials) % len(classes))
    t = float(tmin) + np.arange(n_times) / sfreq
    # rhythms: mu + beta per source, each narrow-band (1 Hz wide) noise
    mu = _narrowband(rng, (n_trials, n_src), n_times, sfreq, structure.mu_hz, 1.0)
    beta = _narrowband(rng, (n_trials, n_src), n_times, sfreq, structure.beta_hz, 1.5)
    s = (mu + structure.beta_ratio * beta) / np.sqrt(1 + structure.beta_ratio ** 2)
    # desynchronisation: raised-cosine onset over 0.4 s after the class's latency
    ramp = np.clip((t[None, :] - structure.onset[:, None]) / 0.4, 0.0, 1.0)
    env = 0.5 - 0.5 * np.cos(np.pi * ramp)                      # (n_classes, n_times)
    gain = 1.0 - structure.depth[y_idx][:, :, None] * env[y_idx][:, None, :]
    # trial and per-source gains, log-normal: overall power must not give the class away
    g = np.exp(0.3 * rng.standard_normal((n_trials, 1, 1))
               + 0.2 * rng.standard_normal((n_trials, n_src, 1)))
    signal = np.einsum("cs,nst->nct", A, g * s * gain)
    sig_rms = float(np.sqrt(np.mean(signal ** 2)))
    # noise: 70 % of its power from the volume-conducted background (spatially
    # correlated, like real EEG), 30 % independent per electrode
    brain = np.einsum("cb,nbt->nct", B, _pink(rng, (n_trials, N_BACKGROUND), n_times, sfreq))
    brain /= np.sqrt(np.mean(brain ** 2))
    sensor = _pink(rng, (n_trials, n_channels), n_times, sfreq)
    noise = np.sqrt(0.7) * brain + np.sqrt(0.3) * sensor
    noise *= sig_rms / float(snr) / float(np.sqrt(np.mean(noise ** 2)))
    X = (signal + noise).astype(np.float32)
    y = np.asarray(classes, dtype=str)[y_idx]
    return SiteData(X, y, info, float(tmin), float(tmax), [],
                    f"sim-{n_channels}ch-{sfreq:g}Hz-seed{seed}")


def split(site: SiteData, *, test_fraction: float, seed: int) -> tuple[SiteData, SiteData]:
    """Stratified split into training and held-out windows.

    Each class contributes ``round(test_fraction · n_class)`` windows (at least one,
    and at least one left for training) to the held-out part.

    Returns
    -------
    train, test : SiteData

    Raises
    ------
    bci.errors.ConfigError
        If ``test_fraction`` is not in (0, 1).
    bci.errors.TrainingError
        If a class has fewer than 2 windows.
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise ConfigError(f"split: expected 0 < test_fraction < 1, found {test_fraction!r}")
    rng = np.random.default_rng(int(seed))
    train, test = [], []
    for label in site.classes:
        idx = rng.permutation(np.flatnonzero(site.y == label))
        if idx.size < 2:
            raise TrainingError(f"split: class {label!r} of {site.name or 'site'} has "
                                f"{idx.size} window(s); expected at least 2 to split")
        n_test = min(max(round(float(test_fraction) * idx.size), 1), idx.size - 1)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return site.subset(np.sort(np.concatenate(train))), site.subset(np.sort(np.concatenate(test)))


# --------------------------------------------------------------------- real EEGMMIDB site


def _eegbci_root(folder: str | Path) -> Path:
    """The folder holding ``files/eegmmidb/1.0.0``: ``folder`` or its ``MNE-eegbci-data``."""
    folder = Path(folder)
    for root in (folder, folder / "MNE-eegbci-data"):
        if root.joinpath(*EEGBCI_LAYOUT).is_dir():
            return root
    raise RecordingError(
        f"load_eegbci_site: expected the EEGMMIDB layout {'/'.join(EEGBCI_LAYOUT)}/SNNN/ "
        f"under {folder} (or {folder / 'MNE-eegbci-data'}), found none")


def _standard_positions(info: mne.Info) -> None:
    """Give EEGMMIDB channels ('Fc5.', 'C3..') their standard 10-05 positions, in place.

    The names are kept as the files spell them, since those are the names a stream of
    these recordings carries and the exported spec must match; only the positions come
    from the montage, through MNE's spelling of the standard names.
    """
    renamed = info.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mapping = {n: n.rstrip(".").upper().replace("Z", "z").replace("FP", "Fp")
                   for n in renamed["ch_names"]}
        mne.rename_channels(renamed, mapping, verbose="error")
        renamed.set_montage(standard_montage(), on_missing="ignore", match_case=False,
                            verbose="error")
    with info._unlock():
        for ch, src in zip(info["chs"], renamed["chs"], strict=True):
            ch["loc"][:] = src["loc"]
        info["dig"] = renamed["dig"]


def load_eegbci_site(
    folder: str | Path, *, subjects: Sequence[int] = (1,), runs: Sequence[int] = (4, 8, 12),
    tmin: float = 0.5, tmax: float = 2.5, l_freq: float = 8.0, h_freq: float = 30.0,
) -> SiteData:
    """Real left/right fist imagery of EEGMMIDB as a site, cut by the runtime's own code.

    Each run goes through :func:`bci.training_data.extract_windows` — the live loop's
    channel pick, causal band-pass ``l_freq``–``h_freq`` and epoch windowing — with
    ``T1`` → ``left`` and ``T2`` → ``right``, so the returned ``preprocessing`` is
    exactly what a model exported for this site must declare.

    Parameters
    ----------
    folder : str | Path
        ``MNE-eegbci-data`` (holding ``files/eegmmidb/1.0.0/S001/S001R04.edf`` …), or
        the folder above it (e.g. ``$BCI_DATA``).
    subjects : sequence of int
        PhysioNet subject numbers.
    runs : sequence of int
        Runs of left/right imagery (4, 8, 12). Runs whose file is absent are skipped
        with a warning (the shared folder holds runs 4 and 8 of S001); at least one
        must be present.
    tmin, tmax : float
        Window after each cue, in seconds.
    l_freq, h_freq : float
        Edges of the causal band-pass, in Hz.

    Returns
    -------
    SiteData
        ``X`` float32 ``(n_windows, 64, round((tmax - tmin) * 160))`` in volts; ``info``
        with the files' channel names ('Fc5.' …) and standard positions.

    Raises
    ------
    bci.errors.RecordingError
        When the folder layout or every requested run is missing, or subjects disagree
        on channels or rate.
    """
    base = _eegbci_root(folder).joinpath(*EEGBCI_LAYOUT)
    paths, missing = [], []
    for subject in subjects:
        for run in runs:
            path = base / f"S{int(subject):03d}" / f"S{int(subject):03d}R{int(run):02d}.edf"
            (paths if path.is_file() else missing).append(path)
    if missing:
        log.warning("load_eegbci_site: skipped absent runs %s under %s",
                    [p.name for p in missing], base)
    if not paths:
        raise RecordingError(f"load_eegbci_site: none of the runs {list(runs)} of subjects "
                             f"{list(subjects)} is under {base}")
    subj = "+".join(f"S{int(s):03d}" for s in subjects)
    return load_recordings_site(paths, events=EEGBCI_EVENTS, tmin=tmin, tmax=tmax,
                                l_freq=l_freq, h_freq=h_freq, name=f"eegbci-{subj}")


def load_recordings_site(
    files: Sequence[str | Path], *, events: dict[str, str], tmin: float = 0.5,
    tmax: float = 2.5, l_freq: float = 8.0, h_freq: float = 30.0,
    ch_names: Sequence[str] | None = None, name: str = "recordings",
) -> SiteData:
    """A site's own recordings (any format :func:`bci.devices.files.read_recording` reads),
    cut by the runtime's own code.

    Each file goes through :func:`bci.training_data.extract_windows` — the live loop's
    channel pick, causal band-pass ``l_freq``–``h_freq`` and epoch windowing — so the
    returned ``preprocessing`` is exactly what a model exported for this site declares.

    Parameters
    ----------
    files : sequence of path
        Recordings with their markers (XDF, FIF, EDF/BDF, GDF, BrainVision, EEGLAB).
    events : dict of str to str
        Marker value → class label; other markers are ignored.
    tmin, tmax : float
        Window after each marker, in seconds.
    l_freq, h_freq : float
        Edges of the causal band-pass, in Hz.
    ch_names : sequence of str | None
        Channels to use, in this order (default: every EEG channel of the first file).
    name : str

    Returns
    -------
    SiteData
        ``X`` float32 ``(n_windows, n_channels, round((tmax - tmin) · sfreq))`` in volts;
        ``info`` with the files' channel names and standard positions where known.

    Raises
    ------
    bci.errors.ConfigError
        No file or no events.
    bci.errors.RecordingError
        A file is missing or unreadable, or files disagree on channels or rate.
    bci.errors.TrainingError
        No labelled window.
    """
    if not files:
        raise ConfigError(f"site {name}: expected at least one recording, found none")
    if not events:
        raise ConfigError(f"site {name}: expected events (marker → class), found none")
    config = SessionConfig.from_dict({
        "window": {"mode": "epoch", "tmin": float(tmin), "tmax": float(tmax),
                   "events": dict(events)},
        "training": {"paradigm": "mi"},
    })
    preprocessing = [{"kind": "bandpass", "l_freq": float(l_freq), "h_freq": float(h_freq)}]
    Xs, ys, info, picked = [], [], None, None
    for path in files:
        rec = read_recording(path)
        if picked is None:
            picked = list(ch_names) if ch_names else [
                rec.info["ch_names"][i] for i in mne.pick_types(rec.info, eeg=True)]
            missing = [c for c in picked if c not in rec.info["ch_names"]]
            if missing or not picked:
                raise RecordingError(f"site {name}: {path} lacks channels {missing} (has "
                                     f"{rec.info['ch_names']})" if missing else
                                     f"site {name}: {path} has no EEG channel; give ch_names")
            info = mne.pick_info(rec.info, [rec.info["ch_names"].index(c) for c in picked])
        elif rec.sfreq != info["sfreq"] or any(c not in rec.info["ch_names"] for c in picked):
            raise RecordingError(f"site {name}: {path} has other channels or rate than the "
                                 f"first file (expected {info['nchan']} channels {picked[:4]}… at "
                             f"{info['sfreq']:g} Hz, found {rec.info['nchan']} at "
                             f"{rec.sfreq:g} Hz)")
        spec = DecoderSpec(
            paradigm="mi", classes=sorted(set(events.values())), ch_names=picked,
            sfreq=rec.sfreq, window=WindowSpec(mode="epoch", tmin=float(tmin),
                                               tmax=float(tmax)),
            preprocessing=preprocessing, name=name,
        )
        w = extract_windows(config, spec, rec)
        Xs.append(w.X)
        ys.append(w.y)
    X = np.concatenate(Xs)
    if X.shape[0] == 0:
        raise TrainingError(f"site {name}: no marker of {sorted(events)} in "
                            f"{list(map(str, files))}")
    _standard_positions(info)
    return SiteData(X.astype(np.float32), np.concatenate(ys).astype(str), info,
                    float(tmin), float(tmax), preprocessing, name)
