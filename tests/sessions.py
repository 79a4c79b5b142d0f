"""Session files the tests share."""

#: FBCCA on 1.5 s epochs of the 4-class SSVEP simulator's (and the exo recordings') cues.
SSVEP_FBCCA_EPOCHS = """
[window]
mode = "epoch"
tmin = 0.14
tmax = 1.64
events = { "8Hz" = "8Hz", "10Hz" = "10Hz", "12Hz" = "12Hz", "15Hz" = "15Hz" }

[decoder]
kind = "fbcca"
frequencies = [8.0, 10.0, 12.0, 15.0]
n_harmonics = 3
"""
