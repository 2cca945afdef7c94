"""The bronze disc without its drawing: outline with breaks, warped relief, corrosion, pitting."""

from __future__ import annotations

import cv2
import numpy as np


def value_noise(shape, cell, *, rng):
    """Smooth random field with features about ``cell`` px across, unit standard deviation.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)``.
    cell : float
        Feature size in px.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of float32, shape (H, W)
    """
    h, w = shape
    gh, gw = max(int(np.ceil(h / cell)) + 1, 2), max(int(np.ceil(w / cell)) + 1, 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    field = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    # cubic interpolation between independent knots loses some variance; restore unit std
    std = float(cv2.meanStdDev(field)[1][0, 0])
    return field / np.float32(max(std, 1e-6))


def fractal_noise(shape, cells, *, rng, roughness=0.6):
    """Sum of :func:`value_noise` octaves, finer octaves weaker by ``roughness`` each.

    Returns
    -------
    ndarray of float32, shape (H, W)
        Unit standard deviation (approximately).
    """
    out = np.zeros(shape, dtype=np.float32)
    total = 0.0
    for k, cell in enumerate(sorted(cells, reverse=True)):
        gain = roughness**k
        out += gain * value_noise(shape, cell, rng=rng)
        total += gain**2
    out /= np.sqrt(total)
    return out


def disc_outline(shape, *, rng, difficulty):
    """Mirror-area mask: a disc (with a tang when the view is elongated) missing broken pieces.

    Returns
    -------
    mask : ndarray of bool, shape (H, W)
    centre : ndarray of float64, shape (2,)
        ``(x, y)`` in px.
    radius : float
        Disc radius in px.
    """
    h, w = shape
    radius = 0.47 * min(h, w) * rng.uniform(0.93, 1.0)
    elongated = max(h, w) > 1.15 * min(h, w)
    along = np.array([1.0, 0.0]) if w >= h else np.array([0.0, 1.0])
    centre = np.array([w / 2, h / 2], dtype=np.float64)
    if elongated:
        centre -= along * (max(h, w) - 2.1 * radius) / 2 * rng.uniform(0.6, 0.9)
    mask = np.zeros((h, w), dtype=np.uint8)
    cv2.circle(mask, tuple(int(v) for v in np.rint(centre)), int(radius), 1, -1)
    if elongated:
        # the tang: a tapering tongue that carried the handle
        across = along[::-1]
        base = centre + along * 0.9 * radius
        tip = centre + along * min(1.5 * radius, (max(h, w) - 2) - centre @ along)
        poly = np.array(
            [
                base + across * 0.22 * radius,
                tip + across * 0.1 * radius,
                tip - across * 0.1 * radius,
                base - across * 0.22 * radius,
            ]
        )
        cv2.fillPoly(mask, [np.rint(poly).astype(np.int32)], 1)
    tang_angle = np.arctan2(along[1], along[0])
    for _ in range(int(rng.poisson(0.4 + 1.6 * difficulty))):
        angle = rng.uniform(0, 2 * np.pi)
        if elongated and abs(np.angle(np.exp(1j * (angle - tang_angle)))) < 0.8:
            # the thick tang rarely breaks; a break there would leave a floating handle
            angle += np.pi
        span = rng.uniform(0.1, 0.45)
        bite = rng.uniform(0.04, 0.2) * radius
        t = np.linspace(angle - span, angle + span, 48)
        jag = np.abs(np.cumsum(rng.normal(0, 0.02 * radius, len(t))))
        depth = bite * np.sin(np.linspace(0, np.pi, len(t))) ** 0.7 + jag * 0.5
        inner = np.stack(
            [centre[0] + (radius - depth) * np.cos(t), centre[1] + (radius - depth) * np.sin(t)],
            axis=1,
        )
        outer = np.stack(
            [
                centre[0] + 1.2 * radius * np.cos(t[::-1]),
                centre[1] + 1.2 * radius * np.sin(t[::-1]),
            ],
            axis=1,
        )
        cv2.fillPoly(mask, [np.rint(np.concatenate([inner, outer])).astype(np.int32)], 0)
    return mask.astype(bool), centre, float(radius)


def relief(shape, centre, radius, *, rng, px_per_mm):
    """Height of the uncorroded disc in mm: a convex dome, slight bending and a raised rim.

    Returns
    -------
    ndarray of float32, shape (H, W)
    """
    h, w = shape
    radius_mm = radius / px_per_mm
    yy = (np.arange(h, dtype=np.float32) - np.float32(centre[1]))[:, None]
    xx = (np.arange(w, dtype=np.float32) - np.float32(centre[0]))[None, :]
    r2 = (xx * xx + yy * yy) / np.float32(radius**2)
    bulge = radius_mm * rng.uniform(0.01, 0.03)
    z = bulge * (1 - r2)
    z += 0.3 * bulge * value_noise(shape, 0.8 * radius, rng=rng)
    tilt = rng.normal(0, 0.01, 2)
    z += np.float32(tilt[0] / px_per_mm) * xx + np.float32(tilt[1] / px_per_mm) * yy
    # the thickened rim, rising over the outermost 4 % of the radius
    r = np.sqrt(r2)
    z += rng.uniform(0.1, 0.3) * np.clip((r - 0.955) / 0.03, 0, 1) * np.clip((1.0 - r) / 0.01, 0, 1)
    return z.astype(np.float32)


def corrosion(shape, *, rng, px_per_mm, difficulty, crust_cover=0.0):
    """Corrosion of the bronze: roughness, pits at several scales and raised crusts.

    Parameters
    ----------
    shape : (int, int)
    rng : numpy.random.Generator
    px_per_mm : float
    difficulty : float
        In [0, 1]; scales roughness, pit density and crust cover.
    crust_cover : float
        Added to the crust cover (lowers the threshold of its noise; 0 for the default).

    Returns
    -------
    height : ndarray of float32, shape (H, W)
        Height change in mm (negative in pits).
    crust : ndarray of float32, shape (H, W)
        Crust cover in [0, 1]; crusts fill grooves and change the colour.
    pits : ndarray of float32, shape (H, W)
        Pit depth in mm (positive), for darkening the albedo.
    """
    h, w = shape
    s = px_per_mm / 45.0
    activity = fractal_noise(shape, [600 * s, 250 * s], rng=rng)
    height = (0.004 + 0.02 * difficulty) * fractal_noise(
        shape, [40 * s, 12 * s, 4 * s, 2 * s], rng=rng, roughness=0.7
    )
    height *= 1 + 0.5 * np.clip(activity, -1, 2)
    pits = np.zeros(shape, dtype=np.float32)
    density = np.clip(0.6 + 0.5 * activity, 0.05, None)
    for sigma, per_mpx, amp in (
        (1.2, 9000, 0.03),
        (2.5, 3000, 0.05),
        (5.0, 800, 0.07),
        (10.0, 120, 0.09),
    ):
        sigma *= s
        n = int(rng.poisson(per_mpx * difficulty * h * w / 1e6 / s**2))
        if n == 0:
            continue
        ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
        keep = rng.random(n) < density[ys, xs] / density.max()
        impulses = np.zeros(shape, dtype=np.float32)
        depth = amp * rng.lognormal(0, 0.5, n) * 2 * np.pi * sigma**2
        np.add.at(impulses, (ys[keep], xs[keep]), depth[keep].astype(np.float32))
        pits += cv2.GaussianBlur(impulses, (0, 0), sigma)
    cover = fractal_noise(shape, [300 * s, 90 * s, 30 * s], rng=rng, roughness=0.5)
    threshold = 2.0 - 1.7 * difficulty - crust_cover
    crust = np.clip((cover + 0.3 * activity - threshold) / 0.4, 0, 1).astype(np.float32)
    bumps = np.abs(fractal_noise(shape, [25 * s, 8 * s, 3 * s], rng=rng))
    height += crust * (0.04 + 0.06 * bumps) - pits
    return height.astype(np.float32), crust, pits
