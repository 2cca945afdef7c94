import json
from itertools import pairwise

import numpy as np
import pytest

from refinement_model.strokes import Stroke, burn_in, rasterize_stroke, stroke_channel


def _disc(shape, cx, cy, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def _brute_force(points, radius, shape):
    """Distance of every pixel centre to a polyline, sampled densely along it."""
    pts = np.asarray(points, float)
    dense = [pts[0]]
    for a, b in pairwise(pts):
        t = np.linspace(0, 1, 2001)[:, None]
        dense.append(a + t * (b - a))
    dense = np.vstack(dense)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d2 = (xx[..., None] - dense[:, 0]) ** 2 + (yy[..., None] - dense[:, 1]) ** 2
    return d2.min(axis=-1)


@pytest.mark.parametrize("radius", [0.5, 1.0, 1.5, 2.0, 2.9, 4.0])
def test_one_point_stroke_is_an_exact_disc(radius):
    mask = rasterize_stroke(Stroke("add", [(6, 5)], radius), (11, 13))
    assert mask.dtype == bool and mask.shape == (11, 13)
    np.testing.assert_array_equal(mask, _disc((11, 13), 6, 5, radius))


def test_radius_one_is_a_plus_sign():
    mask = rasterize_stroke(Stroke("add", [(1, 1)], 1.0), (3, 3))
    np.testing.assert_array_equal(mask.astype(int), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])


def test_polyline_matches_brute_force_distance():
    points = [(1.3, 2.2), (9.7, 3.1), (12.2, 10.4), (3.0, 8.5)]
    radius = 1.7
    mask = rasterize_stroke(Stroke("erase", points, radius), (14, 16))
    d2 = _brute_force(points, radius, (14, 16))
    # Dense sampling overestimates distances by at most a hair: skip pixels right at the rim.
    clear = np.abs(np.sqrt(d2) - radius) > 1e-2
    np.testing.assert_array_equal(mask[clear], (d2 <= radius * radius)[clear])
    assert mask.sum() > 40


def test_horizontal_segment_is_a_capsule():
    mask = rasterize_stroke(Stroke("add", [(2, 3), (8, 3)], 1.0), (7, 11))
    expected = np.zeros((7, 11), bool)
    expected[2:5, 2:9] = True
    expected[3, 1] = expected[3, 9] = True
    np.testing.assert_array_equal(mask, expected)


def test_origin_and_scale_map_points_and_radius():
    stroke = Stroke("add", [(110, 60)], 4.0)
    mask = rasterize_stroke(stroke, (12, 12), origin=(100, 50), scale=0.5)
    np.testing.assert_array_equal(mask, _disc((12, 12), 5, 5, 2.0))


def test_stroke_outside_window_is_empty_and_partial_is_clipped():
    assert not rasterize_stroke(Stroke("add", [(-20, -20), (-10, -30)], 3), (8, 8)).any()
    assert not rasterize_stroke(Stroke("add", [(50, 2)], 3), (8, 8)).any()
    mask = rasterize_stroke(Stroke("add", [(0, 0)], 1.0), (4, 4))
    assert mask.sum() == 3 and mask[0, 0] and mask[0, 1] and mask[1, 0]


def test_long_stroke_split_into_chunks_equals_direct_union():
    rng = np.random.default_rng(1)
    points = np.cumsum(rng.normal(0, 3, (300, 2)), axis=0) + 100
    stroke = Stroke("add", points, 2.5)
    mask = rasterize_stroke(stroke, (200, 200))
    union = np.zeros_like(mask)
    for a, b in pairwise(points):
        union |= rasterize_stroke(Stroke("add", [a, b], 2.5), (200, 200))
    np.testing.assert_array_equal(mask, union)


