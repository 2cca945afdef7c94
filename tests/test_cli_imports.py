"""`etmira --help` builds the parser of every command without loading the heavy libraries."""

import json

import pytest

from tests.fresh_python import last_line

# What the commands import only when they run (see annotator/cli/__init__.py).
DEFERRED = ("torch", "onnx", "onnxruntime", "matplotlib", "PySide6", "shiboken6")

CHECK = """
import json, sys
from annotator.cli import main
try:
    main(%r)
except SystemExit as exit:
    assert exit.code == 0, exit.code
else:
    raise AssertionError("--help printed no help")
print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(%r))))
"""


@pytest.mark.parametrize("argv", [["--help"], ["train", "refiner", "--help"]])
def test_help_loads_no_torch_qt_onnx_or_matplotlib(argv):
    assert json.loads(last_line(CHECK % (argv, DEFERRED))) == []
