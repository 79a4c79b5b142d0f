"""BrainFlow boards as sources: OpenBCI, Muse, Unicorn, … without an LSL app in between.

BrainFlow (``pip install 'bci-runtime[brainflow]'``) reaches some 70 boards behind one
``BoardShim`` API, plus a *synthetic* board and a *playback-file* board that need no
hardware. :class:`BrainFlowSource` is the session source ``[source] kind =
"brainflow"``: the board is named (``"cyton"``, ``"synthetic"``, ``"playback"`` …, any
:class:`brainflow.board_shim.BoardIds` name, case-insensitive, with or without its
``_board`` suffix) or given by its integer id, with the connection options of
:class:`brainflow.board_shim.BrainFlowInputParams` (``serial_port``, ``mac_address``,
``ip_address``, ``ip_port``, ``ip_protocol``, ``serial_number``, ``file``,
``master_board``, ``timeout``, ``other_info``).

Channels
    Names, types and rows come from ``BoardShim.get_board_descr``: the EEG rows by
    default (``channels = "eeg"``), every ExG row (``"exg"``) or every data row but the
    package counter, timestamp and marker rows (``"all"``; non-ExG rows are ``misc``).
    BrainFlow gives ExG in µV; the chunks are in volts.

Time
    BrainFlow stamps each sample with the host's wall clock (UNIX seconds, as
    ``time.time()``) when its board thread reads it. :class:`UnixClockMap` maps these
    stamps onto LSL's ``local_clock()`` — the clock of every other stream and marker of a
    session — as ``lsl = unix − offset``. The offset is estimated, like NTP, from the
    tightest of several ``local_clock / time.time / local_clock`` reads and estimated
    again every ``clock_resync`` s. The mapping's error is the half-width of that
    bracket (well under 1 µs here) plus the drift of the wall clock against the
    monotonic clock between two estimates (NTP slews at most 500 ppm: ≤ 0.5 ms over the
    default 1 s; ppm, i.e. µs, in practice); ``benchmarks/brainflow_clock.py`` measures
    it. A step of the wall clock (a manual change, an NTP step) is taken at the next
    estimate and reported as a ``clock`` event. What no mapping can remove is the
    board's own transport delay before BrainFlow stamps a sample (Bluetooth, USB-serial
    buffering); it is the same for data and for markers of the board.

    The wall-clock stamps also carry the board thread's scheduling jitter: on a busy
    machine a sample may be stamped tens of ms late, which the loop would take for a gap.
    With ``dejitter`` (default, for boards with a package counter) the samples are
    stamped by :class:`PackageClock` instead: one sample period apart, counted by the
    board's package counter, so the stamps jump only where packages were really lost;
    their offset follows the earliest wall-clock stamps (a late stamp is jitter, an early
    one is a better estimate).

Markers
    The board's marker channel (``get_marker_channel``; filled by ``insert_marker`` or by
    the board itself) becomes the source's markers: every non-zero value, as a string
    (``3.0`` → ``"3"``), stamped with the sample it landed on. A marker inserted at time
    ``t`` lands on the next sample the board reads, so its stamp lies within one sample
    period (plus the board thread's scheduling) after ``t``.

Losses
    A board that raises, or delivers nothing for ``reconnect_timeout`` s, is reported
    ``lost``, released, and prepared again every second until it streams again
    (``reconnected``); the samples missed in between show up as a gap in the loop, like
    an LSL gap. A playback-file board that has played its whole file ends the source.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
import time
import warnings
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import mne
import numpy as np

from bci.chunk import Chunk, Markers
from bci.config import check, check_range
from bci.errors import ConfigError, DeviceError, StreamMismatchError
from bci.lslconfig import configure_lsl, get_pylsl
from bci.source import Pull, Source, SourceEvent

log = logging.getLogger(__name__)

#: What ``channels`` takes: EEG rows only, every ExG row, or every data row.
CHANNEL_SETS = ("eeg", "exg", "all")
#: ExG groups of a board description, in order, with their MNE type (values in µV).
EXG_GROUPS = (("eeg_channels", "eeg"), ("ecg_channels", "ecg"), ("emg_channels", "emg"),
              ("eog_channels", "eog"))
#: Other data rows of a board description and the prefix of their names (``misc``).
OTHER_GROUPS = (("accel_channels", "ACC"), ("gyro_channels", "GYRO"),
                ("magnetometer_channels", "MAG"), ("eda_channels", "EDA"),
                ("ppg_channels", "PPG"), ("temperature_channels", "TEMP"),
                ("resistance_channels", "RES"), ("analog_channels", "ANALOG"),
                ("other_channels", "OTHER"), ("battery_channel", "BATTERY"))
#: BrainFlow's ExG unit, in volts.
MICROVOLT = 1e-6
IP_PROTOCOLS = ("none", "udp", "tcp")
#: Boards that stream another board's rows (``master_board``).
_PROXY_BOARDS = ("PLAYBACK_FILE_BOARD", "STREAMING_BOARD")
_ALIASES = {"playback": "PLAYBACK_FILE_BOARD", "playback_file": "PLAYBACK_FILE_BOARD",
            "streaming": "STREAMING_BOARD"}


_quiet = False


def brainflow() -> SimpleNamespace:
    """BrainFlow's classes (imported on first use), or :class:`ConfigError` saying how to
    install it. BrainFlow's own log is off unless this module logs at INFO (``bci -v``)."""
    try:
        with warnings.catch_warnings():  # brainflow ≤ 5.x imports pkg_resources
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            from brainflow.board_shim import (
                BoardIds,
                BoardShim,
                BrainFlowError,
                BrainFlowInputParams,
                IpProtocolTypes,
                LogLevels,
            )

            global _quiet
            if not _quiet:  # loads the library (the pkg_resources import is here)
                # errors reach the user as our one line; BrainFlow's log with `bci -v`
                BoardShim.set_log_level((LogLevels.LEVEL_INFO if log.isEnabledFor(
                    logging.INFO) else LogLevels.LEVEL_OFF).value)
                _quiet = True
    except ImportError as err:
        raise ConfigError(
            "the brainflow source needs the brainflow package, not installed here "
            f"({err}); install it with: pip install 'bci-runtime[brainflow]'") from None
    return SimpleNamespace(BoardIds=BoardIds, BoardShim=BoardShim,
                           BrainFlowError=BrainFlowError,
                           BrainFlowInputParams=BrainFlowInputParams,
                           IpProtocolTypes=IpProtocolTypes)


