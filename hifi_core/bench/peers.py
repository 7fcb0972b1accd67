"""Interpolation methods side by side: HiFI and the peers artists already use.

Every method is a `Method` whose `__call__(frame0, frame2, tau)` takes two float32 frames
`[1, 3, H, W]` RGB in [0, 1] (CPU) and returns the in-between frame in the same layout,
clamped to [0, 1], on the CPU. `tau` is the time in (0, 1); methods that can only make the
midpoint (`midpoint_only`: minterpolate at a doubled frame rate, RIFE HDv3's IFNet) raise
`HiFIInputError` for any other tau.

Methods:
- ``hifi[...]``: the patch cascade with any checkpoint or preset and any steps / samples /
  levels (`HiFISpec`), through the public `hifi_core.interpolate`.
- ``blend``: the tau-weighted frame blend (`hifi_core.baselines.blend_interpolate`).
- ``dis``: OpenCV DIS optical flow, both frames warped to tau and averaged
  (`hifi_core.baselines.dis_flow_interpolate`).
- ``minterpolate``: FFmpeg's motion-compensated interpolation from the `imageio-ffmpeg`
  package's bundled binary, ``format=yuv444p,minterpolate=fps=2:mi_mode=mci:scd=none`` on the
  clip (frame0, frame2, frame2) at 1 fps; the output frame at t = 0.5 s is the in-between.
  (The held copy of frame2 only lets the filter flush: a two-frame clip yields no output in
  FFmpeg 7+.) Scene-change detection must be off or the filter copies a frame; the adapter
  checks that its result is not a copy.
- ``rife``: RIFE HDv3 (MIT): our `hifi_core.ifnet.IFNet` with the published weights converted by
  ``python -m hifi_core setup-motion``, on inputs padded (replicate) to a multiple of 32; its
  fusion-masked average of the two warped frames is the middle frame.

A peer that is not installed is reported as `Unavailable` (with the reason and the command
that installs it), never as a failure.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..errors import HiFIInputError
from ..triplet import to_tensor, to_uint8

MidFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
PEER_NAMES = ("blend", "dis", "minterpolate", "rife", "base")
MINTERPOLATE_FILTER = "format=yuv444p,minterpolate=fps=2:mi_mode=mci:scd=none"


class PeerError(RuntimeError):
    """A peer ran but produced an unusable result (e.g. minterpolate copied a frame)."""


@dataclass(frozen=True)
class Method:
    """One interpolation method with the common signature.

    Attributes:
        name: short label used in tables (unique within a run).
        fn: `(frame0, frame2, tau) -> frame`, all [1, 3, H, W] float in [0, 1].
        kind: "hifi" or "peer".
        detail: how it is configured (for the report).
        midpoint_only: True when only tau = 0.5 is possible.
        device: where it computes (for the report).
    """

    name: str
    fn: MidFn = field(repr=False)
    kind: str = "peer"
    detail: str = ""
    midpoint_only: bool = False
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.kind not in ("hifi", "peer"):
            raise HiFIInputError(f"method kind {self.kind!r} must be 'hifi' or 'peer'")
        if not self.name:
            raise HiFIInputError("a method needs a non-empty name")

    def __call__(self, frame0: torch.Tensor, frame2: torch.Tensor, tau: float) -> torch.Tensor:
        if frame0.shape != frame2.shape or frame0.dim() != 4 or frame0.shape[:2] != (1, 3):
            raise HiFIInputError(
                f"{self.name}: frames must both be [1, 3, H, W]; got {tuple(frame0.shape)} and "
                f"{tuple(frame2.shape)}")
        if self.midpoint_only and abs(tau - 0.5) > 1e-9:
            raise HiFIInputError(f"{self.name} only computes the midpoint (tau=0.5), not tau={tau}")
        out = self.fn(frame0, frame2, float(tau))
        if out.shape != frame0.shape:
            raise PeerError(f"{self.name} returned shape {tuple(out.shape)}, expected "
                            f"{tuple(frame0.shape)}")
        return out.detach().to("cpu", torch.float32).clamp(0.0, 1.0)


@dataclass(frozen=True)
class Unavailable:
    """A method that could not be set up here, and why (reported, never fatal)."""

    name: str
    reason: str


# HiFI
@dataclass(frozen=True)
class HiFISpec:
    """Which HiFI model and cascade settings one `hifi[...]` method uses.

    Parsed from ``MODEL[,key=value...]``: MODEL is a preset name (untrained) or a checkpoint
    path / bundled checkpoint name; keys: steps, samples, levels (int or auto), patch (HxW or
    N), overlap, seed.
    """

    model: str
    steps: int = 2
    samples: int = 1
    levels: Union[int, str] = 3
    patch: Tuple[int, int] = (256, 256)
    overlap: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.model:
            raise HiFIInputError("a HiFI method needs a model (a preset name or a checkpoint path)")
        if self.steps < 1 or self.samples < 1:
            raise HiFIInputError(f"HiFI steps={self.steps} and samples={self.samples} must be >= 1")
        if self.levels != "auto" and (not isinstance(self.levels, int) or self.levels < 1):
            raise HiFIInputError(f"HiFI levels={self.levels!r} must be a positive integer or 'auto'")

    @classmethod
    def parse(cls, text: str, **defaults) -> "HiFISpec":
        """``"small,steps=1,samples=1"`` -> HiFISpec; keys not given come from `defaults`."""
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise HiFIInputError(f"--hifi {text!r}: expected MODEL[,steps=N,samples=N,levels=N]")
        values = dict(defaults)
        values["model"] = parts[0]
        for item in parts[1:]:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in ("steps", "samples", "levels", "patch", "overlap", "seed"):
                raise HiFIInputError(
                    f"--hifi {text!r}: {item!r} is not key=value with key in steps, samples, "
                    "levels, patch, overlap, seed")
            try:
                if key == "levels":
                    values[key] = value if value == "auto" else int(value)
                elif key == "patch":
                    sides = [int(s) for s in value.lower().split("x")]
                    values[key] = (sides[0], sides[-1])
                else:
                    values[key] = int(value)
            except ValueError:
                raise HiFIInputError(f"--hifi {text!r}: {key}={value!r} is not a number") from None
        return cls(**values)

    def label(self, model_label: str) -> str:
        return f"hifi[{model_label},s{self.steps},n{self.samples},L{self.levels}]"


def model_label(name: str) -> str:
    """Short, honest label: presets are marked untrained, checkpoints by file stem."""
    from ..config import PRESETS

    return f"{name}-untrained" if name in PRESETS else Path(name).stem


def hifi_method(model, settings, label: str) -> Method:
    """A Method running `hifi_core.interpolate` with this model and `CascadeSettings`."""
    from ..interpolate import interpolate

    def run(frame0: torch.Tensor, frame2: torch.Tensor, tau: float) -> torch.Tensor:
        return interpolate(model, frame0, frame2, tau, settings=settings)

    device = str(settings.device or next(model.parameters()).device)
    detail = (f"levels={settings.levels} patch={settings.patch_size[0]}x{settings.patch_size[1]} "
              f"overlap={settings.overlap} steps={settings.steps} samples={settings.samples} "
              f"precision={settings.precision}")
    return Method(label, run, kind="hifi", detail=detail, device=device)


def load_hifi(spec: HiFISpec, *, device: str = "cpu", precision: str = "fp32",
              memory_budget: Optional[int] = None, patch_batch: Optional[int] = None) -> Method:
    """Load the spec's model and wrap it (raises HiFIInputError / CheckpointError on a bad model)."""
    from ..checkpoint import load_model
    from ..interpolate import CascadeSettings

    model = load_model(spec.model, device)
    settings = CascadeSettings(levels=spec.levels, patch_size=spec.patch, overlap=spec.overlap,
                               steps=spec.steps, samples=spec.samples, seed=spec.seed,
                               device=device, precision=precision, memory_budget=memory_budget,
                               patch_batch=patch_batch)
    return hifi_method(model, settings, spec.label(model_label(spec.model)))


