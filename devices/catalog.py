"""The sources and sinks this package provides, registered by kind in :mod:`bci.registry`."""
