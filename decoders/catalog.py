"""The decoders this package provides, registered by name in :data:`bci.registry.decoders`."""
