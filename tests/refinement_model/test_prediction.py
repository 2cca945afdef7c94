"""Whole-view prediction: patches in batches, stitched; cancel; the predict command."""

import numpy as np
import pytest

from refinement_model.backends import EQUALITY_TOLERANCE
from refinement_model.checkpoints import save_checkpoint
from refinement_model.errors import Cancelled
from refinement_model.fast_net import FastNet
from refinement_model.patches import PatchGrid
from refinement_model.prediction import predict_image, predict_patch_logits

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fast_base(base):
    return FastNet(base, net_size=32)


def test_predict_image_matches_manual_stitching(base, fast_base):
    rng = np.random.default_rng(1)
    image = rng.normal(size=(1, 100, 90)).astype(np.float32)
    before = image.copy()
    grid = PatchGrid(100, 90, patch_size=64, stride=32, net_size=32)
    eager = FastNet(base, optimise=False)
    expected = [eager(grid.extract(image, i)[None])[0] for i in range(len(grid))]
    got = list(predict_patch_logits(fast_base, image, grid, batch_size=4))
    assert len(got) == len(grid)
    assert max(np.abs(a - b).max() for a, b in zip(got, expected, strict=True)) < EQUALITY_TOLERANCE
    calls = []
    probs = predict_image(
        fast_base,
        image,
        grid=grid,
        batch_size=4,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert probs.shape == (100, 90) and probs.dtype == np.float32
    assert probs.min() >= 0 and probs.max() <= 1
    assert calls[-1] == (len(grid), len(grid))
    np.testing.assert_array_equal(image, before)


def test_predict_image_cancel(fast_base):
    grid = PatchGrid(64, 64, patch_size=32, stride=16, net_size=32)
    image = np.zeros((1, 64, 64), np.float32)
    with pytest.raises(Cancelled):
        predict_image(fast_base, image, grid=grid, cancel=lambda: True)
    with pytest.raises(ValueError, match="batch_size"):
        list(predict_patch_logits(fast_base, image, grid, batch_size=0))


def test_predict_cli_writes_mask_and_probabilities(base, tmp_path, capsys):
    from annotator.cli import main
    from refinement_model.imageio import read_png
    from refinement_model.views import load_view

    assert main(["synth", str(tmp_path / "views"), "--views", "1", "--size", "160x128"]) == 0
    checkpoint = tmp_path / "base.safetensors"
    save_checkpoint(checkpoint, base)
    capsys.readouterr()
    predict = ["predict", str(tmp_path / "views"), "--base", str(checkpoint)]
    assert main([*predict, "-o", str(tmp_path / "out"), "--score"]) == 0
    view = load_view(tmp_path / "views", "SYN-0001_R")
    mask = read_png(tmp_path / "out" / "SYN-0001_R_prediction.png")
    probs = read_png(tmp_path / "out" / "SYN-0001_R_probability.png")
    assert mask.shape == probs.shape == (128, 160)
    assert set(np.unique(mask)) <= {0, 255}
    assert not mask[~view.mirror_mask].any() and not probs[~view.mirror_mask].any()
    np.testing.assert_array_equal(mask > 0, probs > 127.5)
    printed = capsys.readouterr().out.strip().splitlines()
    assert '"view": "SYN-0001_R"' in printed[0] and '"view": "mean"' in printed[-1]
    assert main([*predict, "-o", str(tmp_path / "out"), "--threshold", "2"]) == 2
