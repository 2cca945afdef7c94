"""The training loop both networks share.

Adam, gradient clipping, a plateau schedule and early stopping on a validation score (higher is
better), a wall-clock budget, a tqdm bar, and resumable state. The batch of step ``s`` on rank
``r`` is drawn from ``np.random.default_rng([seed, r, s])``, so a run is reproducible from its
seed and a resumed run continues exactly where the interrupted one stopped without storing any
generator state. For the same reason the batches can be drawn by worker processes
(``TrainConfig.workers``, a PyTorch DataLoader over step numbers) without changing them: the
CPU-heavy sampling and stroke simulation then keep a GPU busy. The resume file
(``<out>.resume.safetensors``) holds the weights, the optimiser moments and the loop state as
JSON; like checkpoints it never needs unpickling.

Some batches depend on the network being trained (the refiner's on-policy strokes): a
``revise_inputs`` hook then rewrites each batch in the training process with the current
weights, from its own generator ``np.random.default_rng([seed, rank, step, 1])``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from refinement_model.checkpoints import read_tensors, write_tensors
from refinement_model.errors import CheckpointError
from refinement_model.training.distributed import DistContext
from refinement_model.training.losses import SegmentationLoss

__all__ = ["TrainConfig", "resume_path", "train_loop"]

_RESUME_KIND = "etmira-resume"


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`train_loop`.

    Parameters
    ----------
    batch_size : int
        Patches per step and process.
    lr : float
        Adam learning rate (3e-4 in the paper).
    max_steps : int
    max_minutes : float or None
        Wall-clock budget of this run; training stops (after a last validation) when spent.
    val_every : int
        Steps between validations.
    patience : int
        Validations without improvement before early stopping.
    plateau_patience, plateau_factor
        ReduceLROnPlateau options (per validation).
    clip_norm : float
        Gradient norm clipping (2 in the paper).
    focal_weight : float
        Weight of the Focal term added to the Dice loss.
    seed : int
    workers : int
        Processes that draw batches ahead (0: drawn in the training process). The batches are
        the same either way; workers need the fork start method (Linux).
    """

    batch_size: int = 8
    lr: float = 3e-4
    max_steps: int = 20000
    max_minutes: float | None = None
    val_every: int = 200
    patience: int = 6
    plateau_patience: int = 2
    plateau_factor: float = 0.5
    clip_norm: float = 2.0
    focal_weight: float = 0.0
    seed: int = 0
    workers: int = 0

    def __post_init__(self):
        for name in ("batch_size", "max_steps", "val_every", "patience", "plateau_patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.lr > 0 or not self.clip_norm > 0 or not 0 < self.plateau_factor < 1:
            raise ValueError(
                "lr and clip_norm must be > 0 and plateau_factor in (0, 1), got "
                f"{self.lr!r}, {self.clip_norm!r}, {self.plateau_factor!r}"
            )
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"workers must be a non-negative integer, got {self.workers!r}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be > 0, got {self.max_minutes!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def resume_path(out) -> Path:
    """Where the resumable state of a run writing checkpoint ``out`` lives."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".safetensors") + ".resume.safetensors")


def _save_state(path, model, optimizer, scheduler, state: dict) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, moments in opt["state"].items():
        for name, value in moments.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value)
    groups = [
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
        for g in opt["param_groups"]
    ]
    write_tensors(
        path,
        tensors,
        {
            "kind": _RESUME_KIND,
            "loop": state,
            "param_groups": groups,
            "scheduler": scheduler.state_dict(),
        },
    )


def _load_state(path, model, optimizer, scheduler) -> dict:
    tensors, metadata = read_tensors(path)
    if metadata.get("kind") != _RESUME_KIND:
        raise CheckpointError(path, "not a resume file of etmira training")
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    moments: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            moments.setdefault(int(index), {})[name] = value
    try:
        model.load_state_dict(weights)
        optimizer.load_state_dict({"state": moments, "param_groups": metadata["param_groups"]})
    except (RuntimeError, ValueError, KeyError) as error:
        raise CheckpointError(path, f"resume state does not fit this run: {error}") from None
    scheduler.load_state_dict(metadata["scheduler"])
    return metadata["loop"]


class _StepBatches(torch.utils.data.Dataset):
    """The batch of each step, a function of (seed, rank, step) alone."""

    def __init__(self, next_batch, seed: int, rank: int):
        self.next_batch, self.seed, self.rank = next_batch, seed, rank

    def __getitem__(self, step: int):
        return self.next_batch(np.random.default_rng([self.seed, self.rank, step]))


def _batches(next_batch, config: TrainConfig, ctx: DistContext, *, first_step: int):
    """An iterator over the (inputs, targets) tensors of steps first_step, first_step + 1, ..."""
    workers = config.workers
    loader = torch.utils.data.DataLoader(
        _StepBatches(next_batch, config.seed, ctx.rank),
        batch_size=None,
        sampler=range(first_step, config.max_steps),
        num_workers=workers,
        # fork hands the sampling closure and its patch pool to the workers without pickling
        multiprocessing_context="fork" if workers else None,
        prefetch_factor=4 if workers else None,
        pin_memory=ctx.device.type == "cuda",
    )
    return iter(loader)


def train_loop(
    model: torch.nn.Module,
    *,
    next_batch: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]],
    validate: Callable[[torch.nn.Module], tuple[float, dict]],
    save_best: Callable[[torch.nn.Module, dict], None],
    config: TrainConfig,
    ctx: DistContext = DistContext(),
    resume_file=None,
    resume: bool = False,
    desc: str = "train",
    revise_inputs: Callable[
        [torch.nn.Module, torch.Tensor, torch.Tensor, np.random.Generator], torch.Tensor
    ]
    | None = None,
    loss: torch.nn.Module | None = None,
) -> dict:
    """Train until early stopping, ``max_steps`` or the time budget.

    Parameters
    ----------
    model : torch.nn.Module
        From ``create_model``; trained in place (on ``ctx.device``).
    next_batch : callable(rng) -> (inputs, targets)
        inputs (B, C, S, S) float32 and targets (B, S, S) bool/float ndarrays for one step (or
        whatever ``loss`` takes).
    validate : callable(model) -> (score, metrics)
        Run on rank 0 with the unwrapped model in eval mode; higher score is better.
    save_best : callable(model, metrics)
        Called on rank 0 when the score improves (metrics include ``step`` and ``score``).
    config : TrainConfig
    ctx : DistContext, optional
    resume_file : path, optional
        Where the resumable state is written after each validation (rank 0).
    resume : bool, optional
        Continue from ``resume_file``.
    desc : str, optional
        Progress bar label.
    revise_inputs : callable(model, inputs, targets, rng) -> inputs, optional
        Rewrites each batch (tensors on ``ctx.device``) before the step; the model is the
        unwrapped one, in eval mode, without gradients.
    loss : torch.nn.Module, optional
        ``loss(logits, targets)``; default :class:`SegmentationLoss` with the config's focal
        weight (targets as ``next_batch`` gives them).

    Returns
    -------
    best : dict
        Metrics of the best validation (``{}`` if none ran).
    """
    plain = getattr(model, "module", model).to(ctx.device)
    net = ctx.wrap(plain)
    loss_fn = loss if loss is not None else SegmentationLoss(focal_weight=config.focal_weight)
    optimizer = torch.optim.Adam(plain.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=config.plateau_factor, patience=config.plateau_patience
    )
    state = {"step": 0, "best_score": -math.inf, "bad": 0, "best": {}, "last_val": 0}
    if resume:
        if resume_file is None or not os.path.exists(resume_file):
            raise CheckpointError(resume_file, "no resume state to continue from")
        state = _load_state(resume_file, plain, optimizer, scheduler)
    start = time.monotonic()
    bar = tqdm(
        total=config.max_steps,
        initial=state["step"],
        desc=desc,
        disable=not ctx.is_main,
        dynamic_ncols=True,
    )
    stop = state["bad"] >= config.patience
    batches = _batches(next_batch, config, ctx, first_step=state["step"])
    while not stop and state["step"] < config.max_steps:
        net.train()
        inputs, targets = next(batches)
        x = inputs.to(ctx.device, torch.float32, non_blocking=True)
        y = targets.to(ctx.device, torch.float32, non_blocking=True)
        if revise_inputs is not None:
            x = _revised(plain, revise_inputs, x, y, [config.seed, ctx.rank, state["step"], 1])
            net.train()
        step_loss = loss_fn(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        step_loss.backward()
        torch.nn.utils.clip_grad_norm_(plain.parameters(), config.clip_norm)
        optimizer.step()
        state["step"] += 1
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss.item():.3f}", best=f"{state['best_score']:.3f}")
        over_time = (
            config.max_minutes is not None and time.monotonic() - start > 60 * config.max_minutes
        )
        over_time = bool(ctx.broadcast([float(over_time)])[0])
        last = over_time or state["step"] >= config.max_steps
        if state["step"] % config.val_every == 0 or last:
            stop = _validate(plain, validate, save_best, scheduler, state, config, ctx) or last
            if ctx.is_main and resume_file is not None:
                _save_state(resume_file, plain, optimizer, scheduler, state)
    bar.close()
    del batches  # stops the workers
    return state["best"]


def _revised(plain, revise_inputs, inputs, targets, seed) -> torch.Tensor:
    plain.eval()
    # no_grad, not inference_mode: the revised batch is then trained on
    with torch.no_grad():
        return revise_inputs(plain, inputs, targets, np.random.default_rng(seed))


def _validate(plain, validate, save_best, scheduler, state, config, ctx) -> bool:
    """One validation on rank 0, its score shared with all ranks; True when it is time to stop."""
    score, metrics = -math.inf, {}
    if ctx.is_main:
        plain.eval()
        with torch.inference_mode():
            score, metrics = validate(plain)
        plain.train()
    score = ctx.broadcast([score])[0]
    scheduler.step(score)
    state["last_val"] = state["step"]
    if score > state["best_score"]:
        state.update(
            best_score=score, bad=0, best={**metrics, "score": score, "step": state["step"]}
        )
        if ctx.is_main:
            save_best(plain, state["best"])
    else:
        state["bad"] += 1
    return state["bad"] >= config.patience
