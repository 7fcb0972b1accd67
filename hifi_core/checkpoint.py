"""Checkpoints: safetensors only, self-describing through their metadata.

File format: a safetensors file whose tensors are `HiFIModel.state_dict()` and whose metadata
holds ``format = "hifi"``, ``format_version``, and ``model_config`` (the `ModelConfig` as
JSON), plus free-form provenance keys. Pickle-based files are refused, never loaded.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch import nn

from .config import ModelConfig, PRESETS
from .errors import CheckpointError, HiFIInputError
from .model import HiFIModel, build_model

FORMAT = "hifi"
FORMAT_VERSION = "1"
PathLike = Union[str, os.PathLike]
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CHECKPOINT_DIR = PACKAGE_ROOT / "checkpoints"
DEFAULT_CHECKPOINT_NAME = "hifi-lean.safetensors"


def save_checkpoint(model: HiFIModel, path: PathLike,
                    metadata: Optional[Dict[str, str]] = None) -> Path:
    """Write the model's weights and config to a safetensors file (atomically).

    Args:
        model (HiFIModel): the model; its `config` goes into the metadata as JSON.
        path (str or PathLike): the file to write (folders are made); replaced atomically.
        metadata (dict or None): extra string metadata (training step, source, ...).

    Returns:
        The path written.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {str(k): str(v) for k, v in (metadata or {}).items()}
    info.update(format=FORMAT, format_version=FORMAT_VERSION, model_config=model.config.to_json())
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=info)
    os.replace(tmp, path)
    return path


def _check_safetensors_header(path: Path) -> None:
    """Refuse non-safetensors files with a specific reason before parsing them."""
    with open(path, "rb") as handle:
        head = handle.read(9)
        if len(head) < 8:
            raise CheckpointError(f"{path}: file is empty or truncated ({len(head)} bytes); "
                                  "re-download or re-export the checkpoint")
        # A safetensors header length can itself start with the bytes "PK" (19,280 bytes is
        # 0x4B50), so only a file without the JSON header at byte 8 counts as a pickle/zip.
        looks_like_pickle = head[:4] == b"PK\x03\x04" or head[:1] == b"\x80"
        if looks_like_pickle and head[8:9] != b"{":
            raise CheckpointError(
                f"{path}: this is a PyTorch pickle/zip file, not safetensors. HiFI never loads "
                "pickles (they can run arbitrary code); convert it to .safetensors first")
        (header_len,) = struct.unpack("<Q", head[:8])
        size = path.stat().st_size
        if header_len <= 0 or header_len > size - 8:
            raise CheckpointError(
                f"{path}: not a valid safetensors file (header length {header_len} does not fit "
                f"in a {size}-byte file); the file is corrupt or of another format")
        if head[8:9] != b"{":
            raise CheckpointError(f"{path}: not a valid safetensors file (no JSON header)")


