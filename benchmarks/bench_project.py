"""Project file speed on a full-size view (8964 x 6716 px).

Targets (issue 6): committing a stroke to the project under 20 ms; opening a full-size project
under 5 s. A synthetic view stands in for the maps (the session needs only the mirror area when
no network runs), noisy base logits for the base model (the worst case for compression), and the
model-free ``SpreadRefiner`` for the network, so the figures are the project file's own. Opening
is timed with the view already loaded (loading the maps is ``bench_view_load.py``'s subject): it
reads the base logits, replays the journal with the stored patch changes, and checks the mask.

Run: ``.venv/bin/python benchmarks/bench_project.py [--strokes N]``; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from annotator.core.project import StoredView, create_project, open_project
from annotator.core.project_store import ProjectStore
from annotator.core.refiners import SpreadRefiner
from refinement_model.strokes import Stroke

HEIGHT, WIDTH = 6716, 8964
COMMIT_TARGET_MS = 20.0
OPEN_TARGET_S = 5.0


def synthetic_inputs(rng):
    logits = rng.standard_normal((HEIGHT, WIDTH), dtype=np.float32)
    logits *= 0.7
    logits -= 5.0
    for row in rng.integers(100, HEIGHT - 100, size=60):  # some confident lines
        logits[row : row + 12, 200 : WIDTH - 200] += 8.0
    yy, xx = np.ogrid[:HEIGHT, :WIDTH]
    mirror = ((yy - HEIGHT / 2) / (HEIGHT / 2)) ** 2 + ((xx - WIDTH / 2) / (WIDTH / 2)) ** 2 < 1
    return logits, StoredView("BENCH_R", mirror, 20.0)


def random_stroke(rng):
    start = rng.uniform([500, 500], [WIDTH - 500, HEIGHT - 500])
    points = start + np.cumsum(rng.normal(0, 15, size=(int(rng.integers(2, 12)), 2)), axis=0)
    return Stroke(str(rng.choice(["add", "erase"])), points, float(rng.uniform(4, 8)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strokes", type=int, default=60)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    logits, view = synthetic_inputs(rng)
    folder = tempfile.mkdtemp(prefix="bench-project-")
    path = os.path.join(folder, "bench.etmira")

    start = time.perf_counter()
    project = create_project(
        path,
        view,
        logits,
        refine=SpreadRefiner(),
        autocommit=False,
        image=np.zeros((1, HEIGHT, WIDTH), np.float32),
    )
    create_s = time.perf_counter() - start
    session = project.session
    plain, refined, undo = [], [], []
    for index in range(args.strokes):
        session.apply_stroke(random_stroke(rng), refine=index % 3 == 0)
        start = time.perf_counter()
        project.commit()
        (refined if index % 3 == 0 else plain).append(time.perf_counter() - start)
        if index % 10 == 9:
            session.undo()
            start = time.perf_counter()
            project.commit()
            undo.append(time.perf_counter() - start)
    floor = []  # an empty transaction: the fsync of the write-ahead log alone
    for _ in range(20):
        start = time.perf_counter()
        project.store.commit(meta={"bench": 1})
        floor.append(time.perf_counter() - start)
    expected = session.mask.copy()
    events = len(session.journal)
    project.close()
    del project, session
    size_mb = os.path.getsize(path) / 1e6

    start = time.perf_counter()
    with ProjectStore.open(path, readonly=True) as store:
        store.read_layer("base_logits")
        store.read_layer("mask")
    read_s = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    reopened = open_project(path, view=view, refine=None)
    open_s, open_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    exact = bool(np.array_equal(reopened.session.mask, expected))
    reopened.close()
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))
    os.rmdir(folder)

    plain_ms = 1e3 * np.array(plain)
    figures = {
        "view": f"{WIDTH}x{HEIGHT}",
        "create_s": round(create_s, 2),
        "file_mb": round(size_mb, 1),
        "commit_stroke_ms_median": round(float(np.median(plain_ms)), 2),
        "commit_stroke_ms_p95": round(float(np.percentile(plain_ms, 95)), 2),
        "commit_refined_stroke_ms_median": round(1e3 * float(np.median(refined)), 2),
        "commit_undo_ms_median": round(1e3 * float(np.median(undo)), 2) if undo else None,
        "commit_empty_ms_median": round(1e3 * float(np.median(floor)), 2),
        "open_read_layers_s": round(read_s, 2),
        "events": events,
        "open_s": round(open_s, 2),
        "open_cpu_s": round(open_cpu_s, 2),
        "load_average": round(os.getloadavg()[0], 1),
        "reopened_mask_exact": exact,
        "commit_target_met": bool(np.percentile(plain_ms, 95) < COMMIT_TARGET_MS),
        "open_target_met": bool(open_s < OPEN_TARGET_S),
    }
    print(f"create a full-size project: {create_s:.2f} s, file {size_mb:.1f} MB")
    print(
        f"commit a stroke (no refinement): median {figures['commit_stroke_ms_median']} ms, "
        f"p95 {figures['commit_stroke_ms_p95']} ms (target < {COMMIT_TARGET_MS:.0f} ms: "
        f"{'met' if figures['commit_target_met'] else 'NOT met'})"
    )
    print(
        f"commit a refined stroke: median {figures['commit_refined_stroke_ms_median']} ms; "
        f"an undo: median {figures['commit_undo_ms_median']} ms"
    )
    print(f"an empty commit (fsync floor): median {figures['commit_empty_ms_median']} ms")
    print(f"reading the stored base logits and mask: {read_s:.2f} s")
    print(
        f"open with {events} events: {open_s:.2f} s (target < {OPEN_TARGET_S:.0f} s: "
        f"{'met' if figures['open_target_met'] else 'NOT met'}), CPU {open_cpu_s:.2f} s; "
        f"mask exact: "
        f"{exact} (machine load average {figures['load_average']})"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
