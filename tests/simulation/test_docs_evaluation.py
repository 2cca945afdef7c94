"""The committed evaluation reports are what their committed runs give."""

import json
from pathlib import Path

import pytest

from simulation.report import write_report

EVALUATION = Path(__file__).resolve().parents[2] / "docs" / "evaluation"


FOLDERS = {
    "from_start": EVALUATION / "from_start",
    "from_base": EVALUATION / "from_base",
    "one_iteration": EVALUATION / "one_iteration",
    "one_iteration_ten_seeds": EVALUATION / "one_iteration" / "ten_seeds",
    "other_recipe": EVALUATION / "other_recipe",
    "adaptive": EVALUATION / "adaptive",
    "adaptive_finishing": EVALUATION / "adaptive" / "finishing",
}


@pytest.mark.parametrize("folder", FOLDERS.values(), ids=FOLDERS.keys())
def test_committed_report_matches_its_runs(folder, tmp_path):
    written = write_report(folder, tmp_path)
    committed = json.loads((folder / "summary.json").read_text())
    assert json.loads((tmp_path / "summary.json").read_text()) == committed
    assert written["peak_relative_gain"] == committed["peak_relative_gain"]
    assert (tmp_path / "report.md").read_text() == (folder / "report.md").read_text()
