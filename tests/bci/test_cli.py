"""The ``bci`` command: every documented subcommand and option, in one parser; errors as
one line with exit status 2."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bci.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]
# `bci CMD [SUB] …` rows of the README's command tables
_ROW = re.compile(r"^\| `bci ([a-z][a-z-]*)"
                  r"((?: (?:simulate|certs|server|site|brainflow)\b)?)([^`]*)`", re.M)


def _documented() -> list[tuple[list[str], list[str]]]:
    """(subcommand words, documented options) of every row of the README's tables."""
    rows = []
    for cmd, sub, rest in _ROW.findall((REPO / "README.md").read_text(encoding="utf-8")):
        words = [cmd, *sub.split()]
        rows.append((words, re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", rest)))
    return rows


def test_readme_documents_every_subcommand():
    top = {words[0] for words, _ in _documented()}
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert top == set(sub.choices)
    fl = {tuple(words) for words, _ in _documented() if words[0] == "fl"}
    assert fl >= {("fl", "simulate"), ("fl", "certs"), ("fl", "server"), ("fl", "site")}


@pytest.mark.parametrize("words,options", _documented(),
                         ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_every_documented_option_is_in_the_help(words, options, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*words, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: bci {' '.join(words)} ")
    for option in options:
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), (words, option)


def test_global_and_subcommand_options_keep_their_own_values():
    args = build_parser().parse_args(["-v", "--lsl-scope", "network", "fl", "simulate",
                                      "fed.toml"])
    assert (args.log_verbose, args.verbose, args.lsl_scope) == (True, False, "network")
    args = build_parser().parse_args(["fl", "simulate", "fed.toml", "--verbose"])
    assert (args.log_verbose, args.verbose, args.fl_command) == (False, True, "simulate")


def test_user_errors_are_one_line_with_status_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "absent.toml")]) == 2
    err = capsys.readouterr().err
    assert err == f"bci run: error: session file {tmp_path / 'absent.toml'} does not exist\n"

    session = tmp_path / "s.toml"
    session.write_text('[decoder]\nkind = "fbcca"\nfrequencies = [8.0]\nclasses = ["a", "b"]\n'
                       '[window]\nmode = "epoch"\ntmin = 0.0\ntmax = 1.0\n')
    assert main(["replay", str(session), "--input", str(tmp_path / "absent.fif")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bci replay: error: ")

    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", str(session), "--decoder", "cca", "--train", "x.fif"])
    assert exit_.value.code == 2
    assert "invalid choice: 'cca' (choose from 'fbcca', 'trca'" in capsys.readouterr().err


def test_python_m_bci_runs_the_same_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bci", "inspect", str(tmp_path / "m.onnx")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == f"bci inspect: error: decoder file {tmp_path / 'm.onnx'} does not " \
                          "exist\n"


def test_argparse_lives_only_in_bci_cli():
    folders = [REPO / d for d in ("bci", "devices", "decoders", "protocols")]
    users = sorted(str(p.relative_to(REPO)) for d in folders for p in d.rglob("*.py")
                   if re.search(r"^\s*(import argparse|from argparse )", p.read_text(), re.M))
    assert users and all(u.startswith("bci/cli/") for u in users), users
