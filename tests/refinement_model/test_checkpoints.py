"""Checkpoints: round trip, metadata, refusal of foreign files, model-info."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from annotator.cli import main
from refinement_model.checkpoints import load_checkpoint, read_metadata, save_checkpoint
from refinement_model.errors import CheckpointError
from refinement_model.nets import create_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"decoder_channels": (8, 8, 8, 8, 8)}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("ckpt")
    base = create_model("base", **TINY)
    refiner = create_model("refiner", **TINY)
    save_checkpoint(
        folder / "base.safetensors",
        base,
        metadata={"validation": {"pfm": 0.5}, "training": {"data_seed": 7}},
    )
    save_checkpoint(folder / "refiner.safetensors", refiner)
    return folder, base, refiner


def test_round_trip_same_outputs(saved):
    folder, base, _ = saved
    loaded, metadata = load_checkpoint(folder / "base.safetensors", kind="base", inputs=("depth",))
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(base.eval()(x), loaded(x))
    assert metadata["validation"] == {"pfm": 0.5}
    assert metadata["model"]["encoder"] == base.spec.encoder
    assert not any(p.requires_grad for p in loaded.parameters())


def test_refuses_random_bytes(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError, match="not a safetensors"):
        load_checkpoint(path)


def test_refuses_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such"):
        read_metadata(tmp_path / "absent.safetensors")


def test_refuses_foreign_safetensors(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(path), metadata={"author": "someone"})
    with pytest.raises(CheckpointError, match="without etmira metadata"):
        load_checkpoint(path)


def test_refuses_wrong_kind(saved):
    folder = saved[0]
    with pytest.raises(CheckpointError, match="base checkpoint, a refiner checkpoint"):
        load_checkpoint(folder / "base.safetensors", kind="refiner")


def test_refuses_wrong_channels(saved):
    folder = saved[0]
    with pytest.raises(CheckpointError, match="expected"):
        load_checkpoint(folder / "refiner.safetensors", kind="refiner", inputs=("depth", "normals"))


def test_refuses_weights_not_fitting_description(saved, tmp_path):
    folder, _, refiner = saved
    metadata = read_metadata(folder / "refiner.safetensors")
    metadata["model"]["kind"] = "base"  # a base has 2 channels fewer than these weights
    path = tmp_path / "lying.safetensors"
    save_file(
        {k: v.contiguous() for k, v in refiner.state_dict().items()},
        str(path),
        metadata={"etmira": json.dumps(metadata)},
    )
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(path)


def test_model_info_cli(saved, capsys, tmp_path):
    folder = saved[0]
    assert main(["model-info", str(folder / "base.safetensors"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"]["kind"] == "base" and printed["training"]["data_seed"] == 7
    assert main(["model-info", str(folder / "base.safetensors")]) == 0
    assert "validation.pfm: 0.5" in capsys.readouterr().out
    (tmp_path / "x.safetensors").write_bytes(b"nothing")
    assert main(["model-info", str(tmp_path / "x.safetensors")]) == 2
    assert "not a safetensors" in capsys.readouterr().err


def test_saved_file_is_readable_by_others(saved):
    import os
    import stat

    mode = os.stat(saved[0] / "base.safetensors").st_mode
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(mode) == 0o666 & ~umask
    assert not [p for p in os.listdir(saved[0]) if p.endswith(".tmp")]
