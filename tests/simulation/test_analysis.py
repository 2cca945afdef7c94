import json

import numpy as np
import pytest

from refinement_model.errors import InputError
from simulation.analysis import (
    effort_ratio,
    effort_reduction,
    mean_curves,
    pixels_to_reach,
    step_interpolate,
)
from simulation.report import write_report
from simulation.runs import (
    merge_manifest,
    read_manifest,
    read_records,
    run_path,
    write_manifest,
    write_records,
)


def test_step_interpolate_holds_the_last_value():
    x, y = [0, 10, 10, 30], [0.1, 0.2, 0.3, 0.4]
    assert step_interpolate([0, 5, 10, 29, 30, 99], x, y).tolist() == [0.1, 0.1, 0.3, 0.3, 0.4, 0.4]
    with pytest.raises(ValueError, match="non-decreasing"):
        step_interpolate([1], [2, 1], [0, 0])


def _run(pixels, human, network):
    return {
        "annotated_pixels": pixels,
        "pfm_human": human,
        "pfm_network": network,
        "iou_human": human,
        "iou_network": network,
        "step": list(range(len(pixels))),
        "strokes": list(range(len(pixels))),
    }


def test_effort_reduction_on_known_curves():
    # Human only reaches its final 0.8 at 100 pixels; the network gets there at 25: 75% less.
    pixels = [0, 25, 50, 75, 100]
    run = _run(pixels, [0.4, 0.5, 0.6, 0.7, 0.8], [0.4, 0.8, 0.85, 0.9, 0.9])
    curves = mean_curves([run], points=5)
    assert curves.pixels.tolist() == pixels
    assert effort_reduction(curves) == pytest.approx(0.75)
    assert np.max(curves.relative_gain) == pytest.approx(0.8 / 0.5 - 1)
    assert pixels_to_reach(curves.pixels, curves.network_mean, 0.95) == np.inf


def test_effort_ratio_and_mean_over_seeds():
    pixels = [0, 50, 100]
    oracle = mean_curves([_run(pixels, [0.4, 0.6, 0.8], [0.4, 0.8, 0.9])], points=3)
    slower = mean_curves([_run(pixels, [0.4, 0.6, 0.8], [0.4, 0.7, 0.8])], points=3)
    assert effort_ratio(slower, oracle) == pytest.approx(2.0)
    two = mean_curves(
        [
            _run(pixels, [0.4, 0.6, 0.8], [0.4, 0.8, 0.9]),
            _run(pixels, [0.4, 0.4, 0.6], [0.4, 0.6, 0.7]),
        ],
        points=3,
    )
    assert two.human_mean.tolist() == pytest.approx([0.4, 0.5, 0.7])
    assert two.human_std.tolist() == pytest.approx([0.0, 0.1, 0.1])


def _columns(records):
    return {key: [r[key] for r in records] for key in records[0]}


def test_report_from_runs(tmp_path):
    settings = [
        "both",
        "gt_free",
        "add_only",
        "erase_only",
        "prediction_only",
        "interaction_only",
        "one_pass",
    ]
    rng = np.random.default_rng(0)
    for setting in settings:
        for seed in range(2):
            records = []
            for step in range(0, 101, 10):
                gain = 0.0 if setting == "prediction_only" else 0.2
                human = 0.5 + 0.003 * step
                records.append(
                    {
                        "step": step,
                        "strokes": step // 2,
                        "annotated_pixels": 40 * step,
                        "pfm_human": human,
                        "iou_human": human - 0.2,
                        "pfm_network": min(human * (1 + gain * (step > 0)), 0.99)
                        + 0.001 * rng.random(),
                        "iou_network": human - 0.1,
                    }
                )
            write_records(run_path(tmp_path, "V_R", setting, seed), records)
    write_manifest(
        tmp_path,
        {
            "views": ["V_R"],
            "settings": settings,
            "seeds": [0, 1],
            "steps": 100,
            "iterations": 2,
            "spearman_gt_free": {"V_R": 0.4},
        },
    )
    summary = write_report(tmp_path)
    written = json.loads((tmp_path / "summary.json").read_text())
    for key in (
        "peak_relative_gain",
        "effort_reduction",
        "initial_pfm",
        "final_pfm_human",
        "final_pfm_network",
        "spearman_gt_free",
    ):
        assert key in written
    assert written["initial_pfm"] == pytest.approx(0.5)
    assert written["spearman_gt_free"] == pytest.approx(0.4)
    assert summary["peak_relative_gain"] == pytest.approx(0.2, abs=0.01)
    # Network = 1.2 x human reaches the human final 0.8 at step 60 instead of 100.
    assert summary["effort_reduction"] == pytest.approx(0.4, abs=0.01)
    view = written["per_view"]["V_R"]
    assert view["peak_relative_gain"] == pytest.approx(summary["peak_relative_gain"])
    assert view["final_pfm_human"] == pytest.approx(0.8)
    report = (tmp_path / "report.md").read_text()
    assert "Ablation: inputs" in report and "Ablation: operations" in report
    # the report says how the runs refined (runs from before "iterations" refined once)
    assert "| Four quarter turns of the patch, refined twice |" in report
    assert "each patch and refined twice per stroke" in report
    manifest = read_manifest(tmp_path)
    del manifest["iterations"]
    write_manifest(tmp_path, manifest)
    write_report(tmp_path, tmp_path / "old")
    assert "refined once per stroke" in (tmp_path / "old" / "report.md").read_text()
    write_manifest(tmp_path, {**manifest, "orientations": 2})
    write_report(tmp_path, tmp_path / "two")
    assert (
        "averaged over 2 orientations of each patch" in (tmp_path / "two" / "report.md").read_text()
    )
    # the per-view table sets the view's figures beside the paper's per-view range
    assert "| V_R | 50.00 | 80.00 /" in report
    assert (
        "| the paper, range over its three test views | | | 12.0% to 26.0% | 56.0% to 75.0% |"
        in report
    )
    assert (tmp_path / "curves_both_V_R.png").stat().st_size > 1000
    assert read_records(run_path(tmp_path, "V_R", "both", 0))["step"][-1] == 100


def test_report_refuses_a_folder_without_runs(tmp_path):
    with pytest.raises(InputError, match="manifest.json"):
        write_report(tmp_path)
    bad = run_path(tmp_path, "V", "both", 0)
    bad.parent.mkdir(parents=True)
    bad.write_text("hello\n1\n")
    with pytest.raises(InputError, match="not a simulation run"):
        read_records(bad)


def test_simulations_sharing_a_folder_merge_their_manifests(tmp_path):
    first = {
        "views": ["A_R"],
        "settings": ["both"],
        "seeds": [0],
        "steps": 50,
        "spearman_gt_free": {"A_R": 0.3},
    }
    second = {
        "views": ["B_R"],
        "settings": ["both", "gt_free"],
        "seeds": [0, 1],
        "steps": 50,
        "spearman_gt_free": {"B_R": 0.5},
    }
    merge_manifest(tmp_path, first)
    merged = merge_manifest(tmp_path, second)
    assert merged == read_manifest(tmp_path)
    assert merged["views"] == ["A_R", "B_R"] and merged["seeds"] == [0, 1]
    assert merged["settings"] == ["both", "gt_free"]
    assert merged["spearman_gt_free"] == {"A_R": 0.3, "B_R": 0.5}
    with pytest.raises(InputError, match="steps"):
        merge_manifest(tmp_path, {**first, "steps": 3000})
    assert read_manifest(tmp_path)["steps"] == 50
