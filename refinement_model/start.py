"""The app's automatic start: the base network, then the refiner with no strokes on every patch.

Run with a zero stroke channel, the refiner is a second, stronger segmentation stage: on the
default test views it lifts the base's whole-view pFM by 15-32% relative
(``benchmarks/bench_start.py``). The app, ``etmira predict``, projects and ``etmira simulate``
start from it, so that the strokes are measured against the best automatic tracing, not against
a weaker base the refiner would beat without them.

:class:`StartPredictor` has the interface of :class:`~refinement_model.prediction.Predictor`
(``predict_view``, ``grid``, ``net``), so callers swap one for the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from refinement_model.errors import Cancelled
from refinement_model.patch_refiner import PatchRefiner
from refinement_model.patches import PatchGrid, stitch_logits
from refinement_model.prediction import Predictor, predict_patch_logits
from refinement_model.refiner_options import RefinerOptions
from refinement_model.views import network_input

__all__ = [
    "START_REFINEMENT",
    "StartPredictor",
    "start_predictor",
    "start_record",
]

# The refiner options of the start, chosen on the validation views (docs/evaluation/from_start):
# the best whole-view pFM within noise at the fewest network passes per patch.
START_REFINEMENT = RefinerOptions(orientations=4, iterations=2)


class StartPredictor:
    """Whole-view prediction by the base network refined with no strokes on every patch.

    Each patch's raw base logits (as the refiner was trained on them) go through the refiner
    with a zero stroke channel; the refined logits are stitched like the base's. Given the
    mirror area, patches holding none of it keep the base logits: every pixel of the mirror lies
    only in patches that hold it, so the mirror's prediction is the same, and a full-size view
    needs about half the refiner passes.

    Parameters
    ----------
    base : str, os.PathLike or Predictor
        A base checkpoint, or its predictor (shared, not loaded again).
    refiner : str, os.PathLike or PatchRefiner
        A refiner checkpoint, or a refiner ready to use (its options are kept).
    options : RefinerOptions, optional
        The refiner's options for a checkpoint path.
    optimise : bool, optional
        Use the traced fast path for both networks.

    Attributes
    ----------
    base : Predictor
    refiner : PatchRefiner
    net : FastNet
        The base network (its ``spec.inputs`` are the image channels both networks read).
    metadata : dict
        The base checkpoint's metadata.
    record : dict
        What made the start, for a project or a manifest to keep: ``kind`` ("refined"),
        ``path`` (the refiner checkpoint; None for a network in memory), ``orientations``,
        ``iterations``.
    """

    def __init__(
        self,
        base,
        refiner,
        *,
        options: RefinerOptions = START_REFINEMENT,
        optimise: bool = True,
    ):
        self.base = base if isinstance(base, Predictor) else Predictor(base, optimise=optimise)
        if isinstance(refiner, PatchRefiner):
            self.refiner = refiner
        else:
            self.refiner = PatchRefiner(refiner, options=options, optimise=optimise)
        if tuple(self.refiner.spec.inputs) != tuple(self.base.net.spec.inputs):
            raise ValueError(
                f"the refiner reads {list(self.refiner.spec.inputs)}, the base "
                f"{list(self.base.net.spec.inputs)}: they do not belong together"
            )
        self.net = self.base.net
        self.metadata = self.base.metadata
        self.path = self.base.path
        self.record = {
            "kind": "refined",
            "path": self.refiner.path,
            **self.refiner.options.as_record(),
        }

    def grid(self, height: int, width: int) -> PatchGrid:
        """The base model's patch grid over a view of the given size."""
        return self.base.grid(height, width)

    def patch_logits(
        self,
        image: np.ndarray,
        grid: PatchGrid,
        *,
        batch_size: int = 8,
        refined: np.ndarray | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> Iterator[np.ndarray]:
        """Refined no-stroke logits (net_size, net_size) float32 of every patch of ``grid``, in
        grid order; the arguments are those of
        :func:`~refinement_model.prediction.predict_patch_logits` (``image`` (C, H, W) float32,
        the normalised network input of the view). ``refined`` (N,) bool names the patches the
        refiner runs on (default: all); the others give their base logits."""
        if refined is None:
            refined = np.ones(len(grid), dtype=bool)
        refined = np.asarray(refined, dtype=bool)
        if refined.shape != (len(grid),):
            raise ValueError(f"refined must have shape ({len(grid)},), got {refined.shape}")
        base = predict_patch_logits(self.net, image, grid, batch_size=batch_size, cancel=cancel)
        for start in range(0, len(grid), batch_size):
            if cancel is not None and cancel():
                raise Cancelled("prediction cancelled")
            indices = np.arange(start, min(start + batch_size, len(grid)))
            logits = np.stack([next(base) for _ in indices])
            picked = refined[indices]
            if picked.any():
                images = np.stack([grid.extract(image, i) for i in indices[picked]]).astype(
                    np.float32, copy=False
                )
                logits[picked] = self._refined(images, logits[picked])
            yield from logits

    def patch_changes(self, image: np.ndarray, grid: PatchGrid, indices) -> np.ndarray:
        """The start's change of some patches: refined (no strokes) minus base logits.

        Blended with ``patches.stitch_region_logits(..., missing=0)`` onto the stitched base
        prediction, the changes of the patches :meth:`predict_image` refines give its logits
        (the stitching is linear), so a caller can show the base prediction first and refine
        it patch by patch.

        Parameters
        ----------
        image : (C, H, W) float32 ndarray
            The normalised network input of the view.
        grid : PatchGrid
            Over (H, W).
        indices : sequence of int
            Patches of ``grid``, refined in one batch.

        Returns
        -------
        changes : (len(indices), net_size, net_size) float32 ndarray
        """
        images = np.stack([grid.extract(image, int(i)) for i in indices]).astype(
            np.float32, copy=False
        )
        base = self.net(images)
        return self._refined(images, base) - base

    def _refined(self, images: np.ndarray, base_logits: np.ndarray) -> np.ndarray:
        return self.refiner.refine_batch(images, base_logits, np.zeros_like(base_logits))

    def predict_image(
        self,
        image: np.ndarray,
        grid: PatchGrid,
        *,
        batch_size: int = 8,
        mirror_mask: np.ndarray | None = None,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """Whole-view probability map (H, W) float32 in [0, 1] of a normalised network input
        (C, H, W) over ``grid``; with ``mirror_mask`` (H, W) bool only the patches holding some
        of the mirror are refined."""
        image = np.asarray(image)
        if image.ndim != 3 or grid.shape != image.shape[1:]:
            raise ValueError(
                f"image must have shape (C, {grid.height}, {grid.width}), got {image.shape}"
            )
        refined = None if mirror_mask is None else grid.patches_holding(mirror_mask)
        logits = self.patch_logits(
            image, grid, batch_size=batch_size, refined=refined, cancel=cancel
        )
        return stitch_logits(grid, logits, progress=progress, cancel=cancel)

    def predict_view(
        self,
        view,
        *,
        batch_size: int = 8,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """Probability map (H, W) float32 of a :class:`~refinement_model.views.MirrorView`,
        as :meth:`Predictor.predict_view` gives the base's, refined over the patches holding
        some of the view's mirror area; ``progress(done, total)`` after each patch, ``cancel``
        raises :class:`Cancelled`."""
        image = network_input(view, self.net.spec.inputs)
        return self.predict_image(
            image,
            self.grid(*view.depth.shape),
            batch_size=batch_size,
            mirror_mask=view.mirror_mask,
            progress=progress,
            cancel=cancel,
        )


def start_predictor(base, refiner=None, **options):
    """The predictor of the app's initial prediction: a :class:`StartPredictor` over ``base``
    and ``refiner`` (``options`` as it takes them), or the base network's
    :class:`~refinement_model.prediction.Predictor` where there is no refiner."""
    if refiner is None:
        return base if isinstance(base, Predictor) else Predictor(base, **options)
    return StartPredictor(base, refiner, **options)


def start_record(predictor) -> dict:
    """What made a predictor's start, as a project or manifest keeps it: ``{"kind": "base",
    "path": base checkpoint}`` for the base network alone, else :attr:`StartPredictor.record`
    (whose ``path`` is the refiner's)."""
    return dict(getattr(predictor, "record", {"kind": "base", "path": predictor.path}))
