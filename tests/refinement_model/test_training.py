"""Training: data sampling, stroke sequences, loss going down, resume, DDP with 2 processes."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from annotator.cli import main
from refinement_model.checkpoints import load_checkpoint, read_metadata, read_tensors
from refinement_model.errors import CheckpointError
from refinement_model.metrics import thin
from refinement_model.nets import LOGIT_SCALE, ModelSpec, create_model, refiner_input
from refinement_model.patches import PatchGrid
from refinement_model.refiner_options import RefinerOptions
from refinement_model.strokes import burn_in
from refinement_model.training.base import GridOptions, initial_model, train_base
from refinement_model.training.data import TrainingView, dihedral, downsample_view, sample_patches
from refinement_model.training.loop import TrainConfig, resume_path, train_loop
from refinement_model.training.losses import DistillationLoss, SegmentationLoss
from refinement_model.training.refiner import (
    add_policy_strokes,
    refined_scores,
    refiner_spec,
    simulate_strokes,
    stroke_count,
    train_refiner,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = (8, 8, 8, 8, 8)
GEOMETRY = GridOptions(patch_size=64, stride=32, net_size=32)


@pytest.fixture(scope="module")
def views(tmp_path_factory):
    root = tmp_path_factory.mktemp("views")
    assert (
        main(["synth", str(root / "train"), "--views", "1", "--size", "192x160", "--seed", "3"])
        == 0
    )
    assert (
        main(
            [
                "synth",
                str(root / "val"),
                "--views",
                "1",
                "--first",
                "9",
                "--size",
                "128x128",
                "--seed",
                "4",
            ]
        )
        == 0
    )
    return root


def _line_view():
    gt = np.zeros((40, 50), bool)
    gt[20, :] = True
    image = np.arange(40 * 50, dtype=np.float32).reshape(1, 40, 50)
    return TrainingView("v", image, gt, np.ones_like(gt))


def test_sample_patches_centred_on_lines():
    view = _line_view()
    images, targets = sample_patches([view], 6, size=9, rng=0, line_fraction=1.0, augmentation=None)
    assert images.shape == (6, 1, 9, 9) and images.dtype == np.float32
    assert targets.shape == (6, 9, 9) and targets.dtype == bool
    assert targets[:, 4, 4].all()  # the centre pixel is a line pixel
    assert (targets.sum(axis=(1, 2)) == 9).all()  # the horizontal line crosses the patch
    again, _ = sample_patches([view], 6, size=9, rng=0, line_fraction=1.0, augmentation=None)
    np.testing.assert_array_equal(images, again)  # reproducible from the seed
    _, lines = sample_patches([view], 20, size=9, rng=1)
    assert lines.any(axis=(1, 2)).mean() > 0.5


def test_dihedral_gives_eight_distinct_transforms():
    a = np.arange(6).reshape(2, 3)
    outs = {tuple(map(tuple, dihedral([a], k)[0])) for k in range(8)}
    assert len(outs) == 8
    np.testing.assert_array_equal(dihedral([a], 0)[0], a)


def test_downsample_view_matches_grid_extract():
    rng = np.random.default_rng(0)
    image = rng.random((1, 128, 128)).astype(np.float32)
    gt = rng.random((128, 128)) > 0.7
    small, small_gt, small_mask = downsample_view(image, gt, np.ones_like(gt), factor=0.5)
    grid = PatchGrid(128, 128, patch_size=64, stride=64, net_size=32)
    np.testing.assert_allclose(small[:, 32:64, 0:32], grid.extract(image, 2), atol=1e-6)
    np.testing.assert_array_equal(small_gt[32:64, 0:32], grid.extract(gt, 2))
    assert small_mask.all()


def test_simulate_strokes_in_sequence():
    gt = np.zeros((64, 64), bool)
    gt[30:34, 4:60] = True
    prediction = np.zeros_like(gt)
    prediction[5:9, 4:60] = True
    strokes = simulate_strokes(gt, prediction, count=3, rng=0)
    assert len(strokes) == 3
    current = prediction
    for stroke in strokes:  # every stroke changes the mask it was drawn against
        after = burn_in(current, [stroke])
        assert (after != current).any()
        current = after
    assert simulate_strokes(gt, gt, count=3, rng=0) == []


def _fixed_batch(batch=2, size=32):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(batch, 1, size, size)).astype(np.float32)
    y = np.zeros((batch, size, size), bool)
    y[:, 10:14, :] = True
    x[:, 0, 10:14, :] += 3
    return x, y


def _loss(model, batch):
    model.eval()
    with torch.no_grad():
        return float(
            SegmentationLoss()(model(torch.from_numpy(batch[0])), torch.from_numpy(batch[1]))
        )


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    model = create_model("base", decoder_channels=TINY)
    batch = _fixed_batch()
    before = _loss(model, batch)
    saved = []
    best = train_loop(
        model,
        next_batch=lambda rng: batch,
        validate=lambda net: (-_loss(net, batch), {}),
        save_best=lambda net, metrics: saved.append(metrics["step"]),
        config=TrainConfig(max_steps=8, val_every=4, lr=3e-3),
    )
    assert _loss(model, batch) < before
    assert best["step"] in saved and saved[0] == 4


def test_resume_continues_exactly(tmp_path):
    batch = _fixed_batch()

    def run(steps, resume):
        torch.manual_seed(0)
        model = create_model("base", decoder_channels=TINY)
        train_loop(
            model,
            next_batch=lambda rng: (
                batch[0] + rng.normal(size=(1, 1, 1, 1)).astype(np.float32),
                batch[1],
            ),
            validate=lambda net: (0.0, {}),
            save_best=lambda net, metrics: None,
            config=TrainConfig(max_steps=steps, val_every=2),
            resume_file=tmp_path / "r.resume.safetensors",
            resume=resume,
        )
        return model.state_dict()

    run(2, False)
    resumed = run(4, True)
    (tmp_path / "r.resume.safetensors").unlink()
    straight = run(4, False)
    assert all(torch.allclose(resumed[k].float(), straight[k].float(), atol=1e-6) for k in straight)


@pytest.fixture(scope="module")
def tiny_base(views, tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "base.safetensors"
    spec = ModelSpec(kind="base", decoder_channels=TINY)
    best = train_base(
        data=[views / "train"],
        val=[views / "val"],
        out=out,
        spec=spec,
        config=TrainConfig(max_steps=2, val_every=1, batch_size=2),
        geometry=GEOMETRY,
        data_seed=3,
    )
    return out, best


def test_train_base_writes_checkpoint_with_metadata(tiny_base):
    out, best = tiny_base
    metadata = read_metadata(out)
    assert metadata["training"]["data_seed"] == 3
    assert metadata["patch_size"] == 64 and metadata["net_size"] == 32
    assert metadata["validation"]["pfm"] == best["pfm"]
    assert set(metadata["channel_stats"]) == {"depth"}
    assert resume_path(out).exists()
    load_checkpoint(out, kind="base")


def test_train_refiner_on_frozen_base(views, tiny_base, tmp_path):
    out = tmp_path / "refiner.safetensors"
    best = train_refiner(
        base=tiny_base[0],
        data=[views / "train"],
        val=[views / "val"],
        out=out,
        config=TrainConfig(max_steps=2, val_every=1, batch_size=2),
        pool_size=4,
        val_per_view=4,
        data_seed=3,
    )
    model, metadata = load_checkpoint(out, kind="refiner", inputs=("depth",))
    assert model.spec.decoder_channels == TINY  # the base's network by default
    assert metadata["net_size"] == 32  # and its patch geometry
    validation = metadata["validation"]
    assert validation["gain"] == best["gain"] == best["score"]
    assert validation["gain"] == pytest.approx(
        validation["refined_pfm"] / validation["human_pfm"] - 1
    )
    assert metadata["training"]["base"]["validation"]["pfm"] == tiny_base[1]["pfm"]


def test_batch_workers_do_not_change_training(views, tiny_base, tmp_path):
    """Strokes simulated in worker processes give the very batches of the single process
    (with on-policy strokes drawn in the training process on top)."""

    def trained(workers):
        out = tmp_path / f"refiner{workers}.safetensors"
        train_refiner(
            base=tiny_base[0],
            data=[views / "train"],
            val=[views / "val"],
            out=out,
            config=TrainConfig(max_steps=3, val_every=3, batch_size=2, lr=3e-3, workers=workers),
            pool_size=4,
            val_per_view=4,
            max_strokes=4,
            policy_rounds=2,
        )
        return read_tensors(out)[0]

    alone, with_workers = trained(0), trained(2)
    assert alone.keys() == with_workers.keys()
    assert all(torch.equal(alone[k], with_workers[k]) for k in alone)
    with pytest.raises(ValueError, match="workers"):
        TrainConfig(workers=-1)


class _Constant(torch.nn.Module):
    """A refiner stand-in that predicts every pixel as line or every pixel as background."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, inputs):
        return torch.full_like(inputs[:, :1], self.value)


