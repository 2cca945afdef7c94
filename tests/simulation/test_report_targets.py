"""`etmira report`: strokes and pixels to a target pFM, and the rows of the automatic start."""

import json
import math

import pytest

from annotator.cli import main
from simulation.analysis import effort_to_target, last_stroke_step
from simulation.report import write_report
from simulation.runs import run_path, write_manifest, write_records

START = "base network + refiner with no strokes (4 orientations, 2 iterations)"


def _records(human, network, strokes):
    return [
        {
            "step": 10 * i,
            "strokes": s,
            "annotated_pixels": 100 * s,
            "pfm_human": h,
            "iou_human": h - 0.2,
            "pfm_network": n,
            "iou_network": n - 0.2,
        }
        for i, (h, n, s) in enumerate(zip(human, network, strokes, strict=True))
    ]


# Two seeds of one view. Human only: 0.80 at 6 and 8 strokes, never 0.85. Human + network:
# 0.80 at 2 and 4 strokes, 0.85 at 4 strokes in seed 0 only, never 0.90.
SEEDS = [
    _records(
        [0.70, 0.72, 0.75, 0.80, 0.81, 0.81],
        [0.70, 0.80, 0.86, 0.87, 0.88, 0.88],
        [0, 2, 4, 6, 8, 8],
    ),
    _records(
        [0.70, 0.71, 0.74, 0.78, 0.80, 0.80],
        [0.70, 0.78, 0.81, 0.84, 0.84, 0.84],
        [0, 2, 4, 6, 8, 8],
    ),
]


def test_effort_to_target_and_last_stroke():
    run = {key: [r[key] for r in SEEDS[0]] for key in SEEDS[0][0]}
    assert effort_to_target(run, "pfm_human", 0.80) == (6.0, 600.0)
    assert effort_to_target(run, "pfm_network", 0.85) == (4.0, 400.0)
    assert effort_to_target(run, "pfm_network", 0.90) == (math.inf, math.inf)
    # the start itself may already be at the target
    assert effort_to_target(run, "pfm_human", 0.70) == (0.0, 0.0)
    # strokes stop growing after the record at step 40
    assert last_stroke_step(run) == 40


@pytest.fixture
def folder(tmp_path):
    for setting in ("both", "gt_free"):
        for seed, records in enumerate(SEEDS):
            write_records(run_path(tmp_path, "V_R", setting, seed), records)
    write_manifest(
        tmp_path,
        {
            "views": ["V_R"],
            "settings": ["both", "gt_free"],
            "seeds": [0, 1],
            "steps": 50,
            "iterations": 2,
            "start": START,
            "base_pfm": {"V_R": 0.55},
            "start_pfm": {"V_R": 0.70},
        },
    )
    return tmp_path


def test_report_gives_strokes_and_pixels_to_each_target(folder, capsys):
    assert main(["report", str(folder)]) == 0
    summary = write_report(folder, folder / "again")
    targets = summary["to_target"]["both"]["V_R"]
    human, network = targets["0.80"]["pfm_human"], targets["0.80"]["pfm_network"]
    assert (human["strokes"], human["pixels"], human["reached"]) == (7.0, 700.0, 2)
    assert (network["strokes"], network["reached"]) == (3.0, 2)
    assert targets["0.85"]["pfm_human"]["reached"] == 0
    assert targets["0.85"]["pfm_network"] == {
        "strokes": 4.0,
        "pixels": 400.0,
        "reached": 1,
        "runs": 2,
    }
    assert targets["0.90"]["pfm_network"]["reached"] == 0
    report = (folder / "report.md").read_text()
    assert "| oracle ranking | V_R | human only | 7 / 700 | not reached | not reached |" in report
    assert (
        "| GT-free ranking | V_R | human + network | 3 / 300 | 4 / 400 (1 of 2 runs) | "
        "not reached |" in report
    )
    assert "last stroke came by step 40." in report
    cut = folder / "cut"
    for setting in ("both", "gt_free"):
        for seed, records in enumerate(SEEDS):
            write_records(run_path(cut, "V_R", setting, seed), records[:5])
    write_manifest(cut, {**json.loads((folder / "manifest.json").read_text()), "steps": 40})
    write_report(cut)
    assert "step 40 (still drawing when the runs stopped" in (cut / "report.md").read_text()


def test_report_shows_the_networks_with_no_strokes(folder):
    write_report(folder)
    report = (folder / "report.md").read_text()
    assert f"Start (the initial prediction both curves begin from): {START}." in report
    # base alone, the start (refiner with no strokes), then what the strokes reach
    assert "| V_R | 55.00 | 70.00 | 80.50 | 86.00 |" in report
    assert "start from the base network alone" not in report


def test_runs_from_the_base_say_so(folder):
    manifest_path = folder / "manifest.json"
    text = manifest_path.read_text()
    manifest_path.write_text(text.replace(f'"start": "{START}"', '"start": "base network"'))
    write_report(folder)
    report = (folder / "report.md").read_text()
    assert "start from the base network alone" in report
    assert "refiner with no strokes (the start)" not in report
