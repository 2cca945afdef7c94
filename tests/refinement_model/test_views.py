import numpy as np
import pytest
from scipy import ndimage

from refinement_model.errors import Cancelled, InputError
from refinement_model.imageio import write_png, write_tiff
from refinement_model.preprocess import (
    estimate_mirror_mask,
    gaussian_blur,
    masked_stats,
    normalize_albedo,
    preprocess_depth,
    unit_normals,
)
from refinement_model.views import (
    CHANNEL_STATS,
    MASK_ESTIMATED_WARNING,
    find_views,
    find_views_in,
    load_maps,
    load_view,
    network_input,
    with_maps,
)

H, W = 48, 64


def _disc(shape=(H, W), radius=20):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2 < radius**2


def _maps(rng):
    disc = _disc()
    depth = (np.random.default_rng(rng).standard_normal((H, W)) * 0.01).astype(np.float32)
    depth[20, 10:50] -= 0.5  # an engraved line
    albedo = np.where(disc, 0.4, 0.05).astype(np.float32)
    normals = np.zeros((H, W, 3), np.float32)
    normals[..., 0], normals[..., 2] = 0.6, 0.8
    lines = np.zeros((H, W), bool)
    lines[20, 10:50] = True
    return depth, albedo, normals, lines, disc


def write_view(
    root, view_id="OBJ-1_R", *, plain=False, gt=True, mask=True, alpha=True, px_per_mm=4.0, rng=0
):
    """Write a small view in the real layout (or a plain folder); returns the map folder."""
    depth, albedo, normals, lines, disc = _maps(rng)
    maps = root / view_id if plain else root / view_id.rsplit("_", 1)[0] / "PS"
    maps.mkdir(parents=True, exist_ok=True)
    write_tiff(maps / f"{view_id}_U.tif", depth, px_per_mm=px_per_mm)
    write_tiff(maps / f"{view_id}_RHO.tif", albedo, px_per_mm=px_per_mm)
    write_tiff(maps / f"{view_id}_N.tif", normals, px_per_mm=px_per_mm)
    gt_dir, mask_dir = (maps, maps) if plain else (root / "drawings", root / "masks")
    gt_dir.mkdir(exist_ok=True)
    mask_dir.mkdir(exist_ok=True)
    if gt:
        rgba = np.zeros((H, W, 4 if alpha else 3), np.uint8)
        rgba[..., 1] = 200  # colour everywhere: only the alpha channel marks the lines
        rgba[..., -1 if alpha else 0] = lines * 255
        write_png(gt_dir / f"{view_id}_drawings.png", rgba)
    if mask:
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[..., 0] = disc * 255
        rgb[..., 2] = 255  # blue everywhere: only red counts
        write_png(mask_dir / f"{view_id}_mask.png", rgb)
    return maps


# ---- preprocessing -----------------------------------------------------------------------


def test_masked_stats_exact():
    image = np.array([[1.0, 2.0], [3.0, np.nan]], np.float32)
    mask = np.array([[True, True], [True, True]])
    assert masked_stats(image, mask) == pytest.approx((2.0, np.sqrt(2 / 3), 1.0, 3.0))
    assert masked_stats(image, np.array([[False, True], [False, False]])) == (2, 0, 2, 2)
    assert np.isnan(masked_stats(image, np.zeros((2, 2), bool))[0])


@pytest.mark.parametrize("sigma", [3.0, 12.0, 25.0])
def test_gaussian_blur_matches_scipy(sigma):
    # Tolerance: 0.5 % of the value range (the downsampled blur is an approximation).
    smooth = ndimage.gaussian_filter(np.random.default_rng(1).standard_normal((150, 200)), 4)
    yy, xx = np.mgrid[:150, :200]
    image = (smooth + ((yy - 70) ** 2 + (xx - 90) ** 2 < 50**2)).astype(np.float32)
    exact = ndimage.gaussian_filter(image.astype(np.float64), sigma, mode="reflect")
    fast = gaussian_blur(image, sigma)
    assert fast.dtype == np.float32 and fast.shape == image.shape
    assert np.abs(fast - exact).max() < 0.005 * np.ptp(image)


