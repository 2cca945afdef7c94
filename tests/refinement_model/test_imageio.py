import os
import struct

import numpy as np
import pytest
import tifffile

from refinement_model.errors import InputError
from refinement_model.imageio import (
    image_shape,
    read_binary_mask,
    read_png,
    read_tiff,
    tiff_px_per_mm,
    tiff_row_blocks,
    write_png,
    write_tiff,
)


def _ramp(shape, dtype="float32"):
    return (np.arange(np.prod(shape)).reshape(shape) % 251).astype(dtype)


def _patch_tag(path, name, value):
    """Overwrite a SHORT/LONG tag value in place (crafts headers no writer would produce)."""
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags[name]
        offset, code, order = tag.valueoffset, tag.dtype, tif.byteorder
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(struct.pack(order + ("H" if code == 3 else "I"), value))


def _problem(error_info):
    return str(error_info.value)


# ---- TIFF round trips and variants -------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "uint8", "uint16", "int16"])
def test_tiff_dtypes_load_as_float32(tmp_path, dtype):
    array = _ramp((5, 7), dtype)
    path = tmp_path / "a.tif"
    write_tiff(path, array)
    out = read_tiff(path)
    assert out.dtype == np.float32 and out.shape == (5, 7)
    np.testing.assert_array_equal(out, array.astype(np.float32))


@pytest.mark.parametrize(
    "options",
    [
        {"bigtiff": True},
        {"byteorder": ">"},
        {"compression": "lzw"},
        {"compression": "zlib", "predictor": 3},
        {"compression": "lzw", "predictor": 3, "byteorder": ">"},
        {"compression": "zlib", "tile": (16, 16)},
    ],
)
def test_tiff_variants_load(tmp_path, options):
    array = np.random.default_rng(0).random((20, 24, 3)).astype(np.float32)
    path = tmp_path / "v.tif"
    tifffile.imwrite(path, array, photometric="rgb", **options)
    out = read_tiff(path)
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_tiff_planar_separate_becomes_channels_last(tmp_path):
    array = _ramp((3, 4, 5))
    path = tmp_path / "p.tif"
    tifffile.imwrite(path, array, photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_tiff(path), np.moveaxis(array, 0, -1))
    assert image_shape(path) == (4, 5, 3)


def test_write_tiff_rgb_and_lzw(tmp_path):
    array = _ramp((6, 5, 3), "uint16")
    write_tiff(tmp_path / "c.tif", array, compression="lzw")
    write_tiff(tmp_path / "u.tif", array, compression=None)
    for name in ("c.tif", "u.tif"):
        np.testing.assert_array_equal(read_tiff(tmp_path / name), array)


def _strips(path):
    with tifffile.TiffFile(path) as tif:
        return len(tif.pages[0].dataoffsets)


@pytest.mark.parametrize(
    ("options", "strips"),
    [
        ({"compression": "zlib", "rowsperstrip": 5}, 9),
        ({"rowsperstrip": 7}, 7),
        ({"compression": "zlib"}, 1),
        ({"tile": (16, 16)}, None),
        ({"planarconfig": "separate"}, None),
    ],
)
def test_row_blocks_assemble_the_image_read_whole(tmp_path, options, strips):
    path = tmp_path / "s.tif"
    image = _ramp((43, 20, 3), "uint16")
    planes = options.get("planarconfig") == "separate"
    tifffile.imwrite(
        path, np.moveaxis(image, -1, 0) if planes else image, photometric="rgb", **options
    )
    if strips is not None:
        assert _strips(path) == strips
    blocks = list(tiff_row_blocks(path))
    assert all(block.dtype == np.float32 for _, block in blocks)
    assert [first for first, _ in blocks] == list(range(0, 43, len(blocks[0][1])))
    assert len(blocks) == (strips or 1)
    assembled = np.concatenate([block for _, block in blocks])
    np.testing.assert_array_equal(assembled, image)


def test_row_blocks_of_chosen_rows_decode_only_their_strips(tmp_path):
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, _ramp((40, 8)), compression="zlib", rowsperstrip=4)
    blocks = dict(tiff_row_blocks(path, rows=slice(1, 40, 12)))  # rows 1, 13, 25, 37
    assert sorted(blocks) == [0, 12, 24, 36]
    np.testing.assert_array_equal(blocks[12], read_tiff(path)[12:16])


