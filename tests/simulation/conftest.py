"""Fixtures of the simulation tests."""

import pytest

from annotator.cli import main


@pytest.fixture(scope="session")
def simulate_cli():
    """``run(data, networks, out, *, steps=2, seeds=1, settings="both", **options)``: the exit
    status of ``etmira simulate`` over ``data`` with the checkpoints ``networks["base"]`` and
    ``networks["refiner"]`` (as ``save_tiny_networks`` gives them), writing to ``out``.

    Each further option ``name=value`` is passed as ``--name value`` (``_`` written ``-``).
    """

    def run(data, networks, out, *, steps=2, seeds=1, settings="both", **options) -> int:
        argv = ["simulate", str(data), "--base", str(networks["base"])]
        argv += ["--refiner", str(networks["refiner"]), "--out", str(out)]
        options.update(steps=steps, seeds=seeds, settings=settings)
        for name, value in options.items():
            argv += [f"--{name.replace('_', '-')}", str(value)]
        return main(argv)

    return run
