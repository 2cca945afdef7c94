"""Damage recipes of the generator: the default one, and "grooves", another kind of mirror.

The networks are trained and chosen on views of the default recipe only. The "grooves" recipe
makes the damage that looks most like engraving, to measure how far the figures fall on mirrors
unlike the training ones (issue 19):

* groove-like scratches: curved scratches with the width and depth of the engraved lines (the
  default recipe's scratches are thinner, shallower and nearly straight);
* crusts filling grooves: more crust, and crusts fill the grooves under them completely;
* faint shallow lines: a share of the engraved lines is cut at a fraction of the usual depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulation.synth import scene
from simulation.synth.drawings import REFERENCE_PX_PER_MM, Groove, make_groove

DAMAGES = ("default", "grooves")


@dataclass(frozen=True)
class DamageRecipe:
    """How one recipe damages a mirror.

    Attributes
    ----------
    crust_fill : float
        Share of a groove's depth a full crust fills, in [0, 1].
    crust_cover : float
        Lowers the threshold of the crust noise: more of the disc is crusted (0: default).
    groove_scratches : float
        Groove-like scratches per difficulty and per (1000 px of disc radius) squared.
    faint_share : float
        Share of the engraved lines cut shallow, in [0, 1].
    faint_depth : float
        Depth of a shallow line relative to its usual depth.
    """

    crust_fill: float = 0.85
    crust_cover: float = 0.0
    groove_scratches: float = 0.0
    faint_share: float = 0.0
    faint_depth: float = 1.0


RECIPES = {
    "default": DamageRecipe(),
    "grooves": DamageRecipe(
        crust_fill=1.0, crust_cover=0.35, groove_scratches=30.0, faint_share=0.3, faint_depth=0.25
    ),
}


def damage_recipe(name: str) -> DamageRecipe:
    """The recipe named ``name`` (one of :data:`DAMAGES`)."""
    if name not in RECIPES:
        raise ValueError(f"damage must be one of {DAMAGES}, got {name!r}")
    return RECIPES[name]


def damage_grooves(
    drawing: list[Groove],
    scratches: list[Groove],
    centre,
    radius,
    *,
    recipe: DamageRecipe,
    rng,
    px_per_mm: float,
    difficulty: float,
) -> tuple[list[Groove], list[Groove]]:
    """The engraved lines and scratches after a recipe's groove damage.

    Draws from ``rng`` only for what the recipe adds, so the default recipe leaves the random
    stream (and so the views) as they were.

    Parameters
    ----------
    drawing, scratches : list of Groove
        From :func:`simulation.synth.scene.make_grooves`.
    centre : (float, float)
    radius : float
    recipe : DamageRecipe
    rng : numpy.random.Generator
    px_per_mm : float
    difficulty : float
        In [0, 1]; scales the number of groove-like scratches.

    Returns
    -------
    drawing, scratches : list of Groove
        New lists; the ground truth is still the footprint of ``drawing``.
    """
    drawing, scratches = list(drawing), list(scratches)
    if recipe.faint_share > 0:
        faint = rng.random(len(drawing)) < recipe.faint_share
        drawing = [
            Groove(
                g.points,
                g.half_widths,
                (g.depths * recipe.faint_depth).astype(np.float32),
                g.profile,
            )
            if shallow
            else g
            for g, shallow in zip(drawing, faint, strict=True)
        ]
    if recipe.groove_scratches > 0:
        count = int(rng.poisson(recipe.groove_scratches * difficulty * (radius / 1000.0) ** 2))
        px_scale = px_per_mm / REFERENCE_PX_PER_MM
        for line in scene.scratch_polylines(centre, radius, rng=rng, count=count):
            # bent like a drawn line, not straight like a tool slip
            bend = rng.normal(0, 0.08, 2) * np.linalg.norm(line[-1] - line[0])
            middle = (line[0] + line[-1]) / 2 + bend
            curved = np.array([line[0], middle, line[-1]])
            scratches.append(make_groove(curved, rng=rng, px_scale=px_scale, px_per_mm=px_per_mm))
    return drawing, scratches
