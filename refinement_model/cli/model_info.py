"""``etmira model-info CKPT [--json]``: print what a checkpoint describes."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "model-info",
        help="print the metadata of a model checkpoint",
        description="Print the architecture, inputs, training facts and validation metrics "
        "stored in a checkpoint (without loading its weights).",
    )
    parser.add_argument("checkpoint", help="a .safetensors checkpoint")
    parser.add_argument("--json", action="store_true", help="print the metadata as JSON")
    parser.set_defaults(func=run)


def _lines(prefix: str, value) -> list[str]:
    if isinstance(value, dict):
        out = []
        for key in sorted(value):
            out += _lines(f"{prefix}.{key}" if prefix else str(key), value[key])
        return out
    return [f"{prefix}: {value}"]


def run(args) -> int:
    # torch loads only when the command runs, not for `etmira --help`
    from refinement_model.checkpoints import read_metadata

    metadata = read_metadata(args.checkpoint)
    if args.json:
        print(json.dumps(metadata, indent=2, sort_keys=True))
    else:
        print("\n".join(_lines("", metadata)))
    return 0
