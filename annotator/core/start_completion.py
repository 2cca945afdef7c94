"""The refiner's part of a project's start, finished patch by patch while the user works.

A view opened the first time shows the base network's prediction within seconds
(``new_project(..., start_later=True)``), where the start the evaluation measures (the refiner
run with no strokes on every patch holding the mirror, ``refinement_model.start``) takes
minutes on a full-size view. :class:`StartCompletion` computes that start in small batches,
worst patch first or where the user is about to look (``Project.prefer_start``), and the
project shows and stores each batch (``Project.refine_start``); patches the user has corrected
keep their start (``AnnotationSession.refine_start``). Once every patch is done, the start is
the one ``StartPredictor.predict_view`` gives, up to float16 rounding.

Qt-free: the app runs :meth:`StartCompletion.job`'s function on a worker thread and
:meth:`StartCompletion.apply` on the GUI thread; a script calls :meth:`StartCompletion.run`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial

import numpy as np

from annotator.core.project import DeferredRefiner, Project
from refinement_model.errors import Cancelled
from refinement_model.network_loader import NetworkLoader

__all__ = ["StartCompletion", "start_completion"]

# Patches per job: 2 x 4 orientations fill one backend run (fast_net.ENGINE_BATCH) and keep a
# job under a second, so that a stroke waits little for the cores.
DEFAULT_BATCH = 2


class StartCompletion:
    """Refines a project's pending start (see the module docstring).

    Parameters
    ----------
    project : Project
        With :attr:`Project.start_pending` patches and a refiner.
    loader : NetworkLoader
        What builds the base network (and the refiner, unless the project's is a
        ``PatchRefiner`` or ``DeferredRefiner`` whose network it shares) when the project
        does not hold them (:attr:`Project.start_predictor`).
    batch_size : int, optional
        Patches refined per job.

    Attributes
    ----------
    total : int
        The patches the start refines (those holding some of the mirror).
    """

    def __init__(self, project: Project, *, loader: NetworkLoader, batch_size: int = DEFAULT_BATCH):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.project = project
        self.batch_size = batch_size
        self._loader = loader
        self._lock = threading.Lock()
        session = project.session
        self.total = int(session.grid.patches_holding(session.view.mirror_mask).sum())

    @property
    def finished(self) -> bool:
        """Whether no patch is pending."""
        return not self.project.start_pending

    @property
    def done(self) -> int:
        """Patches refined so far."""
        return max(self.total - len(self.project.start_pending), 0)

    def job(self) -> Callable[[], tuple[list[int], np.ndarray]] | None:
        """The next batch as a function of nothing, bound to arrays the session never changes
        (it may run on another thread; one at a time), or None when nothing is pending. It
        returns ``(patches, changes)`` for :meth:`apply`."""
        patches = list(self.project.start_pending[: self.batch_size])
        if not patches:
            return None
        session = self.project.session
        return partial(self._changes, session.network_image, session.grid, patches)

    def _changes(self, image, grid, patches):
        with self._lock:
            predictor = self.project.start_predictor
            if predictor is None:
                predictor = self.project.start_predictor = _start_networks(
                    self.project, self._loader
                )
        return patches, predictor.patch_changes(image, grid, patches)

    def apply(self, result) -> None:
        """Show and store what a job returned (GUI thread); patches no longer pending are
        left out. The networks are let go once the start is complete."""
        patches, changes = result
        pending = set(self.project.start_pending)
        kept = {p: change for p, change in zip(patches, changes, strict=True) if p in pending}
        if kept:
            self.project.refine_start(kept)
        if self.finished:
            self.project.start_predictor = None

    def run(
        self,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> None:
        """Refine every pending patch here, ``progress(done, total)`` after each batch;
        ``cancel()`` is checked between batches (raises :class:`Cancelled`; what was done
        stays)."""
        while (job := self.job()) is not None:
            if cancel is not None and cancel():
                raise Cancelled("refining the start was cancelled")
            self.apply(job())
            if progress is not None:
                progress(self.done, self.total)


def start_completion(project: Project, *, loader: NetworkLoader, **options):
    """A :class:`StartCompletion` for ``project`` if its start has patches pending and it has
    a refiner to refine them with, else None."""
    if not project.start_pending or project.refiner is None:
        return None
    return StartCompletion(project, loader=loader, **options)


def _start_networks(project: Project, loader: NetworkLoader):
    """The base network and the start's refiner (sharing the session refiner's network)."""
    # the networks' modules, only once a reopened project's start is to finish
    from refinement_model.patch_refiner import PatchRefiner
    from refinement_model.start import START_REFINEMENT, start_predictor

    models = project.store.meta()["models"]
    refiner = project.refiner
    if isinstance(refiner, DeferredRefiner):
        refiner = refiner.build()
    if isinstance(refiner, PatchRefiner):
        refiner = refiner.with_options(START_REFINEMENT)
    else:
        refiner = loader.refiner(models["refiner"]["path"], START_REFINEMENT)
    return start_predictor(loader.predictor(models["base"]["path"]), refiner)
