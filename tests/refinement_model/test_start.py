"""The automatic start: the base network, then the refiner with no strokes on every patch."""

import numpy as np
import pytest
import torch

from refinement_model.checkpoints import save_checkpoint
from refinement_model.errors import Cancelled
from refinement_model.nets import create_model
from refinement_model.patch_refiner import PatchRefiner
from refinement_model.patches import stitch_logits
from refinement_model.prediction import Predictor
from refinement_model.refiner_options import APP_REFINEMENT, RefinerOptions
from refinement_model.start import StartPredictor, start_predictor, start_record

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"decoder_channels": (8, 8, 8, 8, 8)}
GRID = {"patch_size": 64, "stride": 32, "net_size": 32}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("start")
    torch.manual_seed(3)
    base = create_model("base", **TINY).eval()
    torch.manual_seed(4)
    refiner = create_model("refiner", **TINY).eval()
    for parameter in refiner.net.segmentation_head.parameters():  # as if trained: not identity
        torch.nn.init.normal_(parameter, std=0.5)
    paths = {"base": root / "base.safetensors", "refiner": root / "refiner.safetensors"}
    save_checkpoint(paths["base"], base, metadata=GRID)
    save_checkpoint(paths["refiner"], refiner, metadata=GRID)
    return paths


def test_start_is_the_refiner_with_no_strokes_on_every_patch(checkpoints):
    start = StartPredictor(
        checkpoints["base"], checkpoints["refiner"], options=RefinerOptions(2, 2)
    )
    image = np.random.default_rng(0).normal(size=(1, 100, 90)).astype(np.float32)
    grid = start.grid(100, 90)
    assert (grid.patch_size, grid.stride, grid.net_size) == (64, 32, 32)
    base = Predictor(checkpoints["base"])
    refiner = PatchRefiner(checkpoints["refiner"], options=RefinerOptions(2, 2))
    zeros = np.zeros((grid.net_size, grid.net_size), np.float32)
    expected = []
    for i in range(len(grid)):
        patch = grid.extract(image, i)
        base_logits = base.net(patch[None])[0]
        expected.append(refiner.refine(patch, base_logits, zeros))
    calls = []
    got = start.predict_image(
        image, grid, batch_size=3, progress=lambda done, total: calls.append((done, total))
    )
    np.testing.assert_allclose(got, stitch_logits(grid, expected), atol=1e-5)
    assert calls[-1] == (len(grid), len(grid))
    # the refiner changes the base's prediction: the start is not the base
    assert (
        np.abs(
            got
            - stitch_logits(
                grid, base.net(np.stack([grid.extract(image, i) for i in range(len(grid))]))
            )
        ).max()
        > 0.01
    )
    assert start.record == {
        "kind": "refined",
        "path": str(checkpoints["refiner"]),
        "orientations": 2,
        "iterations": 2,
    }
    with pytest.raises(Cancelled):
        start.predict_image(image, grid, cancel=lambda: True)
    with pytest.raises(ValueError, match="shape"):
        start.predict_image(image[:, :50], grid)


def test_start_refines_only_the_patches_holding_the_mirror(checkpoints):
    start = StartPredictor(
        checkpoints["base"], checkpoints["refiner"], options=RefinerOptions(orientations=2)
    )
    image = np.random.default_rng(1).normal(size=(1, 160, 160)).astype(np.float32)
    grid = start.grid(160, 160)
    mirror = np.zeros((160, 160), bool)
    mirror[10:40, 20:50] = True
    holding = grid.patches_holding(mirror)
    assert 0 < holding.sum() < len(grid)
    refined_patches = []
    refine_batch = start.refiner.refine_batch
    start.refiner.refine_batch = lambda images, *rest: (
        refined_patches.append(len(images)),
        refine_batch(images, *rest),
    )[1]
    everywhere = start.predict_image(image, grid)
    assert sum(refined_patches) == len(grid)
    refined_patches.clear()
    got = start.predict_image(image, grid, mirror_mask=mirror, batch_size=3)
    assert sum(refined_patches) == holding.sum()
    # inside the mirror the same prediction; patches holding none of it keep the base's
    np.testing.assert_allclose(got[mirror], everywhere[mirror], atol=1e-6)
    base = stitch_logits(
        grid, start.net(np.stack([grid.extract(image, i) for i in range(len(grid))]))
    )
    far = grid.region(int(np.flatnonzero(~holding)[-1]))
    inside_far = np.s_[far[0] : far[2], far[1] : far[3]]
    covered_only_by_base = np.zeros_like(mirror)
    covered_only_by_base[inside_far] = True
    for i in np.flatnonzero(holding):
        y0, x0, y1, x1 = grid.region(int(i))
        covered_only_by_base[y0:y1, x0:x1] = False
    assert covered_only_by_base.any()
    np.testing.assert_allclose(got[covered_only_by_base], base[covered_only_by_base], atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        grid.patches_holding(mirror[:10])


def test_start_predictor_without_refiner_is_the_base(checkpoints):
    base = start_predictor(checkpoints["base"])
    assert type(base) is Predictor
    assert start_record(base) == {"kind": "base", "path": str(checkpoints["base"])}
    shared = start_predictor(base, checkpoints["refiner"])
    assert isinstance(shared, StartPredictor) and shared.base is base
    assert start_record(shared)["kind"] == "refined"


def test_start_refuses_a_refiner_of_other_inputs(checkpoints, tmp_path):
    other = tmp_path / "refiner_rgb.safetensors"
    save_checkpoint(
        other, create_model("refiner", inputs=("depth", "albedo"), **TINY), metadata=GRID
    )
    with pytest.raises(ValueError, match="do not belong together"):
        StartPredictor(checkpoints["base"], other)


def test_a_project_starts_from_the_start_and_records_it(checkpoints, tmp_path):
    from annotator.cli import main
    from annotator.core.project import new_project
    from refinement_model.network_loader import NetworkLoader
    from refinement_model.views import load_view

    assert main(["synth", str(tmp_path / "views"), "--views", "1", "--size", "160x128"]) == 0
    project = new_project(
        tmp_path / "p.etmira",
        tmp_path / "views",
        base=checkpoints["base"],
        refiner=checkpoints["refiner"],
        refiner_options=APP_REFINEMENT,
        loader=NetworkLoader(),
        with_refiner=False,
    )
    view = load_view(tmp_path / "views")
    start = StartPredictor(checkpoints["base"], checkpoints["refiner"])
    expected = start.predict_view(view)
    stored = 1 / (1 + np.exp(-project.session.base_logits))
    np.testing.assert_allclose(stored, expected, atol=1e-4)
    assert project.store.meta()["models"]["start"] == start.record
