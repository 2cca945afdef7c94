"""``etmira project new|replay|info|export``: headless work on project files.

- ``new VIEW -o P [--base CKPT] [--refiner CKPT]``: run the base model over a view, store it.
- ``replay P STROKES.json``: apply the strokes one by one, each committed to the project.
- ``info P [--json]``: strokes, annotated pixels, patches done, effort; pfm / iou with ground
  truth.
- ``export P --png OUT.png [--bilevel-png] [--tiff] [--svg] [--journal] [--provenance]
  [--refiner OUT.safetensors]`` (the refiner adapted to the mirror, as a checkpoint).

``info`` and ``export`` read the project without locking it (they work while the app has it
open) and need neither the view's maps nor a model.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from tqdm import tqdm

from annotator.core.project import new_project, open_project, project_summary, replay_stored
from annotator.core.project_file import needs_recovery
from annotator.core.project_store import ProjectStore
from refinement_model.errors import CheckpointError, InputError
from refinement_model.imageio import read_binary_mask
from refinement_model.metrics import score_masks
from refinement_model.network_loader import app_loader
from refinement_model.progress import progress_bar
from refinement_model.refiner_options import APP_REFINEMENT
from refinement_model.shipped import shipped_checkpoint

# Imported inside the commands that need them, so that `etmira --help` does not wait for them:
# annotator.core.adaptation (torch) and annotator.core.export with journal_io, which uses it
# (scikit-image's measure module and with it scipy.signal, about 0.3 s).


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "project",
        help="create, replay, inspect and export project files",
        description="Work on etmira project files without the GUI.",
    )
    commands = parser.add_subparsers(dest="project_command", metavar="ACTION", required=True)

    new = commands.add_parser("new", help="run the base model over a view and create a project")
    new.add_argument("view", help="a view folder, a data-set root (with --view-id) or a view file")
    new.add_argument("-o", "--output", required=True, help="the project file to create")
    new.add_argument("--view-id", help="which view, when VIEW holds several")
    new.add_argument("--base", help="base model checkpoint (default: the shipped weights)")
    new.add_argument(
        "--refiner",
        help="refiner checkpoint (default: the shipped weights if present; 'none' for none)",
    )
    new.add_argument("--force", action="store_true", help="replace an existing project file")
    new.set_defaults(func=run_new)

    replay = commands.add_parser(
        "replay", help="apply the strokes of a stroke file, committing each to the project"
    )
    replay.add_argument("project")
    replay.add_argument("strokes", help="stroke JSON file (format in docs/project-file.md)")
    replay.add_argument(
        "--no-refine",
        action="store_true",
        help="burn the strokes in without the refinement network",
    )
    replay.set_defaults(func=run_replay)

    info = commands.add_parser("info", help="print a project's figures")
    info.add_argument("project")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=run_info)

    export = commands.add_parser("export", help="write the mask, lines, journal or provenance")
    export.add_argument("project")
    export.add_argument("--png", help="the mask as RGBA PNG (alpha = line), like the ground truth")
    export.add_argument("--bilevel-png", help="the mask as 1-bit PNG (white = line)")
    export.add_argument("--tiff", help="the mask as 1-bit TIFF with the view's resolution")
    export.add_argument("--svg", help="the lines as SVG centre lines with widths")
    export.add_argument(
        "--journal",
        help="the strokes in effect and the full event journal as "
        "a stroke JSON file (with effort figures)",
    )
    export.add_argument("--provenance", help="an RGBA PNG colouring each line pixel by origin")
    export.add_argument(
        "--refiner",
        help="the refiner adapted to this mirror (the weights in "
        "effect at the end of the journal) as a refiner checkpoint",
    )
    export.add_argument(
        "--min-length",
        type=float,
        default=0.0,
        help="SVG: drop open lines shorter than this many pixels",
    )
    export.set_defaults(func=run_export)


def run_new(args) -> int:
    base = args.base or shipped_checkpoint("base")
    refiner = args.refiner
    if refiner is None:
        try:
            refiner = shipped_checkpoint("refiner")
        except CheckpointError:
            refiner = None
    elif refiner == "none":
        refiner = None
    with progress_bar("base model", unit="patch") as progress:
        project = new_project(
            args.output,
            args.view,
            base=base,
            refiner=refiner,
            refiner_options=APP_REFINEMENT,
            loader=app_loader(),
            view_id=args.view_id,
            overwrite=args.force,
            with_refiner=False,
            progress=progress,
        )
    with project:
        shape = project.session.grid.shape
        print(
            f"created {project.path}: view {project.session.view.view_id}, {shape[1]} x "
            f"{shape[0]} px, {len(project.session.grid)} patches, "
            f"refiner: {'yes' if refiner else 'no'}"
        )
    return 0


def run_replay(args) -> int:
    from annotator.core.journal_io import read_strokes

    strokes = read_strokes(args.strokes)
    refine = None if args.no_refine else "stored"
    with open_project(args.project, refine=refine, loader=app_loader()) as project:
        for warning in project.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        session = project.session
        for index, stroke in enumerate(
            tqdm(strokes, desc="strokes", unit="stroke", disable=None, file=sys.stderr)
        ):
            try:
                session.apply_stroke(stroke)
            except ValueError as error:
                raise InputError(args.strokes, f"stroke {index}: {error}") from None
        summary = project.summary()
    print(
        f"replayed {len(strokes)} strokes into {args.project}: {summary['strokes']} strokes, "
        f"{summary['annotated_pixels']} annotated pixels"
    )
    return 0


def project_info(path) -> dict:
    """The figures ``etmira project info`` prints (from the file alone, plus ground truth)."""
    recovery = needs_recovery(path)
    with ProjectStore.open(path, readonly=True) as store:
        meta = store.meta()
        mask = store.read_layer("mask")
        out = {
            "project": str(path),
            "view_id": meta.get("view", {}).get("view_id"),
            "height": mask.shape[0],
            "width": mask.shape[1],
            **project_summary(store),
            "events": store.event_count(),
            "line_pixels": int(np.count_nonzero(mask)),
            "needs_recovery": recovery,
            "models": {kind: record["path"] for kind, record in meta.get("models", {}).items()},
        }
        drawings = meta.get("view", {}).get("files", {}).get("drawings")
        if drawings is not None:
            truth = read_binary_mask(
                drawings["path"],
                channel="alpha",
                shape=mask.shape,
                what="the ground truth",
                shape_of=f"the project {path}",
            )
            scores = score_masks(mask, truth, mask=store.read_layer("mirror_mask"))
            out.update(pfm=scores["pfm"], iou=scores["iou"])
    return out


def run_info(args) -> int:
    info = project_info(args.project)
    if args.json:
        print(json.dumps(info, sort_keys=True))
    else:
        for key, value in info.items():
            print(f"{key}: {value}")
    return 0


def _export_refiner(store, session, path) -> str:
    """Write the project's adapted refiner to ``path``; returns what was written."""
    from annotator.core.adaptation import export_adapted_refiner, stored_states, valid_update

    states = stored_states(store)
    update = valid_update(session, states)
    if update is None:
        raise InputError(
            store.path,
            "the project has no adapted refiner (no accepted update of the refiner is in effect)",
        )
    record = store.meta().get("models", {}).get("refiner")
    if record is None:
        raise InputError(store.path, "the project records no refiner checkpoint")
    examples = session.journal[update]["examples"]
    export_adapted_refiner(path, record["path"], states[update], position=update, examples=examples)
    return f"{path} (adapted on {examples} patches)"


