"""MEG recordings for image retrieval: sensors, preprocessing, embedding banks, synthetic data.

Sensors
-------
:class:`Montage` holds what the brain module of :mod:`bci.decoders.meg_retrieval` needs to
know about a subject's sensors, read from an :class:`mne.Info` (so from any system MNE
reads: Elekta/MEGIN FIF, CTF, BTi/4D, KIT): channel names, 2-D positions in ``[0, 1]²``
and a sensor *kind* (magnetometer or axial gradiometer; planar gradiometer measuring
along the polar or the azimuthal direction).

Positions are the azimuthal equidistant projection used by MNE's topographic maps,
computed from each sensor's location in the head frame (``info["dev_head_t"]``) around
a fixed origin, then mapped to ``[0, 1]²`` with a fixed scale rather than a per-layout
min–max: a sensor over the same patch of head lands on the same 2-D point whatever the
system, and a subject with a subset of the sensors keeps the positions of the full set.
MNE's :func:`mne.find_layout` normalises per layout file and knows only some systems,
which would break both properties.

Preprocessing (Benchetrit et al. 2024, following Défossez et al. 2023)
---------------------------------------------------------------------
Band-pass (0.1–40 Hz here; the runtime's causal filter), decimation to 120 Hz (the
runtime's anti-aliased decimation, so the stream rate must be an integer multiple of
120 Hz: 600, 1200, 2400 Hz …), epochs −0.5 … 1.0 s around image onset, baseline
correction (each channel minus its mean over the 0.5 s before onset), robust scaling
per channel (median and interquartile range, scikit-learn's ``RobustScaler``, fitted on
training windows only) and clamping at ±20. The first two steps are runtime nodes
(:func:`meg_preprocessing`) and run on the stream live; the last three are per-window
and live in front of the exported network.

Image embeddings
----------------
The retrieval targets are embeddings of the images by a pretrained vision model (CLIP or
DINOv2 in the paper). Models cannot be downloaded at run time, so embeddings are read
from a folder holding one ``.npy`` file per image
(:func:`bci.retrieval.load_embedding_bank`, the bank the live loop ranks against). To make
them on a machine that has the model, e.g. DINOv2 through ``transformers``::

    import numpy as np, torch
    from pathlib import Path
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModel
    proc = AutoImageProcessor.from_pretrained("facebook/dinov2-giant")
    model = AutoModel.from_pretrained("facebook/dinov2-giant").eval()
    for path in sorted(Path("images").glob("*.jpg")):
        with torch.no_grad():
            out = model(**proc(images=Image.open(path).convert("RGB"), return_tensors="pt"))
        np.save(f"bank/{path.stem}.npy", out.pooler_output[0].numpy())   # CLS, (1536,)

or CLIP with ``open_clip`` (``model.encode_image(preprocess(img)[None])[0]``, 768 values
for ViT-L/14). The file stem is the image's name: the marker value that announces it in
the recording, and the candidate name a retrieval decision reports.

Synthetic data
--------------
:func:`make_meg_images` writes MNE Raw objects with realistic channel types (102
magnetometers and 204 planar gradiometers on an Elekta Vectorview-like helmet, or 275
CTF axial gradiometers), locations and orientations built from MNE's bundled layouts,
with a planted structure: each image has a latent vector; each latent dimension is a
cortical source with its own evoked time course, seen through a per-subject forward
model (dipolar field patterns and their planar gradients); the image embeddings are a
fixed linear map of the latents. Background activity (pink-noise sources) and sensor
noise are added.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import mne
import numpy as np
from mne.io.constants import FIFF

from bci.errors import BCIError, TrainingError
from bci.retrieval import EmbeddingBank
from bci.session import OutputsConfig, SessionConfig, SourceConfig, WindowConfig
from bci.spec import DecoderSpec, WindowSpec
from bci.training_data import extract_windows

#: Rate the brain module sees (Défossez et al. 2023; Benchetrit et al. 2024), Hz.
MEG_SFREQ = 120.0
#: Epoch around image onset, seconds (Benchetrit et al. 2024).
EPOCH_TMIN, EPOCH_TMAX = -0.5, 1.0
#: Band-pass edges, Hz.
L_FREQ, H_FREQ = 0.1, 40.0
#: Robust-scaled values are clamped to ± this (Défossez et al. 2023).
CLAMP = 20.0
#: Sensor kinds, the index stored in :attr:`Montage.kinds`.
KINDS = ("mag", "planar-polar", "planar-azimuthal")
#: Centre of the projection, head frame, metres (MNE's default head origin).
HEAD_ORIGIN = (0.0, 0.0, 0.04)
#: Polar angle mapped to the edge of the unit square: helmets reach ~110° from the vertex.
THETA_MAX = 2.0 * math.pi / 3.0


class MEGError(BCIError, ValueError):
    """An MEG recording or montage cannot be used as asked."""


# --- sensors ------------------------------------------------------------------------------


def meg_picks(info: mne.Info, picks: Sequence[str] | None = None) -> np.ndarray:
    """Indices of the MEG sensors to use.

    Parameters
    ----------
    info : mne.Info
    picks : sequence of str | None
        Channel names, in the order wanted; default every magnetometer and gradiometer
        not marked bad (reference sensors excluded), in the recording's order.

    Returns
    -------
    idx : ndarray of int, shape (n_sensors,)

    Raises
    ------
    MEGError
        A named channel is missing or is not an MEG sensor, or there is none.
    """
    if picks is None:
        idx = mne.pick_types(info, meg=True, ref_meg=False, exclude="bads")
        if idx.size == 0:
            raise MEGError(f"expected MEG channels (mag/grad), found types "
                           f"{sorted(set(info.get_channel_types()))}")
        return idx
    names = list(info["ch_names"])
    missing = [p for p in picks if p not in names]
    if missing:
        raise MEGError(f"expected channels {missing[:10]} in the recording, not found "
                       f"(it has {len(names)} channels, e.g. {names[:5]})")
    idx = np.array([names.index(p) for p in picks], dtype=np.int64)
    types = [mne.channel_type(info, int(i)) for i in idx]
    wrong = [n for n, t in zip(picks, types, strict=True) if t not in ("mag", "grad")]
    if wrong:
        raise MEGError(f"expected MEG sensors (mag/grad), found other types for {wrong[:10]}")
    return idx


def _head_locations(info: mne.Info, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sensor positions (n, 3) and coil x-axes (n, 3) in the head frame."""
    locs = np.array([info["chs"][int(i)]["loc"] for i in idx], dtype=np.float64)
    bad = ~np.isfinite(locs[:, :3]).all(axis=1) | (np.linalg.norm(locs[:, :3], axis=1) == 0)
    if bad.any():
        names = [info["ch_names"][int(i)] for i in idx[bad]]
        raise MEGError(f"expected sensor locations in info['chs'][i]['loc'], found none "
                       f"(zeros or NaN) for {names[:10]}")
    trans = info["dev_head_t"]
    # without a device-to-head transform, the device frame stands in for the head frame
    matrix = np.eye(4) if trans is None else np.asarray(trans["trans"], np.float64)
    pos = mne.transforms.apply_trans(matrix, locs[:, :3])
    ex = locs[:, 3:6] @ matrix[:3, :3].T
    return pos, ex


