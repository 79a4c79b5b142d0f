"""Write a recording to BIDS (EEG or iEEG) through mne-bids: ``bci export-bids``.

Any file :func:`bci.devices.files.read_recording` opens can be exported: the session
recordings of ``bci run`` and ``bci record`` (XDF), and FIF, EDF/BDF, GDF, BrainVision,
EEGLAB, CSV/TSV. What lands in the BIDS folder:

- the data, as BrainVision (``_eeg.vhdr``/``.vmrk``/``.eeg``, or ``_ieeg.*``) in
  float32 microvolts, so every sample keeps float32 precision (about 1e-7 relative;
  EDF would round it to 16 bits);
- the channels with their types (``channels.tsv``: EEG, EOG, ECG, EMG, MISC, TRIG, SEEG,
  ECOG…); the data type is ``ieeg`` when a channel is ``seeg``, ``ecog`` or ``dbs``,
  else ``eeg``;
- the markers as rows of ``events.tsv`` (``trial_type`` the marker value, ``value`` its
  code: integer markers keep theirs);
- the decoder's decisions (the ``Decisions`` streams of an XDF recording, written by the
  session recording or recorded from a session's LSL outlet) as further rows,
  ``trial_type`` ``decision/<label>`` (``decision`` when there is no label), with the
  class probabilities (``p_<class>``), or the outputs, in their own columns, and the
  decision latency (``latency``, seconds) when the stream carries the emission time;
- ``PowerLineFrequency`` (BIDS requires it): ``line_freq``, else the file's own, else
  50 Hz.

Markers and decisions are placed by timestamp on the data's own sample times, so they
stay on the sample they happened at even where an amplifier's clock runs off its nominal
rate (BIDS onsets count samples at the nominal rate). Those outside the data are left
out, with a warning.
"""

from __future__ import annotations

import datetime
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mne
import numpy as np
from bci.devices.files import (
    DECISIONS_TYPE,
    MNE_EXTENSIONS,
    XDF_EXTENSIONS,
    _read_raw_checked,
    _suffix,
    _xdf_complete_prefix,
    read_recording,
)

from bci.errors import BCIError
from bci.recording import Recording

logger = logging.getLogger(__name__)

#: Channel types that make a recording iEEG.
IEEG_TYPES = ("seeg", "ecog", "dbs")
#: Default power-line frequency (Hz) when neither the caller nor the file gives one.
DEFAULT_LINE_FREQ = 50.0
#: Prefix of the ``trial_type`` of decision rows in ``events.tsv``.
DECISION_PREFIX = "decision"

_LABEL = re.compile(r"[A-Za-z0-9]+")
_SEGMENT_PREFIXES = ("bad", "edge", "boundary")


class BIDSError(BCIError, ValueError):
    """A BIDS export cannot be done: mne-bids missing, a bad label, an existing output."""


@dataclass(slots=True)
class Decisions:
    """A decoder's decisions, to be written as ``events.tsv`` rows.

    Attributes
    ----------
    timestamps : ndarray of float64, shape (n_decisions,)
        Time of the last sample each decision used, on the data's clock.
    labels : list of str | None, length n_decisions
        Decided class (``None``: no class, e.g. a continuous output).
    outputs : ndarray of float64, shape (n_decisions, n_outputs)
        Probabilities or outputs, one column per name of ``output_names``.
    output_names : list of str
        Column names for ``events.tsv`` (``p_<class>``, ``out_<i>``, ``latency``).
    """

    timestamps: np.ndarray = field(default_factory=lambda: np.empty(0))
    labels: list[str | None] = field(default_factory=list)
    outputs: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    output_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(slots=True)
class BIDSExport:
    """What :func:`export_bids` wrote.

    Attributes
    ----------
    path : Path
        The data file (``…_eeg.vhdr`` or ``…_ieeg.vhdr``).
    root : Path
        The BIDS root folder.
    datatype : str
        ``eeg`` or ``ieeg``.
    n_channels, n_samples : int
    sfreq, line_freq : float
    n_markers, n_decisions : int
        Rows written to ``events.tsv`` (inside the data).
    n_dropped : int
        Markers and decisions left out because they fall outside the data.
    events_tsv : Path | None
        The events table (``None`` when there was no event).
    """

    path: Path
    root: Path
    datatype: str
    n_channels: int
    n_samples: int
    sfreq: float
    line_freq: float
    n_markers: int
    n_decisions: int
    n_dropped: int
    events_tsv: Path | None


