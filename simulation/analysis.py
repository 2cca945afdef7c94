"""Numbers from simulation runs: mean curves over seeds, relative gain, effort reduction.

All curves are functions of the number of annotated pixels. Runs of one view are put on a common
grid of annotated pixels (up to the least any run reached) by holding the last recorded value,
since a mask only changes when a stroke is committed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MeanCurves:
    """pFM / IoU of both masks, mean and std over seeds, on a grid of annotated pixels.

    Every array has the shape of ``pixels``.
    """

    pixels: np.ndarray
    human_mean: np.ndarray
    human_std: np.ndarray
    network_mean: np.ndarray
    network_std: np.ndarray
    relative_gain: np.ndarray
    iou_human: np.ndarray
    iou_network: np.ndarray


def step_interpolate(x_grid, x, y) -> np.ndarray:
    """Value of the step function through ``(x, y)`` (x non-decreasing) at each grid point.

    The value at a grid point is the last ``y`` recorded at or before it.
    """
    x, y, x_grid = np.asarray(x, float), np.asarray(y, float), np.asarray(x_grid, float)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError(f"x and y must be 1-D of one non-zero length, got {x.shape}, {y.shape}")
    if np.any(np.diff(x) < 0):
        raise ValueError("x must be non-decreasing")
    index = np.searchsorted(x, x_grid, side="right") - 1
    return y[np.clip(index, 0, len(y) - 1)]


def mean_curves(runs: list[dict], *, points: int = 200) -> MeanCurves:
    """Mean and std over runs (seeds) of one view and setting.

    Parameters
    ----------
    runs : list of dict
        Columns of each run (``annotated_pixels``, ``pfm_human``, ``pfm_network``,
        ``iou_human``, ``iou_network`` as sequences).
    points : int
        Grid points between 0 and the fewest annotated pixels any run reached.
    """
    if not runs:
        raise ValueError("runs must not be empty")
    reach = min(run["annotated_pixels"][-1] for run in runs)
    grid = np.linspace(0.0, reach, points) if reach > 0 else np.zeros(1)

    def stack(key):
        return np.stack([step_interpolate(grid, run["annotated_pixels"], run[key]) for run in runs])

    human, network = stack("pfm_human"), stack("pfm_network")
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(human > 0, network / human - 1.0, 0.0)
    return MeanCurves(
        grid,
        human.mean(0),
        human.std(0),
        network.mean(0),
        network.std(0),
        gain.mean(0),
        stack("iou_human").mean(0),
        stack("iou_network").mean(0),
    )


def pixels_to_reach(pixels, curve, target: float) -> float:
    """Fewest annotated pixels at which ``curve`` reaches ``target``; inf if it never does."""
    reached = np.flatnonzero(np.asarray(curve) >= target - 1e-12)
    return float(pixels[reached[0]]) if len(reached) else float("inf")


def effort_reduction(curves: MeanCurves) -> float:
    """Share of annotated pixels the network saves to reach the human-only final pFM.

    The target is the human-only pFM at convergence (the end of the common grid); the human-only
    effort is where its curve first reaches it. 0.75 means the network needs a quarter of the
    pixels. NaN when the human-only curve never rises above its start.
    """
    target = float(curves.human_mean[-1])
    human = pixels_to_reach(curves.pixels, curves.human_mean, target)
    if human <= 0 or target <= curves.human_mean[0]:
        return float("nan")
    network = pixels_to_reach(curves.pixels, curves.network_mean, target)
    return 1.0 - min(network, human) / human if np.isfinite(network) else 0.0


def effort_ratio(candidate: MeanCurves, reference: MeanCurves) -> float:
    """Annotated pixels the candidate's network curve needs to reach the reference's human-only
    final pFM, divided by what the reference's network curve needs (1.1 = 10% more effort)."""
    target = float(reference.human_mean[-1])
    needed = pixels_to_reach(candidate.pixels, candidate.network_mean, target)
    baseline = pixels_to_reach(reference.pixels, reference.network_mean, target)
    if not np.isfinite(baseline) or baseline <= 0:
        return float("nan")
    return needed / baseline


def final_scores(runs: list[dict]) -> dict:
    """Mean and std over runs of the last recorded pFM and IoU of both masks, and the start."""
    out = {}
    for key in ("pfm_human", "pfm_network", "iou_human", "iou_network"):
        values = np.array([run[key][-1] for run in runs])
        out[key] = float(values.mean())
        out[key + "_std"] = float(values.std())
    out["initial_pfm"] = float(np.mean([run["pfm_human"][0] for run in runs]))
    out["initial_iou"] = float(np.mean([run["iou_human"][0] for run in runs]))
    return out


def effort_to_target(run: dict, curve: str, target: float) -> tuple[float, float]:
    """Strokes and annotated pixels at the first record where ``run[curve]`` reaches
    ``target`` (the NoC@85 convention of interactive segmentation); (inf, inf) if it never does.

    Parameters
    ----------
    run : dict
        Columns of one run (``strokes``, ``annotated_pixels`` and ``curve`` as sequences).
    curve : str
        ``"pfm_human"`` or ``"pfm_network"``.
    target : float

    Returns
    -------
    strokes, pixels : float
        At the recording resolution: a target reached between two records counts at the later.
    """
    reached = np.flatnonzero(np.asarray(run[curve], float) >= target - 1e-12)
    if not len(reached):
        return float("inf"), float("inf")
    first = reached[0]
    return float(run["strokes"][first]), float(run["annotated_pixels"][first])


def last_stroke_step(run: dict) -> int:
    """The recorded step by which the run committed its last stroke (0 if none)."""
    strokes = np.asarray(run["strokes"], float)
    changed = np.flatnonzero(strokes != strokes[-1])
    return int(run["step"][changed[-1] + 1]) if len(changed) else int(run["step"][0])
