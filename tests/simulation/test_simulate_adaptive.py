"""`etmira simulate --settings both,adaptive,finishing,finishing_adaptive`: the refiner
adapting online to the view, under the paper's user and under one who finishes patches."""

import functools
import json
import shutil

import pytest
import torch

from annotator.cli import main
from refinement_model import adaptation
from simulation.report import write_report
from simulation.runs import ADAPTIVE_SETTINGS, SETTINGS, read_records, run_path
from tests.simulation.tiny_networks import save_tiny_networks


def test_every_adaptive_setting_is_measured_against_its_user_with_the_frozen_refiner():
    adaptive = {name for name, config in SETTINGS.items() if config.get("adapt_every")}
    assert adaptive == set(ADAPTIVE_SETTINGS)
    for name, described in ADAPTIVE_SETTINGS.items():
        frozen = {**SETTINGS[name]}
        del frozen["adapt_every"]
        assert SETTINGS[described.frozen] == frozen
    assert len({d.summary_key for d in ADAPTIVE_SETTINGS.values()}) == len(ADAPTIVE_SETTINGS)
    for described in ADAPTIVE_SETTINGS.values():
        adaptation.AdaptationOptions(**described.options)  # valid options


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, simulate_cli):
    root = tmp_path_factory.mktemp("simulate_adaptive")
    # a hard view, so that the simulated user commits strokes
    assert (
        main(
            [
                "synth",
                str(root / "data"),
                "--views",
                "1",
                "--size",
                "384x384",
                "--seed",
                "5",
                "--difficulty",
                "0.9",
                "--damage",
                "grooves",
            ]
        )
        == 0
    )
    paths = save_tiny_networks(root, refiner_head_std=0.5)
    out = root / "out"
    # the tiny view takes few strokes: adapt after every second one
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks run faster on one thread of a shared machine
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(SETTINGS, "adaptive", {"adapt_every": 2})
        # and stay on a patch until strokes stop helping
        for name in ("finishing", "finishing_adaptive"):
            patch.setitem(SETTINGS, name, {**SETTINGS[name], "finish_pfm": 0.99})
        # a step large enough to change the tiny refiner's masks (the app's update;
        # finishing_adaptive's options name their own)
        patch.setattr(
            adaptation,
            "AdaptationOptions",
            functools.partial(adaptation.AdaptationOptions, learning_rate=1e-2),
        )
        settings = "both,adaptive,finishing,finishing_adaptive"
        assert simulate_cli(root / "data", paths, out, steps=40, settings=settings) == 0
    torch.set_num_threads(threads)
    return out, json.loads((out / "manifest.json").read_text())


def test_adaptive_runs_log_their_updates_and_start_where_both_starts(simulated):
    # that an accepted update changes the run is asserted on the protocol itself
    # (tests/simulation/test_protocol.py); here: the command runs the setting and records it
    out, manifest = simulated
    view = manifest["views"][0]
    log = manifest["adaptation"][f"{view}/adaptive/0"]
    assert log and all(entry["seconds"] > 0 for entry in log)
    assert all("refiner_seconds" in entry for entry in log if entry["accepted"])
    both = read_records(run_path(out, view, "both", 0))
    adaptive = read_records(run_path(out, view, "adaptive", 0))
    assert adaptive["step"] == both["step"]
    assert {key: column[0] for key, column in adaptive.items()} == {
        key: column[0] for key, column in both.items()
    }


def test_the_report_shows_adaptive_beside_both(simulated):
    out, manifest = simulated
    summary = write_report(out)
    view = manifest["views"][0]
    row = summary["adaptation"][view]
    assert row["updates"] == len(manifest["adaptation"][f"{view}/adaptive/0"])
    assert set(summary["to_target"]) == {"both", "adaptive"}  # the settings it names
    text = (out / "report.md").read_text()
    assert "## Online adaptation" in text and "oracle ranking, refiner adapting online" in text


def test_the_finishing_user_adapts_its_decoder_and_the_report_compares_it(simulated):
    out, manifest = simulated
    view = manifest["views"][0]
    log = manifest["adaptation"][f"{view}/finishing_adaptive/0"]
    assert log and all(entry["seconds"] > 0 for entry in log)
    finishing = read_records(run_path(out, view, "finishing", 0))
    paper = read_records(run_path(out, view, "both", 0))
    assert finishing["step"] == paper["step"] and finishing != paper  # another user
    summary = write_report(out)
    row = summary["finishing_adaptation"][view]
    assert row["updates"] == len(log) and row["accepted"] == sum(e["accepted"] for e in log)
    text = (out / "report.md").read_text()
    assert "`finishing_adaptive` against the frozen refiner (`finishing`)" in text


def test_a_folder_of_finishing_runs_only_has_no_empty_headline(simulated, tmp_path):
    out, manifest = simulated
    folder = tmp_path / "finishing"
    shutil.copytree(out, folder)
    for path in folder.glob("runs/*/*.csv"):
        if not path.name.startswith("finishing"):
            path.unlink()
    kept = {**manifest, "settings": ["finishing", "finishing_adaptive"]}
    (folder / "manifest.json").write_text(json.dumps(kept))
    summary = write_report(folder)
    text = (folder / "report.md").read_text()
    assert "no headline" in text and "| initial pFM |" not in text
    assert summary["finishing_adaptation"] and "## Online adaptation to a user" in text
