"""The paper's preprocessing of the photometric-stereo maps, and mirror-area estimation.

Public functions take arrays and return new arrays (inputs are never modified). The loader in
:mod:`refinement_model.views` uses the in-place variants (leading underscore) on arrays it owns,
so that a full-resolution view (about 60 Mpx) stays within its memory budget.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

# Elements per chunk in chunked passes: bounds the temporaries at a few tens of MB.
_CHUNK_ELEMENTS = 1 << 22
# The blur runs on a copy downsampled so that sigma is at least this many pixels there.
_MIN_SMALL_SIGMA = 4.0
_NO_NORMAL = np.array([0.0, 0.0, 1.0], np.float32)


def _check_image(name: str, image, ndim: int = 2) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != ndim or 0 in image.shape or image.dtype.kind not in "fiub":
        raise ValueError(
            f"{name} must be a non-empty {ndim}-D numeric array, got {image.dtype} {image.shape}"
        )
    return image


def _check_mask(mask, shape) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != tuple(shape[:2]):
        raise ValueError(
            f"mask must be a bool array of shape {tuple(shape[:2])}, got {mask.dtype} {mask.shape}"
        )
    return mask


def masked_stats(image, mask=None) -> tuple[float, float, float, float]:
    """Mean, standard deviation, minimum and maximum over the finite pixels inside ``mask``.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    mask : ndarray of bool, shape (H, W), optional
        Pixels to include; all when omitted. Non-finite pixels are always left out.

    Returns
    -------
    mean, std, min, max : float
        Accumulated in float64, chunk by chunk (no full-size temporaries). NaN when no pixel
        qualifies.
    """
    image = _check_image("image", image)
    mask = _check_mask(mask, image.shape)
    count, mean, squares, low, high = 0, 0.0, 0.0, math.inf, -math.inf
    for values in _chunks(image, mask):
        if not values.size:
            continue
        # Chan et al.'s pairwise update: chunk moments merged without a second pass.
        chunk_mean = values.sum(dtype=np.float64) / values.size
        deviation = values - np.float32(chunk_mean)
        chunk_squares = np.square(deviation, out=deviation).sum(dtype=np.float64)
        total = count + values.size
        delta = chunk_mean - mean
        squares += chunk_squares + delta * delta * count * values.size / total
        mean += delta * values.size / total
        count = total
        low, high = min(low, float(values.min())), max(high, float(values.max()))
    if count == 0:
        return (math.nan,) * 4
    return float(mean), math.sqrt(squares / count), low, high


def _chunks(image: np.ndarray, mask):
    """The finite pixels inside ``mask``, a block of rows at a time (1-D arrays)."""
    step = max(1, _CHUNK_ELEMENTS // max(1, image[0].size))
    for start in range(0, image.shape[0], step):
        rows = image[start : start + step]
        keep = np.isfinite(rows)
        if mask is not None:
            keep &= mask[start : start + step]
        yield rows.ravel() if keep.all() else rows[keep]


def gaussian_blur(image, sigma: float) -> np.ndarray:
    """Gaussian blur of a large image, fast: blur a downsampled copy, then upsample.

    For ``sigma`` below 8 px this is an exact :func:`cv2.GaussianBlur`. Above, the image is
    box-downsampled by ``f = floor(sigma / 4)``, blurred with a sigma reduced by the variance
    the box average and the linear upsampling add (``(f**2 - 1) / 12 + f**2 / 6``), and
    upsampled linearly. Borders reflect (``d c b a | a b c d``), as scipy's default.
    Against :func:`scipy.ndimage.gaussian_filter` the error is below 0.5 % of the image's
    value range for smooth images (tested).

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Finite values.
    sigma : float
        Standard deviation in pixels, > 0.

    Returns
    -------
    blurred : ndarray of float32, shape (H, W)
    """
    image = _check_image("image", image)
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    image = image.astype(np.float32, copy=False)
    factor = max(1, int(sigma // _MIN_SMALL_SIGMA))
    if factor == 1:
        return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    height, width = image.shape
    small_size = (max(1, round(width / factor)), max(1, round(height / factor)))
    small = cv2.resize(image, small_size, interpolation=cv2.INTER_AREA)
    small_sigma = math.sqrt(sigma**2 - (factor**2 - 1) / 12 - factor**2 / 6) / factor
    small = cv2.GaussianBlur(small, (0, 0), small_sigma, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _preprocess_depth_inplace(depth: np.ndarray, sigma: float, mask) -> np.ndarray:
    """High-pass, standardise, clip to 3 sigma and min-max ``depth`` (float32) in place."""
    mean = masked_stats(depth, mask)[0]
    if math.isnan(mean):
        raise ValueError("mask selects no finite depth pixel")
    # Non-finite pixels read as flat (the mean) so that they do not smear into the blur.
    np.copyto(depth, np.float32(mean), where=~np.isfinite(depth))
    low = gaussian_blur(depth, sigma)
    np.subtract(depth, low, out=depth)
    del low
    depth += np.float32(mean)
    centre, spread = masked_stats(depth, mask)[:2]
    # A spread at float32 rounding level of the values means a flat map, not relief.
    if spread <= 1e-6 * abs(centre):
        depth[...] = 0
        return depth
    depth -= np.float32(centre)
    depth /= np.float32(spread)
    np.clip(depth, -3, 3, out=depth)
    return _minmax_inplace(depth, mask)


def _masked_range(image: np.ndarray, mask) -> tuple[float, float]:
    """Minimum and maximum of the finite pixels of ``image`` inside ``mask`` ((inf, -inf)
    when none): ``masked_stats``' without its moments."""
    low, high = math.inf, -math.inf
    for values in _chunks(image, mask):
        if values.size:
            low, high = min(low, float(values.min())), max(high, float(values.max()))
    return low, high


