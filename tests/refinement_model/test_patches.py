import numpy as np
import pytest

from refinement_model.errors import Cancelled
from refinement_model.patches import (
    PatchGrid,
    border_weight_map,
    stitch_logits,
    stitch_region,
    stitch_region_logits,
)


def small_grid(height=40, width=56):
    return PatchGrid(height, width, patch_size=16, stride=8, net_size=8)


# --- PatchGrid -------------------------------------------------------------------------------


def test_boxes_cover_view_with_last_patch_at_border():
    grid = PatchGrid(700, 1000)
    assert grid.boxes.tolist() == [
        [0, 0, 512, 512],
        [0, 256, 512, 768],
        [0, 488, 512, 1000],
        [188, 0, 700, 512],
        [188, 256, 700, 768],
        [188, 488, 700, 1000],
    ]
    assert (grid.rows, grid.cols, len(grid), grid.scale) == (2, 3, 6, 0.5)
    assert grid.boxes.dtype == np.int64


def test_exact_multiple_adds_no_extra_patch():
    grid = PatchGrid(1024, 768)
    assert sorted(set(grid.boxes[:, 0].tolist())) == [0, 256, 512]
    assert sorted(set(grid.boxes[:, 1].tolist())) == [0, 256]


@pytest.mark.parametrize("height,width", [(1, 1), (17, 33), (40, 56), (100, 23)])
def test_every_pixel_covered(height, width):
    grid = PatchGrid(height, width, patch_size=16, stride=8, net_size=8)
    cover = np.zeros((max(height, 16), max(width, 16)), dtype=int)
    for y0, x0, y1, x1 in grid.boxes:
        assert y1 - y0 == 16 and x1 - x0 == 16 and y0 >= 0 and x0 >= 0
        cover[y0:y1, x0:x1] += 1
    assert cover[:height, :width].min() >= 1


def test_view_smaller_than_patch_has_one_padded_patch():
    grid = PatchGrid(300, 200)
    assert grid.boxes.tolist() == [[0, 0, 512, 512]]
    assert grid.region(0) == (0, 0, 300, 200)
    assert PatchGrid(700, 1000).region(5) == (188, 488, 700, 1000)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"height": 0, "width": 5}, "height"),
        ({"height": 5, "width": 2.5}, "width"),
        ({"height": 5, "width": 5, "patch_size": -1}, "patch_size"),
        ({"height": 5, "width": 5, "stride": 600}, "stride"),
        ({"height": 5, "width": 5, "net_size": True}, "net_size"),
    ],
)
def test_invalid_parameters_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PatchGrid(**kwargs)


def test_extract_area_resizes_and_keeps_dtype():
    grid = small_grid()
    image = np.arange(40 * 56, dtype=np.float32).reshape(40, 56)
    before = image.copy()
    patch = grid.extract(image, 1)  # box (0, 8, 16, 24)
    expected = image[0:16, 8:24].reshape(8, 2, 8, 2).mean(axis=(1, 3))
    assert patch.dtype == np.float32 and patch.shape == (8, 8)
    np.testing.assert_allclose(patch, expected, rtol=1e-6)
    np.testing.assert_array_equal(image, before)


def test_extract_channels_first_and_uint8():
    grid = small_grid()
    image = np.zeros((3, 40, 56), dtype=np.uint8)
    image[1] = 200
    patch = grid.extract(image, 0)
    assert patch.shape == (3, 8, 8) and patch.dtype == np.uint8
    assert (patch[1] == 200).all() and (patch[[0, 2]] == 0).all()


def test_extract_bool_and_other_dtypes():
    grid = small_grid()
    mask = np.zeros((40, 56), dtype=bool)
    mask[0:16, 0] = True  # half of each 2 x 2 block of network column 0
    mask[0:16:2, 4] = True  # a quarter of each block of column 2
    mask[0:16, 7] = True  # half of column 3
    patch = grid.extract(mask, 0)
    assert patch.dtype == bool
    assert patch[:, 0].all() and not patch[:, 2].any() and patch[:, 3].all()
    assert grid.extract(np.ones((40, 56), dtype=np.int64), 0).dtype == np.float32


