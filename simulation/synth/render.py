"""Carving grooves into a depth map, and normals from depth."""

from __future__ import annotations

import cv2
import numpy as np

#: Rows per block when computing normals, to keep temporaries small on 60 Mpx views.
_ROW_BLOCK = 1024
#: Centre samples per piece when carving (about 200 px of line).
_PIECE = 400


def carve(shape, grooves, *, lip=0.12):
    """Depth removed by a set of grooves, and their footprint.

    Each groove is cut into short pieces; within a piece every pixel near the centre line takes
    its nearest centre sample (cv2's labelled distance transform on the piece's bounding box),
    and the exact distance to that sample gives the cross-section: ``depth * (1 - t)`` for V
    grooves and ``depth * sqrt(1 - t**2)`` for U grooves, with ``t = distance / half_width``.
    Pieces and grooves combine by their maximum, so crossing lines cut into each other as
    real engravings do. Just outside the footprint the displaced metal forms a low lip.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)`` of the view.
    grooves : sequence of Groove
    lip : float
        Height of the burr beside a groove, as a share of its depth.

    Returns
    -------
    removed : ndarray of float32, shape (H, W)
        Depth to subtract from the surface in mm (negative on the lips).
    footprint : ndarray of bool, shape (H, W)
        Pixels within a half-width of a centre line.
    """
    cut = np.zeros(shape, dtype=np.float32)
    rim = np.zeros(shape, dtype=np.float32)
    footprint = np.zeros(shape, dtype=bool)
    for g in grooves:
        n = len(g.points)
        for start in range(0, max(n - 1, 1), _PIECE):
            # consecutive pieces share one sample so that no gap opens between them
            piece = slice(start, min(start + _PIECE + 1, n))
            _carve_piece(
                cut,
                rim,
                footprint,
                g.points[piece],
                g.half_widths[piece],
                g.depths[piece],
                g.profile == "U",
                lip,
            )
    rim[cut > 0] = 0
    cut -= rim
    return cut, footprint


