"""The node pack loaded like ComfyUI loads it, for the tests/test_nodes_*.py files (not a test module).

ComfyUI's modules are replaced by tests/comfy_stubs (installed per test into sys.modules).
The fixtures reach the tests through tests/conftest.py; the constants are imported from here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from comfy_stubs import install
from comfy_stubs.graph import load_pack

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(levels=2, patch_width=32, patch_height=32, overlap=8, steps=1, samples=1, seed=0)


@pytest.fixture(scope="module")
def pack():
    return load_pack(ROOT)


@pytest.fixture
def comfy(monkeypatch, tmp_path):
    stubs = install(monkeypatch, tmp_path / "ComfyUI")
    stubs.utils.PROGRESS_UPDATES.clear()
    stubs.model_management.INTERRUPT_AFTER_CHECKS[0] = None
    stubs.model_management.INTERRUPT_CHECKS[0] = 0
    return stubs


@pytest.fixture
def nodes(pack):
    return pack.NODE_CLASS_MAPPINGS


@pytest.fixture
def tiny_model(nodes, comfy):
    torch.manual_seed(0)
    (handle,) = nodes["HiFILoadModel"]().load("preset:tiny", "cpu", "fp32")
    return handle
