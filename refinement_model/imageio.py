"""Safe reading and atomic writing of the TIFF and PNG files a mirror view consists of.

Every reader checks the file header before it allocates pixels (absurd dimensions and
compression bombs are refused by a pixel cap) and checks what the decoder returned, because
decoders may hand back empty or partial arrays for garbage without raising. Every problem is
one :class:`~refinement_model.errors.InputError` naming the file and the problem.

Writers are atomic: they write a temporary file in the target folder and move it into place
with :func:`os.replace`, so an interrupted write never leaves half a file under the real name.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import tifffile

from refinement_model.errors import InputError

#: Largest image, in pixels (height x width), any reader accepts by default: about twice a
#: full-resolution view (8964 x 6716 = 60.2 Mpx).
MAX_PIXELS = 128_000_000

#: Most channels (samples per pixel) an image may have.
MAX_CHANNELS = 4

#: Largest decoded TIFF, in bytes (a full-size float64 normal map is 1.4 GB).
MAX_BYTES = 2 * 2**30

#: Threads decoding a TIFF's segments (tifffile's default is half the cores).
_DECODE_WORKERS = os.cpu_count() or 1
#: Compressed bytes :func:`tiff_row_blocks` reads per pass: the decoded strips of one pass
#: are in memory together.
_STRIP_READ_BYTES = 1 << 24

# tifffile logs what it refuses to stderr as well; our InputError already says it once.
# (A NullHandler is the library idiom: an application's own logging still receives it.)
logging.getLogger("tifffile").addHandler(logging.NullHandler())

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# PNG colour type -> channels; bit depths allowed per colour type (PNG specification, IHDR).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_TIFF_DTYPES = (
    "uint8",
    "uint16",
    "uint32",
    "int8",
    "int16",
    "int32",
    "float16",
    "float32",
    "float64",
    "bool",
)
# TIFF ResolutionUnit code -> millimetres per unit (1 = no absolute unit).
_MM_PER_UNIT = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
_MASK_CHANNELS = ("alpha", "red", "any")


def _check_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if not path.is_file():
        raise InputError(path, "is not a regular file (a folder?)")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    return path


def _check_pixels(path, height: int, width: int, channels: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise InputError(path, f"image has no pixels (header says {height} x {width})")
    if height * width > max_pixels:
        raise InputError(
            path,
            f"image header declares {width} x {height} px = {height * width:,} px, more than "
            f"the limit of {max_pixels:,} px (absurd size or compression bomb)",
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise InputError(path, f"image has {channels} channels; 1 to {MAX_CHANNELS} supported")


def _tiff_image_page(tif: tifffile.TiffFile, path):
    """Return the one image page of ``tif``, refusing files with several full-size images."""
    pages = tif.pages
    if len(pages) == 0:
        raise InputError(path, "not a readable TIFF (no image in the file; garbage header?)")
    first = pages[0]
    for index in range(1, len(pages)):
        page = pages[index]
        # Reduced-resolution copies (thumbnails, pyramids) are fine; a second image is not.
        if not getattr(page, "subfiletype", 0) & 1:
            raise InputError(
                path,
                f"multi-page TIFF with {len(pages)} images is ambiguous: save one image per file",
            )
    return first


def _tiff_layout(page, path, max_pixels: int) -> tuple[int, int, int, bool]:
    """Height, width, channels and whether samples come first, checked from the header."""
    axes, shape = page.axes, page.shape
    if axes == "YX":
        height, width, channels, planar = *shape, 1, False
    elif axes == "YXS":
        height, width, channels, planar = *shape, False
    elif axes == "SYX":
        channels, height, width, planar = *shape, True
    else:
        raise InputError(path, f"unsupported TIFF layout {axes} {shape}: expected a 2-D image")
    _check_pixels(path, height, width, channels, max_pixels)
    if np.dtype(page.dtype).name not in _TIFF_DTYPES:
        raise InputError(path, f"unsupported TIFF sample type {page.dtype}")
    decoded = height * width * channels * np.dtype(page.dtype).itemsize
    if decoded > MAX_BYTES:
        raise InputError(
            path,
            f"decoded image would take {decoded / 2**30:.1f} GB, more than "
            f"the limit of {MAX_BYTES / 2**30:.0f} GB",
        )
    # tifffile fills missing data with zeros (a warning only): check the segments ourselves.
    ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=True)]
    # Uncompressed data is read by its declared size: the segments must hold all of it.
    short = (
        page.compression == 1
        and sum(page.databytecounts) < height * width * channels * page.bitspersample // 8
    )
    if not ends or max(ends) > Path(path).stat().st_size or 0 in page.databytecounts or short:
        raise InputError(path, "TIFF is truncated: image data missing or past the end of the file")
    return height, width, channels, planar


class _TiffErrors:
    """Context manager turning tifffile / imagecodecs failures into one InputError."""

    # imagecodecs' per-codec errors (DeflateError, LzwError, ...) are RuntimeErrors.
    _CAUGHT = (
        tifffile.TiffFileError,
        ValueError,
        OSError,
        RuntimeError,
        struct.error,
        zlib.error,
        IndexError,
        KeyError,
        TypeError,
        MemoryError,
    )

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is None or isinstance(error, InputError) or not isinstance(error, self._CAUGHT):
            return False
        raise InputError(self.path, f"not a readable TIFF ({kind.__name__}: {error})") from None


def image_shape(path, *, max_pixels: int = MAX_PIXELS) -> tuple[int, ...]:
    """Shape of the image in a PNG or TIFF file, from its header only (no pixels decoded).

    Parameters
    ----------
    path : str or os.PathLike
        PNG or TIFF file (recognised by its signature).
    max_pixels : int, optional
        Largest height x width accepted.

    Returns
    -------
    shape : tuple of int
        (H, W) for one channel, else (H, W, C), as the matching reader would return it
        (PNG gray + alpha reads as 4 channels).

    Raises
    ------
    InputError
        Missing or unreadable file, a header the readers would refuse.
    """
    path = _check_file(path)
    if _is_png(path):
        width, height, _, channels = _png_header(path, max_pixels)
        channels = 4 if channels == 2 else channels
    else:
        with _TiffErrors(path), tifffile.TiffFile(path) as tif:
            height, width, channels, _ = _tiff_layout(_tiff_image_page(tif, path), path, max_pixels)
    return (height, width) if channels == 1 else (height, width, channels)


def _read_tiff_native(path, max_pixels: int) -> np.ndarray:
    """Read the single image of a TIFF in its stored dtype, (H, W) or (H, W, C)."""
    path = _check_file(path)
    with _TiffErrors(path), tifffile.TiffFile(path) as tif:
        page = _tiff_image_page(tif, path)
        return _page_array(page, path, _tiff_layout(page, path, max_pixels))


def _page_array(page, path, layout: tuple[int, int, int, bool]) -> np.ndarray:
    """The whole image of ``page`` (laid out as ``_tiff_layout`` says), (H, W) or (H, W, C)."""
    height, width, channels, planar = layout
    data = page.asarray(maxworkers=_DECODE_WORKERS)
    if planar:
        data = np.moveaxis(data, 0, -1)
    expected = (height, width) if channels == 1 else (height, width, channels)
    if data.shape != expected:
        raise InputError(path, f"decoded TIFF has shape {data.shape}, header says {expected}")
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    return data


def tiff_row_blocks(path, *, rows: slice | None = None, max_pixels: int = MAX_PIXELS):
    """Decode the single image of a TIFF file strip by strip, as float32 blocks of rows.

    A full-size map is then never whole in memory as floats: the caller converts each block.

    Parameters
    ----------
    path : str or os.PathLike
        The TIFF file (as :func:`read_tiff` takes).
    rows : slice, optional
        Decode only the strips that hold one of these rows (e.g. ``slice(0, None, 7)`` for a
        strided sample); all by default.
    max_pixels : int, optional
        Largest height x width accepted, checked from the header before decoding.

    Yields
    ------
    (first_row, block) : int, ndarray of float32, shape (h, W) or (h, W, C)
        In row order, writable (the caller may convert in place). A file stored as one
        strip, as tiles or as separate colour planes comes as a single block of the whole
        image (read as :func:`read_tiff` reads it).

    Raises
    ------
    InputError
        As :func:`read_tiff`, when the generator reaches the problem.
    """
    path = _check_file(path)
    with _TiffErrors(path), tifffile.TiffFile(path) as tif:
        page = _tiff_image_page(tif, path)
        layout = _tiff_layout(page, path, max_pixels)
        height, width, channels, planar = layout
        strips = len(page.dataoffsets)
        if page.is_tiled or planar or strips == 1:
            yield 0, _page_array(page, path, layout).astype(np.float32, copy=False)
            return
        per_strip = page.rowsperstrip
        needed = -(-height // per_strip)
        if strips != needed:  # tifffile would leave rows it finds no strip for at zero
            raise InputError(
                path, f"TIFF has {strips} strips where {height} rows of {per_strip} need {needed}"
            )
        wanted = np.zeros(height, bool)
        wanted[slice(None) if rows is None else rows] = True
        indices = [i for i in range(strips) if wanted[i * per_strip : (i + 1) * per_strip].any()]
        segments = page.parent.filehandle.read_segments(
            [page.dataoffsets[i] for i in indices],
            [page.databytecounts[i] for i in indices],
            indices=indices,
            sort=False,
            buffersize=_STRIP_READ_BYTES,
            flat=False,
        )
        decode = page.decode
        with ThreadPoolExecutor(_DECODE_WORKERS) as executor:
            for chunk in segments:
                for data, (_, _, first, _, _), shape in executor.map(lambda s: decode(*s), chunk):
                    block = data.reshape(shape[1:3] if channels == 1 else shape[1:])
                    if block.shape[1] != width or first + len(block) > height:
                        raise InputError(
                            path, f"decoded strip at row {first} has shape {block.shape}"
                        )
                    # a decoder may hand back its read-only buffer
                    yield first, block.astype(np.float32, copy=not block.flags.writeable)


def read_tiff(path, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read the single image of a TIFF file as float32.

    Parameters
    ----------
    path : str or os.PathLike
        The TIFF file. Classic and BigTIFF, either byte order, uncompressed, zlib, LZW and
        other imagecodecs compressions, horizontal and floating-point predictors; samples of
        8/16/32-bit integers or 16/32/64-bit floats. Reduced-resolution sub-pages are ignored;
        several full images are refused.
    max_pixels : int, optional
        Largest height x width accepted, checked from the header before decoding.

    Returns
    -------
    image : ndarray of float32, shape (H, W) or (H, W, C)
        Sample values unchanged except for the conversion (integers are not rescaled).

    Raises
    ------
    InputError
        Missing, empty, garbage or truncated file, absurd or oversized dimensions, several
        images, unsupported layout or sample type.
    """
    data = _read_tiff_native(path, max_pixels)
    return data.astype(np.float32, copy=False)


