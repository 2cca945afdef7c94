"""`etmira simulate` starts from the app's start (the base refined with no strokes) or the base."""

import json

import pytest

from annotator.cli import main
from simulation.runs import read_records, run_path
from tests.simulation.tiny_networks import save_tiny_networks


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("simulate_start")
    assert (
        main(["synth", str(root / "data"), "--views", "1", "--size", "256x256", "--seed", "5"]) == 0
    )
    return root, save_tiny_networks(root, refiner_head_std=0.5)


@pytest.mark.parametrize("start", ["refined", "base"])
def test_runs_begin_at_the_start_the_manifest_names(setup, tmp_path, start, simulate_cli):
    root, paths = setup
    out = tmp_path / start
    assert simulate_cli(root / "data", paths, out, start=start) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    view = manifest["views"][0]
    first = read_records(run_path(out, view, "both", 0))["pfm_human"][0]
    # both curves begin at the start's whole-view pFM
    assert first == pytest.approx(manifest["start_pfm"][view])
    if start == "refined":
        assert manifest["start"].startswith("base network + refiner with no strokes")
        assert manifest["base_pfm"][view] != pytest.approx(manifest["start_pfm"][view])
    else:
        assert manifest["start"] == "base network"
        assert manifest["base_pfm"][view] == manifest["start_pfm"][view]
