"""``etmira synth OUT --views N``: write synthetic mirror sides in the real data layout."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
from tqdm import tqdm

from simulation.cli import at_least
from simulation.synth import generate_view, synthetic_view_id, write_view
from simulation.synth.damage import DAMAGES
from simulation.synth.generate import DEFAULT_DIFFICULTY
from simulation.synth.preview import preview_images


def _size(text):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 2048x2048, got {text!r}") from None
    if w < 64 or h < 64:
        raise argparse.ArgumentTypeError(f"size must be at least 64x64, got {text!r}")
    return w, h


def _positive(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _difficulty(text):
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"difficulty must be in [0, 1], got {text}")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="generate synthetic engraved mirrors",
        description="Write synthetic engraved, corroded bronze mirror sides in the real layout: "
        "OUT/<object>/PS/<id>_N|_RHO|_U.tif, OUT/drawings/<id>_drawings.png, "
        "OUT/masks/<id>_mask.png. View i of seed S is the same whatever --views is.",
    )
    parser.add_argument("out", help="output folder (created if missing)")
    parser.add_argument("--views", type=at_least(1), default=1, help="number of views (default 1)")
    parser.add_argument(
        "--first",
        type=at_least(0),
        default=1,
        help="index of the first view: ids SYN-<first>_R... (default 1)",
    )
    parser.add_argument(
        "--size",
        type=_size,
        default=(2048, 2048),
        help="view size WxH in px (default 2048x2048; full size 8964x6716)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--difficulty",
        type=_difficulty,
        default=DEFAULT_DIFFICULTY,
        help=f"damage and corrosion in [0, 1] (default {DEFAULT_DIFFICULTY})",
    )
    parser.add_argument(
        "--damage",
        choices=DAMAGES,
        default="default",
        help="damage recipe: the default one (the networks' training views) or "
        "'grooves': groove-like scratches, crusts filling grooves, faint "
        "shallow lines (default: default)",
    )
    parser.add_argument(
        "--px-per-mm",
        type=_positive,
        default=45.0,
        help="pixel pitch; line widths follow it (default 45, the real one)",
    )
    parser.add_argument(
        "--compact",
        action="store_true",
        help="round the maps far below their noise so that they compress to "
        "about a quarter (used for the bundled sample)",
    )
    parser.add_argument(
        "--preview",
        metavar="DIR",
        help="also write preview PNGs (depth, raking light, albedo, drawings)",
    )
    parser.add_argument(
        "--preview-size",
        type=at_least(16),
        default=1024,
        metavar="PX",
        help="longer side of the preview PNGs (default 1024)",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    preview = Path(args.preview) if args.preview else None
    if preview is not None:
        preview.mkdir(parents=True, exist_ok=True)
    for index in tqdm(range(args.first, args.first + args.views), desc="synth", unit="view"):
        view_id = synthetic_view_id(index)
        # one independent stream per view index, so views do not depend on --views or --first
        view = generate_view(
            size=args.size,
            seed=[args.seed, index],
            difficulty=args.difficulty,
            px_per_mm=args.px_per_mm,
            damage=args.damage,
        )
        write_view(args.out, view_id, view, compact=args.compact)
        if preview is not None:
            for kind, image in preview_images(view, max_side=args.preview_size).items():
                bgr = image if image.ndim == 2 else image[..., ::-1]
                cv2.imwrite(str(preview / f"{view_id}_{kind}.png"), bgr)
    return 0
