"""`etmira report`: plots, a Markdown report and summary.json from a simulation folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from refinement_model.imageio import atomic_write
from simulation.analysis import (
    effort_ratio,
    effort_reduction,
    effort_to_target,
    final_scores,
    last_stroke_step,
    mean_curves,
    pixels_to_reach,
)
from simulation.runs import (
    ADAPTIVE_SETTINGS,
    SETTINGS,
    read_manifest,
    read_records,
    run_path,
)

_ABLATIONS = {
    "Inputs": (
        ("prediction_only", "Prediction Y"),
        ("interaction_only", "Interaction Δ"),
        ("both", "Both Y, Δ"),
    ),
    "Operations": (
        ("erase_only", "Only erasing Δ⁻"),
        ("add_only", "Only adding Δ⁺"),
        ("both", "Both Δ"),
    ),
    "Refined patches": (
        ("queued_patch_only", "The queued patch (the paper)"),
        ("both", "Every patch the stroke touches (the app)"),
    ),
    "Refiner passes": (
        ("one_pass", "One (the app's preview)"),
        ("both", "Four quarter turns of the patch, {refined}"),
    ),
}
# The poster's figures are per test view: "relative improvements peaking at values between
# +12% and +26%", "reducing workload from 56% to 75%" (docs/method.md, "Reported results").
PAPER_PER_VIEW = {"peak_relative_gain": (0.12, 0.26), "effort_reduction": (0.56, 0.75)}
# Whole-view pFM targets of the strokes-to-target table (NoC@85/90 in RITM, FocalClick).
TARGETS = (0.80, 0.85, 0.90)
RANKING_SETTINGS = {"both": "oracle ranking", "gt_free": "GT-free ranking"}
# The settings of the strokes-to-target table: the rankings, and the refiner adapting online.
TARGET_SETTINGS = {**RANKING_SETTINGS, "adaptive": "oracle ranking, refiner adapting online"}
# What runs made before the manifest named their start started from.
BASE_START = "base network"


def load_simulation(folder) -> tuple[dict, dict]:
    """The manifest and ``runs[setting][view_id] = [columns of each seed]`` of a folder."""
    manifest = read_manifest(folder)
    runs: dict[str, dict[str, list]] = {}
    for setting in manifest["settings"]:
        for view_id in manifest["views"]:
            for seed in manifest["seeds"]:
                path = run_path(folder, view_id, setting, seed)
                if path.exists():
                    runs.setdefault(setting, {}).setdefault(view_id, []).append(read_records(path))
    return manifest, runs


def _setting_row(runs_by_view: dict, curves_by_view: dict, views) -> dict:
    """Means over ``views`` of one setting's final scores and curve figures."""
    finals = [final_scores(runs_by_view[view]) for view in views]
    row = {key: _mean([f[key] for f in finals]) for key in finals[0]}
    curves = [curves_by_view[view] for view in views]
    row["mean_relative_gain"] = _mean([float(np.mean(c.relative_gain)) for c in curves])
    row["peak_relative_gain"] = _mean([float(np.max(c.relative_gain)) for c in curves])
    row["effort_reduction"] = _mean([effort_reduction(c) for c in curves])
    row["views"] = sorted(views)
    row["runs"] = sum(len(runs_by_view[view]) for view in views)
    return row


