"""Read a recorded file into a :class:`~bci.recording.Recording`.

Two families of files are read:

- Anything MNE reads with :func:`mne.io.read_raw` (FIF, EDF/BDF, GDF, BrainVision
  ``.vhdr``, EEGLAB ``.set``, Neuroscan ``.cnt``). Data timestamps are the recording's
  sample times, ``(first_samp + arange(n_samples)) / sfreq``. Events come from, in order:

  1. an explicit ``events=`` file (an MNE events file, ``mne.read_events``, or an
     annotations file, ``mne.read_annotations``);
  2. a companion events file in MNE's naming beside the recording: for ``X_raw.fif``
     (or ``X-raw.fif``, ``X.edf``, ...) the first of ``X-eve.fif``, ``X_eve.fif``,
     ``X_raw-eve.fif``, ``X_raw_eve.fif`` that exists;
  3. the file's annotations, ignoring the segment annotations ``BAD*``, ``EDGE*``,
     ``boundary`` and BrainVision's ``New Segment/``;
  4. the stim channels (:func:`mne.find_events` with ``shortest_event=1`` and
     ``consecutive=True``, so a step from one code to another is an event too).

  Stim channels never reach the data: they are dropped whichever source gave the events.
  Event codes become their decimal string, annotation descriptions are kept as they are,
  and every marker is placed on the sample nearest its onset (markers outside the data
  are dropped, with a warning, as :func:`mne.events_from_annotations` does).

  An EDF/BDF file cut short (a recorder killed mid-record) is read up to its last
  complete data record, with a warning stating the seconds lost; a FIF file cut short is
  read up to its last complete data buffer. Epoched EEGLAB files and MATLAB v7.3
  (HDF5) ``.set`` files are refused with an error saying so.

- XDF (``.xdf``, ``.xdfz``, ``.xdf.gz``) read with :func:`pyxdf.load_xdf` as LabRecorder
  users expect: clock offsets applied (streams recorded from other computers land on the
  recording computer's clock) and clock resets handled, without dejittering
  (``sync=False`` keeps the raw stamps). The runtime's own recorder writes stamps that
  are already time-corrected and no clock offsets, so synchronisation leaves them
  exactly as recorded. A file cut short by a killed recorder (no footers, a last chunk
  cut in half) is read up to its last complete chunk. See :func:`read_recording` for
  how streams are chosen.

- CSV/TSV (``.csv``, ``.tsv``, ``.txt``) with an explicit column mapping, see
  :mod:`bci.devices.csv_reader`.

Data that contain NaN or Inf are returned as they are (the runtime flags such samples);
the reader logs a warning with their count.
"""

from __future__ import annotations

import io
import logging
import math
import re
import warnings
from pathlib import Path

import mne
import numpy as np
from bci.devices.csv_reader import CSV_EXTENSIONS, ColumnMap, read_csv
from bci.devices.units import volt_factor

from bci.chunk import Markers
from bci.errors import RecordingError
from bci.recording import RecordedWindows, Recording

logger = logging.getLogger(__name__)

MNE_EXTENSIONS = (".fif", ".fif.gz", ".edf", ".bdf", ".gdf", ".vhdr", ".set", ".cnt")
XDF_EXTENSIONS = (".xdf", ".xdfz", ".xdf.gz")
SUPPORTED_EXTENSIONS = MNE_EXTENSIONS + XDF_EXTENSIONS + CSV_EXTENSIONS
"""File name endings :func:`read_recording` accepts."""

# Annotations that mark segments of the recording rather than events in the experiment.
_SEGMENT_PREFIXES = ("bad", "edge", "boundary", "new segment/")

# The stream type the runtime gives its decision outlet; never data, never markers.
DECISIONS_TYPE = "decisions"
# The stream in which a session recording keeps its sliding windows' ends; neither either.
WINDOWS_TYPE = "Windows"
_NOT_MARKERS = (DECISIONS_TYPE, WINDOWS_TYPE.lower())


