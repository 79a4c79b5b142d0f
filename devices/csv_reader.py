"""Read a CSV/TSV export (OpenBCI GUI, Muse, vendors' text files) with a column mapping.

Text exports have no standard layout, so nothing is guessed: a :class:`ColumnMap` says
which columns hold the channels, the timestamps and the markers, and in which unit the
values are. It comes from keyword arguments or a small TOML file, e.g. for an OpenBCI
GUI export (header lines starting with ``%``, then ``Sample Index, EXG Channel 0, …,
Timestamp``)::

    channels = ["EXG Channel *"]   # names, 0-based indices, or glob patterns
    time = "Timestamp"             # omit it and give sfreq instead
    unit = "uV"                    # V, mV, uV or nV
    sfreq = 250                    # checked against the timestamps when both are given
    ch_names = ["O1", "Oz", "O2", "Pz", "PO3", "PO4", "PO7", "PO8"]

A Muse export (Mind Monitor: ``TimeStamp`` as a date and time, ``RAW_TP9`` …,
``Elements`` holding markers on rows of their own)::

    channels = ["RAW_*"]
    time = "TimeStamp"
    time_unit = "datetime"
    marker = "Elements"
    unit = "uV"

Rows whose channel cells are all empty carry no sample; a marker on such a row keeps its
own timestamp.
"""

from __future__ import annotations

import csv
import datetime
import fnmatch
import logging
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import mne
import numpy as np

from bci.chunk import Markers
from bci.errors import RecordingError
from bci.recording import Recording

logger = logging.getLogger(__name__)

CSV_EXTENSIONS = (".csv", ".tsv", ".txt")
"""File name endings read as delimited text."""

