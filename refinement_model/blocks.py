"""Refine the patches a stroke touches as one image: a *block* of the patch grid.

The grid's patches overlap by half, so the 4 to 6 patches a stroke touches cover a window only
1.5 to 2 patches wide. The refiner is fully convolutional: run once over that window, it needs
half the network pixels of one run per patch, and every patch sees the stroke with the same
context. Each patch's refined logits are cut out of the window's (docs/inference_backends.md,
"One image per stroke").

Quick use::

    refined = refine_patches_together(refine_many, grid, image, base_logits, indices, strokes)
    refined[index]            # (net_size, net_size) float32 logits of each patch

Where the patches cannot be one image (a single patch, a view smaller than a patch, patch
offsets that are not whole network pixels, a window that cannot grow to a multiple of 32 network
pixels inside the view) they are refined one by one, in one batch, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from refinement_model.patches import PatchGrid, area_resize, union
from refinement_model.strokes import Stroke, stroke_channel

__all__ = ["NET_MULTIPLE", "PatchBlock", "patch_block", "patch_inputs", "refine_patches_together"]

#: The networks' sides must be multiples of this (five halvings in the encoder).
NET_MULTIPLE = 32

#: ``refine_many(images (B, C, h, w), base_logits (B, h, w), stroke_channels (B, h, w))`` ->
#: logits (B, h, w), as ``annotator.core.refiners.as_refine_fn`` returns it.
RefineMany = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PatchBlock:
    """A rectangle of grid patches and the view window the network sees them in.

    Attributes
    ----------
    grid : PatchGrid
    indices : tuple of int
        The patches, ascending.
    box : (y0, x0, y1, x1) ints
        The window in view pixels: the patches' union, grown towards the view's inside until
        its sides are multiples of :data:`NET_MULTIPLE` network pixels.
    """

    grid: PatchGrid
    indices: tuple[int, ...]
    box: tuple[int, int, int, int]

    @property
    def net_shape(self) -> tuple[int, int]:
        """``(h, w)`` of the window at network size."""
        y0, x0, y1, x1 = self.box
        return _net_length(self.grid, y1 - y0), _net_length(self.grid, x1 - x0)

    def offset(self, index: int) -> tuple[int, int]:
        """``(row, column)`` in network pixels where patch ``index`` starts in the window."""
        by0, bx0 = self.grid.boxes[index, :2].tolist()
        return _net_length(self.grid, by0 - self.box[0]), _net_length(self.grid, bx0 - self.box[1])

    def extract(self, array: np.ndarray) -> np.ndarray:
        """The window of a view-sized (H, W) or (C, H, W) float array at network size, as
        :meth:`PatchGrid.extract` resizes a patch (``cv2.INTER_AREA``); float32."""
        y0, x0, y1, x1 = self.box
        crop = np.asarray(array)[..., y0:y1, x0:x1].astype(np.float32, copy=False)
        return area_resize(crop, self.net_shape)

    def stroke_channel(self, strokes: Sequence[Stroke]) -> np.ndarray:
        """(h, w) float32 stroke channel of the window (see :meth:`PatchGrid.network_origin`)."""
        origin = self.grid.network_origin_at(*self.box[:2])
        return stroke_channel(list(strokes), self.net_shape, origin=origin, scale=self.grid.scale)

    def cut(self, window: np.ndarray, index: int) -> np.ndarray:
        """Patch ``index``'s (..., n, n) part of a (..., h, w) window array (a view)."""
        row, col = self.offset(index)
        n = self.grid.net_size
        return window[..., row : row + n, col : col + n]


def _net_length(grid: PatchGrid, view_pixels: int) -> int:
    return view_pixels * grid.net_size // grid.patch_size


def _whole_net_pixels(grid: PatchGrid, view_pixels: int) -> bool:
    return view_pixels * grid.net_size % grid.patch_size == 0


def _grown(grid: PatchGrid, start: int, stop: int, limit: int) -> tuple[int, int] | None:
    """``[start, stop)`` grown (backwards first) to a multiple of NET_MULTIPLE network pixels
    inside ``[0, limit)``, None if it cannot be."""
    step = NET_MULTIPLE * grid.patch_size
    if step % grid.net_size:
        return None
    step //= grid.net_size  # view pixels per NET_MULTIPLE network pixels
    missing = -(stop - start) % step
    if start - missing >= 0:
        return start - missing, stop
    if stop + missing <= limit:
        return start, stop + missing
    return None


