"""Peak memory and time of reading a view's normals or albedo into the display's 8-bit layer.

Two ways, each in a fresh Python process, reporting its seconds and peak resident memory
(``ru_maxrss``): ``float``, the whole map decoded as float32 and preprocessed
(``views.load_maps``), then encoded (``render.encode_normals``; the albedo:
``render.uint8_encoder`` of its strided sample, as ``pyramid.display_pyramids``); ``strips``,
decoded strip by strip straight into the 8-bit array (``encoded_maps.load_encoded_normals``,
``encoded_maps.load_encoded_albedo``). Their 8-bit results must be the same bytes (compared by
SHA-256). The last line of output is one JSON object.

Usage: ``python benchmarks/bench_normals_load.py /tmp/normals_full [--map albedo] [--repeats 2]``
(a view from ``etmira synth /tmp/normals_full --views 1 --size 8964x6716``; the albedo's mirror
area is the view's mask file, decoded once by another process and handed to the children as
``.npy``: its PNG decoding's peak would hide theirs, and a child inherits its parent's)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = """
import hashlib, json, resource, sys, time
import numpy as np
from annotator.core import render
from refinement_model.encoded_maps import load_encoded_albedo, load_encoded_normals
from refinement_model.imageio import image_shape
from refinement_model.views import find_views, load_maps
view, name, way, mask_file = sys.argv[1:5]
files = find_views(view)[0]
shape = image_shape(files.depth)
mask = np.load(mask_file) if name == "albedo" else np.broadcast_to(True, shape)
step = render.CONTRAST_SAMPLE_STEP
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if way == "float":
    loaded, warnings = load_maps(files, mask, (name,))
    image = loaded.pop(name)
    if name == "normals":
        encoded = render.encode_normals(image)
    else:
        encoded = render.uint8_encoder(image[::step, ::step])(image)
    del image
elif name == "normals":
    encoded, warnings = load_encoded_normals(files, shape, render.encode_normals)
else:
    encoded, warnings = load_encoded_albedo(files, mask, render.uint8_encoder, sample_step=step)
seconds = time.perf_counter() - start
print(json.dumps({"map": name, "way": way, "seconds": seconds, "import_kb": base,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "sha256": hashlib.sha256(encoded.tobytes()).hexdigest(),
                  "warnings": list(warnings)}))
"""


_SAVE_MASK = """
import sys
import numpy as np
from refinement_model.imageio import read_binary_mask
from refinement_model.views import find_views
np.save(sys.argv[2], read_binary_mask(find_views(sys.argv[1])[0].mask, channel="red"))
"""


def _run(*arguments, script: str = _CHILD) -> dict | None:
    environment = dict(os.environ, PYTHONPATH=os.getcwd())
    done = subprocess.run(
        [sys.executable, "-c", script, *arguments],
        check=True,
        capture_output=True,
        text=True,
        env=environment,
    )
    return json.loads(done.stdout.strip().splitlines()[-1]) if script == _CHILD else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("view", help="a view folder or dataset with one view")
    parser.add_argument("--map", choices=("normals", "albedo"), default="normals")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each way, alternated")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        mask_file = str(Path(folder) / "mask.npy")
        if args.map == "albedo":
            _run(args.view, mask_file, script=_SAVE_MASK)
        runs = [
            _run(args.view, args.map, way, mask_file)
            for _ in range(args.repeats)
            for way in ("float", "strips")
        ]
    for run in runs:
        print(
            f"{run['way']:>6}: {run['seconds']:6.1f} s, peak RSS {run['peak_kb'] / 1024:6.0f} MB"
            f" (after imports {run['import_kb'] / 1024:4.0f} MB)"
        )
    same = len({run["sha256"] for run in runs}) == 1
    print(f"8-bit {args.map} {'identical' if same else 'DIFFER'}")
    print(json.dumps({"runs": runs, "identical": same}))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