def _minmax_inplace(image: np.ndarray, mask) -> np.ndarray:
    """Map the range inside ``mask`` to [0, 1] in place; values outside are clipped."""
    return _rescale_inplace(image, *_masked_range(image, mask))


def _rescale_inplace(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] to [0, 1] in place, clipped; all zeros unless ``high > low``."""
    if not high > low:
        image[...] = 0
        return image
    image -= np.float32(low)
    image /= np.float32(high - low)
    return np.clip(image, 0, 1, out=image)


def preprocess_depth(depth, *, px_per_mm: float, mask=None) -> np.ndarray:
    """The paper's depth preprocessing.

    ``d - gaussian(d, sigma = 1 mm) + mean(d)``, then standardise, clip to +-3 standard
    deviations and min-max to [0, 1]. Statistics are taken over the finite pixels inside
    ``mask``; non-finite pixels are filled with the mean before filtering.

    Parameters
    ----------
    depth : ndarray, shape (H, W)
        Height map (any unit).
    px_per_mm : float
        Pixels per millimetre; the Gaussian's sigma is 1 mm.
    mask : ndarray of bool, shape (H, W), optional
        Mirror area. Pixels outside are processed too but do not enter the statistics, and
        are clipped to [0, 1].

    Returns
    -------
    depth : ndarray of float32, shape (H, W), values in [0, 1]
        All zeros for a flat map.

    Examples
    --------
    >>> d = np.zeros((5, 5)); d[2, 2] = 1.0
    >>> out = preprocess_depth(d, px_per_mm=1.0)
    >>> float(out.max()), float(out.min()), int(out.argmax())
    (1.0, 0.0, 12)
    """
    depth = _check_image("depth", depth)
    if not (np.isfinite(px_per_mm) and px_per_mm > 0):
        raise ValueError(f"px_per_mm must be a positive number, got {px_per_mm!r}")
    mask = _check_mask(mask, depth.shape)
    return _preprocess_depth_inplace(depth.astype(np.float32, copy=True), px_per_mm, mask)


def normalize_albedo(albedo, *, mask=None) -> np.ndarray:
    """Min-max an albedo map to [0, 1] over the finite pixels inside ``mask``.

    Parameters
    ----------
    albedo : ndarray, shape (H, W)
    mask : ndarray of bool, shape (H, W), optional
        Mirror area for the minimum and maximum; values outside are clipped.

    Returns
    -------
    albedo : ndarray of float32, shape (H, W), values in [0, 1]
        Non-finite pixels become 0; a constant map becomes all zeros.
    """
    albedo = _check_image("albedo", albedo)
    mask = _check_mask(mask, albedo.shape)
    out = albedo.astype(np.float32, copy=True)
    return _normalize_albedo_inplace(out, mask)


def _normalize_albedo_inplace(albedo: np.ndarray, mask) -> np.ndarray:
    return _rescale_albedo_inplace(albedo, *_masked_range(albedo, mask))


def _rescale_albedo_inplace(albedo: np.ndarray, low: float, high: float) -> np.ndarray:
    """:func:`_rescale_inplace`, then non-finite pixels 0: the albedo's normalisation
    pixel by pixel, once its range over the mirror area is known (any block of rows)."""
    missing = ~np.isfinite(albedo)
    _rescale_inplace(albedo, low, high)
    albedo[missing] = 0
    return albedo


def unit_normals(normals) -> tuple[np.ndarray, int]:
    """Rescale a normal map to unit length.

    Raw vectors are rescaled. Maps with no negative value whose vectors are not already of
    unit length (median within 2 %) are taken as encoded ``(n + 1) / 2`` in [0, 1] (or
    [0, 255] / [0, 65535] when the maximum says so, as in integer images) and decoded first.

    Parameters
    ----------
    normals : ndarray, shape (H, W, 3)

    Returns
    -------
    normals : ndarray of float32, shape (H, W, 3)
        Unit vectors (x, y, z). Pixels without a direction (non-finite, or a stored all-zero
        vector, the usual background) become (0, 0, 1).
    invalid : int
        How many pixels had no direction.
    """
    normals = _check_image("normals", normals, ndim=3)
    if normals.shape[2] != 3:
        raise ValueError(f"normals must have 3 channels, got shape {normals.shape}")
    return _unit_normals_inplace(normals.astype(np.float32, copy=True))


def _encoding_sample_step(shape) -> int:
    """Row and column step of the strided sample that decides a normal map's encoding."""
    # About a million pixels decide; a raw map of a curved mirror has negatives everywhere.
    return max(1, int(math.sqrt(shape[0] * shape[1] / 1e6)))


