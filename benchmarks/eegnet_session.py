"""The workload shared by the benchmarks: 64 channels at 1000 Hz, band-pass + notch +
CAR, anti-aliased decimation to 125 Hz, 1 s windows every 50 ms, and a network of
EEGNet-8,2's size (Lawhern et al. 2018: temporal kernel of half the sampling rate, 64
samples at 125 Hz) as one ONNX file carrying its bci spec."""

from __future__ import annotations

from pathlib import Path

from bci.decoders.onnx_graphs import eegnet_sized_model

from bci.datasets.synthetic import pick_channels
from bci.session import SessionConfig
from bci.spec import DecoderSpec, WindowSpec, write_spec

N_CHANNELS, SFREQ, CHUNK = 64, 1000.0, 10
DECIMATION = 8
WINDOW_S, STEP_S = 1.0, 0.05
CHANNELS = pick_channels(N_CHANNELS, paradigm="mi")
PREPROCESSING = [
    {"kind": "bandpass", "l_freq": 1.0, "h_freq": 40.0},
    {"kind": "notch", "freqs": [50.0]},
    {"kind": "car"},
    {"kind": "decimate", "factor": DECIMATION},
]


def write_model(path: Path, *, n_channels: int = N_CHANNELS, optimize: bool = True) -> Path:
    """Write the EEGNet-sized decoder with its spec to ``path``.

    ``n_channels`` other than 64 takes the first channels of
    :func:`~bci.datasets.synthetic.pick_channels` (the simulator's own order).
    ``optimize`` as :func:`bci.spec.write_spec` (the project's files hold the exact
    rewritten graph; ``False`` writes the layers in EEGNet's own order).
    """
    n_times = round(WINDOW_S * SFREQ / DECIMATION)
    channels = CHANNELS if n_channels == N_CHANNELS else pick_channels(n_channels,
                                                                       paradigm="mi")
    spec = DecoderSpec(
        paradigm="mi", classes=["left", "right", "feet", "rest"], ch_names=channels,
        sfreq=SFREQ, window=WindowSpec(mode="sliding", length=WINDOW_S, step=STEP_S),
        preprocessing=PREPROCESSING, name="EEGNet-sized (random weights, benchmark load)",
    )
    write_spec(eegnet_sized_model(n_channels, n_times, 4, kernel=64), spec, path,
               optimize=optimize)
    return path


def session(model: Path, stream: str, *, threads: int = 1) -> SessionConfig:
    return SessionConfig.from_dict({
        "source": {"stream": stream, "resolve_timeout": 20.0},
        "decoder": {"path": str(model), "threads": threads},
        "outputs": {"lsl": f"{stream}-decisions"},
    })


def session_toml(model: Path, stream: str, path: Path) -> Path:
    path.write_text(
        f'[source]\nstream = "{stream}"\nresolve_timeout = 20.0\n\n'
        f'[decoder]\npath = "{model}"\nthreads = 1\n\n'
        f'[outputs]\nlsl = "{stream}-decisions"\n'
    )
    return path