def test_row_blocks_of_a_bad_strip_name_the_file(tmp_path):
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, _ramp((40, 8)), compression="zlib", rowsperstrip=4)
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages[0].dataoffsets[5]
    with open(path, "r+b") as file:  # garbage in the middle of the sixth strip's stream
        file.seek(offset)
        file.write(b"\xff" * 8)
    blocks = tiff_row_blocks(path)
    assert next(blocks)[0] == 0  # the strips before it decode
    with pytest.raises(InputError, match=r"s\.tif: not a readable TIFF"):
        list(blocks)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(InputError, match=r"s\.tif: TIFF is truncated"):
        next(tiff_row_blocks(path))
    tifffile.imwrite(path, _ramp((40, 8)), compression="zlib", rowsperstrip=4)
    _patch_tag(path, "RowsPerStrip", 2)
    with pytest.raises(InputError, match=r"s\.tif: TIFF has 10 strips where 40 rows of 2 need 20"):
        next(tiff_row_blocks(path))


def test_uncompressed_tiff_is_written_in_strips(tmp_path):
    path = tmp_path / "u.tif"
    image = _ramp((300, 500, 3))  # 6000 bytes a row: 43 rows of 256 KB a strip
    write_tiff(path, image, compression=None)
    assert _strips(path) == 7
    np.testing.assert_array_equal(read_tiff(path), image)


def test_write_tiff_is_atomic_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.tif"
    write_tiff(path, np.ones((3, 3), np.float32))
    write_tiff(path, np.zeros((3, 3), np.float32))
    assert os.listdir(tmp_path) == ["a.tif"]
    assert read_tiff(path).sum() == 0


def test_write_tiff_validates_arguments(tmp_path):
    with pytest.raises(ValueError, match="array"):
        write_tiff(tmp_path / "a.tif", np.zeros((2, 2, 5)))
    with pytest.raises(ValueError, match="compression"):
        write_tiff(tmp_path / "a.tif", np.zeros((2, 2)), compression="jpeg")
    with pytest.raises(ValueError, match="px_per_mm"):
        write_tiff(tmp_path / "a.tif", np.zeros((2, 2)), px_per_mm=-1)
    assert os.listdir(tmp_path) == []


# ---- resolution --------------------------------------------------------------------------


def test_px_per_mm_round_trip(tmp_path):
    path = tmp_path / "r.tif"
    write_tiff(path, np.zeros((2, 2), np.float32), px_per_mm=41.7)
    assert tiff_px_per_mm(path) == pytest.approx(41.7, rel=1e-6)


@pytest.mark.parametrize(
    "unit, value, expected",
    [
        ("INCH", 1016.0, 40.0),
        ("CENTIMETER", 400.0, 40.0),
        ("MILLIMETER", 40.0, 40.0),
        ("NONE", 40.0, None),
    ],
)
def test_px_per_mm_units(tmp_path, unit, value, expected):
    path = tmp_path / "r.tif"
    tifffile.imwrite(
        path, np.zeros((2, 2), np.float32), resolution=(value, value), resolutionunit=unit
    )
    assert tiff_px_per_mm(path) == (None if expected is None else pytest.approx(expected))


def test_px_per_mm_without_absolute_unit_is_none(tmp_path):
    path = tmp_path / "r.tif"
    tifffile.imwrite(path, np.zeros((2, 2), np.float32))  # tifffile writes 1 px per "no unit"
    assert tiff_px_per_mm(path) is None


# ---- bad TIFFs ---------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found") as info:
        read_tiff(tmp_path / "none.tif")
    assert info.value.path.endswith("none.tif")


def test_folder_and_empty_file(tmp_path):
    with pytest.raises(InputError, match="not a regular file"):
        read_tiff(tmp_path)
    (tmp_path / "e.tif").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_tiff(tmp_path / "e.tif")


