"""The ``etmira`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds a parser
whose ``func`` default takes the parsed arguments and returns an exit status. Modules are
imported to build the parser; what would make ``etmira --help`` slow (torch, Qt, onnx,
matplotlib, scikit-image's measure and filters modules) is imported inside ``func``, with a
comment; everything else at the top of the module. tests/test_cli_imports.py keeps torch and Qt
out of ``etmira --help``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from refinement_model.errors import EtmiraError

# In the order of the work: the app, the data, the networks, scoring, the evaluation.
COMMAND_MODULES = (
    "annotator.cli.annotate",
    "annotator.cli.project",
    "simulation.cli.synth",
    "simulation.cli.stroke_stats",
    "refinement_model.cli.train",
    "refinement_model.cli.model_info",
    "refinement_model.cli.export_onnx",
    "refinement_model.cli.predict",
    "refinement_model.cli.score",
    "simulation.cli.simulate",
    "simulation.cli.report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etmira",
        description="Trace the engraved drawings on Etruscan bronze mirrors with a network that "
        "completes your corrections.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input, with one line on stderr)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EtmiraError as error:
        print(f"etmira {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"etmira {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
