"""`etmira simulate` and `etmira report` end to end on a tiny view with tiny networks."""

import dataclasses
import json

import pytest

from annotator.cli import main
from refinement_model.network_loader import NetworkLoader
from refinement_model.refiner_options import APP_REFINEMENT
from simulation.evaluate import simulate_views, view_files_with_ground_truth
from simulation.runs import read_records, run_path
from tests.simulation.tiny_networks import save_tiny_networks


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("simulate")
    assert (
        main(["synth", str(root / "data"), "--views", "1", "--size", "384x384", "--seed", "5"]) == 0
    )
    return root, save_tiny_networks(root)


def test_simulate_then_report(setup, simulate_cli):
    root, paths = setup
    out = root / "sim"
    run = simulate_cli(
        root / "data", paths, out, steps=12, seeds=2, record_every=5, settings="both,gt_free"
    )
    assert run == 0
    manifest = json.loads((out / "manifest.json").read_text())
    view_id = manifest["views"][0]
    for setting in ("both", "gt_free"):
        for seed in (0, 1):
            run = read_records(run_path(out, view_id, setting, seed))
            assert run["step"] == [0, 5, 10, 12]
            assert run["pfm_human"][0] == run["pfm_network"][0]
    assert main(["report", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["views"] == [view_id]
    assert 0 <= summary["initial_pfm"] <= 1
    assert (out / "report.md").read_text().startswith("# Simulated annotation")


def test_simulate_takes_a_view_folder(setup, tmp_path, simulate_cli):
    root, paths = setup
    view = root / "data" / "SYN-0001" / "PS"
    assert simulate_cli(view, paths, tmp_path, record_every=1, settings="one_pass") == 0
    assert json.loads((tmp_path / "manifest.json").read_text())["views"] == ["SYN-0001_R"]
    assert read_records(run_path(tmp_path, "SYN-0001_R", "one_pass", 0))["step"] == [0, 1, 2]


@pytest.mark.parametrize(
    "given",
    [
        "",
        "SYN-0001",
        "SYN-0001/PS",
        "SYN-0001/PS/SYN-0001_R_U.tif",
        "SYN-0001/PS/SYN-0001_R_N.tif",
        "drawings/SYN-0001_R_drawings.png",
        "masks/SYN-0001_R_mask.png",
    ],
)
def test_simulate_finds_the_ground_truth_from_any_form_of_the_view(setup, given):
    data = setup[0] / "data"
    (files,) = view_files_with_ground_truth([data / given])
    assert files.view_id == "SYN-0001_R"
    assert files.drawings == data / "drawings" / "SYN-0001_R_drawings.png"
    assert files.mask == data / "masks" / "SYN-0001_R_mask.png"


def test_simulate_refuses_views_without_ground_truth(tmp_path, setup, capsys, simulate_cli):
    _, paths = setup
    (tmp_path / "empty").mkdir()
    assert simulate_cli(tmp_path / "empty", paths, tmp_path / "o") == 2
    assert "no view" in capsys.readouterr().err
    code = main(
        ["simulate", str(setup[0] / "data"), "--only", "SYN-9999_R", "--out", str(tmp_path / "o")]
    )
    assert code == 2 and "SYN-9999_R" in capsys.readouterr().err


@dataclasses.dataclass(frozen=True)
class RecordingLoader(NetworkLoader):
    """Builds networks as the default loader does, and records the (orientations, iterations)
    of the refiner behind every stroke's refinement, in order."""

    used: list = dataclasses.field(default_factory=list)

    def refiner(self, checkpoint, options):
        refiner = super().refiner(checkpoint, options)
        refine = refiner.refine

        def recorded(*args):
            self.used.append((refiner.net.orientations, refiner.options.iterations))
            return refine(*args)

        refiner.refine = recorded
        return refiner


def test_a_setting_gets_the_refiner_options_it_names(setup, tmp_path):
    root, paths = setup
    loader = RecordingLoader(backend="eager")
    manifest = simulate_views(
        [root / "data"],
        out=tmp_path,
        base=paths["base"],
        refiner=paths["refiner"],
        steps=3,
        seeds=1,
        settings=("both", "one_pass"),
        loader=loader,
    )
    # the app's refiner (four orientations, twice) for the main setting, one pass for its preview
    built = loader.used
    assert built and built[0] == (APP_REFINEMENT.orientations, APP_REFINEMENT.iterations) == (4, 2)
    assert built[-1] == (1, 1) and sorted(set(built)) == [(1, 1), (4, 2)]
    # ``iterations`` replaces the app's refinements per stroke; the preview stays one pass
    once = RecordingLoader(backend="eager")
    simulate_views(
        [root / "data"],
        out=tmp_path / "once",
        base=paths["base"],
        refiner=paths["refiner"],
        steps=3,
        seeds=1,
        settings=("both", "one_pass"),
        iterations=1,
        loader=once,
    )
    assert sorted(set(once.used)) == [(1, 1), (APP_REFINEMENT.orientations, 1)]
    for setting in ("both", "one_pass"):
        assert read_records(run_path(tmp_path, manifest["views"][0], setting, 0))["step"][-1] == 3
    # more seeds for the same folder: the manifest has them all
    more = simulate_views(
        [root / "data"],
        out=tmp_path,
        base=paths["base"],
        refiner=paths["refiner"],
        steps=3,
        seeds=2,
        first_seed=1,
        settings=("one_pass",),
    )
    assert more["seeds"] == [0, 1, 2]
    assert run_path(tmp_path, manifest["views"][0], "one_pass", 2).exists()
    assert not run_path(tmp_path, manifest["views"][0], "both", 2).exists()
    with pytest.raises(ValueError, match="first_seed"):
        simulate_views([root / "data"], out=tmp_path, seeds=1, first_seed=-1)


def test_the_iterations_and_orientations_options_reach_the_runs(
    setup, tmp_path, capsys, simulate_cli
):
    root, paths = setup

    def simulate(out, **options):
        return simulate_cli(root / "data", paths, out, steps=3, settings="both,one_pass", **options)

    assert simulate(tmp_path / "once", iterations=1) == 0
    assert json.loads((tmp_path / "once" / "manifest.json").read_text())["iterations"] == 1
    # a folder holds runs of one kind: the app's refiner cannot join the runs refined once
    assert simulate(tmp_path / "once") == 2
    assert "iterations" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        simulate(tmp_path / "none", iterations=0)
    assert "at least 1" in capsys.readouterr().err
    # the orientations each refinement averages, likewise
    assert simulate(tmp_path / "two", orientations=2) == 0
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert (manifest["orientations"], manifest["iterations"]) == (2, 2)
    assert simulate(tmp_path / "two") == 2
    assert "orientations" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        simulate(tmp_path / "none", orientations=3)
