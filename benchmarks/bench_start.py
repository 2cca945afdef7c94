"""Whole-view pFM and speed of the automatic start (issue 19: mean pFM >= 0.75 on the default
test views), next to the base network's.

The start (``refinement_model.start.StartPredictor``) is the base network followed by the
refiner with no strokes on every patch. Per view it prints the pFM inside the mirror area of the
base and of each start option, and the time per patch and per megapixel of each. ``--options``
compares several refiner options (ORIENTATIONSxITERATIONS); choose them on the validation views
(``data/val``), never on the test views the figures are reported on.

    .venv/bin/python benchmarks/bench_start.py [VIEW_DIR ...] [--options 4x2,1x1,...]
        [--base CKPT] [--refiner CKPT]

Defaults: data/eval (``etmira synth data/eval --views 3 --first 201 --seed 3``), the start's
options and the shipped weights. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

TARGET_PFM = 0.75


def _options(text: str):
    from refinement_model.refiner_options import RefinerOptions

    try:
        return [RefinerOptions.parse(item) for item in text.split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main() -> None:
    import numpy as np

    from refinement_model.metrics import score_masks
    from refinement_model.patch_refiner import PatchRefiner
    from refinement_model.prediction import Predictor
    from refinement_model.shipped import shipped_checkpoint
    from refinement_model.start import START_REFINEMENT, StartPredictor
    from refinement_model.views import find_views, load_view, network_input

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("views", nargs="*", default=["data/eval"], metavar="VIEW_DIR")
    parser.add_argument(
        "--options",
        type=_options,
        default=[START_REFINEMENT],
        help="refiner options to compare, e.g. 1x1,4x1,4x2 (default: the "
        f"start's, {START_REFINEMENT.label})",
    )
    parser.add_argument("--base", default=None, metavar="CKPT")
    parser.add_argument("--refiner", default=None, metavar="CKPT")
    args = parser.parse_args()

    base = Predictor(args.base or shipped_checkpoint("base"))
    refiner = PatchRefiner(args.refiner or shipped_checkpoint("refiner"))
    starts = {
        options.label: StartPredictor(base, refiner.with_options(options))
        for options in args.options
    }
    files = [f for folder in args.views for f in find_views(folder) if f.drawings is not None]
    if not files:
        parser.error(f"no view with ground truth under {', '.join(args.views)}")
    pfm = {name: {} for name in ["base", *starts]}
    seconds = dict.fromkeys(pfm, 0.0)
    patches = megapixels = 0
    for view_files in files:
        view = load_view(view_files.depth)
        image = network_input(view, base.net.spec.inputs)
        grid = base.grid(*view.shape)
        patches += len(grid)
        megapixels += view.shape[0] * view.shape[1] / 1e6
        predictors = {"base": base, **starts}
        for name, predictor in predictors.items():
            started = time.perf_counter()
            if name == "base":
                probabilities = predictor.predict_view(view)
            else:
                probabilities = predictor.predict_image(image, grid)
            seconds[name] += time.perf_counter() - started
            pfm[name][view.view_id] = score_masks(
                probabilities > 0.5, view.ground_truth, mask=view.mirror_mask
            )["pfm"]
        print(
            f"{view.view_id}: "
            + ", ".join(f"{name} {pfm[name][view.view_id]:.4f}" for name in pfm),
            flush=True,
        )
    results = {}
    for name in pfm:
        mean = float(np.mean(list(pfm[name].values())))
        results[name] = {
            "pfm": {k: round(v, 4) for k, v in pfm[name].items()},
            "mean_pfm": round(mean, 4),
            "ms_per_patch": round(1000 * seconds[name] / patches, 1),
            "s_per_megapixel": round(seconds[name] / megapixels, 3),
        }
        print(
            f"{name:>5}: mean pFM {mean:.4f}, {results[name]['ms_per_patch']} ms per patch, "
            f"{results[name]['s_per_megapixel']} s per megapixel"
            + (
                ""
                if name == "base"
                else f" (target mean >= {TARGET_PFM}: {'met' if mean >= TARGET_PFM else 'not met'})"
            )
        )
    print(
        json.dumps(
            {
                "views": args.views,
                "patches": patches,
                "megapixels": round(megapixels, 2),
                "results": results,
                "target_pfm": TARGET_PFM,
            }
        )
    )


if __name__ == "__main__":
    main()
