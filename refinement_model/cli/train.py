"""``etmira train base|refiner``: train the networks on folders of annotated views.

Runs in one process, or under ``torchrun --nproc_per_node=N $(which etmira) train ...`` with
DDP (gloo on CPU, NCCL on GPU); rank 0 validates, saves and shows the progress bar.
"""

from __future__ import annotations

import shlex
import sys

from refinement_model.errors import InputError
from refinement_model.refiner_options import APP_REFINEMENT, RefinerOptions

# The networks and the training loop are imported when a command runs: they load torch, which
# `etmira --help` should not wait for.


def _common(parser) -> None:
    parser.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="VIEWS",
        help="training views: data-set roots (real layout, e.g. from etmira "
        "synth), view folders or files of views",
    )
    parser.add_argument(
        "--val",
        nargs="+",
        metavar="VIEWS",
        help="validation views, as --data (default: the last --data path is held out)",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="CKPT",
        help="checkpoint to write (.safetensors); the best model is kept",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--data-seed",
        type=int,
        help="seed the data were generated with (recorded in the checkpoint)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="patches per step (default 8)")
    parser.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate")
    parser.add_argument("--max-steps", type=int, default=20000)
    parser.add_argument("--max-minutes", type=float, help="wall-clock budget of this run")
    parser.add_argument("--val-every", type=int, default=200, help="steps between validations")
    parser.add_argument(
        "--patience", type=int, default=6, help="validations without improvement before stopping"
    )
    parser.add_argument(
        "--focal-weight",
        type=float,
        default=0.0,
        help="weight of the Focal term added to the Dice loss (default 0)",
    )
    parser.add_argument(
        "--line-fraction", type=float, default=0.8, help="share of patches centred on a drawn line"
    )
    parser.add_argument(
        "--crop",
        type=int,
        default=128,
        help="side of the training crops in network pixels, a multiple of 32 "
        "(default 128: about 10x faster per step on a CPU than 256)",
    )
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--decoder-channels", type=int, nargs="+", metavar="N")
    parser.add_argument("--threads", type=int, help="CPU threads per process")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes drawing training batches ahead (default 0: none); the "
        "batches do not change. Keeps a GPU busy; Linux only",
    )
    parser.add_argument(
        "--init",
        metavar="CKPT",
        help="start from this checkpoint's weights (the same network) instead "
        "of random ones, to fine-tune on other data or settings; a refiner "
        "may also start from its base checkpoint",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from CKPT.resume.safetensors"
    )


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the base or the refinement network",
        description="Train the base segmenter, or the refinement network on top of a frozen "
        "base, on folders of annotated views.",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    base = kinds.add_parser("base", help="the base segmenter")
    _common(base)
    base.add_argument(
        "--inputs", nargs="+", default=["depth"], choices=["depth", "albedo", "normals"]
    )
    base.add_argument("--encoder", default=None, help="encoder name (default: the shipped one)")
    refiner = kinds.add_parser("refiner", help="the refinement network")
    _common(refiner)
    refiner.add_argument("--base", required=True, metavar="CKPT", help="frozen base checkpoint")
    refiner.add_argument("--encoder", default=None, help="encoder (default: the base's)")
    refiner.add_argument(
        "--max-strokes",
        type=int,
        default=3,
        help="strokes in sequence per training patch: 1..N, log-uniform (default 3)",
    )
    refiner.add_argument(
        "--pool-size",
        type=int,
        default=1024,
        help="training patches with precomputed base logits (default 1024)",
    )
    refiner.add_argument(
        "--policy-rounds",
        type=int,
        default=0,
        metavar="R",
        help="0..R more strokes per batch, each against the refiner's own "
        "output, as users draw them (default 0: all against the base)",
    )
    refiner.add_argument(
        "--val-strokes",
        type=int,
        default=1,
        metavar="K",
        help="select the model on the mean gain after 1..K validation strokes, "
        "each against the refined patch (default 1: one stroke)",
    )
    refiner.add_argument(
        "--teacher",
        metavar="CKPT",
        help="a refiner to distil: the loss also pulls towards its probabilities on each "
        "training patch (start from it with --init to teach one pass its ensemble)",
    )
    refiner.add_argument(
        "--teacher-options",
        default=APP_REFINEMENT.label,
        metavar="OxI",
        help="the teacher's orientations x refinements (default "
        f"{APP_REFINEMENT.label}, the app's)",
    )
    refiner.add_argument(
        "--distill-weight",
        type=float,
        default=1.0,
        help="weight of the teacher's cross-entropy next to the Dice loss (default 1)",
    )
    for sub in (base, refiner):
        sub.set_defaults(func=run)


