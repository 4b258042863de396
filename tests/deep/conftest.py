"""Shared fixtures of the deep-learning tests."""

import pytest
import torch

from alnm.imaging.crops import read_crops_manifest

from .test_data import write_blob_crops


@pytest.fixture(scope="module")
def deterministic():
    """Deterministic torch kernels and 2 threads for a test module, restored afterwards."""
    previous, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)
    yield
    torch.use_deterministic_algorithms(previous)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    """24 patients of 2-slice, 2-channel blob crops (manifest frame, labels) for training tests."""
    csv, labels = write_blob_crops(tmp_path_factory.mktemp("blobs"), 24, slices=2, channels=2)
    return read_crops_manifest(csv), labels