def test_policy_strokes_answer_the_networks_own_output():
    gt = np.zeros((2, 32, 32), bool)
    gt[:, 16, 4:28] = True
    # the base prediction is perfect: strokes against it would be impossible
    logits = torch.from_numpy(np.where(gt, 10.0, -10.0).astype(np.float32))
    inputs = refiner_input(torch.zeros(2, 1, 32, 32), logits, torch.zeros(2, 32, 32))
    targets = torch.from_numpy(gt)
    rng = np.random.default_rng(0)

    # a network that misses the line gets add strokes on it, one per round and patch
    once = add_policy_strokes(_Constant(-5.0), inputs, targets, rng, rounds=1)[:, -1].numpy()
    revised = add_policy_strokes(_Constant(-5.0), inputs, targets, rng, rounds=2)
    channel = revised[:, -1].numpy()
    assert (channel >= 0).all() and (channel[:, 16] > 0).sum(axis=1).min() >= 12
    assert ((channel > 0).sum(axis=(1, 2)) > (once > 0).sum(axis=(1, 2))).all()
    assert torch.equal(revised[:, :-1], inputs[:, :-1]) and not inputs[:, -1].any()
    # one that paints everything gets erase strokes, never on the line
    revised = add_policy_strokes(_Constant(5.0), inputs, targets, rng, rounds=1)
    channel = revised[:, -1].numpy()
    assert (channel < 0).any(axis=(1, 2)).all() and not (channel[gt] < 0).any()
    # a network that repeats the (perfect) base prediction needs no stroke
    repeat = add_policy_strokes(lambda x: x[:, 1:2], inputs, targets, rng, rounds=2)
    assert torch.equal(repeat, inputs)
    with pytest.raises(ValueError, match="rounds"):
        add_policy_strokes(_Constant(-5.0), inputs, targets, rng, rounds=-1)


