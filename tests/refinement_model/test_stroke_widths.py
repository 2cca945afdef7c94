import json

import numpy as np
import pytest
from scipy import stats

from annotator.cli import main
from refinement_model.imageio import read_png, write_png
from refinement_model.stroke_widths import (
    MIN_HALF_WIDTH,
    PAPER_STROKE_WIDTHS,
    StrokeWidthModel,
    fit_stroke_widths,
    half_widths,
    remove_outliers,
    skeleton,
)
from refinement_model.strokes import Stroke, burn_in

TRUE = (20.0, 1.0, 0.25)  # Gamma a, loc, scale: mean 6, std 1.118


def _quantiles(a, loc, scale):
    return stats.gamma.ppf([0.1, 0.5, 0.9], a, loc=loc, scale=scale)


def test_half_widths_of_a_bar_are_exact():
    bar = np.zeros((20, 100), bool)
    bar[8:13, 5:95] = True  # 5 px thick: the centre row is 3 px from the background
    before = bar.copy()
    widths = half_widths(bar)
    assert widths.dtype == np.float64
    assert widths.max() == 3.0 and np.count_nonzero(widths == 3.0) >= 80
    np.testing.assert_array_equal(bar, before)
    assert half_widths(np.zeros((5, 5), bool)).shape == (0,)


def test_half_widths_count_the_image_border_as_background():
    full = np.ones((7, 40), bool)
    assert half_widths(full).max() == 4.0


def test_skeleton_matches_skimage_on_the_whole_image():
    from skimage.morphology import skeletonize

    mask = burn_in(np.zeros((40, 50), bool), [Stroke("add", [(10, 30), (35, 8)], 2.5)])
    np.testing.assert_array_equal(skeleton(mask), skeletonize(mask))
    assert not skeleton(np.zeros((4, 4), bool)).any()


def test_remove_outliers_two_sigma_exact():
    widths = np.array([1.0] * 9 + [100.0])  # 100 lies 3 standard deviations out
    np.testing.assert_array_equal(remove_outliers(widths), np.ones(9))
    np.testing.assert_array_equal(remove_outliers(widths, n_sigma=4), widths)
    assert remove_outliers([]).shape == (0,)
    with pytest.raises(ValueError, match="n_sigma"):
        remove_outliers(widths, n_sigma=0)


def test_fit_recovers_a_known_gamma_and_drops_outliers():
    a, loc, scale = TRUE
    rng = np.random.default_rng(0)
    sample = stats.gamma.rvs(a, loc=loc, scale=scale, size=20000, random_state=rng)
    widths = np.concatenate([sample, np.full(200, 30.0)])  # junction-like outliers
    model = fit_stroke_widths(widths)
    # The outliers inflate the spread so much that only they (and a stray extreme) fall out.
    assert 19990 <= model.n <= 20000
    assert model.mean == pytest.approx(sample.mean(), abs=1e-3)
    true_mean, true_std = a * scale + loc, np.sqrt(a) * scale
    assert model.mean == pytest.approx(true_mean, abs=0.03)
    assert model.std == pytest.approx(true_std, rel=0.03)
    # The Gamma itself: the shape is poorly identified, location and spread are not.
    assert model.a * model.scale + model.loc == pytest.approx(true_mean, abs=0.03)
    assert np.sqrt(model.a) * model.scale == pytest.approx(true_std, rel=0.03)
    np.testing.assert_allclose(
        _quantiles(model.a, model.loc, model.scale), _quantiles(*TRUE), atol=0.05
    )
    assert a / 3 < model.a < a * 3


def test_fit_without_outlier_removal_keeps_everything():
    widths = np.array([1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 4.0, 5.0, 40.0])
    assert fit_stroke_widths(widths, n_sigma=None).n == 10
    assert fit_stroke_widths(widths).n == 9