def patch_block(grid: PatchGrid, indices) -> PatchBlock | None:
    """The block of patches ``indices`` if the network can refine them as one image, else None.

    Parameters
    ----------
    grid : PatchGrid
    indices : iterable of int
        Two or more patches forming a full rectangle of grid rows and columns (the patches a
        box touches, ``grid.patches_touching``, always do).

    Returns
    -------
    PatchBlock or None
        None for fewer than two patches, patches that are not a full rectangle, patches that
        reach past the view, offsets between them that are not whole network pixels, or a
        window that cannot grow to multiples of :data:`NET_MULTIPLE` network pixels.
    """
    indices = tuple(sorted({int(i) for i in indices}))
    if len(indices) < 2:
        return None
    rows = sorted({i // grid.cols for i in indices})
    cols = sorted({i % grid.cols for i in indices})
    full = {
        r * grid.cols + c
        for r in range(rows[0], rows[-1] + 1)
        for c in range(cols[0], cols[-1] + 1)
    }
    if set(indices) != full:
        return None
    boxes = grid.boxes[list(indices)]
    if boxes[:, 2].max() > grid.height or boxes[:, 3].max() > grid.width:
        return None
    y0, x0, y1, x1 = union(*boxes.tolist())
    rows_span = _grown(grid, y0, y1, grid.height)
    cols_span = _grown(grid, x0, x1, grid.width)
    if rows_span is None or cols_span is None:
        return None
    box = (rows_span[0], cols_span[0], rows_span[1], cols_span[1])
    starts = np.concatenate([boxes[:, 0] - box[0], boxes[:, 1] - box[1]]).tolist()
    if not all(_whole_net_pixels(grid, s) for s in starts):
        return None
    return PatchBlock(grid, indices, box)


def refine_patches_together(
    refine_many: RefineMany,
    grid: PatchGrid,
    image: np.ndarray,
    base_logits: np.ndarray,
    indices,
    strokes: Sequence[Stroke],
    *,
    use_prediction: bool = True,
    use_strokes: bool = True,
) -> dict[int, np.ndarray]:
    """Refined logits of patches ``indices`` with ``strokes``, as one image where
    :func:`patch_block` allows (else each patch alone, in one batch).

    Parameters
    ----------
    refine_many : callable
        ``refine_many(images, base_logits, stroke_channels)`` on (B, C, h, w), (B, h, w),
        (B, h, w) float32 batches -> (B, h, w) logits; h and w may differ.
    grid : PatchGrid
    image : (C, H, W) float32 ndarray
        Network inputs of the whole view.
    base_logits : (H, W) float32 ndarray
        The prediction the refiner starts from.
    indices : iterable of int
        The patches to refine.
    strokes : sequence of Stroke
        In view pixels, in drawing order (the last over a pixel wins): every stroke on any of
        the patches (strokes elsewhere change nothing).
    use_prediction, use_strokes : bool, keyword-only
        False feeds zeros in place of the base logits / the stroke channel (the paper's
        inputs ablation).

    Returns
    -------
    dict of int to (net_size, net_size) float32 ndarray
        Each patch's refined logits, ascending by index.
    """
    indices = sorted({int(i) for i in indices})
    if not indices:
        return {}
    block = patch_block(grid, indices)
    if block is None:
        images, bases, channels = patch_inputs(grid, image, base_logits, indices, strokes)
        refined = _refined(refine_many, images, bases, channels, use_prediction, use_strokes)
        return {i: np.ascontiguousarray(refined[k]) for k, i in enumerate(indices)}
    bases = block.extract(base_logits)[None]
    refined = _refined(
        refine_many,
        block.extract(image)[None],
        bases,
        block.stroke_channel(strokes)[None],
        use_prediction,
        use_strokes,
    )[0]
    return {i: np.ascontiguousarray(block.cut(refined, i)) for i in indices}


def patch_inputs(
    grid: PatchGrid, image: np.ndarray, base_logits: np.ndarray, indices, strokes=()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The refiner's inputs of patches ``indices``, each alone, at network size.

    Parameters
    ----------
    grid : PatchGrid
    image : (C, H, W) float32 ndarray
    base_logits : (H, W) float32 ndarray
    indices : sequence of int
    strokes : sequence of Stroke, optional
        In view pixels, in drawing order; default none (an all-zero stroke channel).

    Returns
    -------
    images : (B, C, n, n) float32 ndarray
    base_logits : (B, n, n) float32 ndarray
    stroke_channels : (B, n, n) float32 ndarray
    """
    n, strokes = grid.net_size, list(strokes)
    images = np.stack([grid.extract(image, i) for i in indices]).astype(np.float32)
    bases = np.stack([grid.extract(base_logits, i) for i in indices]).astype(np.float32)
    channels = np.stack(
        [
            stroke_channel(strokes, (n, n), origin=grid.network_origin(i), scale=grid.scale)
            for i in indices
        ]
    )
    return images, bases, channels


def _refined(refine_many, images, bases, channels, use_prediction, use_strokes) -> np.ndarray:
    zeros = np.zeros_like(bases)
    return np.asarray(
        refine_many(images, bases if use_prediction else zeros, channels if use_strokes else zeros),
        dtype=np.float32,
    )
