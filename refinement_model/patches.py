"""Cut a mirror view into overlapping patches and stitch patch logits back together.

The networks see patches of ``patch_size`` view pixels (512 in the paper) taken every ``stride``
pixels (256) and resized to ``net_size`` (256). Whole-view predictions are stitched in logit
space with a weight map that falls off towards the patch border, then passed through the sigmoid
(docs/method.md, "Patches").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import cv2
import numpy as np

from refinement_model.errors import Cancelled

__all__ = [
    "PatchGrid",
    "area_resize",
    "border_weight_map",
    "clip_box",
    "stitch_logits",
    "stitch_region",
    "stitch_region_logits",
    "union",
]

# dtypes cv2.resize handles natively; everything else is resized as float32.
_CV2_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _starts(length: int, patch_size: int, stride: int) -> np.ndarray:
    """Patch start offsets along one axis; the last patch ends exactly at ``length``."""
    if length <= patch_size:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, length - patch_size + 1, stride, dtype=np.int64)
    if starts[-1] + patch_size < length:
        starts = np.append(starts, length - patch_size)
    return starts


class PatchGrid:
    """Overlapping square patches covering a view.

    Parameters
    ----------
    height, width : int
        Size of the view in pixels.
    patch_size : int, optional
        Side of a patch in view pixels.
    stride : int, optional
        Offset between neighbouring patches in view pixels; at most ``patch_size`` so that the
        patches cover the view.
    net_size : int, optional
        Side of a patch as the networks see it.

    Attributes
    ----------
    boxes : (N, 4) int64 ndarray
        ``(y0, x0, y1, x1)`` of every patch in view pixels, row-major. The last row and column
        of patches end exactly at the view border. A view smaller than a patch along an axis
        gets a single patch there that starts at 0 and reaches past the border: its outside
        part is padded by :meth:`extract` and ignored by the stitching functions.
    rows, cols : int
        Number of patch rows and columns; patch ``i`` is in row ``i // cols``.
    scale : float
        ``net_size / patch_size``: multiply view pixel lengths by it to get network pixels.

    Examples
    --------
    >>> grid = PatchGrid(700, 1000)
    >>> len(grid), grid.boxes[[0, 2, 5]].tolist()
    (6, [[0, 0, 512, 512], [0, 488, 512, 1000], [188, 488, 700, 1000]])
    >>> grid.patches_touching(600, 300, 610, 310).tolist()
    [3, 4]
    """

    def __init__(
        self,
        height: int,
        width: int,
        *,
        patch_size: int = 512,
        stride: int = 256,
        net_size: int = 256,
    ):
        self.height = _check_positive_int(height, "height")
        self.width = _check_positive_int(width, "width")
        self.patch_size = _check_positive_int(patch_size, "patch_size")
        self.stride = _check_positive_int(stride, "stride")
        self.net_size = _check_positive_int(net_size, "net_size")
        if self.stride > self.patch_size:
            raise ValueError(
                f"stride must be at most patch_size ({self.patch_size}) so that the "
                f"patches cover the view, got {self.stride}"
            )
        ys = _starts(self.height, self.patch_size, self.stride)
        xs = _starts(self.width, self.patch_size, self.stride)
        self.rows, self.cols = len(ys), len(xs)
        y0, x0 = (a.ravel() for a in np.meshgrid(ys, xs, indexing="ij"))
        boxes = np.stack([y0, x0, y0 + self.patch_size, x0 + self.patch_size], axis=1)
        boxes.setflags(write=False)
        self.boxes = boxes
        self.scale = self.net_size / self.patch_size

    def __len__(self) -> int:
        return len(self.boxes)

    def __repr__(self) -> str:
        return (
            f"PatchGrid({self.height}, {self.width}, patch_size={self.patch_size}, "
            f"stride={self.stride}, net_size={self.net_size})"
        )

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the view."""
        return self.height, self.width

    def _check_index(self, index) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ValueError(f"index must be an integer, got {index!r}")
        if not 0 <= index < len(self.boxes):
            raise ValueError(f"index must be in [0, {len(self.boxes)}), got {index}")
        return int(index)

    def check_region(self, region) -> tuple[int, int, int, int]:
        """``region`` as four ints ``(y0, x0, y1, x1)``; ValueError unless it is a non-empty
        half-open rectangle inside the view."""
        try:
            y0, x0, y1, x1 = (int(v) for v in region)
        except (TypeError, ValueError):
            raise ValueError(f"region must be (y0, x0, y1, x1) integers, got {region!r}") from None
        if not (0 <= y0 < y1 <= self.height and 0 <= x0 < x1 <= self.width):
            raise ValueError(
                f"region must be a non-empty rectangle inside the view {self.shape}, got {region!r}"
            )
        return y0, x0, y1, x1

    def overlaps(self, region) -> list[tuple[int, tuple[slice, slice], tuple[slice, slice]]]:
        """Where each patch overlapping ``region`` lands in it, in ascending patch order.

        Parameters
        ----------
        region : (y0, x0, y1, x1) ints
            Non-empty half-open rectangle inside the view.

        Returns
        -------
        overlaps : list of (index, inside, target)
            ``patch_sized_array[inside]`` covers the same view pixels as
            ``region_sized_array[target]`` (both are pairs of slices).
        """
        ry0, rx0, ry1, rx1 = self.check_region(region)
        out = []
        for index in self.patches_touching(ry0, rx0, ry1, rx1).tolist():
            by0, bx0, by1, bx1 = self.boxes[index].tolist()
            y0, x0, y1, x1 = max(by0, ry0), max(bx0, rx0), min(by1, ry1), min(bx1, rx1)
            out.append(
                (
                    index,
                    np.s_[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0],
                    np.s_[y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0],
                )
            )
        return out

    def region(self, index: int) -> tuple[int, int, int, int]:
        """``(y0, x0, y1, x1)`` of patch ``index`` clipped to the view.

        The rectangle to re-stitch with :func:`stitch_region` after the logits of this patch
        changed.
        """
        y0, x0, y1, x1 = self.boxes[self._check_index(index)].tolist()
        return y0, x0, min(y1, self.height), min(x1, self.width)

    def network_origin(self, index: int) -> tuple[float, float]:
        """``(x, y)`` origin that maps view coordinates onto patch ``index`` at network size.

        With it, ``rasterize_stroke(stroke_in_view_pixels, (n, n), origin=..., scale=scale)``
        covers the network pixels whose area (as :meth:`extract` averages it) the stroke
        covers: network pixel ``j`` spans view pixels ``[x0 + j / s, x0 + (j + 1) / s)``, whose
        centre is at ``x0 + (j + 0.5) / s - 0.5``.
        """
        y0, x0 = self.boxes[self._check_index(index), :2].tolist()
        return self.network_origin_at(y0, x0)

    def network_origin_at(self, y0: int, x0: int) -> tuple[float, float]:
        """:meth:`network_origin` of a window whose top-left view pixel is ``(y0, x0)``, at
        the grid's scale (a block of patches, say)."""
        shift = 0.5 / self.scale - 0.5
        return x0 + shift, y0 + shift

    def extract(self, image: np.ndarray, index: int, *, fill: float = 0) -> np.ndarray:
        """Cut patch ``index`` out of ``image`` and resize it to the network size.

        Parameters
        ----------
        image : (H, W) or (C, H, W) ndarray
            A view-sized map. Never modified.
        index : int
            Patch index into :attr:`boxes`.
        fill : scalar, optional
            Value for the part of the patch outside the view (views smaller than a patch).

        Returns
        -------
        patch : (net_size, net_size) or (C, net_size, net_size) ndarray
            Resized with ``cv2.INTER_AREA`` (the mean over each block of view pixels).
            uint8, uint16, int16, float32 and float64 keep their dtype; bool patches are
            the covered fraction thresholded at 0.5 (so thin lines survive as long as they
            cover half a network pixel); other dtypes come back as float32. Always a new array.
        """
        image = np.asarray(image)
        if image.ndim not in (2, 3) or image.shape[-2:] != self.shape:
            raise ValueError(
                f"image must have shape (H, W) or (C, H, W) with (H, W) = "
                f"{self.shape}, got {image.shape}"
            )
        y0, x0, y1, x1 = self.region(index)
        crop = image[..., y0:y1, x0:x1]
        work = crop if crop.dtype.type in _CV2_DTYPES else crop.astype(np.float32)
        if crop.shape[-2:] != (self.patch_size, self.patch_size):
            pad = [(0, 0)] * (work.ndim - 2) + [
                (0, self.patch_size - crop.shape[-2]),
                (0, self.patch_size - crop.shape[-1]),
            ]
            work = np.pad(work, pad, mode="constant", constant_values=fill)
        out = area_resize(work, (self.net_size, self.net_size))
        if image.dtype == bool:
            return out >= 0.5
        return out

    def patches_touching(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        """Indices of the patches that overlap the half-open rectangle ``[y0, y1) x [x0, x1)``.

        Coordinates are view pixels and may reach past the view. Returns a sorted int64 array,
        empty when the rectangle is empty or outside every patch.
        """
        b = self.boxes
        if y0 >= y1 or x0 >= x1:
            return np.zeros(0, dtype=np.int64)
        hit = (b[:, 0] < y1) & (b[:, 2] > y0) & (b[:, 1] < x1) & (b[:, 3] > x0)
        return np.flatnonzero(hit)

    def patches_holding(self, mask: np.ndarray) -> np.ndarray:
        """(N,) bool: which patches hold at least one True pixel of ``mask`` (H, W) bool."""
        mask = np.asarray(mask)
        if mask.shape != self.shape:
            raise ValueError(f"mask must have shape {self.shape}, got {mask.shape}")
        mask = mask.astype(bool, copy=False)
        return np.array(
            [bool(mask[y0:y1, x0:x1].any()) for y0, x0, y1, x1 in self.boxes], dtype=bool
        )


def area_resize(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(..., H, W) ``array`` resized to (..., h, w) ``shape`` with ``cv2.INTER_AREA`` (the mean
    over each block of pixels), plane by plane; a dtype OpenCV resizes (uint8, uint16, int16,
    float32, float64)."""
    h, w = shape
    planes = array.reshape(-1, *array.shape[-2:])
    out = np.stack([cv2.resize(p, (w, h), interpolation=cv2.INTER_AREA) for p in planes])
    return out.reshape(array.shape[:-2] + (h, w))


def clip_box(box, shape) -> tuple[int, int, int, int]:
    """``(y0, x0, y1, x1)`` clipped to a view of ``shape`` (H, W); may come back empty."""
    y0, x0, y1, x1 = (int(v) for v in box)
    h, w = shape
    return max(y0, 0), max(x0, 0), min(y1, h), min(x1, w)


def union(*boxes) -> tuple[int, int, int, int] | None:
    """Smallest box holding all given boxes (``None`` entries ignored; None if none left)."""
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    array = np.asarray(boxes, dtype=np.int64)
    return (
        int(array[:, 0].min()),
        int(array[:, 1].min()),
        int(array[:, 2].max()),
        int(array[:, 3].max()),
    )


def border_weight_map(size: int) -> np.ndarray:
    """Stitching weight of every pixel of a square patch.

    The distance of each pixel centre to the nearest patch border, capped at a quarter of the
    patch, divided by that cap and squared (docs/method.md). Measuring from pixel centres keeps the
    outermost ring positive (``(0.5 / (size / 4)) ** 2``), so view pixels that only patch
    borders cover (the outer view border) still get a finite weighted average.

    Parameters
    ----------
    size : int
        Side of the patch in pixels.

    Returns
    -------
    weights : (size, size) float32 ndarray
        Values in (0, 1], 1 everywhere at least ``size / 4`` from the border.

    Examples
    --------
    >>> border_weight_map(4).tolist()[0]
    [0.25, 0.25, 0.25, 0.25]
    """
    size = _check_positive_int(size, "size")
    centre = np.arange(size, dtype=np.float64) + 0.5
    edge = np.minimum(centre, size - centre)
    distance = np.minimum(edge[:, None], edge[None, :])
    cap = size / 4
    return np.square(np.minimum(distance, cap) / cap).astype(np.float32)


class _Accumulator:
    """Weighted logit sum and weight sum over one rectangle of the view."""

    def __init__(self, grid: PatchGrid, region: tuple[int, int, int, int]):
        self.grid = grid
        shape = (region[2] - region[0], region[3] - region[1])
        self.logit_sum = np.zeros(shape, dtype=np.float32)
        self.weight_sum = np.zeros(shape, dtype=np.float32)
        self.weights = border_weight_map(grid.patch_size)
        self._upsampled = np.empty((grid.patch_size, grid.patch_size), dtype=np.float32)

    def add(self, index: int, logits, inside, target) -> None:
        """Add patch ``index``: its pixels ``inside`` land on the region's pixels ``target``."""
        grid = self.grid
        logits = np.asarray(logits, dtype=np.float32)
        if logits.shape != (grid.net_size, grid.net_size):
            raise ValueError(
                f"logits of patch {index} must have shape "
                f"({grid.net_size}, {grid.net_size}), got {logits.shape}"
            )
        size = (grid.patch_size, grid.patch_size)
        if logits.shape == size:
            np.copyto(self._upsampled, logits)
        else:
            cv2.resize(logits, size, dst=self._upsampled, interpolation=cv2.INTER_LINEAR)
        # in place into the target views: OpenCV writes through their row strides
        weights = self.weights[inside]
        cv2.accumulateProduct(self._upsampled[inside], weights, self.logit_sum[target])
        cv2.accumulate(weights, self.weight_sum[target])

    def add_constant(self, value: float, inside, target) -> None:
        """Add a patch of constant logits ``value`` (no resize, no product when it is 0)."""
        weights = self.weights[inside]
        if value:
            self.logit_sum[target] += np.float32(value) * weights
        cv2.accumulate(weights, self.weight_sum[target])

    def mean_logits(self) -> np.ndarray:
        """The weighted mean logits (computed in place; call once)."""
        np.divide(self.logit_sum, self.weight_sum, out=self.logit_sum)
        return self.logit_sum

    def probabilities(self) -> np.ndarray:
        """Sigmoid of :meth:`mean_logits`, in place: 1 / (1 + exp(-x))."""
        out = self.mean_logits()
        np.negative(out, out=out)
        # exp overflows to inf for x << 0, giving probability 0
        with np.errstate(over="ignore"):
            np.exp(out, out=out)
        out += 1
        np.reciprocal(out, out=out)
        return out


def stitch_logits(
    grid: PatchGrid,
    logits_iterable: Iterable,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Stitch the logits of every patch into a whole-view probability map.

    Each patch's logits are upsampled to the patch size (bilinear), weighted with
    :func:`border_weight_map`, summed in logit space, divided by the summed weights and passed
    through the sigmoid.

    Parameters
    ----------
    grid : PatchGrid
        The grid the logits were computed on.
    logits_iterable : iterable of (net_size, net_size) array-likes
        Logits of patch 0, 1, ... in the order of ``grid.boxes``, exactly ``len(grid)`` of
        them (numpy arrays or CPU tensors; converted to float32).
    progress : callable(done, total), optional
        Called after each patch.
    cancel : callable() -> bool, optional
        Checked before each patch; when it returns True, :class:`Cancelled` is raised.

    Returns
    -------
    probabilities : (H, W) float32 ndarray
        Values in [0, 1].

    Examples
    --------
    >>> grid = PatchGrid(600, 600, patch_size=64, stride=32, net_size=32)
    >>> probs = stitch_logits(grid, (np.zeros((32, 32)) for _ in range(len(grid))))
    >>> probs.shape, float(probs.min()), float(probs.max())
    ((600, 600), 0.5, 0.5)
    """
    view = (0, 0, grid.height, grid.width)
    accumulator = _Accumulator(grid, view)
    overlaps = grid.overlaps(view)
    total = len(overlaps)
    count = 0
    for logits in logits_iterable:
        if cancel is not None and cancel():
            raise Cancelled("stitching cancelled")
        if count == total:
            raise ValueError(f"logits_iterable yielded more than the {total} patches of the grid")
        accumulator.add(count, logits, *overlaps[count][1:])
        count += 1
        if progress is not None:
            progress(count, total)
    if count != total:
        raise ValueError(f"logits_iterable yielded {count} patches, the grid has {total}")
    return accumulator.probabilities()


def _accumulate_region(grid: PatchGrid, logits_by_index, region, missing) -> _Accumulator:
    region = grid.check_region(region)
    accumulator = _Accumulator(grid, region)
    for index, inside, target in grid.overlaps(region):
        try:
            logits = logits_by_index[index]
        except (KeyError, IndexError):
            if missing is None:
                raise ValueError(
                    f"logits_by_index lacks patch {index}, which overlaps the region {region}"
                ) from None
            accumulator.add_constant(missing, inside, target)
        else:
            accumulator.add(index, logits, inside, target)
    return accumulator


def stitch_region(
    grid: PatchGrid, logits_by_index: Mapping, region, *, missing: float | None = None
) -> np.ndarray:
    """Probabilities of one rectangle of the view, from the patches that overlap it.

    Gives exactly the values :func:`stitch_logits` gives there, at a cost proportional to the
    area of the patches touching the region, so that the app can re-stitch only where a stroke
    changed the logits (``grid.region(i)`` for patch ``i``) and paste the result into its
    whole-view map.

    Parameters
    ----------
    grid : PatchGrid
        The grid the logits were computed on.
    logits_by_index : mapping int -> (net_size, net_size) array-like
        Current logits of (at least) every patch in ``grid.patches_touching(*region)``;
        a dict, a list or an (N, net_size, net_size) array all work.
    region : (y0, x0, y1, x1) ints
        Non-empty half-open rectangle inside the view.
    missing : float, optional
        Constant logit of the patches absent from ``logits_by_index``; by default every patch
        overlapping the region must be given.

    Returns
    -------
    probabilities : (y1 - y0, x1 - x0) float32 ndarray
    """
    return _accumulate_region(grid, logits_by_index, region, missing).probabilities()


def stitch_region_logits(
    grid: PatchGrid, logits_by_index: Mapping, region, *, missing: float | None = None
) -> np.ndarray:
    """Weighted mean logits of one rectangle of the view (:func:`stitch_region` before the sigmoid).

    Parameters are those of :func:`stitch_region`. With ``missing=0`` and per-patch logit
    *changes*, this blends local changes into a whole-view logit map without seams.

    Returns
    -------
    logits : (y1 - y0, x1 - x0) float32 ndarray
    """
    return _accumulate_region(grid, logits_by_index, region, missing).mean_logits()


def blend_logits(grid: PatchGrid, base_logits: np.ndarray, deltas: Mapping, region) -> np.ndarray:
    """Current logits of one rectangle: full-resolution base logits plus blended patch changes.

    For every refined patch the caller keeps the refiner's *change* ``refined - base patch`` at
    network size. Blending the change rather than the refined logits keeps the full-resolution
    detail of the base prediction wherever the refiner agrees with it (a patch's logits resized
    down and back up would blur every line edge), and the border weights make the change fade
    out without seams. Re-blending any region gives bit for bit what a whole-view blend gives.

    Parameters
    ----------
    grid : PatchGrid
    base_logits : (H, W) float32 ndarray
        Never modified.
    deltas : mapping int -> (net_size, net_size) array-like
        Change of every refined patch; patches not in the mapping contribute no change.
    region : (y0, x0, y1, x1) ints
        Non-empty half-open rectangle inside the view.

    Returns
    -------
    logits : (y1 - y0, x1 - x0) float32 ndarray
    """
    y0, x0, y1, x1 = grid.check_region(region)
    change = stitch_region_logits(grid, deltas, (y0, x0, y1, x1), missing=0.0)
    change += base_logits[y0:y1, x0:x1]
    return change
