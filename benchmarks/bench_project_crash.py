"""Crash safety of the project file: 50 rounds of kill -9 at random moments.

Each round copies a small pristine project, starts a process that applies 30 strokes and some
undos to it (each event committed in its own transaction, refinement by the model-free
``SpreadRefiner``), kills it with SIGKILL after a random delay, then opens the project. Target:
every round opens, and its mask equals the in-memory replay of exactly the events it committed
(a crash loses at most the event in flight). The driver and checks are those of
``tests/annotator/test_project_faults.py`` (which runs 5 rounds).

Run: ``.venv/bin/python benchmarks/bench_project_crash.py [--rounds 50]``; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for the shared test driver

from tests.annotator.test_project_faults import (  # noqa: E402
    kill_round,
    make_actions,
    make_project,
    reference_masks,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument(
        "--max-delay", type=float, default=1.5, help="longest wait in seconds before the kill"
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-crash-"))
    pristine = make_project(folder)
    actions = make_actions(30, seed=4)
    masks = reference_masks(pristine, actions)
    (folder / "actions.json").write_text(json.dumps(actions))
    rng = np.random.default_rng(0)
    results, failures = [], []
    start = time.perf_counter()
    for index in range(args.rounds):
        try:
            result = kill_round(
                pristine,
                folder,
                folder / "actions.json",
                masks,
                delay=rng.uniform(0, args.max_delay),
            )
        except Exception as error:  # a project that does not open is a failed round
            result = {
                "events": -1,
                "crashed": True,
                "exact": False,
                "recovered_flag": False,
                "error": f"{type(error).__name__}: {error}",
            }
        results.append(result)
        if not (result["exact"] and result["recovered_flag"]):
            failures.append((index, result))
    seconds = time.perf_counter() - start
    shutil.rmtree(folder)
    events = [r["events"] for r in results]
    mid_run = sum(0 < e < len(actions) for e in events)
    print(
        f"{args.rounds} rounds of kill -9 in {seconds:.0f} s; events committed per round: "
        f"min {min(events)}, median {int(np.median(events))}, max {max(events)} "
        f"(of {len(actions)}); killed mid-run: {mid_run}"
    )
    for index, result in failures:
        print(f"round {index} FAILED: {result}")
    met = not failures
    print(
        f"every round opens and equals the replay of its committed events: "
        f"{'met' if met else 'NOT met'} ({args.rounds - len(failures)}/{args.rounds})"
    )
    print(
        json.dumps(
            {
                "rounds": args.rounds,
                "failures": len(failures),
                "killed_mid_run": mid_run,
                "events_min": min(events),
                "events_median": float(np.median(events)),
                "events_max": max(events),
                "actions": len(actions),
                "seconds": round(seconds, 1),
                "target_met": met,
            }
        )
    )


if __name__ == "__main__":
    main()
