"""Shared fixtures of the deep-learning tests."""

import pytest
import torch


@pytest.fixture(scope="module")
def deterministic():
    """Deterministic torch kernels and 2 threads for a test module, restored afterwards."""
    previous, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)
    yield
    torch.use_deterministic_algorithms(previous)
    torch.set_num_threads(threads)
