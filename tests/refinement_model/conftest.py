"""Fixtures for the network tests."""

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny networks run faster on one thread, and the test machine is shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Tiny networks: each test builds in a fraction of a second.
TINY = {"decoder_channels": (8, 8, 8, 8, 8)}


def tiny_refiner(seed: int):
    """A tiny refiner whose head is random, as if trained (an untrained one is the identity)."""
    import torch

    from refinement_model.nets import create_model

    torch.manual_seed(seed)
    model = create_model("refiner", **TINY).eval()
    for parameter in model.net.segmentation_head.parameters():
        torch.nn.init.normal_(parameter, std=0.5)
    return model


@pytest.fixture(scope="module")
def base():
    """A tiny base network."""
    import torch

    from refinement_model.nets import create_model

    torch.manual_seed(3)
    return create_model("base", **TINY).eval()


@pytest.fixture(scope="module")
def refiner():
    """A tiny refiner (:func:`tiny_refiner` of seed 4)."""
    return tiny_refiner(4)