class _Answer(torch.nn.Module):
    """A refiner stand-in that answers fixed logits, whatever the strokes."""

    spec = ModelSpec(kind="refiner", decoder_channels=TINY)

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.as_tensor(logits), requires_grad=False)

    def forward(self, inputs):
        assert len(inputs) == len(self.logits)  # one batch: the answer fits the patches
        return self.logits[:, None]


def test_gain_after_several_strokes_follows_the_refined_patch():
    gt = np.zeros((3, 32, 32), bool)
    gt[:, 8, 2:30] = gt[:, 24, 2:30] = gt[:, 2:30, 16] = True
    base = np.where(gt, -4.0, 4.0).astype(np.float32)  # wrong everywhere
    base[:, 8] = np.where(gt[:, 8], 4.0, -4.0)  # but for one line
    first = simulate_strokes(gt[0], base[0] > 0, count=1, rng=0)[0]
    patches = {
        "images": np.zeros((3, 1, 32, 32), np.float32),
        "logits": base,
        "gt": gt,
        "skeleton": np.stack([thin(g) for g in gt]),
        "stroke_list": [first] * 3,
    }
    # a perfect refiner leaves nothing to correct: no stroke after the first, constant gain
    perfect = refined_scores(_Answer(np.where(gt, 5.0, -5.0)), patches, strokes=4)
    assert perfect["refined_pfm"] == 1.0
    assert perfect["gains"] == [perfect["gain"]] * 4 and perfect["gain"] > 0.5
    # a refiner that repeats the base: strokes keep coming (against its output), no gain
    repeat = refined_scores(_Answer(base), patches, strokes=4)
    assert repeat["gains"] == [0.0] * 4 and repeat["sequence_gain"] == 0.0
    with pytest.raises(ValueError, match="strokes"):
        refined_scores(_Answer(base), patches, strokes=0)


