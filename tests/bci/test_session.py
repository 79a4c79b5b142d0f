"""Session files: valid ones load, malformed ones name the key and the expected value."""

from __future__ import annotations

import pytest

from bci.errors import ConfigError
from bci.session import SessionConfig

GOOD = """
[session]
name = "mi"
duration = 60

[source]
stream = "amp"
markers = "amp-markers"

[chain]
nodes = [{ kind = "notch", freqs = [50] }, { kind = "car" }]

[window]
mode = "sliding"
length = 1
step = 0.05

[decoder]
path = "model.onnx"
threads = 2

[outputs]
jsonl = "out/decisions.jsonl"
record = "out/session.xdf"
"""


def _write(tmp_path, text):
    p = tmp_path / "session.toml"
    p.write_text(text)
    return p


def test_good_session_loads(tmp_path):
    c = SessionConfig.load(_write(tmp_path, GOOD))
    assert c.name == "mi" and c.duration == 60.0
    assert c.source.stream == "amp" and c.source.scope == "machine"
    assert c.window.length == 1.0 and c.window.step == 0.05
    assert c.decoder.kind == "onnx" and c.decoder.path == tmp_path / "model.onnx"
    assert c.decoder.threads == 2
    assert c.outputs.lsl == "bci-decisions"
    assert c.outputs.record == tmp_path / "out/session.xdf"


def test_shipped_example_loads():
    from pathlib import Path

    c = SessionConfig.load(Path(__file__).parents[2] / "examples/ssvep-exo-fbcca.toml")
    assert c.decoder.kind == "fbcca" and c.window.tmin == 2.0 and c.window.tmax == 4.0


@pytest.mark.parametrize(("old", "new", "match"), [
    ('stream = "amp"', 'strem = "amp"',
     r"source\.strem: unknown key \(did you mean 'stream'\?\); expected one of \['ch_names'"),
    ('length = 1', 'length = "1s"', r"window.length: expected a number, found '1s'"),
    ('step = 0.05', 'step = -1', r"window.step: expected a positive number, found -1"),
    ('mode = "sliding"', 'mode = "rolling"',
     r"window.mode: expected one of \['sliding', 'epoch'\], found 'rolling'"),
    ('mode = "sliding"', 'mode = "sliding"\nalign = "last"',
     r"window.align: expected one of \['grid', 'newest'\], found 'last'"),
    ('threads = 2', 'threads = 0', r"decoder.threads: expected an integer ≥ 1, found 0"),
    ('{ kind = "car" }', '{ kind = "cra" }', r"chain.nodes\[1\].kind: expected one of"),
    ('freqs = [50]', 'freqs = [500000]', None),  # valid until a stream's rate is known
    ('path = "model.onnx"', 'kind = "svm"',
     r"decoder.kind: expected one of \['onnx', 'fbcca'\], found 'svm'"),
    ('duration = 60', 'duration = true', r"session.duration: expected a number, found True"),
    ('[outputs]', '[output]', r": output: unknown key \(did you mean 'outputs'\?\)"),
])
def test_malformed_session_names_key(tmp_path, old, new, match):
    text = GOOD.replace(old, new)
    assert text != GOOD
    if match is None:
        SessionConfig.load(_write(tmp_path, text))
        return
    with pytest.raises(ConfigError, match=match) as err:
        SessionConfig.load(_write(tmp_path, text))
    assert str(tmp_path / "session.toml") in str(err.value)


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"not valid TOML"):
        SessionConfig.load(_write(tmp_path, "[source\nstream = 1"))
    with pytest.raises(ConfigError, match=r"does not exist"):
        SessionConfig.load(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"decoder: required table"):
        SessionConfig.load(_write(tmp_path, "[source]\nstream='a'\n"))


def test_fbcca_options_are_checked(tmp_path):
    text = GOOD.replace('path = "model.onnx"', 'kind = "fbcca"\nfrequencies = [8, "ten"]')
    with pytest.raises(ConfigError, match=r"decoder.frequencies: expected a list of positive"):
        SessionConfig.load(_write(tmp_path, text))
    text = GOOD.replace('path = "model.onnx"', 'kind = "fbcca"\nfrequencies = [8]\nharmonics=3')
    with pytest.raises(ConfigError, match=r"decoder\.harmonics: unknown key"):
        SessionConfig.load(_write(tmp_path, text))
