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
