"""One synthetic mirror side: drawing, damage and the photometric-stereo maps."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from refinement_model.errors import Cancelled
from simulation.synth import render, scene, surface
from simulation.synth.damage import damage_grooves, damage_recipe
from simulation.synth.drawings import REFERENCE_PX_PER_MM, Groove

#: Default difficulty: calibrated so a classical baseline stays well below pFM 0.6
#: (see docs/data.md).
DEFAULT_DIFFICULTY = 0.7
_STEPS = 7


@dataclass(frozen=True)
class SyntheticView:
    """The maps and masks of one synthetic mirror side.

    Attributes
    ----------
    depth : ndarray of float32, shape (H, W)
        Height in mm (larger = towards the camera).
    albedo : ndarray of float32, shape (H, W)
        In [0, 1].
    normals : ndarray of float32, shape (H, W, 3)
        Unit normals ``(nx, ny, nz)``, x right and y down the image.
    drawings : ndarray of bool, shape (H, W)
        Ground truth: the footprint of the engraved grooves inside the mirror area.
    mirror_mask : ndarray of bool, shape (H, W)
        The bronze that survives (breaks are outside).
    px_per_mm : float
    grooves : tuple of Groove
        The engraved lines (scratches not included).
    """

    depth: np.ndarray
    albedo: np.ndarray
    normals: np.ndarray
    drawings: np.ndarray
    mirror_mask: np.ndarray
    px_per_mm: float
    grooves: tuple[Groove, ...]


def generate_view(
    *,
    size=(2048, 2048),
    seed=None,
    difficulty=DEFAULT_DIFFICULTY,
    px_per_mm=REFERENCE_PX_PER_MM,
    damage="default",
    progress=None,
    cancel=None,
):
    """Generate one synthetic engraved, corroded bronze mirror side.

    Line widths follow the real annotations at ``px_per_mm`` (the Gamma of docs/method.md at
    45 px/mm) whatever the view size, so a small view is a small disc at full resolution, and
    its 512 px patches look like patches of a real view.

    Parameters
    ----------
    size : (int, int)
        ``(W, H)`` in px, each at least 64.
    seed : int, sequence of int, numpy.random.Generator or None
        Normalised with :func:`numpy.random.default_rng`; equal seeds give equal views.
    difficulty : float
        In [0, 1]: amount of corrosion, pitting, crusts, scratches, wear and breaks.
    px_per_mm : float
        Pixel pitch.
    damage : {"default", "grooves"}
        The damage recipe (:mod:`simulation.synth.damage`): the default one, which the
        networks are trained on, or groove-like scratches, crusts filling grooves and faint
        shallow lines.
    progress : callable(done, total), optional
    cancel : callable() -> bool, optional
        Checked between steps; raises :class:`refinement_model.errors.Cancelled` when True.

    Returns
    -------
    SyntheticView

    Examples
    --------
    >>> view = generate_view(size=(256, 256), seed=1)
    >>> view.depth.shape, view.normals.shape, view.drawings.dtype
    ((256, 256), (256, 256, 3), dtype('bool'))
    """
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be a pair (W, H) of integers, got {size!r}") from None
    if w < 64 or h < 64:
        raise ValueError(f"size must be at least 64 x 64, got {w} x {h}")
    if not 0 <= difficulty <= 1:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    if not px_per_mm > 0:
        raise ValueError(f"px_per_mm must be positive, got {px_per_mm}")
    recipe = damage_recipe(damage)
    rng = np.random.default_rng(seed)
    shape = (h, w)
    step = _Stepper(progress, cancel)

    mask, centre, radius = surface.disc_outline(shape, rng=rng, difficulty=difficulty)
    drawing, scratches = scene.make_grooves(
        centre, radius, rng=rng, px_per_mm=px_per_mm, difficulty=difficulty
    )
    drawing, scratches = damage_grooves(
        drawing,
        scratches,
        centre,
        radius,
        recipe=recipe,
        rng=rng,
        px_per_mm=px_per_mm,
        difficulty=difficulty,
    )
    step()
    height = surface.relief(shape, centre, radius, rng=rng, px_per_mm=px_per_mm)
    step()
    rough, crust, pits = surface.corrosion(
        shape, rng=rng, px_per_mm=px_per_mm, difficulty=difficulty, crust_cover=recipe.crust_cover
    )
    height += rough
    del rough
    step()
    removed, footprint = render.carve(shape, drawing)
    # crusts fill the grooves they cover; the annotators still trace the line underneath
    removed *= 1 - recipe.crust_fill * crust
    step()
    scratched, _ = render.carve(shape, scratches)
    removed = np.maximum(removed, scratched)
    del scratched
    height -= removed
    height += (0.001 + 0.002 * difficulty) * rng.standard_normal(shape, dtype=np.float32)
    # the disc lies a little above its support; its edge is rounded over about 0.4 mm
    background = -rng.uniform(0.3, 0.8) + 0.02 * surface.value_noise(shape, 200, rng=rng)
    edge = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    bevel = np.clip(edge / np.float32(0.4 * px_per_mm), 0, 1)
    del edge
    bevel *= bevel * (3 - 2 * bevel)
    # a slight blur hides the pixel staircase of the mask outline, which raking light would show
    bevel = cv2.GaussianBlur(bevel, (0, 0), 2.0)
    height -= background
    height *= bevel
    height += background
    depth = height
    del bevel, background
    step()
    patina = surface.fractal_noise(shape, [0.5 * radius, 0.15 * radius, 0.05 * radius], rng=rng)
    albedo = render.albedo_map(removed, pits, crust, mask, rng=rng, patina=patina)
    del removed, pits, crust, patina
    step()
    normals = render.normals_from_depth(depth, px_per_mm=px_per_mm)
    step()
    return SyntheticView(
        depth=depth.astype(np.float32, copy=False),
        albedo=albedo,
        normals=normals,
        drawings=footprint & mask,
        mirror_mask=mask,
        px_per_mm=float(px_per_mm),
        grooves=tuple(drawing),
    )


class _Stepper:
    """Reports progress after each step and honours the cancel check."""

    def __init__(self, progress, cancel):
        self.progress, self.cancel, self.done = progress, cancel, 0

    def __call__(self):
        self.done += 1
        if self.cancel is not None and self.cancel():
            raise Cancelled("view generation cancelled")
        if self.progress is not None:
            self.progress(self.done, _STEPS)