def _split(args):
    """Training and validation folders; without --val the last training view is held out."""
    if args.val:
        return args.data, args.val
    if len(args.data) < 2:
        raise InputError(
            args.data[0],
            "give --val, or at least two --data folders (the last one is used for validation)",
        )
    return args.data[:-1], args.data[-1:]


def _model_spec(args):
    """The network to train, checked before any data are loaded (bad options: InputError)."""
    from refinement_model.checkpoints import load_checkpoint
    from refinement_model.nets import (
        DEFAULT_DECODER_CHANNELS,
        DEFAULT_ENCODER,
        ModelSpec,
        create_model,
    )
    from refinement_model.training.refiner import refiner_spec

    decoder = tuple(args.decoder_channels) if args.decoder_channels else None
    if args.kind == "refiner":
        base_model, _ = load_checkpoint(args.base, kind="base")
    try:
        if args.kind == "base":
            spec = ModelSpec(
                kind="base",
                arch=args.arch,
                encoder=args.encoder or DEFAULT_ENCODER,
                inputs=tuple(args.inputs),
                decoder_channels=decoder or DEFAULT_DECODER_CHANNELS,
            )
            create_model(spec=spec)
            return spec
        return refiner_spec(
            base_model.spec, arch=args.arch, encoder=args.encoder, decoder_channels=decoder
        )
    except ValueError as error:
        raise InputError(None, str(error)) from None


def run(args) -> int:
    import torch

    from refinement_model.training.base import GridOptions, check_crop, train_base
    from refinement_model.training.distributed import init_distributed
    from refinement_model.training.loop import TrainConfig
    from refinement_model.training.refiner import check_refiner_options, train_refiner

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        config = TrainConfig(
            batch_size=args.batch_size,
            lr=args.lr,
            max_steps=args.max_steps,
            max_minutes=args.max_minutes,
            val_every=args.val_every,
            patience=args.patience,
            focal_weight=args.focal_weight,
            seed=args.seed,
            workers=args.workers,
        )
        check_crop(args.crop, GridOptions())
        if args.kind == "refiner":
            check_refiner_options(
                max_strokes=args.max_strokes,
                policy_rounds=args.policy_rounds,
                val_strokes=args.val_strokes,
                teacher=args.teacher is not None,
                distill_weight=args.distill_weight,
            )
            teacher_options = RefinerOptions.parse(args.teacher_options)
    except ValueError as error:  # bad option values: one line, exit status 2
        raise InputError(None, str(error)) from None
    data, val = _split(args)
    command = shlex.join(["etmira"] + sys.argv[1:]) if sys.argv else None
    common = dict(
        data=data,
        val=val,
        out=args.out,
        config=config,
        crop=args.crop,
        data_seed=args.data_seed,
        line_fraction=args.line_fraction,
        command=command,
        resume=args.resume,
        init=args.init,
    )
    spec = _model_spec(args)
    ctx = init_distributed()
    try:
        if args.kind == "base":
            best = train_base(spec=spec, ctx=ctx, **common)
        else:
            best = train_refiner(
                base=args.base,
                spec=spec,
                max_strokes=args.max_strokes,
                pool_size=args.pool_size,
                policy_rounds=args.policy_rounds,
                val_strokes=args.val_strokes,
                teacher=args.teacher,
                teacher_options=teacher_options,
                distill_weight=args.distill_weight,
                ctx=ctx,
                **common,
            )
    finally:
        ctx.close()
    if ctx.is_main:
        shown = {k: round(v, 4) for k, v in best.items() if isinstance(v, float)}
        print(f"best validation: {shown} -> {args.out}")
    return 0
