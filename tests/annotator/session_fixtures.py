"""Small views and refiners shared by the session tests (96 x 96, 64-px patches, stride 32,
at network size 64, so that the patches a stroke touches are refined as one image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from annotator.core.refiners import SpreadRefiner
from annotator.core.session import AnnotationSession
from refinement_model.patches import PatchGrid
from refinement_model.views import MirrorView, ViewFiles

SIZE = 96


def lines() -> np.ndarray:
    """Two horizontal lines, 3 px thick: the drawing of the small view."""
    gt = np.zeros((SIZE, SIZE), dtype=bool)
    gt[30:33, 8:88] = True
    gt[60:63, 8:88] = True
    return gt


def small_view(*, seed: int = 0, ground_truth: bool = True) -> MirrorView:
    """A 96 x 96 view: :func:`lines` as ground truth, a disc as the mirror area."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    gt = lines()
    depth = (0.5 + 0.1 * rng.standard_normal((SIZE, SIZE))).astype(np.float32)
    normals = np.zeros((SIZE, SIZE, 3), np.float32)
    normals[..., 2] = 1
    files = ViewFiles("test_R", Path("n.tif"), Path("a.tif"), Path("d.tif"))
    return MirrorView(
        "test_R",
        depth,
        depth.copy(),
        normals,
        gt if ground_truth else None,
        (yy - 48) ** 2 + (xx - 48) ** 2 < 47**2,
        False,
        10.0,
        files,
    )


def small_base(view: MirrorView, *, seed: int = 1) -> np.ndarray:
    """Base logits that find the left half of the lines and some noise."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(-3.0, 1.0, view.shape).astype(np.float32)
    logits[lines() & (np.arange(SIZE) < 48)] = 3.0
    return logits


def small_grid() -> PatchGrid:
    return PatchGrid(SIZE, SIZE, patch_size=64, stride=32, net_size=64)


class CountingRefiner:
    """A SpreadRefiner that counts its calls."""

    def __init__(self, **options):
        self.inner = SpreadRefiner(**options)
        self.calls = 0

    def __call__(self, image_patch, base_logits, stroke_channel):
        self.calls += 1
        return self.inner(image_patch, base_logits, stroke_channel)


def make_session(refine="spread", *, view=None, **options) -> AnnotationSession:
    view = small_view() if view is None else view
    if refine == "spread":
        refine = SpreadRefiner(sigma=1.5, strength=6.0)
    ticks = iter(range(10**6))
    options.setdefault("clock", lambda: float(next(ticks)))
    return AnnotationSession(view, small_base(view), refine, grid=small_grid(), **options)


def replayed(session: AnnotationSession, refine="spread", **kwargs) -> AnnotationSession:
    if refine == "spread":
        refine = SpreadRefiner(sigma=1.5, strength=6.0)
    return AnnotationSession.replay(
        session.view, session.base_logits, refine, session.journal, grid=small_grid(), **kwargs
    )


def state(session: AnnotationSession) -> tuple[np.ndarray, ...]:
    return (
        session.mask.copy(),
        session.probabilities.copy(),
        session.provenance.copy(),
        session.user_map.copy(),
    )


def assert_same_state(a, b) -> None:
    for x, y, name in zip(a, b, ("mask", "probabilities", "provenance", "user_map"), strict=True):
        assert np.array_equal(x, y), f"{name} differs"
