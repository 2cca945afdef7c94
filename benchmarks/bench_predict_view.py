"""Whole-view prediction time and peak memory on the CPU.

Target (issue 4): a full-size view (8964 x 6716 px) in under 60 s with peak memory under 3 GB.
Runs :func:`refinement_model.inference.predict_image` (patches, batched traced forward,
stitching) on a normalised depth input of the given size; with ``--view DIR`` it loads that
view first (``load_view`` + ``Predictor.predict_view``, as ``etmira predict`` does). A smaller
``--size`` gives a figure extrapolated to the full view by the number of patches.

    .venv/bin/python benchmarks/bench_predict_view.py [--size 8964x6716] [--threads 2]

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

from refinement_model.inference import FastNet, Predictor, predict_image
from refinement_model.nets import create_model
from refinement_model.patches import PatchGrid
from refinement_model.shipped import WEIGHTS

FULL = (6716, 8964)
TIME_TARGET_S, MEMORY_TARGET_GB = 60.0, 3.0


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="8964x6716", help="WxH of the synthetic input")
    parser.add_argument("--view", help="a view folder to load and predict instead")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shipped = WEIGHTS / "base.safetensors"
    if shipped.is_file():
        predictor = Predictor(shipped)
        net, source = predictor.net, str(shipped)
    else:
        torch.manual_seed(0)
        net, source = FastNet(create_model("base").eval()), "untrained default base"
    baseline = _peak_gb()
    start = time.perf_counter()
    if args.view:
        from refinement_model.views import load_view
        view = load_view(args.view)
        height, width = view.shape
        if not shipped.is_file():
            raise SystemExit("--view needs the shipped base weights")
        probs = predictor.predict_view(view, batch_size=args.batch_size)
    else:
        width, height = (int(v) for v in args.size.lower().split("x"))
        rng = np.random.default_rng(0)
        image = rng.normal(size=(1, height, width)).astype(np.float32)
        start = time.perf_counter()
        probs = predict_image(net, image, grid=PatchGrid(height, width),
                              batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    peak = _peak_gb()
    patches = len(PatchGrid(height, width))
    full_patches = len(PatchGrid(*FULL))
    full_seconds = seconds * full_patches / patches
    assert probs.shape == (height, width) and probs.dtype == np.float32
    print(f"model: {source}; threads {args.threads}; load average {os.getloadavg()[0]:.1f}")
    print(f"{width}x{height}: {patches} patches in {seconds:.1f} s "
          f"({1e3 * seconds / patches:.1f} ms/patch); peak RSS {peak:.2f} GB "
          f"(before prediction {baseline:.2f} GB)")
    print(f"full view {FULL[1]}x{FULL[0]} ({full_patches} patches): "
          f"{'measured' if (height, width) == FULL else 'extrapolated'} {full_seconds:.1f} s "
          f"(target < {TIME_TARGET_S:.0f} s: "
          f"{'met' if full_seconds < TIME_TARGET_S else 'NOT met'})"
          f"; peak memory {peak:.2f} GB (target < {MEMORY_TARGET_GB:.0f} GB: "
          f"{'met' if peak < MEMORY_TARGET_GB else 'NOT met'}"
          f"{'' if (height, width) == FULL else ', measured at this size only'})")
    print(json.dumps({"width": width, "height": height, "patches": patches,
                      "seconds": round(seconds, 2), "full_view_seconds": round(full_seconds, 1),
                      "extrapolated": (height, width) != FULL, "peak_rss_gb": round(peak, 3),
                      "time_target_met": full_seconds < TIME_TARGET_S,
                      "memory_target_met": peak < MEMORY_TARGET_GB, "threads": args.threads,
                      "load_average": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
