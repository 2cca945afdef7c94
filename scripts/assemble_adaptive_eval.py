"""Assemble docs/evaluation/adaptive from the adaptive runs in data/sim (see its README) and the
first STEPS steps of
docs/evaluation/other_recipe's frozen runs: `python scripts/assemble_adaptive_eval.py 60`,
then `etmira report docs/evaluation/adaptive`."""

import csv
import json
import shutil
import sys
from pathlib import Path

STEPS = int(sys.argv[1])
out = Path("docs/evaluation/adaptive")
out.mkdir(parents=True, exist_ok=True)
frozen = Path("docs/evaluation/other_recipe")
manifest = None
for recipe, view in (("other_grooves", "SYN-0301_R"), ("other_hard", "SYN-0311_R")):
    sim = Path("data/sim") / recipe
    m = json.loads((sim / "manifest.json").read_text())
    (out / "runs" / view).mkdir(parents=True, exist_ok=True)
    shutil.copy(
        sim / "runs" / view / "adaptive_seed0.csv", out / "runs" / view / "adaptive_seed0.csv"
    )
    with open(frozen / "runs" / view / "both_seed0.csv") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= STEPS]
    with open(out / "runs" / view / "both_seed0.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    fm = json.loads((frozen / "manifest.json").read_text())
    assert abs(fm["start_pfm"][view] - m["start_pfm"][view]) < 1e-12, (
        view,
        fm["start_pfm"][view],
        m["start_pfm"][view],
    )
    if manifest is None:
        manifest = m
    else:
        for k, v in m.items():
            if isinstance(v, dict):
                manifest[k] = {**manifest[k], **v}
            elif isinstance(v, list):
                manifest[k] = sorted(set(manifest[k]) | set(v))
manifest["settings"] = ["adaptive", "both"]
(out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