def tiff_px_per_mm(path) -> float | None:
    """Pixels per millimetre from a TIFF's resolution tags.

    Parameters
    ----------
    path : str or os.PathLike
        The TIFF file.

    Returns
    -------
    px_per_mm : float or None
        From ``XResolution`` and ``ResolutionUnit`` (inch, centimetre, and tifffile's
        millimetre and micrometre codes). ``None`` when the tags are missing, the unit is
        "none" (no absolute scale) or the value is not positive.

    Raises
    ------
    InputError
        Missing or unreadable file.
    """
    path = _check_file(path)
    with _TiffErrors(path), tifffile.TiffFile(path) as tif:
        tags = _tiff_image_page(tif, path).tags
        resolution = tags.get("XResolution")
        unit = tags.get("ResolutionUnit")
        resolution = None if resolution is None else resolution.value
        unit = 2 if unit is None else int(unit.value)  # the TIFF default unit is the inch
    if resolution is None or unit not in _MM_PER_UNIT:
        return None
    numerator, denominator = (resolution, 1) if np.isscalar(resolution) else resolution
    if not denominator or numerator / denominator <= 0:
        return None
    return float(numerator / denominator / _MM_PER_UNIT[unit])


def _png_header(path, max_pixels: int) -> tuple[int, int, int, int]:
    """Width, height, bit depth and channels from the IHDR chunk, checked before decoding."""
    with open(path, "rb") as file:
        head = file.read(33)
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise InputError(path, "not a PNG file (bad signature or header)")
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    if colour not in _PNG_CHANNELS or depth not in _PNG_DEPTHS[colour]:
        raise InputError(path, f"invalid PNG header (bit depth {depth}, colour type {colour})")
    _check_pixels(path, height, width, _PNG_CHANNELS[colour], max_pixels)
    return width, height, depth, _PNG_CHANNELS[colour]


