"""Mirror views: one side of one mirror, found in the real data layout and loaded preprocessed.

Layout (docs/method.md)::

    ROOT/<object_id>/PS/<view_id>_N.tif      normals
    ROOT/<object_id>/PS/<view_id>_RHO.tif    albedo
    ROOT/<object_id>/PS/<view_id>_U.tif      depth
    ROOT/<gt dir>/<view_id>_drawings.png     ground truth (alpha channel; channel 0 without alpha)
    ROOT/<mask dir>/<view_id>_mask.png       mirror area (red channel)

The ground-truth and mask folders may have any name (``etmira synth`` writes ``drawings/`` and
``masks/``); a plain folder holding the five files is a view too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from refinement_model.errors import Cancelled, InputError
from refinement_model.imageio import (
    MAX_PIXELS,
    image_shape,
    read_binary_mask,
    read_tiff,
    tiff_px_per_mm,
)
from refinement_model.preprocess import (
    _normalize_albedo_inplace,
    _preprocess_depth_inplace,
    _unit_normals_inplace,
    estimate_mirror_mask,
)

#: File-name endings of a view's files, by role.
SUFFIXES = {
    "normals": "_N.tif",
    "albedo": "_RHO.tif",
    "depth": "_U.tif",
    "drawings": "_drawings.png",
    "mask": "_mask.png",
}
_MAPS = ("normals", "albedo", "depth")
#: The maps only the display reads (the networks of the app read the depth map alone):
#: :func:`load_view` may leave them for :func:`load_maps`.
DISPLAY_MAPS = ("albedo", "normals")

#: Channel normalisation (mean, std) measured on the real set (docs/method.md). The normal
#: statistics fit normals encoded as ``(n + 1) / 2``, which :func:`network_input` feeds.
CHANNEL_STATS = {
    "depth": (0.5140403, 0.15302444),
    "albedo": (0.0911411, 0.05621303),
    "normal_x": (0.41616833, 0.113035046),
    "normal_y": (0.41096762, 0.110428646),
    "normal_z": (0.7927827, 0.06655099),
}
#: Input names :func:`network_input` accepts, with the channels each contributes.
INPUT_CHANNELS = {
    "depth": ("depth",),
    "albedo": ("albedo",),
    "normals": ("normal_x", "normal_y", "normal_z"),
}
#: Largest share of the view that may be non-finite in the depth map.
MAX_NONFINITE_FRACTION = 0.5
MASK_ESTIMATED_WARNING = "mask file missing: mirror area estimated from the maps"
COLOUR_ALBEDO_WARNING = "albedo has 3 channels: their mean is used"
NONFINITE_ALBEDO_WARNING = "albedo has NaN/infinite pixels: set to 0"
NO_VIEW_FOUND = (
    "no view found here (expected files <view_id>_N.tif, <view_id>_RHO.tif and <view_id>_U.tif)"
)


@dataclass(frozen=True)
class ViewFiles:
    """The files of one view; ``drawings`` and ``mask`` are None when absent."""

    view_id: str
    normals: Path
    albedo: Path
    depth: Path
    drawings: Path | None = None
    mask: Path | None = None


@dataclass(frozen=True, eq=False)
class MirrorView:
    """One side of one mirror, preprocessed as in the paper.

    Attributes
    ----------
    view_id : str
    depth : ndarray of float32, shape (H, W)
        High-passed (sigma = 1 mm), standardised, clipped to +-3 sigma, min-max to [0, 1],
        statistics over the mirror area.
    albedo : ndarray of float32, shape (H, W), or None
        Min-max to [0, 1] over the mirror area; None when not loaded (see ``maps`` in
        :func:`load_view`, and :func:`load_maps`).
    normals : ndarray of float32, shape (H, W, 3), or None
        Unit vectors (x, y, z); (0, 0, 1) where the map had no direction; None when not
        loaded.
    ground_truth : ndarray of bool, shape (H, W), or None
    mirror_mask : ndarray of bool, shape (H, W)
        Mirror area, without pixels whose depth is not finite.
    mask_estimated : bool
        True when no mask file existed and the area was estimated from the maps.
    px_per_mm : float
    files : ViewFiles
    warnings : tuple of str
        Problems that did not stop loading (estimated mask, non-finite values, ...).

    Notes
    -----
    All maps are float32 (no float16 needed): a full-resolution view (8964 x 6716) holds
    about 1.3 GB and loads with a peak of about 1.4 GB (``benchmarks/bench_view_load.py``),
    because the loader preprocesses in place and in row chunks.
    """

    view_id: str
    depth: np.ndarray
    albedo: np.ndarray | None
    normals: np.ndarray | None
    ground_truth: np.ndarray | None
    mirror_mask: np.ndarray
    mask_estimated: bool
    px_per_mm: float
    files: ViewFiles
    warnings: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the view."""
        return self.depth.shape


