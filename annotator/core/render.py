"""Pure numpy rendering of the annotator's layers (Qt-free).

Every function takes arrays and returns a new array; nothing is modified in place. The canvas
calls :func:`compose` on one tile at a time, at the resolution of the zoom level, so the cost of
a frame is bounded by the screen size, not by the 60 Mpx of a view.

Conventions: display images are ``uint8`` RGB of shape (H, W, 3); scalar layers (depth, albedo)
arrive already mapped to ``uint8`` grey levels; normals arrive as ``int8`` components scaled by
127 (see :func:`encode_normals`), which keeps a full-size pyramid small; masks are ``bool`` or
``uint8`` (non-zero = line).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

BASE_LAYERS = ("depth", "albedo", "normals", "raking")

# The app's colours, in one place for the canvas, the legend and the exports: the Okabe-Ito
# palette, told apart with every common colour-vision deficiency. No two meanings that can be
# on screen together share a colour: the mask is sky blue; the user's strokes green (add) and
# vermillion (erase); the network's proposal orange (adds) and dark blue (removes, drawn over
# the sky-blue mask it removes from); the error map white (right), yellow (superfluous) and
# reddish purple (missed); centre lines black.
OKABE_ITO = {
    "black": (0, 0, 0),
    "orange": (230, 159, 0),
    "sky_blue": (86, 180, 233),
    "bluish_green": (0, 158, 115),
    "yellow": (240, 228, 66),
    "blue": (0, 114, 178),
    "vermillion": (213, 94, 0),
    "reddish_purple": (204, 121, 167),
}
PALETTE = {
    "mask": OKABE_ITO["sky_blue"],
    "skeleton": OKABE_ITO["black"],
    "add": OKABE_ITO["bluish_green"],
    "erase": OKABE_ITO["vermillion"],
    "proposal_add": OKABE_ITO["orange"],
    "proposal_remove": OKABE_ITO["blue"],
    "right": (245, 245, 245),
    "superfluous": OKABE_ITO["yellow"],
    "missed": OKABE_ITO["reddish_purple"],
    "done": OKABE_ITO["bluish_green"],
    "current": OKABE_ITO["yellow"],
}
PREDICTION_COLOR = PALETTE["mask"]
SKELETON_COLOR = PALETTE["skeleton"]
ADD_COLOR = PALETTE["add"]
ERASE_COLOR = PALETTE["erase"]
PROPOSAL_ADD_COLOR = PALETTE["proposal_add"]
PROPOSAL_REMOVE_COLOR = PALETTE["proposal_remove"]
# Error map: true positive, false positive (superfluous), false negative (missed).
ERROR_COLORS = (PALETTE["right"], PALETTE["superfluous"], PALETTE["missed"])

# Bits of the user map pyramid (see encode_user_map).
USER_ADD_BIT = 1
USER_ERASE_BIT = 2


@dataclass(frozen=True)
class LayerSettings:
    """What the canvas shows.

    Parameters
    ----------
    base : {"depth", "albedo", "normals", "raking"}
        The image under the overlays.
    azimuth, elevation : float
        Direction of the raking light in degrees: azimuth 0 lights from the right (+x), 90 from
        the top of the image; elevation 0 grazes the surface, 90 is straight above.
    prediction_opacity : float
        Opacity in [0, 1] of the prediction overlay (0 hides it).
    skeleton, strokes, error_map : bool
        Whether to draw the centre lines of the mask, the user's strokes, and the error map
        against the ground truth (ignored when there is none).
    """

    base: str = "depth"
    azimuth: float = 135.0
    elevation: float = 20.0
    prediction_opacity: float = 0.45
    skeleton: bool = False
    strokes: bool = True
    error_map: bool = False

    def __post_init__(self):
        if self.base not in BASE_LAYERS:
            raise ValueError(f"base must be one of {BASE_LAYERS}, got {self.base!r}")
        if not 0.0 <= float(self.prediction_opacity) <= 1.0:
            raise ValueError(f"prediction_opacity must be in [0, 1], got {self.prediction_opacity}")
        if not -90.0 <= float(self.elevation) <= 90.0:
            raise ValueError(f"elevation must be in [-90, 90] degrees, got {self.elevation}")


def to_uint8(image: np.ndarray, *, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Map a scalar image linearly from ``[low, high]`` to grey levels 0..255 (clipped).

    Parameters
    ----------
    image : (H, W) float array
    low, high : float
        The values shown as black and white; ``high > low``.

    Returns
    -------
    (H, W) uint8 array
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    if not high > low:
        raise ValueError(f"high must be greater than low, got low={low}, high={high}")
    out = np.empty(image.shape, np.uint8)
    gain, offset = np.float32(255.0 / (high - low)), np.float32(0.5 - low * 255.0 / (high - low))
    for rows in _row_blocks(image.shape):  # float temporaries of a block, not of 60 Mpx
        block = image[rows].astype(np.float32)
        block *= gain
        block += offset
        np.clip(block, 0, 255, out=block)
        out[rows] = block
    return out


# Rows per block when converting a whole view: a few MB of float temporaries at a time.
_BLOCK_PIXELS = 1 << 20


def _row_blocks(shape) -> list[slice]:
    step = max(_BLOCK_PIXELS // max(int(np.prod(shape[1:])), 1), 1)
    return [slice(y, min(y + step, shape[0])) for y in range(0, shape[0], step)]


#: Sampling stride of :func:`contrast_limits` in both axes.
CONTRAST_SAMPLE_STEP = 7


def contrast_limits(
    image: np.ndarray, *, percentiles=(0.5, 99.5), step: int = CONTRAST_SAMPLE_STEP
) -> tuple:
    """Robust display limits of a scalar image from a strided sample of its pixels.

    Parameters
    ----------
    image : (H, W) float array
    percentiles : (float, float)
        Lower and upper percentile in [0, 100].
    step : int
        Sampling stride in both axes (a 60 Mpx view needs only a fraction of its pixels).

    Returns
    -------
    (low, high) : tuple of float, with ``high > low``.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    sample = image[::step, ::step]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(sample, percentiles))
    if not high > low:
        high = low + 1e-6
    return low, high


