"""Data sets and synthetic generators: planted SSVEP/MI EEG, sEEG words, MEG images,
federated sites. A plug-in layer beside :mod:`bci.devices` and :mod:`bci.decoders`;
the core never imports it."""
