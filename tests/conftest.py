"""Shared fixtures: make the repo root importable and keep torch on few threads."""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

torch.set_num_threads(2)


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)


# The node pack's fixtures (pack, comfy, nodes, tiny_model), defined next to the constants its tests share.
from node_pack import comfy, nodes, pack, tiny_model  # noqa: E402,F401