def read_checkpoint_config(path: PathLike) -> ModelConfig:
    """The model config stored in a checkpoint's metadata (reads only the header).

    Args:
        path (str or PathLike): a HiFI safetensors checkpoint.

    Raises:
        CheckpointError: missing, not safetensors (a pickle is refused unread), not a HiFI
            checkpoint, or an invalid stored config.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    _check_safetensors_header(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as error:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: cannot read safetensors header ({error}); the file is corrupt") from error
    if metadata.get("format") != FORMAT or "model_config" not in metadata:
        raise CheckpointError(
            f"{path}: not a HiFI checkpoint (its metadata has no HiFI model config); it is "
            "probably a checkpoint of another model. Use a file saved by hifi_core.save_checkpoint")
    try:
        return ModelConfig.from_json(metadata["model_config"])
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: the stored model config is invalid ({error})") from error


def load_checkpoint(path: PathLike, device: Union[str, torch.device] = "cpu",
                    operations: ModuleType = nn) -> HiFIModel:
    """Load a HiFI checkpoint into a new model on `device` (eval mode).

    Args:
        path (str or PathLike): a HiFI safetensors checkpoint (never a pickle).
        device (str or torch.device, default "cpu"): "cpu", "cuda", "cuda:N".
        operations (module, default torch.nn): the layer classes (e.g. ComfyUI's `comfy.ops`),
            as in `HiFIModel`.

    Raises:
        CheckpointError: a corrupt file or weights that do not match the stored config.
    """
    from safetensors.torch import load_file

    from .runtime import check_device

    device = check_device(device)  # a bad device is named as such, not as a corrupt file
    path = Path(path)
    config = read_checkpoint_config(path)
    try:
        state = load_file(str(path), device=str(device))
    except Exception as error:
        raise CheckpointError(f"{path}: cannot read the tensors ({error}); the file is corrupt "
                              "or truncated") from error
    model = HiFIModel(config, operations=operations)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        detail = "; ".join(f"{label}: {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''}"
                           for label, keys in (("missing", missing), ("unexpected", unexpected),
                                               ("wrong shape", wrong_shape)) if keys)
        raise CheckpointError(
            f"{path}: the weights do not match the architecture in its own metadata ({detail}); "
            "the file was edited or saved by an incompatible version")
    non_finite = next((k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if non_finite is not None:
        raise CheckpointError(f"{path}: tensor {non_finite} holds NaN or inf values; the file is damaged "
                              "or was saved from a diverged run. Re-download or re-export it")
    model.load_state_dict(state)
    return model.to(device).eval()


def find_checkpoints(directories: Sequence[PathLike] = ()) -> List[Path]:
    """*.safetensors files in the given directories and the bundled checkpoints folder."""
    found: List[Path] = []
    for directory in [*directories, BUNDLED_CHECKPOINT_DIR]:
        directory = Path(directory)
        if directory.is_dir():
            found.extend(sorted(p for p in directory.glob("*.safetensors") if p not in found))
    return found


def default_checkpoint_path() -> Optional[Path]:
    """The bundled trained checkpoint, or None when this copy of the project has none."""
    path = BUNDLED_CHECKPOINT_DIR / DEFAULT_CHECKPOINT_NAME
    return path if path.is_file() else None


def load_model(name_or_path: PathLike, device: Union[str, torch.device] = "cpu") -> HiFIModel:
    """A model by name: a checkpoint path, a bundled checkpoint's file name (e.g.
    "hifi-lean.safetensors"), or a preset name ("tiny", "small", "lean", "base", "paper";
    untrained weights).

    Args:
        name_or_path (str or PathLike): one of the above.
        device (str or torch.device, default "cpu"): "cpu", "cuda", "cuda:N".

    Raises:
        HiFIInputError: an unknown name (the message lists the presets and bundled files).
        CheckpointError: a bad checkpoint file.
    """
    from .runtime import check_device

    device = check_device(device)
    text = str(name_or_path)
    if text in PRESETS:
        return build_model(text).to(device).eval()
    path = Path(text)
    if not path.is_file() and (BUNDLED_CHECKPOINT_DIR / text).is_file():
        path = BUNDLED_CHECKPOINT_DIR / text
    if not path.exists():
        known = [p.name for p in find_checkpoints()]
        raise HiFIInputError(
            f"unknown model {text!r}: not a checkpoint file and not a preset. Presets: "
            f"{', '.join(PRESETS)}; bundled checkpoints: {', '.join(known) or 'none'}")
    return load_checkpoint(path, device)


def checkpoint_metadata(path: PathLike) -> Dict[str, str]:
    """All metadata strings of a checkpoint (provenance, config)."""
    from safetensors import safe_open

    read_checkpoint_config(path)
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def describe_metadata(path: PathLike) -> str:
    meta = checkpoint_metadata(path)
    config = json.loads(meta.get("model_config", "{}"))
    # Long JSON entries (training config, validation tables) are named, not printed.
    return f"{Path(path).name}: preset {config.get('preset', '?')}, " + ", ".join(
        f"{k}={v}" if len(v) <= 80 else f"{k}=<{len(v)} chars>"
        for k, v in sorted(meta.items()) if k not in ("model_config", "format", "format_version"))