def test_extract_pads_small_view_with_fill():
    grid = PatchGrid(4, 6, patch_size=8, stride=4, net_size=4)
    patch = grid.extract(np.ones((4, 6), dtype=np.float32), 0, fill=-1)
    np.testing.assert_array_equal(patch, [[1, 1, 1, -1], [1, 1, 1, -1], [-1] * 4, [-1] * 4])


def test_extract_validates():
    grid = small_grid()
    with pytest.raises(ValueError, match="image"):
        grid.extract(np.zeros((40, 55)), 0)
    with pytest.raises(ValueError, match="index"):
        grid.extract(np.zeros((40, 56)), len(grid))


def test_patches_touching():
    grid = PatchGrid(700, 1000)
    assert grid.patches_touching(600, 300, 610, 310).tolist() == [3, 4]
    assert grid.patches_touching(0, 0, 1, 1).tolist() == [0]
    assert grid.patches_touching(187, 0, 188, 1).tolist() == [0]  # half-open: row 188 excluded
    assert grid.patches_touching(5, 5, 5, 9).tolist() == []
    assert grid.patches_touching(0, 0, 700, 1000).tolist() == list(range(6))


# --- weights ---------------------------------------------------------------------------------


def test_border_weight_map_values():
    w = border_weight_map(8)  # cap 2: distances 0.5, 1.5, 2, ...
    assert w.dtype == np.float32 and w.shape == (8, 8)
    np.testing.assert_allclose(w[0], np.full(8, 1 / 16))
    np.testing.assert_allclose(w[3], [1 / 16, 9 / 16, 1, 1, 1, 1, 9 / 16, 1 / 16])
    np.testing.assert_array_equal(w, w.T)
    np.testing.assert_array_equal(w, w[::-1, ::-1])
    assert w.min() > 0 and w.max() == 1


def test_border_weight_map_validates():
    with pytest.raises(ValueError, match="size"):
        border_weight_map(0)


# --- stitching -------------------------------------------------------------------------------


@pytest.mark.parametrize("height,width", [(40, 56), (9, 30)])
def test_constant_logits_stitch_back_to_themselves(height, width):
    grid = PatchGrid(height, width, patch_size=16, stride=8, net_size=8)
    probs = stitch_logits(grid, [np.full((8, 8), 1.5)] * len(grid))
    assert probs.dtype == np.float32 and probs.shape == (height, width)
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-1.5)), rtol=1e-6)


def test_extreme_logits_saturate_without_nan():
    grid = small_grid()
    probs = stitch_logits(grid, [np.full((8, 8), -500.0)] * len(grid))
    assert np.isfinite(probs).all() and probs.max() == 0


def test_stitch_is_weighted_average_in_logit_space():
    grid = PatchGrid(16, 24, patch_size=16, stride=8, net_size=16)  # patches at x = 0, 8
    probs = stitch_logits(grid, [np.full((16, 16), 2.0), np.full((16, 16), -2.0)])
    w = border_weight_map(16)
    col = 10  # column 10 of patch 0 is column 2 of patch 1
    logit = (2 * w[5, col] - 2 * w[5, col - 8]) / (w[5, col] + w[5, col - 8])
    np.testing.assert_allclose(probs[5, col], 1 / (1 + np.exp(-logit)), rtol=1e-6)
    assert probs[5, 0] == pytest.approx(1 / (1 + np.exp(-2)))  # only patch 0 there


def test_stitch_region_equals_full_stitch():
    grid = small_grid()
    logits = np.random.default_rng(0).normal(size=(len(grid), 8, 8)).astype(np.float32)
    full = stitch_logits(grid, iter(logits))
    region = (5, 11, 29, 40)
    touching = grid.patches_touching(*region)
    local = stitch_region(grid, {int(i): logits[i] for i in touching}, region)
    np.testing.assert_array_equal(local, full[5:29, 11:40])
    np.testing.assert_array_equal(stitch_region(grid, logits, (0, 0, 40, 56)), full)


