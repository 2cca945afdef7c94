"""``etmira annotate``: the desktop app (PySide6 is imported only when the command runs)."""

from __future__ import annotations

import argparse
import dataclasses

from annotator.cli.qt_libraries import check_qt_platform
from annotator.core.render import BASE_LAYERS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "annotate",
        help="trace the drawing of a mirror view in the desktop app",
        description="Open a view or a project in the annotator. With no argument, the "
        "bundled sample view opens.",
    )
    parser.add_argument(
        "path",
        nargs="?",
        metavar="VIEW | PROJECT",
        help="a view folder (ROOT/<object>/PS, or a folder holding the five files), a data-set "
        "root holding one view, any file of a view, or an .etmira project",
    )
    parser.add_argument(
        "--base",
        metavar="CKPT",
        help="base model for a view opened the first time (default: shipped)",
    )
    parser.add_argument(
        "--refiner",
        metavar="CKPT",
        help="refinement network for it (default: shipped, with the shipped base)",
    )
    parser.add_argument(
        "--project-dir",
        metavar="DIR",
        help="where the projects of views opened directly are kept (default: the app data folder)",
    )
    parser.add_argument(
        "--screenshot",
        metavar="OUT.png",
        help="render the main window after loading, save it as PNG and exit",
    )
    parser.add_argument("--layer", choices=BASE_LAYERS, help="base image to show first")
    parser.add_argument(
        "--raking",
        metavar="AZIMUTH,ELEVATION",
        type=_light,
        help="raking-light direction in degrees (implies --layer raking)",
    )
    parser.add_argument(
        "--opacity",
        type=_opacity,
        metavar="0..1",
        help="opacity of the traced-lines overlay (0 hides it)",
    )
    parser.add_argument(
        "--error-map",
        action="store_true",
        help="show the error map against the ground truth (when there is one)",
    )
    parser.add_argument(
        "--strokes",
        metavar="STROKES.json",
        help="apply the strokes of a stroke journal after loading (for demos)",
    )
    parser.add_argument(
        "--next-patch",
        action="store_true",
        help="go to the worst patch after loading, as the N key does",
    )
    parser.add_argument(
        "--size",
        metavar="WxH",
        type=_size,
        default=(1600, 1000),
        help="window size (default 1600x1000)",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    check_qt_platform()  # before Qt, whose own abort names no package to install
    from annotator.qt.app import StartOptions, main  # Qt: only when the app starts

    # The options mirror the parser's destinations one to one.
    options = StartOptions(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(StartOptions)}
    )
    return main(options)


def _light(text: str) -> tuple[float, float]:
    try:
        azimuth, elevation = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected AZIMUTH,ELEVATION in degrees, got {text!r}"
        ) from None
    if not -90 <= elevation <= 90:
        raise argparse.ArgumentTypeError(f"elevation must be in [-90, 90], got {elevation}")
    return azimuth, elevation


def _opacity(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"opacity must be in [0, 1], got {value}")
    return value


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if width < 320 or height < 240:
        raise argparse.ArgumentTypeError(f"window size must be at least 320x240, got {text!r}")
    return width, height
