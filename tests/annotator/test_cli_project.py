"""``etmira project new / replay / info / export`` on a tiny view with tiny models."""

import json

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from annotator.cli import main
from annotator.core.journal_io import read_document, write_strokes
from annotator.core.project import open_project
from refinement_model.checkpoints import save_checkpoint
from refinement_model.imageio import read_binary_mask, write_png, write_tiff
from refinement_model.nets import create_model
from refinement_model.refiner_options import APP_REFINEMENT
from refinement_model.strokes import Stroke

pytestmark = pytest.mark.slow  # tiny torch models, but tracing and imports take seconds

SHAPE = (96, 128)
TINY = {"decoder_channels": (8, 8, 8, 8, 8)}
GRID = {"patch_size": 64, "stride": 32, "net_size": 64}


def make_view(folder, *, seed=0):
    """Write a small view (five files) and return the folder and its ground truth."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth = np.zeros(SHAPE, bool)
    truth[30:34, 10:110] = True
    truth[10:90, 60:63] = True
    depth = rng.normal(0, 0.01, SHAPE).astype(np.float32) - 0.2 * truth
    normals = np.dstack([np.zeros(SHAPE), np.zeros(SHAPE), np.ones(SHAPE)]).astype(np.float32)
    write_tiff(folder / "V_U.tif", depth, px_per_mm=10.0)
    write_tiff(folder / "V_RHO.tif", rng.random(SHAPE).astype(np.float32), px_per_mm=10.0)
    write_tiff(folder / "V_N.tif", normals, px_per_mm=10.0)
    rgba = np.zeros(SHAPE + (4,), np.uint8)
    rgba[truth, 3] = 255
    write_png(folder / "V_drawings.png", rgba)
    mirror = np.zeros(SHAPE + (3,), np.uint8)
    mirror[4:-4, 4:-4, 0] = 255
    write_png(folder / "V_mask.png", mirror)
    return folder, truth


def make_models(folder):
    """Tiny base and refiner checkpoints on a 64-px patch grid."""
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "base.safetensors", create_model("base", **TINY), metadata=GRID)
    refiner = create_model("refiner", **TINY)
    with torch.no_grad():  # an untrained refiner is the identity; this one changes the logits
        for parameter in refiner.net.segmentation_head.parameters():
            parameter.normal_(0.0, 1.0)
    save_checkpoint(folder / "refiner.safetensors", refiner, metadata=GRID)
    return folder / "base.safetensors", folder / "refiner.safetensors"


def make_strokes(count, *, seed=0):
    rng = np.random.default_rng(seed)
    strokes = []
    for _ in range(count):
        points = rng.uniform([5, 5], [SHAPE[1] - 5, SHAPE[0] - 5], size=(rng.integers(1, 4), 2))
        strokes.append(Stroke(str(rng.choice(["add", "erase"])), points, rng.uniform(1.5, 4)))
    return strokes


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    view, truth = make_view(root / "view")
    base, refiner = make_models(root / "models")
    project = root / "p.etmira"
    assert (
        main(
            [
                "project",
                "new",
                str(view),
                "-o",
                str(project),
                "--base",
                str(base),
                "--refiner",
                str(refiner),
            ]
        )
        == 0
    )
    return root, project, truth


def test_new_records_view_models_and_grid(made):
    root, project, _ = made
    with open_project(project, readonly=True, refine=None) as opened:
        meta = opened.store.meta()
        assert meta["grid"] == GRID
        assert set(meta["view"]["files"]) == {"normals", "albedo", "depth", "drawings", "mask"}
        assert len(meta["view"]["files"]["depth"]["sha256"]) == 64
        assert meta["models"]["base"]["metadata"]["model"]["kind"] == "base"
        assert meta["models"]["refiner"]["path"] == str(root / "models" / "refiner.safetensors")
        # the keys old projects reopen by: the refinement the session committed
        assert meta["models"]["refiner"]["orientations"] == APP_REFINEMENT.orientations == 4
        assert meta["models"]["refiner"]["iterations"] == APP_REFINEMENT.iterations == 2
        assert opened.session.journal == [] and opened.warnings == ()
    # the recorded refiner averages orientations and refines again, so it comes with its
    # one-pass preview
    with open_project(project, readonly=True) as opened:
        stroke = Stroke("add", [(10, 10), (30, 12)], 2.0)
        assert not opened.session.propose_stroke(stroke, preview=True).final
        assert opened.session.finish_proposal(opened.session.pending).final


def test_replay_info_export_round_trip(made, tmp_path, capsys):
    _, project, truth = made
    strokes = make_strokes(6, seed=1)
    write_strokes(tmp_path / "s.json", strokes)
    copy = tmp_path / "p.etmira"
    copy.write_bytes(project.read_bytes())  # the module project stays pristine
    assert main(["project", "replay", str(copy), str(tmp_path / "s.json")]) == 0
    assert "replayed 6 strokes" in capsys.readouterr().out

    assert main(["project", "info", str(copy), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    with open_project(copy, readonly=True, refine=None) as opened:
        session = opened.session
        assert session.strokes == strokes and len(session.journal) == 6
        assert info["strokes"] == 6 and info["events"] == 6
        assert info["annotated_pixels"] == int(np.count_nonzero(session.user_map)) > 0
        assert info["patches_done"] == 0 and info["needs_recovery"] is False
        scores = session.scores()
        assert info["pfm"] == pytest.approx(scores["pfm"]) and info["iou"] == pytest.approx(
            scores["iou"]
        )
        mask = session.mask.copy()
        provenance = session.provenance.copy()

    out = tmp_path / "out"
    out.mkdir()
    assert (
        main(
            [
                "project",
                "export",
                str(copy),
                "--png",
                str(out / "m.png"),
                "--bilevel-png",
                str(out / "m1.png"),
                "--tiff",
                str(out / "m.tif"),
                "--svg",
                str(out / "m.svg"),
                "--journal",
                str(out / "j.json"),
                "--provenance",
                str(out / "prov.png"),
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(read_binary_mask(out / "m.png"), mask)
    with Image.open(out / "m1.png") as image:
        np.testing.assert_array_equal(np.array(image), mask)
    np.testing.assert_array_equal(tifffile.imread(out / "m.tif"), mask)
    assert "<svg" in (out / "m.svg").read_text()
    provenance_image = read_binary_mask(out / "prov.png")  # the view, then the legend band
    assert provenance_image.shape[0] > mask.shape[0]
    assert provenance_image[: mask.shape[0]].sum() == np.count_nonzero(mask | (provenance == 2))
    journal = read_document(out / "j.json")
    assert [Stroke.from_dict(s) for s in journal["strokes"]] == strokes
    assert [e["type"] for e in journal["events"]] == ["stroke"] * 6
    assert journal["effort"]["strokes"] == 6


def test_bad_input_exits_2_with_one_line(made, tmp_path, capsys):
    _, project, _ = made
    (tmp_path / "bad.json").write_text('{"strokes": [{"kind": "add"}]}')
    assert main(["project", "replay", str(project), str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stroke 0" in err
    write_strokes(tmp_path / "outside.json", [Stroke("add", [(5000, 5000)], 2)])
    assert (
        main(["project", "replay", str(project), str(tmp_path / "outside.json"), "--no-refine"])
        == 2
    )
    assert "stroke 0" in capsys.readouterr().err
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    assert main(["project", "info", str(tmp_path / "x.png")]) == 2
    assert "not an etmira project" in capsys.readouterr().err
    assert main(["project", "export", str(project)]) == 2
    assert "--png" in capsys.readouterr().err
    assert main(["project", "new", str(tmp_path), "-o", str(project), "--base", "x"]) == 2
    assert "already exists" in capsys.readouterr().err
