"""Speed of the evaluation protocol: 3000 steps on one default test view (target < 15 min).

Generates one default synthetic test view (2048 x 2048, the test seed of
scripts/train_shipped.sh), predicts it with the shipped base model and runs the protocol with the
shipped refiner as the app refines (``simulation.runs.refiner_options``: four orientations,
refined twice), oracle ranking, one seed.

    .venv/bin/python benchmarks/bench_simulate.py [--steps 3000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

TARGET_SECONDS = 15 * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()

    from refinement_model.patch_refiner import PatchRefiner
    from refinement_model.prediction import Predictor
    from refinement_model.shipped import shipped_checkpoint
    from refinement_model.views import find_views, load_view, network_input
    from simulation.evaluate import probability_logits
    from simulation.protocol import ProtocolConfig, run_protocol
    from simulation.runs import refiner_options

    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "annotator",
                "synth",
                folder,
                "--views",
                "1",
                "--first",
                "201",
                "--seed",
                "3",
            ],
            check=True,
            capture_output=True,
        )
        view = load_view(find_views(folder)[0].depth)
    predictor = Predictor(shipped_checkpoint("base"))
    refiner = PatchRefiner(shipped_checkpoint("refiner"), options=refiner_options("both"))
    started = time.perf_counter()
    probabilities = predictor.predict_view(view)
    predict_seconds = time.perf_counter() - started
    image = network_input(view, predictor.net.spec.inputs)
    started = time.perf_counter()
    records = run_protocol(
        image,
        probability_logits(probabilities),
        view.ground_truth,
        refiner.refine,
        mirror_mask=view.mirror_mask,
        grid=predictor.grid(*view.shape),
        config=ProtocolConfig(steps=args.steps),
        rng=0,
    )
    seconds = time.perf_counter() - started
    per_3000 = seconds / max(args.steps, 1) * 3000
    print(
        f"view {view.view_id} {view.shape[1]}x{view.shape[0]}: prediction {predict_seconds:.1f} s"
    )
    print(
        f"{args.steps} steps in {seconds:.1f} s "
        f"({1000 * seconds / max(args.steps, 1):.1f} ms/step); "
        f"3000 steps: {per_3000 / 60:.1f} min (target < {TARGET_SECONDS // 60} min: "
        f"{'met' if per_3000 < TARGET_SECONDS else 'NOT met'})"
    )
    print(
        f"pFM human only {records[0]['pfm_human']:.3f} -> {records[-1]['pfm_human']:.3f}, "
        f"human + network {records[-1]['pfm_network']:.3f}, strokes {records[-1]['strokes']}"
    )
    print(
        json.dumps(
            {
                "steps": args.steps,
                "seconds": round(seconds, 1),
                "ms_per_step": round(1000 * seconds / max(args.steps, 1), 2),
                "minutes_per_3000_steps": round(per_3000 / 60, 2),
                "target_met": per_3000 < TARGET_SECONDS,
                "pfm_start": records[0]["pfm_human"],
                "pfm_human_end": records[-1]["pfm_human"],
                "pfm_network_end": records[-1]["pfm_network"],
            }
        )
    )


if __name__ == "__main__":
    main()