def _check_png_chunks(path, data: memoryview) -> None:
    """Walk the chunks to IEND checking lengths and CRCs (the decoder only warns on stderr)."""
    offset = len(_PNG_SIGNATURE)
    while offset + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        end = offset + 12 + length
        if end > len(data):
            break
        stored = struct.unpack(">I", data[end - 4 : end])[0]
        if zlib.crc32(data[offset + 4 : end - 4]) != stored:
            raise InputError(path, f"PNG is corrupt (bad checksum in a {kind!r} chunk)")
        if kind == b"IEND":
            return
        offset = end
    raise InputError(path, "PNG is truncated (no end chunk)")


def _decode_png(path: Path, max_pixels: int) -> np.ndarray:
    """Decode a PNG after checking its header; channels in OpenCV's BGR(A) order."""
    width, height, _, _ = _png_header(path, max_pixels)
    # Bytes + imdecode rather than imread: works with non-ASCII paths on every platform.
    data = np.fromfile(path, dtype=np.uint8)
    _check_png_chunks(path, memoryview(data))
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    del data
    if image is None or image.size == 0:
        raise InputError(path, "PNG image data is corrupt or truncated")
    if image.shape[:2] != (height, width):
        raise InputError(
            path,
            f"decoded PNG is {image.shape[1]} x {image.shape[0]}, header says {width} x {height}",
        )
    return image