def test_preprocess_depth_values():
    depth = np.zeros((9, 9))
    depth[4, 4] = 1.0
    before = depth.copy()
    out = preprocess_depth(depth, px_per_mm=1.0)
    np.testing.assert_array_equal(depth, before)
    assert out.dtype == np.float32 and out.min() == 0 and out.max() == 1
    assert out[4, 4] == 1 and np.unravel_index(out.argmin(), out.shape) != (4, 4)
    # A flat map has no relief: all zeros, not rounding noise stretched to [0, 1].
    assert np.all(preprocess_depth(np.full((6, 6), 7.0), px_per_mm=2) == 0)


def test_preprocess_depth_clips_three_sigma_and_uses_the_mask():
    rng = np.random.default_rng(2)
    depth = rng.standard_normal((64, 64)).astype(np.float32)
    depth[10, 10] = 100.0  # a spike far beyond 3 sigma
    out = preprocess_depth(depth, px_per_mm=2.0)
    hp = depth - ndimage.gaussian_filter(depth, 2.0, mode="reflect")
    z = (hp - hp.mean()) / hp.std()
    assert out[10, 10] == 1.0 and z[10, 10] > 3
    # Outside the mask nothing enters the statistics: values there are only clipped.
    mask = np.zeros((64, 64), bool)
    mask[32:, :] = True
    masked = preprocess_depth(depth, px_per_mm=2.0, mask=mask)
    assert masked[mask].min() == 0 and masked[mask].max() == 1
    assert masked[10, 10] == 1.0


def test_preprocess_depth_nonfinite_filled_not_zeroed():
    depth = np.random.default_rng(3).standard_normal((20, 20))
    depth[5, 5] = np.nan
    out = preprocess_depth(depth, px_per_mm=1.0, mask=np.isfinite(depth))
    assert np.isfinite(out).all() and 0 < out[5, 5] < 1


def test_normalize_albedo_and_unit_normals():
    albedo = np.array([[2.0, 4.0], [6.0, np.inf]])
    np.testing.assert_allclose(normalize_albedo(albedo), [[0, 0.5], [1, 0]])
    inside = np.array([[False, True], [True, False]])
    np.testing.assert_allclose(normalize_albedo(albedo, mask=inside), [[0, 0], [1, 0]])
    raw = np.array([[[3.0, 0, 4], [0, 0, 0]], [[np.nan, 0, 1], [-1, 0, 0]]], np.float32)
    unit, invalid = unit_normals(raw)
    np.testing.assert_allclose(unit, [[[0.6, 0, 0.8], [0, 0, 1]], [[0, 0, 1], [-1, 0, 0]]])
    assert invalid == 2 and raw[0, 0, 0] == 3
    encoded = np.array([[[255, 127.5, 127.5], [127.5, 127.5, 255]]], np.float32)
    np.testing.assert_allclose(unit_normals(encoded)[0], [[[1, 0, 0], [0, 0, 1]]], atol=1e-6)


def test_estimate_mirror_mask_finds_a_disc_on_dark_and_bright_background():
    disc = _disc((120, 160), 45)
    for inside, outside in ((0.5, 0.1), (0.1, 0.6)):
        noise = np.random.default_rng(4).normal(0, 0.02, disc.shape)
        albedo = np.where(disc, inside, outside) + noise
        estimate = estimate_mirror_mask(albedo, work_size=64)
        assert estimate.shape == disc.shape
        assert (estimate ^ disc).mean() < 0.03


# ---- finding and loading views -----------------------------------------------------------


def test_load_real_layout(tmp_path):
    write_view(tmp_path)
    views = find_views(tmp_path)
    assert [v.view_id for v in views] == ["OBJ-1_R"]
    assert views[0].drawings == tmp_path / "drawings" / "OBJ-1_R_drawings.png"
    view = load_view(tmp_path)
    depth, albedo, normals, lines, disc = _maps(0)
    assert view.view_id == "OBJ-1_R" and view.shape == (H, W)
    assert view.px_per_mm == pytest.approx(4.0)
    np.testing.assert_array_equal(view.ground_truth, lines)
    np.testing.assert_array_equal(view.mirror_mask, disc)
    assert not view.mask_estimated and view.warnings == ()
    assert view.depth.dtype == np.float32 and view.depth[disc].min() == 0
    assert view.depth[disc].max() == 1
    np.testing.assert_allclose(view.depth, preprocess_depth(depth, px_per_mm=4, mask=disc))
    np.testing.assert_allclose(view.albedo[disc], 0.0)  # constant inside -> zeros
    np.testing.assert_allclose(view.normals[3, 3], [0.6, 0, 0.8], rtol=1e-6)


