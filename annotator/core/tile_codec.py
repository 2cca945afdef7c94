"""Tiles of a layer: which tiles a region touches, and their compressed bytes.

Tiles are compressed with Blosc2 (Zstandard level 1 after a byte shuffle; bool tiles are
bit-packed first): on noisy float32 logits it compresses about 20 times faster than zlib level 1
and decompresses about 10 times faster, with a better ratio (1.4 against 1.2), which is what
keeps opening a 60 Mpx project within seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import imagecodecs
import numpy as np

CODEC = "blosc2-zstd1-shuffle"
DTYPES = ("bool", "uint8", "int8", "uint16", "int16", "int32", "float16", "float32")


def tile_boxes(
    shape: tuple[int, int], tile: int, regions: Iterable[tuple[int, int, int, int]] | None = None
) -> list[tuple[int, int]]:
    """Tile indices ``(ty, tx)`` of a (H, W) grid of `tile` px touching any ``(y0, x0, y1, x1)``.

    Regions are clipped to the array; ``None`` means every tile. Sorted, without repeats.

    Examples
    --------
    >>> tile_boxes((10, 10), 4, [(3, 3, 5, 5)])
    [(0, 0), (0, 1), (1, 0), (1, 1)]
    """
    rows, cols = math.ceil(shape[0] / tile), math.ceil(shape[1] / tile)
    if regions is None:
        return [(ty, tx) for ty in range(rows) for tx in range(cols)]
    found = set()
    for y0, x0, y1, x1 in regions:
        y0, x0 = max(int(y0), 0), max(int(x0), 0)
        y1, x1 = min(int(y1), shape[0]), min(int(x1), shape[1])
        if y1 <= y0 or x1 <= x0:
            continue
        for ty in range(y0 // tile, (y1 - 1) // tile + 1):
            for tx in range(x0 // tile, (x1 - 1) // tile + 1):
                found.add((ty, tx))
    return sorted(found)


def _padded(size: int) -> int:
    # Blosc2 cannot decode an all-zero buffer whose length is not a multiple of 8 (seen with
    # imagecodecs 2026.3): pad every tile's bytes to a multiple of 16.
    return -(-size // 16) * 16


def encode_tile(tile: np.ndarray) -> bytes:
    raw = np.packbits(tile, axis=None) if tile.dtype == bool else np.ascontiguousarray(tile)
    raw = raw.astype(raw.dtype.newbyteorder("<"), copy=False).tobytes()
    raw += bytes(_padded(len(raw)) - len(raw))
    return imagecodecs.blosc2_encode(
        raw,
        compressor="zstd",
        level=1,
        shuffle="shuffle",
        typesize=tile.dtype.itemsize,
        numthreads=1,
    )


def decode_tile(data: bytes, dtype: np.dtype, shape: tuple[int, int]) -> np.ndarray:
    """The tile as an array of `shape` (bool tiles as 0 / 1 uint8); raises ValueError if the
    data do not decode to exactly its size (decoding into a buffer of that size also stops
    decompression bombs)."""
    pixels = shape[0] * shape[1]
    size = (pixels + 7) // 8 if dtype.kind == "b" else pixels * dtype.itemsize
    raw = np.empty(_padded(size), np.uint8)
    try:
        decoded = imagecodecs.blosc2_decode(data, out=raw, numthreads=1)
    except imagecodecs.Blosc2Error as error:
        raise ValueError(str(error)) from None
    if len(decoded) != len(raw):
        raise ValueError("tile of the wrong size")
    raw = raw[:size]
    if dtype.kind == "b":
        return np.unpackbits(raw, count=pixels).reshape(shape)
    return raw.view(dtype.newbyteorder("<")).reshape(shape)
