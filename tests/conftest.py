"""Shared fixtures."""

import pytest
import torch

from brownface.world.generator import WorldGenerator


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is faster and steadier on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def world() -> WorldGenerator:
    """The demo world's generator (seed 0), built once per test module."""
    return WorldGenerator(seed=0)
