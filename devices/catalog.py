"""The sources and sinks this package provides, registered by kind in :mod:`bci.registry`."""

from bci.registry import sinks, sources

sources.register(
    "lsl", "bci.devices.lsl_source:LSLInput", live=True,
    help="an LSL data stream (source.stream/type/source_id) and optional marker stream "
         "(source.markers)")
sources.register(
    "brainflow", "bci.devices.brainflow_source:BrainFlowSource", live=True,
    help="a BrainFlow board (source.board: 'synthetic', 'cyton', 'playback' … or an id; "
         "serial_port, mac_address, ip_address … as BrainFlow takes them); needs "
         "bci-runtime[brainflow]")
sinks.register(
    "xdf", "bci.devices.session_recording:SessionRecording",
    help="the session's own XDF recording: raw input, markers and decisions "
         "(outputs.record)")
