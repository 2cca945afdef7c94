"""Writing a synthetic view in the real data set's layout."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from refinement_model.imageio import write_png, write_tiff

_VIEW_ID = re.compile(r"^(?P<object>[A-Za-z0-9][A-Za-z0-9.-]*)_(?P<side>[A-Za-z]+)$")
#: Folders of the ground truth and of the mirror masks (ARCHITECTURE.md).
GT_DIR, MASK_DIR = "drawings", "masks"


def synthetic_view_id(index, *, side="R"):
    """View id of the ``index``-th synthetic mirror, e.g. ``SYN-0001_R``."""
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    return f"SYN-{index:04d}_{side}"


#: Binary digits kept after the point by ``compact`` writing: normals, albedo, depth (mm).
COMPACT_BITS = {"normals": 7, "albedo": 9, "depth": 12}


def _rounded(array, bits):
    scale = np.float32(2.0**bits)
    return np.round(array * scale) / scale


def write_view(root, view_id, view, *, compact=False):
    """Write a view as ``ROOT/<object>/PS/<id>_N|_RHO|_U.tif``, drawings and mask PNGs.

    Normals are stored as ``(n + 1) / 2`` in [0, 1], as in the real photometric-stereo files
    (the loader rescales them to unit length); depth carries the resolution tag. Every file is
    written atomically, so concurrent readers never see half a file.

    Parameters
    ----------
    root : str or os.PathLike
        Data set folder (created if missing).
    view_id : str
        ``<object_id>_<side>``, e.g. ``SYN-0001_R``.
    view : SyntheticView
    compact : bool
        Round the maps to :data:`COMPACT_BITS` binary digits (normals to 1/128, depth to
        1/4096 mm), well below their noise, so that the files compress to about a quarter;
        used for the bundled sample.

    Returns
    -------
    dict of str to pathlib.Path
        Keys ``normals``, ``albedo``, ``depth``, ``drawings``, ``mask``.
    """
    match = _VIEW_ID.match(str(view_id))
    if match is None:
        raise ValueError(f"view_id must look like OBJECT_SIDE (e.g. SYN-0001_R), got {view_id!r}")
    root = Path(root)
    ps = root / match["object"] / "PS"
    for folder in (ps, root / GT_DIR, root / MASK_DIR):
        folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "normals": ps / f"{view_id}_N.tif",
        "albedo": ps / f"{view_id}_RHO.tif",
        "depth": ps / f"{view_id}_U.tif",
        "drawings": root / GT_DIR / f"{view_id}_drawings.png",
        "mask": root / MASK_DIR / f"{view_id}_mask.png",
    }
    ppm = view.px_per_mm
    maps = {
        "normals": lambda: view.normals * np.float32(0.5) + np.float32(0.5),
        "albedo": lambda: view.albedo,
        "depth": lambda: view.depth,
    }
    for role, make in maps.items():
        array = make()
        write_tiff(
            paths[role], _rounded(array, COMPACT_BITS[role]) if compact else array, px_per_mm=ppm
        )
        del array
    h, w = view.drawings.shape
    rgba = np.zeros((h, w, 4), dtype=np.uint8)
    rgba[..., 3] = view.drawings * np.uint8(255)
    write_png(paths["drawings"], rgba)
    rgb = np.zeros((h, w, 3), dtype=np.uint8)
    rgb[..., 0] = view.mirror_mask * np.uint8(255)
    write_png(paths["mask"], rgb)
    return paths
