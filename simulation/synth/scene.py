"""The engraved scene of one mirror side and its scratches.

The scene: border, figures, names, exergue, hatching.
"""

from __future__ import annotations

import numpy as np

from simulation.synth import figures, letters, ornaments
from simulation.synth.drawings import REFERENCE_PX_PER_MM, make_groove, make_scratch


def scene_polylines(centre, radius, *, rng, px_scale=1.0):
    """Polylines of a typical engraved mirror back, in view pixels.

    Parameters
    ----------
    centre : (float, float)
        Disc centre ``(x, y)`` in px.
    radius : float
        Disc radius in px.
    rng : numpy.random.Generator
    px_scale : float
        Line-width scale (``px_per_mm / 45``); sets the smallest letter size.

    Returns
    -------
    list of ndarray of float64, shape (N, 2)
    """
    c = np.asarray(centre, dtype=np.float64)
    lines = []
    outer = 0.95 * radius
    band = rng.uniform(0.08, 0.13) * radius
    kind = rng.choice(["ivy", "meander", "tongue", "circles"], p=[0.4, 0.25, 0.2, 0.15])
    if kind == "ivy":
        lines += [ornaments.circle(c, outer, rng=rng)]
        lines += ornaments.ivy_wreath(c, outer - band / 2, band, rng=rng)
    elif kind == "meander":
        lines += ornaments.meander_band(c, outer - band, outer, rng=rng)
    elif kind == "tongue":
        lines += ornaments.tongue_band(c, outer - band, outer, rng=rng)
    else:
        lines += [
            ornaments.circle(c, outer, rng=rng),
            ornaments.circle(c, outer - band / 3, rng=rng),
        ]
    inner = outer - band - rng.uniform(0.01, 0.03) * radius
    lines.append(ornaments.circle(c, inner, rng=rng))

    # exergue: a chord across the lower part, filled with hatching or scrolls
    ex_y = c[1] + rng.uniform(0.45, 0.6) * inner
    half = np.sqrt(max(inner**2 - (ex_y - c[1]) ** 2, 1.0))
    lines.append(figures.limb([c[0] - half, ex_y], [c[0] + half, ex_y], rng=rng, bend=0.01))
    below = c[1] + inner - ex_y
    if rng.random() < 0.5:
        lines += figures.hatching(
            [c[0], ex_y + 0.45 * below],
            0.9 * below,
            angle=np.pi / 2 + rng.normal(0, 0.2),
            spacing=rng.uniform(0.08, 0.14) * below,
            rng=rng,
        )
    else:
        for side in (-1, 1):
            lines.append(
                figures.volute(
                    [c[0] + side * 0.25 * half, ex_y + 0.45 * below], 0.3 * below, rng=rng
                )
            )

    n_fig = int(rng.choice([1, 2, 3, 4], p=[0.1, 0.35, 0.4, 0.15]))
    width = 1.5 * inner
    height = min(rng.uniform(1.0, 1.3) * inner, 2.8 * width / n_fig, 0.95 * (ex_y - c[1] + inner))
    letter_h = max(0.07 * inner, 70 * px_scale)
    for k in range(n_fig):
        fx = c[0] - width / 2 + width * (k + 0.5) / n_fig + rng.normal(0, 0.03 * inner)
        facing = 1 if fx < c[0] else -1
        lines += figures.figure((fx, ex_y - 0.02 * inner), height, rng=rng, facing=facing)
        if rng.random() < 0.85:
            word = str(rng.choice(letters.NAMES))
            word_len = len(word) * 0.62 * letter_h * 1.5
            # names are written beside the head, on the side the figure faces
            right = fx + 0.1 * height + word_len if facing > 0 else fx - 0.1 * height
            origin, angle = (right, ex_y - 0.97 * height), rng.normal(0, 0.1)
            if rng.random() < 0.4:
                # or they run down beside the figure
                origin, angle = (fx + facing * 0.3 * height, ex_y - 0.9 * height), -np.pi / 2
            lines += letters.inscription(word, origin=origin, height=letter_h, angle=angle, rng=rng)
        if rng.random() < 0.6:
            lines += figures.hatching(
                (fx + rng.normal(0, 0.1 * height), ex_y - 0.3 * height),
                0.18 * height,
                angle=rng.uniform(0, np.pi),
                spacing=max(0.035 * height, 30 * px_scale),
                rng=rng,
            )
    for _ in range(int(rng.integers(0, 3))):
        spot = c + rng.uniform(-0.5, 0.5, 2) * inner * [1, 0.6] - [0, 0.3 * inner]
        lines.append(figures.volute(spot, rng.uniform(0.04, 0.08) * inner, rng=rng))
    return lines


def scratch_polylines(centre, radius, *, rng, count):
    """Random, nearly straight scratches over the disc (not part of the drawing).

    Returns
    -------
    list of ndarray of float64, shape (N, 2)
    """
    lines = []
    for _ in range(count):
        start = np.asarray(centre) + rng.uniform(-1, 1, 2) * radius * 0.9
        length = radius * rng.uniform(0.03, 0.5)
        angle = rng.uniform(0, 2 * np.pi)
        end = start + length * np.array([np.cos(angle), np.sin(angle)])
        lines.append(figures.limb(start, end, rng=rng, bend=0.03, joints=1))
    return lines


def make_grooves(centre, radius, *, rng, px_per_mm, difficulty):
    """Grooves of the drawing and of scratches for one mirror side.

    Parameters
    ----------
    centre : (float, float)
    radius : float
    rng : numpy.random.Generator
    px_per_mm : float
    difficulty : float
        In [0, 1]; more wear and more scratches when higher.

    Returns
    -------
    drawing : list of Groove
        The engraving (its footprint is the ground truth).
    scratches : list of Groove
        Scratches and tool marks that are not part of the drawing.
    """
    px_scale = px_per_mm / REFERENCE_PX_PER_MM
    drawing = [
        make_groove(
            p,
            rng=rng,
            px_scale=px_scale,
            px_per_mm=px_per_mm,
            wear=difficulty * rng.uniform(0.2, 0.6),
        )
        for p in scene_polylines(centre, radius, rng=rng, px_scale=px_scale)
    ]
    area = (radius / 1000.0) ** 2
    thin = scratch_polylines(
        centre, radius, rng=rng, count=int(rng.poisson(120 * difficulty * area))
    )
    wide = scratch_polylines(
        centre, radius, rng=rng, count=int(rng.poisson(25 * difficulty * area))
    )
    scratches = [make_scratch(p, rng=rng, px_per_mm=px_per_mm) for p in thin]
    scratches += [
        make_scratch(p, rng=rng, px_per_mm=px_per_mm, half_width=(3.0 * px_scale, 6.0 * px_scale))
        for p in wide
    ]
    return drawing, scratches
