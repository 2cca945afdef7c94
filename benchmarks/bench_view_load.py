"""Peak memory and time of loading a full-resolution mirror view (target: peak RSS < 2 GB).

Writes a synthetic view of 8964 x 6716 px in the real layout (zlib-compressed float32 TIFFs
with resolution tags, RGBA drawings, RGB mask) to a temporary folder, then loads it with
``load_view`` in a fresh Python process and reports that process's peak resident memory
(``ru_maxrss``) and the load time. The last line of output is one JSON object.

With ``--app VIEW`` it opens a view as the app does instead (issue 24; goals: peak RSS <= 3 GB,
first open to usable <= 30 s, reopen <= 8 s on 2 cores, project file < 152 MB): in one fresh
process the first open (load the depth map, run the shipped base model, write the project,
build the depth's display pyramid and the refiner's input, let go of the float map), in another
the reopen of that project; each reports its seconds to usable and peak RSS, and the project
file's size; then, as the app does in the background once the view is shown, when the albedo
and normals pyramids were built (on a thread) while the first open's start was refined patch by
patch (``annotator.core.start_completion``), and when the deferred refiner was built, with the
peaks. The networks come from the user's ONNX cache, as the app's do: a run that finds no
export of a checkpoint builds it with PyTorch (``first_torch_before_usable`` true), a later run
measures every later start of the app (no PyTorch).

Usage: ``python benchmarks/bench_view_load.py [--scale 0.25] [--no-mask]``,
``python benchmarks/bench_view_load.py --app /tmp/full`` (a view from ``etmira synth /tmp/full
--views 1 --size 8964x6716``)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from refinement_model.imageio import write_png, write_tiff

FULL_HEIGHT, FULL_WIDTH = 6716, 8964
TARGET_PEAK_MB = 2048
PX_PER_MM = 48.0

# Linux copies ru_maxrss into a forked child, so the files are written by another child and
# this parent stays small; VmHWM (reset by exec) is reported as well where /proc exists.
_CHILD = """
import json, resource, sys, time
from refinement_model.views import load_view
def hwm_kb():
    try:
        with open("/proc/self/status") as status:
            return next(int(l.split()[1]) for l in status if l.startswith("VmHWM"))
    except OSError:
        return None
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start, cpu = time.perf_counter(), time.process_time()
view = load_view(sys.argv[1])
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "cpu_s": cpu, "peak_kb": peak, "import_kb": base,
                  "hwm_kb": hwm_kb(),
                  "shape": list(view.shape), "warnings": list(view.warnings)}))
"""


# First open or reopen of a view as the app does it (annotator.qt.document, without a window).
_APP_CHILD = """
import json, os, resource, sys, threading, time
from annotator.core import project as projects
from annotator.core.start_completion import start_completion
from annotator.qt import document
from refinement_model.network_loader import app_loader
from refinement_model.refiner_options import APP_REFINEMENT
from refinement_model.shipped import shipped_checkpoint
view, target, mode = sys.argv[1:4]
start = time.perf_counter()
if mode == "first":
    project = projects.new_project(target, view, base=shipped_checkpoint("base"),
                                   refiner=shipped_checkpoint("refiner"),
                                   refiner_options=APP_REFINEMENT, loader=app_loader(),
                                   start_later=True)
else:
    project = projects.open_project(target, loader=app_loader())
opened = time.perf_counter() - start
stack = document._prepare(project.session)
usable = time.perf_counter() - start
with open("/proc/self/status") as status:
    rss = next(int(l.split()[1]) for l in status if l.startswith("VmRSS"))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
# the display's other maps, read once the view is shown, while the start is refined (the app:
# both in the background)
view = project.session.view
maps_ready = {}
def read_maps():
    if stack.missing_maps:
        pyramids, _ = document.load_display_layers(view.files, view.mirror_mask,
                                                   stack.missing_maps, min_size=stack.min_size)
        stack.add_layers(pyramids)
    maps_ready["s"] = time.perf_counter() - start
reader = threading.Thread(target=read_maps)
reader.start()
completion = start_completion(project, loader=app_loader())
if completion is not None:
    completion.run()