def _scan(root: Path, levels: int | None = None) -> dict[str, dict[str, list[Path]]]:
    """All files under ``root`` (at most ``levels`` folders down) named like a view's file,
    by view id and role."""
    found: dict[str, dict[str, list[Path]]] = {}
    paths = (
        root.rglob("*")
        if levels is None
        else (
            path for depth in range(levels + 1) for path in root.glob("/".join(["*"] * (depth + 1)))
        )
    )
    for path in sorted(paths):
        if path.name.startswith(".") or not path.is_file():
            continue
        for role, suffix in SUFFIXES.items():
            if path.name.endswith(suffix) and len(path.name) > len(suffix):
                view_id = path.name[: -len(suffix)]
                found.setdefault(view_id, {}).setdefault(role, []).append(path)
    return found


def _one(root: Path, view_id: str, role: str, paths: list[Path], near: Path | None):
    """The single file for a role; the one next to the maps wins over others."""
    if near is not None:
        local = [path for path in paths if path.parent == near]
        if len(local) == 1:
            return local[0]
    if len(paths) > 1:
        listed = ", ".join(str(path) for path in paths)
        raise InputError(root, f"view {view_id} has {len(paths)} {role} files: {listed}")
    return paths[0] if paths else None


def _view_files(root: Path, view_id: str, roles: dict[str, list[Path]]) -> ViewFiles:
    missing = [role for role in _MAPS if role not in roles]
    if missing:
        present = next(iter(roles.values()))[0]
        absent = ", ".join(f"{view_id}{SUFFIXES[role]}" for role in missing)
        raise InputError(present.parent, f"view {view_id} lacks {absent}")
    depth = _one(root, view_id, "depth", roles["depth"], None)
    files = {
        role: _one(root, view_id, role, roles.get(role, []), depth.parent) for role in SUFFIXES
    }
    return ViewFiles(view_id=view_id, **files)


def find_views(path) -> list[ViewFiles]:
    """The views a path names, as every command that takes views reads it.

    Parameters
    ----------
    path : str or os.PathLike
        A data-set root, an object folder (``ROOT/<object_id>``), a view folder
        (``ROOT/<object_id>/PS`` or a plain folder holding the files) or any one file of a view.

    Returns
    -------
    views : list of ViewFiles
        Sorted by view id; for a folder, every view with all three maps under it, for a file
        its view. Ground truth and masks are looked for in the data-set root the path belongs
        to (see :func:`dataset_root`; a file next to the maps wins).

    Raises
    ------
    InputError
        ``path`` does not exist, a file is not a view file or its view lacks a map, or a view
        has two candidate files for one role.
    """
    root, found = _candidates(path)
    return [
        _view_files(root, view_id, roles)
        for view_id, roles in sorted(found.items())
        if all(role in roles for role in _MAPS)
    ]


