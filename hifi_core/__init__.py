"""hifi_core: HiFI frame interpolation (patch-based cascaded diffusion) in plain PyTorch.

See docs/architecture.md for module contracts and README.md for a runnable example.
"""

from .cascade import CascadePlan, plan_cascade, run_cascade
from .checkpoint import (default_checkpoint_path, find_checkpoints, load_checkpoint, load_model,
                         read_checkpoint_config, save_checkpoint)
from .config import PRESETS, DiffusionConfig, ModelConfig, UNetConfig, get_preset
from .errors import Cancelled, CheckpointError, HiFIInputError, NonFiniteOutputError
from .interpolate import CascadeSettings, Interpolator, JobPlan, interpolate, plan_for, plan_job, retime_sequence
from .memory import estimate_patch_bytes, plan_patch_batch
from .model import HiFIModel, build_model
from .patches import PatchGrid, make_patch_grid
from .progress import ProgressEvent
from .timeline import OutputFrame, retime_schedule

__version__ = "0.1.0"

__all__ = [
    "CascadePlan", "CascadeSettings", "Interpolator", "JobPlan", "Cancelled", "CheckpointError", "DiffusionConfig",
    "HiFIInputError", "HiFIModel", "ModelConfig", "NonFiniteOutputError", "OutputFrame", "PRESETS", "PatchGrid",
    "ProgressEvent", "UNetConfig", "build_model", "default_checkpoint_path", "estimate_patch_bytes",
    "find_checkpoints", "get_preset", "interpolate", "load_checkpoint", "load_model",
    "make_patch_grid", "plan_cascade", "plan_for", "plan_job", "plan_patch_batch", "read_checkpoint_config",
    "retime_schedule", "retime_sequence", "run_cascade", "save_checkpoint",
]