def test_garbage_tiff(tmp_path, capfd):
    path = tmp_path / "g.tif"
    path.write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    with pytest.raises(InputError, match="not a readable TIFF") as info:
        read_tiff(path)
    assert info.value.path == str(path)
    assert capfd.readouterr().err == ""  # one message (the error), no tifffile log line


def test_decoded_size_cap(tmp_path):
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.float64))
    _patch_tag(path, "ImageWidth", 20_000)
    _patch_tag(path, "ImageLength", 15_000)
    with pytest.raises(InputError, match="2.2 GB"):
        read_tiff(path, max_pixels=10**9)


def test_uncompressed_data_shorter_than_declared(tmp_path):
    path = tmp_path / "short.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.float32))
    _patch_tag(path, "ImageWidth", 2000)
    with pytest.raises(InputError, match="truncated"):
        read_tiff(path)


def test_not_an_image_at_all(tmp_path):
    path = tmp_path / "t.tif"
    path.write_text("hello, I am text")
    with pytest.raises(InputError, match="not a readable TIFF"):
        read_tiff(path)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_tiff(tmp_path, keep):
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, _ramp((64, 64)), compression="zlib")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputError, match="TIFF"):
        read_tiff(path)


def test_absurd_dimensions_refused_from_header(tmp_path):
    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint8))
    _patch_tag(path, "ImageWidth", 3_000_000)
    _patch_tag(path, "ImageLength", 3_000_000)
    with pytest.raises(InputError, match="limit") as info:
        read_tiff(path)
    assert "3000000 x 3000000" in _problem(info)
    with pytest.raises(InputError, match="limit"):
        image_shape(path)


def test_compression_bomb_pixel_cap(tmp_path):
    path = tmp_path / "bomb.tif"
    tifffile.imwrite(path, np.zeros((400, 400), np.uint8), compression="zlib")
    assert path.stat().st_size < 2000
    with pytest.raises(InputError, match="compression bomb"):
        read_tiff(path, max_pixels=100_000)
    assert read_tiff(path, max_pixels=160_000).shape == (400, 400)


def test_multi_page_refused(tmp_path):
    path = tmp_path / "m.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(np.zeros((4, 4), np.float32))
        tif.write(np.ones((4, 4), np.float32))
    with pytest.raises(InputError, match="multi-page"):
        read_tiff(path)


def test_reduced_resolution_subpage_is_ignored(tmp_path):
    path = tmp_path / "pyr.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(np.full((8, 8), 3, np.float32))
        tif.write(np.zeros((4, 4), np.float32), subfiletype=1)
    np.testing.assert_array_equal(read_tiff(path), np.full((8, 8), 3, np.float32))


def test_five_channels_refused(tmp_path):
    path = tmp_path / "c5.tif"
    tifffile.imwrite(
        path, np.zeros((4, 4, 5), np.uint8), photometric="minisblack", planarconfig="contig"
    )
    with pytest.raises(InputError, match="channels"):
        read_tiff(path)


# ---- PNG ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((5, 6), "uint8"),
        ((5, 6), "uint16"),
        ((5, 6, 3), "uint8"),
        ((5, 6, 4), "uint8"),
        ((5, 6, 4), "uint16"),
    ],
)
def test_png_round_trip_rgb_order(tmp_path, shape, dtype):
    array = _ramp(shape, dtype)
    path = tmp_path / "a.png"
    write_png(path, array)
    out = read_png(path)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, array)
    assert image_shape(path) == shape


def test_write_png_bool_and_bad_dtype(tmp_path):
    mask = np.eye(4, dtype=bool)
    write_png(tmp_path / "m.png", mask)
    np.testing.assert_array_equal(read_png(tmp_path / "m.png"), mask * np.uint8(255))
    with pytest.raises(ValueError, match="uint8"):
        write_png(tmp_path / "f.png", np.zeros((2, 2), np.float32))


