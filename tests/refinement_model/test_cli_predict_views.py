"""`etmira predict` takes a data-set root, a view folder or any file of a view."""

import json

import pytest
import torch

from annotator.cli import main
from refinement_model.checkpoints import save_checkpoint
from refinement_model.nets import create_model


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict_views")
    assert main(["synth", str(root / "views"), "--views", "2", "--size", "160x128"]) == 0
    torch.manual_seed(0)
    checkpoint = root / "base.safetensors"
    save_checkpoint(
        checkpoint,
        create_model("base", decoder_channels=(8, 8, 8, 8, 8)),
        metadata={"patch_size": 128, "stride": 64, "net_size": 64},
    )
    return root / "views", checkpoint


def test_predict_scores_each_view_a_folder_or_file_names_once(data, tmp_path, capsys):
    views, checkpoint = data
    capsys.readouterr()
    given = [
        views / "SYN-0002" / "PS" / "SYN-0002_R_RHO.tif",
        views / "drawings" / "SYN-0001_R_drawings.png",
        views / "SYN-0001" / "PS",
    ]
    assert (
        main(
            ["predict", *map(str, given), "--base", str(checkpoint), "-o", str(tmp_path), "--score"]
        )
        == 0
    )
    printed = [json.loads(line)["view"] for line in capsys.readouterr().out.strip().splitlines()]
    assert printed == ["SYN-0002_R", "SYN-0001_R", "mean"]  # each scored: ground truth found
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "SYN-0001_R_prediction.png",
        "SYN-0001_R_probability.png",
        "SYN-0002_R_prediction.png",
        "SYN-0002_R_probability.png",
    ]


def test_predict_names_a_path_without_views(data, tmp_path, capsys):
    views, checkpoint = data
    assert (
        main(
            [
                "predict",
                str(views),
                str(views / "masks"),
                "--base",
                str(checkpoint),
                "-o",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "masks: no view found here" in capsys.readouterr().err
    assert not tmp_path.joinpath("SYN-0001_R_prediction.png").exists()
