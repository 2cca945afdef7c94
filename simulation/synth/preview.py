"""Pictures of a view for people: high-passed depth, raking light, albedo, drawings overlay."""

from __future__ import annotations

import cv2
import numpy as np

from refinement_model.preprocess import preprocess_depth


def _to_uint8(image, low, high):
    return np.clip((image - low) / max(high - low, 1e-12) * 255, 0, 255).astype(np.uint8)


def highpass_depth(depth, *, px_per_mm, mask=None):
    """The depth as the network sees it (the loader's preprocessing), as a gray picture.

    Parameters
    ----------
    depth : ndarray of float, shape (H, W)
    px_per_mm : float
    mask : ndarray of bool, shape (H, W), optional
        Statistics are taken inside it.

    Returns
    -------
    ndarray of uint8, shape (H, W)
    """
    return _to_uint8(preprocess_depth(depth, px_per_mm=px_per_mm, mask=mask), 0.0, 1.0)


def raking_light(normals, *, azimuth=135.0, elevation=25.0):
    """Lambertian shading of the normals under a low light, as conservators inspect bronzes.

    Parameters
    ----------
    normals : ndarray of float, shape (H, W, 3)
        Unit normals, x right, y down.
    azimuth, elevation : float
        Light direction in degrees (azimuth counter-clockwise from the +x axis, y up).

    Returns
    -------
    ndarray of uint8, shape (H, W)
    """
    az, el = np.radians(azimuth), np.radians(elevation)
    light = np.array(
        [np.cos(el) * np.cos(az), -np.cos(el) * np.sin(az), np.sin(el)], dtype=np.float32
    )
    shade = np.clip(np.asarray(normals, dtype=np.float32) @ light, 0, 1)
    return _to_uint8(shade, 0, float(np.percentile(shade, 99.5)))


def bronze_albedo(albedo, *, mask=None):
    """The albedo tinted bronze-green, stretched between its 1st and 99th percentiles.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        RGB.
    """
    a = np.asarray(albedo, dtype=np.float32)
    inside = a[mask] if mask is not None and mask.any() else a
    low, high = np.percentile(inside, [1, 99])
    g = np.clip((a - low) / max(high - low, 1e-6), 0, 1)
    tint = np.array([0.78, 0.72, 0.55], dtype=np.float32)
    return (g[..., None] * tint * 255).astype(np.uint8)


def overlay(gray, drawings, *, colour=(220, 40, 30), alpha=0.6):
    """The drawings mask painted over a gray picture.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
    """
    rgb = np.repeat(np.asarray(gray, dtype=np.float32)[..., None], 3, axis=2)
    m = np.asarray(drawings, dtype=bool)
    rgb[m] = (1 - alpha) * rgb[m] + alpha * np.asarray(colour, dtype=np.float32)
    return rgb.astype(np.uint8)


def preview_images(view, *, max_side=1024):
    """All preview pictures of a view, downscaled so that the longer side is ``max_side``.

    Parameters
    ----------
    view : SyntheticView or MirrorView-like
        Needs ``depth``, ``albedo``, ``normals``, ``mirror_mask``, ``px_per_mm`` and a
        ``drawings`` (or ``ground_truth``) mask.

    Returns
    -------
    dict of str to ndarray of uint8
        ``depth``, ``raking``, ``albedo`` and ``drawings`` (overlay on the depth picture).
    """
    gt = getattr(view, "drawings", None)
    if gt is None:
        gt = view.ground_truth
    pictures = {
        "depth": highpass_depth(view.depth, px_per_mm=view.px_per_mm, mask=view.mirror_mask),
        "raking": raking_light(view.normals),
        "albedo": bronze_albedo(view.albedo, mask=view.mirror_mask),
    }
    pictures["drawings"] = overlay(pictures["depth"], gt)
    h, w = view.depth.shape
    factor = max_side / max(h, w)
    if factor < 1:
        size = (max(int(round(w * factor)), 1), max(int(round(h * factor)), 1))
        pictures = {
            k: cv2.resize(v, size, interpolation=cv2.INTER_AREA) for k, v in pictures.items()
        }
    return pictures