def read_recording(path: str | Path, *, stream: str | None = None,
                   stream_type: str | None = None, markers: str | None = None,
                   sync: bool = True, events: str | Path | None = None,
                   columns: ColumnMap | dict | str | Path | None = None) -> Recording:
    """Read a recording file: data, channel metadata, timestamps and markers.

    Parameters
    ----------
    path : str | Path
        The file; its ending picks the reader (see :data:`SUPPORTED_EXTENSIONS`).
    stream : str | None
        XDF only: the name, else the type, of the data stream. By default the numeric
        stream with samples, a regular rate and the most channels whose type is not
        ``"Decisions"``; empty streams are never chosen.
    stream_type : str | None
        XDF only: the type of the data stream (case-insensitive), alone or narrowing
        ``stream``.
    markers : str | None
        XDF only: the name, else the type, of the one marker stream to use (default:
        every marker stream, merged).
    sync : bool
        XDF only: apply the file's clock offsets and handle clock resets (pyxdf's
        synchronisation, as LabRecorder files need); ``False`` keeps the raw stamps.
    events : str | Path | None
        An events file that replaces the markers found in the recording: an MNE events
        file (sample numbers as MNE counts them, ``first_samp`` included; for XDF,
        indices into the data stream) or an annotations file (onsets in seconds; for
        XDF, from the first data sample).
    columns : ColumnMap | dict | str | Path | None
        CSV/TSV only, and required there: the column mapping, or a TOML file holding it
        (see :class:`bci.devices.csv_reader.ColumnMap`).

    Returns
    -------
    Recording
        ``data`` float32 of shape (n_channels, n_samples) in volts, ``timestamps``
        float64 of shape (n_samples,), ``markers`` on the same time base.

    Raises
    ------
    RecordingError
        The file is missing, has an unsupported ending, is corrupt or cut short beyond
        salvage, holds epoched data, has no numeric stream with samples (XDF), the
        requested stream is not in it, or a CSV column mapping does not fit the file.

    Notes
    -----
    XDF markers are the samples of every string stream and every irregular-rate
    numeric stream (other than ``"Decisions"`` streams), merged in time order, with
    their recorded timestamps. A marker sample with several channels contributes its
    first channel (the LSL convention for marker streams); numeric values become
    their decimal string (``"3"``, ``"0.5"``).

    XDF channel labels and types come from ``desc/channels/channel/{label,type,unit}``
    (default labels ``Ch1``…, default type ``eeg``, types MNE does not know become
    ``misc``). Channels whose unit is a voltage are scaled to volts; float32 data in
    volts, or without a unit, are returned exactly as stored.
    """
    path = Path(path)
    if not path.exists():
        raise RecordingError(f"{path}: no such file (expected a recording file)")
    if not path.is_file():
        raise RecordingError(f"{path}: expected a recording file, found a directory")
    suffix = _suffix(path)
    if suffix in XDF_EXTENSIONS:
        return _read_xdf(path, stream=stream, stream_type=stream_type, markers=markers,
                         sync=sync, events=events)
    for key, value in (("stream", stream), ("stream_type", stream_type),
                       ("markers", markers)):
        if value is not None:
            logger.warning("%s: %s=%r ignored, it applies to XDF files only", path, key,
                           value)
    if suffix in CSV_EXTENSIONS:
        if columns is None:
            raise RecordingError(
                f"{path}: a {suffix} file needs a column mapping (expected columns= or "
                "--columns MAP.toml naming the channel columns), found none")
        recording = read_csv(path, columns)
        if events is not None:
            recording.markers = _timestamp_events_file(Path(events), recording.timestamps)
        return recording
    if suffix in MNE_EXTENSIONS:
        return _read_mne(path, events=events)
    raise RecordingError(
        f"{path}: unsupported file type {suffix or '(no extension)'!r}; expected one of "
        f"{', '.join(SUPPORTED_EXTENSIONS)}")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for ext in sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    return path.suffix.lower()


# --------------------------------------------------------------------------- MNE formats

