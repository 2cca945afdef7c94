"""Export: RGBA / 1-bit PNG, 1-bit TIFF, SVG centre lines, provenance, stroke files."""

import json
import re

import numpy as np
import pytest
import tifffile
from PIL import Image

from annotator.core.export import (
    PROVENANCE_COLOURS,
    centrelines_to_svg,
    mask_to_rgba,
    provenance_to_rgba,
    trace_centrelines,
    write_mask_png,
    write_mask_tiff,
    write_svg,
)
from annotator.core.journal_io import parse_strokes, read_strokes, strokes_document, write_strokes
from refinement_model.errors import InputError
from refinement_model.imageio import read_binary_mask, read_png
from refinement_model.strokes import Stroke, rasterize_stroke


@pytest.fixture
def mask():
    m = np.zeros((20, 30), bool)
    m[4:7, 3:25] = True  # a horizontal bar, 3 px wide
    m[9:18, 14] = True  # a vertical line, 1 px wide
    return m


def test_rgba_png_reads_back_as_ground_truth(tmp_path, mask):
    before = mask.copy()
    write_mask_png(tmp_path / "m.png", mask)
    image = read_png(tmp_path / "m.png")
    assert image.shape == (20, 30, 4) and image.dtype == np.uint8
    np.testing.assert_array_equal(read_binary_mask(tmp_path / "m.png"), mask)
    np.testing.assert_array_equal(image[..., :3], 0)
    np.testing.assert_array_equal(mask, before)
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]  # no temporary left


def test_bilevel_png_and_tiff_are_one_bit_and_exact(tmp_path, mask):
    write_mask_png(tmp_path / "m1.png", mask, bilevel=True)
    with Image.open(tmp_path / "m1.png") as image:
        assert image.mode == "1"
        np.testing.assert_array_equal(np.array(image), mask)
    write_mask_tiff(tmp_path / "m.tif", mask, px_per_mm=20.0)
    with tifffile.TiffFile(tmp_path / "m.tif") as tif:
        assert tif.pages[0].bitspersample == 1
        np.testing.assert_array_equal(tif.asarray(), mask)


def test_mask_to_rgba_validates():
    assert mask_to_rgba(np.array([[1, 0]]), colour=(9, 8, 7))[0].tolist() == [
        [9, 8, 7, 255],
        [0, 0, 0, 0],
    ]
    with pytest.raises(ValueError, match="mask"):
        mask_to_rgba(np.zeros(3, bool))
    with pytest.raises(ValueError, match="colour"):
        mask_to_rgba(np.zeros((2, 2), bool), colour=(0, 0, 300))


def test_trace_bar_and_line_gives_centres_and_widths(mask):
    lines = trace_centrelines(mask, min_length=3)
    widths = sorted(line.width for line in lines)
    assert widths == [1.0, 3.0]
    bar = next(line for line in lines if line.width == 3.0)
    assert len(bar.points) == 2 and np.all(np.abs(bar.points[:, 1] - 5.5) <= 1)
    assert sorted(bar.points[:, 0]) == [3.5, 23.5]
    vertical = next(line for line in lines if line.width == 1.0)
    assert vertical.points.tolist() == [[14.5, 9.5], [14.5, 17.5]]


def test_trace_cross_splits_at_the_junction_and_ring_is_closed():
    cross = np.zeros((21, 21), bool)
    cross[10, 2:19] = True
    cross[2:19, 10] = True
    lines = trace_centrelines(cross)
    assert len(lines) == 4
    assert all([10.5, 10.5] in line.points.tolist() for line in lines)
    ring = np.zeros((30, 30), bool)
    yy, xx = np.mgrid[:30, :30]
    ring[np.abs(np.hypot(yy - 15, xx - 15) - 10) < 1.0] = True
    traced = trace_centrelines(ring)
    assert len(traced) == 1 and traced[0].closed
    assert np.array_equal(traced[0].points[0], traced[0].points[-1])
    assert trace_centrelines(np.zeros((4, 4), bool)) == []


