"""``bci inspect``: an ONNX decoder's ``bci`` spec."""

from __future__ import annotations

import argparse
import json

from bci.decoder import OnnxDecoder


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="show an ONNX decoder's bci spec")
    p.add_argument("model")
    p.set_defaults(func=inspect)


def inspect(args: argparse.Namespace) -> int:
    decoder = OnnxDecoder(args.model)
    print(json.dumps({"spec": json.loads(decoder.spec.to_json()),
                      "input_shape": decoder.input_shape()}, indent=2))
    return 0
