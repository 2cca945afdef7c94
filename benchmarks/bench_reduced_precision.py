"""Would reduced precision bring the shipped refiner to issue 20's latency targets on the CPU?

Side by side in one run, on one batch of 16 real refiner inputs (the bundled sample view's
patches with their base logits and a zero stroke channel: the four orientations of four
patches, one pass of the app's refinement): ONNX Runtime float32 (the app's backend), ONNX
Runtime int8 (static quantization, QDQ and QOperator formats, per-channel weights, calibrated on
16 other patches of the view), and TorchScript bfloat16 (traced and frozen, channels-last:
oneDNN uses the CPU's AMX or AVX-512 bf16 units where it has them). Each prints its p50 wall
time, its ratio to float32 and its max |logit difference| to float32; a backend the targets
could use needs a ratio well below 1 and a difference far below the logits' scale (tens).

    .venv/bin/python benchmarks/bench_reduced_precision.py [--repeats 10] [--threads 2]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from refinement_model.checkpoints import load_checkpoint
from refinement_model.nets import refiner_input
from refinement_model.onnx_export import export_onnx
from refinement_model.prediction import Predictor
from refinement_model.shipped import WEIGHTS, sample_view
from refinement_model.views import load_view, network_input

BATCH = 16


def _inputs(count: int, offset: int) -> np.ndarray:
    """(count, C, S, S) float32 refiner inputs of the sample view's patches from ``offset``
    (taken in turn)."""
    view = load_view(sample_view())
    base = Predictor(WEIGHTS / "base.safetensors")
    grid = base.grid(*view.shape)
    image = network_input(view, base.net.spec.inputs)
    holding = np.flatnonzero(grid.patches_holding(view.mirror_mask))
    indices = np.resize(holding, offset + count)[offset:]  # the small view repeats its patches
    images = np.stack([grid.extract(image, int(i)) for i in indices]).astype(np.float32)
    logits = base.net(images)
    logits = torch.from_numpy(logits)
    batch = refiner_input(torch.from_numpy(images), logits, torch.zeros_like(logits))
    return batch.numpy().astype(np.float32)


def _session(model: bytes | str, threads: int):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input": x})[0][:, 0]


class _Calibration(CalibrationDataReader):
    def __init__(self, batch: np.ndarray):
        self._items = iter([{"input": batch[i : i + 4]} for i in range(0, len(batch), 4)])

    def get_next(self):
        return next(self._items, None)


def _quantized(model_bytes: bytes, calibration: np.ndarray, folder: Path, fmt) -> str:
    source, target = folder / "fp32.onnx", folder / f"int8_{fmt.name}.onnx"
    source.write_bytes(model_bytes)
    quantize_static(
        str(source),
        str(target),
        _Calibration(calibration),
        quant_format=fmt,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return str(target)


def _bf16_torchscript(model, example: np.ndarray):
    net = copy.deepcopy(model).eval().to(torch.bfloat16).to(memory_format=torch.channels_last)
    x = torch.from_numpy(example[:1]).to(torch.bfloat16)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.freeze(torch.jit.trace(net, x))

    def run(batch):
        x = torch.from_numpy(batch).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return traced(x)[:, 0].float().numpy()

    return run


def _p50_ms(run, batch: np.ndarray, repeats: int) -> float:
    run(batch)
    run(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_checkpoint(WEIGHTS / "refiner.safetensors", kind="refiner")[0].eval()
    batch, calibration = _inputs(BATCH, 0), _inputs(BATCH, BATCH)
    model_bytes = export_onnx(model)
    with tempfile.TemporaryDirectory() as folder:
        runs = {
            "onnx_fp32": _session(model_bytes, args.threads),
            "onnx_int8_qdq": _session(
                _quantized(model_bytes, calibration, Path(folder), QuantFormat.QDQ), args.threads
            ),
            "onnx_int8_qoperator": _session(
                _quantized(model_bytes, calibration, Path(folder), QuantFormat.QOperator),
                args.threads,
            ),
            "torchscript_bf16": _bf16_torchscript(model, batch),
        }
        reference = runs["onnx_fp32"](batch)
        figures = {}
        for name, run in runs.items():
            figures[name] = {
                "p50_ms": round(_p50_ms(run, batch, args.repeats), 1),
                "max_abs_diff": float(np.abs(run(batch) - reference).max()),
            }
    base_ms = figures["onnx_fp32"]["p50_ms"]
    print(
        f"one pass of a batch of {BATCH} refiner inputs, {args.threads} threads, "
        f"load average {os.getloadavg()[0]:.1f}:"
    )
    for name, row in figures.items():
        row["ratio"] = round(row["p50_ms"] / base_ms, 2)
        print(
            f"  {name:22s} p50 {row['p50_ms']:7.1f} ms  {row['ratio']:4.2f}x float32  "
            f"max|logit diff| {row['max_abs_diff']:.3g}"
        )
    print(json.dumps({"batch": BATCH, "threads": args.threads, "backends": figures}))


if __name__ == "__main__":
    main()