def check_label(value: str | None, entity: str) -> str | None:
    """``value`` if it is a valid BIDS label (letters and digits only), else raise.

    Raises
    ------
    BIDSError
        Naming the entity, what a label may hold and what was found.
    """
    if value is None:
        return None
    text = str(value)
    if not _LABEL.fullmatch(text):
        raise BIDSError(f"{entity} label: expected letters and digits only (BIDS, e.g. "
                        f"'01'), found {text!r}")
    return text


def check_run(run: int | str | None) -> int | None:
    """``run`` as an integer >= 1, else raise :class:`BIDSError`."""
    if run is None:
        return None
    try:
        number = int(str(run).strip())
    except ValueError:
        number = -1
    if number < 1:
        raise BIDSError(f"run: expected an integer >= 1, found {run!r}")
    return number


def import_mne_bids() -> Any:
    """The ``mne_bids`` module, or a one-line :class:`BIDSError` saying how to get it."""
    try:
        import mne_bids
    except ImportError as err:
        raise BIDSError("writing BIDS needs mne-bids, which is not installed: expected "
                        "`pip install 'bci-runtime[bids]'` (or `pip install mne-bids`), "
                        f"found {err}") from None
    return mne_bids


def bids_path(root: str | Path, *, subject: str, task: str, session: str | None = None,
              run: int | None = None, datatype: str = "eeg") -> Any:
    """The ``mne_bids.BIDSPath`` of the data file, after checking every label.

    Raises
    ------
    BIDSError
        A label that BIDS does not allow, a missing subject or task, or no mne-bids.
    """
    if not subject:
        raise BIDSError("subject label: expected one (e.g. '01'), found none")
    if not task:
        raise BIDSError("task label: expected one (e.g. 'ssvep'), found none")
    subject = check_label(subject, "subject")
    task = check_label(task, "task")
    session = check_label(session, "session")
    run = check_run(run)
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise BIDSError(f"BIDS root {root}: expected a folder, found a file")
    mne_bids = import_mne_bids()
    return mne_bids.BIDSPath(subject=subject, session=session, task=task, run=run,
                             datatype=datatype, suffix=datatype, extension=".vhdr",
                             root=root)


def check_new(path: Any, *, overwrite: bool) -> None:
    """Raise :class:`BIDSError` when the recording ``path`` names exists already."""
    fpath = Path(path.fpath)
    if fpath.exists() and not overwrite:
        raise BIDSError(f"{fpath} exists; expected a new BIDS recording (or --overwrite to "
                        "replace it)")


