"""``etmira score PRED GT [--mask MASK] [--json]``: score a predicted line mask."""

from __future__ import annotations

import json

from refinement_model.errors import InputError
from refinement_model.imageio import read_binary_mask
from refinement_model.metrics import score_masks

# the order the scores are printed in
_KEYS = ("pfm", "fm", "iou", "precision", "recall", "dice")
_LABELS = {
    "pfm": "pseudo-F-measure (DIBCO)",
    "fm": "F-measure",
    "iou": "IoU",
    "precision": "precision",
    "recall": "recall",
    "dice": "Dice",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score a predicted line mask against the ground truth",
        description="Compare two masks (PNG or TIFF, nonzero = line) and print the "
        "pseudo-F-measure of the DIBCO contests, F-measure, IoU, precision, "
        "recall and Dice, each in [0, 1].",
    )
    parser.add_argument("pred", help="predicted mask (PNG or TIFF)")
    parser.add_argument("gt", help="ground-truth mask (PNG or TIFF) of the same size")
    parser.add_argument("--mask", help="mirror-area mask (red channel): count only inside it")
    parser.add_argument(
        "--channel",
        choices=("any", "alpha", "red"),
        default="any",
        help="which channel of PRED and GT holds the line: nonzero in any "
        "channel (default), the alpha channel (the drawings PNGs of the "
        "real data set) or the red one",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with the keys " + ", ".join(_KEYS),
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    gt = _read(args.gt, "the ground truth", channel=args.channel)
    # Sizes are measured against the ground truth: the prediction or mask is what is wrong.
    of_gt = f"the ground truth {args.gt}"
    pred = _read(args.pred, "the prediction", channel=args.channel, shape=gt.shape, shape_of=of_gt)
    mask = None
    if args.mask is not None:
        mask = _read(
            args.mask, "the mirror-area mask", channel="red", shape=gt.shape, shape_of=of_gt
        )
    scores = score_masks(pred, gt, mask=mask)
    if args.json:
        print(json.dumps({key: scores[key] for key in _KEYS}))
    else:
        width = max(map(len, _LABELS.values()))
        for key in _KEYS:
            print(f"{_LABELS[key]:<{width}}  {scores[key]:.4f}")
    return 0


def _read(path, what: str, **options):
    """``read_binary_mask`` whose errors all say which input ``path`` is (``what``)."""
    try:
        return read_binary_mask(path, what=what, **options)
    except InputError as error:
        if error.problem.startswith(what):
            raise
        raise InputError(error.path, f"{error.problem} ({what})") from None
