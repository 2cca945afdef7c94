"""Latency of the shipped refiner on the CPU, per inference backend, side by side.

Targets on a 2-core CPU (issue 20): one pass of one 256 x 256 patch p50 <= 8 ms, and the app's
full refinement of a stroke's patches (a batch of 4, four orientations, refined twice:
``APP_REFINEMENT``) p50 <= 250 ms; issue 4's p50 < 30 ms and p95 < 50 ms for one pass still
hold. Each backend of :mod:`refinement_model.backends` (ONNX Runtime, TorchScript, eager) runs
the same inputs (two input sets in turn), the backends taking turns in runs of five calls so that
a load change on a shared machine slows them alike (the CPU time of each call is printed too: it
varies less with the load); each one's logits are compared with eager PyTorch's (max |logit
difference| < 1e-3). The targets are checked on the first backend (ONNX Runtime, the app's
default). Last, on that backend: a stroke's 6 patches refined one by one against as the one
image the session refines (the ratio of the two, measured in turns).

    .venv/bin/python benchmarks/bench_refine_latency.py [--threads 2] [--repeats 40]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time

import numpy as np
import torch

from refinement_model.backends import EQUALITY_TOLERANCE
from refinement_model.checkpoints import load_checkpoint
from refinement_model.nets import create_model
from refinement_model.patch_refiner import PatchRefiner
from refinement_model.refiner_options import APP_REFINEMENT, ONE_PASS
from refinement_model.shipped import WEIGHTS

BACKENDS = ("onnx", "torchscript", "eager")
# (key, label, patches in the batch, PatchRefiner options, target p50 ms)
CASES = (
    ("one_pass", "one pass, 1 patch", 1, ONE_PASS, 8.0),
    ("app_refinement_1", "app refinement, 1 patch", 1, APP_REFINEMENT, None),
    ("app_refinement_4", "app refinement, 4 patches", 4, APP_REFINEMENT, 250.0),
)
ISSUE4_P50_MS, ISSUE4_P95_MS = 30.0, 50.0


def _model():
    shipped = WEIGHTS / "refiner.safetensors"
    if shipped.is_file():
        return load_checkpoint(shipped, kind="refiner")[0], str(shipped)
    torch.manual_seed(0)
    model = create_model("refiner").eval()
    # an untrained refiner is the identity on the base logits: perturb its head so that the
    # equality check compares real network outputs
    for parameter in model.net.segmentation_head.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    return model, "untrained default refiner (no shipped weights yet)"


def _inputs(count: int, channels: int, seed: int = 0, shape: tuple[int, int] = (256, 256)):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(count, channels, *shape)).astype(np.float32)
    logits = (5 * rng.normal(size=(count, *shape))).astype(np.float32)
    strokes = np.zeros((count, *shape), np.float32)
    strokes[:, 100:110, 50:150] = 1
    return image, logits, strokes


def _in_turns(refine, *input_sets):
    """``refine`` as a callable of nothing, on each input set in turn: FastNet reuses its last
    upright pass for equal inputs, which a stroke's refinement after another's never meets."""
    sets = itertools.cycle(input_sets)
    return lambda: refine(*next(sets))


# Timed calls of one callable in a row: a runtime's threads spin a while after a run, which
# slows another runtime's run right after it (measured: OpenVINO 1.6x slower right after an
# ONNX Runtime run), and the app runs one backend at a time.
_TURN = 5


def _time_in_turns(calls: dict, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, process CPU) seconds per call of each callable, ``repeats`` each after two
    untimed rounds, taking turns in runs of :data:`_TURN` calls (each run after one untimed
    call). The CPU time (all threads) changes less with the load of a shared machine than the
    wall time."""
    for _ in range(2):
        for call in calls.values():
            call()
    times = {name: [] for name in calls}
    while any(len(series) < repeats for series in times.values()):
        for name, call in calls.items():
            call()
            for _ in range(min(_TURN, repeats - len(times[name]))):
                wall, cpu = time.perf_counter(), time.process_time()
                call()
                times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return times