def summarise(manifest: dict, runs: dict) -> tuple[dict, dict]:
    """Headline numbers (summary.json), per-setting rows and ablation tables from loaded runs.

    Headline numbers are means over views of per-view values; per-view curves are means over
    seeds. Each ablation table compares its settings on the views they all ran on.
    """
    curves = {
        setting: {view: mean_curves(seeds) for view, seeds in by_view.items()}
        for setting, by_view in runs.items()
    }
    table = {
        setting: _setting_row(by_view, curves[setting], by_view)
        for setting, by_view in runs.items()
    }
    ablations = {}
    for title, rows in _ABLATIONS.items():
        names = [name for name, _ in rows]
        if all(name in runs for name in names):
            shared = set.intersection(*(set(runs[name]) for name in names))
            if shared:
                ablations[title] = {
                    name: _setting_row(runs[name], curves[name], shared) for name in names
                }
    main = table.get("both", {})
    per_view = {
        view: _setting_row(runs["both"], curves["both"], [view])
        for view in sorted(runs.get("both", {}))
    }
    gt_free_ratio = {
        view: effort_ratio(curves["gt_free"][view], curves["both"][view])
        for view in per_view
        if view in curves.get("gt_free", {})
    }
    summary = {
        "peak_relative_gain": main.get("peak_relative_gain"),
        "effort_reduction": main.get("effort_reduction"),
        "initial_pfm": main.get("initial_pfm"),
        "final_pfm_human": main.get("pfm_human"),
        "final_pfm_network": main.get("pfm_network"),
        "spearman_gt_free": _mean(list(manifest.get("spearman_gt_free", {}).values())),
        "views": manifest["views"],
        "seeds": manifest["seeds"],
        "steps": manifest.get("steps"),
        "start": manifest.get("start", BASE_START),
        "per_view": {
            view: {
                "peak_relative_gain": row["peak_relative_gain"],
                "effort_reduction": row["effort_reduction"],
                "initial_pfm": row["initial_pfm"],
                "final_pfm_human": row["pfm_human"],
                "final_pfm_network": row["pfm_network"],
                "base_pfm": manifest.get("base_pfm", {}).get(view),
                "gt_free_effort_ratio": gt_free_ratio.get(view),
            }
            for view, row in per_view.items()
        },
        "to_target": {
            setting: {view: _to_target(seeds) for view, seeds in runs[setting].items()}
            for setting in TARGET_SETTINGS
            if setting in runs
        },
        "last_stroke_step": {
            setting: max(last_stroke_step(run) for seeds in by_view.values() for run in seeds)
            for setting, by_view in runs.items()
        },
    }
    for adaptive, described in ADAPTIVE_SETTINGS.items():
        adaptation = adaptation_figures(curves, manifest, adaptive)
        if adaptation:
            summary[described.summary_key] = adaptation
    if "gt_free" in curves and "both" in curves:
        summary["gt_free_effort_reduction"] = table["gt_free"]["effort_reduction"]
        summary["gt_free_effort_ratio"] = _mean(list(gt_free_ratio.values()))
    return summary, {"table": table, "ablations": ablations, "curves": curves}


def adaptation_figures(curves: dict, manifest: dict, setting: str) -> dict:
    """Per view that ran the adaptive ``setting`` and its frozen one (``ADAPTIVE_SETTINGS``): the
    annotated pixels each needs to reach the frozen run's final human + network pFM (mean
    curves over seeds), their ratio (adaptive / frozen: 0.5 = half the pixels), the peak
    relative gains, and the online updates the manifest logged (count, accepted, mean seconds
    per update and per adapted refiner)."""
    out = {}
    frozen_setting = ADAPTIVE_SETTINGS[setting].frozen
    for view in sorted(set(curves.get(frozen_setting, {})) & set(curves.get(setting, {}))):
        frozen, adaptive = curves[frozen_setting][view], curves[setting][view]
        target = float(frozen.network_mean[-1])
        pixels = {
            name: pixels_to_reach(c.pixels, c.network_mean, target)
            for name, c in (("frozen", frozen), ("adaptive", adaptive))
        }
        updates = [
            entry
            for run, log in manifest.get("adaptation", {}).items()
            if run.startswith(f"{view}/{setting}/")
            for entry in log
        ]
        built = [e["refiner_seconds"] for e in updates if "refiner_seconds" in e]
        out[view] = {
            "target_pfm": target,
            "frozen_pixels": pixels["frozen"],
            "adaptive_pixels": pixels["adaptive"],
            "pixel_ratio": (
                pixels["adaptive"] / pixels["frozen"]
                if 0 < pixels["frozen"] < math.inf
                else float("nan")
            ),
            "frozen_peak_gain": float(np.max(frozen.relative_gain)),
            "adaptive_peak_gain": float(np.max(adaptive.relative_gain)),
            "updates": len(updates),
            "accepted": sum(e["accepted"] for e in updates),
            "update_seconds": _mean([e["seconds"] for e in updates]),
            "refiner_seconds": _mean(built),
        }
    return out


