"""``etmira annotate``: Qt stays off the CLI's import path; --screenshot renders and exits."""

import pytest
from PySide6.QtGui import QImage

from annotator.cli import main
from tests.annotator.test_qt_app import dialogs, files  # noqa: F401 - shared fixtures

pytestmark = pytest.mark.gui


def test_screenshot_of_a_view(files, tmp_path):
    root, view, base, refiner = files
    out = tmp_path / "shot.png"
    status = main(
        [
            "annotate",
            str(view),
            "--base",
            str(base),
            "--refiner",
            str(refiner),
            "--project-dir",
            str(tmp_path / "projects"),
            "--layer",
            "raking",
            "--size",
            "1000x700",
            "--next-patch",
            "--screenshot",
            str(out),
        ]
    )
    assert status == 0
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1000, 700)
    assert list((tmp_path / "projects").glob("*.etmira"))  # the prediction is cached


def test_screenshot_of_bad_input_exits_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "junk.etmira"
    bad.write_bytes(b"not a project at all")
    assert main(["annotate", str(bad), "--screenshot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.etmira" in err[0]


def test_bad_file_on_the_command_line_exits_2_without_a_window(tmp_path, capsys, qapp):
    from PySide6.QtWidgets import QApplication

    from annotator.qt.main_window import MainWindow

    folder = tmp_path / "not a view"
    folder.mkdir()
    (folder / "notes.txt").write_text("no maps here")
    truncated = tmp_path / "depth.tif"
    truncated.write_bytes(b"II*\x00" + bytes(20))
    for bad in (folder, truncated):
        assert main(["annotate", str(bad), "--project-dir", str(tmp_path / "projects")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and bad.name in err[0]
        assert not any(
            isinstance(w, MainWindow) and w.isVisible() for w in QApplication.topLevelWidgets()
        )