def read_decisions(path: str | Path, *, sync: bool = True) -> Decisions:
    """The decisions of every ``Decisions`` stream of an XDF recording, in time order.

    Channels ``index, p_<class>…`` (the session recording, and the LSL outlet with a
    last ``emitted`` channel) give the label ``classes[index]`` (none when the index is
    -1) and the probabilities; other channels (``out_<i>``) are outputs without a label.
    A last ``emitted`` channel becomes ``latency`` (emitted minus last-sample time; the
    emission time is on the sender's clock and the stamp on the recording's, so a stream
    recorded from another computer adds their clock offset to it).

    Parameters
    ----------
    path : str | Path
        An XDF file.
    sync : bool
        Apply clock offsets and clock-reset handling, as :func:`read_recording` does.

    Returns
    -------
    Decisions
        Empty when the file holds no decision stream.
    """
    import pyxdf

    path = Path(path)
    try:
        streams, _ = pyxdf.load_xdf(_xdf_complete_prefix(path), dejitter_timestamps=False,
                                    synchronize_clocks=sync, handle_clock_resets=sync)
    except Exception as err:  # pyxdf raises many types on corrupt input
        raise BIDSError(f"{path}: expected a readable XDF file, found a corrupt one "
                        f"({type(err).__name__}: {err})") from err
    times, labels, rows, names = [], [], [], []
    for s in streams:
        if _header(s, "type").lower() != DECISIONS_TYPE or not len(s["time_stamps"]):
            continue
        stamps = np.asarray(s["time_stamps"], np.float64)
        values = np.asarray(s["time_series"], np.float64).reshape(len(stamps), -1)
        chans = _channel_labels(s, values.shape[1])
        emitted = chans[-1:] == ["emitted"]
        if emitted:
            latency = values[:, -1] - stamps
            chans, values = chans[:-1], values[:, :-1]
        classes = [c[2:] for c in chans[1:]] if chans[:1] == ["index"] else None
        if classes is not None and all(c.startswith("p_") for c in chans[1:]):
            for i in values[:, 0]:
                k = int(i) if np.isfinite(i) else -1
                labels.append(classes[k] if 0 <= k < len(classes) else None)
            out, out_names = values[:, 1:], chans[1:]
        else:
            labels.extend([None] * len(stamps))
            out, out_names = values, chans
        if emitted:
            out, out_names = np.column_stack([out, latency]), [*out_names, "latency"]
        times.append(stamps)
        rows.append((out, out_names))
        names.extend(n for n in out_names if n not in names)
    if not times:
        return Decisions()
    # streams with other columns: each row fills its own, n/a (NaN) elsewhere
    outputs = np.concatenate([_widen(out, cols, names) for out, cols in rows])
    stamps = np.concatenate(times)
    order = np.argsort(stamps, kind="stable")
    return Decisions(stamps[order], [labels[i] for i in order], outputs[order], names)


def export_bids(source: str | Path | Recording, root: str | Path, *, subject: str,
                task: str, session: str | None = None, run: int | None = None,
                line_freq: float | None = None, datatype: str | None = None,
                decisions: Decisions | None = None, stream: str | None = None,
                events: str | Path | None = None, columns: Any = None,
                overwrite: bool = False) -> BIDSExport:
    """Write a recording, its markers and its decisions as one BIDS-EEG/iEEG recording.

    Parameters
    ----------
    source : str | Path | Recording
        A recording file (see :func:`bci.devices.files.read_recording`) or a recording
        in memory (data of shape (n_channels, n_samples), in volts).
    root : str | Path
        The BIDS root folder (created when missing; other subjects there are kept).
    subject, task : str
        BIDS labels: letters and digits only.
    session : str | None
        BIDS session label, optional.
    run : int | None
        Run index (>= 1), optional.
    line_freq : float | None
        Power-line frequency in Hz for ``PowerLineFrequency`` (default: the file's own,
        else 50).
    datatype : str | None
        ``eeg`` or ``ieeg`` (default: ``ieeg`` when a channel is sEEG, ECoG or DBS).
    decisions : Decisions | None
        Decisions to write as events (default: an XDF file's ``Decisions`` streams;
        none for other sources).
    stream, events, columns
        Passed to :func:`~bci.devices.files.read_recording`: the XDF data stream, an
        events file replacing the recording's markers, a CSV column mapping.
    overwrite : bool
        Replace this subject/session/task/run if it exists; otherwise that is an error.

    Returns
    -------
    BIDSExport

    Raises
    ------
    BIDSError
        mne-bids is not installed, a label is not a BIDS label, the recording exists
        without ``overwrite``, or the channels are not EEG/iEEG (MEG).
    RecordingError
        The recording cannot be read.
    """
    if line_freq is not None and not (np.isfinite(line_freq) and line_freq > 0):
        raise BIDSError(f"line frequency: expected a frequency in Hz > 0 (50, 60), found "
                        f"{line_freq!r}")
    if datatype not in (None, "eeg", "ieeg"):
        raise BIDSError(f"datatype: expected 'eeg' or 'ieeg', found {datatype!r}")
    target = bids_path(root, subject=subject, task=task, session=session, run=run)
    check_new(target, overwrite=overwrite)
    mne_bids = import_mne_bids()

    raw, recording = _load(source, stream=stream, events=events, columns=columns)
    if decisions is None:
        decisions = (read_decisions(source) if isinstance(source, str | Path)
                     and _suffix(Path(source)) in XDF_EXTENSIONS else Decisions())
    types = set(raw.get_channel_types())
    if types & {"mag", "grad", "ref_meg"}:
        raise BIDSError(f"{recording.source or 'recording'}: expected EEG or iEEG channels, "
                        "found MEG channels; write MEG to BIDS as FIF with "
                        "mne_bids.write_raw_bids")
    kind = datatype or ("ieeg" if types & set(IEEG_TYPES) else "eeg")
    target.update(datatype=kind, suffix=kind)
    check_new(target, overwrite=overwrite)
    chosen = line_freq or raw.info["line_freq"] or DEFAULT_LINE_FREQ
    with raw.info._unlock():
        raw.info["line_freq"] = float(chosen)

    annotations, event_id, counts = _events(raw, recording, decisions)
    raw.set_annotations(annotations, verbose="error")
    with warnings.catch_warnings():
        # pybv on non-voltage channels, mne-bids on missing montage / sidecar fields
        warnings.simplefilter("ignore")
        try:
            mne_bids.write_raw_bids(raw, target, format="BrainVision", allow_preload=True,
                                    event_id=event_id or None, overwrite=overwrite,
                                    verbose="error")
        except FileExistsError as err:
            raise BIDSError(f"{err}; expected a new BIDS recording (or --overwrite)") from None
    events_tsv = Path(target.copy().update(suffix="events", extension=".tsv").fpath)
    return BIDSExport(
        path=Path(target.fpath), root=Path(root), datatype=kind,
        n_channels=len(raw.ch_names), n_samples=int(raw.n_times),
        sfreq=float(raw.info["sfreq"]), line_freq=float(chosen), n_markers=counts[0],
        n_decisions=counts[1], n_dropped=counts[2],
        events_tsv=events_tsv if events_tsv.exists() else None)


