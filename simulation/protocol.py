"""The paper's evaluation: a simulated annotator corrects a view, worst patch first.

Each step takes the worst patch from a priority queue, simulates an add and an erase stroke
against the ground truth (at network resolution, like the paper), lets the refiner re-predict
with each the patches the stroke touches, as the app does (as one image,
:mod:`refinement_model.blocks`), keeps the stroke whose refined queued patch scores better, and
commits it only if it improves the human-only mask of the patch; the patches whose masks changed
are ranked anew, as in the app (the paper refined and ranked anew the queued patch only:
``refine_touched=False``). Every ``record_every`` steps the whole view
inside the mirror area is scored twice:

* human only: the initial binary prediction with the committed strokes burned in;
* human + network: the initial logits plus the stitched refinements, strokes burned in.

Strokes, user map, refinements and both masks live in a
:class:`refinement_model.corrections.ViewCorrections`, the correction state the app's session
keeps too, so that what is measured is what the app shows.

With ``adapt_every`` K (the setting ``adaptive``), after every K committed strokes the refiner
adapts to the view (:mod:`refinement_model.adaptation`) on the patches corrected so far: each
patch's network + human mask with its strokes burned in as the target (never the ground truth:
the simulated user's strokes are the only truth it sees). An accepted update refines from then
on, and propagates: every patch without strokes takes the adapted refiner's no-stroke prediction
where it decides otherwise than the frozen refiner's
(:func:`~refinement_model.corrections.propagated_change`, so that a rejected or ineffective
update changes nothing), and the queue ranks all patches anew; patches
with strokes keep their refinements until a stroke touches them again (their refinements
answer the user's strokes, which the no-stroke prediction would discard).

With ``finish_pfm`` (the settings ``finishing`` and ``finishing_adaptive``) the simulated user
finishes each patch before taking the next, and the adaptation trains on the finished patches
only: a user whose corrected masks say more than "better than before".

Refinements enter the whole-view map as logit *changes* (refined minus base patch logits),
blended across overlapping patches with the stitching weights, so that the two curves start
exactly at the initial prediction's score.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from refinement_model.blocks import refine_patches_together
from refinement_model.corrections import ViewCorrections, propagated_change
from refinement_model.errors import Cancelled
from refinement_model.metrics import pseudo_f_measure, score_masks, thin
from refinement_model.patches import PatchGrid, union
from refinement_model.ranking import oracle_score, uncertainty_score
from refinement_model.simulated_user import choose_stroke, simulate_add, simulate_erase
from refinement_model.stroke_widths import PAPER_STROKE_WIDTHS, StrokeWidthModel, skeleton
from refinement_model.strokes import Stroke, burn_in, stroke_channel

RefineFunction = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
# The online adaptation a run may use: the corrected patches (image, start, target, user at
# network size, as refinement_model.adaptation.CorrectedPatch takes them), oldest first, to the
# adapted refiner, or None where the update was rejected.
AdaptFunction = Callable[[list], "RefineFunction | None"]

RANKINGS = ("oracle", "gt_free")
CHOOSERS = ("refined", "longer")
OPERATIONS = ("add", "erase")
RECORD_FIELDS = (
    "step",
    "strokes",
    "annotated_pixels",
    "pfm_human",
    "iou_human",
    "pfm_network",
    "iou_network",
)


@dataclass(frozen=True)
class ProtocolConfig:
    """Settings of one simulated annotation run.

    Attributes
    ----------
    steps : int
        Simulated interactions (attempts, committed or not).
    record_every : int
        Steps between two whole-view scorings.
    operations : tuple of "add" / "erase"
        Which strokes the simulated user may draw (the paper's operations ablation).
    ranking : "oracle" or "gt_free"
        Worst-first by true patch pFM, or by :func:`refinement_model.ranking.uncertainty_scores`.
    chooser : "refined" or "longer"
        Between an add and an erase stroke keep the one whose refined patch scores higher (the
        authors' code) or the one from the longer skeleton segment (the poster).
    use_prediction, use_strokes : bool
        Feed the refiner the base logits / the stroke channel, or zeros in their place (the
        paper's inputs ablation, evaluated with one refiner).
    stroke_length : int
        Centre-line pixels of a simulated stroke at network resolution.
    max_failures : int
        Consecutive attempts without a committed stroke after which a patch leaves the queue.
    refine_touched : bool
        As the app does: refine every patch a committed stroke touches, each with all its
        strokes, and rank anew the queued patches whose masks changed; False refines and ranks
        anew the queued patch only, as the paper did.
    widths : StrokeWidthModel
        Stroke half-widths at full resolution.
    adapt_every : int
        Committed strokes between two updates of the online adaptation (the ``adapt`` of
        :func:`run_protocol`), finished patches with ``finish_pfm``; 0 never adapts.
    finish_pfm : float
        0 (the paper's user): every attempt takes the worst queued patch anew. Above 0 the user
        *finishes* patches: they stay on the patch they took until its human + network pFM
        reaches ``finish_pfm`` or ``max_failures`` attempts in a row commit nothing; the patch
        then leaves the queue (a patch already at ``finish_pfm`` when it comes up leaves it
        untouched). The adaptation trains on the patches the user left after committing
        strokes on them, with their masks as they were then: what the user let stand, as the
        app's done patches.
    """

    steps: int = 3000
    record_every: int = 10
    operations: tuple[str, ...] = OPERATIONS
    ranking: str = "oracle"
    chooser: str = "refined"
    use_prediction: bool = True
    use_strokes: bool = True
    stroke_length: int = 11
    max_failures: int = 3
    refine_touched: bool = True
    widths: StrokeWidthModel = field(default=PAPER_STROKE_WIDTHS)
    adapt_every: int = 0
    finish_pfm: float = 0.0

    def __post_init__(self):
        if self.steps < 0 or self.record_every < 1:
            raise ValueError(
                f"steps must be >= 0 and record_every >= 1, got {self.steps}, {self.record_every}"
            )
        if not self.operations or set(self.operations) - set(OPERATIONS):
            raise ValueError(
                f"operations must be a non-empty subset of {OPERATIONS}, got {self.operations!r}"
            )
        if self.ranking not in RANKINGS:
            raise ValueError(f"ranking must be one of {RANKINGS}, got {self.ranking!r}")
        if self.chooser not in CHOOSERS:
            raise ValueError(f"chooser must be one of {CHOOSERS}, got {self.chooser!r}")
        if self.max_failures < 1 or self.stroke_length < 1:
            raise ValueError("max_failures and stroke_length must be >= 1")
        if self.adapt_every < 0:
            raise ValueError(f"adapt_every must be >= 0, got {self.adapt_every}")
        if (
            isinstance(self.finish_pfm, bool)
            or not isinstance(self.finish_pfm, int | float)
            or not 0 <= self.finish_pfm <= 1
        ):
            raise ValueError(f"finish_pfm must be in [0, 1], got {self.finish_pfm!r}")


def patch_stroke_to_view(stroke: Stroke, grid: PatchGrid, index: int) -> Stroke:
    """A stroke drawn in network pixels of patch ``index``, in view pixels."""
    ox, oy = grid.network_origin(index)
    points = [(x / grid.scale + ox, y / grid.scale + oy) for x, y in stroke.points]
    return Stroke(stroke.kind, points, stroke.radius / grid.scale)


class _Window(NamedTuple):
    """A patch's window at full resolution (``region``, with its top-left ``origin`` as
    x, y), and the ground truth, its skeleton and the mirror area (None: everywhere) there."""

    region: tuple[slice, slice]
    origin: tuple[int, int]
    truth: np.ndarray
    skeleton: np.ndarray
    mirror: np.ndarray | None


class _ViewState:
    """Ground truth, refiner and corrections (:class:`ViewCorrections`) of one view during a
    run."""

    def __init__(self, image, base_logits, ground_truth, mirror_mask, grid, refine, config):
        self.image, self.base_logits, self.grid = image, base_logits, grid
        self.ground_truth, self.mirror = ground_truth, mirror_mask
        self.refine_fn, self.config = refine, config
        self.frozen_refine = refine
        self._frozen_start: dict[int, np.ndarray] = {}
        self.gt_skeleton = thin(ground_truth)
        self.corrections = ViewCorrections(grid, base_logits)
        self._truth: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def network_inputs(self, index):
        """Image and base logits of a patch at network size."""
        return self.grid.extract(self.image, index), self.grid.extract(self.base_logits, index)

    def patch_truth(self, index):
        """Ground truth and its skeleton of a patch at network size."""
        if index not in self._truth:
            gt = self.grid.extract(self.ground_truth, index)
            self._truth[index] = gt, skeleton(gt)
        return self._truth[index]

    def refine(self, index: int, stroke: Stroke) -> dict[int, np.ndarray]:
        """Refined logits of the patches a new ``stroke`` on patch ``index`` changes, with it
        and every earlier stroke on them: as the app does, all the patches it touches, as one
        image (:mod:`refinement_model.blocks`); the queued patch alone without
        ``refine_touched``."""
        corrections = self.corrections
        patches = [index]
        if self.config.refine_touched:
            # a stroke near a border also changes the overlapping patches, whose own
            # refinements would otherwise dilute this one's in the blend
            patches = sorted({index, *corrections.touched_patches(stroke)})
        box = union(*(self.grid.boxes[i].tolist() for i in patches))
        return refine_patches_together(
            self._refine_many,
            self.grid,
            self.image,
            self.base_logits,
            patches,
            corrections.strokes_over(box) + [stroke],
            use_prediction=self.config.use_prediction,
            use_strokes=self.config.use_strokes,
        )

    def _refine_many(self, images, bases, channels) -> np.ndarray:
        return np.stack([self.refine_fn(*job) for job in zip(images, bases, channels, strict=True)])

    def commit(self, stroke: Stroke, refined: dict) -> tuple[int, int, int, int]:
        """Commit a stroke and its patches' refined logits (:meth:`refine`); return the view
        region whose masks changed."""
        self.corrections.add_stroke(stroke)
        return self.corrections.set_deltas(
            {i: logits - self.grid.extract(self.base_logits, i) for i, logits in refined.items()}
        )

    def corrected_patch(self, index: int) -> tuple | None:
        """(image, start, target, user) of patch ``index`` at network size, as it is now: the
        target is the network + human mask with the strokes burned in, ``user`` their stroke
        channel (int8); None if no stroke pixel falls in the patch."""
        n, grid, corrections = self.grid.net_size, self.grid, self.corrections
        image, base = self.network_inputs(index)
        strokes = corrections.strokes_on(index)
        origin = grid.network_origin(index)
        target = burn_in(
            base + corrections.deltas.get(index, 0) > 0, strokes, origin=origin, scale=grid.scale
        )
        user = stroke_channel(strokes, (n, n), origin=origin, scale=grid.scale)
        return (image, base, target, user.astype(np.int8)) if user.any() else None

    def corrected_patches(self) -> list[tuple]:
        """:meth:`corrected_patch` of every patch with strokes, the most recently touched
        last."""
        order = {}
        for number, stroke in enumerate(self.corrections.strokes):
            for index in self.corrections.touched_patches(stroke):
                order[index] = number  # the latest stroke on the patch
        patches = (self.corrected_patch(index) for index in sorted(order, key=order.get))
        return [patch for patch in patches if patch is not None]

    def propagate(self, refine: RefineFunction) -> None:
        """Refine from now on with ``refine``, and give every patch in the mirror area without
        strokes the decisions its no-stroke prediction changes over the frozen refiner's."""
        self.refine_fn = refine
        n = self.grid.net_size
        changes = {}
        for index in range(len(self.grid)):
            y0, x0, y1, x1 = self.grid.region(index)
            if self.corrections.strokes_on(index) or (
                self.mirror is not None and not self.mirror[y0:y1, x0:x1].any()
            ):
                continue
            image, base = self.network_inputs(index)
            zeros = np.zeros((n, n), np.float32)
            if index not in self._frozen_start:
                self._frozen_start[index] = self.frozen_refine(image, base, zeros)
            changes[index] = propagated_change(
                base, self._frozen_start[index], refine(image, base, zeros)
            )
        self.corrections.set_deltas(changes)

    def window(self, index: int) -> _Window:
        """Patch ``index``'s full-resolution window, with the truth and mirror area there."""
        y0, x0, y1, x1 = self.grid.region(index)
        region = np.s_[y0:y1, x0:x1]
        truth, gt_skeleton = self.ground_truth[region], self.gt_skeleton[region]
        mirror = None if self.mirror is None else self.mirror[region]
        return _Window(region, (x0, y0), truth, gt_skeleton, mirror)

    def patch_pfm(self, index: int) -> float:
        """Human + network pFM of a patch at full resolution, in the mirror area."""
        window = self.window(index)
        return pseudo_f_measure(
            self.corrections.network_mask(window.region),
            window.truth,
            mask=window.mirror,
            gt_skeleton=window.skeleton,
        )

    def scores(self):
        kwargs = dict(mask=self.mirror, gt_skeleton=self.gt_skeleton)
        return (
            score_masks(self.corrections.human_mask(), self.ground_truth, **kwargs),
            score_masks(self.corrections.network_mask(), self.ground_truth, **kwargs),
        )


def run_protocol(
    image,
    base_logits,
    ground_truth,
    refine: RefineFunction,
    *,
    mirror_mask=None,
    grid: PatchGrid | None = None,
    config: ProtocolConfig = ProtocolConfig(),
    rng=None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    adapt: AdaptFunction | None = None,
) -> list[dict]:
    """Simulate a user correcting one view, worst patch first; return the recorded curve.

    Parameters
    ----------
    image : (C, H, W) float32 array
        Network input of the view (normalised channels).
    base_logits : (H, W) float32 array
        The base model's stitched logits.
    ground_truth : (H, W) bool array
    refine : callable(image_patch, base_logits_patch, stroke_channel) -> logits
        The refiner at network size: ``(C, n, n)``, ``(n, n)``, ``(n, n)`` -> ``(n, n)``.
    mirror_mask : (H, W) bool array, optional
        Scoring and ranking are restricted to it.
    grid : PatchGrid, optional
        Defaults to the paper's 512 / 256 / 256 grid.
    config : ProtocolConfig
    rng : None, int or numpy.random.Generator
    progress : callable(done, total), optional
    cancel : callable() -> bool, optional
        Raises :class:`Cancelled` when it returns True.
    adapt : callable(patches) -> refine or None, optional
        The online adaptation, called after every ``config.adapt_every`` committed strokes
        (finished patches, with ``config.finish_pfm``) with the corrected patches, oldest
        first (:meth:`_ViewState.corrected_patches`; with ``finish_pfm``, the finished ones
        as the user left them); a refine function it returns replaces ``refine`` and
        propagates (see the module docstring). Needed when ``adapt_every`` > 0.

    Returns
    -------
    records : list of dict
        Keys :data:`RECORD_FIELDS`; the first record is step 0 (the initial prediction), then one
        every ``record_every`` steps and one at the last step.
    """
    image, base_logits, ground_truth, mirror_mask = _check_inputs(
        image, base_logits, ground_truth, mirror_mask
    )
    grid = grid or PatchGrid(*base_logits.shape)
    if grid.shape != base_logits.shape:
        raise ValueError(f"grid covers {grid.shape}, the view is {base_logits.shape}")
    if config.adapt_every and adapt is None:
        raise ValueError("config.adapt_every > 0 needs an adapt function")
    rng = np.random.default_rng(rng)
    state = _ViewState(image, base_logits, ground_truth, mirror_mask, grid, refine, config)
    queue = _PatchQueue()
    for index in range(len(grid)):
        queue.push(_priority(state, index), index)
    records = [_record(state, 0)]
    user = (_FinishingUser if config.finish_pfm else _PaperUser)(state, queue, adapt)
    for step in range(1, config.steps + 1):
        if cancel is not None and cancel():
            raise Cancelled("simulation cancelled")
        user.attempt(rng)
        if step % config.record_every == 0 or step == config.steps:
            records.append(_record(state, step))
        if progress is not None:
            progress(step, config.steps)
    return records


def _rank_touched(state: _ViewState, queue: _PatchQueue, changed, index: int) -> None:
    """As the app's queue does: the queued patches other than ``index`` whose masks a stroke
    changed (the view region ``changed``) are ranked anew; patches that left the queue stay
    out."""
    if not state.config.refine_touched:
        return
    for other in state.grid.patches_touching(*changed).tolist():
        if other != index and other in queue:
            queue.push(_priority(state, other), other)


class _PaperUser:
    """The paper's user: every attempt takes the worst queued patch anew; a patch leaves the
    queue after ``config.max_failures`` attempts in a row that commit nothing."""

    def __init__(self, state: _ViewState, queue: _PatchQueue, adapt: AdaptFunction | None):
        self.state, self.queue, self.adapt = state, queue, adapt
        self.failures = np.zeros(len(state.grid), int)

    def attempt(self, rng) -> None:
        """One interaction, none when the queue is empty."""
        state, config, queue = self.state, self.state.config, self.queue
        index = queue.pop()
        if index is None:
            return
        changed = _attempt(state, index, rng)
        self.failures[index] = 0 if changed is not None else self.failures[index] + 1
        if self.failures[index] < config.max_failures:
            queue.push(_priority(state, index), index)
        if changed is None:
            return
        _rank_touched(state, queue, changed, index)
        if config.adapt_every and len(state.corrections.strokes) % config.adapt_every == 0:
            _adapt(state, queue, self.adapt, state.corrected_patches())


class _FinishingUser:
    """The user of ``config.finish_pfm``: stays on a patch until it is finished (see
    :class:`ProtocolConfig`), then takes the worst queued patch."""

    def __init__(self, state: _ViewState, queue: _PatchQueue, adapt: AdaptFunction | None):
        self.state, self.queue, self.adapt = state, queue, adapt
        self.current: int | None = None
        self.failures = self.committed = 0
        # corrected_patch of each finished patch when the user left it, in finishing order
        self.finished: dict[int, tuple] = {}

    def _take(self) -> int | None:
        """The worst queued patch that is not finished yet; those that are leave the queue."""
        state = self.state
        while (index := self.queue.pop()) is not None:
            if state.patch_pfm(index) < state.config.finish_pfm:
                return index
        return None

    def attempt(self, rng) -> None:
        """One interaction: a stroke on the current patch, or none when the queue is empty."""
        state, config = self.state, self.state.config
        if self.current is None:
            self.current, self.failures, self.committed = self._take(), 0, 0
            if self.current is None:
                return
        index = self.current
        changed = _attempt(state, index, rng)
        self.failures = 0 if changed is not None else self.failures + 1
        if changed is not None:
            self.committed += 1
            _rank_touched(state, self.queue, changed, index)
        if self.failures < config.max_failures and state.patch_pfm(index) < config.finish_pfm:
            return
        self.current = None
        patch = state.corrected_patch(index) if self.committed else None
        if patch is None:
            return
        self.finished[index] = patch
        if config.adapt_every and len(self.finished) % config.adapt_every == 0:
            _adapt(state, self.queue, self.adapt, list(self.finished.values()))


def _adapt(state: _ViewState, queue: _PatchQueue, adapt: AdaptFunction, patches: list) -> None:
    """One update of the online adaptation on corrected ``patches`` (tuples of
    :meth:`_ViewState.corrected_patch`, oldest first); if accepted, propagate and rank anew."""
    if len(patches) < 2:
        return
    refine = adapt(patches)
    if refine is None:
        return
    state.propagate(refine)
    for index in range(len(state.grid)):
        if index in queue:
            queue.push(_priority(state, index), index)


def _attempt(state: _ViewState, index: int, rng) -> tuple[int, int, int, int] | None:
    """One simulated interaction on patch ``index``: the view region a committed stroke
    changed, None when no stroke was committed."""
    config, grid = state.config, state.grid
    base = state.grid.extract(state.base_logits, index)
    gt, gt_skeleton = state.patch_truth(index)
    earlier = state.corrections.strokes_on(index)
    origin = grid.network_origin(index)
    current = burn_in(
        base + state.corrections.deltas.get(index, 0) > 0, earlier, origin=origin, scale=grid.scale
    )
    refined_by_stroke = {}

    def refined_score(patch_stroke: Stroke) -> float:
        stroke = patch_stroke_to_view(patch_stroke, grid, index)
        refined = state.refine(index, stroke)
        refined_by_stroke[patch_stroke] = refined
        return pseudo_f_measure(
            burn_in(refined[index] > 0, earlier + [stroke], origin=origin, scale=grid.scale), gt
        )

    options = dict(
        rng=rng,
        length=config.stroke_length,
        widths=config.widths,
        scale=grid.scale,
        gt_skeleton=gt_skeleton,
    )
    if len(config.operations) == 2:
        chosen = choose_stroke(
            gt, current, **options, score=refined_score if config.chooser == "refined" else None
        )
        patch_stroke = None if chosen is None else chosen.stroke
    else:
        simulate = simulate_add if config.operations == ("add",) else simulate_erase
        patch_stroke = simulate(gt, current, **options)
    if patch_stroke is None:
        return None
    stroke = patch_stroke_to_view(patch_stroke, grid, index)
    if not _improves_human(state, index, stroke):
        return None
    if patch_stroke not in refined_by_stroke:
        refined_score(patch_stroke)
    return state.commit(stroke, refined_by_stroke[patch_stroke])


def _improves_human(state: _ViewState, index: int, stroke: Stroke) -> bool:
    """The accept rule: the stroke must raise the human-only pFM of its patch."""
    window = state.window(index)
    before = state.corrections.human_mask(window.region)
    after = burn_in(before, [stroke], origin=window.origin)
    options = dict(mask=window.mirror, gt_skeleton=window.skeleton)
    return pseudo_f_measure(after, window.truth, **options) > pseudo_f_measure(
        before, window.truth, **options
    )


class _PatchQueue:
    """Patches by priority, smallest first; pushing a queued patch again replaces its priority
    (the older entry is skipped when it comes up). Patches of infinite priority are left out."""

    def __init__(self):
        self._heap: list[tuple[float, int, int]] = []
        self._version: dict[int, int] = {}
        self._pushes = 0

    def __contains__(self, index: int) -> bool:
        return index in self._version

    def push(self, priority: float, index: int) -> None:
        if not np.isfinite(priority):
            self._version.pop(index, None)
            return
        self._pushes += 1
        self._version[index] = self._pushes
        heapq.heappush(self._heap, (priority, index, self._pushes))

    def pop(self) -> int | None:
        while self._heap:
            _, index, version = heapq.heappop(self._heap)
            if self._version.get(index) == version:
                del self._version[index]
                return index
        return None


def _priority(state: _ViewState, index: int) -> float:
    """Heap key of a patch: smaller pops first, so badness is negated."""
    window = state.window(index)
    if state.config.ranking == "oracle":
        badness = oracle_score(
            state.corrections.network_mask(window.region),
            window.truth,
            mirror_mask=window.mirror,
            gt_skeleton=window.skeleton,
        )
    else:
        badness = uncertainty_score(
            state.corrections.probabilities[window.region],
            mirror_mask=window.mirror,
            user=state.corrections.user[window.region],
        )
    return -float(badness)


def _record(state: _ViewState, step: int) -> dict:
    human, network = state.scores()
    return {
        "step": step,
        "strokes": len(state.corrections.strokes),
        # the paper's effort: every stroke's pixels, overlaps counted again
        "annotated_pixels": state.corrections.stroke_pixels,
        "pfm_human": human["pfm"],
        "iou_human": human["iou"],
        "pfm_network": network["pfm"],
        "iou_network": network["iou"],
    }


def _check_inputs(image, base_logits, ground_truth, mirror_mask):
    base_logits = np.asarray(base_logits, dtype=np.float32)
    if base_logits.ndim != 2:
        raise ValueError(f"base_logits must be (H, W), got shape {base_logits.shape}")
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[1:] != base_logits.shape:
        raise ValueError(
            f"image must be (C, H, W) with (H, W) = {base_logits.shape}, got {image.shape}"
        )
    ground_truth = np.asarray(ground_truth, dtype=bool)
    if ground_truth.shape != base_logits.shape:
        raise ValueError(
            f"ground_truth must have shape {base_logits.shape}, got {ground_truth.shape}"
        )
    if mirror_mask is not None:
        mirror_mask = np.asarray(mirror_mask, dtype=bool)
        if mirror_mask.shape != base_logits.shape:
            raise ValueError(
                f"mirror_mask must have shape {base_logits.shape}, got {mirror_mask.shape}"
            )
    return image, base_logits, ground_truth, mirror_mask