def find_views_in(paths) -> list[ViewFiles]:
    """The views of several paths, each as :func:`find_views` takes it, in order, each view once.

    Raises
    ------
    InputError
        A path names no view (or as :func:`find_views`).
    """
    views: dict[ViewFiles, None] = {}
    for path in paths:
        found = find_views(path)
        if not found:
            raise InputError(path, NO_VIEW_FOUND)
        views.update(dict.fromkeys(found))
    return list(views)


def dataset_root(folder) -> Path:
    """The folder under which the ground truth and masks of the views in ``folder`` lie.

    ``ROOT/<object_id>/PS`` and ``ROOT/<object_id>`` (a folder holding ``PS/``) give ``ROOT``;
    any other folder (a data-set root, a plain view folder) is its own.
    """
    folder = Path(folder)
    if folder.name == "PS":
        return folder.parent.parent
    if (folder / "PS").is_dir():
        return folder.parent
    return folder


def _candidates(path) -> tuple[Path, dict[str, dict[str, list[Path]]]]:
    """The data-set root and the files by view id and role of the views ``path`` names."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_file():
        return _file_candidates(path)
    root = dataset_root(path)
    found = _scan(path)
    if root != path:
        # Ground truth and masks in ROOT/<dir>/: one level down, not a walk of all of ROOT.
        for view_id, roles in _scan(root, levels=1).items():
            for role, paths in roles.items():
                if view_id in found and role not in _MAPS:
                    known = found[view_id].setdefault(role, [])
                    known += [p for p in paths if p not in known]
    return root, found


def _file_candidates(path: Path) -> tuple[Path, dict[str, dict[str, list[Path]]]]:
    role = next((r for r, s in SUFFIXES.items() if path.name.endswith(s)), None)
    if role is None:
        raise InputError(
            path, "not a view file (expected a name ending in " + ", ".join(SUFFIXES.values()) + ")"
        )
    view_id = path.name[: -len(SUFFIXES[role])]
    if role in _MAPS:
        root, found = _candidates(path.parent)
        roles = found.get(view_id, {})
    else:
        # ROOT/<dir>/<view_id>_drawings.png: the maps are in the folder or under ROOT
        for root in (path.parent, path.parent.parent):
            roles = _scan(root).get(view_id, {})
            if all(r in roles for r in _MAPS):
                break
    if not all(r in roles for r in _MAPS):
        _view_files(root, view_id, roles)  # raises, naming the missing maps
    return root, {view_id: roles}


def _resolve(path, view_id: str | None) -> ViewFiles:
    """The files of the view that ``path`` (as :func:`find_views` takes it) and ``view_id``
    name."""
    root, found = _candidates(path)
    if Path(path).is_file():
        (view_id,) = found
    elif view_id is None:
        view_id = _only_view(Path(path), found)
    roles = found.get(view_id)
    if not roles:
        raise InputError(path, f"no files of view {view_id} found")
    return _view_files(root, view_id, roles)  # raises, naming the maps it lacks


def _only_view(root: Path, found) -> str:
    complete = [view for view, roles in sorted(found.items()) if all(r in roles for r in _MAPS)]
    if len(complete) == 1:
        return complete[0]
    if not complete:
        raise InputError(root, NO_VIEW_FOUND)
    listed = ", ".join(complete[:5]) + (", ..." if len(complete) > 5 else "")
    raise InputError(
        root,
        f"{len(complete)} views found ({listed}): give the folder or a file of one, or its view id",
    )


def _check_shapes(files: ViewFiles, max_pixels: int) -> tuple[int, int]:
    shapes = {role: image_shape(getattr(files, role), max_pixels=max_pixels) for role in _MAPS}
    if len(shapes["normals"]) != 3 or shapes["normals"][2] != 3:
        raise InputError(
            files.normals, f"normal map must have 3 channels, has shape {shapes['normals']}"
        )
    if len(shapes["depth"]) != 2:
        raise InputError(files.depth, f"depth map must have 1 channel, has shape {shapes['depth']}")
    if len(shapes["albedo"]) == 3 and shapes["albedo"][2] != 3:
        raise InputError(
            files.albedo, f"albedo must have 1 or 3 channels, has shape {shapes['albedo']}"
        )
    height, width = shapes["depth"]
    for role in ("normals", "albedo"):
        if shapes[role][:2] != (height, width):
            raise InputError(
                getattr(files, role),
                f"size {shapes[role][1]} x {shapes[role][0]} (W x H) differs from the depth "
                f"map {files.depth} ({width} x {height})",
            )
    return height, width


def _px_per_mm(files: ViewFiles, given: float | None) -> float:
    if given is not None:
        if not (math.isfinite(given) and given > 0):
            raise ValueError(f"px_per_mm must be a positive number, got {given!r}")
        return float(given)
    for role in ("depth", "albedo", "normals"):
        found = tiff_px_per_mm(getattr(files, role))
        if found is not None:
            return found
    raise InputError(
        files.depth,
        "no resolution tag (pixels per mm) in the maps: "
        "pass px_per_mm to set the 1 mm high-pass scale",
    )


def load_view(
    path,
    view_id: str | None = None,
    *,
    maps=_MAPS,
    px_per_mm: float | None = None,
    max_pixels: int = MAX_PIXELS,
    progress=None,
    cancel=None,
) -> MirrorView:
    """Load one mirror view and apply the paper's preprocessing.

    Parameters
    ----------
    path : str or os.PathLike
        A view folder, a data-set root (with ``view_id`` when it holds several views), or any
        one of the view's files.
    view_id : str, optional
        Which view under ``path``; ignored when ``path`` is a file.
    maps : collection of {"depth", "albedo", "normals"}, optional
        The maps to read (default all); must hold "depth". The others are None in the view
        and :func:`load_maps` reads them later, preprocessed the same way. Every map's header
        (size, channels) is checked all the same. Without a mask file the albedo is read to
        estimate the mirror area, and then kept.
    px_per_mm : float, optional
        Pixels per millimetre; overrides the TIFF resolution tags, needed when they have none.
    max_pixels : int, optional
        Largest map accepted (height x width).
    progress : callable(done, total), optional
    cancel : callable() -> bool, optional
        Checked between steps; raises :class:`~refinement_model.errors.Cancelled`.

    Returns
    -------
    view : MirrorView

    Raises
    ------
    InputError
        Missing or bad files, maps of different sizes, masks of the wrong size or bit depth,
        no resolution, depth mostly non-finite.
    """
    maps = _checked_maps(maps)
    if "depth" not in maps:
        raise ValueError(f"maps must hold 'depth', got {tuple(maps)}")
    step = _steps(6, progress, cancel, "loading the view was cancelled")
    step()
    files = _resolve(path, view_id)
    shape = _check_shapes(files, max_pixels)
    scale = _px_per_mm(files, px_per_mm)
    warnings = []
    step()
    depth_map = f"the depth map {files.depth}"
    truth = (
        None
        if files.drawings is None
        else read_binary_mask(
            files.drawings,
            channel="alpha",
            shape=shape,
            max_pixels=max_pixels,
            what="the ground truth",
            shape_of=depth_map,
        )
    )
    mirror = (
        None
        if files.mask is None
        else read_binary_mask(
            files.mask,
            channel="red",
            shape=shape,
            max_pixels=max_pixels,
            what="the mirror-area mask",
            shape_of=depth_map,
        )
    )
    step()
    depth = read_tiff(files.depth, max_pixels=max_pixels)
    finite = np.isfinite(depth)
    bad = depth.size - int(np.count_nonzero(finite))
    if bad > MAX_NONFINITE_FRACTION * depth.size:
        raise InputError(
            files.depth,
            f"{bad / depth.size:.0%} of the depth map is NaN or infinite: not a usable height map",
        )
    if bad:
        warnings.append(
            f"depth map has {bad} NaN/infinite pixels ({bad / depth.size:.2%}): "
            "left out of the mirror area and filled for filtering"
        )
    estimated = mirror is None
    albedo = _read_albedo(files, max_pixels, warnings) if "albedo" in maps or estimated else None
    step()
    if estimated:
        mirror = estimate_mirror_mask(albedo, valid=finite)
        warnings.append(MASK_ESTIMATED_WARNING)
    mirror &= finite
    del finite
    if not mirror.any():
        raise InputError(
            files.mask or files.depth, "the mirror area is empty (no finite depth inside the mask)"
        )
    depth = _preprocess_depth_inplace(depth, scale, mirror)
    if albedo is not None:
        albedo = _normalize_albedo(albedo, mirror, warnings)
    step()
    normals = _read_normals(files, max_pixels, warnings) if "normals" in maps else None
    step()
    if progress is not None:
        progress(6, 6)
    return MirrorView(
        view_id=files.view_id,
        depth=depth,
        albedo=albedo,
        normals=normals,
        ground_truth=truth,
        mirror_mask=mirror,
        mask_estimated=estimated,
        px_per_mm=scale,
        files=files,
        warnings=tuple(warnings),
    )


def load_maps(
    files: ViewFiles,
    mirror_mask: np.ndarray,
    maps=DISPLAY_MAPS,
    *,
    max_pixels: int = MAX_PIXELS,
    progress=None,
    cancel=None,
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Read maps :func:`load_view` left out, preprocessed exactly as it does.

    Parameters
    ----------
    files : ViewFiles
        The view's files (``MirrorView.files``).
    mirror_mask : ndarray of bool, shape (H, W)
        The view's ``mirror_mask`` (the albedo's min-max is taken over it).
    maps : collection of {"albedo", "normals"}, optional
    max_pixels : int, optional
    progress : callable(done, total), optional
    cancel : callable() -> bool, optional
        Checked between maps; raises :class:`~refinement_model.errors.Cancelled`.

    Returns
    -------
    maps : dict of str to ndarray of float32
        ``"albedo"`` (H, W), ``"normals"`` (H, W, 3), as in :class:`MirrorView`.
    warnings : tuple of str
        Problems that did not stop loading, worded as :func:`load_view` words them.

    Raises
    ------
    InputError
        A file is unreadable, or its size is no longer the view's.
    """
    maps = _checked_maps(maps)
    if "depth" in maps:
        raise ValueError("maps must not hold 'depth': load the view again to read it")
    step = _steps(len(maps) + 1, progress, cancel, "loading the maps was cancelled")
    step()
    mirror_mask = np.asarray(mirror_mask, bool)
    _check_view_size(files, mirror_mask.shape, max_pixels)
    warnings: list[str] = []
    loaded = {}
    if "albedo" in maps:
        albedo = _read_albedo(files, max_pixels, warnings)
        loaded["albedo"] = _normalize_albedo(albedo, mirror_mask, warnings)
        step()
    if "normals" in maps:
        loaded["normals"] = _read_normals(files, max_pixels, warnings)
        step()
    return loaded, tuple(warnings)


