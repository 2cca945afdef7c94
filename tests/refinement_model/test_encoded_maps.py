"""The display's maps decoded strip by strip equal the whole maps' conversion."""

import numpy as np
import pytest
import tifffile

from refinement_model import encoded_maps, preprocess
from refinement_model.encoded_maps import load_encoded_albedo, load_encoded_normals
from refinement_model.errors import Cancelled, InputError
from refinement_model.imageio import write_tiff
from refinement_model.views import load_maps, load_view
from tests.refinement_model.test_views import H, W, write_view


def _sample_step_three(monkeypatch):
    """Decide the encoding from every third row and column (a full-size view's step is 7)."""
    for module in (preprocess, encoded_maps):
        monkeypatch.setattr(module, "_encoding_sample_step", lambda shape: 3)


def _strip_normals(rng):
    """Raw normals with pixels of no direction, and the same as ``(n + 1) / 2`` codes except
    for negatives in rows the sample skips (they must not change the decision)."""
    normals = np.random.default_rng(rng).standard_normal((H, W, 3)).astype(np.float32)
    unit = normals / np.linalg.norm(normals, axis=2, keepdims=True)
    encoded = np.abs(unit) * np.float32(0.5) + np.float32(0.5)
    encoded[1::3, 6] = -0.2  # rows 1, 4, ...: outside the sample (rows, columns 0, 3, ...)
    for stored in (normals, encoded):
        stored[7, 8:12] = 0
        stored[30, 40] = np.nan
    return {"raw": normals, "encoded": encoded}


@pytest.mark.parametrize("rows_per_strip", [5, 3, H])
@pytest.mark.parametrize("kind", ["raw", "encoded"])
def test_normals_encoded_strip_by_strip_equal_the_whole_map_read(
    tmp_path, monkeypatch, rows_per_strip, kind
):
    _sample_step_three(monkeypatch)
    path = write_view(tmp_path) / "OBJ-1_R_N.tif"
    normals = _strip_normals(1)[kind]
    tifffile.imwrite(
        path, normals, photometric="rgb", compression="zlib", rowsperstrip=rows_per_strip
    )
    view = load_view(tmp_path, maps=("depth",))
    whole, warnings = load_maps(view.files, view.mirror_mask, ("normals",))
    blocks = []

    def encode(block):
        blocks.append(len(block))
        return block.copy()

    encoded, found = load_encoded_normals(view.files, view.shape, encode)
    assert preprocess._normal_encoding(normals) == (None if kind == "raw" else 1.0)
    assert sum(blocks) == H and set(blocks[:-1]) <= {rows_per_strip}
    assert encoded.dtype == np.float32 and encoded.tobytes() == whole["normals"].tobytes()
    assert found == warnings and "5 pixels without a direction" in found[0]
    halves = load_encoded_normals(
        view.files, view.shape, lambda block: (block[..., :2] * 2).astype(np.int8)
    )
    np.testing.assert_array_equal(halves[0], (whole["normals"][..., :2] * 2).astype(np.int8))


def test_normals_encoded_strip_by_strip_name_a_bad_file(tmp_path):
    maps = write_view(tmp_path)
    view = load_view(tmp_path, maps=("depth",))
    path = maps / "OBJ-1_R_N.tif"
    tifffile.imwrite(
        path, _strip_normals(2)["raw"], photometric="rgb", compression="zlib", rowsperstrip=4
    )
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match=r"OBJ-1_R_N\.tif: TIFF is truncated"):
        load_encoded_normals(view.files, view.shape, np.copy)
    tifffile.imwrite(path, np.zeros((H, W, 4), np.float32), photometric="rgb", rowsperstrip=4)
    with pytest.raises(InputError, match=r"OBJ-1_R_N\.tif: normal map must have 3 channels"):
        load_encoded_normals(view.files, view.shape, np.copy)
    write_tiff(path, _strip_normals(2)["raw"])
    with pytest.raises(InputError, match=f"OBJ-1_R_U.tif: the view is no longer {W + 1} x {H}"):
        load_encoded_normals(view.files, (H, W + 1), np.copy)
    with pytest.raises(Cancelled):
        load_encoded_normals(view.files, view.shape, np.copy, cancel=lambda: True)


