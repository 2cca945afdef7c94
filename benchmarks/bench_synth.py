"""Speed and memory of synthetic mirror generation (issue 3: a 2048 x 2048 view in under 10 s).

Each size runs in its own process so that its peak memory is measured alone. Also reports how
hard the default difficulty is for a classical baseline (best-threshold depth high-pass).

Usage: ``.venv/bin/python benchmarks/bench_synth.py [--full] [--sizes 2048,4096]``; ``--full``
adds one 8964 x 6716 view (the real full size). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

TARGET_2048_S = 10.0

_CHILD = r"""
import json, resource, sys, tempfile, time
import numpy as np
from simulation.synth import generate_view, write_view
w, h = int(sys.argv[1]), int(sys.argv[2])
t0, c0 = time.perf_counter(), time.process_time()
view = generate_view(size=(w, h), seed=1)
t1 = time.perf_counter()
with tempfile.TemporaryDirectory() as root:
    write_view(root, "SYN-0001_R", view)
t2, c2 = time.perf_counter(), time.process_time()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"generate_s": t1 - t0, "write_s": t2 - t1, "cpu_s": c2 - c0, "peak_mb": peak}))
"""

_BASELINE = r"""
import json, sys
import numpy as np
from refinement_model.metrics import score_masks, thin
from refinement_model.preprocess import preprocess_depth
from simulation.synth import generate_view
scores = []
for seed in range(int(sys.argv[1])):
    v = generate_view(size=(2048, 2048), seed=[99, seed])
    d = preprocess_depth(v.depth, px_per_mm=v.px_per_mm, mask=v.mirror_mask)
    skel = thin(v.drawings)
    inside = d[v.mirror_mask]
    # the best global threshold, chosen on the ground truth itself: an optimistic baseline
    best = max(score_masks(d < np.quantile(inside, q), v.drawings, mask=v.mirror_mask,
                           gt_skeleton=skel)["pfm"] for q in np.linspace(0.01, 0.4, 40))
    scores.append(best)
print(json.dumps({"baseline_pfm": scores}))
"""


def _child(code, *args):
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2048,4096", help="square sizes, comma separated")
    parser.add_argument("--full", action="store_true", help="also one 8964 x 6716 view")
    parser.add_argument("--baseline-views", type=int, default=3)
    args = parser.parse_args()
    sizes = [(int(s), int(s)) for s in args.sizes.split(",") if s]
    if args.full:
        sizes.append((8964, 6716))
    load = os.getloadavg()[0]
    print(f"load average at start: {load:.1f} on {os.cpu_count()} cores (wall times rise with it)")
    figures = {"load_average": round(load, 2)}
    for w, h in sizes:
        r = _child(_CHILD, w, h)
        total = r["generate_s"] + r["write_s"]
        mpx = w * h / 1e6
        line = (
            f"{w} x {h} ({mpx:.1f} Mpx): generate {r['generate_s']:.2f} s, write "
            f"{r['write_s']:.2f} s, total {total:.2f} s ({total / mpx:.2f} s/Mpx; CPU "
            f"{r['cpu_s']:.2f} s), "
            f"peak RSS {r['peak_mb']:.0f} MB"
        )
        if (w, h) == (2048, 2048):
            wall_met = "met" if total < TARGET_2048_S else "NOT met"
            cpu_met = "met" if r["cpu_s"] < TARGET_2048_S else "NOT met"
            line += (
                f"; target < {TARGET_2048_S:.0f} s: wall {wall_met}"
                f", CPU {cpu_met} (CPU time is what "
                f"an idle core would take)"
            )
        print(line, flush=True)
        figures[f"{w}x{h}"] = {**{k: round(v, 3) for k, v in r.items()}, "total_s": round(total, 3)}
    if args.baseline_views > 0:
        scores = _child(_BASELINE, args.baseline_views)["baseline_pfm"]
        mean = sum(scores) / len(scores)
        print(
            f"classical baseline (best threshold of the preprocessed depth) at the default "
            f"difficulty, 2048 px views: pFM {', '.join(f'{s:.3f}' for s in scores)} "
            f"(mean {mean:.3f}; target clearly below 0.6: {'met' if mean < 0.6 else 'NOT met'})",
            flush=True,
        )
        figures["baseline_pfm_mean"] = round(mean, 4)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
