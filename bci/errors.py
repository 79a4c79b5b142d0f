"""Every error a user can cause and fix, under one root: :class:`BCIError`.

This module imports nothing, so every layer (core, plug-ins, apps) can raise these.
The ``bci`` command prints any :class:`BCIError` as one line (``bci CMD: error: …``),
never as a traceback; the message names the file or key, what was expected and what was
found. Plug-ins subclass the closest class here for their own errors.

Classes (``BCIError`` and, indented, what derives from it; the built-in class each one
also derives from, for callers that catch those):

- :class:`ConfigError` (ValueError): session, protocol, federation files, options
  (:mod:`bci.config` raises it); ``bci.protocols.base.ProtocolConfigError``.
- :class:`SpecError` (ValueError): the ``bci`` spec of a model file.
- :class:`ModelError` (ValueError): a model or decoder-state file.
- :class:`StreamMismatchError` (ValueError): the stream does not fit the decoder;
  :class:`ChannelMismatchError`.
- :class:`StreamNotFoundError` (LookupError): no stream matched.
- :class:`RecordingError` (ValueError): a recording cannot be read;
  ``bci.devices.xdf.XDFError``, ``bci.datasets.seeg.SEEGError``.
- :class:`TrainingError` (ValueError): recordings that give no training windows.
- :class:`DeviceError` (RuntimeError): a device or process failed;
  ``bci.federated.deployment.DeploymentError``.
- ``bci.datasets.meg.MEGError`` (ValueError): an MEG recording or montage.

Errors that only a programming mistake can cause (a wrong argument to a function) stay
plain ``ValueError``/``TypeError``; the entry points (session, training, chain, pipeline)
turn what a user can cause into these classes.
"""

from __future__ import annotations


class BCIError(Exception):
    """Root of every user-facing error of the runtime, its plug-ins and its apps."""


class ConfigError(BCIError, ValueError):
    """A configuration value (session, protocol, federated file) is missing or wrong;
    the message names the key."""


class SpecError(BCIError, ValueError):
    """A decoder spec (the ``bci`` JSON in a model file) is missing a key or holds a
    wrong value."""


class ModelError(BCIError, ValueError):
    """A decoder file cannot be loaded or does not fit what it declares."""


class StreamMismatchError(BCIError, ValueError):
    """The stream does not provide what the decoder expects (rate, channels, shape)."""


class ChannelMismatchError(StreamMismatchError):
    """Channels the chain needs are missing from the stream."""


class StreamNotFoundError(BCIError, LookupError):
    """No stream matched; the message lists what was found on this machine."""


class RecordingError(BCIError, ValueError):
    """A recording cannot be read: missing, truncated, corrupt, or not what was expected."""


class TrainingError(BCIError, ValueError):
    """The recordings cannot give training windows (no events, unknown labels…)."""


class DeviceError(BCIError, RuntimeError):
    """A device or a process the session depends on failed to start or stopped."""
