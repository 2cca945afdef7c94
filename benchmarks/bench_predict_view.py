"""Whole-view prediction time and peak memory on the CPU, per inference backend, side by side.

Targets: a full-size view (8964 x 6716 px) in <= 8 s on 2 cores (issue 20) with the default
backend (ONNX Runtime), under 60 s with peak memory under 3 GB (issue 4). Runs
:func:`refinement_model.prediction.predict_image` (patches, batched forward, stitching) on a
normalised random depth input of the given size with each backend in turn, and compares every
backend's probabilities with the last one's (eager PyTorch by default); with ``--view DIR`` it
loads that view first (``load_view`` + ``Predictor.predict_view``, as ``etmira predict`` does).
A smaller ``--size`` gives figures extrapolated to the full view by the number of patches.
Peak memory is the process's, over all the backends run so far.

    .venv/bin/python benchmarks/bench_predict_view.py [--size 8964x6716] [--threads 2]
        [--backends onnx,torchscript,eager]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np
import torch

from refinement_model.backends import EQUALITY_TOLERANCE
from refinement_model.fast_net import FastNet
from refinement_model.nets import create_model
from refinement_model.patches import PatchGrid
from refinement_model.prediction import Predictor, predict_image
from refinement_model.shipped import WEIGHTS

FULL = (6716, 8964)
TIME_TARGET_S, ISSUE4_TIME_TARGET_S, MEMORY_TARGET_GB = 8.0, 60.0, 3.0


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="8964x6716", help="WxH of the synthetic input")
    parser.add_argument("--view", help="a view folder to load and predict instead")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--backends",
        default="onnx,torchscript,eager",
        help="comma-separated; the first is checked against the targets, the "
        "last is the reference of the equality check",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.backends.split(",")
    shipped = WEIGHTS / "base.safetensors"
    if args.view and not shipped.is_file():
        raise SystemExit("--view needs the shipped base weights")
    if shipped.is_file():
        predictors = {name: Predictor(shipped, backend=name) for name in names}
        source = str(shipped)
    else:
        torch.manual_seed(0)
        model = create_model("base").eval()
        predictors = {name: FastNet(model, backend=name) for name in names}
        source = "untrained default base"
    baseline = _peak_gb()
    if args.view:
        from refinement_model.views import load_view

        view = load_view(args.view)
        height, width = view.shape
    else:
        width, height = (int(v) for v in args.size.lower().split("x"))
        image = np.random.default_rng(0).normal(size=(1, height, width)).astype(np.float32)
    grid = PatchGrid(height, width)
    patches = len(grid)
    full_patches = len(PatchGrid(*FULL))
    measured = (height, width) == FULL
    print(
        f"model: {source}; threads {args.threads}; {width}x{height}: {patches} patches; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    rows, maps = {}, {}
    for name, predictor in predictors.items():
        net = predictor.net if isinstance(predictor, Predictor) else predictor
        # TorchScript specialises to each new batch size: the full batches and the last one
        net.warm_up({args.batch_size, patches % args.batch_size or args.batch_size}, grid.net_size)
        start, cpu = time.perf_counter(), time.process_time()
        if args.view:
            probs = predictor.predict_view(view, batch_size=args.batch_size)
        else:
            probs = predict_image(net, image, grid=grid, batch_size=args.batch_size)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
        assert probs.shape == (height, width) and probs.dtype == np.float32
        maps[name] = probs
        rows[name] = {
            "backend": net.backend,
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu_seconds, 2),
            "full_view_seconds": round(seconds * full_patches / patches, 1),
            "ms_per_patch": round(1e3 * seconds / patches, 1),
            "peak_rss_gb_so_far": round(_peak_gb(), 3),
        }
    reference = maps[names[-1]]
    chosen = rows[names[0]]
    for name, row in rows.items():
        row["max_abs_probability_diff"] = float(np.abs(maps[name] - reference).max())
        row["equal"] = row["max_abs_probability_diff"] < EQUALITY_TOLERANCE
        print(
            f"  {name:12s} {row['seconds']:7.1f} s ({row['ms_per_patch']:5.1f} ms/patch, CPU "
            f"{row['cpu_seconds']:.1f} s), full view {row['full_view_seconds']:6.1f} s "
            f"{'measured' if measured else 'extrapolated'}; "
            f"{row['seconds'] / chosen['seconds']:5.2f}x {names[0]}; max |probability diff| "
            f"to {names[-1]} {row['max_abs_probability_diff']:.1e}"
        )
    peak = _peak_gb()
    full_seconds = chosen["full_view_seconds"]
    print(
        f"full view {FULL[1]}x{FULL[0]} ({full_patches} patches) with {names[0]}: "
        f"{full_seconds:.1f} s (target <= {TIME_TARGET_S:.0f} s: "
        f"{'met' if full_seconds <= TIME_TARGET_S else 'NOT met'}); peak memory {peak:.2f} GB "
        f"(before prediction {baseline:.2f} GB; target < {MEMORY_TARGET_GB:.0f} GB: "
        f"{'met' if peak < MEMORY_TARGET_GB else 'NOT met'}"
        f"{'' if measured else ', measured at this size only'})"
    )
    print(
        json.dumps(
            {
                "width": width,
                "height": height,
                "patches": patches,
                "backends": rows,
                "full_view_seconds": full_seconds,
                "extrapolated": not measured,
                "peak_rss_gb": round(peak, 3),
                "time_target_met": full_seconds <= TIME_TARGET_S,
                "issue4_time_target_met": full_seconds < ISSUE4_TIME_TARGET_S,
                "memory_target_met": peak < MEMORY_TARGET_GB,
                "all_equal": all(row["equal"] for row in rows.values()),
                "threads": args.threads,
                "load_average": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