@pytest.mark.parametrize("which", ["_N.tif", "_U.tif", "_drawings.png", "_mask.png"])
def test_load_from_any_file_of_the_view(tmp_path, which):
    write_view(tmp_path)
    write_view(tmp_path, "OBJ-2_V", rng=1)
    folder = {"_drawings.png": "drawings", "_mask.png": "masks"}.get(which, "OBJ-1/PS")
    view = load_view(tmp_path / folder / f"OBJ-1_R{which}")
    assert view.view_id == "OBJ-1_R" and view.ground_truth is not None
    assert not view.mask_estimated


@pytest.mark.parametrize(
    "given",
    [
        "ROOT",
        "OBJ-1",
        "OBJ-1/PS",
        "OBJ-1/PS/OBJ-1_R_U.tif",
        "OBJ-1/PS/OBJ-1_R_RHO.tif",
        "drawings/OBJ-1_R_drawings.png",
        "masks/OBJ-1_R_mask.png",
    ],
)
def test_every_form_of_a_view_finds_its_ground_truth_and_mask(tmp_path, given):
    write_view(tmp_path)
    path = tmp_path if given == "ROOT" else tmp_path / given
    (files,) = find_views(path)
    assert files.view_id == "OBJ-1_R"
    assert files.depth == tmp_path / "OBJ-1" / "PS" / "OBJ-1_R_U.tif"
    assert files.drawings == tmp_path / "drawings" / "OBJ-1_R_drawings.png"
    assert files.mask == tmp_path / "masks" / "OBJ-1_R_mask.png"
    view = load_view(path)
    np.testing.assert_array_equal(view.ground_truth, _maps(0)[3])
    assert not view.mask_estimated


def test_a_view_folder_names_only_its_own_views(tmp_path):
    write_view(tmp_path)
    write_view(tmp_path, "OBJ-2_V", rng=1)
    assert [v.view_id for v in find_views(tmp_path)] == ["OBJ-1_R", "OBJ-2_V"]
    (files,) = find_views(tmp_path / "OBJ-2" / "PS")
    assert files.view_id == "OBJ-2_V"
    assert files.drawings == tmp_path / "drawings" / "OBJ-2_V_drawings.png"
    assert load_view(tmp_path / "OBJ-2" / "PS").view_id == "OBJ-2_V"
    # Several paths naming one view give it once; a path without a view is named.
    assert find_views_in([tmp_path / "OBJ-2" / "PS", tmp_path]) == [files, find_views(tmp_path)[0]]
    with pytest.raises(InputError, match="drawings: no view found here"):
        find_views_in([tmp_path, tmp_path / "drawings"])


def test_a_file_that_is_no_view_file_is_named(tmp_path):
    write_view(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="notes.txt: not a view file"):
        find_views(tmp_path / "notes.txt")


def test_several_views_need_an_id(tmp_path):
    write_view(tmp_path, "B-1_V", rng=1)
    write_view(tmp_path, "A-1_R")
    assert [v.view_id for v in find_views(tmp_path)] == ["A-1_R", "B-1_V"]
    with pytest.raises(InputError, match="2 views found"):
        load_view(tmp_path)
    assert load_view(tmp_path, "B-1_V").view_id == "B-1_V"
    with pytest.raises(InputError, match="no files of view C-1_R"):
        load_view(tmp_path, "C-1_R")


def test_plain_folder_and_gt_channel0_fallback(tmp_path):
    folder = write_view(tmp_path, plain=True, alpha=False)
    view = load_view(folder)
    np.testing.assert_array_equal(view.ground_truth, _maps(0)[3])


def test_missing_mask_is_estimated_with_a_warning(tmp_path):
    write_view(tmp_path, mask=False, gt=False)
    view = load_view(tmp_path)
    assert view.mask_estimated and view.ground_truth is None
    assert MASK_ESTIMATED_WARNING in view.warnings
    assert (view.mirror_mask ^ _disc()).mean() < 0.05


def test_progress_and_cancel(tmp_path):
    write_view(tmp_path)
    calls = []
    load_view(tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 6) and calls[-1] == (6, 6)
    with pytest.raises(Cancelled):
        load_view(tmp_path, cancel=lambda: True)


# ---- bad views ---------------------------------------------------------------------------


