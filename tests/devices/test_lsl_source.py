"""The LSL data source's pull, over real liblsl outlets and inlets on this machine."""

from __future__ import annotations

import threading
import time

import numpy as np
from bci.devices.lsl_source import LSLSource
from streams import make_outlet

CH = ["C3", "Cz", "C4"]
SFREQ = 1000.0


def _push(outlet, start: int, n: int) -> None:
    data = np.arange(start, start + n, dtype=np.float32)[:, None].repeat(len(CH), 1)
    outlet.push_chunk(np.ascontiguousarray(data), (100.0 + np.arange(start, start + n)
                                                   / SFREQ).tolist())


def _source(unique_name, chunk):
    outlet = make_outlet(unique_name, CH, SFREQ, chunk=chunk)
    source = LSLSource(name=unique_name, resolve_timeout=5.0, wait="block")
    source.open()
    source.REST_WAIT = 0.2  # generous: the machine may be busy; the rule is what's tested
    return outlet, source


def _settle(outlet, source, chunk: int, n_chunks: int) -> int:
    """Send whole chunks one by one, each pulled whole; returns samples sent."""
    sent = 0
    for _ in range(n_chunks):
        _push(outlet, sent, chunk)
        sent += chunk
        got = 0
        while got < chunk:
            pulled = source.pull(1.0)
            assert pulled is not None
            got += pulled.n_samples
    return sent


def _split_push(outlet, start: int, parts: list[int], pause: float) -> threading.Thread:
    def send():
        time.sleep(0.05)  # the pull is waiting by then
        i = start
        for n in parts:
            _push(outlet, i, n)
            i += n
            time.sleep(pause)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_a_pull_woken_by_a_chunks_first_sample_waits_for_its_rest(unique_name):
    """The sender's 10-sample chunk reaches the inlet as 1 + 9 samples 20 ms apart (as
    liblsl's receiving thread sometimes queues it): one pull still returns all 10."""
    outlet, source = _source(unique_name, 10)
    try:
        sent = _settle(outlet, source, 10, 40)
        assert source._usual == 10
        thread = _split_push(outlet, sent, [1, 9], pause=0.02)
        chunk = source.pull(1.0)
        thread.join()
        assert chunk.n_samples == 10
        np.testing.assert_array_equal(chunk.data[0], np.arange(sent, sent + 10))
        # a chunk that really is shorter comes after the wait, nothing lost
        thread = _split_push(outlet, sent + 10, [4], pause=0.0)
        chunk = source.pull(1.0)
        thread.join()
        assert chunk.n_samples == 4
        np.testing.assert_array_equal(chunk.data[0], np.arange(sent + 10, sent + 14))
    finally:
        source.close()


def test_a_stream_of_single_samples_never_waits_for_more(unique_name):
    outlet, source = _source(unique_name, 1)
    try:
        sent = _settle(outlet, source, 1, 40)
        assert source._usual == 1
        thread = _split_push(outlet, sent, [1, 1], pause=0.3)
        first = source.pull(1.0)
        second = source.pull(1.0)
        thread.join()
        # the first pull did not wait the 0.2 s for a second sample
        assert (first.n_samples, second.n_samples) == (1, 1)
    finally:
        source.close()
