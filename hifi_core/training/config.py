"""Training configuration: a plain JSON file (configs/train/*.json) mapped onto dataclasses.

Every section is optional (defaults below); unknown keys are errors, so a typo never silently
falls back to a default. Paths in `data` are resolved relative to the current directory
unless absolute; `--data` on the command line replaces `data.root`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..runtime import PRECISIONS
from ..config import MOTION_BASES, DiffusionConfig, ModelConfig, get_preset
from ..errors import HiFIInputError
from ..model import LOSS_NORMS
from .condition import ConditionConfig
from .data import AugmentConfig
from .dataset import MixConfig
from ..video_io import VIDEO_EXTENSIONS
from .real import SplitConfig
from .synthetic import SyntheticConfig


@dataclass
class DataConfig:
    """Where the data is and how it is mixed.

    Attributes:
        root: data folder with clips/ and photos/ (the shared data layout).
        clips: clip files or frame folders (relative to root/clips); empty = every clip there.
        photos: photo folder relative to root.
        spans: frame0-to-frame2 distances of real training windows (tau = k / span).
        scales: downscale factors of the real frames to draw windows from (2 = larger motion).
        real_fraction: share of real samples in the mixture (rest synthetic).
        crop: training crop (height, width).
        late_crop: optional larger crop used from `late_crop_from` (fraction of steps) on.
        cache_dir: decoded-frame/photo cache; None = $HIFI_CACHE or ~/.cache/hifi.
        hard_fraction, hard_candidates: hard-example sampling (`MixConfig`); 0 = off.
        repeat_samples: > 0 cycles through that many samples (`MixConfig`; a capacity probe).
        flow_context: for flow-base models, each sample is drawn this many times larger than
            the crop, DIS flows and the warps to tau run on all of it, and the centre crop
            is trained on, as inference runs DIS on the whole frame (1: flows of the crop
            itself, which fail wherever motion leaves the crop; on real training crops that
            is about 6 % of the flow average's error, docs/training/README.md). Own-prediction
            conditions' base level sees the context warps too, area-downsampled. The larger
            view is drawn like a crop of its size, so multi-resolution zoom-outs are milder.
    """

    root: str = "../shared/data"
    clips: List[str] = field(default_factory=list)
    photos: str = "photos"
    spans: List[int] = field(default_factory=lambda: [2, 3, 4])
    scales: List[int] = field(default_factory=lambda: [1, 2])
    real_fraction: float = 0.5
    crop: Tuple[int, int] = (96, 96)
    late_crop: Optional[Tuple[int, int]] = None
    late_crop_from: float = 0.8
    train_fraction: float = 0.8
    cache_dir: Optional[str] = None
    hard_fraction: float = 0.0
    hard_candidates: int = 4
    repeat_samples: int = 0
    flow_context: int = 1

    def __post_init__(self) -> None:
        self.crop = tuple(self.crop)
        self.late_crop = tuple(self.late_crop) if self.late_crop else None
        if not 0 <= self.late_crop_from <= 1:
            raise HiFIInputError(f"data.late_crop_from={self.late_crop_from} must be in [0, 1]")
        if not isinstance(self.flow_context, int) or isinstance(self.flow_context, bool) or self.flow_context < 1:
            raise HiFIInputError(f"data.flow_context={self.flow_context!r} must be a whole number >= 1 "
                                 "(1 = flows of the crop itself)")

    def clip_paths(self) -> List[Path]:
        folder = Path(self.root) / "clips"
        if self.clips:
            return [Path(c) if Path(c).is_absolute() else folder / c for c in self.clips]
        if not folder.is_dir():
            raise HiFIInputError(f"{folder}: no clips folder; pass --data pointing at the shared data "
                                 "folder (with clips/ and photos/)")
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS or p.is_dir())

    def photo_path(self) -> Path:
        return Path(self.photos) if Path(self.photos).is_absolute() else Path(self.root) / self.photos

    def mix(self, crop: Tuple[int, int], augment: AugmentConfig) -> MixConfig:
        """The dataset's `MixConfig` at a crop size."""
        return MixConfig(self.real_fraction, crop, augment, self.hard_fraction, self.hard_candidates,
                         self.repeat_samples)

    def split(self) -> SplitConfig:
        return SplitConfig(train_fraction=self.train_fraction, max_span=max(max(self.spans), 4))


@dataclass
class OptimConfig:
    """Adam with linear warm-up, then constant or cosine decay, and gradient clipping."""

    lr: float = 7e-4
    warmup_steps: int = 300
    schedule: str = "cosine"
    min_lr_fraction: float = 0.1
    betas: Tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        if self.schedule not in ("constant", "cosine"):
            raise HiFIInputError(f"optim.schedule={self.schedule!r} must be 'constant' or 'cosine'")
        if self.lr <= 0 or self.warmup_steps < 0 or self.grad_clip <= 0:
            raise HiFIInputError("optim.lr and optim.grad_clip must be > 0 and warmup_steps >= 0")


@dataclass
class TimeSamplingConfig:
    """Diffusion time t for training: a fraction `p_one` exactly at t = 1, the rest t = 1 - u**power.

    power = 1 is uniform; power > 1 moves mass toward t = 1, where the one-step sample (the
    network's regression estimate) is evaluated (../shared/docs/training-notes.md).
    """

    p_one: float = 0.25
    power: float = 2.0

    def __post_init__(self) -> None:
        if not 0 <= self.p_one <= 1 or self.power <= 0:
            raise HiFIInputError("t_sampling.p_one must be in [0, 1] and power > 0")


@dataclass
class ValidationConfig:
    """In-training validation on fixed held-out real triplets (full cascade through interpolate)."""

    every: int = 500
    gaps: List[int] = field(default_factory=lambda: [1, 2])
    per_clip: int = 3
    scale: int = 2
    levels: int = 2
    steps: List[int] = field(default_factory=lambda: [1, 2])
    patch: Tuple[int, int] = (128, 128)
    overlap: int = 16

    def __post_init__(self) -> None:
        self.patch = tuple(self.patch)
        if self.every < 1 or self.per_clip < 1 or not self.gaps or not self.steps:
            raise HiFIInputError("validation.every and per_clip must be >= 1; gaps and steps non-empty")


@dataclass
class TrainConfig:
    """The whole run."""

    preset: str = "small"
    seed: int = 0
    batch: int = 8
    steps: int = 30000
    ema_decay: float = 0.999
    # the EMA's decay warm-up (the EMA follows the first steps closely); off, the EMA keeps
    # averaging from step 0: for fine-tuning trained weights (init_from), whose first updates
    # are the noisiest
    ema_warmup: bool = True
    checkpoint_minutes: float = 5.0
    log_every: int = 25
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    condition: ConditionConfig = field(default_factory=ConditionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    t_sampling: TimeSamplingConfig = field(default_factory=TimeSamplingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    init_from: Optional[str] = None  # a .safetensors checkpoint whose weights start the run
    loss: str = "l1"  # on v: "l1" (the paper's), "l2" or "log_l2" (see HiFIModel.loss)
    # > 0: each pixel's loss is weighted by 1 + k * |warped frame0 - warped frame2| (mean over
    # channels, normalised to mean 1 per sample), so where the flow fails (occlusions, flow
    # errors) counts more; needs the flow base
    disagreement_weight: float = 0.0
    # preset diffusion settings this run differs in (e.g. {"network_frames": "raw"}), so a
    # config keeps reproducing its run when a preset's defaults move on
    diffusion: Dict[str, Any] = field(default_factory=dict)
    # autocast of the training forward pass: "fp32" (none), "bf16", or "fp16" (with loss
    # scaling); weights, Adam and EMA stay float32. For GPUs; the CPU runs use fp32.
    precision: str = "fp32"
    # > 0: that many worker processes assemble the next batches (crops, synthetic renders,
    # DIS flows) while the model trains on this one; the batches are the same as with 0
    loader_workers: int = 0

    def __post_init__(self) -> None:
        if self.batch < 1 or self.steps < 1:
            raise HiFIInputError(f"batch={self.batch} and steps={self.steps} must be >= 1")
        if not 0 <= self.ema_decay < 1:
            raise HiFIInputError(f"ema_decay={self.ema_decay} must be in [0, 1)")
        if self.precision not in PRECISIONS:
            raise HiFIInputError(f"precision={self.precision!r}: use one of {sorted(PRECISIONS)}")
        if self.loader_workers < 0:
            raise HiFIInputError(f"loader_workers={self.loader_workers} must be >= 0 (0 = load in the "
                                 "training process)")
        if self.loss not in LOSS_NORMS:
            raise HiFIInputError(f"loss={self.loss!r} must be one of {LOSS_NORMS}")
        model = self.model_config()  # unknown or inconsistent diffusion keys fail here, named
        if self.disagreement_weight < 0 or (self.disagreement_weight > 0 and model.diffusion.residual_base not in MOTION_BASES):
            raise HiFIInputError(f"disagreement_weight={self.disagreement_weight} must be >= 0, and > 0 only with "
                                 'a flow residual base (residual_base "flow" or "rife")')

    def model_config(self) -> ModelConfig:
        """The preset's model config with this run's `diffusion` overrides."""
        preset = get_preset(self.preset)
        known = {f.name for f in dataclasses.fields(DiffusionConfig)}
        unknown = set(self.diffusion) - known
        if unknown:
            raise HiFIInputError(f"unknown keys {sorted(unknown)} in 'diffusion'; allowed: {sorted(known)}")
        return dataclasses.replace(preset, diffusion=dataclasses.replace(preset.diffusion, **self.diffusion))

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


_SECTIONS = {"data": DataConfig, "augment": AugmentConfig, "synthetic": SyntheticConfig,
             "condition": ConditionConfig, "optim": OptimConfig, "t_sampling": TimeSamplingConfig,
             "validation": ValidationConfig}


def config_from_dict(data: Dict[str, Any], source: str = "config") -> TrainConfig:
    """Build a TrainConfig, naming unknown keys."""
    data = {k: v for k, v in data.items() if not k.startswith("_")}  # "_comment" keys allowed
    top = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(data) - top
    if unknown:
        raise HiFIInputError(f"{source}: unknown keys {sorted(unknown)}; allowed: {sorted(top)}")
    kwargs = {}
    for key, value in data.items():
        if key in _SECTIONS:
            cls = _SECTIONS[key]
            value = {k: v for k, v in value.items() if not k.startswith("_")}
            allowed = {f.name for f in dataclasses.fields(cls)}
            bad = set(value) - allowed
            if bad:
                raise HiFIInputError(f"{source}: unknown keys {sorted(bad)} in '{key}'; allowed: {sorted(allowed)}")
            value = cls(**value)
        kwargs[key] = value
    return TrainConfig(**kwargs)


def load_config(path: Path) -> TrainConfig:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise HiFIInputError(f"{path}: no such training config (see configs/train/)") from None
    except json.JSONDecodeError as error:
        raise HiFIInputError(f"{path}: not valid JSON ({error})") from None
    return config_from_dict(data, str(path))