def _strip_albedo(rng, channels=1):
    """An albedo with values outside the mirror area beyond its range (clipped), NaN and
    infinite pixels inside and outside it."""
    shape = (H, W) if channels == 1 else (H, W, channels)
    albedo = np.random.default_rng(rng).uniform(0.1, 0.6, shape).astype(np.float32)
    albedo[:3] = 5.0  # outside the disc of write_view's mask
    albedo[0, :2] = -3.0
    albedo[24, 30] = np.nan
    albedo[25, 31] = np.inf
    albedo[1, 1] = np.nan
    return albedo


@pytest.mark.parametrize("rows_per_strip", [5, 3, H])
@pytest.mark.parametrize("channels", [1, 3])
def test_albedo_encoded_strip_by_strip_equals_the_whole_map_read(
    tmp_path, rows_per_strip, channels
):
    path = write_view(tmp_path) / "OBJ-1_R_RHO.tif"
    albedo = _strip_albedo(3, channels)
    tifffile.imwrite(
        path,
        albedo,
        photometric="minisblack" if channels == 1 else "rgb",
        compression="zlib",
        rowsperstrip=rows_per_strip,
    )
    view = load_view(tmp_path, maps=("depth",))
    whole, warnings = load_maps(view.files, view.mirror_mask, ("albedo",))
    samples, blocks = [], []

    def encoder(sample):
        samples.append(sample)

        def encode(block):
            blocks.append(len(block))
            return block.copy()

        return encode

    encoded, found = load_encoded_albedo(view.files, view.mirror_mask, encoder, sample_step=3)
    assert sum(blocks) == H and set(blocks[:-1]) <= {rows_per_strip}
    assert encoded.dtype == np.float32 and encoded.tobytes() == whole["albedo"].tobytes()
    (sample,) = samples
    assert sample.tobytes() == np.ascontiguousarray(whole["albedo"][::3, ::3]).tobytes()
    assert 0 < np.count_nonzero(whole["albedo"] == 1) < H * W / 4  # the range is the disc's
    assert found == warnings and found[-1] == "albedo has NaN/infinite pixels: set to 0"
    assert len(found) == (1 if channels == 1 else 2)
    halves = load_encoded_albedo(
        view.files,
        view.mirror_mask,
        lambda sample: lambda block: (block * 2 + sample.max()).astype(np.int8),
        sample_step=3,
    )
    np.testing.assert_array_equal(halves[0], (whole["albedo"] * 2 + 1).astype(np.int8))


def test_albedo_of_a_flat_mirror_area_encodes_zeros(tmp_path):
    maps = write_view(tmp_path)
    view = load_view(tmp_path, maps=("depth",))
    tifffile.imwrite(maps / "OBJ-1_R_RHO.tif", np.full((H, W), 0.3, np.float32), rowsperstrip=4)
    encoded, found = load_encoded_albedo(
        view.files, view.mirror_mask, lambda sample: np.copy, sample_step=7
    )
    assert found == () and encoded.tobytes() == np.zeros((H, W), np.float32).tobytes()


def test_albedo_encoded_strip_by_strip_names_a_bad_file(tmp_path):
    maps = write_view(tmp_path)
    view = load_view(tmp_path, maps=("depth",))
    path = maps / "OBJ-1_R_RHO.tif"
    tifffile.imwrite(path, _strip_albedo(5), compression="zlib", rowsperstrip=4)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match=r"OBJ-1_R_RHO\.tif: TIFF is truncated"):
        load_encoded_albedo(view.files, view.mirror_mask, lambda s: np.copy, sample_step=7)
    tifffile.imwrite(path, _strip_albedo(5), compression="zlib", rowsperstrip=4)
    with pytest.raises(InputError, match=f"OBJ-1_R_U.tif: the view is no longer {W + 1} x {H}"):
        load_encoded_albedo(view.files, np.ones((H, W + 1), bool), lambda s: np.copy, sample_step=7)
    with pytest.raises(Cancelled, match="reading OBJ-1_R_RHO.tif was cancelled"):
        load_encoded_albedo(
            view.files, view.mirror_mask, lambda s: np.copy, sample_step=7, cancel=lambda: True
        )
