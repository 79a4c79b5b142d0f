"""The fault-table script (benchmarks/faults.py): quick scenarios run through its functions."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "faults.py"


@pytest.fixture(scope="module")
def faults():
    spec = importlib.util.spec_from_file_location("bci_fault_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture
def ctx(faults, tmp_path):
    return faults.Context(tmp_path)


def test_the_table_covers_every_fault_of_the_issue(faults):
    assert len(faults.FAULTS) >= 30
    for f in faults.FAULTS.values():
        assert f.fault and f.injected and f.expected


def test_malformed_session_row_passes_with_measured_exit_and_message(faults, ctx):
    row = faults.run_fault(faults.FAULTS["bad_toml"], ctx)
    assert row.passed, row.observed
    assert row.observed.startswith("exit 2; 1 error line(s)")
    assert "not valid TOML" in row.observed and "session.toml" in row.observed
    assert float(row.recover) > 0  # seconds to the error, measured


def test_outage_replay_row_passes_and_counts_what_the_gap_cost(faults, ctx):
    row = faults.run_fault(faults.FAULTS["outage_replay"], ctx)
    assert row.passed, row.observed
    assert "gap events 1" in row.observed and "windows spanning it 0" in row.observed
    assert row.lost == "0 samples beyond the 200 removed"


def test_missing_channel_on_a_real_stream_fails_cleanly(faults, ctx):
    row = faults.run_fault(faults.FAULTS["missing_channels"], ctx)
    assert row.passed, row.observed
    assert "missing ['C4']" in row.observed


def test_a_failing_expectation_is_reported_as_fail(faults, ctx):
    def broken(_ctx):
        raise RuntimeError("injected")

    row = faults.run_fault(faults.Fault("x", "x", "x", "x", broken), ctx)
    assert not row.passed and "RuntimeError: injected" in row.observed
    proc = faults.Proc(0, "", "bci run: error: a\nbci run: error: b\n", 0.1)
    assert not faults.user_error(proc, "a").passed  # status 0 and two error lines


def test_readme_section_is_replaced_not_duplicated(faults, tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\nintro\n")
    monkeypatch.setattr(faults, "README", readme)
    rows = [faults.Row("a", "fault a", "how", "exp", "seen", "0", "1.00", True),
            faults.Row("b", "fault b", "how", "exp", "seen | piped", "—", "—", False)]
    for _ in range(2):
        faults.write_readme(faults.markdown(rows), rows, "python benchmarks/faults.py")
    text = readme.read_text()
    assert text.count(faults.BEGIN) == 1 and text.count("## Fault table") == 1
    assert "2 faults, 1 PASS, 1 FAIL" in text and "**FAIL**" in text
    assert "seen \\| piped" in text  # a pipe in a cell does not break the table
    assert text.startswith("# Benchmarks\n\nintro\n")


def test_script_ends_with_one_json_line(faults, capsys):
    assert faults.main(["--only", "onnx_not_onnx"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == {"rows": 1, "passed": 1, "failed": 0}
