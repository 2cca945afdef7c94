"""Training data: views at network resolution, patch sampling and augmentation.

Every view is resized once to network resolution (``net_size / patch_size``, 0.5 in the paper)
with the area filter :meth:`PatchGrid.extract` uses, so training patches look exactly like the
patches the networks see at inference. Patches are centred on a ground-truth line pixel most of
the time (lines stay in view; most of a mirror is empty bronze) and augmented with a random
shift-scale-rotate (one affine warp, cv2), flips and 90-degree rotations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from refinement_model.errors import InputError
from refinement_model.patches import PatchGrid
from refinement_model.views import find_views, load_view, network_input

__all__ = [
    "Augmentation",
    "TrainingView",
    "dihedral",
    "downsample_view",
    "grid_patches",
    "load_training_views",
    "sample_patches",
]


@dataclass(frozen=True)
class TrainingView:
    """One view at network resolution.

    Attributes
    ----------
    view_id : str
    image : (C, h, w) float32 ndarray
        Normalised network input.
    ground_truth : (h, w) bool ndarray
    mirror_mask : (h, w) bool ndarray
    """

    view_id: str
    image: np.ndarray
    ground_truth: np.ndarray
    mirror_mask: np.ndarray


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random augmentation (albumentations' ShiftScaleRotate defaults).

    Parameters
    ----------
    shift : float
        Largest shift as a fraction of the patch side.
    scale : float
        Scale factor drawn from [1 - scale, 1 + scale].
    rotate : float
        Largest rotation in degrees.
    probability : float
        Chance of applying the shift-scale-rotate at all (flips and 90-degree turns always).
    """

    shift: float = 0.0625
    scale: float = 0.1
    rotate: float = 45.0
    probability: float = 0.5


def _area_resize(plane: np.ndarray, factor: float) -> np.ndarray:
    height, width = plane.shape
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(plane, size, interpolation=cv2.INTER_AREA)


