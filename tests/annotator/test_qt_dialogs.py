"""Error messages: the file and the problem, never a traceback; cancelled work shows nothing."""

import pytest
from PySide6.QtWidgets import QMessageBox, QWidget

from annotator.qt.dialogs import error_message, guarded, show_error
from refinement_model.errors import Cancelled, CheckpointError, InputError

pytestmark = pytest.mark.gui


def test_messages_name_the_file():
    assert error_message(InputError("/data/v_U.tif", "truncated")) == (
        "Could not use /data/v_U.tif:\n\ntruncated"
    )
    assert "b.safetensors" in error_message(CheckpointError("b.safetensors", "not a refiner"))
    text = error_message(PermissionError(13, "Permission denied", "/ro/out.png"))
    assert "/ro/out.png" in text and "Permission denied" in text
    assert "Traceback" not in error_message(RuntimeError("boom"))


def test_guarded_slot_shows_dialog_and_returns(qtbot, monkeypatch):
    shown = []
    monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text: shown.append(text))

    class Widget(QWidget):
        @guarded
        def slot(self, value):
            if value < 0:
                raise InputError("x.png", "negative")
            return value * 2

    widget = Widget()
    qtbot.addWidget(widget)
    assert widget.slot(2) == 4 and shown == []
    assert widget.slot(-1) is None and "x.png" in shown[0]
    show_error(widget, Cancelled("stopped"))
    assert len(shown) == 1
