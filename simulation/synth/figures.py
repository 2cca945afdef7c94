"""Figure-like contours: heads, bodies, limbs, drapery folds, hatching and volutes.

All as polylines in px.
"""

from __future__ import annotations

import numpy as np

from simulation.synth.drawings import catmull_rom


def blob(centre, radii, *, rng, angle=0.0, irregularity=0.12, coverage=1.0, harmonics=4):
    """A smooth closed (or, with ``coverage`` < 1, open) curve: an ellipse with Fourier wobble.

    Parameters
    ----------
    centre : (float, float)
    radii : (float, float)
        Semi-axes in px.
    angle : float
        Rotation in radians.
    irregularity : float
        Relative amplitude of the radial wobble.
    coverage : float
        Share of the outline drawn, in (0, 1]; an artist often leaves a contour open.

    Returns
    -------
    ndarray of float64, shape (N, 2)
    """
    start = rng.uniform(0, 2 * np.pi)
    n = max(int(coverage * np.pi * sum(radii) / 3), 12)
    t = start + np.linspace(0, 2 * np.pi * coverage, n)
    amp = rng.normal(0, irregularity / np.arange(2, harmonics + 2), (2, harmonics))
    phase = rng.uniform(0, 2 * np.pi, harmonics)
    k = np.arange(2, harmonics + 2)[:, None]
    wobble = 1 + (amp[0][:, None] * np.cos(k * t + phase[:, None])).sum(0)
    x, y = radii[0] * wobble * np.cos(t), radii[1] * wobble * np.sin(t)
    ca, sa = np.cos(angle), np.sin(angle)
    return np.stack([centre[0] + ca * x - sa * y, centre[1] + sa * x + ca * y], axis=1)


def limb(start, end, *, rng, bend=0.2, joints=2):
    """An open smooth curve from ``start`` to ``end`` bending sideways like an arm or a leg.

    Returns
    -------
    ndarray of float64, shape (N, 2)
    """
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    d = end - start
    normal = np.array([-d[1], d[0]])
    s = np.linspace(0, 1, joints + 2)[:, None]
    offsets = np.concatenate([[0], rng.normal(0, bend, joints), [0]])[:, None]
    control = start + s * d + offsets * normal
    return catmull_rom(control, samples=24)