start_ready = time.perf_counter() - start
reader.join()
maps_ready = maps_ready["s"]
peak_with_maps = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
# a reopened project builds its refiner once the view is shown (the app: in the background)
torch_imported = "torch" in sys.modules
if isinstance(project.refiner, projects.DeferredRefiner):
    project.refiner.build()
ready = time.perf_counter() - start
project.close()
print(json.dumps({"seconds": usable, "project_s": opened, "idle_kb": rss, "peak_kb": peak,
                  "maps_ready_s": maps_ready, "peak_with_maps_kb": peak_with_maps,
                  "start_ready_s": start_ready,
                  "refiner_ready_s": ready, "torch_imported": torch_imported,
                  "peak_with_refiner_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""
APP_TARGETS = {"peak_rss_mb": 3072, "first_open_s": 30.0, "reopen_s": 8.0, "project_mb": 152.0}


def open_in_app(view: str) -> dict:
    """Figures of the first open and the reopen of ``view`` in fresh processes."""
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        target = str(Path(folder) / "view.etmira")
        for mode in ("first", "reopen"):
            result = subprocess.run(
                [sys.executable, "-c", _APP_CHILD, view, target, mode],
                check=True,
                capture_output=True,
                text=True,
            )
            child = json.loads(result.stdout.strip().splitlines()[-1])
            open_key = f"{mode}_open_s" if mode == "first" else "reopen_s"
            figures[open_key] = round(child["seconds"], 1)
            figures[f"{mode}_project_s"] = round(child["project_s"], 1)
            figures[f"{mode}_peak_rss_mb"] = round(child["peak_kb"] / 1024)
            figures[f"{mode}_idle_rss_mb"] = round(child["idle_kb"] / 1024)
            figures[f"{mode}_maps_ready_s"] = round(child["maps_ready_s"], 1)
            figures[f"{mode}_start_refined_s"] = round(child["start_ready_s"], 1)
            figures[f"{mode}_peak_with_maps_mb"] = round(child["peak_with_maps_kb"] / 1024)
            figures[f"{mode}_refiner_ready_s"] = round(child["refiner_ready_s"], 1)
            figures[f"{mode}_peak_with_refiner_mb"] = round(child["peak_with_refiner_kb"] / 1024)
            figures[f"{mode}_torch_before_usable"] = child["torch_imported"]
        figures["project_mb"] = round(os.path.getsize(target) / 2**20, 1)
    # the whole process's peak: to usable, then with the display's maps and the refiner
    figures["peak_rss_mb"] = max(
        figures["first_peak_with_refiner_mb"], figures["reopen_peak_with_refiner_mb"]
    )
    figures["targets"] = APP_TARGETS
    figures["targets_met"] = {key: figures[key] <= limit for key, limit in APP_TARGETS.items()}
    figures["cpus"] = os.cpu_count()
    return figures


def write_synthetic_view(root: Path, height: int, width: int, *, mask: bool) -> None:
    """A domed disc with engraved rings and smooth texture, in the real layout."""
    maps = root / "SYN-1" / "PS"
    maps.mkdir(parents=True)
    yy = np.arange(height, dtype=np.float32)[:, None] - height / 2
    xx = np.arange(width, dtype=np.float32)[None, :] - width / 2
    radius = 0.45 * min(height, width)
    r2 = (xx * xx + yy * yy) / radius**2
    disc = r2 < 1
    # Engraved rings (0.15 mm deep) on a shallow dome; the background a plane.
    ring = np.abs(np.sin(np.sqrt(r2) * 40)) < 0.05
    depth = np.where(disc, 2.0 * (1 - r2), 0).astype(np.float32)
    depth -= 0.15 * (ring & disc)
    write_tiff(maps / "SYN-1_R_U.tif", depth, px_per_mm=PX_PER_MM)
    del depth
    albedo = np.where(disc, 0.35 + 0.05 * np.cos(xx / 300) * np.sin(yy / 200), 0.05)
    write_tiff(maps / "SYN-1_R_RHO.tif", albedo.astype(np.float32), px_per_mm=PX_PER_MM)
    del albedo
    normals = np.empty((height, width, 3), np.float32)
    slope = np.where(disc, 4.0 / radius**2, 0).astype(np.float32)
    normals[..., 0] = xx * slope
    normals[..., 1] = yy * slope
    normals[..., 2] = 1
    del slope
    normals /= np.linalg.norm(normals, axis=2, keepdims=True)
    write_tiff(maps / "SYN-1_R_N.tif", normals, px_per_mm=PX_PER_MM)
    del normals
    (root / "drawings").mkdir()
    drawings = np.zeros((height, width, 4), np.uint8)
    drawings[..., 3] = (ring & disc) * np.uint8(255)
    write_png(root / "drawings" / "SYN-1_R_drawings.png", drawings)
    del drawings
    if mask:
        (root / "masks").mkdir()
        rgb = np.zeros((height, width, 3), np.uint8)
        rgb[..., 0] = disc * np.uint8(255)
        write_png(root / "masks" / "SYN-1_R_mask.png", rgb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full size")
    parser.add_argument("--no-mask", action="store_true", help="omit the mask (estimate it)")
    parser.add_argument("--write-only", metavar="FOLDER", help=argparse.SUPPRESS)
    parser.add_argument("--app", metavar="VIEW", help="open VIEW as the app does (see above)")
    args = parser.parse_args()
    if args.app:
        figures = open_in_app(args.app)
        print(
            f"first open {figures['first_open_s']} s (project {figures['first_project_s']} s), "
            f"peak RSS {figures['first_peak_rss_mb']} MB, idle {figures['first_idle_rss_mb']} MB; "
            f"start refined {figures['first_start_refined_s']} s and albedo and normals shown "
            f"{figures['first_maps_ready_s']} s after the start (peak "
            f"{figures['first_peak_with_maps_mb']} MB)"
        )
        print(
            f"reopen {figures['reopen_s']} s (project {figures['reopen_project_s']} s), "
            f"peak RSS {figures['reopen_peak_rss_mb']} MB, "
            f"idle {figures['reopen_idle_rss_mb']} MB; "
            f"albedo and normals shown {figures['reopen_maps_ready_s']} s after the start (peak "
            f"{figures['reopen_peak_with_maps_mb']} MB); "
            f"refiner built {figures['reopen_refiner_ready_s']} s after the start (peak "
            f"{figures['reopen_peak_with_refiner_mb']} MB)"
        )
        print(
            f"project file {figures['project_mb']} MB; targets {APP_TARGETS}: "
            f"{figures['targets_met']}"
        )
        print(json.dumps(figures))
        return
    height, width = round(FULL_HEIGHT * args.scale), round(FULL_WIDTH * args.scale)
    if args.write_only:
        write_synthetic_view(Path(args.write_only), height, width, mask=not args.no_mask)
        return
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--write-only", folder, "--scale", str(args.scale)]
            + (["--no-mask"] if args.no_mask else []),
            check=True,
        )
        written = time.perf_counter() - start
        size_mb = sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 2**20
        result = subprocess.run(
            [sys.executable, "-c", _CHILD, folder], check=True, capture_output=True, text=True
        )
    child = json.loads(result.stdout.strip().splitlines()[-1])
    peak_mb = max(child["peak_kb"], child["hwm_kb"] or 0) / 1024
    figures = {
        "width": width,
        "height": height,
        "megapixels": round(width * height / 1e6, 1),
        "files_mb": round(size_mb, 1),
        "write_s": round(written, 1),
        "load_s": round(child["seconds"], 2),
        "load_cpu_s": round(child["cpu_s"], 2),
        "peak_rss_mb": round(peak_mb, 1),
        "import_rss_mb": round(child["import_kb"] / 1024, 1),
        "target_peak_mb": TARGET_PEAK_MB,
        "peak_target_met": peak_mb < TARGET_PEAK_MB,
        "mask_estimated": args.no_mask,
    }
    print(
        f"view {width} x {height} ({figures['megapixels']} Mpx), files {size_mb:.0f} MB "
        f"written in {written:.1f} s"
    )
    print(
        f"load_view: {child['seconds']:.2f} s wall, {child['cpu_s']:.2f} s CPU, "
        f"peak RSS {peak_mb:.0f} MB "
        f"(after imports {figures['import_rss_mb']:.0f} MB); target < {TARGET_PEAK_MB} MB: "
        f"{'met' if figures['peak_target_met'] else 'NOT met'}"
    )
    if child["warnings"]:
        print("warnings:", "; ".join(child["warnings"]))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
