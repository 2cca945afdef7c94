"""The canvas's camera: screen and image points, fit, zoom about a point, clamping, levels."""

import numpy as np
import pytest

from annotator.core.camera import MAX_SCALE, MIN_SCALE, WHEEL_STEP, Camera, wheel_factor


def test_to_image_and_to_screen_are_inverse():
    camera = Camera(scale=2.5, offset=(-13.0, 40.25))
    rng = np.random.default_rng(0)
    for point in rng.uniform(-500, 500, (20, 2)).tolist():
        assert camera.to_screen(camera.to_image(point)) == pytest.approx(point)
        assert camera.to_image(camera.to_screen(point)) == pytest.approx(point)
    # the widget's top-left corner shows the offset; one screen pixel is 1/scale image pixels
    assert camera.to_image((0, 0)) == (-13.0, 40.25)
    assert camera.to_image((5, 0)) == pytest.approx((-11.0, 40.25))


def test_fit_centres_the_image_and_fills_the_tighter_side():
    camera = Camera(scale=7.0, offset=(100.0, -3.0))
    camera.fit((400, 300), (1000, 500))  # width is the tighter side: 400 / 1000
    assert camera.scale == pytest.approx(0.4 * 0.98)
    assert camera.to_image((200, 150)) == pytest.approx((500, 250))
    left, top = camera.to_screen((0, 0))
    right, bottom = camera.to_screen((1000, 500))
    assert (left + right) / 2 == pytest.approx(200) and (top + bottom) / 2 == pytest.approx(150)
    assert right - left == pytest.approx(0.98 * 400)  # a thin margin each side
    assert top > 0 and bottom < 300


def test_fit_in_a_window_of_no_size_takes_the_smallest_scale():
    camera = Camera()
    camera.fit((0, 0), (640, 480))
    assert camera.scale == MIN_SCALE


@pytest.mark.parametrize("factor", [2.0, 0.3, WHEEL_STEP, 1 / WHEEL_STEP])
def test_zoom_about_keeps_the_point_under_the_cursor(factor):
    camera = Camera(scale=0.8, offset=(30.0, 12.0))
    cursor = (123.0, 77.0)
    before = camera.to_image(cursor)
    camera.zoom_about(cursor, factor)
    assert camera.scale == pytest.approx(0.8 * factor)
    assert camera.to_image(cursor) == pytest.approx(before)
    assert camera.to_screen(before) == pytest.approx(cursor)


def test_zoom_is_clamped_and_still_keeps_the_point():
    camera = Camera()
    cursor = (50.0, 60.0)
    before = camera.to_image(cursor)
    camera.zoom_about(cursor, 1e6)
    assert camera.scale == MAX_SCALE
    assert camera.to_image(cursor) == pytest.approx(before)
    camera.zoom_about(cursor, 1e-9)
    assert camera.scale == MIN_SCALE
    assert camera.to_image(cursor) == pytest.approx(before)
    assert Camera(scale=1e9).scale == MAX_SCALE


@pytest.mark.parametrize("scale", [-1.0, float("nan")])
def test_a_negative_or_nan_scale_is_refused(scale):
    with pytest.raises(ValueError, match="scale"):
        Camera(scale=scale)
    with pytest.raises(ValueError, match="scale"):
        Camera().zoom_about((0, 0), scale)


def test_one_to_one_keeps_the_window_centre():
    camera = Camera(scale=0.37, offset=(-20.0, 5.0))
    centre = camera.to_image((200, 150))
    camera.one_to_one((400, 300))
    assert camera.scale == 1.0
    assert camera.to_image((200, 150)) == pytest.approx(centre)


def test_frame_centres_a_box_with_a_margin():
    camera = Camera()
    camera.frame((100, 200, 300, 600), (800, 600), margin=2.0)  # y0, x0, y1, x1
    # 400 x 200 box, twice that showing: 800 / 800 wide, 600 / 400 high
    assert camera.scale == pytest.approx(1.0)
    assert camera.to_image((400, 300)) == pytest.approx((400, 200))


def test_pan_moves_the_picture_by_screen_pixels():
    camera = Camera(scale=2.0, offset=(10.0, 10.0))
    point = (50.0, 40.0)
    where = camera.to_screen(point)
    camera.pan(30, -8)
    assert camera.to_screen(point) == pytest.approx((where[0] + 30, where[1] - 8))
    assert camera.offset == pytest.approx((-5.0, 14.0))


def test_level_keeps_level_pixels_between_two_thirds_and_four_thirds_of_a_screen_pixel():
    for scale in np.geomspace(1 / 60, 0.999, 200).tolist():
        level = Camera(scale=scale).level(n_levels=10)
        assert 2 / 3 < scale * 2**level <= 4 / 3, scale
    assert Camera(scale=1.0).level(10) == 0 and Camera(scale=8.0).level(10) == 0
    assert Camera(scale=0.7).level(10) == 0  # 0.7 of a screen pixel is still sharp
    assert Camera(scale=0.66).level(10) == 1
    assert Camera(scale=MIN_SCALE).level(3) == 2  # no coarser level than there is


def test_visible_tiles_cover_the_box_and_stay_inside_the_image():
    camera = Camera(scale=1.0, offset=(100.0, 0.0))
    # image x 100..500, y 0..300 on screen; a 1000 x 700 image in 256-pixel tiles
    rows, columns = camera.visible_tiles((0, 0, 400, 300), (700, 1000), tile=256, level=0)
    assert list(rows) == [0, 1] and list(columns) == [0, 1]
    # level 1 tiles span 512 image pixels
    rows, columns = camera.visible_tiles((0, 0, 400, 300), (700, 1000), tile=256, level=1)
    assert list(rows) == [0] and list(columns) == [0]
    # far right and below: clipped to the last tile, nothing past the image
    camera.pan(-5000, -5000)
    rows, columns = camera.visible_tiles((0, 0, 400, 300), (700, 1000), tile=256, level=0)
    assert list(rows) == [] and list(columns) == []
    camera = Camera(scale=0.25, offset=(-50.0, -50.0))  # the whole image and more
    rows, columns = camera.visible_tiles((0, 0, 400, 300), (700, 1000), tile=256, level=0)
    assert list(rows) == [0, 1, 2] and list(columns) == [0, 1, 2, 3]


def test_wheel_factor_is_one_step_per_notch():
    assert wheel_factor(120) == pytest.approx(WHEEL_STEP)
    assert wheel_factor(-240) == pytest.approx(WHEEL_STEP**-2)
    assert wheel_factor(60) * wheel_factor(60) == pytest.approx(WHEEL_STEP)
