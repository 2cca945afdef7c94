"""The PySide6 desktop app over the Qt-free annotation session (``etmira annotate``).

app (start, crash recovery, --screenshot), main_window (menus, shortcuts, docks, status bar),
canvas (tiled zoomable view, brush), layers, queue_panel,
tools, workers (progress dialog around Qt-free calls), dialogs (errors), document (opening,
export).
"""
