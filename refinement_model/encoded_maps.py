"""The display's albedo and normals, decoded strip by strip and encoded as they come.

A full-size view's float32 maps (240 MB of albedo, 720 MB of normals) are never whole in
memory: a first pass over the TIFF's strips gathers what the conversion needs, a second
converts each strip into the array that is kept, preprocessed exactly as
:func:`refinement_model.views.load_maps` preprocesses the whole map. A file stored as one strip
is decoded once, and then whole.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from refinement_model.errors import Cancelled
from refinement_model.imageio import MAX_PIXELS, image_shape, tiff_row_blocks
from refinement_model.preprocess import (
    _encoding_sample_step,
    _masked_range,
    _rescale_albedo_inplace,
    _sample_encoding,
    _unit_rows_inplace,
)
from refinement_model.views import (
    COLOUR_ALBEDO_WARNING,
    NONFINITE_ALBEDO_WARNING,
    ViewFiles,
    _albedo_gray,
    _check_view_size,
    _normal_warnings,
)


def load_encoded_normals(
    files: ViewFiles, shape, encode, *, max_pixels: int = MAX_PIXELS, cancel=None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The unit normals as ``encode`` turns them, decoded strip by strip.

    The first pass decodes the strips holding the sample that decides whether the file stores
    ``(n + 1) / 2`` codes; the second makes each strip unit and encodes it.

    Parameters
    ----------
    files : ViewFiles
        The view's files (``MirrorView.files``).
    shape : tuple of int (H, W)
        The view's size (``MirrorView.shape``).
    encode : callable(ndarray of float32, shape (h, W, 3)) -> ndarray, shape (h, W, ...)
        Turns a block of unit normals into what is kept (one dtype for all blocks).
    max_pixels : int, optional
    cancel : callable() -> bool, optional
        Checked between strips; raises :class:`~refinement_model.errors.Cancelled`.

    Returns
    -------
    normals : ndarray, shape (H, W, ...)
        The blocks ``encode`` returned, in place.
    warnings : tuple of str
        As :func:`~refinement_model.views.load_maps` words them.

    Raises
    ------
    InputError
        The file is unreadable, or its size is no longer the view's.
    """
    _check_view_size(files, tuple(shape), max_pixels)
    height = shape[0]
    step = _encoding_sample_step(shape)
    sample = []
    whole = _gather_strips(
        files.normals,
        height,
        lambda first, block: sample.append(_strided(block, first, step)),
        rows=slice(0, height, step),
        max_pixels=max_pixels,
        cancel=cancel,
    )
    top = _sample_encoding(np.concatenate(sample))
    sample.clear()
    invalid = []

    def convert(first, block):
        invalid.append(_unit_rows_inplace(block, top))
        return encode(block)

    encoded = _convert_strips(
        files.normals, height, convert, whole, max_pixels=max_pixels, cancel=cancel
    )
    return encoded, tuple(_normal_warnings(sum(invalid)))


def load_encoded_albedo(
    files: ViewFiles,
    mirror_mask,
    encoder,
    *,
    sample_step: int,
    max_pixels: int = MAX_PIXELS,
    cancel=None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The albedo, min-max to [0, 1] over the mirror area, as ``encoder`` turns it, decoded
    strip by strip.

    The first pass decodes every strip for the albedo's exact range over ``mirror_mask`` and
    keeps the strided sample ``encoder`` sees; the second normalises each strip and encodes
    it. Every step works pixel by pixel on the same float32 values as the whole map's
    normalisation, so the result equals ``encoder``'s on the map ``load_maps`` gives.

    Parameters
    ----------
    files : ViewFiles
        The view's files (``MirrorView.files``).
    mirror_mask : ndarray of bool, shape (H, W)
        The view's ``mirror_mask`` (the min-max is taken over it).
    encoder : callable(sample) -> encode
        Given ``albedo[::sample_step, ::sample_step]`` of the normalised map (ndarray of
        float32, shape (ceil(H / sample_step), ceil(W / sample_step))), returns ``encode``:
        callable(ndarray of float32, shape (h, W)) -> ndarray, shape (h, W, ...), turning a
        block of the normalised albedo into what is kept (one dtype for all blocks).
    sample_step : int
        Row and column stride of the sample.
    max_pixels, cancel
        As :func:`load_encoded_normals` takes them.

    Returns
    -------
    (albedo, warnings) : ndarray, shape (H, W, ...), and tuple of str
        The blocks ``encode`` returned, in place, and the warnings, as
        :func:`load_encoded_normals` returns its own (and raises the same errors).
    """
    mirror_mask = np.asarray(mirror_mask, bool)
    _check_view_size(files, mirror_mask.shape, max_pixels)
    height = mirror_mask.shape[0]
    ranges, finite, sample = [], [], []

    def gather(first, block):
        gray = _albedo_gray(block)
        ranges.append(_masked_range(gray, mirror_mask[first : first + len(gray)]))
        finite.append(bool(np.isfinite(gray).all()))
        sample.append(_strided(gray, first, sample_step))

    whole = _gather_strips(
        files.albedo, height, gather, rows=None, max_pixels=max_pixels, cancel=cancel
    )
    low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
    encode = encoder(_rescale_albedo_inplace(np.concatenate(sample), low, high))
    sample.clear()
    encoded = _convert_strips(
        files.albedo,
        height,
        lambda first, block: encode(_rescale_albedo_inplace(_albedo_gray(block), low, high)),
        whole,
        max_pixels=max_pixels,
        cancel=cancel,
    )
    colour = len(image_shape(files.albedo, max_pixels=max_pixels)) == 3
    warnings = [COLOUR_ALBEDO_WARNING] if colour else []
    return encoded, tuple(warnings + ([] if all(finite) else [NONFINITE_ALBEDO_WARNING]))


def _strided(block: np.ndarray, first: int, step: int) -> np.ndarray:
    """The rows and columns of a block (starting at image row ``first``) that fall on the
    image's ``[::step, ::step]`` grid, copied (a view would keep the strip)."""
    return block[-first % step :: step, ::step].copy()


def _gather_strips(path, height: int, gather, *, rows, max_pixels: int, cancel):
    """The first pass: ``gather(first_row, block)`` on each float32 strip of ``path`` holding
    one of ``rows`` (all when None). Returns the block when it was the whole image (a file of
    one strip: the second pass takes it), else None."""
    whole = None
    for first, block in tiff_row_blocks(path, rows=rows, max_pixels=max_pixels):
        _check_cancel(cancel, path)
        gather(first, block)
        whole = block if len(block) == height else None
    return whole


def _convert_strips(path, height: int, convert, whole, *, max_pixels: int, cancel) -> np.ndarray:
    """The second pass: ``convert(first_row, block)`` of each float32 strip of ``path`` (of
    ``whole`` alone when not None; the block may be changed in place), stacked into an
    (H, ...) array of the dtype the first conversion gave."""
    blocks = tiff_row_blocks(path, max_pixels=max_pixels) if whole is None else [(0, whole)]
    converted = None
    for first, block in blocks:
        _check_cancel(cancel, path)
        rows = convert(first, block)
        if converted is None:
            converted = np.empty((height, *rows.shape[1:]), rows.dtype)
        converted[first : first + len(block)] = rows
    return converted


def _check_cancel(cancel, path) -> None:
    if cancel is not None and cancel():
        raise Cancelled(f"reading {Path(path).name} was cancelled")