def test_bounds_cover_the_raster():
    stroke = Stroke("add", [(3.4, 7.9), (11.2, 4.1)], 2.3)
    for scale in (1.0, 0.5, 2.0):
        y0, x0, y1, x1 = stroke.bounds(scale)
        mask = rasterize_stroke(stroke, (40, 40), scale=scale)
        ys, xs = np.nonzero(mask)
        assert y0 <= ys.min() and ys.max() < y1 and x0 <= xs.min() and xs.max() < x1
        assert y1 - y0 <= np.ptp(ys) + 3 and x1 - x0 <= np.ptp(xs) + 3
    assert Stroke("add", [(2, 2)], 1.0).bounds() == (1, 1, 4, 4)
    assert Stroke("add", [(12, 22)], 2.0).bounds(origin=(10, 20)) == (0, 0, 5, 5)


def test_stroke_channel_later_strokes_paint_over_earlier():
    add = Stroke("add", [(2, 2)], 1.5)
    erase = Stroke("erase", [(3, 2)], 1.0)
    channel = stroke_channel([add, erase], (5, 6))
    assert channel.dtype == np.float32
    assert channel[2, 1] == 1 and channel[2, 3] == -1 and channel[2, 2] == -1
    assert channel[0, 5] == 0
    assert set(np.unique(channel)) == {-1.0, 0.0, 1.0}
    reverse = stroke_channel([erase, add], (5, 6))
    assert reverse[2, 2] == 1 and reverse[2, 4] == -1


def test_burn_in_sets_and_clears_in_order_without_touching_input():
    mask = np.zeros((5, 5), bool)
    mask[:, 4] = True
    before = mask.copy()
    strokes = [Stroke("add", [(0, 2), (4, 2)], 0.5), Stroke("erase", [(4, 0), (4, 4)], 0.5)]
    out = burn_in(mask, strokes)
    np.testing.assert_array_equal(mask, before)
    expected = np.zeros((5, 5), bool)
    expected[2, :4] = True
    np.testing.assert_array_equal(out, expected)
    assert burn_in(mask, []) is not mask


def test_sign_and_dict_round_trip_through_json():
    stroke = Stroke("erase", [(1, 2.5), (3, 4)], 3.1)
    assert stroke.sign == -1 and Stroke("add", [(0, 0)], 1).sign == 1
    data = json.loads(json.dumps(stroke.to_dict()))
    assert data == {"kind": "erase", "radius": 3.1, "points": [[1.0, 2.5], [3.0, 4.0]]}
    assert Stroke.from_dict(data) == stroke
    assert hash(Stroke.from_dict(data)) == hash(stroke)


def test_points_normalised_to_float_tuples_and_frozen():
    stroke = Stroke("add", np.array([[1, 2], [3, 4]]), 2)
    assert stroke.points == ((1.0, 2.0), (3.0, 4.0)) and isinstance(stroke.radius, float)
    with pytest.raises(AttributeError):
        stroke.radius = 5


@pytest.mark.parametrize(
    "kind, points, radius, word",
    [
        ("paint", [(0, 0)], 1, "kind"),
        ("add", [], 1, "points"),
        ("add", [(0, 0, 0)], 1, "points"),
        ("add", [(0, float("nan"))], 1, "points"),
        ("add", [(0, 0)], 0, "radius"),
        ("add", [(0, 0)], -1, "radius"),
        ("add", [(0, 0)], "wide", "radius"),
    ],
)
def test_invalid_strokes_raise_value_error_naming_the_field(kind, points, radius, word):
    with pytest.raises(ValueError, match=word):
        Stroke(kind, points, radius)


def test_from_dict_and_raster_arguments_validated():
    with pytest.raises(ValueError, match="points"):
        Stroke.from_dict({"kind": "add", "radius": 1})
    with pytest.raises(ValueError, match="scale"):
        rasterize_stroke(Stroke("add", [(0, 0)], 1), (3, 3), scale=0)
    with pytest.raises(ValueError, match="shape"):
        rasterize_stroke(Stroke("add", [(0, 0)], 1), (3,))
    with pytest.raises(ValueError, match="origin"):
        stroke_channel([Stroke("add", [(0, 0)], 1)], (3, 3), origin=(1, 2, 3))
    with pytest.raises(ValueError, match="mask"):
        burn_in(np.zeros(3, bool), [])