# --- helpers ----------------------------------------------------------------------------

def _header(s: dict, key: str) -> str:
    value = s["info"].get(key, [""])
    value = value[0] if isinstance(value, list) and value else value
    return "" if value is None else str(value)


def _channel_labels(s: dict, n: int) -> list[str]:
    desc = s["info"].get("desc") or [None]
    labels: list[str] = []
    if isinstance(desc[0], dict):
        for block in desc[0].get("channels") or []:
            if isinstance(block, dict):
                for ch in block.get("channel") or []:
                    label = (ch.get("label") or [""])[0] if isinstance(ch, dict) else ""
                    labels.append(str(label or "").strip())
    if len(labels) != n or not all(labels):
        return [f"out_{i}" for i in range(n)]
    return labels


def _widen(out: np.ndarray, cols: list[str], names: list[str]) -> np.ndarray:
    wide = np.full((out.shape[0], len(names)), np.nan)
    for j, name in enumerate(cols):
        wide[:, names.index(name)] = out[:, j]
    return wide


def _load(source: str | Path | Recording, *, stream: str | None,
          events: str | Path | None, columns: Any) -> tuple[mne.io.BaseRaw, Recording]:
    """The data as a preloaded Raw (annotations cleared but segments), and the recording.

    Files MNE reads keep every channel (stim channels included) and their measurement
    info; the others become a Raw of the recording's data and channels.
    """
    if isinstance(source, Recording):
        recording = source
    else:
        recording = read_recording(source, stream=stream, events=events, columns=columns)
    if not isinstance(source, Recording) and _suffix(Path(source)) in MNE_EXTENSIONS:
        read = _read_raw_checked(Path(source))
        segments = read.annotations
        keep = np.flatnonzero([d.lower().startswith(_SEGMENT_PREFIXES)
                               for d in segments.description])
        # raw.annotations count from meas_date (time 0 without one), as raw.first_time
        shift = 0.0
        if segments.orig_time is not None and read.info["meas_date"] is not None:
            shift = (segments.orig_time - read.info["meas_date"]).total_seconds()
        onsets = segments.onset[keep] + shift - read.first_time
        # BrainVision starts at sample 0: the first sample's time becomes meas_date
        info = read.info.copy()
        if info["meas_date"] is not None and read.first_samp:
            with info._unlock():
                info["meas_date"] += datetime.timedelta(seconds=read.first_time)
        raw = mne.io.RawArray(read.get_data(), info, verbose="error")
        raw.set_annotations(mne.Annotations(onsets, segments.duration[keep],
                                            segments.description[keep]), verbose="error")
        return raw, recording
    raw = mne.io.RawArray(recording.data.astype(np.float64), recording.info.copy(),
                          verbose="error")
    return raw, recording