class _Lower(torch.nn.Module):
    """A refiner stand-in that lowers its prediction input by 3 logits (residual, as ours)."""

    spec = ModelSpec(kind="refiner", decoder_channels=TINY)

    def __init__(self):
        super().__init__()
        self.shift = torch.nn.Parameter(torch.tensor(3.0), requires_grad=False)

    def forward(self, inputs):
        return LOGIT_SCALE * inputs[:, -2:-1] - self.shift


def test_refined_scores_refine_again_from_the_refined_logits():
    gt = np.zeros((2, 32, 32), bool)
    gt[:, 8, 2:30] = True
    base = np.full((2, 32, 32), -4.0, np.float32)
    base[:, 8, 2:30] = 4.0  # the line, sure
    base[:, 20, 2:30] = 2.0  # a false line, less sure
    first = simulate_strokes(gt[0], base[0] > 0, count=1, rng=0)[0]
    patches = {
        "images": np.zeros((2, 1, 32, 32), np.float32),
        "logits": base,
        "gt": gt,
        "skeleton": np.stack([thin(g) for g in gt]),
        "stroke_list": [first] * 2,
    }
    once = refined_scores(_Lower(), patches)
    twice = refined_scores(_Lower(), patches, iterations=2)
    # lowered once the false line goes and the line stays; lowered again the line goes too
    # (but where the erase stroke burns it out)
    assert once["refined_pfm"] == 1.0 and twice["refined_pfm"] < 0.5
    with pytest.raises(ValueError, match="iterations"):
        refined_scores(_Lower(), patches, iterations=0)


def test_refiner_trained_on_policy_strokes(views, tiny_base, tmp_path):
    out = tmp_path / "refiner.safetensors"
    train_refiner(
        base=tiny_base[0],
        data=[views / "train"],
        val=[views / "val"],
        out=out,
        config=TrainConfig(max_steps=3, val_every=3, batch_size=2, lr=3e-3),
        pool_size=4,
        val_per_view=4,
        policy_rounds=2,
        val_strokes=3,
    )
    metadata = read_metadata(out)
    assert metadata["training"]["policy_rounds"] == 2
    validation = metadata["validation"]
    assert len(validation["gains"]) == 3 and validation["gains"][0] == validation["gain"]
    assert (
        validation["score"]
        == validation["sequence_gain"]
        == pytest.approx(np.mean(validation["gains"]))
    )
    with pytest.raises(ValueError, match="policy_rounds"):
        train_refiner(
            base=tiny_base[0],
            data=[views / "train"],
            val=[views / "val"],
            out=out,
            config=TrainConfig(max_steps=1),
            policy_rounds=-1,
        )


