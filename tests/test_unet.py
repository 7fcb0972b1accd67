"""U-Net construction: presets, the paper-size parameter count, zero-initialised output."""

import pytest
import torch

from hifi_core import PRESETS, HiFIInputError, UNetConfig, build_model, get_preset
from hifi_core.unet import EfficientUNet


def count(config):
    with torch.device("meta"):
        return sum(p.numel() for p in EfficientUNet(config).parameters())


def test_paper_preset_matches_paper_size():
    params = count(PRESETS["paper"].unet)
    assert abs(params - 647e6) / 647e6 < 0.10, params


def test_preset_sizes_are_ordered():
    assert count(PRESETS["tiny"].unet) < 0.5e6
    assert 1e6 < count(PRESETS["small"].unet) < 10e6
    assert count(PRESETS["small"].unet) < count(PRESETS["base"].unet) < count(PRESETS["paper"].unet)


def test_untrained_model_predicts_zero_v_with_right_shape():
    model = build_model("tiny")
    x = torch.randn(2, 12, 32, 48)
    v = model.unet(x, torch.zeros(2), torch.full((2,), 0.5))
    assert v.shape == (2, 3, 32, 48)
    assert torch.count_nonzero(v) == 0


def test_output_depends_on_tau_logsnr_and_condition_flag():
    torch.manual_seed(0)
    model = build_model("tiny")
    torch.nn.init.normal_(model.unet.out_conv.weight, std=0.1)
    x = torch.randn(1, 12, 16, 16)
    base = model.unet(x, torch.zeros(1), torch.tensor([0.5]), torch.tensor([True]))
    assert not torch.allclose(base, model.unet(x, torch.zeros(1), torch.tensor([0.25]), torch.tensor([True])))
    assert not torch.allclose(base, model.unet(x, torch.ones(1), torch.tensor([0.5]), torch.tensor([True])))
    assert not torch.allclose(base, model.unet(x, torch.zeros(1), torch.tensor([0.5]), torch.tensor([False])))


def test_config_validation_names_the_problem():
    with pytest.raises(HiFIInputError, match="one entry per level"):
        UNetConfig(channel_mults=(1, 2), blocks_per_level=(1,))
    with pytest.raises(HiFIInputError, match="attention_heads"):
        UNetConfig(base_channels=30, attention_heads=4)
    with pytest.raises(HiFIInputError, match="unknown model preset 'huge'.*tiny"):
        get_preset("huge")
