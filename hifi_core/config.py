"""Model configuration: typed, validated dataclasses and the named presets.

A `ModelConfig` (U-Net layout + diffusion parameterisation) fully describes a model; it is
written into every checkpoint's metadata as JSON, so checkpoints are self-describing.

Presets (parameter counts are measured by `python -m hifi_core info`):
- ``tiny``  : unit tests and CI smoke runs, well under 0.5M parameters.
- ``small`` : the CPU-trainable U-Net of the earlier default checkpoints, a few M parameters,
  736 GFLOP per megapixel per step.
- ``lean``  : the same U-Net design built for CPU cost: a 4x space-to-depth stem, so every
  level runs at 1/4 of the frame or less (64 GFLOP/MP, 0.46 s/MP on two cores where small
  takes 5.8), over RIFE's learned motion base.
- ``base``  : a GPU-sized model for users who train their own.
- ``paper`` : the paper's layout (base width 128, multipliers (1,2,4,8), blocks (2,4,8,8),
  attention at the two lowest levels), about 647M parameters.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

from .errors import HiFIInputError

PARAMETERISATIONS = ("residual", "image")
RESIDUAL_BASES = ("blend", "flow", "rife")
MOTION_BASES = ("flow", "rife")  # bases that warp the frames with optical flow
NETWORK_FRAMES = ("raw", "warped")
PREDICTIONS = ("v", "x")


# (field, lowest, highest): bounds that keep a hostile or damaged checkpoint config from
# building a model that cannot exist (zero groups, 10^9 channels)
_UNET_INT_RANGES = (("in_channels", 4, 64), ("out_channels", 1, 16), ("base_channels", 1, 4096),
                    ("attention_levels", 0, 8), ("attention_heads", 1, 64), ("norm_groups", 1, 1024),
                    ("stem_factor", 1, 8))


@dataclass(frozen=True)
class UNetConfig:
    """Efficient U-Net layout.

    Attributes:
        in_channels: noisy target + frame0 + frame2 + low-res condition, 3 each for RGB.
        out_channels: the predicted v (3 for RGB).
        base_channels: width of the first level.
        channel_mults: width multiplier per level; level i runs at 1/2**i resolution.
        blocks_per_level: ResNet blocks per level (encoder; the decoder mirrors it).
        attention_levels: self-attention in this many of the lowest-resolution levels.
        attention_heads: heads of every self-attention layer.
        dropout: dropout inside ResNet blocks (training only).
        norm_groups: GroupNorm groups (reduced automatically where channels are fewer).
        stem_factor: space-to-depth factor of the stem (1 = none). With f > 1 the network
            folds each f x f block of pixels into channels on the way in and unfolds its
            output the same way, so every level runs at 1/f of the size the levels above
            describe: the convolutions cost about 1/f**2 as much (the flow networks' trick).
    """

    in_channels: int = 12
    out_channels: int = 3
    # defaults: the shipped preset's ("lean"), so UNetConfig() is what the bundled checkpoint runs
    base_channels: int = 64
    channel_mults: Tuple[int, ...] = (1, 1, 2)
    blocks_per_level: Tuple[int, ...] = (1, 1, 1)
    attention_levels: int = 1
    attention_heads: int = 4
    dropout: float = 0.0
    norm_groups: int = 8
    stem_factor: int = 4

    def __post_init__(self) -> None:
        for name, low, high in _UNET_INT_RANGES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise HiFIInputError(f"{name}={value!r} must be an integer in [{low}, {high}]")
        for name in ("channel_mults", "blocks_per_level"):
            values = getattr(self, name)
            if isinstance(values, (str, bytes)) or not all(
                    isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 64 for v in values):
                raise HiFIInputError(f"{name}={values!r} must be integers in [1, 64]")
        if not 1 <= len(self.channel_mults) <= 8:
            raise HiFIInputError(f"channel_mults has {len(self.channel_mults)} levels; use 1 to 8")
        object.__setattr__(self, "channel_mults", tuple(self.channel_mults))  # JSON gives lists
        object.__setattr__(self, "blocks_per_level", tuple(self.blocks_per_level))
        if len(self.channel_mults) != len(self.blocks_per_level):
            raise HiFIInputError(
                f"channel_mults {self.channel_mults} and blocks_per_level {self.blocks_per_level} "
                "must have one entry per level")
        if not 0 <= self.attention_levels <= len(self.channel_mults):
            raise HiFIInputError(
                f"attention_levels={self.attention_levels} must be between 0 and the number of "
                f"levels ({len(self.channel_mults)})")
        for level_channels in self.level_channels:
            if self.attention_levels and level_channels % self.attention_heads:
                raise HiFIInputError(
                    f"attention_heads={self.attention_heads} must divide every level's width "
                    f"({self.level_channels})")
        if self.stem_factor not in (1, 2, 4, 8):
            raise HiFIInputError(f"stem_factor={self.stem_factor} must be 1, 2, 4 or 8")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise HiFIInputError(f"dropout={self.dropout} must be in [0, 1)")
        if self.in_channels != 4 * self.out_channels:
            raise HiFIInputError(
                f"in_channels={self.in_channels} must be 4 x out_channels ({self.out_channels}): "
                "noisy target, frame0, frame2 and the low-resolution condition")

    @property
    def level_channels(self) -> Tuple[int, ...]:
        return tuple(self.base_channels * m for m in self.channel_mults)

    @property
    def alignment(self) -> int:
        """Frame and patch sides must be multiples of this (the stem's folding, then one
        halving per extra level)."""
        return self.stem_factor * 2 ** (len(self.channel_mults) - 1)


@dataclass(frozen=True)
class DiffusionConfig:
    """Diffusion process and what the network's v-prediction is about.

    Attributes:
        logsnr_min: log-SNR at t = 1 (clipped cosine schedule; keeps lambda finite).
        logsnr_max: log-SNR at t = 0.
        parameterisation: ``"residual"`` diffuses r = (x - base) * residual_scale, where base
            is the upsampled low-resolution condition when there is one and the tau-weighted
            frame blend at the base level; ``"image"`` diffuses x itself (the paper's form).
            Residual targets let a cheaply trained model start at its baseline
            (../shared/docs/training-notes.md and docs/training/).
        residual_scale: multiplier on the residual so it is not drowned by unit noise.
        condition_detail: with a condition, the residual base is the condition *plus the
            tau-blend's detail* (blend minus its x2 down/up-sampled copy, the same operators
            the cascade uses). The upsampled lower level lacks exactly that band, so where
            nothing moves the base is already the blend, sharp; the network only corrects
            where things move. False = the condition alone.
        residual_base: what the residual is taken against: ``"blend"`` (the tau-weighted
            frame blend), ``"flow"`` (the DIS optical-flow warped average, flows computed
            once per pair at up to about 1080p, see `hifi_core.flow_base`) or ``"rife"`` (the
            same with RIFE's learned IFNet flows and fusion mask, `hifi_core.motion_base`;
            DIS where its weights are not set up). With a flow base the
            detail band above is taken from the warped average too, and the network's
            condition channels carry the residual base itself (at the base level as well),
            so it sees what it is correcting.
        network_frames: what the network's two frame channels carry: ``"raw"`` (the input
            frames) or ``"warped"`` (each frame warped to tau by the flows of the residual
            base; needs ``residual_base="flow"``). Warped, the two frames agree wherever the
            flow is right, so occlusions and flow errors show up as a local disagreement a
            small network can see, instead of a match across the whole motion.
        prediction: what the network's output is read as: ``"v"`` (v = alpha * eps - sigma * x,
            the paper's) or ``"x"`` (the clean sample, negated: output = -x_hat). Our residuals
            are small beside unit noise, so at mid t a v-network must reproduce its noisy input
            almost exactly (v = (alpha * z - x) / sigma) and what it misses is left as noise in
            the sample: 2-step sampling scored 0.3 dB under 1 step (docs/training/README.md,
            stage 5). Read as x the network never copies noise. Negated because at t = 1
            (alpha = 0, sigma = 1) v = -x: v-trained weights keep their one-step output.
    """

    # defaults: the shipped preset's ("lean"); configs and checkpoints state every field
    logsnr_min: float = -20.0
    logsnr_max: float = 20.0
    parameterisation: str = "residual"
    residual_scale: float = 2.0
    condition_detail: bool = True
    residual_base: str = "rife"
    network_frames: str = "raw"
    prediction: str = "x"

    def __post_init__(self) -> None:
        if self.parameterisation not in PARAMETERISATIONS:
            raise HiFIInputError(
                f"parameterisation={self.parameterisation!r} is unknown; use one of {PARAMETERISATIONS}")
        if self.residual_base not in RESIDUAL_BASES:
            raise HiFIInputError(
                f"residual_base={self.residual_base!r} is unknown; use one of {RESIDUAL_BASES}")
        if self.network_frames not in NETWORK_FRAMES:
            raise HiFIInputError(
                f"network_frames={self.network_frames!r} is unknown; use one of {NETWORK_FRAMES}")
        if self.prediction not in PREDICTIONS:
            raise HiFIInputError(f"prediction={self.prediction!r} is unknown; use one of {PREDICTIONS}")
        if self.network_frames == "warped" and self.residual_base not in MOTION_BASES:
            raise HiFIInputError('network_frames="warped" needs residual_base "flow" or "rife" (the flows that warp them)')
        if not self.logsnr_min < self.logsnr_max:
            raise HiFIInputError(
                f"logsnr_min={self.logsnr_min} must be below logsnr_max={self.logsnr_max}")
        for name in ("logsnr_min", "logsnr_max", "residual_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise HiFIInputError(f"{name}={value!r} must be a finite number")
        if self.residual_scale <= 0:
            raise HiFIInputError(f"residual_scale={self.residual_scale} must be positive")


# A stored config (checkpoint metadata, a JSON file) that lacks a field was written before the
# field existed, so the field takes the value that reproduces the behaviour from before, not
# today's dataclass default (the shipped preset's): e.g. hifi-small.safetensors has no
# `stem_factor` and must not get the lean preset's 4x stem.
ABSENT_FIELD_VALUES: Dict[str, Dict[str, Any]] = {
    "unet": {"base_channels": 32, "channel_mults": (1, 2, 4, 4), "blocks_per_level": (1, 1, 1, 1),
             "attention_levels": 2, "stem_factor": 1},
    "diffusion": {"condition_detail": False, "residual_base": "blend", "prediction": "v"},
}


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model: stored in checkpoint metadata.

    Attributes:
        unet (UNetConfig): the network's layout.
        diffusion (DiffusionConfig): what it predicts and over which base.
        preset (str, default "custom"): the preset it came from, for display.
    """

    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    preset: str = "custom"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ModelConfig":
        if not isinstance(data, dict) or not all(isinstance(data.get(k, {}), dict) for k in ("unet", "diffusion")):
            raise HiFIInputError("a model config must be a JSON object with 'unet' and 'diffusion' objects")
        known_unet = {f.name for f in dataclasses.fields(UNetConfig)}
        known_diffusion = {f.name for f in dataclasses.fields(DiffusionConfig)}
        unet = {**ABSENT_FIELD_VALUES["unet"], **data.get("unet", {})}
        diffusion = {**ABSENT_FIELD_VALUES["diffusion"], **data.get("diffusion", {})}
        unknown = (set(unet) - known_unet) | (set(diffusion) - known_diffusion)
        if unknown:
            raise HiFIInputError(f"unknown model config keys {sorted(unknown)}")
        return cls(unet=UNetConfig(**unet), diffusion=DiffusionConfig(**diffusion),
                   preset=str(data.get("preset", "custom")))

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        return cls.from_dict(json.loads(text))


