"""``bci inspect``: a decoder model file's ``bci`` spec (``.onnx`` or ``.npz``)."""

from __future__ import annotations

import argparse
import json


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="show a decoder model file's bci spec")
    p.add_argument("model")
    p.set_defaults(func=inspect)


def inspect(args: argparse.Namespace) -> int:
    from bci.decoder import open_model  # onnxruntime, numpy: only when inspecting

    decoder = open_model(args.model)
    print(json.dumps({"spec": json.loads(decoder.spec.to_json()),
                      "input_shape": decoder.input_shape()}, indent=2))
    return 0