def test_nonfinite_depth_is_masked_and_reported(tmp_path):
    maps = write_view(tmp_path)
    depth = _maps(0)[0]
    depth[24, 30:34] = np.nan
    depth[25, 30] = np.inf
    write_tiff(maps / "OBJ-1_R_U.tif", depth, px_per_mm=4)
    view = load_view(tmp_path)
    assert not view.mirror_mask[24, 30:34].any() and not view.mirror_mask[25, 30]
    assert np.isfinite(view.depth).all()
    assert any("5 NaN/infinite" in w for w in view.warnings)


def test_mostly_nonfinite_depth_refused(tmp_path):
    maps = write_view(tmp_path)
    write_tiff(maps / "OBJ-1_R_U.tif", np.full((H, W), np.nan, np.float32), px_per_mm=4)
    with pytest.raises(InputError, match="100% of the depth map is NaN"):
        load_view(tmp_path)


def test_maps_of_different_sizes_refused(tmp_path):
    maps = write_view(tmp_path)
    write_tiff(maps / "OBJ-1_R_RHO.tif", np.zeros((H, W + 1), np.float32), px_per_mm=4)
    with pytest.raises(InputError) as info:
        load_view(tmp_path)
    message = str(info.value)
    assert "OBJ-1_R_RHO.tif" in message and "OBJ-1_R_U.tif" in message
    assert f"{W + 1} x {H}" in message and f"{W} x {H}" in message


def test_mask_of_wrong_size_or_depth_refused(tmp_path):
    write_view(tmp_path)
    write_png(tmp_path / "masks" / "OBJ-1_R_mask.png", np.zeros((H + 2, W), np.uint8))
    with pytest.raises(
        InputError,
        match=f"OBJ-1_R_mask.png: the mirror-area mask is {H + 2} x "
        f"{W} \\(H x W\\) while the depth map .*OBJ-1_R_U.tif is {H} x {W}",
    ):
        load_view(tmp_path)
    (tmp_path / "masks" / "OBJ-1_R_mask.png").unlink()
    write_tiff(tmp_path / "drawings" / "OBJ-1_R_drawings.png", np.zeros((H, W), np.float32))
    with pytest.raises(InputError, match="drawings.png: the ground truth must have"):
        load_view(tmp_path)


def test_missing_map_and_resolution(tmp_path):
    maps = write_view(tmp_path, px_per_mm=None)
    with pytest.raises(InputError, match="no resolution tag"):
        load_view(tmp_path)
    assert load_view(tmp_path, px_per_mm=5.0).px_per_mm == 5.0
    (maps / "OBJ-1_R_N.tif").unlink()
    with pytest.raises(InputError, match="lacks OBJ-1_R_N.tif"):
        load_view(maps / "OBJ-1_R_U.tif")
    assert find_views(tmp_path) == []
    with pytest.raises(InputError, match="no such file or folder"):
        find_views(tmp_path / "nowhere")


def test_duplicate_ground_truth_refused(tmp_path):
    write_view(tmp_path)
    (tmp_path / "old").mkdir()
    write_png(tmp_path / "old" / "OBJ-1_R_drawings.png", np.zeros((H, W), np.uint8))
    with pytest.raises(InputError, match="2 drawings files"):
        find_views(tmp_path)


def test_garbage_map_names_the_file(tmp_path):
    maps = write_view(tmp_path)
    (maps / "OBJ-1_R_N.tif").write_bytes(b"II*\x00" + b"\x00" * 64)
    with pytest.raises(InputError, match="OBJ-1_R_N.tif: not a readable TIFF"):
        load_view(tmp_path)


# ---- the display maps later ----------------------------------------------------------------


def _awkward_display_maps(maps):
    """Albedo in colour with a NaN and a texture, normals with pixels of no direction: every
    branch of their preprocessing is taken."""
    rng = np.random.default_rng(3)
    albedo = rng.uniform(0.1, 0.9, (H, W, 3)).astype(np.float32)
    albedo[5, 5, 1] = np.nan
    write_tiff(maps / "OBJ-1_R_RHO.tif", albedo, px_per_mm=4)
    normals = rng.standard_normal((H, W, 3)).astype(np.float32)
    normals[7, 8:12] = 0
    write_tiff(maps / "OBJ-1_R_N.tif", normals, px_per_mm=4)


