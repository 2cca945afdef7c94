"""Pure numpy layer rendering: exact values on tiny arrays, inputs untouched."""

import numpy as np
import pytest

from annotator.core import render
from annotator.core.render import LayerSettings, Tile


def test_to_uint8_maps_limits_and_clips():
    image = np.array([[-1.0, 0.0, 0.5, 1.0, 2.0]], np.float32)
    before = image.copy()
    out = render.to_uint8(image, low=0.0, high=1.0)
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 0, 128, 255, 255]]
    np.testing.assert_array_equal(image, before)


def test_to_uint8_rejects_empty_range():
    with pytest.raises(ValueError, match="high"):
        render.to_uint8(np.zeros((2, 2)), low=1.0, high=1.0)


def test_contrast_limits_ignores_outliers():
    image = np.linspace(0, 1, 10000, dtype=np.float32).reshape(100, 100)
    image[0, 0] = 1000.0
    low, high = render.contrast_limits(image, percentiles=(1, 99), step=1)
    assert low == pytest.approx(0.01, abs=1e-3)
    assert high == pytest.approx(0.99, abs=1e-3)


def test_uint8_encoder_of_the_sample_converts_any_block_as_the_whole_image():
    image = np.random.default_rng(0).gamma(2.0, 0.1, (50, 30)).astype(np.float32)
    image[3, 4] = 50.0
    step = render.CONTRAST_SAMPLE_STEP
    encode = render.uint8_encoder(image[::step, ::step])
    low, high = render.contrast_limits(image)
    expected = render.to_uint8(image, low=low, high=high)
    assert 0 < np.count_nonzero(expected == 255) < 50
    np.testing.assert_array_equal(encode(image), expected)
    np.testing.assert_array_equal(
        np.concatenate([encode(image[:17]), encode(image[17:])]), expected
    )


def test_raking_light_flat_surface_is_mid_grey_and_shadowed_slope_dark():
    normals = np.zeros((1, 3, 3), np.float32)
    normals[0, 0] = (0, 0, 1)  # flat
    normals[0, 1] = (-1, 0, 0)  # faces left: the light from the right cannot reach it
    normals[0, 2] = (np.cos(np.radians(20)), 0, np.sin(np.radians(20)))  # faces the light
    encoded = render.encode_normals(normals)
    shade = render.raking_light(encoded, azimuth=0, elevation=20)
    assert shade.dtype == np.uint8 and shade.shape == (1, 3)
    assert abs(int(shade[0, 0]) - 128) <= 2
    assert shade[0, 1] == 0
    assert shade[0, 2] == 255
    # Turning the light to the left lights the left-facing slope instead.
    turned = render.raking_light(encoded, azimuth=180, elevation=20)
    assert turned[0, 1] == 255 and turned[0, 2] == 0


