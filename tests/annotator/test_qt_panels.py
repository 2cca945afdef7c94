"""Layer panel, tool bar and patch queue panel: state in, signals out."""

import numpy as np
import pytest
from PySide6.QtCore import Qt

from annotator.core.brush import WIDTH_STEP
from annotator.core.patch_queue import PatchQueue
from annotator.core.pyramid import LayerStack
from annotator.core.render import LayerSettings
from annotator.qt.layers import LayerPanel
from annotator.qt.queue_panel import QueuePanel
from annotator.qt.tools import ToolBar
from refinement_model.patches import PatchGrid

pytestmark = pytest.mark.gui


def test_layer_panel_emits_settings_and_light_follows_dial(qtbot):
    panel = LayerPanel()
    qtbot.addWidget(panel)
    seen = []
    panel.settingsChanged.connect(seen.append)
    assert not panel._light_box.isEnabled()
    panel.findChild(type(panel._base.button(0)), "base_raking").click()
    assert seen[-1].base == "raking" and panel._light_box.isEnabled()
    panel.azimuth.setValue(180)  # knob pointing up: the light comes from the top
    assert seen[-1].azimuth == 90.0
    panel.opacity.setValue(25)
    assert seen[-1].prediction_opacity == 0.25
    count = len(seen)
    panel.set_settings(LayerSettings(base="albedo"))  # from the model: no echo
    assert len(seen) == count and panel.settings.base == "albedo"


def test_error_map_needs_ground_truth(qtbot):
    panel = LayerPanel()
    qtbot.addWidget(panel)
    panel.error_map.setChecked(True)
    panel.set_ground_truth_available(False)
    assert not panel.error_map.isEnabled() and not panel.settings.error_map


def test_toolbar_width_keys_and_tools(qtbot):
    bar = ToolBar(radius=5.0)
    qtbot.addWidget(bar)
    radii, tools = [], []
    bar.radiusChanged.connect(radii.append)
    bar.toolChanged.connect(tools.append)
    bar.wider.trigger()
    assert radii[-1] == pytest.approx(5.0 * WIDTH_STEP, abs=0.05)
    bar.narrower.trigger()
    bar.narrower.trigger()
    assert bar.radius == pytest.approx(5.0 / WIDTH_STEP, abs=0.1)
    bar.actions_by_tool["erase"].trigger()
    assert tools == ["erase"] and bar.tool == "erase"
    with pytest.raises(ValueError, match="tool"):
        bar.set_tool("lasso")


def test_queue_panel_lists_worst_first_and_jumps(qtbot):
    grid = PatchGrid(96, 96, patch_size=64, stride=32, net_size=32)
    mirror = np.ones((96, 96), bool)
    queue = PatchQueue(grid, mirror, np.full((96, 96), 0.5, np.float32))
    queue.scores = np.arange(len(grid), dtype=float)
    queue.done[len(grid) - 1] = True
    stack = LayerStack(
        depth=np.zeros((96, 96)),
        albedo=np.zeros((96, 96)),
        normals=np.dstack([np.zeros((96, 96, 2)), np.ones((96, 96))]),
        min_size=16,
    )
    panel = QueuePanel()
    qtbot.addWidget(panel)
    panel.refresh(queue, stack)
    listed = [panel.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(panel.list.count())]
    # open patches worst first, then the done one, marked
    assert listed == [*range(len(grid) - 2, -1, -1), len(grid) - 1]
    assert panel.list.item(len(listed) - 1).text().startswith("\u2713")
    assert not panel.list.item(0).icon().isNull()
    jumps = []
    panel.jumpRequested.connect(jumps.append)
    panel.list.itemActivated.emit(panel.list.item(1))
    assert jumps == [listed[1]]
