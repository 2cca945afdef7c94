"""``etmira stroke-stats GT_DIR``: fit the stroke-width Gamma to a folder of drawings masks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from refinement_model.errors import InputError
from refinement_model.imageio import read_binary_mask
from refinement_model.stroke_widths import (
    PAPER_STROKE_WIDTHS,
    fit_stroke_widths,
    half_widths,
    remove_outliers,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "stroke-stats",
        help="measure line half-widths of ground-truth drawings and fit a Gamma",
        description="Half-width = distance to the nearest background pixel at skeleton pixels of "
        "every GT_DIR/*_drawings.png (alpha channel, else channel 0; searched "
        "recursively when GT_DIR holds none directly); outliers beyond two standard "
        "deviations are dropped and a Gamma is fitted (docs/method.md).",
    )
    parser.add_argument("gt_dir", metavar="GT_DIR", help="folder of *_drawings.png masks")
    parser.add_argument(
        "--plot",
        metavar="OUT.png",
        help="write a histogram of the half-widths with the fitted density",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with the keys a, loc, scale, mean, std, n",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    folder = Path(args.gt_dir)
    if not folder.is_dir():
        raise InputError(folder, "is not a folder")
    files = sorted(folder.glob("*_drawings.png")) or sorted(folder.rglob("*_drawings.png"))
    if not files:
        raise InputError(folder, "holds no *_drawings.png masks")
    widths = [
        half_widths(read_binary_mask(path, channel="alpha"))
        for path in tqdm(files, desc="stroke-stats", unit="mask")
    ]
    kept = remove_outliers(np.concatenate(widths))
    try:
        model = fit_stroke_widths(kept, n_sigma=None)
    except ValueError as error:  # too few line pixels: a property of the masks
        raise InputError(folder, f"cannot fit a Gamma: {error}") from None
    if args.plot:
        plot_stroke_widths(kept, model, args.plot)
    if args.json:
        print(json.dumps(model.to_dict()))
    else:
        print(f"{len(files)} masks, {model.n} half-widths kept after two-sigma outlier removal")
        print(f"half-width mean {model.mean:.3f} px, std {model.std:.3f} px")
        print(f"Gamma fit: a = {model.a:.8f}, loc = {model.loc:.8f}, scale = {model.scale:.8f}")
    return 0


def plot_stroke_widths(widths, model, path: str | os.PathLike) -> None:
    """Write a PNG histogram of ``widths`` with ``model``'s density and the paper's fit.

    Uses matplotlib's object API with the Agg canvas, so no global backend is touched.
    """
    # matplotlib loads only for a plot (about 1 s), not for `etmira --help`
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    # Half-widths are distances between pixel centres (1, 1.41, 2, 2.24, ...): half-pixel bins
    # centred on the integers smooth that comb without hiding the shape.
    edges = np.arange(np.floor(widths.min()) - 0.25, widths.max() + 0.75, 0.5)
    axes.hist(widths, bins=edges, density=True, color="0.75", label=f"measured (n = {len(widths)})")
    x = np.linspace(max(widths.min() - 1, 0), widths.max() + 1, 400)
    axes.plot(
        x,
        model.pdf(x),
        color="C0",
        label=f"Gamma a={model.a:.3g}, loc={model.loc:.3g}, scale={model.scale:.3g}",
    )
    axes.plot(x, PAPER_STROKE_WIDTHS.pdf(x), color="C3", linestyle="--", label="paper's fit")
    axes.set_xlabel("half-width (px)")
    axes.set_ylabel("density")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(os.fspath(path))