def _positions(times: np.ndarray, timestamps: np.ndarray, sfreq: float) -> np.ndarray:
    """Fractional sample positions of ``times`` on the data's sample times (NaN outside)."""
    if timestamps.size == 0:
        return np.full(times.shape, np.nan)
    half = 0.5 / sfreq
    pos = np.interp(times, timestamps, np.arange(timestamps.size, dtype=np.float64))
    outside = (times < timestamps[0] - half) | (times > timestamps[-1] + half)
    pos[outside] = np.nan
    return pos


def _clean(text: str) -> str:
    """A value fit for one TSV cell."""
    return re.sub(r"[\t\r\n]+", " ", text).strip()


def _events(raw: mne.io.BaseRaw, recording: Recording, decisions: Decisions
            ) -> tuple[mne.Annotations, dict[str, int], tuple[int, int, int]]:
    """Annotations of markers and decisions (and the raw's segments), their codes, and
    the counts of markers and decisions written and of those dropped."""
    sfreq = float(raw.info["sfreq"])
    stamps = np.asarray(recording.timestamps, np.float64)
    rows: list[tuple[float, str, dict]] = []
    dropped = 0
    pos = _positions(np.asarray(recording.markers.timestamps, np.float64), stamps, sfreq)
    n_markers = 0
    for p, value in zip(pos, recording.markers.values, strict=True):
        text = _clean(str(value))
        if np.isnan(p) or not text:
            dropped += 1
            continue
        rows.append((p / sfreq, text, {}))
        n_markers += 1
    pos = _positions(np.asarray(decisions.timestamps, np.float64), stamps, sfreq)
    n_decisions = 0
    for i, p in enumerate(pos):
        if np.isnan(p):
            dropped += 1
            continue
        label = decisions.labels[i]
        text = DECISION_PREFIX if label is None else f"{DECISION_PREFIX}/{_clean(label)}"
        extras = {name: (float(v) if np.isfinite(v) else "n/a")
                  for name, v in zip(decisions.output_names, decisions.outputs[i],
                                     strict=True)}
        rows.append((p / sfreq, text, extras))
        n_decisions += 1
    if dropped:
        logger.warning("%s: %d marker(s)/decision(s) outside the data left out of "
                       "events.tsv", recording.source or "recording", dropped)
    rows.sort(key=lambda r: r[0])
    onsets = [r[0] for r in rows]
    descriptions = [r[1] for r in rows]
    annotations = mne.Annotations(onsets, [0.0] * len(rows), descriptions)
    if any(r[2] for r in rows):
        names = list(dict.fromkeys(k for r in rows for k in r[2]))
        try:  # MNE >= 1.10; mne-bids writes extras as columns of events.tsv
            annotations = mne.Annotations(
                onsets, [0.0] * len(rows), descriptions,
                extras=[{k: r[2].get(k, "n/a") for k in names} for r in rows])
        except TypeError:
            logger.warning("MNE %s has no annotation extras: the decisions' %s columns "
                           "are left out of events.tsv (MNE >= 1.10 writes them)",
                           mne.__version__, ", ".join(names))
    segments = raw.annotations  # the file's own segments (BAD_…), from sample 0
    if len(segments):
        annotations += mne.Annotations(segments.onset - raw.first_time, segments.duration,
                                       segments.description)
    return annotations, _codes(list(annotations.description)), (n_markers, n_decisions,
                                                                  dropped)


def _codes(descriptions: list[str]) -> dict[str, int]:
    """Event codes: integer markers keep their own, the rest count on from the highest."""
    codes: dict[str, int] = {}
    for d in descriptions:
        if re.fullmatch(r"\d{1,9}", d):
            codes[d] = int(d)
    taken = set(codes.values())
    nxt = max(taken, default=0) + 1
    for d in sorted(set(descriptions) - set(codes)):
        while nxt in taken:
            nxt += 1
        codes[d] = nxt
        taken.add(nxt)
    return codes
