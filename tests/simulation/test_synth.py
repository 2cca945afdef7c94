"""Tests of the synthetic mirrors (simulation.synth) and ``etmira synth``."""

import subprocess
import sys

import numpy as np
import pytest

from refinement_model.imageio import read_binary_mask, read_tiff, tiff_px_per_mm
from simulation.synth import HALF_WIDTH_GAMMA, Groove, generate_view, write_view
from simulation.synth.drawings import make_groove, resample, sample_half_widths, wear_factor
from simulation.synth.letters import inscription
from simulation.synth.render import carve, normals_from_depth

SMALL = (96, 80)


@pytest.fixture(scope="module")
def small_view():
    return generate_view(size=SMALL, seed=7)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_generate_view_shapes_and_dtypes(small_view):
    v = small_view
    assert v.depth.shape == (80, 96) and v.depth.dtype == np.float32
    assert v.albedo.shape == (80, 96) and v.albedo.dtype == np.float32
    assert v.normals.shape == (80, 96, 3) and v.normals.dtype == np.float32
    assert v.drawings.dtype == bool and v.mirror_mask.dtype == bool
    assert np.allclose(np.linalg.norm(v.normals, axis=2), 1, atol=1e-5)
    assert v.albedo.min() >= 0 and v.albedo.max() <= 1
    assert not (v.drawings & ~v.mirror_mask).any()
    assert v.drawings.any() and v.mirror_mask.mean() > 0.3