def test_light_direction_is_unit_and_follows_azimuth():
    np.testing.assert_allclose(render.light_direction(90, 0), [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(render.light_direction(0, 90), [0, 0, 1], atol=1e-12)


def test_normals_rgb_maps_minus_one_to_plus_one():
    encoded = render.encode_normals(np.array([[[-1, 0, 1]]], np.float32))
    assert render.normals_rgb(encoded).tolist() == [[[1, 128, 255]]]


def test_blend_exact_and_validates():
    rgb = np.full((1, 2, 3), 100, np.uint8)
    out = render.blend(rgb, np.array([[0.0, 0.5]]), (200, 0, 100))
    assert out.tolist() == [[[100, 100, 100], [150, 50, 100]]]
    assert rgb[0, 1, 0] == 100
    with pytest.raises(ValueError, match="alpha"):
        render.blend(rgb, np.zeros((2, 2)), (0, 0, 0))


def test_error_classes():
    mask = np.array([[1, 1, 0, 0]], bool)
    truth = np.array([[1, 0, 1, 0]], bool)
    assert render.error_classes(mask, truth).tolist() == [[1, 2, 3, 0]]


def test_encode_user_map_bits():
    out = render.encode_user_map(np.array([[-1, 0, 1]], np.int8))
    assert out.tolist() == [[render.USER_ERASE_BIT, 0, render.USER_ADD_BIT]]


def test_proposal_rgba_colours_and_transparency():
    added = np.array([[True, False, False]])
    removed = np.array([[False, True, False]])
    out = render.proposal_rgba(added, removed, opacity=1.0)
    assert out[0, 0].tolist() == [*render.PROPOSAL_ADD_COLOR, 255]
    assert out[0, 1].tolist() == [*render.PROPOSAL_REMOVE_COLOR, 255]
    assert out[0, 2, 3] == 0
    with_stroke = render.proposal_rgba(
        added, removed, stroke=np.array([[True, True, True]]), stroke_color=(1, 2, 3), opacity=1.0
    )
    # The difference stays on top of the stroke; the rest of the stroke shows, fainter.
    assert with_stroke[0, 0].tolist() == [*render.PROPOSAL_ADD_COLOR, 255]
    assert with_stroke[0, 2].tolist() == [1, 2, 3, round(255 * 0.7)]


def _tile():
    depth = np.full((2, 2), 10, np.uint8)
    mask = np.array([[1, 0], [0, 0]], bool)
    truth = np.array([[1, 1], [0, 0]], bool)
    user = np.array([[0, 0], [0, render.USER_ADD_BIT]], np.uint8)
    return Tile(depth=depth, mask=mask, truth=truth, user=user)


def test_compose_prediction_overlay_with_opacity():
    out = render.compose(_tile(), LayerSettings(prediction_opacity=1.0, strokes=False))
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert tuple(out[0, 0]) == render.PREDICTION_COLOR
    assert tuple(out[0, 1]) == (10, 10, 10)
    hidden = render.compose(_tile(), LayerSettings(prediction_opacity=0.0, strokes=False))
    assert tuple(hidden[0, 0]) == (10, 10, 10)


def test_compose_error_map_replaces_prediction():
    out = render.compose(_tile(), LayerSettings(error_map=True, strokes=False))
    tp = render.blend(
        np.full((1, 1, 3), 10, np.uint8), np.full((1, 1), 0.8), render.ERROR_COLORS[0]
    )
    fn = render.blend(
        np.full((1, 1, 3), 10, np.uint8), np.full((1, 1), 0.8), render.ERROR_COLORS[2]
    )
    assert out[0, 0].tolist() == tp[0, 0].tolist()
    assert out[0, 1].tolist() == fn[0, 0].tolist()
    assert tuple(out[1, 0]) == (10, 10, 10)


def test_compose_strokes_on_top():
    out = render.compose(_tile(), LayerSettings(prediction_opacity=0.0, strokes=True))
    expected = render.blend(
        np.full((1, 1, 3), 10, np.uint8), np.full((1, 1), 0.6), render.ADD_COLOR
    )
    assert out[1, 1].tolist() == expected[0, 0].tolist()


def test_settings_validate():
    with pytest.raises(ValueError, match="base"):
        LayerSettings(base="xray")
    with pytest.raises(ValueError, match="prediction_opacity"):
        LayerSettings(prediction_opacity=2.0)


def test_meanings_shown_together_never_share_a_colour():
    import colorsys

    palette = render.PALETTE
    together = ["mask", "skeleton", "add", "erase", "proposal_add", "proposal_remove", "current"]
    error_mode = [
        "right",
        "superfluous",
        "missed",
        "skeleton",
        "add",
        "erase",
        "proposal_add",
        "proposal_remove",
    ]
    for names in (together, error_mode):
        colours = [palette[n] for n in names]
        assert len(set(colours)) == len(colours), names

    def hue(name):
        return colorsys.rgb_to_hsv(*(c / 255 for c in palette[name]))[0] * 360

    # the clashes users met: erase and "superfluous" both red, the mask and "missed" both blue
    assert abs(hue("erase") - hue("superfluous")) > 25  # vermillion against yellow
    assert abs(hue("mask") - hue("missed")) > 60
    assert set(palette.values()) - {palette["right"]} <= set(render.OKABE_ITO.values())
