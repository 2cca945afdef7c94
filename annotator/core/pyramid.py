"""Multi-resolution copies of the view's layers, so a zoomed-out frame reads few pixels.

numpy only (no Qt): the canvas asks for the region of a level that a tile covers. Level ``l``
holds the image shrunk by ``2 ** l``; continuous layers are averaged, line layers are max-pooled
so that thin engravings stay visible when zoomed out.
"""

from __future__ import annotations

import numpy as np
from skimage.morphology import skeletonize

from annotator.core import render
from refinement_model.views import DISPLAY_MAPS

REDUCTIONS = ("mean", "max", "or")


def halve(image: np.ndarray, *, reduce: str = "mean") -> np.ndarray:
    """Shrink an image by two in both axes (odd sizes: the last row/column is repeated).

    Parameters
    ----------
    image : (H, W) or (H, W, C) array of uint8, int8, bool or float
    reduce : {"mean", "max", "or"}
        Average the 2 x 2 blocks (rounded for integers), take their maximum, or their bitwise
        OR (integer bit-flag layers keep every flag).

    Returns
    -------
    (ceil(H / 2), ceil(W / 2)[, C]) array of the same dtype.
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be 2-D or 3-D, got shape {image.shape}")
    h, w = image.shape[:2]
    if h % 2 or w % 2:
        pad = ((0, h % 2), (0, w % 2)) + ((0, 0),) * (image.ndim - 2)
        image = np.pad(image, pad, mode="edge")
    quads = (image[0::2, 0::2], image[1::2, 0::2], image[0::2, 1::2], image[1::2, 1::2])
    return _combine(quads, reduce, image.dtype)


def _combine(quads, reduce: str, dtype) -> np.ndarray:
    if reduce == "or":
        return quads[0] | quads[1] | quads[2] | quads[3]
    if reduce == "max":
        return np.maximum(np.maximum(quads[0], quads[1]), np.maximum(quads[2], quads[3]))
    if np.issubdtype(dtype, np.integer):
        total = sum(q.astype(np.int16) for q in quads)
        return ((total + 2) // 4).astype(dtype)
    return ((quads[0] + quads[1] + quads[2] + quads[3]) * 0.25).astype(dtype)


class Pyramid:
    """Levels 0 (full size) to ``len(levels) - 1`` of one layer.

    Parameters
    ----------
    image : (H, W) or (H, W, C) array
        Level 0; the pyramid keeps it without copying (pass a copy if the caller changes it
        without telling :meth:`update`).
    reduce : {"mean", "max", "or"}
        How levels are shrunk (see :func:`halve`).
    min_size : int
        Stop once both sides of a level are at most this.
    """

    def __init__(self, image: np.ndarray, *, reduce: str = "mean", min_size: int = 256):
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
        if min_size < 1:
            raise ValueError(f"min_size must be >= 1, got {min_size}")
        self.reduce = reduce
        self.levels = [np.asarray(image)]
        while max(self.levels[-1].shape[:2]) > min_size:
            self.levels.append(halve(self.levels[-1], reduce=reduce))

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of level 0."""
        return self.levels[0].shape

    def region(self, level: int, box) -> np.ndarray:
        """The pixels of ``box`` = (y0, x0, y1, x1) in the coordinates of ``level`` (a view)."""
        level = min(level, len(self.levels) - 1)
        y0, x0, y1, x1 = box
        return self.levels[level][y0:y1, x0:x1]

    def update(self, box, values: np.ndarray) -> None:
        """Write ``values`` into level 0 at ``box`` = (y0, x0, y1, x1) and refresh the levels above.

        Only the blocks under the box are recomputed, so a stroke costs a few small copies.
        """
        y0, x0, y1, x1 = (int(v) for v in box)
        self.levels[0][y0:y1, x0:x1] = values
        for level in range(1, len(self.levels)):
            y0, x0 = y0 // 2, x0 // 2
            y1, x1 = (
                min(-(-y1 // 2), self.levels[level].shape[0]),
                min(-(-x1 // 2), self.levels[level].shape[1]),
            )
            below = self.levels[level - 1][2 * y0 : 2 * y1, 2 * x0 : 2 * x1]
            self.levels[level][y0:y1, x0:x1] = halve(below, reduce=self.reduce)[
                : y1 - y0, : x1 - x0
            ]


#: The map each base layer is drawn from (the raking light is lit from the normals).
LAYER_MAPS = {"depth": "depth", "albedo": "albedo", "normals": "normals", "raking": "normals"}
_MAP_NAMES = ("depth", "albedo", "normals")


def display_pyramids(maps: dict, *, min_size: int = 256) -> dict[str, Pyramid]:
    """The 8-bit pyramids of a view's float maps, as :class:`LayerStack` shows them.

    Parameters
    ----------
    maps : dict
        Some of ``"depth"``, ``"albedo"`` ((H, W) float arrays, shown with robust contrast
        limits, see :func:`render.contrast_limits`) and ``"normals"`` ((H, W, 3) float unit
        normals). Each is taken out of the dict once converted to 8 bits: when the dict held the
        last reference, its float copy (up to 720 MB on a full-size view) is freed before the
        next is converted.
    min_size : int

    Returns
    -------
    dict of str to Pyramid
        uint8 (H, W) levels for depth and albedo, int8 (H, W, 3) for the normals.
    """
    unknown = set(maps) - set(_MAP_NAMES)
    if unknown:
        raise ValueError(f"maps must be among {_MAP_NAMES}, got {sorted(maps)}")
    pyramids, step = {}, render.CONTRAST_SAMPLE_STEP
    for name in [name for name in _MAP_NAMES if name in maps]:
        image = maps.pop(name)
        encoded = (
            render.encode_normals(image)
            if name == "normals"
            else render.uint8_encoder(image[::step, ::step])(image)
        )
        del image
        pyramids[name] = Pyramid(encoded, min_size=min_size)
    return pyramids


class LayerStack:
    """All layers of one view as pyramids, and the :class:`Tile` of any box at any level.

    The albedo and normals may come later (:meth:`add_layers`): the app shows a view as soon
    as its depth is read. Until then a tile asked for with one of their base layers shows the
    depth (:meth:`has_layer` tells).

    Parameters
    ----------
    depth : (H, W) float array
    albedo : (H, W) float array or None
    normals : (H, W, 3) float array of unit normals, or None
        As :func:`display_pyramids` takes them.
    truth : (H, W) bool array or None
        Ground truth, for the error map.
    """

    def __init__(self, *, depth, albedo=None, normals=None, truth=None, min_size: int = 256):
        maps = {"depth": depth, "albedo": albedo, "normals": normals}
        self._build({k: v for k, v in maps.items() if v is not None}, truth, min_size)

    @classmethod
    def from_maps(cls, maps: dict, *, truth=None, min_size: int = 256) -> LayerStack:
        """Build from ``maps`` = {"depth" and maybe "albedo", "normals": float arrays}, taking
        each out of the dict once its 8-bit pyramid is built (see :func:`display_pyramids`)."""
        stack = cls.__new__(cls)
        stack._build(maps, truth, min_size)
        return stack

    def _build(self, maps: dict, truth, min_size: int) -> None:
        if "depth" not in maps:
            raise ValueError(f"maps must hold 'depth', got {sorted(maps)}")
        self.min_size = min_size
        pyramids = display_pyramids(maps, min_size=min_size)
        self.depth = pyramids.pop("depth")
        self.albedo = self.normals = None
        self.add_layers(pyramids)
        self.truth = (
            None
            if truth is None
            else Pyramid(np.array(truth, bool), reduce="max", min_size=min_size)
        )
        shape = self.depth.shape
        self.mask = Pyramid(np.zeros(shape, bool), reduce="max", min_size=min_size)
        self.user = Pyramid(np.zeros(shape, np.uint8), reduce="or", min_size=min_size)

    def add_layers(self, pyramids: dict) -> None:
        """Take the albedo and / or normals pyramids made later (by :func:`display_pyramids`
        with this stack's ``min_size``, off the GUI thread: this only stores them)."""
        for name, pyramid in pyramids.items():
            if name not in DISPLAY_MAPS:
                raise ValueError(f"only albedo and normals come later, got {name!r}")
            if pyramid.shape[:2] != self.shape or len(pyramid.levels) != self.n_levels:
                raise ValueError(
                    f"the {name} pyramid ({pyramid.shape[:2]}, {len(pyramid.levels)} levels) "
                    f"does not fit the view ({self.shape}, {self.n_levels} levels)"
                )
            setattr(self, name, pyramid)

    def has_layer(self, base: str) -> bool:
        """Whether the map of base layer ``base`` (see ``render.BASE_LAYERS``) is here."""
        return getattr(self, LAYER_MAPS[base]) is not None

    @property
    def missing_maps(self) -> tuple[str, ...]:
        """The maps whose layers are still to come, of ``views.DISPLAY_MAPS``."""
        return tuple(name for name in DISPLAY_MAPS if getattr(self, name) is None)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the view."""
        return self.depth.shape[:2]

    @property
    def n_levels(self) -> int:
        return len(self.depth.levels)

    def set_annotation(self, mask, user_map, box=None) -> None:
        """Take the session's arrays, for the whole view or only ``box`` = (y0, x0, y1, x1).

        Parameters
        ----------
        mask : (H, W) bool array
        user_map : (H, W) int array in {-1, 0, +1}
        box : tuple of 4 ints or None
            The region that changed; the arrays are read there only.
        """
        y0, x0, y1, x1 = (0, 0, *self.shape) if box is None else box
        region = (slice(y0, y1), slice(x0, x1))
        self.mask.update((y0, x0, y1, x1), np.asarray(mask[region], bool))
        self.user.update((y0, x0, y1, x1), render.encode_user_map(user_map[region]))

    def tile(self, level: int, box, settings: render.LayerSettings) -> render.Tile:
        """The layers of ``box`` = (y0, x0, y1, x1) in the coordinates of ``level``; the
        depth in place of a base layer whose map has not come yet."""
        source = LAYER_MAPS[settings.base] if self.has_layer(settings.base) else "depth"
        return render.Tile(
            depth=self.depth.region(level, box) if source == "depth" else None,
            albedo=self.albedo.region(level, box) if source == "albedo" else None,
            normals=self.normals.region(level, box) if source == "normals" else None,
            mask=self.mask.region(level, box),
            skeleton=self._skeleton(level, box) if settings.skeleton else None,
            user=self.user.region(level, box),
            truth=None if self.truth is None else self.truth.region(level, box),
        )

    def _skeleton(self, level: int, box) -> np.ndarray:
        # Thin a slightly larger window so lines crossing the tile border end where they should.
        y0, x0, y1, x1 = box
        h, w = self.mask.levels[min(level, self.n_levels - 1)].shape
        m = _SKELETON_MARGIN
        wy0, wx0, wy1, wx1 = max(y0 - m, 0), max(x0 - m, 0), min(y1 + m, h), min(x1 + m, w)
        window = skeletonize(self.mask.region(level, (wy0, wx0, wy1, wx1)))
        return window[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]


_SKELETON_MARGIN = 16
