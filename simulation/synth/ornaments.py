"""Borders around the rim: plain circles, ivy wreaths and meander bands (polylines in px)."""

from __future__ import annotations

import numpy as np

from simulation.synth.drawings import catmull_rom


def circle(centre, radius, *, rng, wobble=0.004, start=0.0, stop=2 * np.pi):
    """A hand-drawn circle arc: radius wobbling slowly by ``wobble`` of itself.

    Returns
    -------
    ndarray of float64, shape (N, 2)
    """
    n = max(int(abs(stop - start) * radius / 4), 8)
    t = np.linspace(start, stop, n)
    harmonics = rng.normal(0, wobble, (3, 2))
    r = radius * (
        1
        + sum(
            a * np.cos((k + 2) * t) + b * np.sin((k + 2) * t) for k, (a, b) in enumerate(harmonics)
        )
    )
    return np.stack([centre[0] + r * np.cos(t), centre[1] + r * np.sin(t)], axis=1)


def _polar(centre, radius, angle):
    return np.stack(
        [centre[0] + radius * np.cos(angle), centre[1] + radius * np.sin(angle)], axis=-1
    )


def ivy_leaf(base, direction, size, *, rng):
    """A heart-shaped ivy leaf whose notch sits at ``base`` and tip points along ``direction``.

    Returns
    -------
    ndarray of float64, shape (N, 2)
        Closed outline (first point repeated at the end).
    """
    t = np.linspace(0, 2 * np.pi, 40)
    # classic heart curve: notch at the top (t = 0), tip at the bottom (t = pi)
    hx = 16 * np.sin(t) ** 3
    hy = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    hx, hy = hx / 32 * rng.uniform(0.85, 1.15), (hy + 5) / 30
    u = np.asarray(direction, dtype=np.float64) / np.linalg.norm(direction)
    v = np.array([-u[1], u[0]])
    pts = base + size * (hy[:, None] * u + hx[:, None] * v)
    return np.concatenate([pts, pts[:1]])


def ivy_wreath(centre, radius, width, *, rng):
    """A wavy stem around the disc with ivy leaves on alternate sides.

    Parameters
    ----------
    centre : (float, float)
    radius : float
        Mean radius of the stem in px.
    width : float
        Width of the band the wreath fills in px.

    Returns
    -------
    list of ndarray of float64, shape (N, 2)
    """
    n_leaves = max(int(2 * np.pi * radius / (1.1 * width)), 8)
    t = np.linspace(0, 2 * np.pi, n_leaves * 12 + 1)
    stem_r = radius + 0.12 * width * np.sin(n_leaves * t / 2 + rng.uniform(0, 2 * np.pi))
    lines = [_polar(centre, stem_r, t)]
    for k in range(n_leaves):
        angle = 2 * np.pi * (k + 0.5) / n_leaves
        side = 1 if k % 2 else -1
        on_stem = _polar(centre, radius, angle)
        outward = np.array([np.cos(angle), np.sin(angle)])
        tangent = np.array([-np.sin(angle), np.cos(angle)])
        stalk_end = on_stem + side * 0.18 * width * outward + 0.12 * width * tangent
        lines.append(np.stack([on_stem, stalk_end]))
        direction = side * outward + 0.6 * tangent
        lines.append(ivy_leaf(stalk_end, direction, 0.6 * width, rng=rng))
    return lines


def meander_band(centre, inner, outer, *, rng):
    """A band of Greek-key hooks between two concentric circles.

    Parameters
    ----------
    centre : (float, float)
    inner, outer : float
        Radii of the band's edges in px.

    Returns
    -------
    list of ndarray of float64, shape (N, 2)
    """
    width = outer - inner
    n = max(int(2 * np.pi * (inner + outer) / 2 / (1.3 * width)), 8)
    key = np.array([(0, 0), (0, 1), (0.72, 1), (0.72, 0.34), (0.36, 0.34), (0.36, 0.68)])
    lines = [circle(centre, inner, rng=rng), circle(centre, outer, rng=rng)]
    for k in range(n):
        u = (k + key[:, 0] * 0.85 + rng.normal(0, 0.01, len(key))) * 2 * np.pi / n
        r = inner + (0.12 + 0.76 * key[:, 1]) * width
        lines.append(_polar(centre, r, u))
    return lines


def tongue_band(centre, inner, outer, *, rng):
    """A band of tongues (rounded arches) along the rim, a common mirror border.

    Returns
    -------
    list of ndarray of float64, shape (N, 2)
    """
    width = outer - inner
    n = max(int(2 * np.pi * inner / (0.7 * width)), 8)
    lines = [circle(centre, inner, rng=rng)]
    for k in range(n):
        a0, a1 = 2 * np.pi * k / n, 2 * np.pi * (k + 0.8) / n
        span = a1 - a0
        angles = [
            a0,
            a0 + 0.02 * span,
            a0 + 0.2 * span,
            (a0 + a1) / 2,
            a1 - 0.2 * span,
            a1 - 0.02 * span,
            a1,
        ]
        heights = [0, 0.45, 0.75, 0.85, 0.75, 0.45, 0]
        control = [
            _polar(centre, inner + f * width, a) for a, f in zip(angles, heights, strict=True)
        ]
        lines.append(
            catmull_rom(np.array(control) + rng.normal(0, 0.01 * width, (7, 2)), samples=8)
        )
    return lines