def test_single_patch_update_matches_full_restitch():
    grid = small_grid()
    rng = np.random.default_rng(1)
    logits = dict(enumerate(rng.normal(size=(len(grid), 8, 8)).astype(np.float32)))
    view = stitch_logits(grid, logits.values())
    logits[9] = rng.normal(size=(8, 8)).astype(np.float32)  # a stroke changed patch 9
    y0, x0, y1, x1 = grid.region(9)
    view[y0:y1, x0:x1] = stitch_region(grid, logits, (y0, x0, y1, x1))
    np.testing.assert_array_equal(view, stitch_logits(grid, logits.values()))


def test_overlaps_map_patch_pixels_to_region_pixels():
    grid = PatchGrid(700, 1000)
    overlaps = grid.overlaps((600, 300, 610, 310))
    assert [index for index, _, _ in overlaps] == [3, 4]
    index, inside, target = overlaps[1]  # patch 4 starts at (188, 256)
    assert inside == np.s_[412:422, 44:54] and target == np.s_[0:10, 0:10]


def test_region_logits_with_missing_patches():
    grid = small_grid()
    region = grid.region(9)
    # only patch 9 changed by +2: the change fades towards its border, zero elsewhere
    change = stitch_region_logits(grid, {9: np.full((8, 8), 2.0)}, region, missing=0.0)
    assert change.dtype == np.float32 and change.shape == (16, 16)
    assert change.min() > 0 and change.max() <= 2
    full = {i: np.full((8, 8), 2.0 if i == 9 else 0.0) for i in range(len(grid))}
    np.testing.assert_allclose(
        1 / (1 + np.exp(-change)), stitch_region(grid, full, region), rtol=1e-6
    )
    with pytest.raises(ValueError, match="lacks patch"):
        stitch_region_logits(grid, {9: np.zeros((8, 8))}, region)
    # a non-zero constant for the missing patches: the same as giving them
    given = {i: np.full((8, 8), 2.0 if i == 9 else -1.5) for i in range(len(grid))}
    np.testing.assert_allclose(
        stitch_region_logits(grid, {9: np.full((8, 8), 2.0)}, region, missing=-1.5),
        stitch_region_logits(grid, given, region),
        atol=1e-6,
    )


def test_stitch_region_validates():
    grid = small_grid()
    with pytest.raises(ValueError, match="lacks patch"):
        stitch_region(grid, {}, (0, 0, 4, 4))
    with pytest.raises(ValueError, match="region"):
        stitch_region(grid, {}, (0, 0, 41, 4))


def test_stitch_checks_count_and_shape():
    grid = small_grid()
    with pytest.raises(ValueError, match="yielded 1 patches"):
        stitch_logits(grid, [np.zeros((8, 8))])
    with pytest.raises(ValueError, match="more than"):
        stitch_logits(grid, [np.zeros((8, 8))] * (len(grid) + 1))
    with pytest.raises(ValueError, match="shape"):
        stitch_logits(grid, [np.zeros((1, 8, 8))] * len(grid))


def test_stitch_progress_and_cancel():
    grid = small_grid()
    calls = []
    stitch_logits(grid, [np.zeros((8, 8))] * len(grid), progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i + 1, len(grid)) for i in range(len(grid))]
    done = []
    with pytest.raises(Cancelled):
        stitch_logits(
            grid,
            [np.zeros((8, 8))] * len(grid),
            progress=lambda d, t: done.append(d),
            cancel=lambda: len(done) == 3,
        )
    assert done == [1, 2, 3]


def test_stitch_does_not_modify_inputs():
    grid = small_grid()
    logits = [np.full((8, 8), 0.5, dtype=np.float32) for _ in range(len(grid))]
    stitch_logits(grid, logits)
    assert all((patch == 0.5).all() for patch in logits)