def test_fit_needs_distinct_values():
    with pytest.raises(ValueError, match="widths"):
        fit_stroke_widths([2.0, 2.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="widths"):
        fit_stroke_widths(np.ones((3, 3)))


def test_paper_model_and_sampling():
    assert PAPER_STROKE_WIDTHS.mean == pytest.approx(6.19, abs=0.01)
    assert PAPER_STROKE_WIDTHS.std == pytest.approx(1.49, abs=0.01)
    assert (PAPER_STROKE_WIDTHS.a, PAPER_STROKE_WIDTHS.loc, PAPER_STROKE_WIDTHS.scale) == (
        49.12884764,
        -4.27884325,
        0.21316680,
    )
    values = PAPER_STROKE_WIDTHS.sample(np.random.default_rng(1), 20000)
    assert values.shape == (20000,) and values.dtype == np.float64
    assert values.mean() == pytest.approx(6.19, abs=0.03)
    assert values.std() == pytest.approx(1.49, abs=0.03)
    half = PAPER_STROKE_WIDTHS.sample(np.random.default_rng(1), 20000, scale_factor=0.5)
    np.testing.assert_allclose(half, values * 0.5)
    one = PAPER_STROKE_WIDTHS.sample(3)
    assert isinstance(one, float) and one == PAPER_STROKE_WIDTHS.sample(3)


def test_sample_is_clipped_to_a_positive_minimum():
    wide = StrokeWidthModel(a=1.0, loc=-5.0, scale=1.0, mean=0.0, std=1.0)
    values = wide.sample(0, 1000, scale_factor=0.5)
    assert values.min() == MIN_HALF_WIDTH * 0.5
    with pytest.raises(ValueError, match="scale_factor"):
        wide.sample(0, scale_factor=0)
    with pytest.raises(ValueError, match="scale"):
        StrokeWidthModel(a=1.0, loc=0.0, scale=-1.0, mean=0.0, std=1.0)


def _write_masks(folder, rng, n_masks=6, shape=(256, 1024)):
    """RGBA drawings PNGs of long straight lines whose half-widths follow the TRUE Gamma.

    Lines are long (1000 px) so that their ends, where the measured half-width falls off, weigh
    little. Returns the drawn half-widths."""
    a, loc, scale = TRUE
    drawn = []
    for index in range(n_masks):
        y, strokes = 4, []
        while True:
            h = stats.gamma.rvs(a, loc=loc, scale=scale, random_state=rng)
            # Radius h - 0.5 covers 2 * round(h) - 1 rows: the centre is round(h) from background.
            y += int(np.ceil(h)) + 1
            if y + h + 2 > shape[0]:
                break
            strokes.append(Stroke("add", [(8, y), (shape[1] - 9, y)], h - 0.5))
            drawn.append(h)
            y += int(np.ceil(h)) + 1
        mask = burn_in(np.zeros(shape, bool), strokes)
        if index % 2:
            mask = mask.T
        rgba = np.zeros(mask.shape + (4,), np.uint8)
        rgba[..., 3] = mask * 255
        rgba[..., 0] = 200  # a coloured drawing: only the alpha channel is the mask
        write_png(folder / f"SYN-{index}_R_drawings.png", rgba)
    return np.array(drawn)


def test_cli_recovers_the_gamma_of_drawn_lines(tmp_path, capsys):
    gt_dir = tmp_path / "drawings"
    gt_dir.mkdir()
    drawn = _write_masks(gt_dir, np.random.default_rng(2))
    (gt_dir / "notes.txt").write_text("not a mask")
    assert main(["stroke-stats", str(gt_dir), "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    fit = json.loads(out[0])
    assert set(fit) == {"a", "loc", "scale", "mean", "std", "n"}
    # Each line measures round(h) along its (equal) length; the two-sigma rule then cuts the
    # tails of the discrete values, which narrows the spread and, the Gamma being skewed,
    # lowers the mean a little.
    ideal = np.round(drawn)
    kept = ideal[np.abs(ideal - ideal.mean()) <= 2 * ideal.std()]
    assert fit["mean"] == pytest.approx(kept.mean(), abs=0.01)
    assert fit["std"] == pytest.approx(kept.std(), abs=0.01)
    assert fit["n"] > 0.9 * 1000 * len(drawn)
    # The fitted Gamma is near the one the lines were drawn from.
    np.testing.assert_allclose(
        _quantiles(fit["a"], fit["loc"], fit["scale"]), _quantiles(*TRUE), atol=0.35
    )


def test_cli_human_output_plot_and_recursive_search(tmp_path, capsys):
    gt_dir = tmp_path / "root" / "drawings"
    gt_dir.mkdir(parents=True)
    _write_masks(gt_dir, np.random.default_rng(3), n_masks=2, shape=(64, 128))
    plot = tmp_path / "widths.png"
    assert main(["stroke-stats", str(tmp_path / "root"), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "2 masks" in out and "Gamma fit: a = " in out
    image = read_png(plot)
    assert image.ndim == 3 and image.shape[:2] == (480, 720)
    assert len(np.unique(image.reshape(-1, image.shape[2]), axis=0)) > 10  # not blank


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    assert main(["stroke-stats", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no *_drawings.png" in err[0]
    write_png(tmp_path / "empty_drawings.png", np.zeros((16, 16, 4), np.uint8))
    assert main(["stroke-stats", str(tmp_path)]) == 2
    assert "cannot fit a Gamma" in capsys.readouterr().err
    (tmp_path / "empty_drawings.png").write_bytes(b"garbage")
    assert main(["stroke-stats", str(tmp_path)]) == 2
    assert "empty_drawings.png" in capsys.readouterr().err
