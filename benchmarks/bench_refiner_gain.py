"""Single-stroke gain of a refiner (issue 4: at least +5% relative pFM on validation patches).

The measure training selects on (``refinement_model.training.refiner.refined_scores``): 48
patches with lines per view, one simulated stroke each against the base prediction; the pFM of
the refined patch (stroke burned in) over the pFM of the human-only patch (stroke burned into
the base prediction). Run it on the validation views to recheck a checkpoint's recorded figure,
or on the test views, which choose nothing. With ``--strokes K`` it also follows each patch
through K strokes, each drawn against the refined patch as in the app (the gain after each).

    .venv/bin/python benchmarks/bench_refiner_gain.py [VIEW_DIR ...] [--refiner CKPT]
        [--base CKPT] [--seed 0] [--strokes 1] [--orientations 1] [--iterations 1]

``--orientations K`` averages the refiner's logits over K orientations of each patch (see
``refinement_model.fast_net.FastNet``); ``--iterations N`` refines N times, each refinement
from the logits of the one before (``RefinerOptions(iterations=N)``; the app: 4 and 2).

Defaults: data/val and the shipped weights. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json

TARGET_GAIN = 0.05


def main() -> None:
    from refinement_model.checkpoints import load_checkpoint
    from refinement_model.fast_net import FastNet
    from refinement_model.refiner_options import ORIENTATIONS
    from refinement_model.shipped import shipped_checkpoint
    from refinement_model.training.base import GridOptions
    from refinement_model.training.data import load_training_views
    from refinement_model.training.refiner import refined_scores, validation_patches

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("views", nargs="*", default=["data/val"], metavar="VIEW_DIR")
    parser.add_argument("--base", default=None, metavar="CKPT")
    parser.add_argument("--refiner", default=None, metavar="CKPT")
    parser.add_argument("--seed", type=int, default=0, help="patches and strokes (default 0)")
    parser.add_argument(
        "--strokes",
        type=int,
        default=1,
        metavar="K",
        help="strokes per patch, each against the refined patch (default 1)",
    )
    parser.add_argument(
        "--orientations",
        type=int,
        default=1,
        choices=ORIENTATIONS,
        help="average the refined logits over K orientations (default 1)",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=1,
        metavar="N",
        help="refine N times, each from the one before's logits (default 1)",
    )
    args = parser.parse_args()
    if args.strokes < 1 or args.iterations < 1:
        parser.error(
            f"--strokes and --iterations must be >= 1, got {args.strokes}, {args.iterations}"
        )

    base_path = args.base or shipped_checkpoint("base")
    refiner_path = args.refiner or shipped_checkpoint("refiner")
    base, metadata = load_checkpoint(base_path, kind="base")
    geometry = GridOptions.of_checkpoint(metadata)
    views = load_training_views(args.views, inputs=base.spec.inputs, factor=1)
    patches = validation_patches(
        FastNet(base, net_size=geometry.net_size), views, geometry, seed=args.seed
    )
    refiner, _ = load_checkpoint(refiner_path, kind="refiner", inputs=base.spec.inputs)
    net = FastNet(refiner, net_size=geometry.net_size, orientations=args.orientations)
    scores = refined_scores(
        net,
        patches,
        strokes=args.strokes,
        scale=geometry.factor,
        seed=args.seed,
        iterations=args.iterations,
    )
    met = scores["gain"] >= TARGET_GAIN
    print(
        f"refiner {refiner_path} on {', '.join(args.views)} (seed {args.seed}, "
        f"{args.orientations} orientation{'s' if args.orientations > 1 else ''}, "
        f"{args.iterations} iteration{'s' if args.iterations > 1 else ''}): "
        f"{scores['patches']} patches, human-only pFM {scores['human_pfm']:.4f} -> refined "
        f"{scores['refined_pfm']:.4f}: gain {100 * scores['gain']:+.2f}% "
        f"(target >= {100 * TARGET_GAIN:+.0f}%: {'met' if met else 'not met'})"
    )
    if args.strokes > 1:
        print(
            "gain after 1..K strokes: "
            + " ".join(f"{100 * g:+.2f}%" for g in scores["gains"])
            + f"; mean {100 * scores['sequence_gain']:+.2f}%"
        )
    print(
        json.dumps(
            {
                **{
                    k: round(v, 5) if isinstance(v, float) else v
                    for k, v in scores.items()
                    if k != "gains"
                },
                "gains": [round(g, 5) for g in scores["gains"]],
                "views": args.views,
                "seed": args.seed,
                "orientations": args.orientations,
                "iterations": args.iterations,
                "target_met": met,
            }
        )
    )


if __name__ == "__main__":
    main()
