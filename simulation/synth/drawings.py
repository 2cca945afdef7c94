"""Engraved lines as polylines with per-point half-widths and depths.

A :class:`Groove` is one engraved (or scratched) line: its centre line sampled densely, the
half-width of its footprint and the depth of its floor at every sample. Shapes (figures,
ornaments, letters) are made as plain point lists by the neighbouring modules and turned into
grooves here, which is where the paper's half-width statistics come in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from refinement_model.stroke_widths import PAPER_STROKE_WIDTHS

#: Gamma fit of the real annotators' half-widths in px at full resolution (docs/method.md).
HALF_WIDTH_GAMMA = {
    "a": PAPER_STROKE_WIDTHS.a,
    "loc": PAPER_STROKE_WIDTHS.loc,
    "scale": PAPER_STROKE_WIDTHS.scale,
}
#: Pixel pitch of the real full-resolution views (an 8964 px wide view covers about 20 cm).
REFERENCE_PX_PER_MM = 45.0
#: Distance between centre-line samples in px: dense enough that a groove is carved without gaps.
SAMPLE_SPACING = 0.5


@dataclass(frozen=True)
class Groove:
    """One engraved line.

    Attributes
    ----------
    points : ndarray of float64, shape (N, 2)
        Centre line as ``(x, y)`` in view pixels, sampled every :data:`SAMPLE_SPACING` px.
    half_widths : ndarray of float32, shape (N,)
        Half-width of the footprint in px at each sample.
    depths : ndarray of float32, shape (N,)
        Depth of the groove floor below the surface in mm at each sample (0 where worn away).
    profile : {"V", "U"}
        Cross-section: straight walls meeting at the floor, or a rounded trough.
    """

    points: np.ndarray
    half_widths: np.ndarray
    depths: np.ndarray
    profile: str = "V"


def resample(points, spacing=SAMPLE_SPACING):
    """Resample a polyline at equal arc-length steps.

    Parameters
    ----------
    points : array_like of float, shape (N, 2)
        Polyline vertices ``(x, y)``; N >= 2.
    spacing : float
        Step between consecutive output points in px.

    Returns
    -------
    ndarray of float64, shape (M, 2)
        Points along the same polyline, the first and last vertex included.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 2:
        raise ValueError(f"points must have shape (N >= 2, 2), got {points.shape}")
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])
    n = max(int(np.ceil(arc[-1] / spacing)) + 1, 2)
    s = np.linspace(0.0, arc[-1], n)
    return np.stack([np.interp(s, arc, points[:, 0]), np.interp(s, arc, points[:, 1])], axis=1)


def catmull_rom(control, *, closed=False, samples=16):
    """Smooth curve through control points (centripetal-free uniform Catmull-Rom spline).

    Parameters
    ----------
    control : array_like of float, shape (K, 2)
        Points the curve passes through, K >= 2.
    closed : bool
        Join the last point back to the first.
    samples : int
        Output points per span.

    Returns
    -------
    ndarray of float64, shape (M, 2)
    """
    p = np.asarray(control, dtype=np.float64)
    if closed:
        p = np.concatenate([p[-1:], p, p[:2]])
    else:
        p = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    t = np.linspace(0.0, 1.0, samples, endpoint=False)[:, None, None]
    p0, p1, p2, p3 = p[:-3], p[1:-2], p[2:-1], p[3:]
    curve = 0.5 * (
        2 * p1
        + (p2 - p0) * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
        + (3 * p1 - p0 - 3 * p2 + p3) * t**3
    )
    curve = curve.transpose(1, 0, 2).reshape(-1, 2)
    return np.concatenate([curve, p[-2:-1]])


