"""Peak memory and time of reading a view's normals into the display's int8 layer (issue 24).

Two ways, each in a fresh Python process, reporting its seconds and peak resident memory
(``ru_maxrss``): ``float``, the whole map decoded as float32 and made unit
(``views.load_maps``), then encoded (``render.encode_normals``); ``strips``, decoded strip by
strip straight into the int8 array (``views.load_encoded_normals``). Their int8 results must be
the same bytes (compared by SHA-256). The last line of output is one JSON object.

Usage: ``python benchmarks/bench_normals_load.py /tmp/normals_full [--repeats 2]`` (a view from
``etmira synth /tmp/normals_full --views 1 --size 8964x6716``)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_CHILD = """
import hashlib, json, resource, sys, time
import numpy as np
from annotator.core.render import encode_normals
from refinement_model.imageio import image_shape
from refinement_model.views import find_views, load_encoded_normals, load_maps
files = find_views(sys.argv[1])[0]
shape = image_shape(files.depth)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if sys.argv[2] == "float":
    loaded, warnings = load_maps(files, np.broadcast_to(True, shape), ("normals",))
    encoded = encode_normals(loaded.pop("normals"))
else:
    encoded, warnings = load_encoded_normals(files, shape, encode_normals)
seconds = time.perf_counter() - start
print(json.dumps({"way": sys.argv[2], "seconds": seconds, "import_kb": base,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "sha256": hashlib.sha256(encoded.tobytes()).hexdigest(),
                  "warnings": list(warnings)}))
"""


def _run(view: str, way: str) -> dict:
    environment = dict(os.environ, PYTHONPATH=os.getcwd())
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, view, way],
        check=True,
        capture_output=True,
        text=True,
        env=environment,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("view", help="a view folder or dataset with one view")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each way, alternated")
    args = parser.parse_args(argv)
    runs = [_run(args.view, way) for _ in range(args.repeats) for way in ("float", "strips")]
    for run in runs:
        print(
            f"{run['way']:>6}: {run['seconds']:6.1f} s, peak RSS {run['peak_kb'] / 1024:6.0f} MB"
            f" (after imports {run['import_kb'] / 1024:4.0f} MB)"
        )
    same = len({run["sha256"] for run in runs}) == 1
    print(f"int8 results {'identical' if same else 'DIFFER'}")
    print(json.dumps({"runs": runs, "identical": same}))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