def read_png(path, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read a PNG file, channels in RGB(A) order.

    Parameters
    ----------
    path : str or os.PathLike
        The PNG file. Gray, gray + alpha, RGB, RGBA and palette images of any bit depth.
    max_pixels : int, optional
        Largest height x width accepted, checked from the IHDR header before decoding.

    Returns
    -------
    image : ndarray of uint8 or uint16, shape (H, W) or (H, W, C)
        uint16 for 16-bit files, else uint8 (1/2/4-bit samples expanded to 0..255 by the
        decoder). C is 3 (RGB) or 4 (RGBA, also for gray + alpha).

    Raises
    ------
    InputError
        Missing, empty, garbage or truncated file, oversized dimensions.
    """
    image = _decode_png(_check_file(path), max_pixels)
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
        image = cv2.cvtColor(image, code)
    return image


def _is_png(path: Path) -> bool:
    with open(path, "rb") as file:
        head = file.read(8)
    if head == _PNG_SIGNATURE:
        return True
    if head[:4] in _TIFF_MAGICS:
        return False
    raise InputError(path, "neither a PNG nor a TIFF file (unknown signature)")


def read_binary_mask(
    path,
    *,
    channel: str = "alpha",
    shape=None,
    max_pixels: int = MAX_PIXELS,
    what: str = "the mask",
    shape_of: str = "the view",
) -> np.ndarray:
    """Read a mask image (PNG or TIFF) as a boolean array; nonzero = inside.

    Parameters
    ----------
    path : str or os.PathLike
        PNG or TIFF (recognised by its signature, not its name) with 1-, 8- or 16-bit integer
        samples.
    channel : {"alpha", "red", "any"}, optional
        "alpha": the alpha channel of a gray+alpha or RGBA image, else channel 0 (the
        ground-truth drawings convention); "red": channel 0; "any": nonzero in any channel.
    shape : tuple of int (H, W), optional
        Required size; a mask of another size is refused.
    max_pixels : int, optional
        Largest height x width accepted, checked from the header.
    what, shape_of : str, optional
        What the file is and what has ``shape`` (e.g. "the ground truth", "the depth map
        X_U.tif"), for the error messages.

    Returns
    -------
    mask : ndarray of bool, shape (H, W)

    Raises
    ------
    ValueError
        Unknown ``channel``.
    InputError
        Unreadable file, float samples or more than 16 bits, wrong size.
    """
    if channel not in _MASK_CHANNELS:
        raise ValueError(f"channel must be one of {_MASK_CHANNELS}, got {channel!r}")
    path = _check_file(path)
    # PNG channels stay in BGR(A) order: converting a full-size image would cost a copy.
    if _is_png(path):
        image = _decode_png(path, max_pixels)
        red = 2 if image.ndim == 3 else 0
    else:
        image, red = _read_tiff_native(path, max_pixels), 0
    if image.dtype.kind == "f" or image.dtype.itemsize > 2:
        raise InputError(
            path, f"{what} must have 1-, 8- or 16-bit integer samples, not {image.dtype}"
        )
    if shape is not None and image.shape[:2] != tuple(shape):
        raise InputError(
            path,
            f"{what} is {image.shape[0]} x {image.shape[1]} (H x W) while {shape_of} "
            f"is {shape[0]} x {shape[1]}",
        )
    if image.ndim == 2:
        return image != 0
    if channel == "any":
        return np.any(image != 0, axis=2)
    has_alpha = image.shape[2] in (2, 4)
    return image[..., -1 if channel == "alpha" and has_alpha else red] != 0


def file_sha256(path: str | os.PathLike, *, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path, write) -> None:
    """Write a file atomically: ``write`` fills a temporary file that then replaces ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; its folder must exist.
    write : callable(temporary_path)
        Writes the complete content to the given path (a hidden file in the same folder,
        so that :func:`os.replace` is atomic). If it raises, the temporary file is removed
        and ``path`` is left as it was.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"path: folder {path.parent} does not exist")
    temporary = path.with_name(f".{path.stem}.{secrets.token_hex(6)}.tmp{path.suffix}")
    # os.open with mode 0o666 honours the umask (mkstemp would leave the file private).
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_tiff(
    path, array, *, px_per_mm: float | None = None, compression: str | None = "zlib"
) -> None:
    """Write an array to a single-image TIFF file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; its folder must exist. Replaced if present.
    array : ndarray, shape (H, W) or (H, W, C) with C in 1..4
        Any integer, float or bool dtype. Three or four channels are stored as RGB(A).
    px_per_mm : float, optional
        Written as resolution tags (pixels per centimetre); :func:`tiff_px_per_mm` reads it back.
    compression : {"zlib", "lzw", None}, optional
        Lossless compression; with compression a predictor (horizontal for integers,
        floating-point for floats) is used.

    Raises
    ------
    ValueError
        Bad shape, dtype, ``px_per_mm`` or ``compression``.
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if (
        array.ndim not in (2, 3)
        or (array.ndim == 3 and array.shape[2] > MAX_CHANNELS)
        or 0 in array.shape
    ):
        raise ValueError(f"array must have shape (H, W) or (H, W, C<=4), got {array.shape}")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"array must be numeric, got dtype {array.dtype}")
    if compression not in ("zlib", "lzw", None):
        raise ValueError(f"compression must be 'zlib', 'lzw' or None, got {compression!r}")
    if px_per_mm is not None and not (np.isfinite(px_per_mm) and px_per_mm > 0):
        raise ValueError(f"px_per_mm must be a positive number, got {px_per_mm!r}")
    options = {"photometric": "rgb" if array.ndim == 3 else "minisblack"}
    if array.ndim == 3:
        options["planarconfig"] = "contig"
        if array.shape[2] == 4:
            options["extrasamples"] = ("unassalpha",)
        elif array.shape[2] == 2:
            options.update(photometric="minisblack", extrasamples=("unspecified",))
    if compression is not None:
        options.update(compression=compression, predictor=array.dtype.kind in "iuf")
    else:
        # Strips of about 256 KB as tifffile makes compressed ones: readable by rows.
        options["rowsperstrip"] = max(1, 2**18 // array[0].nbytes)
    if px_per_mm is not None:
        per_cm = float(px_per_mm) * 10.0
        options.update(resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")
    atomic_write(path, lambda target: tifffile.imwrite(target, array, **options))


def write_png(path, array) -> None:
    """Write an array to a PNG file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; its folder must exist. Replaced if present.
    array : ndarray of uint8, uint16 or bool, shape (H, W), (H, W, 3) or (H, W, 4)
        Gray, RGB or RGBA; bool is written as 0 / 255.

    Raises
    ------
    ValueError
        Bad shape or dtype.
    """
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * np.uint8(255)
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"array must be uint8, uint16 or bool, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))) or 0 in array.shape:
        raise ValueError(f"array must have shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    if array.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if array.shape[2] == 4 else cv2.COLOR_RGB2BGR
        array = cv2.cvtColor(np.ascontiguousarray(array), code)
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise ValueError(f"array of shape {array.shape} could not be encoded as PNG")
    atomic_write(path, encoded.tofile)