def parallel_curves(base, *, count, spacing, rng, shrink=0.15):
    """Curves running roughly parallel to ``base``, as drapery folds do.

    Parameters
    ----------
    base : ndarray of float, shape (N, 2)
    count : int
    spacing : float
        Offset between neighbouring curves in px.
    shrink : float
        How much each fold is shortened at a random end, as a share of its length.

    Returns
    -------
    list of ndarray of float64, shape (M, 2)
    """
    tangent = np.gradient(base, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9
    lines = []
    for k in range(1, count + 1):
        offset = (
            k
            * spacing
            * (1 + 0.25 * np.sin(np.linspace(0, np.pi, len(base)) * rng.uniform(0.5, 2)))
        )
        curve = base + offset[:, None] * normal
        cut0 = int(rng.uniform(0, shrink) * len(curve))
        cut1 = len(curve) - int(rng.uniform(0, shrink) * len(curve))
        if cut1 - cut0 >= 2:
            lines.append(curve[cut0:cut1])
    return lines


def hatching(centre, size, *, angle, spacing, rng):
    """Short parallel strokes filling a roughly round patch.

    Parameters
    ----------
    centre : (float, float)
    size : float
        Diameter of the patch in px.
    angle : float
        Direction of the strokes in radians.
    spacing : float
        Distance between strokes in px.

    Returns
    -------
    list of ndarray of float64, shape (2, 2)
    """
    u = np.array([np.cos(angle), np.sin(angle)])
    v = np.array([-u[1], u[0]])
    lines = []
    for off in np.arange(-size / 2, size / 2, spacing):
        half = np.sqrt(max((size / 2) ** 2 - off**2, 0)) * rng.uniform(0.6, 1.0)
        if half < spacing:
            continue
        mid = np.asarray(centre) + off * v + rng.normal(0, 0.1 * spacing) * u
        lines.append(np.stack([mid - half * u, mid + half * u]))
    return lines


def volute(centre, radius, *, rng, turns=1.6):
    """A spiral tendril (palmettes, plant scrolls).

    Returns
    -------
    ndarray of float64, shape (N, 2)
    """
    t = np.linspace(0, 2 * np.pi * turns, max(int(turns * radius), 16))
    r = radius * (1 - t / (2 * np.pi * (turns + 0.4)))
    sign = rng.choice([-1, 1])
    start = rng.uniform(0, 2 * np.pi)
    return np.stack(
        [centre[0] + r * np.cos(start + sign * t), centre[1] + r * np.sin(start + sign * t)], axis=1
    )


def _double(start, end, *, rng, width, bend=0.15):
    """A limb drawn as two contour lines ``width`` apart, as engravers draw arms and legs."""
    centre = limb(start, end, rng=rng, bend=bend)
    tangent = np.gradient(centre, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9
    taper = np.linspace(1.0, 0.7, len(centre))[:, None] * width / 2
    return [centre + taper * normal, centre - taper * normal]


def _side(points, *, rng, jitter):
    return catmull_rom(np.asarray(points) + rng.normal(0, jitter, (len(points), 2)), samples=16)


def figure(foot, height, *, rng, facing=1):
    """A standing draped figure: head, hair, body contours, arms, legs, folds and an attribute.

    Parameters
    ----------
    foot : (float, float)
        Point between the feet in px.
    height : float
        Figure height in px.
    facing : {1, -1}
        Whether the figure turns right or left.

    Returns
    -------
    list of ndarray of float64, shape (N, 2)
    """
    f = np.asarray(foot, dtype=np.float64)
    h = height
    j = 0.006 * h

    def at(dx, dy):
        return f + [facing * dx * h, -dy * h]

    head_c = at(0.015, 0.91)
    lines = [blob(head_c, (0.055 * h, 0.068 * h), rng=rng, irregularity=0.06)]
    for k in range(int(rng.integers(2, 5))):  # hair over the back of the head
        r = 0.06 * h + k * 0.011 * h
        t = np.linspace(np.pi * 0.95, np.pi * 1.65, 20)
        lines.append(np.stack([head_c[0] + facing * r * np.cos(t), head_c[1] + r * np.sin(t)], 1))
    lines.append(
        blob(
            head_c + [facing * 0.026 * h, -0.006 * h],
            (0.011 * h, 0.0045 * h),
            rng=rng,
            irregularity=0.02,
        )
    )
    waist_w, hem_w = rng.uniform(0.055, 0.075), rng.uniform(0.1, 0.16)
    hem_y = rng.uniform(0.12, 0.4)  # long robe or short tunic
    for side in (-1, 1):
        lines.append(
            _side(
                [
                    at(side * 0.022, 0.845),
                    at(side * 0.03, 0.8),
                    at(side * 0.11, 0.78),
                    at(side * 0.09, 0.68),
                    at(side * waist_w, 0.56),
                    at(side * (waist_w + 0.03), 0.45),
                    at(side * hem_w, hem_y),
                ],
                rng=rng,
                jitter=j,
            )
        )
    lines.append(
        _side([at(-hem_w, hem_y), at(0, hem_y - 0.02), at(hem_w, hem_y)], rng=rng, jitter=j)
    )
    lines.append(_side([at(-waist_w, 0.56), at(0, 0.55), at(waist_w, 0.56)], rng=rng, jitter=j))
    fold_base = _side([at(0.02, 0.54), at(-0.01, 0.4), at(0.01, hem_y + 0.02)], rng=rng, jitter=j)
    for folds in (
        parallel_curves(fold_base, count=int(rng.integers(1, 4)), spacing=0.03 * h, rng=rng),
        parallel_curves(fold_base[::-1], count=int(rng.integers(1, 3)), spacing=0.03 * h, rng=rng),
    ):
        lines += folds
    for side in (-1, 1):
        shoulder = at(side * 0.1, 0.77)
        hand = shoulder + [side * facing * rng.uniform(0.03, 0.22) * h, rng.uniform(-0.1, 0.3) * h]
        lines += _double(shoulder, hand, rng=rng, width=0.035 * h, bend=0.2)
        lines.append(blob(hand, (0.016 * h, 0.02 * h), rng=rng, irregularity=0.1, coverage=0.75))
        knee_x = side * rng.uniform(0.03, 0.07)
        lines += _double(
            at(side * 0.05, hem_y),
            at(knee_x + side * 0.02, 0.02),
            rng=rng,
            width=0.04 * h,
            bend=0.05,
        )
        lines.append(
            blob(
                at(knee_x + side * 0.02 + 0.03, 0.0),
                (0.04 * h, 0.013 * h),
                rng=rng,
                coverage=0.6,
                irregularity=0.05,
            )
        )
    attribute = rng.choice(["spear", "shield", "wings", "none"], p=[0.3, 0.2, 0.2, 0.3])
    if attribute == "spear":
        base = at(rng.uniform(0.15, 0.25), 0.0)
        lines.append(
            limb(base, base + [rng.normal(0, 0.03) * h, -1.05 * h], rng=rng, bend=0.005, joints=1)
        )
    elif attribute == "shield":
        centre = at(-0.12, 0.45)
        lines += [
            blob(centre, (0.16 * h, 0.17 * h), rng=rng, irregularity=0.02),
            blob(centre, (0.11 * h, 0.12 * h), rng=rng, irregularity=0.02),
        ]
    elif attribute == "wings":
        for k in range(int(rng.integers(3, 6))):
            lines.append(
                limb(
                    at(-0.06, 0.75),
                    at(-0.45 + 0.06 * k, 1.0 - 0.1 * k),
                    rng=rng,
                    bend=0.12,
                    joints=1,
                )
            )
    return lines