def _adaptation_lines(adaptation: dict, setting: str, pct, num) -> list[str]:
    """The online adaptation of ``setting`` against the frozen refiner, per view."""
    if not adaptation:
        return []
    described = ADAPTIVE_SETTINGS[setting]
    lines = [
        f"## {described.title}: `{setting}` against the frozen refiner (`{described.frozen}`)",
        "",
        "| view | frozen final pFM | annotated pixels to reach it, frozen / adaptive | "
        "ratio | peak relative gain, frozen / adaptive | updates accepted | "
        "s per update | s per adapted refiner |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for view, row in adaptation.items():
        lines.append(
            f"| {view} | {num(row['target_pfm'])} | {row['frozen_pixels']:,.0f} / "
            f"{row['adaptive_pixels']:,.0f} | {_fmt(row['pixel_ratio'])} | "
            f"{pct(row['frozen_peak_gain'])} / {pct(row['adaptive_peak_gain'])} | "
            f"{row['accepted']} of {row['updates']} | {_fmt(row['update_seconds'])} | "
            f"{_fmt(row['refiner_seconds'])} |"
        )
    return lines + [
        "",
        "The ratio is the adaptive run's annotated pixels over the frozen run's "
        "(below 1: the adaptation saves effort; inf: never reached).",
        "",
    ]


def _to_target(seeds: list[dict]) -> dict:
    """Per target pFM and curve, the mean strokes and annotated pixels over the runs that
    reached it, and how many of them did: ``{"0.85": {"pfm_human": {"strokes", "pixels",
    "reached", "runs"}, "pfm_network": ...}}``."""
    out = {}
    for target in TARGETS:
        out[f"{target:.2f}"] = {}
        for curve in ("pfm_human", "pfm_network"):
            efforts = [effort_to_target(run, curve, target) for run in seeds]
            reached = [e for e in efforts if math.isfinite(e[0])]
            out[f"{target:.2f}"][curve] = {
                "strokes": _mean([e[0] for e in reached]),
                "pixels": _mean([e[1] for e in reached]),
                "reached": len(reached),
                "runs": len(efforts),
            }
    return out


def write_report(folder, out=None) -> dict:
    """Write plots, ``report.md`` and ``summary.json`` into ``out`` (default: ``folder``).

    Returns the summary.
    """
    out = Path(out or folder)
    out.mkdir(parents=True, exist_ok=True)
    manifest, runs = load_simulation(folder)
    summary, details = summarise(manifest, runs)
    plots = _plot(details["curves"], out)
    _atomic_text(out / "summary.json", json.dumps(_jsonable(summary), indent=2, sort_keys=True))
    _atomic_text(out / "report.md", _markdown(manifest, summary, details, plots))
    return summary


def _plot(curves: dict, out: Path) -> list[str]:
    # matplotlib only when plotting (the rest of the report runs without it), Agg before pyplot
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for setting in ("both", "gt_free"):
        for view, c in curves.get(setting, {}).items():
            fig, (top, bottom) = plt.subplots(
                2, 1, figsize=(7, 6.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
            )
            _band(top, c.pixels, c.human_mean, c.human_std, "human only", "tab:gray")
            _band(top, c.pixels, c.network_mean, c.network_std, "human + network", "tab:red")
            top.set_ylabel("pFM (mirror area)")
            top.set_title(
                f"{view}: GT-free ranking" if setting == "gt_free" else f"{view}: oracle ranking"
            )
            top.legend(loc="lower right")
            top.grid(alpha=0.3)
            bottom.plot(c.pixels, 100 * c.relative_gain, color="tab:blue")
            bottom.axhline(0, color="black", lw=0.8)
            bottom.set_ylabel("relative pFM gain (%)")
            bottom.set_xlabel("annotated pixels")
            bottom.grid(alpha=0.3)
            fig.tight_layout()
            name = f"curves_{setting}_{view}.png"
            fig.savefig(out / name, dpi=110)
            plt.close(fig)
            names.append(name)
    return names


def _band(axis, x, mean, std, label, color):
    axis.plot(x, mean, label=label, color=color)
    axis.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, lw=0)


def _markdown(manifest: dict, summary: dict, details: dict, plots: list[str]) -> str:
    def pct(value):
        return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"

    def num(value, std=None):
        if value is None or not math.isfinite(value):
            return "n/a"
        return f"{100 * value:.2f}" + ("" if not std else f" ± {100 * std:.2f}")

    # runs made before the app refined again have no "iterations": they refined once
    iterations = manifest.get("iterations", 1)
    refined = {1: "refined once", 2: "refined twice"}.get(iterations, f"refined {iterations} times")
    orientations = manifest.get("orientations", 4)
    turns = "four quarter turns" if orientations == 4 else f"{orientations} orientations"
    start = summary.get("start", BASE_START)
    lines = [
        "# Simulated annotation: human only vs human + network",
        "",
        f"Views: {', '.join(manifest['views'])}; seeds: {len(manifest['seeds'])}; "
        f"steps per run: {manifest.get('steps')}"
        + _last_stroke_text(summary.get("last_stroke_step", {}), manifest.get("steps"))
        + ".",
        "",
        f"Models: base `{manifest.get('base')}`, refiner `{manifest.get('refiner')}`, its logits "
        f"averaged over {turns} of each patch and {refined} per stroke (but in `one_pass`).",
        "",
        f"Start (the initial prediction both curves begin from): {start}.",
        "",
    ]
    if start == BASE_START:
        lines += [
            "These runs start from the base network alone, not from the app's start (the "
            "base refined with no strokes): their gains include what the refiner does "
            "with no strokes at all.",
            "",
        ]
    if not summary.get("per_view"):
        lines += [
            "No `both` runs here (the paper's user, oracle ranking), so no headline: the "
            "settings this folder ran are compared below.",
            "",
        ]
    else:
        lines += _headline_lines(summary, pct, num)
    lines += _start_lines(summary.get("per_view", {}), start, num)
    lines += _per_view_lines(summary.get("per_view", {}), pct, num)
    lines += _to_target_lines(summary.get("to_target", {}))
    for setting, described in ADAPTIVE_SETTINGS.items():
        lines += _adaptation_lines(summary.get(described.summary_key, {}), setting, pct, num)
    table = details["table"]
    for title, rows in _ABLATIONS.items():
        if title not in details["ablations"]:
            continue
        ablation = details["ablations"][title]
        first = ablation[rows[0][0]]
        lines += [
            f"## Ablation: {title.lower()}",
            "",
            f"On {', '.join(first['views'])}.",
            "",
            "| setting | IoU | pFM | mean pFM Δ over human only | runs |",
            "|---|---|---|---|---|",
            f"| initial prediction | {num(first['initial_iou'])} | "
            f"{num(first['initial_pfm'])} | - | - |",
        ]
        for name, label in rows:
            row = ablation[name]
            lines.append(
                f"| {label.format(refined=refined)} | "
                f"{num(row['iou_network'], row['iou_network_std'])} | "
                f"{num(row['pfm_network'], row['pfm_network_std'])} | "
                f"{pct(row['mean_relative_gain'])} | {row['runs']} |"
            )
        lines.append("")
    lines += [
        "## All settings",
        "",
        "| setting | final pFM human | final pFM network | peak gain | effort reduction |",
        "|---|---|---|---|---|",
    ]
    for name in SETTINGS:
        if name in table:
            row = table[name]
            lines.append(
                f"| {name} | {num(row['pfm_human'])} | {num(row['pfm_network'])} | "
                f"{pct(row['peak_relative_gain'])} | {pct(row['effort_reduction'])} |"
            )
    lines += [
        "",
        "IoU and pFM are in percent, measured on the whole view inside the mirror area "
        "after the last step; ± is the std over seeds. The input ablations feed zeros in "
        "place of the left-out input to the one shipped refiner (the paper trained a "
        "network per setting).",
        "",
        "## Curves",
        "",
    ]
    lines += [f"![{name}]({name})" for name in plots]
    return "\n".join(lines) + "\n"


def _headline_lines(summary: dict, pct, num) -> list[str]:
    """The headline table of the paper's main setting (``both``)."""
    return [
        "## Headline (oracle ranking, add + erase, both inputs)",
        "",
        "| measure | value |",
        "|---|---|",
        f"| initial pFM | {num(summary.get('initial_pfm'))} |",
        f"| final pFM, human only | {num(summary.get('final_pfm_human'))} |",
        f"| final pFM, human + network | {num(summary.get('final_pfm_network'))} |",
        f"| peak relative pFM gain, mean over the views | "
        f"{pct(summary.get('peak_relative_gain'))} |",
        f"| annotated-pixel reduction at equal pFM, mean over the views | "
        f"{pct(summary.get('effort_reduction'))} |",
        f"| GT-free ranking: Spearman with patch badness | "
        f"{_fmt(summary.get('spearman_gt_free'))} |",
        f"| GT-free ranking: annotated-pixel reduction | "
        f"{pct(summary.get('gt_free_effort_reduction'))} |",
        f"| GT-free ranking: effort relative to the oracle's | "
        f"{_fmt(summary.get('gt_free_effort_ratio'))} |",
        "",
    ]


def _per_view_lines(per_view: dict, pct, num) -> list[str]:
    """The headline per view, with its range next to the paper's (whose figures are per view)."""
    if not per_view:
        return []
    lines = [
        "## Per view (oracle ranking)",
        "",
        "| view | initial pFM | final pFM human / network | peak relative gain | "
        "annotated-pixel reduction | GT-free effort / oracle's |",
        "|---|---|---|---|---|---|",
    ]
    for view, row in per_view.items():
        lines.append(
            f"| {view} | {num(row['initial_pfm'])} | {num(row['final_pfm_human'])} / "
            f"{num(row['final_pfm_network'])} | {pct(row['peak_relative_gain'])} | "
            f"{pct(row['effort_reduction'])} | "
            f"{_fmt(row.get('gt_free_effort_ratio'))} |"
        )
    ranges = []
    for key in ("peak_relative_gain", "effort_reduction"):
        values = [
            row[key]
            for row in per_view.values()
            if row[key] is not None and math.isfinite(row[key])
        ]
        ranges.append("n/a" if not values else f"{pct(min(values))} to {pct(max(values))}")
    low, high = (pct(v) for v in PAPER_PER_VIEW["peak_relative_gain"])
    fewer_low, fewer_high = (pct(v) for v in PAPER_PER_VIEW["effort_reduction"])
    lines += [
        f"| range over the views | | | {ranges[0]} | {ranges[1]} | |",
        f"| the paper, range over its three test views | | | {low} to {high} | "
        f"{fewer_low} to {fewer_high} | |",
        "",
    ]
    return lines


def _start_lines(per_view: dict, start: str, num) -> list[str]:
    """Per view, what the networks reach with no strokes, next to what the strokes reach."""
    if not per_view or start == BASE_START:
        return []
    lines = [
        "## The automatic start: the networks with no strokes (oracle ranking)",
        "",
        "| view | base network alone | refiner with no strokes (the start) | "
        "final human only | final human + network |",
        "|---|---|---|---|---|",
    ]
    for view, row in per_view.items():
        lines.append(
            f"| {view} | {num(row.get('base_pfm'))} | {num(row['initial_pfm'])} | "
            f"{num(row['final_pfm_human'])} | {num(row['final_pfm_network'])} |"
        )
    return lines + [
        "",
        "pFM in percent. The gain from the first column to the second is the "
        "network alone; every figure below is measured against the second.",
        "",
    ]


def _to_target_lines(to_target: dict) -> list[str]:
    """Strokes and annotated pixels to reach each target pFM, per ranking and view."""
    if not to_target:
        return []
    lines = [
        "## Strokes / annotated pixels to reach a whole-view pFM",
        "",
        "Mean over the runs (seeds) at the first record (every few steps) that reaches the "
        'target; "not reached" when no run did, and how many runs did when some did '
        "not (the NoC@85/90 convention of interactive segmentation).",
        "",
        "| ranking | view | curve | " + " | ".join(f"pFM {t:.2f}" for t in TARGETS) + " |",
        "|---|---|---|" + "---|" * len(TARGETS),
    ]
    for setting, by_view in to_target.items():
        for view, targets in sorted(by_view.items()):
            for curve, label in (("pfm_human", "human only"), ("pfm_network", "human + network")):
                lines.append(
                    f"| {TARGET_SETTINGS[setting]} | {view} | {label} | "
                    + " | ".join(_effort_text(targets[f"{t:.2f}"][curve]) for t in TARGETS)
                    + " |"
                )
    return lines + [""]


def _effort_text(effort: dict) -> str:
    if not effort["reached"]:
        return "not reached"
    text = f"{effort['strokes']:.0f} / {effort['pixels']:,.0f}"
    if effort["reached"] < effort["runs"]:
        text += f" ({effort['reached']} of {effort['runs']} runs)"
    return text


def _last_stroke_text(last_steps: dict, steps) -> str:
    if not last_steps:
        return ""
    last = max(last_steps.values())
    text = f"; the simulated user's last stroke came by step {last}"
    if steps is not None and last >= steps:
        text += " (still drawing when the runs stopped: the curves are cut, not converged)"
    return text


def _fmt(value) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _atomic_text(path: Path, text: str) -> None:
    atomic_write(path, lambda temporary: Path(temporary).write_text(text))