def _normal_encoding(normals: np.ndarray) -> float | None:
    """None for raw vectors, else the top of the ``(n + 1) / 2`` code range (1, 255, 65535)."""
    step = _encoding_sample_step(normals.shape)
    return _sample_encoding(normals[::step, ::step])


def _sample_encoding(sample: np.ndarray) -> float | None:
    """:func:`_normal_encoding` from its sample of the map, (..., 3) float32."""
    sample = sample.reshape(-1, 3)
    sample = sample[np.isfinite(sample).all(axis=1) & sample.any(axis=1)]
    if not sample.size or sample.min() < 0:
        return None
    high = sample.max()
    top = 1.0 if high <= 1 else 255.0 if high <= 255 else 65535.0
    # Encoded vectors have length sqrt(1 + (x + y + z) / 2) > 1 when facing the camera.
    length = np.sqrt(np.square(sample / top).sum(axis=1))
    return None if abs(np.median(length) - 1) < 0.02 else top


def _lengths(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vector lengths of a block of normals and where they give no direction."""
    length = np.sqrt(np.einsum("ijk,ijk->ij", rows, rows))
    return length, ~(np.isfinite(length) & (length > 0))


def _unit_normals_inplace(normals: np.ndarray) -> tuple[np.ndarray, int]:
    return normals, _unit_rows_inplace(normals, _normal_encoding(normals))


def _unit_rows_inplace(normals: np.ndarray, top: float | None) -> int:
    """Make rows of (h, W, 3) float32 normals unit, decoded from ``(n + 1) / 2`` codes up to
    ``top`` unless None; pixels without a direction become (0, 0, 1). Returns their count."""
    invalid = 0
    step = max(1, _CHUNK_ELEMENTS // normals[0].size)
    for start in range(0, normals.shape[0], step):
        rows = normals[start : start + step]
        length, missing = _lengths(rows)
        if top is not None:
            rows *= np.float32(2 / top)
            rows -= np.float32(1)
            length, decoded_missing = _lengths(rows)
            missing |= decoded_missing
        inverse = np.divide(1, length, out=np.zeros_like(length), where=~missing)
        rows *= inverse[..., None]
        if missing.any():
            rows[missing] = _NO_NORMAL
            invalid += int(missing.sum())
    return invalid


def estimate_mirror_mask(albedo, *, valid=None, work_size: int = 1024) -> np.ndarray:
    """Estimate the mirror area from an albedo map (background removal).

    On a copy downsampled to at most ``work_size`` px per side: Otsu's threshold on the
    smoothed albedo; the class that covers the centre of the image is the mirror; opening,
    the largest connected component and hole filling; then upsampled.

    Parameters
    ----------
    albedo : ndarray, shape (H, W)
    valid : ndarray of bool, shape (H, W), optional
        Pixels with data (e.g. finite depth); others are never mirror.
    work_size : int, optional
        Longest side of the working copy.

    Returns
    -------
    mask : ndarray of bool, shape (H, W)
        All valid pixels when the albedo shows no separable background.
    """
    albedo = _check_image("albedo", albedo)
    valid = _check_mask(valid, albedo.shape)
    if work_size < 16:
        raise ValueError(f"work_size must be at least 16, got {work_size}")
    height, width = albedo.shape
    scale = min(1.0, work_size / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    finite = np.isfinite(albedo)
    if valid is not None:
        finite &= valid
    small = cv2.resize(
        np.where(finite, albedo, 0).astype(np.float32, copy=False),
        size,
        interpolation=cv2.INTER_AREA,
    )
    # uint8 0/255 keeps the full-size temporary at a byte per pixel.
    small_valid = (
        cv2.resize(finite.view(np.uint8) * np.uint8(255), size, interpolation=cv2.INTER_AREA) > 127
    )
    if not small_valid.any():
        return np.zeros(albedo.shape, bool)
    small = cv2.GaussianBlur(small, (0, 0), 2.0, borderType=cv2.BORDER_REFLECT)
    mirror = _largest_blob(small, small_valid)
    if mirror is None:
        mirror = small_valid
    full = cv2.resize(mirror.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    return np.logical_and(full, finite, out=finite)


def _largest_blob(image: np.ndarray, valid: np.ndarray) -> np.ndarray | None:
    """The central Otsu class, cleaned up; None when nothing separates."""
    values = image[valid]
    if values.min() == values.max():
        return None
    bright = (image > threshold_otsu(values)) & valid
    height, width = image.shape
    centre = bright[
        height * 2 // 5 : max(height * 3 // 5, height * 2 // 5 + 1),
        width * 2 // 5 : max(width * 3 // 5, width * 2 // 5 + 1),
    ]
    mirror = bright if centre.mean() >= 0.5 else ~bright & valid
    radius = max(1, min(height, width) // 100)
    mirror = ndimage.binary_opening(mirror, structure=np.ones((2 * radius + 1,) * 2, bool))
    labels, count = ndimage.label(mirror)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    mirror = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))
    covered = mirror.mean()
    return mirror if 0.02 <= covered <= 0.995 else None