def _spherical(pos: np.ndarray, origin: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    rel = pos - np.asarray(origin, np.float64)
    r = np.linalg.norm(rel, axis=1)
    theta = np.arccos(np.clip(rel[:, 2] / np.maximum(r, 1e-12), -1.0, 1.0))
    phi = np.arctan2(rel[:, 1], rel[:, 0])
    return theta, phi


def sensor_positions(
    info: mne.Info, picks: Sequence[str] | None = None, *,
    origin: Sequence[float] = HEAD_ORIGIN,
) -> np.ndarray:
    """2-D sensor positions in ``[0, 1]²`` from the sensors' locations in ``info``.

    Parameters
    ----------
    info : mne.Info
    picks : sequence of str | None
        See :func:`meg_picks`.
    origin : sequence of 3 float
        Centre of the projection in the head frame, metres.

    Returns
    -------
    positions : ndarray of float64, shape (n_sensors, 2)
        ``(0.5, 0.5)`` is the vertex; ``x`` grows towards the right ear, ``y`` towards
        the nose; a polar angle of :data:`THETA_MAX` from the vertex reaches the edge.
    """
    idx = meg_picks(info, picks)
    pos, _ = _head_locations(info, idx)
    theta, phi = _spherical(pos, origin)
    rho = theta / THETA_MAX
    xy = 0.5 + 0.5 * rho[:, None] * np.stack([np.cos(phi), np.sin(phi)], axis=1)
    return np.clip(xy, 0.0, 1.0)


def sensor_kinds(
    info: mne.Info, picks: Sequence[str] | None = None, *,
    origin: Sequence[float] = HEAD_ORIGIN,
) -> np.ndarray:
    """Kind of each sensor, an index into :data:`KINDS`.

    Magnetometers and axial gradiometers (CTF, KIT, BTi; MNE types them ``mag``) are
    kind 0. A planar gradiometer is kind 1 when its baseline (the coil's x axis) lies
    closer to the polar direction of the helmet than to the azimuthal one, else kind 2:
    the two gradiometers of a Vectorview triplet share a location and differ only
    there, so the spatial attention can weigh them apart.

    Returns
    -------
    kinds : ndarray of int64, shape (n_sensors,)
    """
    idx = meg_picks(info, picks)
    kinds = np.zeros(idx.size, np.int64)
    grad = np.array([mne.channel_type(info, int(i)) == "grad" for i in idx])
    if grad.any():
        pos, ex = _head_locations(info, idx[grad])
        theta, phi = _spherical(pos, origin)
        e_theta = np.stack([np.cos(theta) * np.cos(phi), np.cos(theta) * np.sin(phi),
                            -np.sin(theta)], axis=1)
        e_phi = np.stack([-np.sin(phi), np.cos(phi), np.zeros_like(phi)], axis=1)
        polar = np.abs((ex * e_theta).sum(1)) >= np.abs((ex * e_phi).sum(1))
        kinds[grad] = np.where(polar, 1, 2)
    return kinds


@dataclass(slots=True)
class Montage:
    """One subject's sensors as the brain module sees them.

    Attributes
    ----------
    ch_names : list of str, length n_sensors
    positions : ndarray of float64, shape (n_sensors, 2)
        In ``[0, 1]²`` (see :func:`sensor_positions`).
    kinds : ndarray of int64, shape (n_sensors,)
        Indices into :data:`KINDS`.
    """

    ch_names: list[str]
    positions: np.ndarray
    kinds: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.ch_names = [str(c) for c in self.ch_names]
        self.positions = np.asarray(self.positions, np.float64)
        n = len(self.ch_names)
        if self.kinds is None:
            self.kinds = np.zeros(n, np.int64)
        self.kinds = np.asarray(self.kinds, np.int64)
        if self.positions.shape != (n, 2):
            raise MEGError(f"montage: expected positions of shape ({n}, 2) for {n} channel "
                           f"names, found {self.positions.shape}")
        if not np.isfinite(self.positions).all():
            raise MEGError("montage: expected finite sensor positions, found NaN/Inf")
        if self.kinds.shape != (n,) or (self.kinds < 0).any() or (self.kinds >= len(KINDS)).any():
            raise MEGError(f"montage: expected {n} kinds among 0..{len(KINDS) - 1}, found "
                           f"{self.kinds!r}")
        if len(set(self.ch_names)) != n:
            raise MEGError("montage: expected unique channel names")

    def __len__(self) -> int:
        return len(self.ch_names)

    @classmethod
    def from_info(cls, info: mne.Info, picks: Sequence[str] | None = None) -> Montage:
        """The montage of the MEG sensors in ``info`` (see :func:`meg_picks`)."""
        idx = meg_picks(info, picks)
        names = [info["ch_names"][int(i)] for i in idx]
        return cls(names, sensor_positions(info, names), sensor_kinds(info, names))

    def take(self, order: Sequence[int]) -> Montage:
        """The sensors ``order`` (indices), in that order."""
        order = np.asarray(order, np.int64)
        return Montage([self.ch_names[i] for i in order], self.positions[order],
                       self.kinds[order])

    def to_dict(self) -> dict[str, Any]:
        return {"ch_names": list(self.ch_names), "positions": self.positions.tolist(),
                "kinds": self.kinds.tolist()}


# --- preprocessing -----------------------------------------------------------------------


def meg_preprocessing(
    sfreq: float, *, l_freq: float = L_FREQ, h_freq: float = H_FREQ,
    target_sfreq: float = MEG_SFREQ, order: int = 4,
) -> list[dict[str, Any]]:
    """The runtime nodes that run on the MEG stream: band-pass, then decimation.

    Parameters
    ----------
    sfreq : float
        The stream's rate, Hz; an integer multiple of ``target_sfreq``.
    l_freq, h_freq : float
        Band-pass edges, Hz; ``h_freq`` below the Nyquist frequency of ``target_sfreq``.
    target_sfreq : float
        Rate after decimation (120 Hz as published).
    order : int
        Butterworth order of the band-pass prototype.

    Returns
    -------
    nodes : list of dict
        ``[{"kind": "bandpass", ...}, {"kind": "decimate", "factor": q}]`` (no
        decimation when ``sfreq == target_sfreq``).

    Raises
    ------
    MEGError
        When ``sfreq`` is not an integer multiple of ``target_sfreq`` (the runtime
        decimates by integers; resample the recording first, e.g. with
        ``raw.resample(1200)``), or the band does not fit.
    """
    ratio = float(sfreq) / float(target_sfreq)
    factor = round(ratio)
    if factor < 1 or not math.isclose(ratio, factor, rel_tol=1e-9):
        examples = ", ".join(f"{target_sfreq * q:g}" for q in (5, 10, 20))
        raise MEGError(f"expected a stream rate that is an integer multiple of "
                       f"{target_sfreq:g} Hz (e.g. {examples} Hz), found {sfreq:g} Hz; "
                       f"resample the recording first")
    if not 0 < float(l_freq) < float(h_freq) < float(target_sfreq) / 2:
        raise MEGError(f"expected 0 < l_freq < h_freq < {target_sfreq / 2:g} Hz, found "
                       f"l_freq={l_freq}, h_freq={h_freq}")
    nodes: list[dict[str, Any]] = [{"kind": "bandpass", "l_freq": float(l_freq),
                                    "h_freq": float(h_freq), "order": int(order)}]
    if factor > 1:
        nodes.append({"kind": "decimate", "factor": int(factor)})
    return nodes


@dataclass(slots=True)
class MEGEpochs:
    """Marker-locked MEG windows cut by the runtime's own chain and windower.

    Attributes
    ----------
    X : ndarray of float32, shape (n_epochs, n_sensors, n_times)
        After band-pass and decimation; not baseline-corrected nor scaled.
    names : ndarray of str, shape (n_epochs,)
        The marker value (image name) of each epoch.
    stops : ndarray of int64, shape (n_epochs,)
        One past each epoch's last sample, stream samples from the recording's start.
    montage : Montage
    sfreq : float
        Rate of ``X``, Hz.
    preprocessing : list of dict
        The runtime nodes that produced ``X`` from the stream.
    """

    X: np.ndarray
    names: np.ndarray
    stops: np.ndarray
    montage: Montage
    sfreq: float
    preprocessing: list[dict[str, Any]]


def meg_epochs(
    recording: Any, *, events: Sequence[str] | None = None,
    picks: Sequence[str] | None = None, l_freq: float = L_FREQ, h_freq: float = H_FREQ,
    tmin: float = EPOCH_TMIN, tmax: float = EPOCH_TMAX, target_sfreq: float = MEG_SFREQ,
) -> MEGEpochs:
    """Epochs around image onsets, through the same code the live loop runs.

    Parameters
    ----------
    recording : bci.recording.Recording
        E.g. from :func:`bci.devices.files.read_recording` (any file MNE reads).
    events : sequence of str | None
        Marker values that open an epoch (image names); default every marker.
    picks : sequence of str | None
        See :func:`meg_picks`.
    l_freq, h_freq, target_sfreq
        See :func:`meg_preprocessing`.
    tmin, tmax : float
        Epoch limits around each marker, seconds; ``round((tmax - tmin) · 120)``
        samples (180 for −0.5 … 1.0 s).

    Returns
    -------
    MEGEpochs
    """
    montage = Montage.from_info(recording.info, picks)
    nodes = meg_preprocessing(recording.sfreq, l_freq=l_freq, h_freq=h_freq,
                              target_sfreq=target_sfreq)
    values = sorted(set(recording.markers.values)) if events is None else list(events)
    config = SessionConfig(
        source=SourceConfig(), chain=[],
        window=WindowConfig(mode="epoch", tmin=float(tmin), tmax=float(tmax),
                            events={v: v for v in values}),
        decoder=None, outputs=OutputsConfig(lsl=None),
    )
    spec = DecoderSpec(paradigm="meg", classes=[], ch_names=montage.ch_names,
                       sfreq=recording.sfreq, preprocessing=nodes,
                       window=WindowSpec(mode="epoch", tmin=float(tmin), tmax=float(tmax)))
    try:
        w = extract_windows(config, spec, recording)
    except TrainingError as err:
        raise MEGError(str(err)) from None
    return MEGEpochs(w.X, w.y, w.stops, montage, float(target_sfreq), nodes)


def baseline_correct(X: np.ndarray, n_baseline: int) -> np.ndarray:
    """Subtract from each channel its mean over the first ``n_baseline`` samples.

    Parameters
    ----------
    X : ndarray, shape (n_windows, n_sensors, n_times)
    n_baseline : int
        Samples before onset (60 for 0.5 s at 120 Hz); 0 leaves ``X`` as it is.

    Returns
    -------
    X : ndarray of float32, same shape
    """
    X = np.asarray(X, np.float32)
    if not 0 <= int(n_baseline) <= X.shape[-1]:
        raise MEGError(f"expected 0 ≤ n_baseline ≤ {X.shape[-1]}, found {n_baseline}")
    if n_baseline == 0:
        return X.copy()
    return X - X[..., :n_baseline].mean(axis=-1, keepdims=True, dtype=np.float64).astype(
        np.float32)


class RobustClamp:
    """Per-channel robust scaling, then clamping (Défossez et al. 2023).

    Each channel is centred on its median and divided by its interquartile range,
    scikit-learn's :class:`~sklearn.preprocessing.RobustScaler` with samples of every
    window pooled, fitted on training windows; values beyond ``±clamp`` are clipped.

    Parameters
    ----------
    clamp : float
        20 as published; ``inf`` disables clamping.

    Attributes
    ----------
    center_, scale_ : ndarray of float64, shape (n_sensors,)
    """

    def __init__(self, *, clamp: float = CLAMP) -> None:
        self.clamp = clamp

    def fit(self, X: np.ndarray) -> RobustClamp:
        """Fit on windows ``(n_windows, n_sensors, n_times)`` (baseline-corrected)."""
        from sklearn.preprocessing import RobustScaler

        X = np.asarray(X)
        if X.ndim != 3:
            raise MEGError(f"expected windows (n_windows, n_sensors, n_times), found {X.shape}")
        flat = np.moveaxis(X, 1, -1).reshape(-1, X.shape[1]).astype(np.float64)
        scaler = RobustScaler().fit(flat)
        self.center_ = np.asarray(scaler.center_, np.float64)
        self.scale_ = np.asarray(scaler.scale_, np.float64)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scaled and clamped windows, float32, same shape."""
        X = np.asarray(X, np.float64)
        if X.ndim != 3 or X.shape[1] != self.center_.size:
            raise MEGError(f"expected windows with {self.center_.size} sensors, found {X.shape}")
        Z = (X - self.center_[:, None]) / self.scale_[:, None]
        return np.clip(Z, -self.clamp, self.clamp).astype(np.float32)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)


# --- synthetic montages and recordings ----------------------------------------------------

#: Helmet radius of the synthetic systems, metres; sensors sit on a sphere around the origin.
_HELMET_RADIUS = 0.12
#: Polar angle of the outermost synthetic sensors.
_HELMET_THETA = math.radians(110)
#: Device → head translation of the synthetic recordings, metres.
_DEV_HEAD = (0.0, 0.005, 0.04)


def _layout_sites(layout: mne.channels.Layout, key) -> tuple[list[str], np.ndarray]:
    """Sites (grouped by ``key(name)``) and their unit directions from a 2-D layout."""
    centres = layout.pos[:, :2] + layout.pos[:, 2:4] / 2
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(layout.names):
        groups.setdefault(key(name), []).append(i)
    sites = list(groups)
    xy = np.array([centres[groups[s]].mean(0) for s in sites])
    xy = xy - (xy.min(0) + xy.max(0)) / 2
    rho = np.linalg.norm(xy, axis=1)
    theta = rho / rho.max() * _HELMET_THETA
    phi = np.arctan2(xy[:, 1], xy[:, 0])
    u = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], 1)
    return sites, u


def _tangents(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    theta = np.arccos(np.clip(u[:, 2], -1, 1))
    phi = np.arctan2(u[:, 1], u[:, 0])
    e_theta = np.stack([np.cos(theta) * np.cos(phi), np.cos(theta) * np.sin(phi),
                        -np.sin(theta)], 1)
    e_phi = np.stack([-np.sin(phi), np.cos(phi), np.zeros_like(phi)], 1)
    return e_theta, e_phi


def make_meg_info(system: str = "vectorview", *, sfreq: float = 1200.0,
                  n_sites: int | None = None) -> mne.Info:
    """An :class:`mne.Info` of a whole-head MEG system with locations and orientations.

    Parameters
    ----------
    system : str
        ``"vectorview"``: 102 sites × (magnetometer ``MEGxxx1`` + two orthogonal planar
        gradiometers ``MEGxxx2``/``MEGxxx3``), Elekta/MEGIN coil types, from MNE's
        ``Vectorview-all`` layout. ``"ctf275"``: 275 axial gradiometers (MNE type
        ``mag``, CTF coil type), from MNE's ``CTF-275`` layout.
    sfreq : float
    n_sites : int | None
        Keep this many sites spread over the helmet (evenly through the layout's
        order); default all.

    Returns
    -------
    info : mne.Info
        Locations in the device frame with a device→head transform (a translation).
    """
    if system == "vectorview":
        layout = mne.channels.read_layout("Vectorview-all")
        sites, u = _layout_sites(layout, lambda n: n.replace(" ", "")[:-1])
        members = [("1", "mag"), ("2", "grad"), ("3", "grad")]
    elif system == "ctf275":
        layout = mne.channels.read_layout("CTF-275")
        sites, u = _layout_sites(layout, lambda n: n.split("-")[0])
        members = [("", "mag")]
    else:
        raise MEGError(f"system: expected 'vectorview' or 'ctf275', found {system!r}")
    if n_sites is not None:
        if not 1 <= int(n_sites) <= len(sites):
            raise MEGError(f"n_sites: expected 1..{len(sites)}, found {n_sites}")
        keep = np.unique(np.linspace(0, len(sites) - 1, int(n_sites)).round().astype(int))
        sites, u = [sites[i] for i in keep], u[keep]
    e_theta, e_phi = _tangents(u)
    head = np.asarray(HEAD_ORIGIN) + _HELMET_RADIUS * u
    device = head - np.asarray(_DEV_HEAD)
    names, types, locs = [], [], []
    for s, site in enumerate(sites):
        for suffix, kind in members:
            names.append(site + suffix)
            types.append(kind)
            ex = e_theta[s] if suffix != "3" else e_phi[s]
            ey = np.cross(u[s], ex)
            locs.append(np.concatenate([device[s], ex, ey, u[s]]))
    info = mne.create_info(names, float(sfreq), types)
    with info._unlock():
        trans = np.eye(4)
        trans[:3, 3] = _DEV_HEAD
        info["dev_head_t"] = mne.transforms.Transform("meg", "head", trans)
        for ch, loc in zip(info["chs"], locs, strict=True):
            ch["loc"][:] = loc
            if system == "ctf275":
                ch["coil_type"] = FIFF.FIFFV_COIL_CTF_GRAD
    return info


@dataclass(slots=True)
class SyntheticMEGImages:
    """What :func:`make_meg_images` planted and wrote.

    Attributes
    ----------
    raws : list of mne.io.RawArray
        One continuous recording per subject, image onsets as annotations named after
        the image.
    names : list of str, length n_images
    embeddings : ndarray of float32, shape (n_images, embedding_dim)
        The "vision model" embedding of each image (a linear map of its latent).
    latents : ndarray of float64, shape (n_images, latent_dim)
    forwards : list of ndarray, shape (n_sensors_s, latent_dim)
        Each subject's field pattern of each latent source, in T or T/m.
    time_courses : ndarray of float64, shape (latent_dim, n_kernel)
        Evoked response of each source from image onset, at the recording rate.
    onsets : list of ndarray, shape (n_trials,)
        Seconds from each recording's first sample.
    order : list of ndarray of int, shape (n_trials,)
        Image shown at each onset.
    """

    raws: list[mne.io.RawArray]
    names: list[str]
    embeddings: np.ndarray
    latents: np.ndarray
    forwards: list[np.ndarray]
    time_courses: np.ndarray
    onsets: list[np.ndarray]
    order: list[np.ndarray]

    def bank(self) -> EmbeddingBank:
        return EmbeddingBank(list(self.names), self.embeddings.copy())


def _field(u: np.ndarray, src: np.ndarray, moment: np.ndarray, width: float) -> np.ndarray:
    """Radial field of a tangential dipole under ``src`` at sensor directions ``u``.

    A bipolar pattern: positive on one side of the dipole, negative on the other, decaying
    with the angular distance (a smooth stand-in for the Sarvas formula)."""
    d = u - src
    return (d @ np.cross(moment, src)) * np.exp(-(d**2).sum(1) / (2 * width**2)) / width


def _gains(u: np.ndarray, ex: np.ndarray, is_grad: np.ndarray, sources: np.ndarray,
           moments: np.ndarray, width: float = 0.35) -> np.ndarray:
    """Field (magnetometers) or its gradient along the coil's x axis (planar
    gradiometers, per metre) of unit dipoles, shape (n_sensors, n_sources)."""
    G = np.empty((u.shape[0], len(sources)))
    eps = 0.01
    for j in range(len(sources)):
        G[:, j] = _field(u, sources[j], moments[j], width)
        grad = (_field(u + eps * ex, sources[j], moments[j], width)
                - _field(u - eps * ex, sources[j], moments[j], width)) / (2 * eps)
        G[is_grad, j] = grad[is_grad] / _HELMET_RADIUS
    return G


def _pink(rng: np.random.Generator, n_sources: int, n: int) -> np.ndarray:
    spec = rng.standard_normal((n_sources, n // 2 + 1)) + 1j * rng.standard_normal(
        (n_sources, n // 2 + 1))
    f = np.arange(n // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n=n, axis=1)
    return x / x.std(axis=1, keepdims=True)


def make_meg_images(
    *, n_images: int = 40, n_repeats: int = 4, n_subjects: int = 1,
    systems: str | Sequence[str] = "vectorview", n_sites: int | Sequence[int | None] | None = None,
    sfreq: float = 600.0, latent_dim: int = 8, embedding_dim: int = 32,
    snr: float = 1.0, soa: tuple[float, float] = (1.3, 1.7), lead: float = 3.0,
    latency_jitter: float = 0.0, names: Sequence[str] | None = None, seed: int = 0,
) -> SyntheticMEGImages:
    """Simulate MEG sessions of image viewing with a planted image code.

    Each image ``i`` has a latent ``z_i ~ N(0, I)`` of ``latent_dim`` values and an
    embedding ``z_i W + 0.1 ε`` (``W`` fixed, ``embedding_dim`` columns). Latent ``j``
    is a cortical source at a fixed location (jittered per subject) with a tangential
    dipole and an evoked time course peaking 100–450 ms after onset; an image drives
    source ``j`` with amplitude ``z_ij``. Sensors see the sources through the subject's
    forward model (magnetometers the field, planar gradiometers its tangential
    gradient), plus 30 background sources of pink noise and white sensor noise.

    Parameters
    ----------
    n_images, n_repeats : int
        Every image is shown ``n_repeats`` times per subject, in random order.
    n_subjects : int
    systems : str | sequence of str
        System of each subject (see :func:`make_meg_info`); one value for all.
    n_sites : int | sequence | None
        Sites kept per subject (None: all).
    sfreq : float
        Recording rate, Hz (an integer multiple of 120 Hz to be served live).
    latent_dim, embedding_dim : int
    snr : float
        Standard deviation of the evoked signal over that of the background, at the
        sensors, during responses.
    soa : (float, float)
        Stimulus onset asynchrony drawn uniformly in this range, seconds.
    lead : float
        Seconds of data before the first onset (filters settle).
    latency_jitter : float
        Standard deviation, seconds, of a per-trial delay of the whole evoked response
        (trial-to-trial latency variability, which a fixed linear read-out of the
        time course handles worse than a convolutional one).
    names : sequence of str | None
        Image names; default ``img000``, ``img001`` …
    seed : int

    Returns
    -------
    SyntheticMEGImages
    """
    rng = np.random.default_rng(seed)
    systems = [systems] * n_subjects if isinstance(systems, str) else list(systems)
    sites = n_sites if isinstance(n_sites, Sequence) else [n_sites] * n_subjects
    if len(systems) != n_subjects or len(sites) != n_subjects:
        raise MEGError(f"expected one system and one n_sites per subject ({n_subjects}), "
                       f"found {len(systems)} and {len(sites)}")
    names = [f"img{i:03d}" for i in range(n_images)] if names is None else list(names)
    if len(names) != n_images or len(set(names)) != n_images:
        raise MEGError(f"expected {n_images} unique image names, found {len(set(names))}")
    latents = rng.standard_normal((n_images, latent_dim))
    W = rng.standard_normal((latent_dim, embedding_dim)) / math.sqrt(latent_dim)
    embeddings = (latents @ W + 0.1 * rng.standard_normal((n_images, embedding_dim)))
    # sources over posterior and temporal cortex: polar angle 40–100°, behind the ears
    theta = rng.uniform(math.radians(40), math.radians(100), latent_dim)
    phi = rng.uniform(-math.pi * 0.95, -math.pi * 0.05, latent_dim)
    src = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], 1)
    moments = rng.standard_normal((latent_dim, 3))
    moments -= (moments * src).sum(1, keepdims=True) * src
    moments /= np.linalg.norm(moments, axis=1, keepdims=True)
    t = np.arange(round(0.8 * sfreq)) / sfreq
    peaks = rng.uniform(0.10, 0.45, latent_dim)
    widths = rng.uniform(0.03, 0.08, latent_dim)
    courses = np.exp(-((t[None] - peaks[:, None]) ** 2) / (2 * widths[:, None] ** 2))
    courses *= np.sin(2 * math.pi * rng.uniform(2, 6, latent_dim)[:, None] * t[None] + 1.0)
    courses /= np.abs(courses).max(axis=1, keepdims=True)

    raws, forwards, onsets_all, orders = [], [], [], []
    for s in range(n_subjects):
        info = make_meg_info(systems[s], sfreq=sfreq, n_sites=sites[s])
        idx = meg_picks(info)
        pos, ex = _head_locations(info, idx)
        u = (pos - np.asarray(HEAD_ORIGIN)) / _HELMET_RADIUS
        kinds = np.array([mne.channel_type(info, int(i)) for i in idx])
        jitter = src + 0.03 * rng.standard_normal(src.shape)
        jitter /= np.linalg.norm(jitter, axis=1, keepdims=True)

        is_grad = kinds == "grad"
        forward = _gains(u, ex, is_grad, jitter, moments)
        order = rng.permutation(np.repeat(np.arange(n_images), n_repeats))
        gaps = rng.uniform(*soa, order.size)
        onsets = lead + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
        n = round((onsets[-1] + 2.5) * sfreq)
        drive = np.zeros((latent_dim, n))
        k = courses.shape[1]
        delays = latency_jitter * rng.standard_normal(order.size) if latency_jitter else \
            np.zeros(order.size)
        for onset, delay, img in zip(onsets, delays, order, strict=True):
            i0 = max(0, round((onset + delay) * sfreq))
            drive[:, i0:i0 + k] += latents[img][:, None] * courses
        evoked = forward @ drive
        bg_src = rng.standard_normal((30, 3))
        bg_src[:, 2] = np.abs(bg_src[:, 2])
        bg_src /= np.linalg.norm(bg_src, axis=1, keepdims=True)
        bg_mom = rng.standard_normal((30, 3))
        bg_mom -= (bg_mom * bg_src).sum(1, keepdims=True) * bg_src
        background = _gains(u, ex, is_grad, bg_src, bg_mom) @ _pink(rng, 30, n)
        active = np.zeros(n, bool)
        for onset in onsets:
            i0 = round((onset + 0.1) * sfreq)
            active[i0:i0 + round(0.35 * sfreq)] = True
        data = np.empty_like(evoked)
        for kind, amplitude in (("mag", 2e-13), ("grad", 5e-12)):  # T, T/m
            rows = kinds == kind
            if not rows.any():
                continue
            # evoked/background std ratio set to snr during responses, for each sensor
            # type, so that magnetometers and gradiometers carry the code alike
            gain = snr * background[rows].std() / evoked[rows][:, active].std()
            signal = gain * evoked[rows] + background[rows]
            signal += 0.3 * signal.std(axis=1, keepdims=True) * rng.standard_normal(
                signal.shape)
            to_unit = amplitude / signal.std()
            data[rows] = to_unit * signal
            forward[rows] *= gain * to_unit
        # a constant offset per sensor, which the band-pass removes
        data += data.std(axis=1, keepdims=True) * rng.standard_normal((idx.size, 1))
        forwards.append(forward)
        raw = mne.io.RawArray(data, info, verbose="error")
        raw.set_annotations(mne.Annotations(onsets, 0.5, [names[i] for i in order]))
        raws.append(raw)
        onsets_all.append(onsets)
        orders.append(order)
    return SyntheticMEGImages(raws, names, embeddings.astype(np.float32), latents, forwards,
                              courses, onsets_all, orders)
