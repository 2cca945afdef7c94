"""Annotation session on a full-size view (8964 x 6716): stroke + undo speed, history memory.

Targets (issue 6): applying a stroke and undoing it without refinement under 5 ms; the history of
500 strokes under 200 MB. Also measured: the same with the model-free refiner (every stroke
refines the 4-9 patches it touches), where the history adds only the bounded delta cache.

Run: ``.venv/bin/python benchmarks/bench_session.py [--quick]``; the last line is JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
import types

import numpy as np

from annotator.core.refiners import SpreadRefiner
from annotator.core.session import AnnotationSession, default_radius
from refinement_model.strokes import Stroke

HEIGHT, WIDTH = 6716, 8964
CACHE_BYTES = 32 << 20


def drags(count: int, shape, *, rng) -> list[Stroke]:
    """Random-walk drags of 20 to 60 points, 4 px apart, like a conservator's strokes."""
    rng = np.random.default_rng(rng)
    out = []
    for _ in range(count):
        n = int(rng.integers(20, 61))
        start = rng.uniform((50, 50), (shape[1] - 300, shape[0] - 300))
        angle = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.15, n))
        steps = 4 * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        points = start + np.cumsum(steps, axis=0)
        out.append(Stroke(str(rng.choice(["add", "erase"])), points, default_radius()))
    return out


def full_size_inputs():
    """A stand-in view (elliptic mirror area) and base logits with faint lines every 40 rows."""
    yy, xx = np.ogrid[:HEIGHT, :WIDTH]
    mirror = (yy - HEIGHT / 2) ** 2 / (HEIGHT / 2) ** 2 + (xx - WIDTH / 2) ** 2 / (
        WIDTH / 2
    ) ** 2 < 1
    base = np.full((HEIGHT, WIDTH), -4.0, np.float32)
    base[::40] = 0.5
    # the session reads only the mirror mask and ground truth of a view (the refiner's maps
    # come in as ``image`` here)
    return types.SimpleNamespace(mirror_mask=mirror, ground_truth=None), base


def full_size_session(refine=None, **options) -> AnnotationSession:
    view, base = full_size_inputs()
    image = None if refine is None else np.zeros((1, HEIGHT, WIDTH), np.float32)
    return AnnotationSession(view, base, refine, image=image, **options)


def history_bytes(session: AnnotationSession, strokes, *, refine: bool) -> float:
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    for stroke in strokes:
        session.apply_stroke(stroke, refine=refine)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    return used / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    repeats, refined_strokes = (50, 30) if args.quick else (300, 500)

    view, base = full_size_inputs()
    t0 = time.perf_counter()
    session = AnnotationSession(view, base, None)
    setup_s = time.perf_counter() - t0
    for stroke in drags(200, session.grid.shape, rng=0):  # strokes under the measured ones
        session.apply_stroke(stroke, refine=False)
    strokes = drags(repeats, session.grid.shape, rng=1)
    times = []
    for stroke in strokes:
        t = time.perf_counter()
        session.apply_stroke(stroke, refine=False)
        session.undo()
        times.append(time.perf_counter() - t)
    stroke_undo_ms = 1000 * float(np.median(times))
    stroke_undo_p95_ms = 1000 * float(np.percentile(times, 95))

    session = full_size_session()
    plain_mb = history_bytes(session, drags(500, session.grid.shape, rng=2), refine=False)
    del session
    gc.collect()

    session = full_size_session(SpreadRefiner(), cache_bytes=CACHE_BYTES)
    refined = drags(refined_strokes, session.grid.shape, rng=3)
    t = time.perf_counter()
    refined_mb = history_bytes(session, refined, refine=True)
    refine_stroke_ms = 1000 * (time.perf_counter() - t) / len(refined)
    parts = {k: v / 2**20 for k, v in session.memory_bytes().items()}
    # for fewer than 500 strokes (--quick), a bound: shown patch changes growing as measured
    # but at most one per patch, the cache at its limit, the rest (steps, events) linearly
    grid = session.grid
    patch_bound_mb = len(grid) * grid.net_size**2 * 2 / 2**20
    steps_mb = refined_mb - parts["refined_patches"] - parts["cache"]
    scale = 500 / len(refined)
    refined_500_mb = (
        refined_mb
        if len(refined) == 500
        else (
            min(parts["refined_patches"] * scale, patch_bound_mb)
            + CACHE_BYTES / 2**20
            + steps_mb * scale
        )
    )
    t = time.perf_counter()
    for _ in range(10):
        session.undo()
    refined_undo_ms = 100 * (time.perf_counter() - t)

    figures = {
        "setup_s": round(setup_s, 2),
        "stroke_undo_ms_median": round(stroke_undo_ms, 3),
        "stroke_undo_ms_p95": round(stroke_undo_p95_ms, 3),
        "history_500_strokes_mb": round(plain_mb, 2),
        "refined_stroke_ms": round(refine_stroke_ms, 1),
        "refined_undo_ms": round(refined_undo_ms, 1),
        "refined_history_mb_measured": round(refined_mb, 1),
        "refined_strokes_measured": len(refined),
        "refined_patch_state_mb": round(parts["refined_patches"], 1),
        "refined_cache_mb": round(parts["cache"], 1),
        "refined_history_500_mb": round(refined_500_mb, 1),
    }
    print(f"full-size view {WIDTH} x {HEIGHT}, session construction {setup_s:.2f} s")
    print(
        f"stroke + undo without refinement: median {stroke_undo_ms:.3f} ms, "
        f"p95 {stroke_undo_p95_ms:.3f} ms (target < 5 ms: "
        f"{'met' if stroke_undo_ms < 5 else 'NOT met'})"
    )
    print(
        f"history of 500 strokes without refinement: {plain_mb:.2f} MB (target < 200 MB: "
        f"{'met' if plain_mb < 200 else 'NOT met'})"
    )
    print(
        f"with the model-free refiner: {refine_stroke_ms:.1f} ms per stroke, undo "
        f"{refined_undo_ms:.1f} ms; {len(refined)} strokes grew memory by {refined_mb:.1f} MB: "
        f"{parts['refined_patches']:.1f} MB shown patch changes, {parts['cache']:.1f} MB "
        f"cache (bounded); for 500 strokes {refined_500_mb:.1f} MB "
        f"(target < 200 MB: {'met' if refined_500_mb < 200 else 'NOT met'})"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