def board_names() -> list[str]:
    """The board names :func:`board_id` takes (lower case, without ``_board``)."""
    ids = brainflow().BoardIds
    names = {b.name.lower().removesuffix("_board") for b in ids if b.name != "NO_BOARD"}
    return sorted(names | set(_ALIASES))


def board_id(board: str | int, *, where: str = "board") -> int:
    """BrainFlow's integer id of a board given by name (any case, ``-`` or ``_``, with or
    without ``_board``) or by id.

    Raises
    ------
    ConfigError
        Naming ``where``, the value found and the names known.
    """
    ids = brainflow().BoardIds
    by_value = {int(b.value): b for b in ids}
    if isinstance(board, str) and board.strip().lstrip("-").isdigit():
        board = int(board.strip())
    if isinstance(board, int) and not isinstance(board, bool):
        if board in by_value:
            return board
        raise ConfigError(f"{where}: expected a BrainFlow board id among "
                          f"{sorted(by_value)}, found {board}")
    if not isinstance(board, str):
        raise ConfigError(f"{where}: expected a board name or id, found {board!r}")
    key = board.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key).upper()
    for name in (key, f"{key}_BOARD"):
        if name in ids.__members__:
            return int(ids[name].value)
    close = difflib.get_close_matches(key.lower().removesuffix("_board"), board_names(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"{where}: unknown BrainFlow board {board!r}{hint}; expected an id or "
                      f"one of {', '.join(board_names())}")


def board_label(board_id_: int) -> str:
    """The short name of a board id (``-1`` → ``"synthetic"``)."""
    return brainflow().BoardIds(board_id_).name.lower().removesuffix("_board")


def channel_layout(descr: dict, channels: str = "eeg") -> tuple[list[int], list[str],
                                                                 list[str], np.ndarray]:
    """Rows, names, MNE types and factors to volts of a board description's channels.

    Parameters
    ----------
    descr : dict
        ``BoardShim.get_board_descr(board_id)``.
    channels : {"eeg", "exg", "all"}
        EEG rows only (a board without EEG rows: its first ExG group); every ExG row; or
        every data row except the package counter, timestamp and marker rows.

    Returns
    -------
    rows : list of int
    names : list of str
    types : list of str
    scale : ndarray, shape (n_channels,)
        ``1e-6`` for ExG rows (µV), ``1`` for the others.
    """
    if channels not in CHANNEL_SETS:
        raise ConfigError(f"channels: expected one of {list(CHANNEL_SETS)}, found {channels!r}")
    rows: list[int] = []
    names: list[str] = []
    types: list[str] = []
    scale: list[float] = []
    eeg_names = [n.strip() for n in str(descr.get("eeg_names", "")).split(",") if n.strip()]
    for group, ch_type in EXG_GROUPS:
        group_rows = [r for r in descr.get(group, []) if r not in rows]
        if not group_rows:
            continue
        if ch_type == "eeg" and len(eeg_names) == len(group_rows):
            labels = eeg_names
        else:
            labels = [f"{ch_type.upper()}{i + 1}" for i in range(len(group_rows))]
        rows += group_rows
        names += labels
        types += [ch_type] * len(group_rows)
        scale += [MICROVOLT] * len(group_rows)
        if channels == "eeg":
            break
    if channels == "all":
        for group, prefix in OTHER_GROUPS:
            value = descr.get(group, [])
            group_rows = [value] if isinstance(value, int) else list(value)
            group_rows = [r for r in group_rows if r not in rows]
            suffixes = ("X", "Y", "Z") if len(group_rows) == 3 and prefix in (
                "ACC", "GYRO", "MAG") else [str(i + 1) for i in range(len(group_rows))]
            if len(group_rows) == 1:
                suffixes = [""]
            rows += group_rows
            names += [f"{prefix}{s}" if not s or s.isdigit() else f"{prefix}_{s}"
                      for s in suffixes]
            types += ["misc"] * len(group_rows)
            scale += [1.0] * len(group_rows)
    if not rows:
        raise StreamMismatchError(f"BrainFlow board {descr.get('name')!r} describes no "
                                  f"channel for channels={channels!r}")
    seen: dict[str, int] = {}
    unique = []
    for n in names:  # mne needs distinct names
        seen[n] = seen.get(n, 0) + 1
        unique.append(n if seen[n] == 1 else f"{n}-{seen[n]}")
    return rows, unique, types, np.asarray(scale, np.float64)


class UnixClockMap:
    """Maps the host's wall clock (UNIX seconds) onto LSL's ``local_clock()``.

    ``lsl = unix − offset``. :meth:`sync` reads ``n_reads`` triplets
    ``(local_clock, wall, local_clock)`` and keeps the one whose two ``local_clock``
    reads lie closest together (the read least disturbed by the scheduler):
    ``offset = wall − midpoint``, uncertain by half the bracket (:attr:`uncertainty`).

    Parameters
    ----------
    resync : float
        Seconds between estimates (:meth:`due`).
    n_reads : int
        Triplets read per estimate.
    step_threshold : float
        Seconds: a new estimate this far from the last is a step of the wall clock
        (:meth:`sync` returns it).
    wall, local : callables | None
        The clocks (default ``time.time`` and LSL's ``local_clock``); tests give others.
    """

    def __init__(self, *, resync: float = 1.0, n_reads: int = 16,
                 step_threshold: float = 1e-3, wall: Callable[[], float] = time.time,
                 local: Callable[[], float] | None = None) -> None:
        self.resync = float(resync)
        self.n_reads = int(n_reads)
        self.step_threshold = float(step_threshold)
        self.wall = wall
        self.local = local  # None: LSL's, looked up at the first estimate
        self.offset: float | None = None
        self.uncertainty = math.inf
        self.last_sync = -math.inf

    def sync(self) -> float:
        """Estimate the offset now.

        Returns
        -------
        step : float
            The change from the previous estimate when it exceeds ``step_threshold``
            (the wall clock was stepped), else 0.
        """
        if self.local is None:
            self.local = get_pylsl().local_clock
        local, wall_clock = self.local, self.wall
        best = (math.inf, 0.0, 0.0)
        for _ in range(self.n_reads):
            before = local()
            wall = wall_clock()
            after = local()
            if after - before < best[0]:
                best = (after - before, wall, 0.5 * (before + after))
        width, wall, mid = best
        offset = wall - mid
        step = 0.0 if self.offset is None else offset - self.offset
        self.offset, self.uncertainty = offset, 0.5 * width
        self.last_sync = mid
        return step if abs(step) > self.step_threshold else 0.0

    def due(self, now: float) -> bool:
        """Whether ``resync`` s have passed since the last estimate (``now``: LSL clock)."""
        return self.offset is None or now - self.last_sync >= self.resync

    def to_local(self, unix: np.ndarray | float) -> np.ndarray:
        """UNIX seconds → ``local_clock()`` seconds (float64)."""
        if self.offset is None:
            self.sync()
        return np.asarray(unix, np.float64) - self.offset


class PackageClock:
    """Regular sample stamps from a board's package counter (``dejitter``).

    Sample ``i`` of the stream is stamped ``offset + i / sfreq``. The index advances by
    the counter's step (modulo ``modulus``), so lost packages leave a jump of exactly
    their duration; losses longer than a whole counter cycle, and the restart after a
    reconnect, are counted from the wall-clock stamps. ``offset`` is the earliest
    ``stamp − i / sfreq`` seen (stamps are late by the board thread's scheduling, never
    early); when even the earliest of the last ``horizon`` s is later, it moves later
    by at most ``drift`` s per s of data, to follow a board whose clock runs slower than
    its nominal rate.

    Parameters
    ----------
    sfreq : float
        The board's nominal sampling rate.
    modulus : int
        The counter's cycle (BrainFlow's boards count 0–255).
    drift : float
        Seconds per second the offset may move later (1e-3: 1000 ppm).
    horizon : float
        Seconds of data over which the earliest stamp is looked for.
    """

    def __init__(self, sfreq: float, *, modulus: int = 256, drift: float = 1e-3,
                 horizon: float = 2.0) -> None:
        self.sfreq = float(sfreq)
        self.modulus = int(modulus)
        self.drift = float(drift)
        self.horizon = float(horizon)
        self._recent: deque[tuple[int, float]] = deque()  # (last index, earliest residual)
        self.offset: float | None = None
        self._index = -1  # of the last sample stamped
        self._counter: int | None = None

    def restart(self) -> None:
        """The counter starts over (a reconnect): the next index comes from the stamps."""
        self._counter = None
        self._recent.clear()

    def stamps(self, local: np.ndarray, counter: np.ndarray) -> np.ndarray:
        """Stamp a chunk.

        Parameters
        ----------
        local : ndarray, shape (n_samples,)
            The board's stamps on the LSL clock (jittered).
        counter : ndarray, shape (n_samples,)
            The package counter row.

        Returns
        -------
        stamps : ndarray of float64, shape (n_samples,)
        """
        local = np.asarray(local, np.float64)
        counter = np.asarray(counter).astype(np.int64)
        steps = np.empty(counter.size, np.int64)
        steps[1:] = np.diff(counter) % self.modulus
        if self._counter is None or self.offset is None:
            first = (0 if self.offset is None
                     else max(1, round((local[0] - self.offset) * self.sfreq) - self._index))
        else:
            first = (int(counter[0]) - self._counter) % self.modulus
        steps[0] = first
        steps[steps == 0] = 1  # a repeated count: the board does not count packages
        index = self._index + np.cumsum(steps)
        earliest = float((local - index / self.sfreq).min())
        if self.offset is not None and earliest - self.offset > 0.5 * self.modulus / self.sfreq:
            extra = round((earliest - self.offset) * self.sfreq)  # more lost than counted
            index += extra
            earliest -= extra / self.sfreq
        self._recent.append((int(index[-1]), earliest))
        while self._recent[0][0] < index[-1] - self.horizon * self.sfreq:
            self._recent.popleft()
        floor = min(e for _, e in self._recent)
        if self.offset is None or floor < self.offset:
            self.offset = floor
        else:
            span = (index[-1] - self._index) / self.sfreq
            self.offset += min(floor - self.offset, self.drift * span)
        self._index = int(index[-1])
        self._counter = int(counter[-1])
        return self.offset + index / self.sfreq


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name}: expected a string, found {value!r}")
    return value


