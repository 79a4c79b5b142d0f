"""The errors a user can cause and fix (bad files, configs, streams), shown without traces."""

from __future__ import annotations

from bci.chain import ConfigError
from bci.decoder import ModelError
from bci.devices.lsl_source import StreamNotFoundError
from bci.devices.recording import RecordingError
from bci.pipeline import StreamMismatchError
from bci.spatial import ChannelMismatchError
from bci.spec import SpecError
from bci.training_data import TrainingError

USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError, ModelError, SpecError, StreamMismatchError, ChannelMismatchError,
    StreamNotFoundError, RecordingError, FileNotFoundError, TrainingError,
)