# classical peers
def blend_method() -> Method:
    from ..baselines import blend_interpolate

    return Method("blend", lambda f0, f2, tau: blend_interpolate(f0, f2, tau),
                  detail="(1 - tau) * frame0 + tau * frame2")


def dis_method() -> Method:
    import cv2  # noqa: F401 - fail here (reported as unavailable), not per frame

    from ..baselines import dis_flow_interpolate

    return Method("dis", lambda f0, f2, tau: dis_flow_interpolate(f0, f2, tau),
                  detail="OpenCV DIS optical flow (medium preset), both frames warped to tau")


def to_uint8_hwc(frame: torch.Tensor) -> np.ndarray:
    """[1, 3, H, W] float in [0, 1] -> uint8 [H, W, 3] (rounded)."""
    return to_uint8(frame)


def from_uint8_hwc(image: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> [1, 3, H, W] float32 in [0, 1]."""
    return to_tensor(image)[None]


def minterpolate_method(timeout_s: float = 600.0) -> Method:
    """FFmpeg minterpolate (mci) through imageio-ffmpeg's bundled binary."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise ModuleNotFoundError("imageio-ffmpeg is not installed (pip install imageio-ffmpeg)") from None
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    filters = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True,
                             timeout=60).stdout
    if " minterpolate " not in filters:
        raise ModuleNotFoundError(f"{exe} has no minterpolate filter")

    def run(frame0: torch.Tensor, frame2: torch.Tensor, tau: float) -> torch.Tensor:
        a, b = to_uint8_hwc(frame0), to_uint8_hwc(frame2)
        height, width = a.shape[:2]
        cmd = [exe, "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", "1", "-i", "-", "-vf", MINTERPOLATE_FILTER,
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        done = subprocess.run(cmd, input=a.tobytes() + b.tobytes() + b.tobytes(),
                              capture_output=True, timeout=timeout_s)
        if done.returncode != 0:
            raise PeerError(f"ffmpeg minterpolate failed ({done.returncode}): "
                            f"{done.stderr.decode(errors='replace')[-300:]}")
        frames = np.frombuffer(done.stdout, np.uint8)
        if frames.size % (height * width * 3) or frames.size // (height * width * 3) < 3:
            raise PeerError(f"ffmpeg minterpolate returned {frames.size} bytes, expected at least "
                            f"3 frames of {width}x{height}")
        frames = frames.reshape(-1, height, width, 3)
        middle = frames[1]
        # With scene-change detection on, minterpolate repeats a frame: refuse such output.
        if not np.array_equal(a, b) and (np.array_equal(middle, frames[0])
                                         or np.array_equal(middle, frames[2])):
            raise PeerError("ffmpeg minterpolate returned a copy of an input frame instead of an "
                            "interpolation (is scene-change detection off?)")
        return from_uint8_hwc(middle)

    return Method("minterpolate", run, detail=f"ffmpeg -vf {MINTERPOLATE_FILTER}",
                  midpoint_only=True)


def rife_method() -> Method:
    """RIFE HDv3's own midpoint: `hifi_core.ifnet.IFNet` with the weights `setup-motion` converts."""
    from ..motion_base import SETUP_COMMAND, find_rife_weights, ifnet_interpolate, load_ifnet

    path = find_rife_weights()
    if path is None:
        raise FileNotFoundError(f"RIFE's weights are not set up (run `{SETUP_COMMAND}`)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    net = load_ifnet(path, device)

    def run(frame0: torch.Tensor, frame2: torch.Tensor, tau: float) -> torch.Tensor:
        return ifnet_interpolate(net, frame0, frame2).clamp(0, 1).cpu()

    return Method("rife", run, detail=f"RIFE HDv3 IFNet ({path.name}), scales (4, 2, 1)",
                  midpoint_only=True, device=device)


def motion_base_method() -> Method:
    """The bundled checkpoint's residual base alone, i.e. HiFI with its network silenced: what
    the trained network adds is the difference to `hifi`."""
    from ..checkpoint import default_checkpoint_path, read_checkpoint_config
    from ..flow_base import flow_average

    path = default_checkpoint_path()
    if path is None:
        raise FileNotFoundError("no bundled checkpoint in this copy of the project")
    base = read_checkpoint_config(path).diffusion.residual_base
    if base not in ("flow", "rife"):
        raise FileNotFoundError(f"{path.name} has no flow base (residual_base={base!r})")

    def run(frame0: torch.Tensor, frame2: torch.Tensor, tau: float) -> torch.Tensor:
        return flow_average(frame0, frame2, tau, base=base).clamp(0, 1)

    return Method("base", run, detail=f"{path.name}'s motion base alone (residual_base={base!r}, network silenced)")


_PEER_FACTORIES: Dict[str, Callable[[], Method]] = {
    "blend": blend_method, "dis": dis_method, "minterpolate": minterpolate_method,
    "rife": rife_method, "base": motion_base_method,
}


def build_peers(names: Sequence[str]) -> Tuple[List[Method], List[Unavailable]]:
    """Set up the named peers; the ones that cannot run here come back as `Unavailable`."""
    unknown = [n for n in names if n not in _PEER_FACTORIES]
    if unknown:
        raise HiFIInputError(f"unknown method(s) {unknown}; peers are {', '.join(PEER_NAMES)} "
                             "(and 'hifi')")
    methods, skipped = [], []
    for name in names:
        try:
            methods.append(_PEER_FACTORIES[name]())
        except (ImportError, OSError, subprocess.SubprocessError) as error:
            skipped.append(Unavailable(name, f"{type(error).__name__}: {error}"))
    return methods, skipped