def test_svg_redraws_the_mask(tmp_path):
    rng = np.random.default_rng(3)
    truth = np.zeros((60, 80), bool)
    for _ in range(4):
        points = rng.uniform(8, 52, size=(3, 2))
        truth |= rasterize_stroke(Stroke("add", points, rng.uniform(1.5, 3.0)), truth.shape)
    count = write_svg(tmp_path / "m.svg", truth, px_per_mm=10.0, tolerance=0.5)
    text = (tmp_path / "m.svg").read_text()
    assert 'width="8.000mm" height="6.000mm" viewBox="0 0 80 60"' in text
    polylines = re.findall(r'<polyline points="([^"]+)" stroke-width="([\d.]+)"/>', text)
    assert 0 < len(polylines) <= count
    redrawn = np.zeros_like(truth)
    for points, width in polylines:
        xy = [[float(v) - 0.5 for v in p.split(",")] for p in points.split()]
        redrawn |= rasterize_stroke(Stroke("add", xy, float(width) / 2), truth.shape)
    iou = (redrawn & truth).sum() / (redrawn | truth).sum()
    assert iou > 0.8


def test_svg_of_a_single_dot_is_a_circle():
    dot = np.zeros((5, 5), bool)
    dot[2, 3] = True
    text = centrelines_to_svg(trace_centrelines(dot), (5, 5))
    assert '<circle cx="3.50" cy="2.50" r="0.50"' in text
    with pytest.raises(ValueError, match="px_per_mm"):
        centrelines_to_svg([], (5, 5), px_per_mm=0)


def test_provenance_colours_lines_by_origin():
    provenance = np.array([[0, 1, 2, 3, 2]], np.uint8)
    final = np.array([[True, True, False, True, False]])
    rgba = provenance_to_rgba(provenance, final)
    assert [tuple(p) for p in rgba[0]] == [PROVENANCE_COLOURS[c] for c in (0, 1, 2, 3, 2)]
    final[0, 0] = False
    assert tuple(provenance_to_rgba(provenance, final)[0, 0]) == (0, 0, 0, 0)


def test_stroke_file_round_trip(tmp_path):
    strokes = [Stroke("add", [(1.5, 2.0), (3.0, 4.0)], 2.0), Stroke("erase", [(5, 5)], 1.0)]
    write_strokes(tmp_path / "s.json", strokes, effort={"strokes": 2})
    assert read_strokes(tmp_path / "s.json") == strokes
    document = json.loads((tmp_path / "s.json").read_text())
    assert document["format"] == "etmira-strokes" and document["effort"] == {"strokes": 2}
    assert parse_strokes({"strokes": [{"kind": "add", "radius": 1, "points": [[0, 0]]}]}) == [
        Stroke("add", [(0, 0)], 1.0)
    ]
    assert strokes_document([])["strokes"] == []


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "'strokes' list"),
        ('{"strokes": {}}', "'strokes' list"),
        ('{"strokes": [{"kind": "add", "radius": 1}]}', "stroke 0: .*points"),
        ('{"strokes": [{"kind": "paint", "radius": 1, "points": [[0, 0]]}]}', "stroke 0: kind"),
        ('{"version": 9, "strokes": []}', "version 9"),
        ('{"format": "other", "strokes": []}', "not a stroke file"),
    ],
)
def test_bad_stroke_files_name_the_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError, match=problem) as caught:
        read_strokes(path)
    assert caught.value.path == str(path)


def test_provenance_png_uses_the_apps_colours_and_has_a_legend(tmp_path):
    from annotator.core import render
    from annotator.core.export import write_provenance_png
    from refinement_model.imageio import read_png

    provenance = np.zeros((60, 400), np.uint8)
    provenance[:, 100:200], provenance[:, 200:300] = 1, 3
    mask = np.ones((60, 400), bool)
    write_provenance_png(tmp_path / "p.png", provenance, mask)
    image = read_png(tmp_path / "p.png")
    assert image.shape[0] > 60 and image.shape[1:] == (400, 4)
    assert tuple(image[0, 0, :3]) == render.PALETTE["mask"]
    assert tuple(image[0, 150, :3]) == render.PALETTE["add"]
    assert tuple(image[0, 250, :3]) == render.PALETTE["proposal_add"]
    legend = image[60:]
    assert (legend[..., 3] == 255).all()
    for name in ("mask", "add", "erase", "proposal_add"):  # a swatch of each meaning
        assert (legend[..., :3] == render.PALETTE[name]).all(axis=-1).sum() >= 9
    write_provenance_png(tmp_path / "bare.png", provenance, mask, legend=False)
    assert read_png(tmp_path / "bare.png").shape == (60, 400, 4)