def test_png_garbage_truncated_and_corrupt(tmp_path, capfd):
    path = tmp_path / "a.png"
    write_png(path, np.random.default_rng(1).integers(0, 255, (50, 50, 3), dtype=np.uint8))
    data = path.read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        read_png(tmp_path / "t.png")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (tmp_path / "c.png").write_bytes(bytes(flipped))
    with pytest.raises(InputError, match="bad checksum"):
        read_png(tmp_path / "c.png")
    assert capfd.readouterr().err == ""  # refused before the decoder could print warnings
    (tmp_path / "g.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(InputError, match="not a PNG"):
        read_png(tmp_path / "g.png")


def test_png_absurd_header_refused_before_decoding(tmp_path):
    path = tmp_path / "a.png"
    write_png(path, np.zeros((4, 4), np.uint8))
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 200_000, 200_000)
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="200000 x 200000"):
        read_png(path)


def test_png_pixel_cap(tmp_path):
    path = tmp_path / "z.png"
    write_png(path, np.zeros((300, 300), np.uint8))
    with pytest.raises(InputError, match="limit"):
        read_png(path, max_pixels=50_000)


# ---- masks -------------------------------------------------------------------------------


def test_mask_alpha_red_any_and_fallback(tmp_path):
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[0, 0, 3] = 255  # alpha only
    rgba[1, 1, 0] = 9  # red only
    rgba[2, 2, 2] = 1  # blue only
    write_png(tmp_path / "a.png", rgba)
    alpha = read_binary_mask(tmp_path / "a.png")
    red = read_binary_mask(tmp_path / "a.png", channel="red")
    anyc = read_binary_mask(tmp_path / "a.png", channel="any")
    assert alpha.dtype == bool and alpha.shape == (3, 4)
    assert np.argwhere(alpha).tolist() == [[0, 0]]
    assert np.argwhere(red).tolist() == [[1, 1]]
    assert np.argwhere(anyc).tolist() == [[0, 0], [1, 1], [2, 2]]
    # No alpha channel: "alpha" falls back to channel 0.
    write_png(tmp_path / "rgb.png", rgba[..., :3])
    assert np.argwhere(read_binary_mask(tmp_path / "rgb.png")).tolist() == [[1, 1]]


def test_mask_from_tiff_and_signature_not_name(tmp_path):
    mask = np.eye(3, dtype=np.uint8)
    write_tiff(tmp_path / "m.png", mask)  # a TIFF under a misleading name
    np.testing.assert_array_equal(read_binary_mask(tmp_path / "m.png"), mask.astype(bool))


def test_mask_wrong_size_and_bit_depth(tmp_path):
    write_png(tmp_path / "m.png", np.zeros((3, 4), np.uint8))
    with pytest.raises(InputError, match="3 x 4 .* 5 x 4"):
        read_binary_mask(tmp_path / "m.png", shape=(5, 4))
    write_tiff(tmp_path / "f.tif", np.zeros((3, 4), np.float32))
    with pytest.raises(InputError, match="integer"):
        read_binary_mask(tmp_path / "f.tif")
    (tmp_path / "x.bin").write_bytes(b"BM not an image")
    with pytest.raises(InputError, match="neither a PNG nor a TIFF"):
        read_binary_mask(tmp_path / "x.bin")
    with pytest.raises(ValueError, match="channel"):
        read_binary_mask(tmp_path / "m.png", channel="green")


def test_png_gray_alpha_one_bit_and_palette(tmp_path):
    from PIL import Image  # a matplotlib dependency; cv2 cannot write these formats

    gray_alpha = np.zeros((3, 4, 2), np.uint8)
    gray_alpha[0, 0, 0], gray_alpha[1, 2, 1] = 77, 255
    Image.fromarray(gray_alpha, "LA").save(tmp_path / "la.png")
    assert read_png(tmp_path / "la.png")[0, 0].tolist() == [77, 77, 77, 0]
    assert image_shape(tmp_path / "la.png") == (3, 4, 4)
    assert np.argwhere(read_binary_mask(tmp_path / "la.png")).tolist() == [[1, 2]]
    Image.fromarray(np.eye(3, dtype=bool)).save(tmp_path / "one.png")
    np.testing.assert_array_equal(read_png(tmp_path / "one.png"), np.eye(3) * 255)
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4), "P").save(tmp_path / "p.png")
    assert read_png(tmp_path / "p.png").shape == image_shape(tmp_path / "p.png") == (3, 4, 3)
