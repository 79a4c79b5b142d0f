"""Per-node timing of a chain (``bci run --stats``) and the filters' in-place kernel."""

from __future__ import annotations

import mne
import numpy as np
from scipy import signal

from bci.chain import Chain
from bci.chunk import Chunk
from bci.filters import BandPass, FilterBank, Notch
from bci.quality import NonFiniteGuard
from bci.spatial import CommonAverageReference


def _chunks(x: np.ndarray, size: int):
    for start in range(0, x.shape[-1], size):
        stop = min(start + size, x.shape[-1])
        yield Chunk(x[..., start:stop], np.arange(start, stop) / 250.0)


def test_timed_chain_gives_the_same_samples_and_one_time_per_node_and_chunk():
    info = mne.create_info(6, 250.0, "eeg")
    x = (np.random.default_rng(0).standard_normal((6, 1000)) * 1e-5).astype(np.float32)
    make = lambda: Chain([NonFiniteGuard(), BandPass(l_freq=1.0, h_freq=40.0),  # noqa: E731
                          Notch(freqs=[50.0]), CommonAverageReference()])
    plain, timed = make(), make()
    plain.setup(info)
    timed.setup(info)
    assert timed.node_summary() == []
    timed.time_nodes()
    a = np.concatenate([plain.process(c).data for c in _chunks(x, 10)], axis=-1)
    b = np.concatenate([timed.process(c).data for c in _chunks(x, 10)], axis=-1)
    assert np.array_equal(a, b)
    summary = timed.node_summary()
    assert [name for name, _ in summary] == ["nonfinite_guard", "bandpass", "notch", "car"]
    assert all(q["n"] == 100 and 0 <= q["p50"] <= q["max"] for _, q in summary)


def test_filters_match_scipy_sosfilt_bit_for_bit_in_any_chunking():
    info = mne.create_info(4, 250.0, "eeg")
    x = (np.random.default_rng(1).standard_normal((4, 2000)) * 1e-5).astype(np.float32)
    node = BandPass(l_freq=2.0, h_freq=30.0, ftype="cheby1")
    node.setup(info)
    ours = np.concatenate([node.process(c).data for c in _chunks(x, 37)], axis=-1)
    zi = np.zeros((node.sos_.shape[0], 4, 2))
    ref = []
    for c in _chunks(x, 37):
        y, zi = signal.sosfilt(node.sos_, c.data, axis=-1, zi=zi)
        ref.append(y.astype(np.float32))
    assert np.array_equal(ours, np.concatenate(ref, axis=-1))
    bank = FilterBank(bands=[[8, 88], [16, 88]])
    bank.setup(info)
    whole = bank.process(Chunk(x, np.arange(2000) / 250.0)).data
    bank.reset()
    pieces = np.concatenate([bank.process(c).data for c in _chunks(x, 5)], axis=-1)
    assert whole.shape == (2, 4, 2000)
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-12)
