"""RefinerOptions: validated values, their record in project files, the app's choice."""

import dataclasses

import pytest

from refinement_model.refiner_options import APP_REFINEMENT, ONE_PASS, RefinerOptions


def test_options_are_validated_when_made():
    assert RefinerOptions() == ONE_PASS and ONE_PASS.one_pass
    assert RefinerOptions(8, 3) == RefinerOptions(orientations=8, iterations=3)
    for bad in (0, 3, 16, 2.5):
        with pytest.raises(ValueError, match="orientations"):
            RefinerOptions(orientations=bad)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="iterations"):
            RefinerOptions(iterations=bad)
    with pytest.raises(ValueError, match="iterations"):
        dataclasses.replace(APP_REFINEMENT, iterations=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        APP_REFINEMENT.iterations = 1


def test_the_record_round_trips_and_old_records_mean_one_pass():
    assert RefinerOptions(4, 2) == APP_REFINEMENT and not APP_REFINEMENT.one_pass
    record = APP_REFINEMENT.as_record()
    assert record == {"orientations": 4, "iterations": 2}
    assert RefinerOptions.from_record({"path": "r.safetensors", **record}) == APP_REFINEMENT
    # records made before the refiner averaged orientations, or refined again
    assert RefinerOptions.from_record({"path": "r.safetensors"}) == ONE_PASS
    assert RefinerOptions.from_record({"orientations": 4}) == RefinerOptions(4, 1)
    # options are values: equal options are one key (one refiner per options in a simulation)
    assert len({RefinerOptions(4, 2), APP_REFINEMENT, ONE_PASS}) == 2


def test_options_parse_from_their_label():
    assert RefinerOptions.parse("4x2") == APP_REFINEMENT and APP_REFINEMENT.label == "4x2"
    assert RefinerOptions.parse(" 1X3 ") == RefinerOptions(1, 3)
    for options in (ONE_PASS, RefinerOptions(8, 3)):
        assert RefinerOptions.parse(options.label) == options
    for bad in ("4", "4x", "x2", "4x2x1", "ax2", "-1x2", "4.0x2", ""):
        with pytest.raises(ValueError, match="ORIENTATIONSxITERATIONS"):
            RefinerOptions.parse(bad)
    for bad, name in (("3x2", "orientations"), ("4x0", "iterations")):
        with pytest.raises(ValueError, match=name):
            RefinerOptions.parse(bad)
