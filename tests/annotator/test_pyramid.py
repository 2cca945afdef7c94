"""The canvas's resolution pyramid: exact shrinking and local updates equal to a rebuild."""

import numpy as np
import pytest

from annotator.core.pyramid import LayerStack, Pyramid, display_pyramids, halve


def test_halve_mean_rounds_integers_and_pads_odd_sizes():
    image = np.array([[0, 2, 9], [4, 6, 9], [1, 1, 1]], np.uint8)
    out = halve(image, reduce="mean")
    assert out.dtype == np.uint8
    assert out.tolist() == [[3, 9], [1, 1]]


def test_halve_max_and_or():
    flags = np.array([[1, 0], [2, 0]], np.uint8)
    assert halve(flags, reduce="or").tolist() == [[3]]
    assert halve(flags, reduce="max").tolist() == [[2]]
    assert halve(np.array([[False, True], [False, False]]), reduce="max").tolist() == [[True]]


def test_halve_signed_normals():
    normals = np.array([[[-127, 0, 127], [-127, 0, 127]], [[127, 0, 127], [127, 0, 127]]], np.int8)
    assert halve(normals).tolist() == [[[0, 0, 127]]]


def test_pyramid_levels_and_region():
    image = np.arange(20 * 12, dtype=np.uint8).reshape(20, 12)
    pyramid = Pyramid(image, min_size=4)
    assert [level.shape for level in pyramid.levels] == [(20, 12), (10, 6), (5, 3), (3, 2)]
    assert pyramid.region(0, (1, 2, 3, 4)).tolist() == image[1:3, 2:4].tolist()
    # A level beyond the top reads the top.
    assert pyramid.region(9, (0, 0, 1, 1)).shape == (1, 1)


@pytest.mark.parametrize("reduce", ["mean", "max", "or"])
def test_update_equals_rebuild(reduce):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 200, (37, 29)).astype(np.uint8)
    pyramid = Pyramid(image.copy(), reduce=reduce, min_size=3)
    patch = rng.integers(0, 255, (7, 10)).astype(np.uint8)
    pyramid.update((29, 19, 36, 29), patch)
    image[29:36, 19:29] = patch
    rebuilt = Pyramid(image, reduce=reduce, min_size=3)
    for got, want in zip(pyramid.levels, rebuilt.levels, strict=True):
        np.testing.assert_array_equal(got, want)


def test_pyramid_validates():
    with pytest.raises(ValueError, match="reduce"):
        Pyramid(np.zeros((4, 4)), reduce="median")


def test_stack_from_maps_takes_each_map_out_and_shows_the_same():
    import weakref

    from annotator.core.render import LayerSettings

    rng = np.random.default_rng(3)
    depth, albedo = rng.random((40, 52)), rng.random((40, 52))
    normals = np.dstack([rng.normal(0, 0.2, (40, 52, 2)), np.ones((40, 52))])
    normals /= np.linalg.norm(normals, axis=2, keepdims=True)
    expected = LayerStack(depth=depth, albedo=albedo, normals=normals, min_size=8)
    maps = {"depth": depth.copy(), "albedo": albedo.copy(), "normals": normals.copy()}
    freed = weakref.ref(maps["depth"])
    stack = LayerStack.from_maps(maps, min_size=8)
    assert maps == {} and freed() is None  # the float copies are gone
    for base in ("depth", "albedo", "normals"):
        settings = LayerSettings(base=base)
        for level in range(stack.n_levels):
            a, b = (
                stack.tile(level, (0, 0, 40, 52), settings),
                expected.tile(level, (0, 0, 40, 52), settings),
            )
            np.testing.assert_array_equal(getattr(a, base), getattr(b, base))


def _maps(shape=(40, 52)):
    rng = np.random.default_rng(4)
    normals = np.dstack([rng.normal(0, 0.2, (*shape, 2)), np.ones(shape)])
    normals /= np.linalg.norm(normals, axis=2, keepdims=True)
    return {"depth": rng.random(shape), "albedo": rng.random(shape), "normals": normals}


def test_a_stack_of_the_depth_alone_shows_depth_until_its_other_layers_come():
    from annotator.core.render import BASE_LAYERS, LayerSettings, compose

    maps = _maps()
    eager = LayerStack(**maps, min_size=8)
    stack = LayerStack(depth=maps["depth"], min_size=8)
    assert stack.missing_maps == ("albedo", "normals")
    assert [stack.has_layer(base) for base in BASE_LAYERS] == [True, False, False, False]
    box = (0, 0, 40, 52)
    depth_rgb = compose(stack.tile(1, box, LayerSettings(base="depth")), LayerSettings())
    for base in ("albedo", "normals", "raking"):
        settings = LayerSettings(base=base)
        tile = stack.tile(1, box, settings)
        assert tile.albedo is None and tile.normals is None
        np.testing.assert_array_equal(compose(tile, settings), depth_rgb)
    stack.add_layers(display_pyramids({"normals": maps["normals"]}, min_size=8))
    assert stack.missing_maps == ("albedo",) and stack.has_layer("raking")
    stack.add_layers(display_pyramids({"albedo": maps["albedo"]}, min_size=8))
    assert stack.missing_maps == ()
    for base in BASE_LAYERS:
        settings = LayerSettings(base=base)
        for level in range(stack.n_levels):
            np.testing.assert_array_equal(
                compose(stack.tile(level, box, settings), settings),
                compose(eager.tile(level, box, settings), settings),
            )


def test_layers_that_do_not_fit_the_stack_are_refused():
    maps = _maps()
    stack = LayerStack(depth=maps["depth"], min_size=8)
    with pytest.raises(ValueError, match="does not fit the view"):
        stack.add_layers(display_pyramids({"albedo": maps["albedo"][:, :40]}, min_size=8))
    with pytest.raises(ValueError, match="does not fit the view"):
        stack.add_layers(display_pyramids({"albedo": maps["albedo"]}, min_size=4))
    with pytest.raises(ValueError, match="only albedo and normals"):
        stack.add_layers(display_pyramids({"depth": maps["depth"]}, min_size=8))
    with pytest.raises(ValueError, match="maps must be among"):
        display_pyramids({"height": maps["depth"]})
    with pytest.raises(ValueError, match="must hold 'depth'"):
        LayerStack.from_maps({"albedo": maps["albedo"]})
    assert stack.missing_maps == ("albedo", "normals")