def with_maps(view: MirrorView, maps=DISPLAY_MAPS, **options) -> MirrorView:
    """``view`` with ``maps`` loaded too (see :func:`load_maps`, which takes ``options``);
    maps already there are kept as they are."""
    missing = [name for name in _checked_maps(maps) if getattr(view, name) is None]
    if not missing:
        return view
    loaded, warnings = load_maps(view.files, view.mirror_mask, missing, **options)
    return replace(view, **loaded, warnings=view.warnings + warnings)


def _checked_maps(maps) -> tuple[str, ...]:
    maps = tuple(maps)
    unknown = [name for name in maps if name not in _MAPS]
    if unknown:
        raise ValueError(f"maps must be among {_MAPS}, got {maps!r}")
    return maps


def _steps(total: int, progress, cancel, cancelled: str):
    """A function to call before each of ``total`` steps: checks ``cancel``, reports
    ``progress``."""
    done = iter(range(total))

    def step():
        if cancel is not None and cancel():
            raise Cancelled(cancelled)
        if progress is not None:
            progress(next(done), total)

    return step


def _read_albedo(files: ViewFiles, max_pixels: int, warnings: list) -> np.ndarray:
    """The albedo as read, (H, W) float32 (a colour albedo: its gray level)."""
    albedo = read_tiff(files.albedo, max_pixels=max_pixels)
    if albedo.ndim == 3:
        warnings.append(COLOUR_ALBEDO_WARNING)
    return _albedo_gray(albedo)


