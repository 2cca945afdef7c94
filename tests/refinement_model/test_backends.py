"""Inference backends: ONNX Runtime and TorchScript equal eager PyTorch, fall-backs, the ONNX
export command and the checkpoint-keyed cache."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from refinement_model import backends, onnx_export
from refinement_model.backends import EQUALITY_TOLERANCE, BackendFallbackWarning, OnnxBackend
from refinement_model.checkpoints import load_checkpoint, read_metadata, save_checkpoint
from refinement_model.errors import InputError
from refinement_model.fast_net import FastNet
from refinement_model.imageio import file_sha256
from refinement_model.onnx_backend import PROBE_LOGITS_KEY, probe_batch, trusted_cached_backend
from refinement_model.onnx_export import (
    OnnxCache,
    OnnxCacheWarning,
    export_onnx,
    read_onnx_metadata,
)
from refinement_model.patch_refiner import PatchRefiner
from refinement_model.prediction import Predictor
from refinement_model.refiner_options import APP_REFINEMENT, RefinerOptions
from tests.refinement_model.conftest import tiny_refiner

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FOUR_TURNS = RefinerOptions(orientations=4)


@pytest.fixture(scope="module")
def refiner_checkpoint(refiner, tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "refiner.safetensors"
    save_checkpoint(path, refiner, metadata={"net_size": 32, "training": {"steps": 7}})
    return path


def _eager(model, batch):
    with torch.no_grad():
        return model(torch.from_numpy(batch))[:, 0].numpy()


def _refiner_inputs(count: int, size: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(count, 1, size, size)).astype(np.float32)
    logits = (10 * rng.normal(size=(count, size, size))).astype(np.float32)
    strokes = np.zeros((count, size, size), np.float32)
    strokes[:, 5:9, 3:25] = 1
    strokes[:, 20:24, 10:14] = -1
    return image, logits, strokes


@pytest.mark.parametrize("name", ["onnx", "torchscript"])
def test_backend_equals_eager_for_any_batch_and_patch_size(base, refiner, name):
    for model in (base, refiner):
        net = FastNet(model, backend=name, net_size=32)
        assert net.backend == name and net.optimised
        rng = np.random.default_rng(1)
        for count, size in ((1, 32), (3, 32), (5, 32), (2, 64)):
            batch = rng.normal(size=(count, model.spec.in_channels, size, size)).astype(np.float32)
            got = net(batch)
            assert got.shape == (count, size, size) and got.dtype == np.float32
            assert np.abs(got - _eager(model, batch)).max() < EQUALITY_TOLERANCE


def test_onnx_refiner_equals_eager_with_orientations_and_iterations(refiner):
    onnx = PatchRefiner(refiner, options=APP_REFINEMENT, backend="onnx")
    eager = PatchRefiner(refiner, options=APP_REFINEMENT, optimise=False)
    assert onnx.net.backend == "onnx" and eager.net.backend == "eager"
    image, logits, strokes = _refiner_inputs(3)
    full = onnx.refine_batch(image, logits, strokes)
    expected = eager.refine_batch(image, logits, strokes)
    assert full.shape == (3, 32, 32) and np.abs(full - expected).max() < EQUALITY_TOLERANCE
    single = onnx.refine(image[1], logits[1], strokes[1])
    assert np.abs(single - expected[1]).max() < EQUALITY_TOLERANCE
    # the one-pass preview shares the session and equals the eager one pass
    assert onnx.preview.net.engine is onnx.net.engine
    assert (
        np.abs(
            onnx.preview.refine_batch(image, logits, strokes)
            - eager.preview.refine_batch(image, logits, strokes)
        ).max()
        < EQUALITY_TOLERANCE
    )
    # the averaging and the second pass change the result, so the comparison above is not
    # one of two identical one-pass refinements
    assert np.abs(full - onnx.preview.refine_batch(image, logits, strokes)).max() > 1e-2


def test_auto_is_onnx_without_a_gpu_and_unknown_backends_are_refused(base):
    assert FastNet(base, net_size=32).backend == ("cuda" if torch.cuda.is_available() else "onnx")
    assert FastNet(base, net_size=32, backend="onnx", optimise=False).backend == "eager"
    with pytest.raises(ValueError, match="backend"):
        FastNet(base, backend="tensorrt")


def test_falls_back_to_torch_without_onnxruntime(base, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    for name in ("auto", "onnx"):
        with pytest.warns(BackendFallbackWarning, match="onnx"):
            net = FastNet(base, backend=name, net_size=32)
        assert net.backend == "torchscript"
    batch = np.random.default_rng(2).normal(size=(2, 1, 32, 32)).astype(np.float32)
    assert np.abs(net(batch) - _eager(base, batch)).max() < EQUALITY_TOLERANCE


def test_a_backend_not_equal_to_eager_is_replaced(base, monkeypatch):
    run = OnnxBackend.__call__
    monkeypatch.setattr(OnnxBackend, "__call__", lambda self, batch: run(self, batch) + 0.01)
    with pytest.warns(BackendFallbackWarning, match="difference"):
        net = FastNet(base, backend="onnx", net_size=32)
    assert net.backend == "torchscript"
    monkeypatch.setattr(backends.TorchScriptBackend, "__init__", _fail)
    with pytest.warns(BackendFallbackWarning, match="torchscript"):
        assert FastNet(base, backend="onnx", net_size=32).backend == "eager"


def _fail(*args, **kwargs):
    raise RuntimeError("cannot trace")


def test_export_command_writes_a_self_describing_equal_model(
    refiner, refiner_checkpoint, tmp_path, capsys
):
    from annotator.cli import main

    out = tmp_path / "refiner.onnx"
    assert main(["export-onnx", str(refiner_checkpoint), "-o", str(out)]) == 0
    assert "refiner network" in capsys.readouterr().out
    metadata, digest = read_onnx_metadata(out)
    assert metadata == read_metadata(refiner_checkpoint)
    assert digest == file_sha256(refiner_checkpoint)
    model, _ = load_checkpoint(refiner_checkpoint)
    session = OnnxBackend(out.read_bytes())
    for count in (1, 4):
        batch = np.random.default_rng(count).normal(size=(count, 3, 64, 64)).astype(np.float32)
        assert np.abs(session(batch) - _eager(model, batch)).max() < EQUALITY_TOLERANCE
    # bad input: one line, status 2, nothing written
    assert (
        main(["export-onnx", str(tmp_path / "missing.safetensors"), "-o", str(tmp_path / "x.onnx")])
        == 2
    )
    assert (
        main(["export-onnx", str(refiner_checkpoint), "-o", str(tmp_path / "no" / "x.onnx")]) == 2
    )
    assert not (tmp_path / "x.onnx").exists()
    assert "error" in capsys.readouterr().err
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(InputError, match="garbage.onnx"):
        read_onnx_metadata(garbage)


def test_cache_is_keyed_by_the_checkpoint_and_reused(refiner_checkpoint, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = PatchRefiner(refiner_checkpoint, onnx_cache=cache)
    path = cache / f"{file_sha256(refiner_checkpoint)}.onnx"
    assert first.net.backend == "onnx" and [p.name for p in cache.iterdir()] == [path.name]
    assert read_onnx_metadata(path) == (
        read_metadata(refiner_checkpoint),
        file_sha256(refiner_checkpoint),
    )
    # a second session reads the cached file: it does not export
    monkeypatch.setattr(onnx_export, "export_onnx", _fail)
    second = PatchRefiner(refiner_checkpoint, options=FOUR_TURNS, onnx_cache=cache)
    assert second.net.backend == "onnx"
    image, logits, strokes = _refiner_inputs(2)
    eager = PatchRefiner(refiner_checkpoint, options=FOUR_TURNS, optimise=False)
    assert (
        np.abs(
            second.refine_batch(image, logits, strokes) - eager.refine_batch(image, logits, strokes)
        ).max()
        < EQUALITY_TOLERANCE
    )
    with pytest.raises(ValueError, match="checkpoint file"):
        PatchRefiner(tiny_refiner(4), onnx_cache=cache)


def _forged(checkpoint, model) -> bytes:
    """A valid ONNX model of another network claiming to be the checkpoint's export."""
    return export_onnx(
        model,
        size=32,
        metadata=read_metadata(checkpoint),
        checkpoint_sha256=file_sha256(checkpoint),
    )


