"""Models for tests (not a test module itself): presets whose weights are moved off their
init, so the network's output matters (an untrained model reproduces its base)."""

import torch

from hifi_core import build_model


def perturbed(preset, seed: int = 0, scale: float = 0.05):
    """`build_model(preset)` (a name or a `ModelConfig`) with Gaussian noise of `scale` added
    to every weight from a generator seeded with `seed` (the mode is build_model's)."""
    model = build_model(preset)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale)
    return model