UNITS = {"V": 1.0, "mV": 1e-3, "uV": 1e-6, "µV": 1e-6, "nV": 1e-9}
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "datetime": 1.0}
_DELIMITERS = (",", "\t", ";", " ")
# Tolerated mismatch between a stated sampling rate and the one the timestamps show.
_SFREQ_TOLERANCE = 0.01
# Sample-to-sample changes above this many volts are not EEG: the unit must be wrong.
_IMPLAUSIBLE_VOLTS = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnMap:
    """Which columns of a text export hold what.

    Parameters
    ----------
    channels : sequence of str | int
        Channel columns: header names, 0-based column indices, or glob patterns
        (``"EXG Channel *"``) matching header names in file order.
    unit : str
        Unit of the channel values: ``V``, ``mV``, ``uV`` (``µV``) or ``nV``.
    time : str | int | None
        Timestamp column; ``None``: samples are ``1 / sfreq`` apart from 0.
    time_unit : str
        ``s``, ``ms``, ``us``, or ``datetime`` (ISO 8601 text, e.g. ``2024-05-01
        12:00:00.004``; becomes POSIX seconds).
    sfreq : float | None
        Sampling rate in Hz; required without a time column, otherwise checked against
        the median step of the timestamps (1 %) and measured when omitted.
    marker : str | int | None
        Marker column: cells that are neither empty nor zero become markers.
    ch_names : sequence of str | None
        Channel names (default: the column headers).
    ch_types : str | sequence of str
        MNE channel types (default ``"eeg"``).
    delimiter : str | None
        ``","``, ``"\\t"``, ``";"`` or ``" "`` (any run of blanks); ``None`` guesses from
        the first data line (tab for ``.tsv``).
    skip_rows : int
        Lines to skip at the top before the header (or the data when ``header`` is false).
    comment : str
        Lines starting with this are skipped (OpenBCI's ``%`` header lines).
    header : bool
        The first line kept holds column names; without one, name columns by index.
    """

    channels: Sequence[str | int]
    unit: str
    time: str | int | None = None
    time_unit: str = "s"
    sfreq: float | None = None
    marker: str | int | None = None
    ch_names: Sequence[str] | None = None
    ch_types: str | Sequence[str] = "eeg"
    delimiter: str | None = None
    skip_rows: int = 0
    comment: str = "%"
    header: bool = True

    @classmethod
    def from_mapping(cls, mapping: Mapping, *, where: str = "column mapping") -> ColumnMap:
        """Build from a dict (a parsed TOML table), naming unknown or missing keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise RecordingError(f"{where}: unknown key(s) {', '.join(unknown)}; expected "
                                 f"some of {', '.join(sorted(known))}")
        missing = [k for k in ("channels", "unit") if k not in mapping]
        if missing:
            raise RecordingError(f"{where}: expected the key(s) {', '.join(missing)}, "
                                 "found none")
        channels = mapping["channels"]
        if isinstance(channels, str | int):
            channels = [channels]
        return cls(**{**mapping, "channels": list(channels)})

    @classmethod
    def load(cls, path: str | Path) -> ColumnMap:
        """Read a TOML mapping file (keys as the parameters, at the top level)."""
        path = Path(path)
        try:
            with path.open("rb") as f:
                mapping = tomllib.load(f)
        except FileNotFoundError:
            raise RecordingError(f"{path}: no such column mapping file (expected a TOML "
                                 "file with channels, unit, time/sfreq, marker)") from None
        except tomllib.TOMLDecodeError as err:
            raise RecordingError(f"{path}: expected a TOML column mapping, found invalid "
                                 f"TOML ({err})") from None
        return cls.from_mapping(mapping, where=str(path))


def read_csv(path: str | Path, columns: ColumnMap | Mapping | str | Path) -> Recording:
    """Read a delimited text export into a :class:`~bci.recording.Recording`.

    Parameters
    ----------
    path : str | Path
    columns : ColumnMap | Mapping | str | Path
        The mapping, a dict of its keys, or a TOML file holding them.

    Returns
    -------
    Recording
        ``data`` float32 of shape (n_channels, n_samples) in volts, ``timestamps``
        float64 of shape (n_samples,), markers on the same clock.

    Raises
    ------
    RecordingError
        The mapping names a column the file lacks, a cell is not a number, the unit or
        time unit is unknown, the sampling rate is missing or contradicts the
        timestamps, or the values are implausible for the stated unit.
    """
    path = Path(path)
    if isinstance(columns, str | Path):
        cmap = ColumnMap.load(columns)
    elif isinstance(columns, ColumnMap):
        cmap = columns
    else:
        cmap = ColumnMap.from_mapping(columns)
    if cmap.unit not in UNITS:
        raise RecordingError(f"{path}: unit {cmap.unit!r}: expected one of "
                             f"{', '.join(UNITS)}")
    if cmap.time_unit not in TIME_UNITS:
        raise RecordingError(f"{path}: time_unit {cmap.time_unit!r}: expected one of "
                             f"{', '.join(TIME_UNITS)}")
    if cmap.time is None and cmap.sfreq is None:
        raise RecordingError(f"{path}: expected a time column or sfreq in the column "
                             "mapping, found neither")

    names, rows, first_line = _rows(path, cmap)
    picked = _resolve(path, names, cmap.channels, "channels")
    time_col = None if cmap.time is None else _resolve(path, names, [cmap.time], "time")[0]
    marker_col = (None if cmap.marker is None
                  else _resolve(path, names, [cmap.marker], "marker")[0])

    sample_rows, values, stamps, m_rows = [], [], [], []
    for number, row in enumerate(rows, start=first_line):
        cells = [row[i].strip() if i < len(row) else "" for i in picked]
        has_data = any(cells)
        if marker_col is not None and _is_marker(_cell(row, marker_col)):
            m_rows.append((number, _cell(row, marker_col), len(sample_rows), has_data, row))
        if not has_data:
            continue
        values.append([_number(path, c, names[i], number) for c, i in zip(cells, picked,
                                                                           strict=True)])
        if time_col is not None:
            stamps.append(_time(path, _cell(row, time_col), names[time_col], number,
                                cmap.time_unit))
        sample_rows.append(number)
    if not values:
        raise RecordingError(f"{path}: expected rows of samples in columns "
                             f"{', '.join(names[i] for i in picked)}, found none")

    data = np.asarray(values, dtype=np.float64).T * UNITS[cmap.unit]
    if time_col is None:
        timestamps = np.arange(data.shape[1], dtype=np.float64) / float(cmap.sfreq)
        sfreq = float(cmap.sfreq)
    else:
        timestamps = np.asarray(stamps, dtype=np.float64)
        sfreq = _checked_sfreq(path, timestamps, cmap.sfreq, names[time_col])

    ch_names = list(cmap.ch_names) if cmap.ch_names is not None else [names[i] for i in
                                                                        picked]
    if len(ch_names) != len(picked):
        raise RecordingError(f"{path}: ch_names: expected {len(picked)} names (one per "
                             f"channel column), found {len(ch_names)}")
    ch_types = ([cmap.ch_types] * len(picked) if isinstance(cmap.ch_types, str)
                else list(cmap.ch_types))
    try:
        info = mne.create_info(ch_names, sfreq, ch_types)
    except (ValueError, KeyError, TypeError) as err:
        raise RecordingError(f"{path}: ch_names/ch_types: {err}") from None
    _check_plausible(path, data, info, [names[i] for i in picked], cmap.unit)

    m_times, m_values = [], []
    for number, value, index, has_data, row in m_rows:
        if has_data:
            m_times.append(timestamps[index])
        elif time_col is not None:
            m_times.append(_time(path, _cell(row, time_col), names[time_col], number,
                                 cmap.time_unit))
        else:  # a marker row between samples, no clock of its own: the next sample's
            m_times.append(timestamps[min(index, len(timestamps) - 1)])
        m_values.append(_marker_text(value))
    order = np.argsort(np.asarray(m_times, dtype=np.float64), kind="stable")
    markers = Markers(np.asarray(m_times, dtype=np.float64)[order],
                      [m_values[i] for i in order])
    note = (f"{len(ch_names)} channel(s) from columns "
            f"{', '.join(names[i] for i in picked)} in {cmap.unit}; "
            + (f"time from {names[time_col]!r}" if time_col is not None
               else f"{sfreq:g} Hz from sample 0")
            + (f"; {len(markers)} marker(s) from {names[marker_col]!r}"
               if marker_col is not None else ""))
    logger.info("%s: %s", path, note)
    return Recording(info, data.astype(np.float32), timestamps, markers, str(path),
                     note=note)


def _rows(path: Path, cmap: ColumnMap) -> tuple[list[str], list[list[str]], int]:
    """Column names, data rows and the 1-based line number of the first data row."""
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as err:
        raise RecordingError(f"{path}: expected a readable text file ({err})") from None
    numbered = [(i + 1, line) for i, line in enumerate(lines)
                if i >= cmap.skip_rows and line.strip()
                and not (cmap.comment and line.lstrip().startswith(cmap.comment))]
    if not numbered:
        raise RecordingError(f"{path}: expected delimited text, found no lines")
    delimiter = cmap.delimiter
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else _guess(numbered[0][1])
    if delimiter not in _DELIMITERS:
        raise RecordingError(f"{path}: delimiter {delimiter!r}: expected one of "
                             f"{', '.join(map(repr, _DELIMITERS))}")

    def split(line: str) -> list[str]:
        if delimiter == " ":
            return line.split()
        return next(csv.reader([line], delimiter=delimiter, skipinitialspace=True))

    if cmap.header:
        names = [n.strip() for n in split(numbered[0][1])]
        numbered = numbered[1:]
    else:
        names = [str(i) for i in range(len(split(numbered[0][1])))]
    first = numbered[0][0] if numbered else len(lines) + 1
    return names, [split(line) for _, line in numbered], first


def _guess(line: str) -> str:
    counts = {d: line.count(d) for d in _DELIMITERS[:3]}
    best = max(counts, key=counts.get)
    return best if counts[best] else " "


def _resolve(path: Path, names: list[str], wanted: Sequence[str | int],
             key: str) -> list[int]:
    indices: list[int] = []
    for item in wanted:
        if isinstance(item, int) and not isinstance(item, bool):
            if not 0 <= item < len(names):
                raise RecordingError(f"{path}: {key} column {item}: expected an index from "
                                     f"0 to {len(names) - 1}, found {len(names)} columns")
            indices.append(item)
            continue
        item = str(item)
        if item in names:
            indices.append(names.index(item))
            continue
        matched = [i for i, n in enumerate(names) if fnmatch.fnmatchcase(n, item)]
        if not matched:
            raise RecordingError(f"{path}: {key} column {item!r} not found; the columns "
                                 f"are {', '.join(map(repr, names))}")
        indices.extend(matched)
    return indices


def _cell(row: list[str], index: int) -> str:
    return row[index].strip() if index < len(row) else ""


def _number(path: Path, text: str, column: str, line: int) -> float:
    try:
        return float(text) if text else math.nan
    except ValueError:
        raise RecordingError(f"{path}: line {line}, column {column!r}: expected a number, "
                             f"found {text!r}") from None


def _time(path: Path, text: str, column: str, line: int, unit: str) -> float:
    if unit == "datetime":
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise RecordingError(f"{path}: line {line}, column {column!r}: expected a date "
                                 f"and time (ISO 8601), found {text!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return moment.timestamp()
    value = _number(path, text, column, line)
    if not math.isfinite(value):
        raise RecordingError(f"{path}: line {line}, column {column!r}: expected a "
                             f"timestamp, found {text!r}")
    return value * TIME_UNITS[unit]


def _checked_sfreq(path: Path, stamps: np.ndarray, stated: float | None,
                   column: str) -> float:
    steps = np.diff(stamps)
    if steps.size == 0 or not np.median(steps) > 0:
        if stated is None:
            raise RecordingError(f"{path}: time column {column!r}: expected increasing "
                                 "timestamps to measure the sampling rate, found none; "
                                 "give sfreq")
        return float(stated)
    if (steps < 0).any():
        logger.warning("%s: time column %r goes backwards %d time(s)", path, column,
                       int((steps < 0).sum()))
    measured = 1.0 / float(np.median(steps))
    if stated is None:
        return measured
    if abs(measured - stated) > _SFREQ_TOLERANCE * stated:
        raise RecordingError(f"{path}: sfreq {stated:g} Hz: expected it to match the "
                             f"timestamps in {column!r}, which show {measured:.4g} Hz "
                             "(is time_unit right?)")
    return float(stated)


def _check_plausible(path: Path, data: np.ndarray, info: mne.Info, columns: list[str],
                     unit: str) -> None:
    eeg = mne.pick_types(info, eeg=True, eog=True, ecg=True, emg=True)
    if data.shape[1] < 2:
        return
    steps = np.nanmedian(np.abs(np.diff(data[eeg], axis=1)), axis=1)
    for index, step in zip(eeg, steps, strict=True):
        if step > _IMPLAUSIBLE_VOLTS:
            raise RecordingError(
                f"{path}: column {columns[index]!r} in unit {unit!r}: expected "
                f"electrophysiology below {_IMPLAUSIBLE_VOLTS:g} V per sample, found a "
                f"median step of {step:.3g} V (is the unit right?)")


def _is_marker(text: str) -> bool:
    if not text:
        return False
    try:
        return float(text) != 0.0
    except ValueError:
        return True


def _marker_text(text: str) -> str:
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if math.isfinite(number) and number.is_integer() else text
