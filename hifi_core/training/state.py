"""Training checkpoints without pickle: model, EMA and Adam state as tensors, JSON state."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from ..checkpoint import save_checkpoint
from ..errors import CheckpointError
from ..model import HiFIModel, build_model
from .config import TrainConfig

CHECKPOINT_NAME = "checkpoint.safetensors"


# ---------------------------------------------------------------- checkpoint I/O (no pickle)

def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> Tuple[Dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def save_training_state(path: Path, model: HiFIModel, ema: HiFIModel, optimizer: torch.optim.Optimizer,
                        state: dict) -> None:
    """Model + EMA + Adam tensors and a JSON state in one safetensors file, written atomically."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"format": "hifi-training-state", "state": json.dumps({**state, "optimizer": opt_meta})}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def load_training_state(path: Path, model: HiFIModel, ema: HiFIModel,
                        optimizer: torch.optim.Optimizer) -> dict:
    """Restore what `save_training_state` wrote; returns the JSON state."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as error:  # safetensors raises several types for a damaged file
        raise CheckpointError(f"{path}: not a readable training checkpoint ({error}); delete it to "
                              "start fresh or restore it from a backup") from None
    if meta.get("format") != "hifi-training-state":
        raise CheckpointError(f"{path}: not a HiFI training checkpoint (format {meta.get('format')!r})")
    state = json.loads(meta["state"])
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    opt_meta = state.pop("optimizer")
    per_param: Dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            per_param.setdefault(int(idx), {})[name] = value
    for key, value in opt_meta["scalars"].items():
        idx, name = key.split(".", 1)
        per_param.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": opt_meta["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    return state


def export_ema(checkpoint: Path, output: Path, extra: Optional[Dict[str, str]] = None) -> Path:
    """Write the EMA weights of a training checkpoint as a HiFI checkpoint (config inside)."""
    from safetensors import safe_open

    with safe_open(str(checkpoint), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != "hifi-training-state":
            raise CheckpointError(f"{checkpoint}: not a HiFI training checkpoint")
        state = json.loads(meta["state"])
        weights = {k[4:]: f.get_tensor(k) for k in f.keys() if k.startswith("ema.")}
    config = state["config"]
    model = build_model(TrainConfig(preset=config["preset"], diffusion=config.get("diffusion", {})).model_config())
    model.load_state_dict(weights)
    info = {"source": "hifi_core train (EMA weights)", "training_step": str(state["step"]),
            "training_config": json.dumps(config, sort_keys=True),
            "last_validation": json.dumps(state.get("last_validation", {}), sort_keys=True)}
    info.update(extra or {})
    return save_checkpoint(model, output, metadata=info)


def initial_weights(path: Path, model: HiFIModel) -> Dict[str, torch.Tensor]:
    """Weights of a checkpoint to start a run from (`init_from`); the architecture must match.

    Only the weights are taken: the diffusion settings (e.g. residual_base) are the run's
    (preset and `diffusion` overrides), so a run can fine-tune an earlier checkpoint into a
    new parameterisation.
    """
    from ..checkpoint import load_checkpoint

    source = load_checkpoint(path)
    if source.config.unet != model.config.unet:
        raise CheckpointError(f"init_from {path}: its U-Net ({source.config.preset!r}) differs from this "
                              f"run's preset {model.config.preset!r}; start from a checkpoint of the same preset")
    return {k: v.to(next(model.parameters()).device) for k, v in source.state_dict().items()}
