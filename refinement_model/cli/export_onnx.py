"""``etmira export-onnx CKPT -o NET.onnx``: a checkpoint as a self-describing ONNX model.

The model takes ``input`` (B, C, H, W) float32 to ``logits`` (B, 1, H, W), batch and spatial
sizes free; its metadata props hold the checkpoint's metadata (JSON under ``etmira``) and the
checkpoint's SHA-256 (``etmira_checkpoint_sha256``). It is written only if its logits equal the
checkpoint's in eager PyTorch on a probe batch.
"""

from __future__ import annotations

from pathlib import Path

from refinement_model.errors import InputError
from refinement_model.imageio import atomic_write


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-onnx",
        help="export a checkpoint to a self-describing ONNX model",
        description="Write a checkpoint's network as an ONNX model (free batch and image size) "
        "with the checkpoint's metadata, for ONNX Runtime or other runtimes. The "
        "app and the other commands do not need it: they build their ONNX Runtime "
        "session from the checkpoint itself.",
    )
    parser.add_argument("checkpoint", help="a .safetensors checkpoint (base or refiner)")
    parser.add_argument(
        "-o",
        "--out",
        required=True,
        metavar="NET.onnx",
        help="the ONNX file to write (replaced if present)",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    # torch and onnx load only when the command runs, not for `etmira --help`
    from refinement_model.onnx_export import export_checkpoint, read_onnx_metadata

    out = Path(args.out)
    if not out.parent.is_dir():
        raise InputError(out, "its folder does not exist")
    model_bytes, difference = export_checkpoint(args.checkpoint)
    atomic_write(out, lambda temporary: Path(temporary).write_bytes(model_bytes))
    metadata, digest = read_onnx_metadata(out)
    print(
        f"{out}: {metadata['model']['kind']} network, {len(model_bytes) / 1e6:.1f} MB, "
        f"checkpoint SHA-256 {digest}; max |logit difference| to the checkpoint "
        f"{difference:.1e}"
    )
    return 0
