"""The model, the simulation, the annotator core and the command line never load Qt."""

import json

import pytest

from tests.fresh_python import last_line

PACKAGES = ("refinement_model", "simulation", "annotator.core", "annotator.cli")
QT_PREFIXES = ("PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6", "shiboken2", "qtpy")
# One interpreter for all packages (torch loads once); Qt modules are charged to the package
# whose import first loaded them.
CHECK = """
import importlib, json, pkgutil, sys
loaded = {}
for package in %r:
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + '.'):
        importlib.import_module(info.name)
    qt = sorted(m for m in sys.modules if m.split('.')[0] in %r)
    loaded[package] = [m for m in qt if not any(m in v for v in loaded.values())]
print(json.dumps(loaded))
"""


@pytest.mark.slow
def test_importing_every_module_loads_no_qt():
    loaded = json.loads(last_line(CHECK % (PACKAGES, QT_PREFIXES)))
    assert sorted(loaded) == sorted(PACKAGES)
    assert all(not modules for modules in loaded.values()), f"Qt loaded: {loaded}"
