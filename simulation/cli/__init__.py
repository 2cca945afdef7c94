"""``etmira`` subcommands of the simulation package (see ``annotator.cli``).

``etmira`` imports every command module to build its parser: what would make ``etmira --help``
slow (torch, onnx, matplotlib) is imported inside a command's ``func``, the rest at the top.
"""

import argparse


def at_least(low: int):
    """An argparse ``type`` for integers of at least ``low``."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse
