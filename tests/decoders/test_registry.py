"""The decoder registry: every name once, complete meta, no torch to register or to list."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from bci.decoders.training import make_decoder

from bci import registry
from bci.cli import build_parser
from bci.session import SessionConfig

META = {"paradigms", "help", "trainable", "evaluable", "exportable", "needs_torch",
        "served_without_training", "runtime", "bank", "federated", "file_runtime"}
#: The decoders the issue and the README name.
NAMES = {"fbcca", "trca", "etrca", "ssvep-dnn", "csp-lda", "fbcsp", "eegnet", "rl-eegnet",
         "duin", "mdm", "fgmdm", "ts-lr", "ts-svm", "meg-retrieval", "fleeg"}


def _choices(command: str) -> list[str]:
    """The ``--decoder`` choices of ``bci COMMAND``, read from the parser."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    action = next(a for a in sub.choices[command]._actions if a.dest == "decoder")
    return list(action.choices)


def test_every_decoder_is_registered_once_with_complete_meta():
    entries = list(registry.decoders)
    assert {e.name for e in entries} == NAMES
    for e in entries:
        assert set(e.meta) == META, e.name
        assert e.target.startswith("bci.decoders."), e.name
        assert e.meta["paradigms"] and e.meta["help"], e.name
        # served without a model file ⇔ a runtime builder; never also trained into one
        assert e.meta["served_without_training"] == (e.meta["runtime"] is not None)
        assert not (e.meta["served_without_training"] and e.meta["trainable"])
        # what `bci train` writes (.onnx, or .npz for a file runtime), `bci run` serves
        assert e.meta["exportable"] or e.meta["file_runtime"] or not e.meta["trainable"], \
            e.name
    assert registry.decoders.names(served_without_training=True) == ["fbcca"]
    assert registry.decoders.names(bank=True) == ["meg-retrieval"]


def test_cli_choices_come_from_the_registry():
    assert _choices("evaluate") == registry.decoders.names(evaluable=True)
    assert _choices("train") == ["fbcca", *registry.decoders.names(trainable=True)]
    assert "mdm" in _choices("train") and "meg-retrieval" not in _choices("evaluate")


def test_registering_and_choices_import_no_torch():
    code = ("import sys\n"
            "from bci import registry\n"
            "from bci.cli import build_parser\n"
            "build_parser()\n"
            "print(len(list(registry.decoders)))\n"
            "print(sorted(m for m in ('torch', 'pyriemann', 'sklearn') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[:2] == [str(len(NAMES)), "[]"]


@pytest.mark.parametrize("name", sorted(NAMES))
def test_targets_resolve_and_builders_build(name):
    entry = registry.decoders.get(name)
    if entry.meta["needs_torch"] and importlib.util.find_spec("torch") is None:
        pytest.skip("needs torch (the train extra)")
    assert callable(entry.load())
    if entry.meta["runtime"] is not None:
        assert callable(registry.resolve(entry.meta["runtime"]))
    if not entry.meta["evaluable"]:
        return
    covariance = ("mdm", "fgmdm", "ts-lr", "ts-svm")
    if name in covariance and importlib.util.find_spec("pyriemann") is None:
        pytest.skip("needs pyriemann (the train extra)")
    paradigm = entry.meta["paradigms"][0]
    config = SessionConfig.from_dict({
        "window": {"mode": "epoch", "tmin": 0.0, "tmax": 1.0},
        "training": {"paradigm": paradigm, "frequencies": {"8Hz": 8.0, "10Hz": 10.0}},
    })
    estimator = make_decoder(name, config, 1000.0 if paradigm == "seeg" else 250.0)
    for method in ("fit", "predict_proba", "preprocessing"):
        assert callable(getattr(estimator, method)), (name, method)
    assert all("kind" in node for node in estimator.preprocessing())


def test_unknown_name_lists_the_registered_ones():
    from bci.errors import ConfigError

    with pytest.raises(ConfigError, match=r"decoder: unknown decoder 'cca'; expected one of "
                                          r"csp-lda, duin, eegnet, etrca, fbcca"):
        registry.decoders.get("cca", where="decoder")