def _stroke_block(refiner: PatchRefiner, channels: int, args) -> dict:
    """The app's refinement of a stroke across a stride line: its 6 patches (3 rows of 2) one
    by one in a batch, against the one image they make (512 x 384 network pixels; see
    ``refinement_model.blocks``), as the session refines them."""
    app = refiner.with_options(APP_REFINEMENT)
    windows = [_inputs(1, channels, seed, shape=(512, 384)) for seed in (1, 2)]
    patches = [_inputs(6, channels, seed) for seed in (0, 1)]
    times = _time_in_turns(
        {
            "patches": _in_turns(app.refine_batch, *patches),
            "one_image": _in_turns(app.refine_batch, *windows),
        },
        max(3, args.repeats // 2),
    )
    wall = {name: np.array(series)[:, 0] * 1e3 for name, series in times.items()}
    row = {
        f"{name}_{stat}_ms": round(float(np.percentile(values, q)), 1)
        for name, values in wall.items()
        for stat, q in (("p50", 50), ("p95", 95))
    }
    row["one_image_over_patches"] = round(row["one_image_p50_ms"] / row["patches_p50_ms"], 2)
    print(
        f"a stroke's 6 patches, app refinement ({refiner.net.backend}): one by one p50 "
        f"{row['patches_p50_ms']} ms, as one image p50 {row['one_image_p50_ms']} ms "
        f"({row['one_image_over_patches']:.2f}x)"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--repeats",
        type=int,
        default=40,
        help="timed calls per backend and case (eager: a quarter of them for the app refinement)",
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated, the first is the one checked against targets",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.backends.split(",")
    model, source = _model()
    print(f"model: {source}; threads {args.threads}; load average {os.getloadavg()[0]:.1f}")
    started = time.perf_counter()
    built = {name: PatchRefiner(model, backend=name) for name in names}
    print(f"{len(names)} backends built in {time.perf_counter() - started:.1f} s")
    results = {}
    for key, label, count, options, target in CASES:
        inputs = _inputs(count, model.spec.image_channels)
        other = _inputs(count, model.spec.image_channels, seed=1)
        # siblings share their backend: no new export or trace per case
        refiners = {name: r.with_options(options) for name, r in built.items()}
        reference = PatchRefiner(model, options=options, optimise=False).refine_batch(*inputs)
        fast = {name: r for name, r in refiners.items() if name != "eager"}
        times = _time_in_turns(
            {name: _in_turns(r.refine_batch, inputs, other) for name, r in fast.items()},
            args.repeats,
        )
        if "eager" in refiners:
            eager = refiners["eager"]
            times.update(
                _time_in_turns(
                    {"eager": _in_turns(eager.refine_batch, inputs, other)},
                    max(3, args.repeats // 4) if options else args.repeats,
                )
            )
        case = {}
        for name in names:
            wall, cpu = (np.array(series) * 1e3 for series in zip(*times[name], strict=True))
            diff = float(np.abs(refiners[name].refine_batch(*inputs) - reference).max())
            case[name] = {
                "backend": refiners[name].net.backend,
                "p50_ms": round(float(np.percentile(wall, 50)), 2),
                "p95_ms": round(float(np.percentile(wall, 95)), 2),
                "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 2),
                "max_abs_diff": diff,
                "equal": diff < EQUALITY_TOLERANCE,
            }
        chosen = case[names[0]]
        ratios = {
            f"{name}_over_{names[0]}": round(case[name]["p50_ms"] / chosen["p50_ms"], 2)
            for name in names[1:]
        }
        results[key] = {
            "backends": case,
            "p50_ratios": ratios,
            "target_p50_ms": target,
            "target_met": None if target is None else chosen["p50_ms"] <= target,
        }
        print(f"{label} (load average {os.getloadavg()[0]:.1f}):")
        for name, row in case.items():
            print(
                f"  {name:12s} p50 {row['p50_ms']:8.1f} ms  p95 {row['p95_ms']:8.1f} ms  "
                f"CPU p50 {row['cpu_p50_ms']:8.1f} ms  max|diff| {row['max_abs_diff']:.1e}  "
                f"{row['p50_ms'] / chosen['p50_ms']:5.2f}x {names[0]}"
            )
        if target is not None:
            print(
                f"  {names[0]} p50 {chosen['p50_ms']} ms (target <= {target:.0f} ms): "
                f"{'met' if results[key]['target_met'] else 'NOT met'}"
            )
    stroke_block = _stroke_block(built[names[0]], model.spec.image_channels, args)
    one = results["one_pass"]["backends"][names[0]]
    issue4 = one["p50_ms"] < ISSUE4_P50_MS and one["p95_ms"] < ISSUE4_P95_MS
    print(
        f"issue 4 (one pass p50 < {ISSUE4_P50_MS:.0f} ms, p95 < {ISSUE4_P95_MS:.0f} ms): "
        f"{'met' if issue4 else 'NOT met'}"
    )
    print(
        json.dumps(
            {
                "cases": results,
                "stroke_block": stroke_block,
                "issue4_target_met": issue4,
                "threads": args.threads,
                "all_equal": all(
                    row["equal"] for case in results.values() for row in case["backends"].values()
                ),
                "load_average": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
