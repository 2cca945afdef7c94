"""Peak memory and time of loading a full-resolution mirror view (target: peak RSS < 2 GB).

Writes a synthetic view of 8964 x 6716 px in the real layout (zlib-compressed float32 TIFFs
with resolution tags, RGBA drawings, RGB mask) to a temporary folder, then loads it with
``load_view`` in a fresh Python process and reports that process's peak resident memory
(``ru_maxrss``) and the load time. The last line of output is one JSON object.

Usage: ``python benchmarks/bench_view_load.py [--scale 0.25] [--no-mask]``
"""

from __future__ import annotations

import argparse
import json
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


def write_synthetic_view(root: Path, height: int, width: int, *, mask: bool) -> None:
    """A domed disc with engraved rings and smooth texture, in the real layout."""
    maps = root / "SYN-1" / "PS"
    maps.mkdir(parents=True)
    yy = np.arange(height, dtype=np.float32)[:, None] - height / 2
    xx = np.arange(width, dtype=np.float32)[None, :] - width / 2
    radius = 0.45 * min(height, width)
    r2 = (xx * xx + yy * yy) / radius ** 2
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
    slope = np.where(disc, 4.0 / radius ** 2, 0).astype(np.float32)
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
    args = parser.parse_args()
    height, width = round(FULL_HEIGHT * args.scale), round(FULL_WIDTH * args.scale)
    if args.write_only:
        write_synthetic_view(Path(args.write_only), height, width, mask=not args.no_mask)
        return
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--write-only", folder, "--scale",
                        str(args.scale)] + (["--no-mask"] if args.no_mask else []), check=True)
        written = time.perf_counter() - start
        size_mb = sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 2**20
        result = subprocess.run([sys.executable, "-c", _CHILD, folder], check=True,
                                capture_output=True, text=True)
    child = json.loads(result.stdout.strip().splitlines()[-1])
    peak_mb = max(child["peak_kb"], child["hwm_kb"] or 0) / 1024
    figures = {
        "width": width, "height": height, "megapixels": round(width * height / 1e6, 1),
        "files_mb": round(size_mb, 1), "write_s": round(written, 1),
        "load_s": round(child["seconds"], 2), "load_cpu_s": round(child["cpu_s"], 2),
        "peak_rss_mb": round(peak_mb, 1),
        "import_rss_mb": round(child["import_kb"] / 1024, 1),
        "target_peak_mb": TARGET_PEAK_MB, "peak_target_met": peak_mb < TARGET_PEAK_MB,
        "mask_estimated": args.no_mask,
    }
    print(f"view {width} x {height} ({figures['megapixels']} Mpx), files {size_mb:.0f} MB "
          f"written in {written:.1f} s")
    print(f"load_view: {child['seconds']:.2f} s wall, {child['cpu_s']:.2f} s CPU, peak RSS {peak_mb:.0f} MB "
          f"(after imports {figures['import_rss_mb']:.0f} MB); target < {TARGET_PEAK_MB} MB: "
          f"{'met' if figures['peak_target_met'] else 'NOT met'}")
    if child["warnings"]:
        print("warnings:", "; ".join(child["warnings"]))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