def _read_mne(path: Path, *, events: str | Path | None) -> Recording:
    raw = _read_raw_checked(path)
    sfreq = float(raw.info["sfreq"])
    first_samp = int(raw.first_samp)
    n_samples = int(raw.n_times)
    stim = [raw.ch_names[i] for i in mne.pick_types(raw.info, meg=False, stim=True)]

    if events is not None:
        samples, values = _read_events_file(Path(events), raw)
        origin = f"events file {events}"
    elif (companion := _companion_events(path)) is not None:
        samples, values = _read_events_file(companion, raw)
        origin = f"events file {companion}"
    else:
        samples, values = _annotation_events(raw)
        origin = "annotations"
        if not values and stim:
            found = mne.find_events(raw, stim_channel=stim, shortest_event=1,
                                    consecutive=True, verbose="error")
            samples, values = found[:, 0], [str(int(code)) for code in found[:, 2]]
            origin = f"stim channel(s) {', '.join(stim)}"

    samples = np.asarray(samples, dtype=np.int64)
    inside = (samples >= first_samp) & (samples < first_samp + n_samples)
    if not inside.all():
        logger.warning("%s: %d marker(s) from %s lie outside the data and were dropped",
                       path, int((~inside).sum()), origin)
    order = np.argsort(samples[inside], kind="stable")
    samples = samples[inside][order]
    values = [v for v, keep in zip(values, inside, strict=True) if keep]
    values = [values[i] for i in order]
    logger.info("%s: %d marker(s) from %s", path, len(values), origin)

    if stim:
        raw.drop_channels(stim)
    if not raw.ch_names:
        raise RecordingError(f"{path}: expected data channels, found only stim channels "
                             f"({', '.join(stim)})")
    data = raw.get_data().astype(np.float32)
    _report_nonfinite(path, data)
    timestamps = (first_samp + np.arange(n_samples)) / sfreq
    markers = Markers(samples / sfreq, values)
    return Recording(raw.info, data, timestamps, markers, str(path))


