"""Simulation runs on disk: one CSV per view, setting and seed, plus a manifest.

Layout of a simulation folder::

    DIR/manifest.json                      views, settings, seeds, models, ranking quality
    DIR/runs/<view_id>/<setting>_seed<k>.csv
        the records of :func:`simulation.protocol.run_protocol`
"""

from __future__ import annotations

import csv
import fcntl
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from refinement_model.errors import InputError
from refinement_model.imageio import atomic_write
from refinement_model.refiner_options import (
    ADAPTATION_PERIOD,
    APP_REFINEMENT,
    ONE_PASS,
    RefinerOptions,
)
from simulation.protocol import RECORD_FIELDS, ProtocolConfig

MANIFEST = "manifest.json"
# The patch pFM at which the finishing user moves on.
FINISH_PFM = 0.9

# The paper's settings: the main run, the GT-free ranking, and the two ablations; the paper's
# refinement of the queued patch alone, against the app's of every patch a stroke touches; and
# the app's one-pass preview instead of its refinement (REFINER_OPTIONS); the app's refiner
# adapting online to the view as the app does (refinement_model.adaptation); and a user who
# finishes each patch before the next (ProtocolConfig.finish_pfm), with the frozen refiner and
# with its decoder adapting after each finished patch (ADAPTIVE_SETTINGS).
SETTINGS = {
    "both": {},
    "gt_free": {"ranking": "gt_free"},
    "add_only": {"operations": ("add",)},
    "erase_only": {"operations": ("erase",)},
    "prediction_only": {"use_strokes": False},
    "interaction_only": {"use_prediction": False},
    "queued_patch_only": {"refine_touched": False},
    "one_pass": {},
    "adaptive": {"adapt_every": ADAPTATION_PERIOD},
    "finishing": {"finish_pfm": FINISH_PFM},
    "finishing_adaptive": {"finish_pfm": FINISH_PFM, "adapt_every": 1},
}


@dataclass(frozen=True)
class AdaptiveSetting:
    """An adaptive setting of the protocol: its
    :class:`~refinement_model.adaptation.AdaptationOptions` besides the run's seed and stroke
    scale (``options``), the setting with the same user and the frozen refiner it is measured
    against (``frozen``), and its section of the report (``title``) and of ``summary.json``
    (``summary_key``)."""

    frozen: str
    title: str
    summary_key: str
    options: dict = field(default_factory=dict)


# The finishing user's update is the one that learns a mirror from true labels
# (docs/evaluation/adaptive, "Where the limit is"): the decoder with the refiner's Dice loss,
# on examples with the user's strokes or none; its windows decoded with context, chosen on the
# tuning views (docs/evaluation/adaptive, "The finishing user in the protocol").
ADAPTIVE_SETTINGS = {
    "adaptive": AdaptiveSetting(frozen="both", title="Online adaptation", summary_key="adaptation"),
    "finishing_adaptive": AdaptiveSetting(
        frozen="finishing",
        title="Online adaptation to a user who finishes patches",
        summary_key="finishing_adaptation",
        options={
            "trainable": "decoder",
            "loss": "dice",
            "steps": 100,
            "crop": 128,
            "context": 32,
            "learning_rate": 3e-4,
            "max_strokes": 1,
        },
    ),
}
MAIN_SETTINGS = ("both", "gt_free")
# Where a simulated annotation starts: the app's start (the base network refined with no
# strokes, refinement_model.start) or the base network alone (the paper's protocol).
STARTS = ("refined", "base")
# PatchRefiner options of the settings that do not use the app's refiner. The app commits its
# APP_REFINEMENT (refined logits averaged over quarter turns of each patch, refined again); it
# shows a one-pass preview first, within the release-to-screen budget
# (annotator.core.session), which is the setting one_pass.
REFINER_OPTIONS = {"one_pass": ONE_PASS}


def refiner_options(
    setting: str, *, iterations: int | None = None, orientations: int | None = None
) -> RefinerOptions:
    """The PatchRefiner options of a named setting: the app's unless it names others.

    ``iterations`` and ``orientations`` replace the app's refinements per stroke and the
    orientations each averages (ablations); the settings that name their own options keep them.
    """
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {sorted(SETTINGS)}, got {setting!r}")
    if setting in REFINER_OPTIONS:
        return REFINER_OPTIONS[setting]
    changes = {"iterations": iterations, "orientations": orientations}
    return replace(APP_REFINEMENT, **{k: v for k, v in changes.items() if v is not None})


def setting_config(name: str, base: ProtocolConfig) -> ProtocolConfig:
    """The protocol configuration of a named setting, on top of ``base``."""
    if name not in SETTINGS:
        raise ValueError(f"setting must be one of {sorted(SETTINGS)}, got {name!r}")
    return replace(base, **SETTINGS[name])


def run_path(folder, view_id: str, setting: str, seed: int) -> Path:
    return Path(folder) / "runs" / view_id / f"{setting}_seed{seed}.csv"


def write_records(path, records: list[dict]) -> None:
    """Write protocol records as CSV, atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(temporary):
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=RECORD_FIELDS)
            writer.writeheader()
            writer.writerows(records)

    atomic_write(path, write)


def read_records(path) -> dict[str, list[float]]:
    """Columns of a run CSV as lists of floats; InputError naming the file when it is bad."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise InputError(path, f"cannot read the run: {error.strerror or error}") from None
    if not rows or set(RECORD_FIELDS) - set(rows[0]):
        raise InputError(
            path, f"not a simulation run (needs the columns {', '.join(RECORD_FIELDS)})"
        )
    try:
        return {key: [float(row[key]) for row in rows] for key in RECORD_FIELDS}
    except (TypeError, ValueError):
        raise InputError(path, "a value of the run is not a number") from None


def write_manifest(folder, manifest: dict) -> None:
    Path(folder).mkdir(parents=True, exist_ok=True)
    text = json.dumps(manifest, indent=2, sort_keys=True)
    atomic_write(Path(folder) / MANIFEST, lambda temporary: Path(temporary).write_text(text))


def merge_manifest(folder, manifest: dict) -> dict:
    """Add a simulation's manifest to the one already in ``folder`` and write the union.

    Several ``etmira simulate`` processes (one per view, say, to use every core) can share one
    output folder: a lock file serialises the read-modify-write. Lists (views, settings, seeds)
    are united, mappings (per-view figures) merged; the run parameters must agree.

    Returns
    -------
    merged : dict
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / (MANIFEST + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = folder / MANIFEST
        merged = read_manifest(folder) if path.exists() else {}
        for key, value in manifest.items():
            old = merged.get(key)
            if isinstance(value, list):
                merged[key] = sorted(set(old or []) | set(value))
            elif isinstance(value, dict):
                merged[key] = {**(old or {}), **value}
            elif old is not None and old != value:
                raise InputError(
                    path,
                    f"holds runs with {key} = {old!r}, this simulation has "
                    f"{value!r}: choose another --out folder",
                )
            else:
                merged[key] = value
        write_manifest(folder, merged)
    return merged


def read_manifest(folder) -> dict:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(
            path, "no simulation here (run `etmira simulate ... --out DIR` first)"
        ) from None
    except (OSError, ValueError) as error:
        raise InputError(path, f"unreadable manifest: {error}") from None
    for key in ("views", "settings", "seeds"):
        if key not in manifest:
            raise InputError(path, f"the manifest lacks '{key}'")
    return manifest
