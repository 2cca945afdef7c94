"""CPU cost of one online adaptation update (issue 21: <= 2 s on 2 cores, ``per_update``).

Builds ``--patches`` corrected patches from a view (its network inputs, the base network's
logits as the start, the ground truth as the corrected mask and a band of it as the user's
strokes: the content does not change the cost; a view with fewer patches gives them again,
flipped and turned), then times with the shipped refiner:

* ``cold``: the first update, every patch new (the frozen part's features computed for all,
  and its ONNX export once per adapter);
* ``warm``: an update after ``--new`` patches changed (the setting ``adaptive`` updates after
  every 10 committed strokes, which touch about that many patches);
* ``first_refiner``: building the first adapted PatchRefiner (the adapter's one ONNX export,
  and the equality check);
* ``refiner``: building a later one (that export with the trained weights put in, checked);
* ``per_update``: ``warm`` + ``refiner``, what every update after the first costs.

``--setting`` picks the update of an adaptive setting of ``etmira simulate``
(``simulation.runs.ADAPTIVE_SETTINGS``): ``adaptive`` (the app's), or ``finishing_adaptive``
(the decoder, after each patch a user finishes: ``--patches 10 --new 1`` is its case).

    .venv/bin/python benchmarks/bench_adaptation.py [VIEW_DIR] [--threads 2] [--repeats 3]
        [--setting adaptive]

Default view: the bundled sample. The last line printed is one JSON object (medians).
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    from simulation.runs import ADAPTIVE_SETTINGS  # no torch: --help stays quick

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("view", nargs="?")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--patches", type=int, default=24)
    parser.add_argument("--new", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--setting", choices=tuple(ADAPTIVE_SETTINGS), default="adaptive")
    args = parser.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from refinement_model.adaptation import AdaptationOptions, CorrectedPatch, OnlineAdapter
    from refinement_model.patch_refiner import PatchRefiner
    from refinement_model.prediction import Predictor
    from refinement_model.refiner_options import APP_REFINEMENT
    from refinement_model.shipped import sample_view, shipped_checkpoint
    from refinement_model.views import find_views_in, load_view, network_input

    files = find_views_in([args.view or sample_view()])[0]
    view = load_view(files.depth)
    predictor = Predictor(shipped_checkpoint("base"))
    refiner = PatchRefiner(shipped_checkpoint("refiner"), options=APP_REFINEMENT)
    image = network_input(view, predictor.net.spec.inputs)
    grid = predictor.grid(*view.shape)
    with_lines = [i for i in range(len(grid)) if grid.extract(view.ground_truth, i).sum() > 50]
    needed = args.patches + args.repeats * args.new
    if needed > 8 * len(with_lines):
        parser.error(
            f"{files.depth} has {len(with_lines)} patches with lines, 8 orientations of them"
            f" are fewer than --patches + --repeats x --new = {needed}"
        )

    def oriented(array, number):
        """A small view's patches come again in the next of the 8 flips and quarter turns: as
        many distinct patches as the window needs (the bundled sample has 9)."""
        turn = number // len(with_lines)
        array = np.rot90(array, turn % 4, axes=(-2, -1))
        return np.ascontiguousarray(array[..., ::-1] if turn >= 4 else array)

    patches = []
    for number in range(needed):
        index = with_lines[number % len(with_lines)]
        patch_image = oriented(grid.extract(image, index).astype(np.float32), number)
        start = predictor.net(patch_image[None])[0]
        target = oriented(grid.extract(view.ground_truth, index), number)
        user = np.zeros(target.shape, np.int8)
        user[:40][target[:40]] = 1
        patches.append(CorrectedPatch(patch_image, start, target, user))
    times = {"cold": [], "warm": [], "first_refiner": [], "refiner": [], "per_update": []}
    for repeat in range(args.repeats):
        options = AdaptationOptions(**ADAPTIVE_SETTINGS[args.setting].options, seed=repeat)
        adapter = OnlineAdapter(refiner, options)
        window = patches[: args.patches]
        times["cold"].append(adapter.update(window).seconds)
        changed = patches[args.patches + repeat * args.new : args.patches + (repeat + 1) * args.new]
        warm = adapter.update(window[len(changed) :] + changed)
        times["warm"].append(warm.seconds)
        started = time.perf_counter()
        adapter.refiner(warm.state)
        times["first_refiner"].append(time.perf_counter() - started)
        # a later refiner, from the adapter's one export (the state of a repeated update)
        again = adapter.update(window[len(changed) :] + changed)
        started = time.perf_counter()
        adapter.refiner(again.state)
        times["refiner"].append(time.perf_counter() - started)
        times["per_update"].append(times["warm"][-1] + times["refiner"][-1])
        print(
            f"repeat {repeat}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
            flush=True,
        )
    result = {key: float(np.median(values)) for key, values in times.items()}
    result.update(
        threads=args.threads,
        patches=args.patches,
        new=args.new,
        setting=args.setting,
        load_average=os.getloadavg()[0],
        view=files.view_id,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