def _albedo_gray(albedo: np.ndarray) -> np.ndarray:
    """(h, W) float32 rows of an albedo as read, (h, W) or (h, W, 3): the channels' mean."""
    return albedo.mean(axis=2, dtype=np.float32) if albedo.ndim == 3 else albedo


def _normalize_albedo(albedo: np.ndarray, mirror: np.ndarray, warnings: list) -> np.ndarray:
    """``albedo`` min-max to [0, 1] over ``mirror``, in place (non-finite pixels: 0)."""
    if not np.isfinite(albedo).all():
        warnings.append(NONFINITE_ALBEDO_WARNING)
    return _normalize_albedo_inplace(albedo, mirror)


def _read_normals(files: ViewFiles, max_pixels: int, warnings: list) -> np.ndarray:
    """The unit normals, (H, W, 3) float32."""
    normals, invalid = _unit_normals_inplace(read_tiff(files.normals, max_pixels=max_pixels))
    warnings += _normal_warnings(invalid)
    return normals


def _normal_warnings(invalid: int) -> list[str]:
    if not invalid:
        return []
    return [f"normal map has {invalid} pixels without a direction: set to (0, 0, 1)"]


def _check_view_size(files: ViewFiles, shape: tuple[int, int], max_pixels: int) -> None:
    if _check_shapes(files, max_pixels) != shape:
        height, width = shape
        raise InputError(files.depth, f"the view is no longer {width} x {height} (W x H)")