PRESETS: Dict[str, ModelConfig] = {
    "tiny": ModelConfig(
        unet=UNetConfig(base_channels=16, channel_mults=(1, 2, 2), blocks_per_level=(1, 1, 1),
                        attention_levels=1, attention_heads=2, norm_groups=4, stem_factor=1),
        diffusion=DiffusionConfig(condition_detail=True, residual_base="flow", prediction="v"), preset="tiny"),
    "small": ModelConfig(
        unet=UNetConfig(base_channels=32, channel_mults=(1, 2, 4, 4), blocks_per_level=(1, 1, 1, 1),
                        attention_levels=2, attention_heads=4, norm_groups=8, stem_factor=1),
        diffusion=DiffusionConfig(condition_detail=True, residual_base="flow", prediction="v"), preset="small"),
    "lean": ModelConfig(
        unet=UNetConfig(base_channels=64, channel_mults=(1, 1, 2), blocks_per_level=(1, 1, 1),
                        attention_levels=1, attention_heads=4, norm_groups=8, stem_factor=4),
        diffusion=DiffusionConfig(condition_detail=True, residual_base="rife", prediction="x"),
        preset="lean"),
    "base": ModelConfig(
        unet=UNetConfig(base_channels=64, channel_mults=(1, 2, 4, 8), blocks_per_level=(1, 2, 4, 4),
                        attention_levels=2, attention_heads=8, norm_groups=32, stem_factor=1),
        diffusion=DiffusionConfig(condition_detail=True, residual_base="flow", prediction="v"), preset="base"),
    "paper": ModelConfig(
        unet=UNetConfig(base_channels=128, channel_mults=(1, 2, 4, 8), blocks_per_level=(2, 4, 8, 8),
                        attention_levels=2, attention_heads=8, norm_groups=32, stem_factor=1),
        diffusion=DiffusionConfig(condition_detail=True, residual_base="flow", prediction="v"), preset="paper"),
}


def get_preset(name: str) -> ModelConfig:
    """Return the named preset's config, or raise naming the presets that exist."""
    try:
        return PRESETS[name]
    except KeyError:
        raise HiFIInputError(
            f"unknown model preset {name!r}; available presets: {', '.join(PRESETS)}") from None