def _probe_logits(model) -> np.ndarray:
    return backends.eager_logits(model, probe_batch(model.spec.in_channels, 32))


@pytest.mark.parametrize(
    "tamper", ["truncated", "other_checkpoint", "other_weights", "other_weights_genuine_probe"]
)
def test_a_tampered_cache_file_is_not_trusted(refiner_checkpoint, tmp_path, tamper):
    cache = OnnxCache(tmp_path / "cache", refiner_checkpoint)
    model, _ = load_checkpoint(refiner_checkpoint)
    genuine = cache.export(model, size=32)
    cache.write(genuine, probe_logits=_probe_logits(model))
    if tamper == "truncated":
        cache.path.write_bytes(cache.path.read_bytes()[: len(genuine) // 2])
    elif tamper == "other_checkpoint":
        cache.path.write_bytes(export_onnx(model, size=32, checkpoint_sha256="0" * 64))
    elif tamper == "other_weights":
        cache.path.write_bytes(_forged(refiner_checkpoint, tiny_refiner(5)))
    else:
        # another network carrying the genuine export's digest and probe logits: only the
        # probe tells them apart, with or without PyTorch
        OnnxCache(tmp_path / "forged", refiner_checkpoint).write(
            _forged(refiner_checkpoint, tiny_refiner(5)), probe_logits=_probe_logits(model)
        )
        cache.path.write_bytes((tmp_path / "forged" / cache.path.name).read_bytes())
    tampered = cache.path.read_bytes()
    assert trusted_cached_backend(cache.folder, refiner_checkpoint, channels=3, size=32) is None
    with pytest.warns(OnnxCacheWarning, match="not trusted"):
        refiner = PatchRefiner(refiner_checkpoint, onnx_cache=cache.folder)
    assert refiner.net.backend == "onnx"
    # exported anew from the checkpoint, and equal to it
    rebuilt = cache.path.read_bytes()
    assert rebuilt != tampered
    assert read_onnx_metadata(cache.path)[1] == cache.digest
    image, logits, strokes = _refiner_inputs(2, seed=3)
    eager = PatchRefiner(refiner_checkpoint, optimise=False)
    assert (
        np.abs(
            refiner.refine_batch(image, logits, strokes)
            - eager.refine_batch(image, logits, strokes)
        ).max()
        < EQUALITY_TOLERANCE
    )


def test_predictor_takes_a_backend_and_a_cache(tmp_path, base):
    path = tmp_path / "base.safetensors"
    save_checkpoint(path, base, metadata={"net_size": 32})
    assert Predictor(path, backend="torchscript").net.backend == "torchscript"
    predictor = Predictor(path, onnx_cache=tmp_path / "cache")
    assert predictor.net.backend == "onnx"
    cached = tmp_path / "cache" / f"{file_sha256(path)}.onnx"
    assert read_onnx_metadata(cached) == (read_metadata(path), file_sha256(path))


_TORCH_FREE_START = """
import sys
import numpy as np
from refinement_model.patch_refiner import PatchRefiner
from refinement_model.refiner_options import RefinerOptions
refiner = PatchRefiner(sys.argv[1], options=RefinerOptions(orientations=4), onnx_cache=sys.argv[2])
inputs = np.load(sys.argv[3])
refined = refiner.refine_batch(inputs["image"], inputs["logits"], inputs["strokes"])
np.save(sys.argv[4], refined)
print(refiner.net.backend, "torch" in sys.modules)
"""


def test_a_trusted_cached_export_runs_without_torch(refiner_checkpoint, tmp_path):
    cache = tmp_path / "cache"
    PatchRefiner(refiner_checkpoint, onnx_cache=cache)  # the first start exports and caches
    image, logits, strokes = _refiner_inputs(2, seed=4)
    np.savez(tmp_path / "inputs.npz", image=image, logits=logits, strokes=strokes)
    out = tmp_path / "refined.npy"
    args = [refiner_checkpoint, cache, tmp_path / "inputs.npz", out]
    result = subprocess.run(
        [sys.executable, "-c", _TORCH_FREE_START, *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["onnx", "False"]
    eager = PatchRefiner(refiner_checkpoint, options=FOUR_TURNS, optimise=False)
    assert (
        np.abs(np.load(out) - eager.refine_batch(image, logits, strokes)).max() < EQUALITY_TOLERANCE
    )
    # and it loads the eager network when asked for it (the session adaptation trains it)
    fast = PatchRefiner(refiner_checkpoint, onnx_cache=cache).net
    assert fast._model is None
    weights = dict(fast.model.named_parameters())
    assert torch.equal(
        weights["net.segmentation_head.0.weight"],
        dict(load_checkpoint(refiner_checkpoint)[0].named_parameters())[
            "net.segmentation_head.0.weight"
        ],
    )


def test_an_export_cached_without_probe_logits_gains_them(refiner_checkpoint, tmp_path):
    cache = OnnxCache(tmp_path / "cache", refiner_checkpoint)
    model, _ = load_checkpoint(refiner_checkpoint)
    cache.folder.mkdir()
    cache.path.write_bytes(cache.export(model, size=32))
    assert trusted_cached_backend(cache.folder, refiner_checkpoint, channels=3, size=32) is None
    assert PatchRefiner(refiner_checkpoint, onnx_cache=cache.folder).net.backend == "onnx"
    trusted = trusted_cached_backend(cache.folder, refiner_checkpoint, channels=3, size=32)
    assert trusted is not None and PROBE_LOGITS_KEY in trusted.metadata_props
