"""Training of the refinement network from simulated strokes (docs/method.md, "Refinement network").

The base model is frozen, so its logits are computed once for a pool of augmented training
patches; every step then draws patches from the pool, applies one of the 8 flips/rotations
(to image, logits and ground truth alike) and simulates 1..k strokes in sequence (log-uniform
counts), each against the base prediction with the earlier strokes burned in, as a user
correcting a patch stroke by stroke would draw them. The stroke channel holds all of them; the
target is the ground truth. The refiner may start from the base's weights (``init``, see
:func:`~refinement_model.training.base.initial_model`).

Those strokes all answer the base prediction, while a user (and the evaluation protocol) draws
each stroke against the *refined* patch, where the network has already fixed what the earlier
strokes implied. With ``policy_rounds`` R, each batch gets 0..R more strokes (uniform per
batch), each simulated against the current network's own output with all strokes burned in
(:func:`add_policy_strokes`; the iterative training of interactive segmentation, as in
RITM, Sofiiuk et al. 2022). Measured on the shipped recipe it lowered the gain at equal steps
(docs/training.md, "Shipped weights"), so the shipped refiner does not use it.

Model selection: on fixed validation patches with one simulated stroke each, the pFM of the
refined patch (stroke burned in) over the pFM of the human-only patch (stroke burned into the
base prediction), as a relative gain; with ``val_strokes`` K, the mean of that gain after 1..K
strokes, strokes 2..K each drawn against the refined patch (:func:`refined_scores`).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from scipy.special import expit

from refinement_model.checkpoints import load_checkpoint, save_checkpoint
from refinement_model.fast_net import FastNet
from refinement_model.metrics import score_masks, thin
from refinement_model.nets import LOGIT_SCALE, ModelSpec, create_model, refiner_input
from refinement_model.patch_refiner import PatchRefiner, refine_iteratively
from refinement_model.refiner_options import APP_REFINEMENT, RefinerOptions
from refinement_model.simulated_user import choose_stroke, simulate_add, simulate_erase
from refinement_model.strokes import burn_in, stroke_channel
from refinement_model.training.base import (
    GridOptions,
    check_crop,
    checkpoint_metadata,
    initial_model,
)
from refinement_model.training.data import (
    dihedral,
    grid_patches,
    load_training_views,
    sample_patches,
)
from refinement_model.training.distributed import DistContext
from refinement_model.training.loop import TrainConfig, resume_path, train_loop
from refinement_model.training.losses import DistillationLoss

__all__ = [
    "add_policy_strokes",
    "check_refiner_options",
    "refined_scores",
    "refiner_spec",
    "simulate_strokes",
    "stroke_count",
    "train_refiner",
    "validation_patches",
]


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{name} must be a {kind} integer, got {value!r}")
    return value


def check_refiner_options(
    *,
    max_strokes: int,
    policy_rounds: int,
    val_strokes: int,
    teacher: bool = False,
    distill_weight: float = 1.0,
) -> None:
    """Raise ValueError for options :func:`train_refiner` cannot use, before any data are read
    (``teacher``: whether one is given)."""
    _check_count(max_strokes, "max_strokes", 1)
    _check_count(policy_rounds, "policy_rounds", 0)
    _check_count(val_strokes, "val_strokes", 1)
    if teacher and policy_rounds:
        raise ValueError("a teacher refines the drawn strokes only: give no policy_rounds")
    if not distill_weight > 0:
        raise ValueError(f"distill_weight must be > 0, got {distill_weight!r}")


def simulate_strokes(
    gt: np.ndarray, prediction: np.ndarray, *, count: int, rng=None, scale: float = 0.5
) -> list:
    """Up to ``count`` simulated strokes in sequence, each against the earlier ones burned in.

    Each stroke is an add or an erase stroke with equal chance (the other kind when the first
    is impossible); the sequence ends early when the patch needs no stroke.

    Parameters
    ----------
    gt, prediction : (S, S) bool ndarrays
        Not modified.
    count : int
    rng : None, int or numpy.random.Generator
    scale : float
        Patch pixels per view pixel (stroke widths are drawn at view resolution).

    Returns
    -------
    list of Stroke
    """

    rng = np.random.default_rng(rng)
    strokes, current = [], prediction
    for _ in range(count):
        order = (
            (simulate_add, simulate_erase) if rng.random() < 0.5 else (simulate_erase, simulate_add)
        )
        stroke = None
        for simulate in order:
            stroke = simulate(gt, current, rng=rng, scale=scale)
            if stroke is not None:
                break
        if stroke is None:
            break
        strokes.append(stroke)
        current = burn_in(current, [stroke])
    return strokes


def stroke_count(rng: np.random.Generator, max_strokes: int) -> int:
    """Strokes for one training patch, log-uniform in 1..max_strokes: P(k) ~ log((k+1)/k).

    Single strokes stay the most frequent (what one click needs), while patches with dozens of
    strokes, which the app and the evaluation protocol reach after long sessions, are seen too.
    """
    return min(int(np.exp(rng.uniform(0.0, np.log(max_strokes + 1)))), max_strokes)


def add_policy_strokes(model, inputs, targets, rng, *, rounds: int, scale: float = 0.5):
    """Add ``rounds`` strokes to every patch of a batch, each against the model's own output.

    Each round runs ``model`` on the batch, burns the stroke channel into its binary output and
    simulates one more stroke per patch against that (:func:`simulate_strokes`), painted over
    the stroke channel (the last input channel).

    Parameters
    ----------
    model : torch.nn.Module
        A refiner: (B, C + 2, S, S) inputs to (B, 1, S, S) logits. Called as given (the caller
        sets eval mode and disables gradients).
    inputs : (B, C + 2, S, S) float32 tensor
        :func:`~refinement_model.nets.refiner_input` of the batch. Not modified.
    targets : (B, S, S) tensor
        Ground truth (nonzero = line).
    rng : numpy.random.Generator
    rounds : int
        >= 0; patches that need no stroke stay as they are.
    scale : float
        Patch pixels per view pixel.

    Returns
    -------
    (B, C + 2, S, S) float32 tensor
        On the device of ``inputs``.
    """
    _check_count(rounds, "rounds", 0)
    inputs = inputs.clone()
    gts = targets.detach().cpu().numpy() != 0
    shape = gts.shape[1:]
    for _ in range(rounds):
        channel = inputs[:, -1].cpu().numpy().copy()  # on a CPU .numpy() shares the memory
        refined = model(inputs)[:, 0].cpu().numpy() > 0
        current = np.where(channel != 0, channel > 0, refined)
        for i, (gt, mask) in enumerate(zip(gts, current, strict=True)):
            strokes = simulate_strokes(gt, mask, count=1, rng=rng, scale=scale)
            if strokes:
                painted = stroke_channel(strokes, shape)
                channel[i] = np.where(painted != 0, painted, channel[i])
        inputs[:, -1] = torch.from_numpy(channel).to(inputs.device)
    return inputs


def _logits(net: FastNet, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    return np.concatenate(
        [net(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    )


def validation_patches(
    base: FastNet, views, geometry: GridOptions, *, per_view: int = 48, seed: int = 0
) -> dict:
    """Fixed validation patches with base logits and one simulated stroke each.

    Patches with ground-truth lines are drawn from each view's grid (at most ``per_view``);
    the stroke is the simulated user's choice (longer segment) against the base prediction.

    Returns
    -------
    dict of arrays
        ``images`` (N, C, S, S), ``logits`` (N, S, S), ``gt``, ``skeleton`` (of ``gt``, as
        :func:`~refinement_model.metrics.thin` gives it) and ``stroke_list`` (one Stroke each).
    """

    rng = np.random.default_rng(seed)
    images, gts = [], []
    for view in views:
        grid = geometry.grid(*view.ground_truth.shape)
        patch_images, patch_gt = grid_patches(
            view.image, view.ground_truth, grid, min_line_pixels=20
        )
        keep = np.sort(rng.permutation(len(patch_gt))[:per_view])
        images.append(patch_images[keep])
        gts.append(patch_gt[keep])
    images, gts = np.concatenate(images), np.concatenate(gts)
    logits = _logits(base, images)
    out = {key: [] for key in ("images", "logits", "gt", "skeleton", "stroke_list")}
    for i, (gt, logit) in enumerate(zip(gts, logits, strict=True)):
        chosen = choose_stroke(gt, logit > 0, rng=rng, scale=geometry.factor)
        if chosen is None:
            continue
        for key, value in (
            ("images", images[i]),
            ("logits", logit),
            ("gt", gt),
            ("skeleton", thin(gt)),
            ("stroke_list", chosen.stroke),
        ):
            out[key].append(value)
    return {k: (v if k == "stroke_list" else np.stack(v)) for k, v in out.items()}


def refined_scores(
    model,
    patches: dict,
    *,
    strokes: int = 1,
    scale: float = 0.5,
    batch_size: int = 16,
    seed: int = 0,
    iterations: int = 1,
) -> dict:
    """pFM of base, human-only and refined (strokes burned in) validation patches.

    The first stroke of each patch is its fixed one from :func:`validation_patches`. With
    ``strokes`` K > 1, strokes 2..K are drawn as a user of the app would: each against the
    refined patch of the strokes before it, burned in (the simulated user's longer-segment
    choice, patch ``i`` drawing from ``default_rng([seed, i])``; ``scale`` as in
    :func:`simulate_strokes`). After each k the refined patch is compared with the human-only
    one: the same k strokes burned into the base prediction. Those strokes were chosen against
    the refined patch, as in the evaluation protocol at equal annotated pixels; a user without
    the network would have drawn others. With ``iterations`` > 1 each refinement is refined
    again from its own logits, as a ``PatchRefiner`` with ``RefinerOptions(iterations=...)`` does.

    Returns
    -------
    dict
        Means ``base_pfm``, ``human_pfm``, ``refined_pfm``, the relative ``gain`` of refined
        over human-only (ratio of means minus 1), ``mean_patch_gain`` and ``patches``, all
        after the first stroke; ``gains`` (the gain after 1..K strokes) and their mean
        ``sequence_gain``.
    """

    _check_count(strokes, "strokes", 1)
    net = model if isinstance(model, FastNet) else FastNet(model, optimise=False)
    drawn = [[stroke] for stroke in patches["stroke_list"]]
    # one generator per patch: its strokes do not depend on what the others drew
    rngs = [np.random.default_rng([seed, i]) for i in range(len(drawn))]
    size = patches["gt"].shape[1:]
    base_masks = patches["logits"] > 0
    images = patches["images"]
    gains, first = [], {}
    for k in range(strokes):
        channels = np.stack([stroke_channel(d, size) for d in drawn])
        refined = (
            refine_iteratively(
                partial(_logits, net, batch_size=batch_size),
                images,
                patches["logits"],
                channels,
                iterations,
            )
            > 0
        )
        # the base masks do not change with the strokes: scored once
        keys = ("base", "human", "refined") if k == 0 else ("human", "refined")
        scores = {key: [] for key in keys}
        for i, patch_strokes in enumerate(drawn):
            gt, skeleton = patches["gt"][i], patches["skeleton"][i]
            refined[i] = burn_in(refined[i], patch_strokes)
            masks = {
                "base": base_masks[i],
                "human": burn_in(base_masks[i], patch_strokes),
                "refined": refined[i],
            }
            for key in scores:
                scores[key].append(score_masks(masks[key], gt, gt_skeleton=skeleton)["pfm"])
        means = {f"{key}_pfm": float(np.mean(v)) for key, v in scores.items()}
        gains.append(means["refined_pfm"] / max(means["human_pfm"], 1e-6) - 1)
        if k == 0:
            human = np.maximum(np.asarray(scores["human"]), 1e-6)
            first = {
                **means,
                "gain": gains[0],
                "patches": len(human),
                "mean_patch_gain": float(np.mean(np.asarray(scores["refined"]) / human - 1)),
            }
        if k + 1 < strokes:
            for i, patch_strokes in enumerate(drawn):
                chosen = choose_stroke(patches["gt"][i], refined[i], rng=rngs[i], scale=scale)
                if chosen is not None:
                    patch_strokes.append(chosen.stroke)
    return {**first, "gains": gains, "sequence_gain": float(np.mean(gains))}


def refiner_spec(
    base_spec: ModelSpec, *, arch: str = "unet", encoder: str | None = None, decoder_channels=None
) -> ModelSpec:
    """The spec of a refiner on top of a base network, checked by building the network once.

    Parameters
    ----------
    base_spec : ModelSpec
        The base network's; the refiner takes the same image inputs.
    arch : str, optional
    encoder, decoder_channels : optional
        Default to the base network's.

    Returns
    -------
    ModelSpec
        Of kind "refiner".

    Raises
    ------
    ValueError
        Unknown architecture or encoder, or decoder widths that do not fit the encoder.
    """
    spec = ModelSpec(
        kind="refiner",
        arch=arch,
        encoder=encoder or base_spec.encoder,
        inputs=base_spec.inputs,
        decoder_channels=decoder_channels or base_spec.decoder_channels,
        encoder_depth=base_spec.encoder_depth,
    )
    create_model(spec=spec)
    return spec


def train_refiner(
    *,
    base,
    data,
    val,
    out,
    spec: ModelSpec | None = None,
    config: TrainConfig,
    crop: int | None = None,
    max_strokes: int = 3,
    pool_size: int = 1024,
    policy_rounds: int = 0,
    val_strokes: int = 1,
    val_per_view: int = 48,
    data_seed: int | None = None,
    line_fraction: float = 0.8,
    command: str | None = None,
    resume: bool = False,
    init=None,
    teacher=None,
    teacher_options: RefinerOptions = APP_REFINEMENT,
    distill_weight: float = 1.0,
    ctx: DistContext | None = None,
) -> dict:
    """Train a refiner on top of a frozen base checkpoint; save the best to ``out``.

    Parameters
    ----------
    base : path
        Base checkpoint; its inputs and patch geometry are reused.
    data, val : sequence of paths
        Folders of annotated views.
    out : path
    spec : ModelSpec, optional
        The refiner network (see :func:`refiner_spec`); default: the base model's network.
    config : TrainConfig
    crop : int, optional
        Side of the training crops in network pixels, cut at random from the pool's
        full-size patches (so the base logits carry full-patch context).
    max_strokes : int, optional
        Each training patch gets 1..max_strokes strokes (see :func:`stroke_count`).
    pool_size : int, optional
        Training patches whose base logits are precomputed (per process).
    policy_rounds : int, optional
        Up to this many more strokes per batch against the network's own output
        (:func:`add_policy_strokes`); 0 trains on strokes against the base prediction only.
    val_strokes : int, optional
        Model selection on the gain after one stroke (1, the paper's) or on the mean gain after
        1..K strokes, each against the refined patch (``sequence_gain`` of
        :func:`refined_scores`).
    val_per_view : int, optional
    teacher : path, optional
        A refiner checkpoint on the same inputs to distil: every training patch is also
        refined by it, with ``teacher_options`` (default the app's, four orientations refined
        twice), and the loss gains ``distill_weight`` times the cross-entropy towards its
        probabilities (:class:`~refinement_model.training.losses.DistillationLoss`). Start from
        the teacher (``init``) to teach one pass what the teacher's ensemble does.
    teacher_options : RefinerOptions, optional
    distill_weight : float, optional
    data_seed, line_fraction, command, resume, init, ctx
        As in :func:`~refinement_model.training.base.train_base`.

    Returns
    -------
    dict
        The best validation metrics.
    """
    check_refiner_options(
        max_strokes=max_strokes,
        policy_rounds=policy_rounds,
        val_strokes=val_strokes,
        teacher=teacher is not None,
        distill_weight=distill_weight,
    )
    ctx = ctx or DistContext()
    torch.manual_seed(config.seed)
    base_model, base_meta = load_checkpoint(base, kind="base")
    geometry = GridOptions.of_checkpoint(base_meta)
    crop = check_crop(crop, geometry)
    if spec is None:
        spec = refiner_spec(base_model.spec)
    if spec.kind != "refiner" or spec.inputs != base_model.spec.inputs:
        raise ValueError(
            f"spec must be a refiner on the base's inputs {base_model.spec.inputs}, "
            f"got a {spec.kind} on {spec.inputs}"
        )
    model, init_facts = initial_model(spec, init)
    teacher_net = loss = None
    if teacher is not None:
        teacher_net = PatchRefiner(teacher, options=teacher_options)
        if teacher_net.spec.inputs != spec.inputs:
            raise ValueError(
                f"teacher {teacher} refines on {teacher_net.spec.inputs}, "
                f"the refiner trained on {spec.inputs}"
            )
        loss = DistillationLoss(distill_weight=distill_weight, focal_weight=config.focal_weight)
    # on a GPU the frozen base runs there in eager mode (the traced path is the CPU's)
    base_net = FastNet(
        base_model.to(ctx.device), optimise=ctx.device.type == "cpu", net_size=geometry.net_size
    )
    train_views = load_training_views(data, inputs=spec.inputs, factor=geometry.factor)
    images, targets = sample_patches(
        train_views,
        pool_size,
        size=geometry.net_size,
        rng=np.random.default_rng([config.seed, ctx.rank, 1]),
        line_fraction=line_fraction,
    )
    del train_views
    logits = _logits(base_net, images)
    patches = {}
    if ctx.is_main:
        val_views = load_training_views(val, inputs=spec.inputs, factor=1)
        patches = validation_patches(
            base_net, val_views, geometry, per_view=val_per_view, seed=config.seed
        )
        del val_views
    facts = {
        "data_seed": data_seed,
        "data": [str(p) for p in data],
        "val": [str(p) for p in val],
        "max_strokes": max_strokes,
        "pool_size": pool_size,
        "policy_rounds": policy_rounds,
        "val_strokes": val_strokes,
        "crop": crop,
        "init": init_facts,
        "teacher": None
        if teacher is None
        else {
            "checkpoint": str(teacher),
            "options": teacher_options.as_record(),
            "distill_weight": distill_weight,
            "validation": teacher_net.metadata.get("validation"),
        },
        "base": {
            "model": base_meta["model"],
            "validation": base_meta.get("validation"),
            "training": {"data_seed": base_meta.get("training", {}).get("data_seed")},
        },
    }

    def next_batch(rng):
        rows = []
        for index in rng.integers(0, pool_size, config.batch_size):
            y, x = rng.integers(0, geometry.net_size - crop + 1, 2)
            window = np.s_[..., y : y + crop, x : x + crop]
            image, logit, gt = dihedral(
                [images[index][window], logits[index][window], targets[index][window]],
                int(rng.integers(8)),
            )
            count = stroke_count(rng, max_strokes)
            strokes = simulate_strokes(gt, logit > 0, count=count, rng=rng, scale=geometry.factor)
            rows.append((image, logit, stroke_channel(strokes, gt.shape), gt))
        stacked = [torch.from_numpy(np.stack(column)) for column in zip(*rows, strict=True)]
        inputs, truth = refiner_input(*stacked[:3]).numpy(), stacked[3].numpy()
        if teacher_net is None:
            return inputs, truth
        taught = teacher_net.refine_batch(*(column.numpy() for column in stacked[:3]))
        return inputs, np.stack([truth.astype(np.float32), expit(taught)], axis=1)

    def revise_inputs(net, inputs, targets, rng):
        rounds = int(rng.integers(0, policy_rounds + 1))
        return add_policy_strokes(net, inputs, targets, rng, rounds=rounds, scale=geometry.factor)

    def validate(net):
        metrics = refined_scores(
            net, patches, strokes=val_strokes, scale=geometry.factor, seed=config.seed
        )
        return metrics["sequence_gain"], metrics

    def save_best(net, metrics):
        metadata = checkpoint_metadata(
            spec, geometry, config=config, data=facts, validation=metrics, command=command
        )
        save_checkpoint(out, net, metadata={**metadata, "logit_scale": LOGIT_SCALE})

    return train_loop(
        model,
        next_batch=next_batch,
        validate=validate,
        save_best=save_best,
        config=config,
        ctx=ctx,
        resume_file=resume_path(out),
        resume=resume,
        desc="train refiner",
        revise_inputs=revise_inputs if policy_rounds else None,
        loss=loss,
    )