class BrainFlowSource(Source):
    """A BrainFlow board, live, on the LSL clock (session source ``kind = "brainflow"``).

    Parameters
    ----------
    board : str | int
        Board name (``"synthetic"``, ``"cyton"``, ``"playback"`` …) or BrainFlow id.
    serial_port, mac_address, ip_address, serial_number, other_info : str
        Connection options, as :class:`brainflow.board_shim.BrainFlowInputParams` takes.
    ip_port : int
        IP port (0: none).
    ip_protocol : {"none", "udp", "tcp"}
    file : str | Path
        The file of a playback-file board (BrainFlow's ``DataFilter.write_file`` format).
    master_board : str | int | None
        The board whose rows a playback-file or streaming board carries.
    timeout : int
        Seconds BrainFlow waits to find a board (0: its default).
    channels : {"eeg", "exg", "all"}
        Which rows become channels (see :func:`channel_layout`).
    ch_names : list of str | None
        Names replacing the board's, one per channel.
    name : str | None
        The stream's name in recordings (default ``brainflow-<board>``).
    buffer_size : int
        Samples BrainFlow buffers for us.
    reconnect_timeout : float
        Seconds without data after which the board counts as lost and is prepared again.
    clock_resync : float
        Seconds between estimates of the wall-clock → LSL offset.
    poll_interval : float
        Seconds between polls of the board while waiting for data.
    dejitter : bool
        Stamp samples by the board's package counter (:class:`PackageClock`) instead of
        BrainFlow's jittered wall-clock stamps; boards without a counter keep the latter.
    """

    live = True
    #: Keys of a session's ``[source]`` table for ``kind = "brainflow"`` (besides the
    #: common ``scope``, ``gap_tolerance``, ``stall_timeout`` and ``ch_names``).
    OPTIONS: ClassVar[frozenset[str]] = frozenset({
        "board", "serial_port", "mac_address", "ip_address", "ip_port", "ip_protocol",
        "serial_number", "file", "master_board", "timeout", "other_info", "channels",
        "name", "buffer_size", "reconnect_timeout", "clock_resync", "dejitter"})

    def __init__(
        self, board: str | int, *, serial_port: str = "", mac_address: str = "",
        ip_address: str = "", ip_port: int = 0, ip_protocol: str = "none",
        serial_number: str = "", file: str | Path = "", master_board: str | int | None = None,
        timeout: int = 0, other_info: str = "", channels: str = "eeg",
        ch_names: list[str] | None = None, name: str | None = None,
        buffer_size: int = 450_000, reconnect_timeout: float = 5.0,
        clock_resync: float = 1.0, poll_interval: float = 1e-3, dejitter: bool = True,
    ) -> None:
        super().__init__()
        self.board_id = board_id(board)
        bf = brainflow()
        proxy = bf.BoardIds(self.board_id).name in _PROXY_BOARDS
        for key, value in (("serial_port", serial_port), ("mac_address", mac_address),
                           ("ip_address", ip_address), ("serial_number", serial_number),
                           ("other_info", other_info)):
            _text(value, key)
        if ip_protocol not in IP_PROTOCOLS:
            raise ConfigError(f"ip_protocol: expected one of {list(IP_PROTOCOLS)}, found "
                              f"{ip_protocol!r}")
        for key, value, low, high in (("ip_port", ip_port, 0, 65535),
                                      ("timeout", timeout, 0, None),
                                      ("buffer_size", buffer_size, 1, None)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{key}: expected an integer, found {value!r}")
            check_range(value, key, at_least=low, at_most=high)
        for key, value in (("reconnect_timeout", reconnect_timeout),
                           ("clock_resync", clock_resync), ("poll_interval", poll_interval)):
            check_range(float(value), key, above=0)
        if channels not in CHANNEL_SETS:
            raise ConfigError(f"channels: expected one of {list(CHANNEL_SETS)}, found "
                              f"{channels!r}")
        self.master_board = None if master_board is None else board_id(
            master_board, where="master_board")
        if proxy and self.master_board is None:
            raise ConfigError(f"master_board: the {board_label(self.board_id)} board carries "
                              "another board's rows; name that board (such as 'synthetic' "
                              "or 'cyton'), found nothing")
        self.file = str(file)
        if self.board_id == int(bf.BoardIds.PLAYBACK_FILE_BOARD) and not (
                self.file and Path(self.file).is_file()):
            raise ConfigError(f"file: the playback board needs an existing file written by "
                              f"BrainFlow's DataFilter.write_file, found {self.file!r}")
        self.params = dict(serial_port=serial_port, mac_address=mac_address,
                           ip_address=ip_address, ip_port=ip_port,
                           ip_protocol=IP_PROTOCOLS.index(ip_protocol),
                           serial_number=serial_number, file=self.file,
                           master_board=(self.master_board if self.master_board is not None
                                         else int(bf.BoardIds.NO_BOARD)),
                           timeout=timeout, other_info=other_info)
        self.channels = channels
        self.ch_names = list(ch_names) if ch_names else None
        self.buffer_size = buffer_size
        self.reconnect_timeout = float(reconnect_timeout)
        self.poll_interval = float(poll_interval)
        self.clock_map = UnixClockMap(resync=clock_resync)
        self.dejitter = bool(dejitter)
        #: Stamps samples by the package counter (set by :meth:`open` when dejittering).
        self.package_clock: PackageClock | None = None
        self.package_row: int | None = None
        self.label = board_label(self.board_id)
        self.name = name or f"brainflow-{self.label}"
        where = next((v for v in (serial_port, mac_address, ip_address, serial_number)
                      if v), Path(self.file).name if self.file else "")
        self.source_id = f"brainflow:{self.label}" + (f":{where}" if where else "")
        #: Samples handed out so far.
        self.n_samples = 0
        self._board = None
        self._next_retry = 0.0
        self._last_data = 0.0
        self._file_samples: int | None = None

    # -- session files ----------------------------------------------------------------
    @classmethod
    def check_options(cls, t: dict, *, where: str = "source",
                      base: Path = Path()) -> dict[str, Any]:
        """A session's ``[source]`` options, checked, as keyword arguments of this class.

        Raises
        ------
        ConfigError
            Naming ``where.key``, what was expected and what was found.
        """
        out: dict[str, Any] = {}
        board = check(t, "board", (str, int), where)
        out["board"] = board_label(board_id(board, where=f"{where}.board"))
        for key in ("serial_port", "mac_address", "ip_address", "serial_number", "other_info",
                    "name"):
            if key in t:
                out[key] = check(t, key, str, where)
        if "ip_port" in t:
            out["ip_port"] = check(t, "ip_port", int, where, at_least=0, at_most=65535)
        if "ip_protocol" in t:
            out["ip_protocol"] = check(t, "ip_protocol", str, where, choices=IP_PROTOCOLS)
        if "timeout" in t:
            out["timeout"] = check(t, "timeout", int, where, at_least=0)
        if "buffer_size" in t:
            out["buffer_size"] = check(t, "buffer_size", int, where, at_least=1)
        for key in ("reconnect_timeout", "clock_resync"):
            if key in t:
                out[key] = check(t, key, float, where, above=0)
        if "channels" in t:
            out["channels"] = check(t, "channels", str, where, choices=CHANNEL_SETS)
        if "dejitter" in t:
            out["dejitter"] = check(t, "dejitter", bool, where)
        if "master_board" in t:
            out["master_board"] = board_label(board_id(
                check(t, "master_board", (str, int), where), where=f"{where}.master_board"))
        if "file" in t:
            path = Path(check(t, "file", str, where))
            path = path if path.is_absolute() else base / path
            if not path.is_file():
                raise ConfigError(f"{where}.file: expected an existing BrainFlow data file, "
                                  f"found {str(path)!r} (no such file)")
            out["file"] = str(path)
        try:  # the checks that need more than one key (playback: file and master_board)
            cls(**out)
        except ConfigError as err:
            raise ConfigError(f"{where}.{err}") from None
        return out

    @classmethod
    def from_config(cls, config: Any) -> BrainFlowSource:
        """The source a session's ``[source]`` table names (LSL scope chosen first)."""
        configure_lsl(config.scope)
        return cls(**config.options, ch_names=config.ch_names or None)

    # -- Source -------------------------------------------------------------------------
    @staticmethod
    def clock() -> float:
        return get_pylsl().local_clock()

    def _describe(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.params.items()
                         if v and k not in ("ip_protocol", "master_board", "timeout"))
        return f"BrainFlow board {self.label!r}" + (f" ({opts})" if opts else "")

    def _prepare(self):
        bf = brainflow()
        params = bf.BrainFlowInputParams()
        for key, value in self.params.items():
            setattr(params, key, value)
        board = bf.BoardShim(self.board_id, params)
        try:
            board.prepare_session()
            board.start_stream(self.buffer_size)
        except bf.BrainFlowError:
            with contextlib.suppress(bf.BrainFlowError):
                board.release_session()
            raise
        return board

    def open(self) -> mne.Info:
        """Prepare the board, start its stream and return its channels (volts)."""
        bf = brainflow()
        rows_id = self.master_board if self.master_board is not None else self.board_id
        descr = bf.BoardShim.get_board_descr(rows_id)
        rows, names, types, scale = channel_layout(descr, self.channels)
        if self.ch_names is not None:
            if len(self.ch_names) != len(rows):
                raise StreamMismatchError(
                    f"ch_names names {len(self.ch_names)} channels; the {self.label} board "
                    f"has {len(rows)} ({', '.join(names)}) for channels={self.channels!r}")
            names = list(self.ch_names)
        self.sfreq = float(descr["sampling_rate"])
        self.info = mne.create_info(names, self.sfreq, types)
        self.rows = np.asarray(rows, int)
        self.scale = scale
        self.timestamp_row = int(descr["timestamp_channel"])
        package = descr.get("package_num_channel")
        self.package_row = None if package is None else int(package)
        self.package_clock = (PackageClock(self.sfreq)
                              if self.dejitter and self.package_row is not None else None)
        marker = descr.get("marker_channel")
        self.marker_row = None if marker is None else int(marker)
        if self.board_id == int(bf.BoardIds.PLAYBACK_FILE_BOARD):
            with open(self.file, "rb") as f:
                self._file_samples = sum(1 for line in f if line.strip())
        try:
            self._board = self._prepare()
        except bf.BrainFlowError as err:
            raise DeviceError(f"{self._describe()} could not start: {err} (bci -v shows "
                              "BrainFlow's own log)") from None
        self.clock_map.sync()
        self._last_data = self.clock()
        return self.info

    def insert_marker(self, value: float) -> None:
        """Put ``value`` (a non-zero number) in the marker row of the next sample read."""
        if self._board is None:
            raise DeviceError(f"{self._describe()} is not streaming; open it first")
        if not value:
            raise ConfigError(f"a BrainFlow marker must be a non-zero number, found {value!r}")
        self._board.insert_marker(float(value))

    def _event(self, kind: str, now: float, **detail: Any) -> None:
        self.events.append(SourceEvent(kind, now, {"board": self.label, **detail}))
        log.warning("%s %s %s", self._describe(), kind, detail or "")

    def _lose(self, now: float, reason: str) -> None:
        self._event("lost", now, reason=reason)
        bf = brainflow()
        with contextlib.suppress(bf.BrainFlowError):
            self._board.stop_stream()
        with contextlib.suppress(bf.BrainFlowError):
            self._board.release_session()
        self._board = None
        self._next_retry = now

    def _try_reconnect(self, now: float, timeout: float) -> None:
        if now < self._next_retry:
            time.sleep(max(0.0, min(timeout, self._next_retry - now)))
            return
        self._next_retry = now + 1.0
        bf = brainflow()
        try:
            self._board = self._prepare()
        except bf.BrainFlowError as err:
            log.debug("%s: reconnect failed: %s", self._describe(), err)
            return
        self._last_data = self.clock()
        if self.package_clock is not None:
            self.package_clock.restart()
        self._event("reconnected", self._last_data)

    def pull(self, timeout: float) -> Pull | None:
        """Wait up to ``timeout`` s for samples; take all the board has buffered.

        Returns
        -------
        pull : Pull | None
            The chunk (``data`` float32 (n_channels, n_samples) in volts, timestamps on
            the LSL clock) and the board's markers; ``None`` once a playback-file board
            has played its file.
        """
        bf = brainflow()
        now = self.clock()
        if self._board is None:
            self._try_reconnect(now, timeout)
            return Pull()
        deadline = now + timeout
        while True:
            try:
                n = self._board.get_board_data_count()
                data = self._board.get_board_data(n) if n else None
            except bf.BrainFlowError as err:
                self._lose(self.clock(), f"BrainFlow error: {err}")
                return Pull()
            now = self.clock()
            if data is not None and data.shape[1]:
                break
            if self._file_samples is not None and self.n_samples >= self._file_samples:
                return None
            if now - self._last_data > self.reconnect_timeout:
                self._lose(now, f"no data for {self.reconnect_timeout:g} s")
                return Pull()
            if now >= deadline:
                return Pull()
            time.sleep(self.poll_interval)
        self._last_data = now
        if self.clock_map.due(now) and (step := self.clock_map.sync()):
            self._event("clock", now, wall_clock_step=step)
        stamps = self.clock_map.to_local(data[self.timestamp_row])
        if self.package_clock is not None:
            stamps = self.package_clock.stamps(stamps, data[self.package_row])
        values = data[self.rows] * self.scale[:, None]
        self.n_samples += data.shape[1]
        markers = Markers()
        if self.marker_row is not None:
            hit = np.flatnonzero(data[self.marker_row])
            if hit.size:
                markers = Markers(stamps[hit].copy(),
                                  [marker_text(v) for v in data[self.marker_row, hit]])
        return Pull(Chunk(values.astype(np.float32), stamps), markers)

    def close(self) -> None:
        if self._board is None:
            return
        bf = brainflow()
        board, self._board = self._board, None
        with contextlib.suppress(bf.BrainFlowError):
            board.stop_stream()
        with contextlib.suppress(bf.BrainFlowError):
            board.release_session()


def marker_text(value: float) -> str:
    """A marker value as a string: integers without ``.0``."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)