def uint8_encoder(sample: np.ndarray):
    """:func:`to_uint8` with the :func:`contrast_limits` of an image known by its sample.

    Parameters
    ----------
    sample : (h, w) float array
        ``image[::CONTRAST_SAMPLE_STEP, ::CONTRAST_SAMPLE_STEP]``.

    Returns
    -------
    callable((H, W) or (h, W) float array) -> uint8 array of the same shape
        ``to_uint8`` with ``contrast_limits(image)``: the whole image or any block of its rows.
    """
    low, high = contrast_limits(sample, step=1)
    return functools.partial(to_uint8, low=low, high=high)


def encode_normals(normals: np.ndarray) -> np.ndarray:
    """Unit normals (H, W, 3) float to (H, W, 3) int8 components scaled by 127."""
    normals = np.asarray(normals)
    if normals.ndim != 3 or normals.shape[2] != 3:
        raise ValueError(f"normals must have shape (H, W, 3), got {normals.shape}")
    out = np.empty(normals.shape, np.int8)
    for rows in _row_blocks(normals.shape):
        block = normals[rows] * np.float32(127.0)
        np.rint(block, out=block)
        np.clip(block, -127, 127, out=block)
        out[rows] = block
    return out


def normals_rgb(normals: np.ndarray) -> np.ndarray:
    """The usual false-colour view of normals, ``(n + 1) / 2`` as RGB.

    Parameters
    ----------
    normals : (H, W, 3) int8 array (as from :func:`encode_normals`)

    Returns
    -------
    (H, W, 3) uint8 array
    """
    normals = _check_normals(normals)
    return (normals.astype(np.int16) + 128).clip(0, 255).astype(np.uint8)