def test_fine_tuning_starts_from_the_init_weights(views, tiny_base, tmp_path):
    base_model, _ = load_checkpoint(tiny_base[0], kind="base")
    model, facts = initial_model(base_model.spec, tiny_base[0])
    for name, tensor in base_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor)
    assert all(p.requires_grad for p in model.parameters())
    assert facts["path"] == str(tiny_base[0]) and facts["step"] == tiny_base[1]["step"]
    other = ModelSpec(kind="base", decoder_channels=(16, 8, 8, 8, 8))
    with pytest.raises(CheckpointError, match="another network") as error:
        initial_model(other, tiny_base[0])
    assert str(tiny_base[0]) in str(error.value)
    out = tmp_path / "tuned.safetensors"
    train_base(
        data=[views / "train"],
        val=[views / "val"],
        out=out,
        spec=base_model.spec,
        config=TrainConfig(max_steps=1, val_every=1, batch_size=2),
        geometry=GEOMETRY,
        init=tiny_base[0],
    )
    assert read_metadata(out)["training"]["init"]["path"] == str(tiny_base[0])
    # a chain of runs stays on record: the init's own init is kept
    _, chained = initial_model(base_model.spec, out)
    assert chained["path"] == str(out) and chained["init"]["path"] == str(tiny_base[0])


def test_distillation_loss_pulls_towards_the_teacher():
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(0, 3, (2, 16, 16)).astype(np.float32))
    truth = torch.from_numpy((rng.random((2, 16, 16)) < 0.3).astype(np.float32))
    agreeing = torch.stack([truth, torch.sigmoid(logits)], dim=1)
    opposed = torch.stack([truth, torch.sigmoid(-logits)], dim=1)
    loss = DistillationLoss(distill_weight=2.0)
    segmentation = SegmentationLoss()(logits, truth)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    torch.testing.assert_close(
        loss(logits, agreeing), segmentation + 2 * bce(logits, torch.sigmoid(logits))
    )
    assert loss(logits, opposed) > loss(logits, agreeing) + 1
    # with the student's own probabilities as target, the teacher's term adds no gradient
    student, alone = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    loss(student, agreeing).backward()
    SegmentationLoss()(alone, truth).backward()
    torch.testing.assert_close(student.grad, alone.grad)
    with pytest.raises(ValueError, match="truth, teacher"):
        loss(logits, truth)
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="distill_weight"):
            DistillationLoss(distill_weight=bad)


def test_refiner_distilled_from_a_teacher(views, tiny_base, tmp_path):
    """With a teacher the loss gains its term (other weights from the same batches) and the
    checkpoint records which teacher, with which options, taught it."""
    teacher = tmp_path / "teacher.safetensors"
    common = dict(
        base=tiny_base[0],
        data=[views / "train"],
        val=[views / "val"],
        config=TrainConfig(max_steps=2, val_every=2, batch_size=2, lr=3e-3),
        pool_size=4,
        val_per_view=4,
        max_strokes=4,
    )
    train_refiner(out=teacher, **common)
    plain, taught = tmp_path / "plain.safetensors", tmp_path / "taught.safetensors"
    train_refiner(out=plain, init=teacher, **common)
    options = RefinerOptions(2, 2)
    train_refiner(out=taught, init=teacher, teacher=teacher, teacher_options=options, **common)
    plain_weights, taught_weights = read_tensors(plain)[0], read_tensors(taught)[0]
    assert plain_weights.keys() == taught_weights.keys()
    assert not all(torch.equal(plain_weights[k], taught_weights[k]) for k in plain_weights)
    facts = read_metadata(taught)["training"]
    assert facts["teacher"]["checkpoint"] == str(teacher)
    assert facts["teacher"]["options"] == {"orientations": 2, "iterations": 2}
    assert facts["teacher"]["distill_weight"] == 1.0
    assert read_metadata(plain)["training"]["teacher"] is None
    with pytest.raises(ValueError, match="policy_rounds"):
        train_refiner(out=taught, teacher=teacher, policy_rounds=1, **common)
    with pytest.raises(CheckpointError, match="base"):
        train_refiner(out=taught, teacher=tiny_base[0], **common)