def test_depth_only_view_then_its_maps_equal_the_eager_load_bit_for_bit(tmp_path):
    _awkward_display_maps(write_view(tmp_path))
    eager = load_view(tmp_path)
    view = load_view(tmp_path, maps=("depth",))
    assert view.albedo is None and view.normals is None
    np.testing.assert_array_equal(view.depth, eager.depth)
    np.testing.assert_array_equal(view.mirror_mask, eager.mirror_mask)
    maps, warnings = load_maps(view.files, view.mirror_mask)
    assert set(maps) == {"albedo", "normals"}
    for name in maps:
        assert maps[name].dtype == np.float32
        assert maps[name].tobytes() == getattr(eager, name).tobytes()
    assert len(warnings) == 3 and set(view.warnings + warnings) == set(eager.warnings)
    full = with_maps(view)
    assert full.normals.tobytes() == eager.normals.tobytes()
    assert full.albedo.tobytes() == eager.albedo.tobytes()
    assert sorted(full.warnings) == sorted(eager.warnings)
    assert with_maps(full) is full


def test_a_depth_only_load_still_checks_every_map_header(tmp_path):
    maps = write_view(tmp_path)
    write_tiff(maps / "OBJ-1_R_N.tif", np.zeros((H + 1, W, 3), np.float32), px_per_mm=4)
    with pytest.raises(InputError, match=r"OBJ-1_R_N.tif.*differs from the depth map"):
        load_view(tmp_path, maps=("depth",))
    write_tiff(maps / "OBJ-1_R_N.tif", np.zeros((H, W), np.float32), px_per_mm=4)
    with pytest.raises(InputError, match="OBJ-1_R_N.tif: normal map must have 3 channels"):
        load_view(tmp_path, maps=("depth",))
    with pytest.raises(ValueError, match="must hold 'depth'"):
        load_view(tmp_path, maps=("albedo",))


def test_maps_read_later_name_a_file_that_went_bad_or_changed_size(tmp_path):
    maps = write_view(tmp_path)
    view = load_view(tmp_path, maps=("depth",))
    (maps / "OBJ-1_R_RHO.tif").write_bytes(b"II*\x00" + b"\x00" * 64)
    with pytest.raises(InputError, match="OBJ-1_R_RHO.tif: not a readable TIFF"):
        load_maps(view.files, view.mirror_mask)
    for name in ("RHO", "U"):
        write_tiff(maps / f"OBJ-1_R_{name}.tif", np.zeros((H, W + 2), np.float32), px_per_mm=4)
    write_tiff(maps / "OBJ-1_R_N.tif", np.zeros((H, W + 2, 3), np.float32), px_per_mm=4)
    with pytest.raises(InputError, match=f"OBJ-1_R_U.tif: the view is no longer {W} x {H}"):
        load_maps(view.files, view.mirror_mask, ("normals",))
    with pytest.raises(Cancelled):
        load_maps(view.files, view.mirror_mask, cancel=lambda: True)


def test_without_a_mask_the_albedo_that_estimated_it_is_kept(tmp_path):
    write_view(tmp_path, mask=False)
    view = load_view(tmp_path, maps=("depth",))
    assert view.mask_estimated and view.normals is None
    assert view.albedo.tobytes() == load_view(tmp_path).albedo.tobytes()


def test_network_input_of_a_map_not_loaded_says_so(tmp_path):
    write_view(tmp_path)
    view = load_view(tmp_path, maps=("depth",))
    assert network_input(view).shape == (1, H, W)
    with pytest.raises(ValueError, match=r"\['normals'\] maps are not loaded"):
        network_input(view, ("depth", "normals"))


# ---- network input -----------------------------------------------------------------------


def test_network_input_layout_and_normalisation(tmp_path):
    write_view(tmp_path)
    view = load_view(tmp_path)
    x = network_input(view, ("albedo", "normals", "depth"))
    assert x.shape == (5, H, W) and x.dtype == np.float32
    mean, std = CHANNEL_STATS["depth"]
    np.testing.assert_allclose(x[4], (view.depth - mean) / std, rtol=1e-5)
    mean, std = CHANNEL_STATS["normal_z"]
    np.testing.assert_allclose(x[3, 3, 3], ((0.8 + 1) / 2 - mean) / std, rtol=1e-5)
    assert network_input(view).shape == (1, H, W)
    with pytest.raises(ValueError, match="inputs"):
        network_input(view, ("rgb",))
