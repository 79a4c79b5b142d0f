"""Progress while long work runs: live drop counts from the loop, bars only on a terminal
and never with ``--quiet``."""

from __future__ import annotations

import itertools

import mne
import numpy as np

from bci.chunk import Markers
from bci.cli import progress
from bci.pipeline import Pipeline
from bci.recording import Recording, RecordingSource
from bci.runner import Branch, Loop
from bci.session import SessionConfig

SFREQ = 250.0
CH = ["O1", "Oz", "O2"]


def _session() -> SessionConfig:
    return SessionConfig.from_dict({
        "source": {"stream": "x"},
        "window": {"mode": "sliding", "length": 0.5, "step": 0.1},
        "decoder": {"kind": "fbcca", "frequencies": [8.0, 10.0]},
        "outputs": {"lsl": False},
    })


def test_a_paced_loop_reports_its_counts_while_it_runs():
    n = int(2.0 * SFREQ)
    data = np.random.default_rng(0).standard_normal((len(CH), n)).astype(np.float32) * 1e-5
    data[:, 200:210] = np.nan  # windows over these samples are skipped, and counted
    info = mne.create_info(CH, SFREQ, "eeg")
    recording = Recording(info, data, np.arange(n) / SFREQ, Markers())
    source = RecordingSource(recording, chunk_size=25)
    source.open()
    config = _session()
    pipeline = Pipeline(config, source.info, clock=source.clock)
    reports: list[dict[str, int]] = []
    (result,) = Loop(source, [Branch(pipeline)], paced=True).run(
        on_stats=reports.append, stats_every=0.5)
    # reported during the run (2 s of data played in real time), not only at the end
    assert len(reports) >= 2
    assert {"skipped_backlog", "skipped_gap", "skipped_nonfinite",
            "nonfinite_samples"} <= set(reports[-1])
    assert all(a["windows"] <= b["windows"] for a, b in itertools.pairwise(reports))
    assert reports[-1]["windows"] <= result.counts["windows"]
    assert result.counts["skipped_nonfinite"] > 0


def test_progress_is_off_with_quiet_and_off_a_terminal(capsys):
    progress.configure(quiet=True)
    try:
        assert not progress.enabled()
        assert progress.bar("x", total=3).disable
    finally:
        progress.configure(quiet=False)
    # pytest captures stderr: not a terminal, so nothing is drawn either
    assert not progress.enabled()
    with progress.waiting("waiting for stream 'x'", timeout=1.0) as done:
        assert not done.is_set()
    assert capsys.readouterr().err == ""


def test_a_training_shows_its_newest_epoch_beside_the_bar(capsys):
    import io
    import logging

    from tqdm import tqdm

    shown = tqdm(total=None, file=io.StringIO(), disable=False)
    seen: list[str] = []

    class Root(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    root = Root()
    logging.getLogger().addHandler(root)
    try:
        with progress._following("bci.decoders", shown):
            logging.getLogger("bci.decoders.eegnet").info("EEGNet: epoch %d/%d", 3, 10)
        assert "EEGNet: epoch 3/10" in shown.postfix
        # at the default WARNING level the epoch goes to the bar only, not to stderr
        assert seen == []
        assert logging.getLogger("bci.decoders").level == logging.NOTSET
        logging.getLogger("bci.decoders.eegnet").info("after the block")
        assert "after the block" not in shown.postfix
    finally:
        logging.getLogger().removeHandler(root)
        shown.close()