def test_refiner_warm_started_from_its_base(tiny_base):
    base_model, _ = load_checkpoint(tiny_base[0], kind="base")
    model, facts = initial_model(refiner_spec(base_model.spec), tiny_base[0])
    assert facts["kind"] == "base" and facts["path"] == str(tiny_base[0])
    inner = model.net.state_dict()
    copied = 0
    for name, tensor in base_model.state_dict().items():
        if name.startswith("segmentation_head."):
            assert not inner[name].any()  # the refiner starts as the identity
        elif inner[name].shape == tensor.shape:
            torch.testing.assert_close(inner[name], tensor)
            copied += 1
        else:  # first convolution: logits, strokes at zero
            torch.testing.assert_close(inner[name][:, : tensor.shape[1]], tensor)
            assert not inner[name][:, tensor.shape[1] :].any()
    assert copied > 10
    image = torch.randn(2, 1, 32, 32)
    logits = 8 * torch.randn(2, 32, 32)
    strokes = torch.sign(torch.randn(2, 32, 32))
    with torch.no_grad():
        out = model.eval()(refiner_input(image, logits, strokes))[:, 0]
    torch.testing.assert_close(out, logits.clamp(-10, 10))
    other = ModelSpec(kind="refiner", decoder_channels=(16, 8, 8, 8, 8))
    with pytest.raises(CheckpointError, match="another network"):
        initial_model(other, tiny_base[0])


def test_stroke_counts_are_log_uniform():
    rng = np.random.default_rng(0)
    counts = np.array([stroke_count(rng, 24) for _ in range(20000)])
    assert counts.min() == 1 and counts.max() == 24
    shares = np.bincount(counts, minlength=25)[1:] / len(counts)
    expected = np.log(np.arange(2, 26) / np.arange(1, 25)) / np.log(25)
    np.testing.assert_allclose(shares, expected, atol=0.01)
    assert {stroke_count(rng, 1) for _ in range(100)} == {1}


@pytest.mark.parametrize(
    "kind, option",
    [
        ("refiner", ["--encoder", "no-such-encoder"]),
        ("refiner", ["--decoder-channels", "8", "8"]),
        ("refiner", ["--arch", "no-such-arch"]),
        ("refiner", ["--policy-rounds", "-1"]),
        ("refiner", ["--max-strokes", "0"]),
        ("refiner", ["--val-strokes", "0"]),
        ("refiner", ["--teacher-options", "4by2"]),
        ("refiner", ["--distill-weight", "0"]),
        ("base", ["--encoder", "no-such-encoder"]),
        ("base", ["--decoder-channels", "8", "0", "8", "8", "8"]),
    ],
)
def test_bad_network_options_refused_before_loading_data(tiny_base, tmp_path, capsys, kind, option):
    out = tmp_path / "net.safetensors"
    base = ["--base", str(tiny_base[0])] if kind == "refiner" else []
    # the data folders do not exist: the options must be refused before they are read
    code = main(
        [
            "train",
            kind,
            *base,
            "--data",
            str(tmp_path / "missing"),
            "--val",
            str(tmp_path / "missing"),
            "--out",
            str(out),
            *option,
        ]
    )
    error = capsys.readouterr().err
    assert code == 2
    assert error.count("\n") == 1 and "Traceback" not in error
    assert option[1] in error
    assert not out.exists()


def test_refiner_spec_follows_the_base(tiny_base):
    base_spec = load_checkpoint(tiny_base[0], kind="base")[0].spec
    spec = refiner_spec(base_spec, decoder_channels=(16, 8, 8, 8, 8))
    assert (spec.kind, spec.inputs, spec.encoder) == (
        "refiner",
        base_spec.inputs,
        base_spec.encoder,
    )
    assert spec.decoder_channels == (16, 8, 8, 8, 8)
    with pytest.raises(ValueError, match="nope"):
        refiner_spec(base_spec, encoder="nope")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(views, tmp_path):
    out = tmp_path / "ddp.safetensors"
    etmira = Path(sys.executable).parent / "etmira"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        str(etmira),
        "train",
        "base",
        "--data",
        str(views / "train"),
        "--val",
        str(views / "val"),
        "--out",
        str(out),
        "--max-steps",
        "2",
        "--val-every",
        "1",
        "--batch-size",
        "1",
        "--threads",
        "1",
        "--decoder-channels",
        *map(str, TINY),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "best validation" in result.stdout
    assert read_metadata(out)["validation"]["step"] in (1, 2)
