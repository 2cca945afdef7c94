"""Start the app: the QApplication, the main window, the crash-recovery offer, --screenshot."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from annotator.qt.dialogs import ask, show_error
from annotator.qt.document import crashed_projects
from annotator.qt.main_window import MainWindow
from annotator.qt.tools import ICON_DIR
from refinement_model.errors import InputError
from refinement_model.shipped import SAMPLE_VIEW


@dataclass(frozen=True)
class StartOptions:
    """What ``etmira annotate`` asked for (see ``annotator.cli.annotate``)."""

    path: str | None = None
    screenshot: str | None = None
    layer: str | None = None
    raking: tuple[float, float] | None = None
    opacity: float | None = None
    error_map: bool = False
    strokes: str | None = None
    size: tuple[int, int] = (1600, 1000)
    base: str | None = None
    refiner: str | None = None
    project_dir: str | None = None
    next_patch: bool = False


def application() -> QApplication:
    """The running QApplication, created once with the app's names (for QSettings)."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
    app.setOrganizationName("etmira")
    app.setApplicationName("etmira-annotate")
    app.setWindowIcon(QIcon(str(ICON_DIR / "app.svg")))
    return app


def main(options: StartOptions) -> int:
    """Run the app until its window closes; with ``options.screenshot``, save a PNG and exit."""
    app = application()
    window = MainWindow(base=options.base, refiner=options.refiner, project_dir=options.project_dir)
    window.resize(*options.size)
    window.show()
    app.processEvents()
    path = options.path
    if options.screenshot or path is not None:
        # A file named on the command line (or any file, for a screenshot) that cannot be
        # opened ends the command with its error: one line, exit 2, no empty window.
        try:
            window.load(path or SAMPLE_VIEW)
            if options.screenshot:
                _start_with(window, options)
                window.finish_display_maps()  # the picture shows the layer asked for
                return _screenshot(app, window, options.screenshot)
        except BaseException:
            window.close()
            raise
        opened = True
    else:
        # nothing asked for: a failure shows a dialog, and File > Open is there to go on
        opened = window.open_path(_offer_recovery(window) or SAMPLE_VIEW)
    if opened:
        try:
            _start_with(window, options)
        except Exception as error:  # a bad stroke file must not stop the app
            show_error(window, error)
    return app.exec()


def _start_with(window, options: StartOptions) -> None:
    if options.strokes:
        window.replay_strokes(options.strokes)
    window.apply_start_options(options)
    if options.next_patch:
        window.next_patch()
    window.refresh_status()


def _offer_recovery(window) -> str | None:
    for path in crashed_projects():
        if ask(
            window,
            "Recover project",
            f"The project {path} was not closed properly (the app may have crashed).\n\n"
            "Open it again? Every stroke you committed is in it.",
        ):
            return path
    return None


def _screenshot(app: QApplication, window, out: str) -> int:
    app.processEvents()
    window.canvas.paint_final()
    image = window.grab().toImage()
    window.close()
    if not image.save(str(out), "PNG"):
        raise InputError(out, "cannot write the screenshot there")
    return 0
