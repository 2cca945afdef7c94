"""Error dialogs: every refused input becomes a clear message, never a traceback."""

from __future__ import annotations

import functools
import sys
import traceback
from importlib.metadata import PackageNotFoundError, version

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from refinement_model.checkpoint_header import read_spec
from refinement_model.errors import Cancelled, EtmiraError, InputError


def error_message(error: BaseException) -> str:
    """The text shown for ``error``: the file and the problem for bad input, else the message."""
    if isinstance(error, InputError) and error.path is not None:
        return f"Could not use {error.path}:\n\n{error.problem}"
    if isinstance(error, EtmiraError):
        return str(error)
    if isinstance(error, OSError):
        name = f" {error.filename}" if error.filename else ""
        return f"Could not access{name}:\n\n{error.strerror or error}"
    return (
        f"Something went wrong ({type(error).__name__}): {error}\n\n"
        "Every committed stroke is saved; you may go on."
    )


def show_error(parent: QWidget | None, error: BaseException, *, title: str = "etmira") -> None:
    """Show ``error`` in a modal message box (a cancelled task shows nothing)."""
    if isinstance(error, Cancelled):
        return
    if not isinstance(error, (EtmiraError, OSError)):
        # A bug, not bad input: keep the traceback for the report, show the user one line.
        traceback.print_exception(error, file=sys.stderr)
    QMessageBox.critical(parent, title, error_message(error))


def ask(parent: QWidget | None, title: str, text: str) -> bool:
    """A yes/no question; True for yes."""
    answer = QMessageBox.question(parent, title, text)
    return answer == QMessageBox.StandardButton.Yes


def guarded(method):
    """Decorate a widget's slot: any error it raises is shown in a dialog and the app goes on.

    The slot's return value is passed through (None after an error).
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as error:  # the boundary between the user and everything below
            show_error(self, error)
            return None

    return wrapper


def show_table(parent: QWidget | None, title: str, rows) -> None:
    """A modal two-column list (what, how), e.g. the keyboard shortcuts."""
    dialog = QDialog(parent)
    dialog.setWindowTitle(title)
    table = QTableWidget(len(rows), 2, dialog)
    table.setHorizontalHeaderLabels(["", "Key or gesture"])
    table.verticalHeader().hide()
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    for row, (what, how) in enumerate(rows):
        table.setItem(row, 0, QTableWidgetItem(what))
        table.setItem(row, 1, QTableWidgetItem(how))
    table.resizeColumnsToContents()
    table.horizontalHeader().setStretchLastSection(True)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addWidget(table)
    layout.addWidget(buttons)
    dialog.resize(560, 520)
    dialog.exec()


def about_text() -> str:
    """The About box's text: the version and what the tool does."""
    try:
        release = version("etmira-refine")
    except PackageNotFoundError:
        release = "(not installed)"
    return (
        f"<b>etmira annotate</b> {release}<br><br>"
        "Traces the engraved lines of Etruscan bronze mirrors from photometric-stereo maps. "
        "A network predicts the lines; you correct them with add and erase strokes, and a "
        "second network refines each patch you touch. Your work is saved with every stroke."
    )


def show_about(parent: QWidget | None) -> None:
    QMessageBox.about(parent, "About etmira", about_text())


def check_model(path: str, kind: str) -> None:
    """``InputError`` naming ``path`` unless it is a checkpoint of a ``kind`` network."""
    found = read_spec(path)[0].kind
    if found != kind:
        raise InputError(path, f"this is a {found} checkpoint, not a {kind} model")


def choose_models(parent: QWidget | None, base: str | None, refiner: str | None):
    """Ask for a base model and (optionally) a refiner; ``(base, refiner)`` or None if
    cancelled. Empty fields mean the shipped weights (base) or no refiner."""
    dialog = QDialog(parent)
    dialog.setWindowTitle("Choose models")
    form = QFormLayout()
    fields = {}
    for kind, value, hint in (
        ("base", base, "empty: the shipped base model"),
        ("refiner", refiner, "empty: the shipped refiner, if any"),
    ):
        edit = QLineEdit(value or "")
        edit.setPlaceholderText(hint)
        browse = QPushButton("Browse...")
        browse.clicked.connect(
            lambda checked=False, e=edit, k=kind: _browse_checkpoint(dialog, e, k)
        )
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        row.addWidget(browse)
        form.addRow(f"{kind.capitalize()} model:", row)
        fields[kind] = edit
    buttons = QDialogButtonBox(
        QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
    )
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addLayout(form)
    layout.addWidget(buttons)
    dialog.resize(640, 140)
    while dialog.exec() == QDialog.DialogCode.Accepted:
        chosen = {kind: edit.text().strip() or None for kind, edit in fields.items()}
        try:
            for kind, path in chosen.items():
                if path is not None:
                    check_model(path, kind)
        except EtmiraError as error:
            show_error(dialog, error)
            continue
        return chosen["base"], chosen["refiner"]
    return None


def _browse_checkpoint(parent: QWidget, edit: QLineEdit, kind: str) -> None:
    path, _ = QFileDialog.getOpenFileName(
        parent, f"Choose the {kind} model", edit.text(), "Checkpoints (*.safetensors)"
    )
    if path:
        edit.setText(path)
