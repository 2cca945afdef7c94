"""The layer panel: base image, raking-light direction, overlays and their opacity."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDial,
    QFormLayout,
    QGroupBox,
    QLabel,
    QRadioButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from annotator.core import render
from annotator.core.render import BASE_LAYERS, LayerSettings

_BASE_LABELS = {
    "depth": "Depth",
    "albedo": "Albedo",
    "normals": "Normals",
    "raking": "Raking light",
}


class LayerPanel(QWidget):
    """Edits a :class:`LayerSettings`; emits ``settingsChanged(settings)`` on every change."""

    settingsChanged = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._settings = LayerSettings()
        layout = QVBoxLayout(self)

        base_box = QGroupBox("Image")
        base_layout = QVBoxLayout(base_box)
        self._base = QButtonGroup(self)
        for index, name in enumerate(BASE_LAYERS):
            button = QRadioButton(_BASE_LABELS[name])
            button.setObjectName(f"base_{name}")
            self._base.addButton(button, index)
            base_layout.addWidget(button)
        self._base.idClicked.connect(lambda index: self._change(base=BASE_LAYERS[index]))
        layout.addWidget(base_box)

        light_box = QGroupBox("Raking light")
        light_form = QFormLayout(light_box)
        self.azimuth = QDial()
        self.azimuth.setRange(0, 359)
        self.azimuth.setWrapping(True)
        self.azimuth.setNotchesVisible(True)
        self.azimuth.setFixedSize(72, 72)
        self.azimuth.setToolTip("Direction the light comes from (drag around the dial)")
        # A dial's 0 sits at the bottom; offset so the knob points at the light.
        self.azimuth.valueChanged.connect(lambda v: self._change(azimuth=float((270 - v) % 360)))
        self.elevation = QSlider(Qt.Orientation.Horizontal)
        self.elevation.setRange(2, 90)
        self.elevation.setToolTip("Height of the light above the surface (low = grazing)")
        self.elevation.valueChanged.connect(lambda v: self._change(elevation=float(v)))
        light_form.addRow("Direction", self.azimuth)
        light_form.addRow("Height", self.elevation)
        self._light_box = light_box
        layout.addWidget(light_box)

        overlay_box = QGroupBox("Overlays")
        overlay_form = QFormLayout(overlay_box)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.valueChanged.connect(lambda v: self._change(prediction_opacity=v / 100))
        overlay_form.addRow("Prediction", self.opacity)
        self.skeleton = QCheckBox("Centre lines")
        self.skeleton.toggled.connect(lambda on: self._change(skeleton=on))
        self.strokes = QCheckBox("My strokes")
        self.strokes.toggled.connect(lambda on: self._change(strokes=on))
        self.error_map = QCheckBox("Error map (vs ground truth)")
        self.error_map.toggled.connect(lambda on: self._change(error_map=on))
        for box in (self.skeleton, self.strokes, self.error_map):
            overlay_form.addRow(box)
        self._legend = QLabel()
        self._legend.setWordWrap(True)
        overlay_form.addRow(self._legend)
        layout.addWidget(overlay_box)
        layout.addStretch(1)
        self.set_settings(self._settings)

    @property
    def settings(self) -> LayerSettings:
        return self._settings

    def set_base_layers(self, available, note: str = "") -> None:
        """Enable the base layers in ``available`` (names of ``BASE_LAYERS``); the others are
        greyed out with ``note`` (say "loading...") beside their name and as their tooltip.
        The checked one stays checked: the canvas shows the depth until it comes."""
        for index, name in enumerate(BASE_LAYERS):
            button = self._base.button(index)
            on = name in available
            button.setEnabled(on)
            button.setText(
                _BASE_LABELS[name] if on or not note else f"{_BASE_LABELS[name]} ({note})"
            )
            button.setToolTip("" if on else note)

    def set_ground_truth_available(self, available: bool) -> None:
        """Enable the error map only for views with ground truth."""
        self.error_map.setEnabled(available)
        if not available and self.error_map.isChecked():
            self.error_map.setChecked(False)

    def set_settings(self, settings: LayerSettings) -> None:
        """Show ``settings`` in the widgets without echoing a change back."""
        widgets = (
            self._base,
            self.azimuth,
            self.elevation,
            self.opacity,
            self.skeleton,
            self.strokes,
            self.error_map,
        )
        for widget in widgets:
            widget.blockSignals(True)
        self._base.button(BASE_LAYERS.index(settings.base)).setChecked(True)
        self.azimuth.setValue(int(round(270 - settings.azimuth)) % 360)
        self.elevation.setValue(int(round(settings.elevation)))
        self.opacity.setValue(int(round(settings.prediction_opacity * 100)))
        self.skeleton.setChecked(settings.skeleton)
        self.strokes.setChecked(settings.strokes)
        self.error_map.setChecked(settings.error_map)
        for widget in widgets:
            widget.blockSignals(False)
        self._settings = settings
        self._light_box.setEnabled(settings.base == "raking")
        self._update_legend()

    def _change(self, **changes) -> None:
        self.set_settings(dataclasses.replace(self._settings, **changes))
        self.settingsChanged.emit(self._settings)

    def _update_legend(self) -> None:
        if self._settings.error_map:
            rows = [
                (("right",), "found"),
                (("superfluous",), "superfluous (not in the truth)"),
                (("missed",), "missed"),
            ]
        else:
            rows = [
                (("mask",), "traced lines (the mask)"),
                (("add", "erase"), "added / erased by you"),
                (("proposal_add", "proposal_remove"), "network adds / removes (preview)"),
            ]
        text = "<br>".join(
            " / ".join(_swatch(name) for name in names) + f" {label}" for names, label in rows
        )
        self._legend.setText(text)


def _swatch(name: str) -> str:
    """A square in the app's colour for ``name`` (see ``render.PALETTE``), as rich text, on
    mid grey as on bronze (a white square would vanish on a light panel)."""
    r, g, b = render.PALETTE[name]
    return (
        f"<span style='color:#{r:02x}{g:02x}{b:02x}; background-color:#7a7a7a'>"
        "&nbsp;&#9632;&nbsp;</span>"
    )
