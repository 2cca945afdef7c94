"""`etmira simulate`: the paper's evaluation protocol on views with ground truth."""

from __future__ import annotations

import argparse

from refinement_model.refiner_options import ORIENTATIONS
from simulation.cli import at_least
from simulation.evaluate import simulate_views
from simulation.runs import MAIN_SETTINGS, SETTINGS, STARTS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate an annotator correcting views, with and without the network",
        description="Run the evaluation protocol of 'Fusing Forces' (worst patch first; simulated "
        "add/erase strokes; refinement; accept rule) on views with ground truth, and write one "
        "CSV per view, setting and seed plus a manifest into --out. Summarise with "
        "`etmira report`.",
    )
    parser.add_argument(
        "views",
        nargs="+",
        metavar="VIEW",
        help="data-set roots, view folders (ROOT/<object>/PS) or files of "
        "views (every view with ground truth)",
    )
    parser.add_argument("--base", metavar="CKPT", help="base checkpoint (default: shipped)")
    parser.add_argument("--refiner", metavar="CKPT", help="refiner checkpoint (default: shipped)")
    parser.add_argument("--steps", type=int, default=3000, help="interactions per run (3000)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per setting (3)")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        metavar="K",
        help="seeds K..K+SEEDS-1 (default 0); more seeds for a folder that has the first ones",
    )
    parser.add_argument("--record-every", type=int, default=10, help="steps between scorings")
    parser.add_argument(
        "--settings",
        type=_settings,
        default=list(MAIN_SETTINGS),
        help="comma-separated settings among "
        + ", ".join(SETTINGS)
        + ", or 'all' (default: "
        + ",".join(MAIN_SETTINGS)
        + ")",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="VIEW_ID",
        help="simulate only this view (repeatable); e.g. one process per view, "
        "all writing to the same --out",
    )
    parser.add_argument(
        "--iterations",
        type=at_least(1),
        metavar="K",
        help="refine K times per stroke instead of the app's twice (an "
        "ablation; one_pass stays one pass)",
    )
    parser.add_argument(
        "--orientations",
        type=int,
        choices=ORIENTATIONS,
        metavar="K",
        help="average each refinement over K orientations instead of the app's four (an "
        "ablation; one_pass stays one)",
    )
    parser.add_argument(
        "--start",
        choices=STARTS,
        default="refined",
        help="start from the app's prediction, the base network refined with "
        "no strokes (refined, the default), or from the base network alone "
        "(base, the paper's protocol)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.set_defaults(func=run)


def _settings(text: str) -> list[str]:
    names = list(SETTINGS) if text == "all" else [s.strip() for s in text.split(",") if s.strip()]
    unknown = [name for name in names if name not in SETTINGS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown setting(s) {unknown}; choose among {', '.join(SETTINGS)} or 'all'"
        )
    return names


def run(args) -> int:
    simulate_views(
        args.views,
        out=args.out,
        base=args.base,
        refiner=args.refiner,
        steps=args.steps,
        seeds=args.seeds,
        first_seed=args.first_seed,
        settings=args.settings,
        record_every=args.record_every,
        only=args.only,
        iterations=args.iterations,
        orientations=args.orientations,
        start=args.start,
        show_progress=True,
    )
    print(f"wrote runs to {args.out}; summarise with: etmira report {args.out}")
    return 0
