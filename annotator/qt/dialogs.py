"""Error dialogs: every refused input becomes a clear message, never a traceback."""

from __future__ import annotations

import functools
import sys
import traceback

from PySide6.QtWidgets import QMessageBox, QWidget

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