def run_export(args) -> int:
    from annotator.core import export
    from annotator.core.journal_io import write_strokes

    targets = [
        args.png,
        args.bilevel_png,
        args.tiff,
        args.svg,
        args.journal,
        args.provenance,
        args.refiner,
    ]
    if not any(targets):
        raise InputError(
            None,
            "give at least one of --png, --bilevel-png, --tiff, --svg, "
            "--journal, --provenance, --refiner",
        )
    with ProjectStore.open(args.project, readonly=True) as store:
        meta = store.meta()
        mask = store.read_layer("mask")
        px_per_mm = meta.get("view", {}).get("px_per_mm")
        written = []
        if args.png:
            export.write_mask_png(args.png, mask)
            written.append(args.png)
        if args.bilevel_png:
            export.write_mask_png(args.bilevel_png, mask, bilevel=True)
            written.append(args.bilevel_png)
        if args.tiff:
            export.write_mask_tiff(args.tiff, mask, px_per_mm=px_per_mm)
            written.append(args.tiff)
        if args.svg:
            count = export.write_svg(
                args.svg, mask, px_per_mm=px_per_mm, min_length=args.min_length
            )
            written.append(f"{args.svg} ({count} lines)")
        if args.provenance:
            export.write_provenance_png(args.provenance, store.read_layer("provenance"), mask)
            written.append(args.provenance)
        session = replay_stored(store) if args.journal or args.refiner else None
        if args.refiner:
            written.append(_export_refiner(store, session, args.refiner))
        if args.journal:
            write_strokes(
                args.journal,
                session.strokes,
                events=session.journal,
                effort=project_summary(store),
                view={
                    "view_id": meta["view"]["view_id"],
                    "height": mask.shape[0],
                    "width": mask.shape[1],
                },
            )
            written.append(args.journal)
    print("wrote " + ", ".join(written))
    return 0