def smooth_series(n, *, correlation, rng):
    """Standard-normal values along a line of ``n`` samples that vary slowly.

    Knots of independent N(0, 1) values every ``correlation`` samples are interpolated linearly
    and divided by the interpolation's own standard deviation, so every sample is exactly N(0, 1)
    while neighbours are strongly correlated.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    n_knots = int(np.ceil(n / max(correlation, 1.0))) + 2
    knots = rng.standard_normal(n_knots)
    pos = np.arange(n) / max(correlation, 1.0) + rng.uniform(0, 1)
    i = np.floor(pos).astype(np.intp)
    w = pos - i
    return ((1 - w) * knots[i] + w * knots[i + 1]) / np.sqrt((1 - w) ** 2 + w**2)


def sample_half_widths(n, *, rng, scale=1.0, correlation=60.0, line_share=0.5):
    """Half-widths along a line whose marginal distribution is the paper's Gamma.

    A line-wide and a slowly varying Gaussian component are mixed and pushed through the Gamma
    quantile function, so widths follow the fitted distribution while varying smoothly.

    Parameters
    ----------
    n : int
        Number of samples along the line.
    rng : numpy.random.Generator
    scale : float
        Multiplier for resolutions other than the real one (``px_per_mm / 45``).
    correlation : float
        Correlation length of the variation in samples.
    line_share : float
        Share of the variance common to the whole line, in [0, 1].

    Returns
    -------
    ndarray of float32, shape (n,)
        Half-widths in px, at least 0.5.
    """
    z = np.sqrt(line_share) * rng.standard_normal() + np.sqrt(1 - line_share) * smooth_series(
        n, correlation=correlation, rng=rng
    )
    u = np.clip(special.ndtr(z), 1e-6, 1 - 1e-6)
    hw = stats.gamma.ppf(
        u, HALF_WIDTH_GAMMA["a"], loc=HALF_WIDTH_GAMMA["loc"], scale=HALF_WIDTH_GAMMA["scale"]
    )
    return np.maximum(hw * scale, 0.5).astype(np.float32)


def wear_factor(n, *, rng, fraction, correlation=400.0):
    """Multiplier in [0, 1] along a line: 1 where intact, falling to about 0 on worn stretches.

    Parameters
    ----------
    n : int
        Number of samples.
    fraction : float
        Rough share of the line that is worn, in [0, 1].
    correlation : float
        Typical length of a worn stretch in samples.

    Returns
    -------
    ndarray of float32, shape (n,)
    """
    if fraction <= 0:
        return np.ones(n, dtype=np.float32)
    z = smooth_series(n, correlation=correlation, rng=rng)
    threshold = special.ndtri(np.clip(fraction, 1e-3, 1 - 1e-3))
    # smooth ramp over about 0.6 sigma so the groove fades out instead of stopping abruptly
    return np.clip((z - threshold) / 0.6, 0.03, 1.0).astype(np.float32)


def make_groove(
    points, *, rng, px_scale, px_per_mm, depth_ratio=(0.35, 0.9), wear=0.0, profile=None
):
    """Turn a polyline into an engraved :class:`Groove` with the paper's width statistics.

    Parameters
    ----------
    points : array_like of float, shape (N, 2)
        Polyline vertices in px.
    rng : numpy.random.Generator
    px_scale : float
        Half-width multiplier (``px_per_mm / REFERENCE_PX_PER_MM``).
    px_per_mm : float
        Pixel pitch, to express depths in mm.
    depth_ratio : (float, float)
        Range of floor depth over half-width (a 45 degree V has ratio 1).
    wear : float
        Share of the line worn away, in [0, 1] (see :func:`wear_factor`).
    profile : {"V", "U"} or None
        Cross-section; random when None.

    Returns
    -------
    Groove
    """
    pts = resample(points)
    n = len(pts)
    hw = sample_half_widths(n, rng=rng, scale=px_scale)
    ratio = rng.uniform(*depth_ratio) * np.exp(0.3 * smooth_series(n, correlation=120, rng=rng))
    depth = hw / px_per_mm * ratio * wear_factor(n, rng=rng, fraction=wear)
    if profile is None:
        profile = "V" if rng.random() < 0.6 else "U"
    return Groove(pts, hw, depth.astype(np.float32), profile)


def make_scratch(points, *, rng, px_per_mm, half_width=(0.6, 2.5), depth_ratio=(0.2, 0.6)):
    """A thin, shallow groove that is not part of the drawing (tool marks, cleaning scratches).

    Parameters
    ----------
    points : array_like of float, shape (N, 2)
    rng : numpy.random.Generator
    px_per_mm : float
    half_width : (float, float)
        Range of the (constant) half-width in px.
    depth_ratio : (float, float)
        Range of depth over half-width.

    Returns
    -------
    Groove
    """
    pts = resample(points)
    n = len(pts)
    hw = np.full(n, rng.uniform(*half_width), dtype=np.float32)
    fade = wear_factor(n, rng=rng, fraction=0.3, correlation=200.0)
    depth = hw / px_per_mm * rng.uniform(*depth_ratio) * fade
    return Groove(pts, hw, depth.astype(np.float32), "V")
