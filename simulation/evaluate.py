"""Run the evaluation protocol over views and settings, writing runs for `etmira report`."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from refinement_model.errors import InputError
from refinement_model.metrics import score_masks, thin
from refinement_model.network_loader import NetworkLoader
from refinement_model.patches import PatchGrid
from refinement_model.progress import progress_bar
from refinement_model.ranking import oracle_scores, ranking_quality, uncertainty_scores
from refinement_model.shipped import shipped_checkpoint
from refinement_model.views import find_views_in, load_view, network_input
from simulation.protocol import ProtocolConfig, run_protocol
from simulation.runs import (
    ADAPTIVE_SETTINGS,
    STARTS,
    merge_manifest,
    refiner_options,
    run_path,
    setting_config,
    write_records,
)


def view_files_with_ground_truth(paths: Sequence, *, only: Sequence[str] | None = None) -> list:
    """Every view the given paths name (see ``find_views``) that has ground truth, or only
    those whose id is in ``only`` (ViewFiles, sorted by id)."""

    views = [files for files in find_views_in(paths) if files.drawings is not None]
    if only:
        missing = sorted(set(only) - {files.view_id for files in views})
        if missing:
            raise InputError(paths[0], f"no view with ground truth named {', '.join(missing)}")
        views = [files for files in views if files.view_id in only]
    if not views:
        raise InputError(paths[0], "no view with ground truth (<view_id>_drawings.png) found")
    return sorted(views, key=lambda files: files.view_id)


def gt_free_ranking_quality(
    probabilities, ground_truth, grid: PatchGrid, *, mirror_mask=None
) -> float:
    """Spearman correlation of the GT-free patch score with the true patch badness (1 - pFM)
    of the initial prediction, over patches that hold ground-truth or predicted lines."""
    mask = probabilities > 0.5
    skeleton = thin(ground_truth)
    truth = oracle_scores(mask, ground_truth, grid, mirror_mask=mirror_mask, gt_skeleton=skeleton)
    guess = uncertainty_scores(probabilities, grid, mirror_mask=mirror_mask)
    has_lines = np.array(
        [
            ground_truth[y0:y1, x0:x1].any() or mask[y0:y1, x0:x1].any()
            for y0, x0, y1, x1 in grid.boxes.tolist()
        ]
    )
    return ranking_quality(np.where(has_lines, guess, -np.inf), truth)


def simulate_views(
    paths: Sequence,
    *,
    out,
    base=None,
    refiner=None,
    steps: int = 3000,
    seeds: int = 3,
    first_seed: int = 0,
    settings: Sequence[str] = ("both", "gt_free"),
    record_every: int = 10,
    only: Sequence[str] | None = None,
    iterations: int | None = None,
    orientations: int | None = None,
    start: str = "refined",
    loader: NetworkLoader | None = None,
    show_progress: bool = False,
) -> dict:
    """Run every setting with seeds ``first_seed .. first_seed + seeds - 1`` on every view with
    ground truth under ``paths`` (or on the views named in ``only``), refining as the app does
    (``iterations`` and ``orientations`` replace its refinements per stroke and the orientations
    each averages, see :func:`refiner_options`).

    The runs start, as the app does, from ``start="refined"``: the base network refined with no
    strokes on every patch (:class:`refinement_model.start.StartPredictor`), whose logits then
    stand in for the base logits everywhere (the human-only mask, the refiner's prediction
    input); ``start="base"`` starts from the base network alone. The manifest keeps the start
    and, per view, the pFM of the base network alone (``base_pfm``) and of the start
    (``start_pfm``). ``loader`` builds the networks (default: ``NetworkLoader()``, ONNX Runtime
    where it is present, exports in memory).

    Writes ``out/runs/<view>/<setting>_seed<k>.csv`` as each run ends and merges this
    simulation into ``out/manifest.json`` after each view (so an interrupted simulation keeps
    what it finished, and several processes may share ``out``).

    Returns
    -------
    manifest : dict
    """
    # torch with the networks, only when simulating (the CLI imports this module for its parser)
    from refinement_model.start import START_REFINEMENT, start_predictor

    if seeds < 1 or first_seed < 0:
        raise ValueError(f"seeds must be >= 1 and first_seed >= 0, got {seeds} and {first_seed}")
    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}")
    files = view_files_with_ground_truth(paths, only=only)
    base = Path(base) if base else shipped_checkpoint("base")
    refiner = Path(refiner) if refiner else shipped_checkpoint("refiner")
    loader = NetworkLoader() if loader is None else loader
    predictor = loader.predictor(base)
    refiners = {}  # one per refiner options, built when the start or a setting first needs it
    starter = predictor
    if start == "refined":
        # a setting refining with the start's options (the app's, today) reuses its network
        refiners[START_REFINEMENT] = loader.refiner(refiner, START_REFINEMENT)
        starter = start_predictor(predictor, refiners[START_REFINEMENT])
    manifest = {
        "views": [],
        "settings": list(settings),
        "seeds": list(range(first_seed, first_seed + seeds)),
        "steps": steps,
        "record_every": record_every,
        **refiner_options("both", iterations=iterations, orientations=orientations).as_record(),
        "start": start_description(starter),
        "base": _shown(base),
        "refiner": _shown(refiner),
        "spearman_gt_free": {},
        "base_pfm": {},
        "start_pfm": {},
        "seconds": {},
    }
    for view_files in files:
        view = load_view(view_files.depth)
        scored = dict(mask=view.mirror_mask)
        if starter is not predictor:
            manifest["base_pfm"][view.view_id] = score_masks(
                predictor.predict_view(view) > 0.5, view.ground_truth, **scored
            )["pfm"]
        with progress_bar(
            f"{view.view_id}: predict", unit="patch", enabled=show_progress
        ) as progress:
            probabilities = starter.predict_view(view, progress=progress)
        manifest["start_pfm"][view.view_id] = score_masks(
            probabilities > 0.5, view.ground_truth, **scored
        )["pfm"]
        manifest["base_pfm"].setdefault(view.view_id, manifest["start_pfm"][view.view_id])
        logits = probability_logits(probabilities)
        image = network_input(view, predictor.net.spec.inputs)
        grid = predictor.grid(*view.shape)
        manifest["spearman_gt_free"][view.view_id] = gt_free_ranking_quality(
            probabilities, view.ground_truth, grid, mirror_mask=view.mirror_mask
        )
        for setting in settings:
            config = setting_config(setting, ProtocolConfig(steps=steps, record_every=record_every))
            options = refiner_options(setting, iterations=iterations, orientations=orientations)
            if options not in refiners:
                refiners[options] = loader.refiner(refiner, options)
            for seed in manifest["seeds"]:
                started = time.perf_counter()
                run = f"{view.view_id}/{setting}/{seed}"
                adapt = None
                if config.adapt_every:
                    adapt, manifest.setdefault("adaptation", {})[run] = online_adaptation(
                        refiners[options],
                        seed=seed,
                        scale=grid.scale,
                        options=ADAPTIVE_SETTINGS[setting].options,
                    )
                with progress_bar(
                    f"{view.view_id} {setting} seed {seed}", enabled=show_progress
                ) as progress:
                    records = run_protocol(
                        image,
                        logits,
                        view.ground_truth,
                        refiners[options].refine,
                        mirror_mask=view.mirror_mask,
                        grid=grid,
                        config=config,
                        rng=seed,
                        progress=progress,
                        adapt=adapt,
                    )
                write_records(run_path(out, view.view_id, setting, seed), records)
                manifest["seconds"][run] = round(time.perf_counter() - started, 1)
        manifest["views"].append(view.view_id)
        merged = merge_manifest(out, manifest)
    return merged


def online_adaptation(refiner, *, seed: int, scale: float, options: dict):
    """The ``adapt`` function of :func:`~simulation.protocol.run_protocol` for one run, and
    the list its updates are logged to (one dict per update: ``accepted``, ``loss_before``,
    ``loss_after``, ``errors_before``, ``errors_after``, ``seconds`` of the update,
    ``refiner_seconds`` to build the adapted refiner), for the manifest.

    Parameters
    ----------
    refiner : PatchRefiner
        The frozen refiner the run starts with (never modified).
    seed : int
        The run's seed (the adaptation's).
    scale : float
        Network pixels per view pixel of the run's grid.
    options : dict
        The setting's :class:`~refinement_model.adaptation.AdaptationOptions` but the seed
        and the stroke scale (``simulation.runs.ADAPTIVE_SETTINGS``).
    """
    from refinement_model.adaptation import (  # torch, only for the adaptive setting
        AdaptationOptions,
        CorrectedPatch,
        OnlineAdapter,
    )

    adapter = OnlineAdapter(refiner, AdaptationOptions(**options, stroke_scale=scale, seed=seed))
    log = []

    def adapt(patches):
        result = adapter.update([CorrectedPatch(*patch) for patch in patches])
        entry = {
            "accepted": result.accepted,
            "loss_before": round(result.loss_before, 5),
            "loss_after": round(result.loss_after, 5),
            "errors_before": round(result.errors_before, 1),
            "errors_after": round(result.errors_after, 1),
            "seconds": round(result.seconds, 3),
        }
        log.append(entry)
        if not result.accepted:
            return None
        started = time.perf_counter()
        adapted = adapter.refiner()
        entry["refiner_seconds"] = round(time.perf_counter() - started, 3)
        return adapted.refine

    return adapt, log


def start_description(predictor) -> str:
    """How a predictor makes its start, as a manifest names it: "base network" or "base network
    + refiner with no strokes (K orientations, N iterations)"."""
    from refinement_model.start import start_record  # torch (see simulate_views)

    record = start_record(predictor)
    if record["kind"] == "base":
        return "base network"
    return (
        f"base network + refiner with no strokes ({record['orientations']} orientations, "
        f"{record['iterations']} iterations)"
    )


def _shown(path: Path) -> str:
    """A path as the manifest shows it: relative to the working folder when inside it."""
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else str(path)


def probability_logits(probabilities) -> np.ndarray:
    """Logits of a probability map, float32, clipped where float32 saturates (|logit| <= 16)."""
    p = np.clip(np.asarray(probabilities, np.float32), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p)).astype(np.float32)
