"""The generator's "grooves" damage recipe: another kind of mirror than the training views."""

import numpy as np
import pytest

from annotator.cli import main
from refinement_model.imageio import read_binary_mask
from simulation.synth import generate_view
from simulation.synth.damage import RECIPES, damage_grooves, damage_recipe
from simulation.synth.drawings import make_groove
from simulation.synth.render import carve

SIZE = (384, 384)


def test_grooves_recipe_adds_groove_like_scratches_and_faint_lines():
    rng = np.random.default_rng(0)
    drawing = [
        make_groove([(50 + 20 * i, 50), (50 + 20 * i, 300)], rng=rng, px_scale=1.0, px_per_mm=45.0)
        for i in range(10)
    ]
    recipe = damage_recipe("grooves")
    new_drawing, scratches = damage_grooves(
        drawing,
        [],
        (192, 192),
        2000,
        recipe=recipe,
        rng=np.random.default_rng(1),
        px_per_mm=45.0,
        difficulty=1.0,
    )
    # the same lines (the ground truth does not change), some of them cut shallow
    assert [g.points.tolist() for g in new_drawing] == [g.points.tolist() for g in drawing]
    ratios = [
        float(n.depths.max() / g.depths.max()) for n, g in zip(new_drawing, drawing, strict=True)
    ]
    assert set(np.round(ratios, 6)) <= {1.0, recipe.faint_depth}
    assert recipe.faint_depth in np.round(ratios, 6)
    # scratches as wide and deep as engraved lines: well beyond the default's 0.6-2.5 px
    assert len(scratches) > 50
    assert np.median([s.half_widths.mean() for s in scratches]) > 2.5
    # the default recipe changes nothing and draws nothing from the random stream
    stream = np.random.default_rng(5)
    same, none = damage_grooves(
        drawing,
        [],
        (192, 192),
        2000,
        recipe=RECIPES["default"],
        rng=stream,
        px_per_mm=45.0,
        difficulty=1.0,
    )
    assert same == drawing and none == []
    assert stream.random() == np.random.default_rng(5).random()
    with pytest.raises(ValueError, match="damage"):
        damage_recipe("rust")


def test_grooves_views_differ_but_keep_the_engraving_as_ground_truth():
    default = generate_view(size=SIZE, seed=3, difficulty=0.9)
    grooves = generate_view(size=SIZE, seed=3, difficulty=0.9, damage="grooves")
    # the same disc and drawing (drawn before the recipe's damage), other damage
    np.testing.assert_array_equal(default.drawings, grooves.drawings)
    np.testing.assert_array_equal(default.mirror_mask, grooves.mirror_mask)
    assert not np.allclose(default.depth, grooves.depth)
    _, footprint = carve(default.drawings.shape, grooves.grooves)
    np.testing.assert_array_equal(footprint & grooves.mirror_mask, grooves.drawings)
    with pytest.raises(ValueError, match="damage"):
        generate_view(size=SIZE, seed=3, damage="rust")


def test_synth_cli_damage_option(tmp_path, capsys):
    assert (
        main(
            [
                "synth",
                str(tmp_path),
                "--size",
                "128x128",
                "--damage",
                "grooves",
                "--difficulty",
                "0.9",
            ]
        )
        == 0
    )
    assert read_binary_mask(tmp_path / "masks" / "SYN-0001_R_mask.png").any()
    with pytest.raises(SystemExit):
        main(["synth", str(tmp_path / "x"), "--damage", "rust"])
    assert "rust" in capsys.readouterr().err
