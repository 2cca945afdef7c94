"""The albedo and normals come after the view is shown: their layers are greyed out until
read off the GUI thread, then shown; a failure leaves the depth view working; closing the
project while they are read stops the reading."""

import threading

import numpy as np
import pytest
import tifffile
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QRadioButton

from annotator.core import render
from annotator.core.pyramid import display_pyramids
from annotator.qt import document
from annotator.qt.app import StartOptions
from annotator.qt.main_window import MainWindow
from refinement_model.errors import Cancelled, InputError
from refinement_model.views import load_maps, load_view
from tests.annotator.test_qt_app import EAGER, dialogs, files  # noqa: F401 - fixtures
from tests.refinement_model.test_views import write_view

pytestmark = pytest.mark.gui


@pytest.fixture
def open_window(qtbot, files, tmp_path):  # noqa: F811 - the fixture imported above
    """A function that opens the test view in a new window (after the test's patches)."""
    root, view, base, refiner = files
    windows = []

    def opened():
        win = MainWindow(
            project_dir=tmp_path / "projects", base=base, refiner=refiner, loader=EAGER
        )
        qtbot.addWidget(win)
        win.resize(700, 500)
        win.show()
        qtbot.waitExposed(win)
        assert win.open_path(view) is True
        windows.append(win)
        return win

    yield opened
    for win in windows:
        win.close_project()


def _base_buttons(window) -> dict:
    return {
        name: window.layers.findChild(QRadioButton, f"base_{name}") for name in render.BASE_LAYERS
    }


def _picture(window) -> np.ndarray:
    window.canvas.paint_final()
    image = window.canvas.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    return np.array(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())


def test_layers_are_greyed_out_while_loading_then_enabled(open_window, files):  # noqa: F811
    window = open_window()
    buttons = _base_buttons(window)
    # the maps are read off the GUI thread; their result waits for the event loop
    assert buttons["depth"].isEnabled() and window.stack.missing_maps == ("albedo", "normals")
    for name in ("albedo", "normals", "raking"):
        assert not buttons[name].isEnabled()
        assert "loading..." in buttons[name].text() and buttons[name].toolTip() == "loading..."
    window.finish_display_maps()
    assert window.stack.missing_maps == ()
    for button in buttons.values():
        assert button.isEnabled() and "loading" not in button.text()
    expected = load_view(files[1])
    np.testing.assert_array_equal(
        window.stack.normals.levels[0], render.encode_normals(expected.normals)
    )


def test_normals_chosen_after_loading_are_shown(open_window, qtbot):
    window = open_window()
    depth = _picture(window)
    window.finish_display_maps()
    _base_buttons(window)["normals"].click()  # as the user does
    assert window.canvas.settings.base == "normals"
    tile = window.stack.tile(0, (0, 0, *window.stack.shape), window.canvas.settings)
    assert tile.normals is not None and tile.depth is None
    assert not np.array_equal(_picture(window), depth)


def test_raking_start_option_shows_depth_until_the_normals_come(open_window):
    window = open_window()
    depth = _picture(window)
    window.apply_start_options(StartOptions(raking=(30.0, 20.0)))
    assert window.canvas.settings.base == "raking" and _base_buttons(window)["raking"].isChecked()
    np.testing.assert_array_equal(_picture(window), depth)  # the depth stands in meanwhile
    window.finish_display_maps()
    raking = _picture(window)
    assert not np.array_equal(raking, depth)


def test_a_failure_shows_the_error_and_the_depth_view_goes_on(
    open_window,
    monkeypatch,
    dialogs,  # noqa: F811
):
    def broken(view_files, mirror_mask, maps, **options):
        raise InputError(view_files.normals, "not a readable TIFF")

    monkeypatch.setattr(document, "load_display_layers", broken)
    window = open_window()
    window.finish_display_maps()
    assert len(dialogs) == 1 and "_N.tif" in dialogs[0] and "not a readable TIFF" in dialogs[0]
    dialogs.clear()
    buttons = _base_buttons(window)
    assert buttons["depth"].isEnabled() and not buttons["normals"].isEnabled()
    assert "not loaded" in buttons["normals"].text()
    window.next_patch()  # the work goes on
    assert window.current_patch is not None


def test_closing_while_the_maps_are_read_stops_the_reading(open_window, monkeypatch, qtbot):
    started, stopped = threading.Event(), threading.Event()

    def slow(view_files, mirror_mask, maps, *, min_size, cancel):
        started.set()
        while not cancel():
            threading.Event().wait(0.01)
        stopped.set()
        raise Cancelled("loading the maps was cancelled")

    monkeypatch.setattr(document, "load_display_layers", slow)
    window = open_window()
    assert started.wait(10)
    window.close_project()
    assert stopped.is_set() and window.stack is None
    qtbot.wait(50)  # a late delivery of the cancelled job would come now: it must not
    assert window.project is None


@pytest.mark.parametrize("rows_per_strip", [5, None])
def test_the_normals_read_by_strips_are_the_whole_map_encoded(tmp_path, rows_per_strip):
    path = write_view(tmp_path) / "OBJ-1_R_N.tif"
    normals = np.random.default_rng(4).standard_normal((48, 64, 3)).astype(np.float32)
    normals[..., 2] = np.abs(normals[..., 2]) + 2  # facing the camera, as a mirror does
    normals /= np.linalg.norm(normals, axis=2, keepdims=True)
    codes = normals * np.float32(0.5) + np.float32(0.5)  # as the photometric-stereo files
    tifffile.imwrite(
        path, codes, photometric="rgb", compression="zlib", rowsperstrip=rows_per_strip
    )
    view = load_view(tmp_path, maps=("depth",))
    pyramids, warnings = document.load_display_layers(
        view.files, view.mirror_mask, ("normals",), min_size=16
    )
    whole, _ = load_maps(view.files, view.mirror_mask, ("normals",))
    assert warnings == () and len(pyramids["normals"].levels) == 3
    np.testing.assert_array_equal(
        pyramids["normals"].levels[0], render.encode_normals(whole["normals"])
    )
    np.testing.assert_allclose(whole["normals"], normals, atol=1e-6)  # decoded, not raw


@pytest.mark.parametrize("rows_per_strip", [5, None])
def test_the_albedo_read_by_strips_is_the_whole_map_shown(tmp_path, rows_per_strip):
    path = write_view(tmp_path) / "OBJ-1_R_RHO.tif"
    albedo = np.random.default_rng(5).gamma(2.0, 0.1, (48, 64)).astype(np.float32)
    albedo[10, 20:30] = np.nan  # inside the mirror area
    albedo[0, 0] = 40.0  # outside: clipped, and beyond the contrast limits
    tifffile.imwrite(path, albedo, compression="zlib", rowsperstrip=rows_per_strip)
    view = load_view(tmp_path, maps=("depth",))
    pyramids, warnings = document.load_display_layers(
        view.files, view.mirror_mask, ("albedo",), min_size=16
    )
    whole, found = load_maps(view.files, view.mirror_mask, ("albedo",))
    shown = display_pyramids(whole, min_size=16)["albedo"]
    assert warnings == found == ("albedo has NaN/infinite pixels: set to 0",)
    assert len(pyramids["albedo"].levels) == len(shown.levels) == 3
    for strips, level in zip(pyramids["albedo"].levels, shown.levels, strict=True):
        assert strips.dtype == np.uint8 and strips.tobytes() == level.tobytes()
    assert 0 < np.count_nonzero(shown.levels[0] == 255) < 0.05 * shown.levels[0].size
