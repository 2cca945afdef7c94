"""Brush tools: add, erase, pan, and the brush width (``[`` and ``]``)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeySequence
from PySide6.QtWidgets import QDoubleSpinBox, QLabel, QToolBar

from annotator.core.brush import MAX_RADIUS, MIN_RADIUS, clip_radius, step_radius
from refinement_model.shipped import RESOURCES

ICON_DIR = RESOURCES / "icons"
TOOLS = ("add", "erase", "pan")


def icon(name: str) -> QIcon:
    """An icon from ``resources/icons/NAME.svg`` (an empty icon if it is missing)."""
    path = ICON_DIR / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


class ToolBar(QToolBar):
    """The tool buttons and the brush width; the single place that owns the tool state.

    Signals
    -------
    toolChanged(str)
        One of :data:`TOOLS`.
    radiusChanged(float)
        The brush radius (half the width) in view pixels.
    """

    toolChanged = Signal(str)
    radiusChanged = Signal(float)

    def __init__(self, parent=None, *, radius: float):
        super().__init__("Tools", parent)
        self.setObjectName("tools")
        group = QActionGroup(self)
        self.actions_by_tool: dict[str, QAction] = {}
        specs = (
            ("add", "brush", "Add brush", "B"),
            ("erase", "eraser", "Erase brush", "E"),
            ("pan", "pan", "Pan (or hold Space, or drag with the middle button)", "H"),
        )
        for tool, icon_name, text, key in specs:
            action = QAction(icon(icon_name), text, self)
            action.setCheckable(True)
            action.setShortcut(QKeySequence(key))
            action.setToolTip(f"{text} ({key})")
            action.triggered.connect(lambda checked=False, t=tool: self.set_tool(t))
            group.addAction(action)
            self.addAction(action)
            self.actions_by_tool[tool] = action
        self.addSeparator()
        self.addWidget(QLabel(" Width "))
        self.width_box = QDoubleSpinBox()
        self.width_box.setRange(2 * MIN_RADIUS, 2 * MAX_RADIUS)
        self.width_box.setDecimals(1)
        self.width_box.setSuffix(" px")
        self.width_box.setToolTip("Brush width in view pixels ([ narrower, ] wider)")
        self.width_box.valueChanged.connect(lambda width: self.radiusChanged.emit(width / 2))
        self.addWidget(self.width_box)
        self.narrower = QAction("Narrower brush", self)
        self.narrower.setShortcut(QKeySequence("["))
        self.narrower.triggered.connect(lambda: self.set_radius(step_radius(self.radius, -1)))
        self.wider = QAction("Wider brush", self)
        self.wider.setShortcut(QKeySequence("]"))
        self.wider.triggered.connect(lambda: self.set_radius(step_radius(self.radius, 1)))
        self._tool = "add"
        self.actions_by_tool["add"].setChecked(True)
        self.set_radius(radius)

    @property
    def tool(self) -> str:
        return self._tool

    @property
    def radius(self) -> float:
        return self.width_box.value() / 2

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"tool must be one of {TOOLS}, got {tool!r}")
        self._tool = tool
        self.actions_by_tool[tool].setChecked(True)
        self.toolChanged.emit(tool)

    def set_radius(self, radius: float) -> None:
        """Set the brush radius, clipped to the allowed range (emits radiusChanged)."""
        self.width_box.setValue(2 * clip_radius(radius))