def downsample_view(
    image: np.ndarray, ground_truth: np.ndarray, mirror_mask: np.ndarray, *, factor: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize a view to network resolution like :meth:`PatchGrid.extract` does.

    Parameters
    ----------
    image : (C, H, W) float32 ndarray
    ground_truth, mirror_mask : (H, W) bool ndarrays
    factor : float
        ``net_size / patch_size``.

    Returns
    -------
    image : (C, h, w) float32, ground_truth : (h, w) bool, mirror_mask : (h, w) bool
        Masks keep the pixels at least half covered (thin lines survive).
    """
    if not 0 < factor <= 1:
        raise ValueError(f"factor must be in (0, 1], got {factor!r}")
    small = np.stack([_area_resize(np.asarray(p, np.float32), factor) for p in image])
    gt = _area_resize(ground_truth.astype(np.float32), factor) >= 0.5
    mask = _area_resize(mirror_mask.astype(np.float32), factor) >= 0.5
    return small, gt, mask


def load_training_views(roots, *, inputs, factor: float = 0.5, progress=None) -> list[TrainingView]:
    """Every annotated view under the given folders, resized by ``factor``.

    Parameters
    ----------
    roots : sequence of str or os.PathLike
        Folders searched with :func:`refinement_model.views.find_views`.
    inputs : sequence of str
        Image channels (``views.network_input``).
    factor : float, optional
        ``net_size / patch_size`` for training patches; 1 keeps full resolution (validation
        by whole-view prediction).
    progress : callable(done, total), optional

    Raises
    ------
    InputError
        A folder holds no view with ground truth.
    """
    found = []
    for root in roots:
        annotated = [files for files in find_views(root) if files.drawings is not None]
        if not annotated:
            raise InputError(root, "no view with ground-truth drawings found here")
        found += annotated
    out = []
    for done, files in enumerate(found, 1):
        view = load_view(files.depth)
        image, gt, mask = network_input(view, inputs), view.ground_truth, view.mirror_mask
        if factor != 1:
            image, gt, mask = downsample_view(image, gt, mask, factor=factor)
        out.append(TrainingView(view.view_id, image, gt, mask))
        if progress is not None:
            progress(done, len(found))
    return out


def dihedral(arrays, k: int) -> list[np.ndarray]:
    """Apply one of the 8 flips/rotations (``k`` in 0..7) to the last two axes of each array."""
    out = []
    for a in arrays:
        a = np.rot90(a, k % 4, axes=(-2, -1))
        if k >= 4:
            a = a[..., ::-1]
        out.append(np.ascontiguousarray(a))
    return out


def _affine(centre, size: int, rng: np.random.Generator, augmentation: Augmentation | None):
    """Matrix mapping patch pixels to view pixels around ``centre`` (x, y)."""
    angle, scale, shift = 0.0, 1.0, np.zeros(2)
    if augmentation is not None and rng.random() < augmentation.probability:
        angle = math.radians(rng.uniform(-augmentation.rotate, augmentation.rotate))
        scale = rng.uniform(1 - augmentation.scale, 1 + augmentation.scale)
        shift = rng.uniform(-augmentation.shift, augmentation.shift, 2) * size
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    half = (size - 1) / 2
    cx, cy = np.asarray(centre, float) + shift
    return np.array(
        [[cos, -sin, cx - cos * half + sin * half], [sin, cos, cy - sin * half - cos * half]]
    )


def sample_patches(
    views,
    count: int,
    *,
    size: int = 256,
    rng=None,
    line_fraction: float = 0.8,
    augmentation: Augmentation | None = Augmentation(),
) -> tuple[np.ndarray, np.ndarray]:
    """Random training patches with their ground truth.

    Parameters
    ----------
    views : sequence of TrainingView
    count : int
    size : int, optional
        Patch side in network pixels.
    rng : None, int or numpy.random.Generator, optional
    line_fraction : float, optional
        Share of patches centred on a ground-truth pixel; the others are centred anywhere on
        the mirror.
    augmentation : Augmentation or None, optional
        None: axis-aligned crops, no flips or rotations.

    Returns
    -------
    images : (count, C, size, size) float32 ndarray
    targets : (count, size, size) bool ndarray
    """
    if not views:
        raise ValueError("views must not be empty")
    if not 0 <= line_fraction <= 1:
        raise ValueError(f"line_fraction must be in [0, 1], got {line_fraction!r}")
    rng = np.random.default_rng(rng)
    channels = views[0].image.shape[0]
    images = np.empty((count, channels, size, size), np.float32)
    targets = np.empty((count, size, size), bool)
    for n in range(count):
        view = views[int(rng.integers(len(views)))]
        pool = view.ground_truth if rng.random() < line_fraction else view.mirror_mask
        ys, xs = np.nonzero(pool)
        if len(ys) == 0:
            ys, xs = np.nonzero(np.ones_like(pool))
        pick = int(rng.integers(len(ys)))
        matrix = _affine((xs[pick], ys[pick]), size, rng, augmentation)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        warp = dict(dsize=(size, size), flags=flags, borderMode=cv2.BORDER_REFLECT_101)
        image = np.stack([cv2.warpAffine(p, matrix, **warp) for p in view.image])
        target = cv2.warpAffine(view.ground_truth.astype(np.float32), matrix, **warp) >= 0.5
        if augmentation is not None:
            image, target = dihedral([image, target], int(rng.integers(8)))
        images[n], targets[n] = image, target
    return images, targets


def grid_patches(
    image: np.ndarray, ground_truth: np.ndarray, grid: PatchGrid, *, min_line_pixels: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The grid patches of a full-resolution view that contain ground-truth lines.

    Returns
    -------
    images : (N, C, S, S) float32, targets : (N, S, S) bool
        As :meth:`PatchGrid.extract` cuts them (validation sees what inference sees).
    """
    images, targets = [], []
    for i in range(len(grid)):
        target = grid.extract(ground_truth, i)
        if np.count_nonzero(target) >= min_line_pixels:
            images.append(grid.extract(image, i))
            targets.append(target)
    channels = image.shape[0]
    size = grid.net_size
    if not images:
        return np.empty((0, channels, size, size), np.float32), np.empty((0, size, size), bool)
    return np.stack(images).astype(np.float32, copy=False), np.stack(targets)