def _read_raw_checked(path: Path) -> mne.io.BaseRaw:
    """Read with MNE, salvaging files cut short and naming what cannot be read."""
    suffix = _suffix(path)
    if suffix == ".set":
        _check_eeglab(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if suffix in (".fif", ".fif.gz"):
                raw = _read_fif_salvaged(path)
            else:
                raw = mne.io.read_raw(path, preload=True, verbose="warning")
        except RecordingError:
            raise
        except Exception as err:  # MNE raises many types on corrupt input
            raise _named_load_error(path, err) from err
    for warning in caught:
        message = str(warning.message)
        if "Invalid tag" in message:
            continue  # a FIF cut short: _read_fif_salvaged said what it kept
        if "Number of records from the header does not match" in message:
            _report_edf_salvage(path, raw)
            continue
        logger.warning("%s: %s", path, message)
    if raw.n_times == 0:
        raise RecordingError(f"{path}: expected samples, found none (the file may be cut "
                             "short before its first complete data record)")
    return raw


def _named_load_error(path: Path, err: Exception) -> RecordingError:
    message = str(err)
    trials = re.search(r"number of trials is (\d+)", message)
    if trials:
        return RecordingError(
            f"{path}: holds epoched data ({trials.group(1)} epochs); the runtime replays "
            "continuous recordings — export continuous data from EEGLAB (or read it "
            "with mne.read_epochs_eeglab for offline analysis)")
    return RecordingError(
        f"{path}: expected a readable {_suffix(path)} recording, found a truncated "
        f"or corrupt file ({type(err).__name__}: {message})")


_MATLAB_73 = b"MATLAB 7.3 MAT-file"


def _check_eeglab(path: Path) -> None:
    """Refuse, by name, the EEGLAB files MNE cannot read as continuous data."""
    with path.open("rb") as f:
        head = f.read(128)
    if head.startswith(_MATLAB_73):
        raise RecordingError(
            f"{path}: expected an EEGLAB .set saved as MATLAB v7 or older, found a MATLAB "
            "v7.3 (HDF5) file; save it from EEGLAB as v7 (pop_editoptions "
            "'option_savetwofiles', or save(..., '-v7')), or export it to EDF/FIF/"
            "BrainVision first")


def _report_edf_salvage(path: Path, raw: mne.io.BaseRaw) -> None:
    """Warn how much of an EDF/BDF cut short was lost (MNE read its complete records)."""
    declared, duration = _edf_record_header(path)
    if declared == -1 or declared is None or duration is None:
        # -1 is the EDF way of saying "recording not closed": read what is there.
        logger.warning("%s: header has no record count (recording not closed); read "
                       "the %.3f s of complete data records present", path,
                       raw.n_times / raw.info["sfreq"])
        return
    kept = raw.n_times / raw.info["sfreq"]
    lost = declared * duration - kept
    if lost < 0:
        raise RecordingError(
            f"{path}: expected the {declared} data records its header declares, found "
            "more bytes than they fill (corrupt header or file)")
    logger.warning("%s: file cut short: read %.3f s (its complete data records), "
                   "%.3f s of the %d records its header declares are lost", path, kept,
                   lost, declared)


def _edf_record_header(path: Path) -> tuple[int | None, float | None]:
    """An EDF/BDF header's record count (bytes 236-244) and record duration (244-252)."""
    with path.open("rb") as f:
        header = f.read(252)
    try:
        declared = int(header[236:244].decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        declared = None
    try:
        duration = float(header[244:252].decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        duration = None
    return declared, duration


def _read_fif_salvaged(path: Path) -> mne.io.BaseRaw:
    """A FIF raw file, read up to its last complete data buffer when cut short."""
    raw = mne.io.read_raw_fif(path, preload=False, on_split_missing="warn",
                              verbose="warning")
    size = path.stat().st_size if _suffix(path) == ".fif" else None
    if size is not None and len(raw._raw_extras) == 1:
        extras = raw._raw_extras[0]
        # a tag is a 16-byte header and its data; a buffer whose data end past the end
        # of the file was cut
        complete = 0
        for ent in extras["ent"]:
            if ent is not None and ent.pos + 16 + ent.size > size:
                break
            complete += 1
        n_kept = int(extras["bounds"][complete])
        if complete < len(extras["ent"]):
            if n_kept == 0:
                raise RecordingError(
                    f"{path}: expected a complete FIF file, found a truncated one "
                    f"({size} bytes) without a single complete data buffer")
            sfreq = raw.info["sfreq"]
            # without its directory, a cut FIF does not say how long it was
            logger.warning("%s: FIF file cut short (%d bytes): read %.3f s up to its last "
                           "complete data buffer; what followed is lost", path, size,
                           n_kept / sfreq)
            raw.crop(tmax=raw.times[n_kept - 1], include_tmax=True)
    raw.load_data(verbose="error")
    return raw


def _companion_events(path: Path) -> Path | None:
    name = path.name
    for ext in (".fif.gz", ".fif"):
        if name.lower().endswith(ext):
            base = name[: -len(ext)]
            break
    else:
        base = name[: -len(_suffix(path))] if _suffix(path) else path.stem
    bases = [base]
    for tag in ("_raw", "-raw"):
        if base.endswith(tag):
            bases.insert(0, base[: -len(tag)])
    for b in bases:
        for sep in ("-", "_"):
            for ext in (".fif", ".fif.gz"):
                candidate = path.with_name(f"{b}{sep}eve{ext}")
                if candidate.is_file():
                    return candidate
    return None


def _events_or_annotations(path: Path) -> tuple[np.ndarray | None, mne.Annotations | None]:
    """An MNE events file's array, or else an annotations file's annotations."""
    if not path.is_file():
        raise RecordingError(f"{path}: no such events file (expected an MNE events or "
                             "annotations file)")
    try:
        return mne.read_events(path, verbose="error"), None
    except Exception as events_err:
        try:
            return None, mne.read_annotations(path)
        except Exception as annot_err:
            raise RecordingError(
                f"{path}: expected an MNE events file or an annotations file, found "
                f"neither ({events_err}; {annot_err})") from annot_err


def _read_events_file(path: Path, raw: mne.io.BaseRaw) -> tuple[np.ndarray, list[str]]:
    """Absolute sample numbers and values from an MNE events or annotations file."""
    found, annotations = _events_or_annotations(path)
    if found is None:
        if annotations.orig_time is not None and raw.info["meas_date"] is None:
            annotations = mne.Annotations(annotations.onset, annotations.duration,
                                          annotations.description)
        raw.set_annotations(annotations, verbose="error")
        return _annotation_events(raw)
    return found[:, 0], [str(int(code)) for code in found[:, 2]]


def _annotation_events(raw: mne.io.BaseRaw) -> tuple[np.ndarray, list[str]]:
    """Absolute sample numbers (nearest sample) and descriptions of event annotations."""
    annotations = raw.annotations
    keep = [not d.lower().startswith(_SEGMENT_PREFIXES) for d in annotations.description]
    onsets = annotations.onset[keep]
    descriptions = [str(d) for d, k in zip(annotations.description, keep, strict=True) if k]
    # raw.annotations count seconds from meas_date (from the start of time 0 when there
    # is none), on the same axis as raw.first_time.
    shift = 0.0
    if annotations.orig_time is not None and raw.info["meas_date"] is not None:
        shift = (annotations.orig_time - raw.info["meas_date"]).total_seconds()
    sfreq = float(raw.info["sfreq"])
    relative = np.round((onsets + shift - raw.first_time) * sfreq).astype(np.int64)
    return relative + raw.first_samp, descriptions


def _report_nonfinite(path: Path, data: np.ndarray) -> None:
    bad = ~np.isfinite(data).all(axis=0)
    if bad.any():
        logger.warning("%s: %d of %d samples contain NaN or Inf (kept as recorded)",
                       path, int(bad.sum()), data.shape[1])


# ------------------------------------------------------------------------------- XDF

def _read_xdf(path: Path, *, stream: str | None, stream_type: str | None,
              markers: str | None, sync: bool, events: str | Path | None) -> Recording:
    import pyxdf

    source = _xdf_complete_prefix(path)
    try:
        streams, _ = pyxdf.load_xdf(source, dejitter_timestamps=False,
                                    synchronize_clocks=sync, handle_clock_resets=sync)
    except Exception as err:  # pyxdf raises many types on corrupt input
        raise RecordingError(f"{path}: expected a readable XDF file, found a corrupt one "
                             f"({type(err).__name__}: {err})") from err
    if not streams:
        raise RecordingError(f"{path}: expected at least one stream, found none")

    chosen = _choose_xdf_stream(path, streams, stream, stream_type)
    values = chosen["time_series"]
    timestamps = np.asarray(chosen["time_stamps"], dtype=np.float64)
    info, scale = _xdf_info(chosen)
    data = np.ascontiguousarray(values.T)
    if scale is not None:
        data = data.astype(np.float64) * scale[:, None]
    data = data.astype(np.float32, copy=False)
    _report_nonfinite(path, data)

    if events is not None:
        found = _timestamp_events_file(Path(events), timestamps)
        origin = f"events file {events}"
    else:
        marker_streams = _xdf_marker_streams(path, streams, chosen, markers)
        found = _xdf_markers(marker_streams)
        origin = ", ".join(repr(_header(s, "name")) for s in marker_streams) or "none"
    clock = "synchronised clocks" if sync else "raw stamps (no clock sync)"
    note = (f"using stream {_stream_label(chosen)}; {len(found)} marker(s) from {origin}; "
            f"{clock}")
    windows = _xdf_windows(streams, chosen, timestamps)
    if windows is not None:
        note += f"; {windows.stops.size} recorded window end(s) ({windows.align})"
    logger.info("%s: %s", path, note)
    return Recording(info, data, timestamps, found, str(path), note=note, windows=windows)


def _xdf_windows(streams: list[dict], data_stream: dict,
                 timestamps: np.ndarray) -> RecordedWindows | None:
    """The sliding windows' ends a session recording kept beside its data stream.

    Only a stop whose stamp is the data's sample just before it is kept (a file edited
    or cut since cannot move a window onto other samples).
    """
    name = f"{_header(data_stream, 'name')}-windows"
    found = [s for s in streams if _header(s, "type") == WINDOWS_TYPE
             and _header(s, "name") == name and not _is_empty(s)]
    if not found:
        return None
    s = found[0]
    try:
        window = s["info"]["desc"][0]["window"][0]
        length, step = float(window["length"][0]), float(window["step"][0])
        align = str(window["align"][0])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    stops = np.asarray(s["time_series"], np.float64).reshape(-1)
    stamps = np.asarray(s["time_stamps"], np.float64)
    ok = np.isfinite(stops) & (stops >= 1) & (stops <= timestamps.shape[0])
    stops, stamps = stops[ok].astype(np.int64), stamps[ok]
    keep = timestamps[stops - 1] == stamps
    return RecordedWindows(stops[keep], length, step, align)


def _xdf_complete_prefix(path: Path) -> Path | io.BytesIO:
    """The file, or its complete chunks only when the last chunk was cut short.

    pyxdf reads a partly written numeric chunk without noticing, so a recording cut by
    a killed recorder would end in samples of stale bytes; stopping at the last whole
    chunk avoids that.
    """
    import gzip

    opener = gzip.open if _suffix(path) in (".xdfz", ".xdf.gz") else open
    try:
        with opener(path, "rb") as f:
            if f.read(4) != b"XDF:":
                raise RecordingError(f"{path}: expected an XDF file (starting 'XDF:'), "
                                     "found other content")
            end = 4
            while True:
                width = f.read(1)
                if not width:
                    return path
                if width[0] not in (1, 4, 8):
                    return path  # corrupt length: let pyxdf scan for a boundary chunk
                raw_length = f.read(width[0])
                if len(raw_length) < width[0]:
                    break
                length = int.from_bytes(raw_length, "little")
                content = f.read(length)
                if len(content) < length:
                    break
                end = f.tell()
            f.seek(0)
            complete = f.read(end)
    except (OSError, EOFError) as err:
        raise RecordingError(f"{path}: expected a readable XDF file, found a corrupt one "
                             f"({err})") from err
    logger.warning("%s: last chunk is incomplete (recording cut short); reading the "
                   "%d complete bytes", path, end)
    return io.BytesIO(complete)


def _header(s: dict, key: str, default: str = "") -> str:
    value = s["info"].get(key, [default])
    value = value[0] if isinstance(value, list) and value else value
    return default if value is None else str(value)


def _stream_label(s: dict) -> str:
    n = len(s["time_stamps"])
    return (f"{_header(s, 'name')!r} (type {_header(s, 'type')!r}, "
            f"{_header(s, 'channel_count')} ch {_header(s, 'channel_format')}, "
            f"{_rate(s):g} Hz, {n} sample{'' if n == 1 else 's'})")


def _is_numeric(s: dict) -> bool:
    return _header(s, "channel_format") != "string"


def _rate(s: dict) -> float:
    try:
        return float(_header(s, "nominal_srate", "0"))
    except ValueError:
        return 0.0


def _is_data(s: dict) -> bool:
    return _is_numeric(s) and _rate(s) > 0


def _is_empty(s: dict) -> bool:
    return len(s["time_stamps"]) == 0


def _named(streams: list[dict], wanted: str) -> list[dict]:
    """Streams named ``wanted``, else those of that type (case-insensitive)."""
    return ([s for s in streams if _header(s, "name") == wanted]
            or [s for s in streams if _header(s, "type").lower() == wanted.lower()])


def _choose_xdf_stream(path: Path, streams: list[dict], wanted: str | None,
                       wanted_type: str | None) -> dict:
    found = "; ".join(_stream_label(s) for s in streams)
    matches = streams
    asked = []
    if wanted is not None:
        matches = _named(matches, wanted)
        asked.append(f"named or typed {wanted!r}")
    if wanted_type is not None:
        matches = [s for s in matches if _header(s, "type").lower() == wanted_type.lower()]
        asked.append(f"of type {wanted_type!r}")
    what = f"a stream {' and '.join(asked)}" if asked else "a data stream"
    if not matches:
        raise RecordingError(f"{path}: expected {what}, found {found}")
    if not asked:
        matches = [s for s in matches if _header(s, "type").lower() not in _NOT_MARKERS]
    numeric = [s for s in matches if _is_numeric(s)]
    if asked and not numeric:
        raise RecordingError(f"{path}: expected {what} holding numeric data, found "
                             f"{'; '.join(_stream_label(s) for s in matches)}")
    regular = [s for s in numeric if _rate(s) > 0]
    if not regular:
        raise RecordingError(f"{path}: expected {what} with numeric samples at a regular "
                             f"sampling rate, found {found}")
    filled = [s for s in regular if not _is_empty(s)]
    if not filled:
        raise RecordingError(f"{path}: expected {what} holding samples, found only empty "
                             f"ones: {'; '.join(_stream_label(s) for s in regular)}")
    skipped = [s for s in regular if _is_empty(s)]
    if skipped:
        logger.info("%s: skipped empty stream(s) %s", path,
                    ", ".join(repr(_header(s, "name")) for s in skipped))
    # max() keeps the first of equals: the earliest stream in the file wins ties.
    return max(filled, key=lambda s: int(_header(s, "channel_count", "0")))


def _xdf_marker_streams(path: Path, streams: list[dict], data_stream: dict,
                        wanted: str | None) -> list[dict]:
    """The marker streams: every string or irregular stream, or the one asked for."""
    candidates = [s for s in streams if s is not data_stream and not _is_data(s)
                  and _header(s, "type").lower() not in _NOT_MARKERS]
    if wanted is None:
        return [s for s in candidates if not _is_empty(s)]
    matches = _named(candidates, wanted)
    if not matches:
        raise RecordingError(
            f"{path}: expected a marker stream named or typed {wanted!r}, found "
            f"{'; '.join(_stream_label(s) for s in candidates) or 'no marker stream'}")
    return matches


def _xdf_info(s: dict) -> tuple[mne.Info, np.ndarray | None]:
    """mne.Info from the stream header, and per-channel factors to volts (None: none)."""
    n_channels = int(_header(s, "channel_count", "0"))
    channels: list[dict] = []
    desc = s["info"].get("desc") or [None]
    if isinstance(desc[0], dict):
        for block in desc[0].get("channels") or []:
            if isinstance(block, dict):
                channels.extend(c for c in block.get("channel") or [] if isinstance(c, dict))
    if channels and len(channels) != n_channels:
        logger.warning("stream %s: header describes %d channels for channel_count %d; "
                       "ignoring the descriptions", _stream_label(s), len(channels),
                       n_channels)
        channels = []

    def field(ch: dict, key: str) -> str:
        value = (ch.get(key) or [""])[0]
        return "" if value is None else str(value).strip()

    known = set(mne.io.get_channel_type_constants())
    names, types, factors = [], [], []
    for i in range(n_channels):
        ch = channels[i] if channels else {}
        names.append(field(ch, "label") or f"Ch{i + 1}")
        kind = field(ch, "type").lower() or "eeg"
        types.append(kind if kind in known else "misc")
        factors.append(volt_factor(field(ch, "unit")))
    info = mne.create_info(_unique(names), _rate(s), types)
    scale = None
    if any(f != 1.0 for f in factors):
        scale = np.asarray(factors)
    return info, scale


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            new = f"{name}-{seen[name]}"
            logger.warning("duplicate channel label %r renamed %r", name, new)
            out.append(new)
        else:
            seen[name] = 0
            out.append(name)
    return out


def _marker_value(value: object) -> str:
    if isinstance(value, str):
        return value
    number = float(value)
    if math.isfinite(number) and number.is_integer():
        return str(int(number))
    # str() of a numpy scalar is the shortest text that reads back to it in its own
    # precision ("0.1" for float32 0.1, not "0.10000000149011612").
    return str(value)


def _xdf_markers(streams: list[dict]) -> Markers:
    """The samples of ``streams`` merged in time order (first channel of each)."""
    times: list[np.ndarray] = []
    values: list[str] = []
    for s in streams:
        stamps = np.asarray(s["time_stamps"], dtype=np.float64)
        series = s["time_series"]
        times.append(stamps)
        values.extend(_marker_value(sample[0]) if len(sample) else "" for sample in series)
    if not times:
        return Markers()
    stamps = np.concatenate(times)
    order = np.argsort(stamps, kind="stable")
    return Markers(stamps[order], [values[i] for i in order])


def _timestamp_events_file(path: Path, timestamps: np.ndarray) -> Markers:
    found, annotations = _events_or_annotations(path)
    if found is None:
        return Markers(timestamps[0] + np.asarray(annotations.onset, dtype=np.float64),
                       [str(d) for d in annotations.description])
    index = found[:, 0]
    inside = (index >= 0) & (index < timestamps.shape[0])
    if not inside.all():
        logger.warning("%s: %d event(s) outside the data were dropped", path,
                       int((~inside).sum()))
    return Markers(timestamps[index[inside]], [str(int(c)) for c in found[inside, 2]])