def network_input(view: MirrorView, inputs=("depth",)) -> np.ndarray:
    """Stack a view's maps into the normalised tensor layout the networks take.

    Parameters
    ----------
    view : MirrorView
    inputs : sequence of {"depth", "albedo", "normals"}
        In channel order; "normals" gives three channels (x, y, z), encoded ``(n + 1) / 2``
        to match :data:`CHANNEL_STATS`.

    Returns
    -------
    image : ndarray of float32, shape (C, H, W)
        ``(value - mean) / std`` per channel.
    """
    inputs = tuple(inputs)
    unknown = [name for name in inputs if name not in INPUT_CHANNELS]
    if not inputs or unknown:
        raise ValueError(
            f"inputs must be a non-empty sequence of {tuple(INPUT_CHANNELS)}, got {inputs!r}"
        )
    missing = [name for name in inputs if getattr(view, name) is None]
    if missing:
        raise ValueError(f"the view's {missing} maps are not loaded (see views.with_maps)")
    channels = [channel for name in inputs for channel in INPUT_CHANNELS[name]]
    out = np.empty((len(channels), *view.shape), np.float32)
    index = 0
    for name in inputs:
        if name == "normals":
            for axis in range(3):
                np.add(view.normals[..., axis], 1, out=out[index + axis])
                out[index + axis] /= 2
        else:
            out[index] = getattr(view, name)
        index += len(INPUT_CHANNELS[name])
    for plane, channel in zip(out, channels, strict=True):
        mean, std = CHANNEL_STATS[channel]
        plane -= np.float32(mean)
        plane /= np.float32(std)
    return out
