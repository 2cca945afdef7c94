"""Speed of the simulated annotator and of stroke rasterisation on 256 x 256 patches.

Target (issue 3): under 1 ms median per simulated stroke (add and erase) on a 256 x 256 patch;
the authors' code takes 3-4 ms. Patches are realistic: curved engraved lines of Gamma widths, a
prediction that misses stretches of them and has false positives (scratches, blobs), evolving as
the chosen strokes are burned in, as in the evaluation protocol. The naive baseline skeletonises
the whole ground truth and prediction for every stroke (what the method text describes); its time
is measured in the same run and reported as a ratio.
"""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
from skimage.morphology import skeletonize

from refinement_model.simulated_user import choose_stroke, simulate_add, simulate_erase
from refinement_model.stroke_widths import PAPER_STROKE_WIDTHS
from refinement_model.strokes import Stroke, burn_in, rasterize_stroke, stroke_channel

SIZE = 256
TARGET_MS = 1.0


def _curve(rng, n=40):
    """A smooth random curve as (n, 2) float (x, y) points."""
    start = rng.uniform(0, SIZE, 2)
    angle = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.08, n))
    steps = np.stack([np.cos(angle), np.sin(angle)], axis=1) * rng.uniform(3, 7)
    return start + np.cumsum(steps, axis=0)


def make_patch(rng):
    """(gt, prediction) bool (256, 256): lines, missed stretches, false positives."""
    radii = PAPER_STROKE_WIDTHS.sample(rng, int(rng.integers(4, 9)), scale_factor=0.5)
    gt_strokes = [Stroke("add", _curve(rng), r) for r in radii]
    gt = burn_in(np.zeros((SIZE, SIZE), bool), gt_strokes)
    misses = [
        Stroke("erase", _curve(rng, 6) * 0.3 + rng.uniform(0, SIZE, 2) * 0.7, 6.0)
        for _ in range(int(rng.integers(3, 8)))
    ]
    false = [
        Stroke("add", _curve(rng, int(rng.integers(3, 20))), float(rng.uniform(1, 3)))
        for _ in range(int(rng.integers(3, 8)))
    ]
    pred = burn_in(gt, misses + false)
    blobs = (rng.random((SIZE // 8, SIZE // 8)) < 0.03).astype(np.uint8)
    pred |= cv2.resize(blobs, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST).astype(bool) & (
        rng.random((SIZE, SIZE)) < 0.7
    )
    return gt, pred


def _median_ms(times):
    return float(np.median(times) * 1e3)


def main():
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    timings = {
        "add": [],
        "add_no_skeleton": [],
        "erase": [],
        "choose": [],
        "naive_skeletons": [],
        "rasterize": [],
        "stroke_channel_20": [],
    }
    none_count = 0
    for _ in range(20):
        gt, current = make_patch(rng)
        gt_skeleton = skeletonize(gt)
        strokes = []
        for _ in range(20):
            t0 = time.perf_counter()
            simulate_add(gt, current, rng=rng, gt_skeleton=gt_skeleton)
            t1 = time.perf_counter()
            simulate_add(gt, current, rng=rng)
            t2 = time.perf_counter()
            simulate_erase(gt, current, rng=rng)
            t3 = time.perf_counter()
            chosen = choose_stroke(gt, current, rng=rng, gt_skeleton=gt_skeleton)
            t4 = time.perf_counter()
            skeletonize(gt), skeletonize(current)
            t5 = time.perf_counter()
            timings["add"].append(t1 - t0)
            timings["add_no_skeleton"].append(t2 - t1)
            timings["erase"].append(t3 - t2)
            timings["choose"].append(t4 - t3)
            timings["naive_skeletons"].append(t5 - t4)
            if chosen is None:
                none_count += 1
                break
            t0 = time.perf_counter()
            rasterize_stroke(chosen.stroke, gt.shape)
            timings["rasterize"].append(time.perf_counter() - t0)
            strokes.append(chosen.stroke)
            current = burn_in(current, [chosen.stroke])
        t0 = time.perf_counter()
        stroke_channel(strokes, gt.shape)
        timings["stroke_channel_20"].append(time.perf_counter() - t0)

    figures = {f"{name}_median_ms": _median_ms(values) for name, values in timings.items()}
    figures["naive_over_add_erase_ratio"] = figures["naive_skeletons_median_ms"] / max(
        figures["add_median_ms"], figures["erase_median_ms"]
    )
    figures["strokes_timed"] = len(timings["add"])
    for name, value in figures.items():
        print(f"{name:34s} {value:9.4f}")
    met = figures["add_median_ms"] < TARGET_MS and figures["erase_median_ms"] < TARGET_MS
    figures["target_ms"] = TARGET_MS
    figures["target_met"] = bool(met)
    print(
        f"target: add and erase median < {TARGET_MS} ms per stroke on {SIZE} x {SIZE}: "
        f"{'met' if met else 'NOT met'}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
