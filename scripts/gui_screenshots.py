"""Take the README's screenshots of the annotator on the bundled sample view.

Drives the real window: opens the sample (running the shipped base model once), goes to the
worst patch, draws a few strokes where the simulated annotator would (the last one left in
preview, so the network's proposed difference shows), marks the patch done, and saves four
PNGs.

Run under a virtual display, e.g.::

    xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python scripts/gui_screenshots.py docs/images

Options: ``--base CKPT --refiner CKPT`` (default: the shipped weights), ``--strokes N``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for screenshot_*.png")
    parser.add_argument("--base")
    parser.add_argument("--refiner")
    parser.add_argument("--strokes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from annotator.qt.app import application
    from annotator.qt.main_window import MainWindow
    from refinement_model.shipped import sample_view
    from refinement_model.simulated_user import choose_stroke

    app = application()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as projects:
        window = MainWindow(project_dir=projects, base=args.base, refiner=args.refiner)
        window.resize(1600, 1000)
        window.show()
        window.load(sample_view())
        window.start_refinement.wait()  # the app's start on every patch, as a user soon sees it

        def shot(name, **changes):
            if changes:
                settings = dataclasses.replace(window.layers.settings, **changes)
                window.layers.set_settings(settings)
                window.canvas.set_settings(settings)
            window.refresh_status()
            app.processEvents()
            window.canvas.paint_final()
            window.grab().save(str(args.out / f"screenshot_{name}.png"))

        shot("open")
        window.next_patch()
        session = window.project.session
        y0, x0, y1, x1 = (int(v) for v in session.grid.boxes[window.current_patch])
        rng = np.random.default_rng(args.seed)
        for i in range(args.strokes):
            truth = session.view.ground_truth[y0:y1, x0:x1]
            found = choose_stroke(truth, session.mask[y0:y1, x0:x1], rng=rng, length=41, scale=1.0)
            if found is None:
                break
            stroke = found.stroke
            points = tuple((x + x0, y + y0) for x, y in stroke.points)
            window.canvas.tool = stroke.kind
            window.on_stroke(dataclasses.replace(stroke, points=points))  # as a released drag
            if i < args.strokes - 1:
                window.accept_proposal()
        window.finish_refinement()  # the proposal as it stands after the preview
        shot("strokes")
        window.accept_proposal()
        shot("error_map", error_map=True)
        window.mark_done()  # the patch is finished: ticked in the list, outlined on the canvas
        window.canvas.fit()
        shot(
            "raking",
            error_map=False,
            base="raking",
            azimuth=135.0,
            elevation=30.0,
            prediction_opacity=0.0,
        )
        window.close_project()
        window.close()
    print(f"wrote {', '.join(sorted(p.name for p in args.out.glob('screenshot_*.png')))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
