"""``bci stream brainflow``: a device SDK's board bridged to LSL."""

from __future__ import annotations

import argparse
import threading

from bci.cli import interrupt
from bci.errors import ConfigError


def add_commands(sub: argparse._SubParsersAction) -> None:
    text = "bridge a device to LSL (data and marker streams)"
    p = sub.add_parser("stream", help=text, description=text)
    devices = p.add_subparsers(dest="stream_device", required=True, metavar="DEVICE")
    text = ("Stream a BrainFlow board (OpenBCI, Muse, Unicorn …, or BrainFlow's synthetic "
            "and playback-file boards) as an LSL data stream (volts, BrainFlow's timestamps "
            "mapped onto local_clock) and a marker stream (the board's marker channel), "
            "until --duration, Ctrl-C or SIGTERM. LSL stays on this machine unless "
            "`bci --lsl-scope network` is given. Needs bci-runtime[brainflow].")
    b = devices.add_parser("brainflow", help="a BrainFlow board", description=text)
    _brainflow_arguments(b)
    b.set_defaults(func=stream_brainflow)


def _brainflow_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", required=True, metavar="NAME",
                        help="board name (synthetic, cyton, cyton_daisy, ganglion, muse_2, "
                             "unicorn, playback …; any BrainFlow BoardIds name) or id")
    for option, text in (
            ("--serial-port", "serial port (Cyton: /dev/ttyUSB0, COM3)"),
            ("--mac-address", "MAC address (Bluetooth boards)"),
            ("--ip-address", "IP address (WiFi shields, streaming board)"),
            ("--serial-number", "serial number (Muse, Unicorn, BrainBit …)"),
            ("--file", "data file of the playback board (DataFilter.write_file format)"),
            ("--master-board", "the board whose rows a playback or streaming board carries"),
            ("--other-info", "BrainFlow's other_info parameter")):
        parser.add_argument(option, default="" if option != "--master-board" else None,
                            help=text)
    parser.add_argument("--ip-port", type=int, default=0, help="IP port")
    parser.add_argument("--ip-protocol", choices=("none", "udp", "tcp"), default="none",
                        help="IP protocol (default: none)")
    parser.add_argument("--timeout", type=int, default=0, metavar="SECONDS",
                        help="seconds BrainFlow searches for the board (default: its own)")
    parser.add_argument("--channels", choices=("eeg", "exg", "all"), default="eeg",
                        help="EEG rows only (default), every ExG row, or every data row "
                             "(accelerometer … as misc)")
    parser.add_argument("--name", help="data stream name (default: brainflow-<board>)")
    parser.add_argument("--marker-name", help="marker stream name (default: NAME-markers)")
    parser.add_argument("--source-id", help="LSL source id (default: brainflow:<board>:<port>)")
    parser.add_argument("--duration", type=float, metavar="SECONDS",
                        help="seconds to stream (default: until Ctrl-C or SIGTERM)")


def stream_brainflow(args: argparse.Namespace) -> int:
    """Bridge the board until ``--duration``, the end of a playback file, or a signal."""
    from bci.devices.brainflow_bridge import BrainFlowBridge
    from bci.devices.brainflow_source import BrainFlowSource

    try:
        source = BrainFlowSource(
            args.board, serial_port=args.serial_port, mac_address=args.mac_address,
            ip_address=args.ip_address, ip_port=args.ip_port, ip_protocol=args.ip_protocol,
            serial_number=args.serial_number, file=args.file, master_board=args.master_board,
            timeout=args.timeout, other_info=args.other_info, channels=args.channels)
    except ConfigError as err:  # name the option as it was typed
        key, sep, rest = str(err).partition(": ")
        raise ConfigError(f"--{key.replace('_', '-')}: {rest}" if sep else str(err)) from None
    bridge = BrainFlowBridge(source, name=args.name, marker_name=args.marker_name,
                             source_id=args.source_id, duration=args.duration)
    stop = threading.Event()
    with interrupt.on_signal(stop.set):
        bridge.start()
        try:
            info = source.info
            print(f"Serving {source.label} board as LSL stream {bridge.name!r} "
                  f"({len(info['ch_names'])} channels at {info['sfreq']:g} Hz: "
                  f"{', '.join(info['ch_names'])}; source_id {bridge.source_id!r})", flush=True)
            print(f"Serving marker stream {bridge.marker_name!r}", flush=True)
            while not stop.is_set() and not bridge.wait(0.2):
                pass
        finally:
            bridge.stop()
    for event in bridge.events:
        print(f"{event.kind} at {event.time:.3f}: {event.detail}", flush=True)
    print(f"Stopped after {bridge.n_samples_sent} samples and {bridge.n_markers_sent} "
          "markers.", flush=True)
    return 0
