"""``etmira predict VIEW... [--base CKPT] [--refiner CKPT] -o OUT_DIR``: segment whole views.

The prediction is the app's start (:mod:`refinement_model.start`): the base model, then the
refiner with no strokes over every patch; ``--start base`` gives the base model's alone.

Per view, writes ``<view_id>_prediction.png`` (binary mask, 0/255, full resolution) and
``<view_id>_probability.png`` (line probability scaled to 0..255), both zero outside the
mirror area. With ``--score``, views with ground truth are scored (pFM, IoU).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from refinement_model.errors import InputError
from refinement_model.imageio import write_png
from refinement_model.metrics import score_masks
from refinement_model.shipped import shipped_checkpoint

# Imported when the command runs, so that `etmira --help` does not wait for them:
# refinement_model.start (torch) and refinement_model.views (scikit-image's filters).


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict the line masks of whole views as the app starts them",
        description="Predict the engraved lines of every view under the given folders and "
        "write a binary mask and a probability map per view.",
    )
    parser.add_argument(
        "views",
        nargs="+",
        metavar="VIEW",
        help="data-set roots, view folders (ROOT/<object>/PS) or files of views (real layout)",
    )
    parser.add_argument("-o", "--out", required=True, metavar="OUT_DIR")
    parser.add_argument(
        "--base", metavar="CKPT", help="base checkpoint (default: the shipped weights)"
    )
    parser.add_argument(
        "--refiner", metavar="CKPT", help="refiner checkpoint (default: the shipped weights)"
    )
    parser.add_argument(
        "--start",
        choices=("refined", "base"),
        default="refined",
        help="refined: the base model then the refiner with no strokes, as the "
        "app starts (default); base: the base model alone",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="probability above which a pixel is a line (default 0.5)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--score",
        action="store_true",
        help="score views that have ground truth; print one JSON line each",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from refinement_model.start import start_predictor
    from refinement_model.views import find_views_in, load_view

    if not 0 < args.threshold < 1:
        raise InputError(None, f"--threshold must be in (0, 1), got {args.threshold}")
    files = find_views_in(args.views)
    refiner = (args.refiner or shipped_checkpoint("refiner")) if args.start == "refined" else None
    predictor = start_predictor(args.base or shipped_checkpoint("base"), refiner)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scores = []
    for number, view_files in enumerate(files, 1):
        view = load_view(view_files.depth)
        grid = predictor.grid(*view.shape)
        with tqdm(
            total=len(grid), desc=f"{view.view_id} ({number}/{len(files)})", unit="patch"
        ) as bar:
            probs = predictor.predict_view(
                view,
                batch_size=args.batch_size,
                progress=lambda done, total: bar.update(done - bar.n),
            )
        probs[~view.mirror_mask] = 0
        mask = probs > args.threshold
        write_png(out / f"{view.view_id}_prediction.png", mask)
        write_png(out / f"{view.view_id}_probability.png", np.round(probs * 255).astype(np.uint8))
        if args.score and view.ground_truth is not None:
            result = score_masks(mask, view.ground_truth, mask=view.mirror_mask)
            scores.append(result)
            print(json.dumps({"view": view.view_id, **{k: round(v, 4) for k, v in result.items()}}))
    if scores:
        means = {k: round(float(np.mean([s[k] for s in scores])), 4) for k in scores[0]}
        print(json.dumps({"view": "mean", **means}))
    return 0
