"""`etmira report`: plots, report.md and summary.json from an `etmira simulate` folder."""

from __future__ import annotations

import json

from simulation.report import write_report


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="plots and headline numbers of a simulation",
        description="Read the runs that `etmira simulate` wrote and write PNG plots of pFM "
        "against annotated pixels, report.md (headline numbers, ablation tables) and "
        "summary.json.",
    )
    parser.add_argument("folder", metavar="DIR", help="folder written by etmira simulate")
    parser.add_argument("--out", metavar="DIR", help="where to write (default: DIR)")
    parser.set_defaults(func=run)


def run(args) -> int:
    summary = write_report(args.folder, args.out)
    print(
        json.dumps(
            {
                k: summary.get(k)
                for k in (
                    "peak_relative_gain",
                    "effort_reduction",
                    "initial_pfm",
                    "final_pfm_human",
                    "final_pfm_network",
                    "spearman_gt_free",
                )
            },
            indent=2,
        )
    )
    return 0
