import json
import subprocess
import sys

import numpy as np
import pytest

from annotator.cli import main
from refinement_model.imageio import write_png, write_tiff
from refinement_model.metrics import score_masks

KEYS = ["pfm", "fm", "iou", "precision", "recall", "dice"]


@pytest.fixture
def masks(tmp_path):
    gt = np.zeros((12, 16), dtype=bool)
    gt[4:7, 2:14] = True
    pred = np.zeros_like(gt)
    pred[5, 0:9] = True
    mirror = np.zeros_like(gt)
    mirror[:, 1:] = True
    write_png(tmp_path / "pred.png", pred.astype(np.uint8) * 255)
    write_tiff(tmp_path / "gt.tif", gt.astype(np.uint8))
    rgb = np.zeros(gt.shape + (3,), dtype=np.uint8)
    rgb[..., 0] = mirror * 255
    rgb[..., 2] = 255  # a blue channel everywhere must not widen the mirror area
    write_png(tmp_path / "mask.png", rgb)
    return tmp_path, pred, gt, mirror


def test_json_output_matches_score_masks(masks, capsys):
    folder, pred, gt, _ = masks
    assert main(["score", str(folder / "pred.png"), str(folder / "gt.tif"), "--json"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    scores = json.loads(out)
    assert list(scores) == KEYS
    assert scores == pytest.approx(score_masks(pred, gt), abs=1e-12)


def test_mirror_mask_uses_red_channel(masks, capsys):
    folder, pred, gt, mirror = masks
    argv = [
        "score",
        str(folder / "pred.png"),
        str(folder / "gt.tif"),
        "--json",
        "--mask",
        str(folder / "mask.png"),
    ]
    assert main(argv) == 0
    scores = json.loads(capsys.readouterr().out)
    expected = score_masks(pred, gt, mask=mirror)
    assert scores == pytest.approx(expected, abs=1e-12)
    assert scores["precision"] > score_masks(pred, gt)["precision"]


def test_table_output(masks, capsys):
    folder, pred, gt, _ = masks
    assert main(["score", str(folder / "pred.png"), str(folder / "gt.tif")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6
    assert lines[0].startswith("pseudo-F-measure")
    assert float(lines[2].split()[-1]) == pytest.approx(score_masks(pred, gt)["iou"], abs=1e-4)


def test_alpha_channel_option(tmp_path, capsys):
    rgba = np.zeros((6, 6, 4), dtype=np.uint8)
    rgba[..., :3] = 255  # white everywhere, the line only in alpha
    rgba[2, :, 3] = 255
    write_png(tmp_path / "drawings.png", rgba)
    line = np.zeros((6, 6), dtype=np.uint8)
    line[2] = 1
    write_png(tmp_path / "line.png", line)
    argv = ["score", str(tmp_path / "line.png"), str(tmp_path / "drawings.png"), "--json"]
    assert main(argv + ["--channel", "alpha"]) == 0
    assert json.loads(capsys.readouterr().out)["iou"] == 1.0
    assert main(argv) == 0  # "any": the white RGB makes the whole image a line
    assert json.loads(capsys.readouterr().out)["iou"] == pytest.approx(6 / 36)


@pytest.mark.parametrize("case", ["missing", "garbage", "size", "mask_size"])
def test_bad_input_exits_2_with_one_line(masks, capsys, case):
    folder, *_ = masks
    (folder / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png at all" * 3)
    write_png(folder / "small.png", np.ones((5, 5), dtype=np.uint8))
    pred, gt, extra = str(folder / "pred.png"), str(folder / "gt.tif"), []
    bad = {
        "missing": folder / "nope.png",
        "garbage": folder / "garbage.png",
        "size": folder / "small.png",
        "mask_size": folder / "small.png",
    }[case]
    if case == "mask_size":
        extra = ["--mask", str(bad)]
    else:
        gt = str(bad)
    assert main(["score", pred, gt, *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and lines[0].startswith("etmira score: error")


def test_bad_input_in_subprocess_has_no_traceback(masks):
    folder, *_ = masks
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from annotator.cli import main; sys.exit(main())",
            "score",
            str(folder / "pred.png"),
            str(folder / "missing.tif"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "missing.tif" in result.stderr


@pytest.mark.parametrize(
    "case, message",
    [
        ("size", "{bad}: the prediction is 5 x 5 (H x W) while the ground truth {gt} is 12 x 16"),
        (
            "mask_size",
            "{bad}: the mirror-area mask is 5 x 5 (H x W) while the ground truth {gt} is 12 x 16",
        ),
        ("gt_missing", "{bad}: file not found (the ground truth)"),
        ("pred_garbage", "{bad}: "),
    ],
)
def test_errors_name_the_file_and_what_it_is(masks, capsys, case, message):
    folder, *_ = masks
    write_png(folder / "small.png", np.ones((5, 5), dtype=np.uint8))
    (folder / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png at all" * 3)
    pred, gt, extra = folder / "pred.png", folder / "gt.tif", []
    bad = {
        "size": folder / "small.png",
        "mask_size": folder / "small.png",
        "gt_missing": folder / "nope.tif",
        "pred_garbage": folder / "garbage.png",
    }[case]
    if case == "size" or case == "pred_garbage":
        pred = bad
    elif case == "mask_size":
        extra = ["--mask", str(bad)]
    else:
        gt = bad
    assert main(["score", str(pred), str(gt), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("etmira score: error: " + message.format(bad=bad, gt=gt))
    if case == "pred_garbage":
        assert err.endswith("(the prediction)")
