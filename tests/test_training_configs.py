"""Every versioned training config loads, builds its model config and names its start."""

import json
from pathlib import Path

import pytest

from hifi_core.config import get_preset
from hifi_core.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
# the shipped checkpoints' lineage, tiny and the GPU recipe; the experiments' own beside them
CONFIGS = sorted((ROOT / "configs" / "train").glob("*.json")) + sorted((ROOT / "experiments" / "configs").glob("*.json"))


def test_there_are_configs():
    assert len(CONFIGS) >= 5


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_builds_its_model(path):
    config = load_config(path)
    model = config.model_config()
    assert model.preset == config.preset and get_preset(config.preset).unet == model.unet
    # a config that starts from weights says in its comment how to recreate them (runs/ is not versioned)
    if config.init_from:
        comment = json.loads(path.read_text()).get("_comment", "")
        assert "git show" in comment or "--export" in comment or "init_from" in comment, path.name
