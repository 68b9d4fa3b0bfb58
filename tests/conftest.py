"""The fixtures the tests of several folders share (tests/spec, tests/scripts, tests/plumbing)."""
import pytest
import torch

from model import load_model
from tiny import add_random_bridge, make_tiny_model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    path, _ = make_tiny_model(tmp_path_factory.mktemp("llama"), "llama", seed=7)
    return path


@pytest.fixture(scope="module")
def bridged(tiny_dir):
    """The tiny model in fp64 with random, non-zero Bridge blocks (2 heads x 8)."""
    model, tok = load_model(str(tiny_dir), dtype=torch.float64)
    return add_random_bridge(model, seed=1), tok