def light_direction(azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector (x, y, z) of a light at ``azimuth`` / ``elevation`` degrees (see LayerSettings).

    Normals follow the photometric-stereo convention: x to the right, y up, z towards the camera.
    """
    az, el = math.radians(float(azimuth)), math.radians(float(elevation))
    return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


def raking_light(normals: np.ndarray, *, azimuth: float, elevation: float) -> np.ndarray:
    """Relight the surface from its normals with one distant light (Lambert's law).

    A low elevation grazes the surface, so engraved grooves cast bright and dark edges, the way
    conservators inspect a mirror under a raking lamp.

    Parameters
    ----------
    normals : (H, W, 3) int8 array (as from :func:`encode_normals`)
    azimuth, elevation : float
        Light direction in degrees.

    Returns
    -------
    (H, W) uint8 array of shading, normalised so a surface facing the camera is mid-grey.
    """
    normals = _check_normals(normals)
    light = light_direction(azimuth, elevation).astype(np.float32) / np.float32(127.0)
    shade = normals.astype(np.float32) @ light
    # A flat surface gets sin(elevation); scale it to mid-grey so grazing light stays visible.
    flat = max(math.sin(math.radians(float(elevation))), 0.05)
    return np.clip(shade * np.float32(128.0 / flat), 0, 255).astype(np.uint8)


def blend(rgb: np.ndarray, alpha: np.ndarray, color) -> np.ndarray:
    """Paint ``color`` over ``rgb`` with per-pixel opacity ``alpha``.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 array
    alpha : (H, W) float array in [0, 1] or bool array
    color : (r, g, b) ints

    Returns
    -------
    (H, W, 3) uint8 array
    """
    rgb = np.asarray(rgb)
    alpha = np.asarray(alpha)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    if alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha must have shape {rgb.shape[:2]}, got {alpha.shape}")
    out = rgb.copy()
    # Overlays are sparse (thin lines): blend only the pixels they touch.
    touched = alpha > 0
    if touched.any():
        a = alpha[touched].astype(np.float32)[:, None]
        mixed = rgb[touched].astype(np.float32) * (1.0 - a) + np.asarray(color, np.float32) * a
        out[touched] = (mixed + 0.5).astype(np.uint8)
    return out


def error_classes(mask: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-pixel agreement of a mask with the ground truth.

    Returns
    -------
    (H, W) uint8 array: 0 true negative, 1 true positive, 2 false positive, 3 false negative.
    """
    mask, truth = np.asarray(mask, bool), np.asarray(truth, bool)
    if mask.shape != truth.shape:
        raise ValueError(f"truth must have shape {mask.shape}, got {truth.shape}")
    out = np.zeros(mask.shape, np.uint8)
    out[mask & truth] = 1
    out[mask & ~truth] = 2
    out[~mask & truth] = 3
    return out


def encode_user_map(user_map: np.ndarray) -> np.ndarray:
    """User map in {-1, 0, +1} (erase, none, add) to bit flags that survive max-pooling.

    Returns
    -------
    (H, W) uint8 array with :data:`USER_ADD_BIT` and :data:`USER_ERASE_BIT`.
    """
    user_map = np.asarray(user_map)
    # uint8 throughout: no int64 temporaries of the view's size
    out = (user_map > 0).view(np.uint8) * np.uint8(USER_ADD_BIT)
    out |= (user_map < 0).view(np.uint8) * np.uint8(USER_ERASE_BIT)
    return out


@dataclass(frozen=True)
class Tile:
    """The layers of one tile at one zoom level, all of the same (h, w).

    Only the arrays the settings need must be present; ``None`` means not available.
    ``depth``/``albedo`` uint8 grey, ``normals`` int8 (h, w, 3), ``mask`` bool (the
    annotation), ``skeleton`` bool, ``user`` uint8 bit flags, ``truth`` bool.
    """

    depth: np.ndarray | None = None
    albedo: np.ndarray | None = None
    normals: np.ndarray | None = None
    mask: np.ndarray | None = None
    skeleton: np.ndarray | None = None
    user: np.ndarray | None = None
    truth: np.ndarray | None = None


def compose(tile: Tile, settings: LayerSettings) -> np.ndarray:
    """Render one tile: the base image, then the overlays in a fixed order.

    Order (later on top): base, prediction (or error map), skeleton, strokes.

    Parameters
    ----------
    tile : Tile
    settings : LayerSettings

    Returns
    -------
    (h, w, 3) uint8 array
    """
    rgb = _base_rgb(tile, settings)
    if settings.error_map and tile.truth is not None and tile.mask is not None:
        classes = error_classes(tile.mask, tile.truth)
        for value, color in enumerate(ERROR_COLORS, start=1):
            rgb = blend(rgb, (classes == value) * np.float32(0.8), color)
    elif settings.prediction_opacity > 0 and tile.mask is not None:
        # The mask as it will be exported, not the probabilities: doubt would tint everything.
        rgb = blend(rgb, tile.mask * np.float32(settings.prediction_opacity), PREDICTION_COLOR)
    if settings.skeleton and tile.skeleton is not None:
        rgb = blend(rgb, tile.skeleton, SKELETON_COLOR)
    if settings.strokes and tile.user is not None:
        rgb = blend(rgb, (tile.user & USER_ADD_BIT) * np.float32(0.6), ADD_COLOR)
        rgb = blend(
            rgb, (tile.user & USER_ERASE_BIT) * np.float32(0.6 / USER_ERASE_BIT), ERASE_COLOR
        )
    return rgb


def proposal_rgba(
    added: np.ndarray,
    removed: np.ndarray,
    *,
    stroke: np.ndarray | None = None,
    stroke_color=ADD_COLOR,
    opacity: float = 0.85,
) -> np.ndarray:
    """The difference a pending refinement would make, as a transparent overlay.

    Parameters
    ----------
    added, removed : (H, W) bool arrays
        Pixels the refinement turns on / off (beyond what the stroke itself does).
    stroke : (H, W) bool array, optional
        The pending stroke's own pixels, drawn under the difference in ``stroke_color``.
    stroke_color : (r, g, b)
    opacity : float
        Opacity in [0, 1] of the coloured pixels; all others are fully transparent.

    Returns
    -------
    (H, W, 4) uint8 RGBA array (straight alpha).
    """
    added, removed = np.asarray(added, bool), np.asarray(removed, bool)
    if added.ndim != 2 or added.shape != removed.shape:
        raise ValueError(
            f"added and removed must be 2-D of one shape, got {added.shape}, {removed.shape}"
        )
    if stroke is not None and np.shape(stroke) != added.shape:
        raise ValueError(f"stroke must have shape {added.shape}, got {np.shape(stroke)}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    out = np.zeros(added.shape + (4,), np.uint8)
    alpha = round(opacity * 255)
    if stroke is not None:
        stroke = np.asarray(stroke, bool)
        out[stroke] = (*stroke_color, round(alpha * 0.7))
    out[added] = (*PROPOSAL_ADD_COLOR, alpha)
    out[removed] = (*PROPOSAL_REMOVE_COLOR, alpha)
    return out


def _base_rgb(tile: Tile, settings: LayerSettings) -> np.ndarray:
    if settings.base == "normals" and tile.normals is not None:
        return normals_rgb(tile.normals)
    if settings.base == "raking" and tile.normals is not None:
        grey = raking_light(tile.normals, azimuth=settings.azimuth, elevation=settings.elevation)
    elif settings.base == "albedo" and tile.albedo is not None:
        grey = tile.albedo
    elif tile.depth is not None:
        grey = tile.depth
    else:
        raise ValueError(f"tile lacks the arrays for base layer {settings.base!r}")
    return np.repeat(np.asarray(grey, np.uint8)[..., None], 3, axis=2)


def _check_normals(normals: np.ndarray) -> np.ndarray:
    normals = np.asarray(normals)
    if normals.ndim != 3 or normals.shape[2] != 3 or normals.dtype != np.int8:
        raise ValueError(f"normals must be (H, W, 3) int8, got {normals.shape} {normals.dtype}")
    return normals