@pytest.mark.parametrize(
    "kwargs", [{"size": (10, 100)}, {"size": "big"}, {"difficulty": 1.5}, {"px_per_mm": 0}]
)
def test_generate_view_rejects_bad_arguments(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        generate_view(**{"size": SMALL, **kwargs})


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_view(tmp_path / name, "SYN-0001_R", generate_view(size=SMALL, seed=seed))
    a, b, c = (_files(tmp_path / n) for n in "abc")
    assert len(a) == 5 and a == b
    assert a.keys() == c.keys()
    assert a["SYN-0001/PS/SYN-0001_R_U.tif"] != c["SYN-0001/PS/SYN-0001_R_U.tif"]
    assert a["drawings/SYN-0001_R_drawings.png"] != c["drawings/SYN-0001_R_drawings.png"]


def test_write_view_layout_and_values(tmp_path, small_view):
    paths = write_view(tmp_path, "SYN-0042_V", small_view)
    assert paths["depth"] == tmp_path / "SYN-0042" / "PS" / "SYN-0042_V_U.tif"
    assert paths["mask"] == tmp_path / "masks" / "SYN-0042_V_mask.png"
    assert np.array_equal(read_tiff(paths["depth"]), small_view.depth)
    assert np.array_equal(read_tiff(paths["albedo"]), small_view.albedo)
    normals = read_tiff(paths["normals"])
    assert normals.min() >= 0 and normals.max() <= 1
    assert np.allclose(normals * 2 - 1, small_view.normals, atol=1e-6)
    assert tiff_px_per_mm(paths["depth"]) == pytest.approx(45.0, rel=1e-4)
    assert np.array_equal(read_binary_mask(paths["drawings"], channel="alpha"), small_view.drawings)
    assert np.array_equal(read_binary_mask(paths["mask"], channel="red"), small_view.mirror_mask)


def test_layout_round_trip_through_load_view(tmp_path, small_view):
    from refinement_model.preprocess import normalize_albedo, preprocess_depth
    from refinement_model.views import find_views, load_view

    write_view(tmp_path, "SYN-0003_R", small_view)
    write_view(tmp_path, "SYN-0004_V", generate_view(size=SMALL, seed=8))
    assert [f.view_id for f in find_views(tmp_path)] == ["SYN-0003_R", "SYN-0004_V"]
    loaded = load_view(tmp_path, "SYN-0003_R")
    assert loaded.px_per_mm == pytest.approx(45.0, rel=1e-4)
    assert not loaded.mask_estimated and loaded.warnings == ()
    assert np.array_equal(loaded.ground_truth, small_view.drawings)
    assert np.array_equal(loaded.mirror_mask, small_view.mirror_mask)
    assert np.allclose(loaded.normals, small_view.normals, atol=1e-5)
    mask = small_view.mirror_mask
    assert np.allclose(
        loaded.depth, preprocess_depth(small_view.depth, px_per_mm=45.0, mask=mask), atol=1e-4
    )
    assert np.allclose(loaded.albedo, normalize_albedo(small_view.albedo, mask=mask), atol=1e-5)


def test_write_view_rejects_bad_view_id(tmp_path, small_view):
    with pytest.raises(ValueError, match="view_id"):
        write_view(tmp_path, "no-side", small_view)


def test_half_widths_follow_the_gamma_and_vary_slowly():
    rng = np.random.default_rng(0)
    lines = [sample_half_widths(400, rng=rng) for _ in range(300)]
    hw = np.concatenate(lines)
    # docs/method.md: mean 6.19 px, std 1.49 px
    assert hw.mean() == pytest.approx(6.19, abs=0.15)
    assert hw.std() == pytest.approx(1.49, abs=0.15)
    a, loc, scale = HALF_WIDTH_GAMMA["a"], HALF_WIDTH_GAMMA["loc"], HALF_WIDTH_GAMMA["scale"]
    from scipy import stats

    expected = stats.gamma.ppf([0.1, 0.5, 0.9], a, loc=loc, scale=scale)
    assert np.allclose(np.quantile(hw, [0.1, 0.5, 0.9]), expected, atol=0.25)
    steps = np.concatenate([np.abs(np.diff(line)) for line in lines])
    assert steps.mean() < 0.05 * hw.std() * 10


def test_carve_v_groove_has_exact_cross_section():
    pts = resample([(4.0, 16.0), (28.0, 16.0)])
    n = len(pts)
    groove = Groove(pts, np.full(n, 4.0, np.float32), np.full(n, 0.1, np.float32), "V")
    removed, footprint = carve((32, 32), [groove], lip=0.12)
    column = removed[:, 16]
    assert column[16] == pytest.approx(0.1)
    assert column[14] == pytest.approx(0.05) and column[18] == pytest.approx(0.05)
    assert np.array_equal(np.flatnonzero(footprint[:, 16]), np.arange(13, 20))
    assert column[20] <= 0 and column[:10].max() == 0
    assert removed[16, 0] == 0


def test_carve_u_groove_is_rounded_and_empty_input_is_flat():
    pts = resample([(0.0, 8.0), (15.0, 8.0)])
    n = len(pts)
    groove = Groove(pts, np.full(n, 4.0, np.float32), np.full(n, 0.2, np.float32), "U")
    removed, _ = carve((16, 16), [groove])
    assert removed[10, 8] == pytest.approx(0.2 * np.sqrt(1 - 0.25))
    flat, none = carve((5, 6), [])
    assert not flat.any() and not none.any()


def test_grooves_are_deeper_than_their_surroundings():
    view = generate_view(size=(512, 512), seed=11, difficulty=0.0)
    from scipy import ndimage

    detail = view.depth - ndimage.gaussian_filter(view.depth, 12)
    interior = ndimage.binary_erosion(view.mirror_mask, iterations=40)
    ground = np.median(detail[interior & ~view.drawings])
    pts = np.concatenate([g.points for g in view.grooves])
    floor = np.concatenate([g.depths for g in view.grooves])
    x, y = np.rint(pts).astype(int).T
    # centre samples of unworn stretches, away from the rim
    on = interior[y.clip(0, 511), x.clip(0, 511)] & (floor > 0.04)
    centre = detail[y[on], x[on]]
    assert on.sum() > 500
    assert np.median(centre) < ground - 0.04
    assert np.mean(centre < ground) > 0.9
    assert detail[interior & view.drawings].mean() < ground - 0.02


def test_worn_stretches_fade_but_stay_in_ground_truth():
    rng = np.random.default_rng(2)
    fade = wear_factor(5000, rng=rng, fraction=0.5)
    assert fade.min() < 0.05 and fade.max() == 1
    groove = make_groove([(0, 0), (2000, 0)], rng=rng, px_scale=1.0, px_per_mm=45.0, wear=0.5)
    assert groove.depths.min() < 0.1 * groove.depths.max()
    assert groove.half_widths.min() > 2


def test_normals_of_a_tilted_plane():
    depth = np.tile(np.arange(8, dtype=np.float32) * 0.5 / 10.0, (6, 1))  # slope 0.5 mm/mm
    n = normals_from_depth(depth, px_per_mm=10.0)
    assert np.allclose(n[..., 0], -0.5 / np.sqrt(1.25)) and np.allclose(n[..., 1], 0)
    assert np.allclose(n[..., 2], 1 / np.sqrt(1.25))
    assert depth[0, 1] == np.float32(0.05)


def test_inscription_rejects_unknown_letters():
    with pytest.raises(ValueError, match="glyph"):
        inscription("W", origin=(0, 0), height=10, rng=np.random.default_rng(0))


def test_cli_writes_views(tmp_path):
    from annotator.cli import main

    assert main(["synth", str(tmp_path), "--views", "2", "--size", "96x80", "--seed", "5"]) == 0
    assert (tmp_path / "SYN-0002" / "PS" / "SYN-0002_R_N.tif").is_file()
    single = tmp_path / "single"
    assert (
        main(
            ["synth", str(single), "--views", "1", "--first", "2", "--size", "96x80", "--seed", "5"]
        )
        == 0
    )
    # a view does not depend on how many were generated with it
    name = "SYN-0002/PS/SYN-0002_R_U.tif"
    assert (single / name).read_bytes() == (tmp_path / name).read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        main(["synth", str(tmp_path), "--size", "12by5"])
    assert exit_info.value.code == 2


def test_synth_never_imports_qt():
    code = (
        "import sys, simulation.synth, simulation.synth.preview, simulation.cli.synth; "
        "sys.exit(any(m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_compact_writing_rounds_below_the_noise(tmp_path, small_view):
    from simulation.synth.writer import COMPACT_BITS

    paths = write_view(tmp_path, "SYN-0001_R", small_view, compact=True)
    depth = read_tiff(paths["depth"])
    step = 2.0 ** -COMPACT_BITS["depth"]
    assert np.abs(depth - small_view.depth).max() <= step / 2 + 1e-6
    assert np.allclose(depth / step, np.round(depth / step))
    normals = read_tiff(paths["normals"]) * 2 - 1
    assert np.abs(normals - small_view.normals).max() <= 2.0 ** -COMPACT_BITS["normals"] + 1e-6


def test_progress_and_cancel():
    from refinement_model.errors import Cancelled

    calls = []
    generate_view(size=(64, 64), seed=0, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1][0] == calls[-1][1] and [c[0] for c in calls] == list(range(1, len(calls) + 1))
    with pytest.raises(Cancelled):
        generate_view(size=(64, 64), seed=0, cancel=lambda: True)


def test_bundled_sample_loads():
    from pathlib import Path

    from refinement_model.views import load_view

    root = Path(__file__).resolve().parents[2] / "resources" / "sample"
    view = load_view(root, "SYN-0001_R")
    assert view.depth.shape == (1024, 1024) and view.px_per_mm == pytest.approx(45.0, rel=1e-4)
    assert not view.mask_estimated
    assert 0.02 < view.ground_truth.mean() < 0.3 and 0.4 < view.mirror_mask.mean() < 0.9
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 5e6