def _carve_piece(cut, rim, footprint, pts, hw, depth, u_shape, lip):
    h, w = cut.shape
    reach = float(hw.max()) * (1 + 4 * lip) + 2
    bx0, by0 = int(np.floor(pts[:, 0].min() - reach)), int(np.floor(pts[:, 1].min() - reach))
    bx1, by1 = int(np.ceil(pts[:, 0].max() + reach)) + 1, int(np.ceil(pts[:, 1].max() + reach)) + 1
    if bx1 <= 0 or by1 <= 0 or bx0 >= w or by0 >= h:
        return
    bw = bx1 - bx0
    xi = np.rint(pts[:, 0]).astype(np.int64) - bx0
    yi = np.rint(pts[:, 1]).astype(np.int64) - by0
    flat = yi * bw + xi
    # each centre pixel keeps the sample nearest to it; cells end up in raster order, which is
    # the order cv2 numbers the zero pixels in
    offset = np.hypot(pts[:, 0] - bx0 - xi, pts[:, 1] - by0 - yi)
    order = np.lexsort((offset, flat))
    cells, first = np.unique(flat[order], return_index=True)
    owner = order[first]
    src = np.full((by1 - by0, bw), 255, dtype=np.uint8)
    src.reshape(-1)[cells] = 0
    dist, labels = cv2.distanceTransformWithLabels(
        src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    ys, xs = np.nonzero(dist < reach)
    ys += by0
    xs += bx0
    keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    ys, xs = ys[keep], xs[keep]
    k = owner[labels[ys - by0, xs - bx0] - 1]
    t = np.hypot(xs - pts[k, 0], ys - pts[k, 1]) / hw[k]
    floor = depth[k]
    profile = np.sqrt(np.clip(1 - t**2, 0, 1)) if u_shape else np.clip(1 - t, 0, 1)
    # the lip: a low bump from t = 1 to t = 1 + 4 * lip, zero at both ends
    bump = lip * np.sin(np.pi * np.clip((t - 1) / (4 * lip), 0, 1))
    cut[ys, xs] = np.maximum(cut[ys, xs], floor * profile)
    rim[ys, xs] = np.maximum(rim[ys, xs], floor * bump)
    footprint[ys, xs] |= t < 1


def normals_from_depth(depth, *, px_per_mm):
    """Unit surface normals of a height map.

    Parameters
    ----------
    depth : ndarray of float, shape (H, W)
        Height in mm (larger = closer to the viewer).
    px_per_mm : float
        Pixel pitch, to turn pixel steps into mm.

    Returns
    -------
    ndarray of float32, shape (H, W, 3)
        ``(nx, ny, nz)`` with ``nz > 0``; x to the right, y down the image.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must be 2-D, got shape {depth.shape}")
    if px_per_mm <= 0:
        raise ValueError(f"px_per_mm must be positive, got {px_per_mm}")
    h, w = depth.shape
    out = np.empty((h, w, 3), dtype=np.float32)
    for y0 in range(0, h, _ROW_BLOCK):
        y1 = min(y0 + _ROW_BLOCK, h)
        a, b = max(y0 - 1, 0), min(y1 + 1, h)
        block = depth[a:b].astype(np.float32)
        gy, gx = (
            np.gradient(block)
            if block.shape[0] > 1
            else (np.zeros_like(block), np.gradient(block, axis=1))
        )
        gx, gy = gx[y0 - a : y0 - a + y1 - y0], gy[y0 - a : y0 - a + y1 - y0]
        gx *= px_per_mm
        gy *= px_per_mm
        norm = np.sqrt(gx * gx + gy * gy + 1.0)
        out[y0:y1, :, 0] = -gx / norm
        out[y0:y1, :, 1] = -gy / norm
        out[y0:y1, :, 2] = 1.0 / norm
    return out


def albedo_map(removed, pits, crust, mirror_mask, *, rng, patina):
    """Albedo of the corroded bronze, consistent with the relief.

    Bronze tone mottled by a patina field that ignores the drawing, crusts in their own tone,
    dark pits, grooves somewhat darker (dirt settles in them), a few bright specks, and a dark
    background outside the mirror.

    Parameters
    ----------
    removed : ndarray of float32, shape (H, W)
        Depth carved by grooves in mm.
    pits : ndarray of float32, shape (H, W)
        Pit depth in mm.
    crust : ndarray of float32, shape (H, W)
        Crust cover in [0, 1].
    mirror_mask : ndarray of bool, shape (H, W)
    rng : numpy.random.Generator
    patina : ndarray of float32, shape (H, W)
        Unit-variance field of patina tone.

    Returns
    -------
    ndarray of float32, shape (H, W)
        Albedo in [0, 1].
    """
    h, w = removed.shape
    bronze = rng.uniform(0.22, 0.4) * (1 + 0.3 * np.tanh(patina))
    # crusts are granular: their tone varies at the scale of their grains
    grains = cv2.resize(
        rng.standard_normal((h // 6 + 2, w // 6 + 2), dtype=np.float32),
        (w, h),
        interpolation=cv2.INTER_LINEAR,
    )
    tone = rng.uniform(0.12, 0.55) * (1 + 0.15 * patina + 0.25 * grains)
    rho = bronze + crust * (tone - bronze)
    rho *= 1 - np.clip(pits / 0.3, 0, 0.45)
    rho *= 1 - rng.uniform(0.1, 0.3) * np.clip(removed / 0.1, 0, 1)
    rho *= 1 + 0.03 * rng.standard_normal((h, w), dtype=np.float32)
    n = int(rng.poisson(3e-4 * h * w))
    specks = np.zeros((h, w), dtype=np.float32)
    specks[rng.integers(0, h, n), rng.integers(0, w, n)] = rng.uniform(2, 8, n).astype(np.float32)
    rho += cv2.GaussianBlur(specks, (0, 0), 0.8)
    rho = np.where(mirror_mask, rho, np.float32(0.04) * (1 + 0.1 * patina))
    return np.clip(rho, 0, 1).astype(np.float32)
