"""Training side of hifi_core: data (real clips, synthetic layered motion), trainer, export.

See docs/training/README.md for the data mix, the conditioning choice and how to run, resume
and export a training run.
"""

from .condition import ConditionConfig, make_condition
from .config import TrainConfig, config_from_dict, load_config
from ..triplet import Triplet
from .data import AugmentConfig
from .dataset import MixConfig, MixedTriplets, batch_indices, load_batch
from .real import RealClips, SplitConfig, split_ranges
from .synthetic import SyntheticConfig, SyntheticScenes
from .state import export_ema
from .trainer import Trainer

__all__ = ["AugmentConfig", "ConditionConfig", "MixConfig", "MixedTriplets", "RealClips", "SplitConfig",
           "SyntheticConfig", "SyntheticScenes", "TrainConfig", "Trainer", "Triplet", "batch_indices",
           "config_from_dict", "export_ema", "load_batch", "load_config", "make_condition",
           "split_ranges"]
