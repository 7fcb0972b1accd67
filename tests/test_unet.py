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


def test_space_to_depth_stem_runs_every_level_at_a_quarter_and_keeps_full_resolution_output():
    from hifi_core.bench.flops import count_on_meta

    lean = get_preset("lean")
    assert lean.unet.stem_factor == 4 and lean.unet.alignment == 16
    model = build_model("lean")
    x = torch.randn(1, 12, 48, 80)
    assert torch.equal(model.unet(x, torch.zeros(1), torch.full((1,), 0.5)), torch.zeros(1, 3, 48, 80))
    # with output weights, each of the 16 pixels of a 4x4 block gets its own value
    torch.nn.init.normal_(model.unet.out_conv.weight)
    out = model.unet(x, torch.zeros(1), torch.full((1,), 0.5))
    assert out.shape == (1, 3, 48, 80) and (out[..., 0::4, 0::4] - out[..., 1::4, 1::4]).abs().mean() > 1e-3
    # an eighth of small's cost per pixel or less
    small = count_on_meta(get_preset("small"), 1, 256, 256)
    assert count_on_meta(lean, 1, 256, 256) < small / 8


def test_stem_factor_is_validated():
    with pytest.raises(HiFIInputError, match="stem_factor"):
        UNetConfig(stem_factor=3)
