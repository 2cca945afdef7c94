"""Latency of refining one 256 x 256 patch on the CPU, per inference path.

Target (issue 4): p50 < 30 ms and p95 < 50 ms for the shipped refiner on a 2-core CPU.
Compares, in the same run, eager PyTorch, eager channels-last, and the traced + frozen
channels-last path that :class:`refinement_model.inference.FastNet` uses (and torch.compile
with ``--compile``), and checks each against eager (max |logit difference| < 1e-3). Also times
that path with the logits averaged over 2 and 4 orientations (``PatchRefiner(orientations=K)``)
and as the app's refiner (``APP_REFINER_OPTIONS``: four orientations, refined twice); no target:
the app shows the one-pass refinement first and replaces it with the app refiner's off the GUI
thread, see ``bench_gui.py``.

    .venv/bin/python benchmarks/bench_refine_latency.py [--threads 2] [--repeats 100]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from refinement_model.checkpoints import load_checkpoint
from refinement_model.inference import APP_REFINER_OPTIONS, EQUALITY_TOLERANCE, PatchRefiner
from refinement_model.nets import create_model, refiner_input
from refinement_model.shipped import WEIGHTS

P50_TARGET_MS, P95_TARGET_MS = 30.0, 50.0


def _percentiles(call, repeats: int) -> tuple[float, float]:
    for _ in range(5):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 95) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shipped = WEIGHTS / "refiner.safetensors"
    if shipped.is_file():
        model, _ = load_checkpoint(shipped, kind="refiner")
        source = str(shipped)
    else:
        torch.manual_seed(0)
        model = create_model("refiner").eval()
        # an untrained refiner is the identity on the base logits: perturb its head so that
        # the equality check compares real network outputs
        for parameter in model.net.segmentation_head.parameters():
            torch.nn.init.normal_(parameter, std=0.1)
        source = "untrained default refiner (no shipped weights yet)"
    rng = np.random.default_rng(0)
    image = rng.normal(size=(model.spec.image_channels, 256, 256)).astype(np.float32)
    logits = (5 * rng.normal(size=(256, 256))).astype(np.float32)
    strokes = np.zeros((256, 256), np.float32)
    strokes[100:110, 50:150] = 1
    x = refiner_input(torch.from_numpy(image[None]), torch.from_numpy(logits[None]),
                      torch.from_numpy(strokes[None]))
    with torch.inference_mode():
        reference = model(x)[0, 0].numpy()

    def eager():
        with torch.inference_mode():
            return model(x)[0, 0].numpy()

    model_cl = create_model(spec=model.spec).eval()
    model_cl.load_state_dict(model.state_dict())
    model_cl = model_cl.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def eager_cl():
        with torch.inference_mode():
            return model_cl(x_cl)[0, 0].numpy()

    engine = PatchRefiner(model)

    def fast():
        return engine.refine(image, logits, strokes)

    paths = {"eager": eager, "eager_channels_last": eager_cl, "traced_frozen_channels_last": fast}
    if args.compile:
        compiled = torch.compile(model_cl)

        def compiled_call():
            with torch.inference_mode():
                return compiled(x_cl)[0, 0].numpy()
        paths["torch_compile_channels_last"] = compiled_call
    results = {}
    print(f"model: {source}; threads {args.threads}; load average {os.getloadavg()[0]:.1f}")
    for name, call in paths.items():
        diff = float(np.abs(call() - reference).max())
        p50, p95 = _percentiles(call, args.repeats)
        results[name] = {"p50_ms": round(p50, 2), "p95_ms": round(p95, 2),
                         "max_abs_diff": diff, "equal": diff < EQUALITY_TOLERANCE}
        print(f"{name:30s} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  max|diff| {diff:.2e}")
    variants = {f"orientations_{k}": ({"orientations": k}, f"the same, {k} orientations")
                for k in (2, 4)}
    variants["app_refiner"] = (APP_REFINER_OPTIONS, "the app's (4 orientations, twice)")
    for key, (options, label) in variants.items():
        variant = PatchRefiner(model, **options)
        p50, p95 = _percentiles(lambda: variant.refine(image, logits, strokes), args.repeats)
        results[key] = {"p50_ms": round(p50, 2), "p95_ms": round(p95, 2)}
        print(f"{label:34s} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms")
    chosen = results["traced_frozen_channels_last"]
    met = chosen["p50_ms"] < P50_TARGET_MS and chosen["p95_ms"] < P95_TARGET_MS
    speedup = results["eager"]["p50_ms"] / chosen["p50_ms"]
    print(f"PatchRefiner path: p50 {chosen['p50_ms']} ms (target < {P50_TARGET_MS}), "
          f"p95 {chosen['p95_ms']} ms (target < {P95_TARGET_MS}): "
          f"{'met' if met else 'NOT met'}; {speedup:.2f}x faster than eager")
    print(json.dumps({"paths": results, "speedup_vs_eager": round(speedup, 2),
                      "target_met": met, "threads": args.threads,
                      "load_average": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
