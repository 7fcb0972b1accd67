"""The trainer: single process or DDP under torchrun, resumable, validated against baselines.

Data flow per step: `StepBatches` (frames [B, 3, h, w] in [0, 1], tau [B], and a flow
model's DIS flows; made by `loader_workers` processes ahead of use when > 0) -> the condition
(`hifi_core.training.condition`: dropped, a degraded target, or the EMA model's own
base-level prediction) -> t (biased toward 1) and Gaussian noise -> `HiFIModel.loss`
(per-sample L1 or squared error on v; under autocast when `precision` is bf16/fp16) -> Adam
step with warm-up / cosine lr, gradient clipping (and fp16 loss scaling) -> EMA.

Determinism and resume: every random draw of step s on rank r comes from generators seeded
with (seed, s, r) (the data sample from (seed, sample index)), so a resumed run repeats the
uninterrupted one exactly. The checkpoint (`<out>/checkpoint.safetensors`, written to a temp
file and renamed) holds the model, the EMA and the Adam state as tensors plus a JSON
"state" metadata entry (step, config, lr groups, RNG states, elapsed time). It is written
every `checkpoint_minutes`, at every validation, at the end, and on SIGINT/SIGTERM.
No pickle and no torch.load anywhere.

Validation (rank 0, every `validation.every` steps): fixed held-out midpoint triplets from
the real clips (gap 1 and 2, optionally from the 2x-downscaled copies), HiFI with the EMA
weights through `hifi_core.interpolate` (full cascade, `validation.levels` levels, 1 and/or 2
steps), PSNR/SSIM per clip; the frame-blend and DIS baselines on the same triplets are
computed once and cached in `<out>/val_baselines.json`. Logs: `<out>/log.jsonl` (train and
val records), `<out>/val.csv`, and `<out>/curves.png`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ..cascade import level_inputs
from ..runtime import autocast_context
from ..checkpoint import save_checkpoint
from ..errors import CheckpointError, HiFIInputError
from ..flow_base import estimate_flows, warp_frames
from ..model import HiFIModel, build_model
from .condition import apply_own_predictions, make_condition
from .config import TrainConfig
from .data import Triplet, to_tensor
from .dataset import MixedTriplets, load_batch
from .real import RealClips
from .synthetic import SyntheticScenes

CHECKPOINT_NAME = "checkpoint.safetensors"


# ---------------------------------------------------------------- small pure helpers

def learning_rate(step: int, config: TrainConfig) -> float:
    """lr at a step: linear warm-up, then constant or cosine down to min_lr_fraction * lr."""
    o = config.optim
    if o.warmup_steps and step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    if o.schedule == "constant":
        return o.lr
    progress = min(1.0, (step - o.warmup_steps) / max(1, config.steps - o.warmup_steps))
    return o.lr * (o.min_lr_fraction + (1 - o.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


def ema_decay(step: int, decay: float, warmup: bool = True) -> float:
    """EMA decay with the usual warm-up, so early EMA weights are not stuck at the init
    (`warmup=False`: the full decay from step 0)."""
    return min(decay, (1.0 + step) / (10.0 + step)) if warmup else decay


def sample_t(batch: int, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """t in (0, 1]: a fraction exactly 1, the rest 1 - u**power."""
    u = torch.rand(batch, generator=generator)
    t = 1.0 - u ** config.t_sampling.power
    one = torch.rand(batch, generator=generator) < config.t_sampling.p_one
    return torch.where(one, torch.ones_like(t), t).clamp(1e-4, 1.0)


def disagreement_weight(model: HiFIModel, frame0: torch.Tensor, frame2: torch.Tensor,
                        flows: Optional[torch.Tensor], net0: torch.Tensor, net2: torch.Tensor,
                        strength: float, warped_frames: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
                        ) -> Optional[torch.Tensor]:
    """Per-pixel loss weights [B, 1, h, w], mean 1 per sample: 1 + strength * |warped frame0 -
    warped frame2| (see TrainConfig.disagreement_weight); None when strength is 0.
    `warped_frames`: the batch's context warps (`StepBatches`), when it has them."""
    if strength <= 0 or flows is None:
        return None
    if warped_frames is not None:
        warped0, warped2 = warped_frames
    else:
        warped0, warped2 = (net0, net2) if model.sees_warped_frames else warp_frames(frame0, frame2, flows)
    weight = 1.0 + strength * (warped0 - warped2).abs().mean(dim=1, keepdim=True)
    return weight / weight.mean(dim=(1, 2, 3), keepdim=True)


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0]))


def crop_for_step(step: int, config: TrainConfig) -> Tuple[int, int]:
    d = config.data
    if d.late_crop and step >= d.late_crop_from * config.steps:
        return tuple(d.late_crop)
    return tuple(d.crop)


class StepBatches(torch.utils.data.Dataset):
    """Item s: one rank's batch at step s with everything made before the model is called:
    (frame0, target, frame2 [B, 3, h, w], tau [B], DIS flows [B, 4, h, w] or None), and with
    `data.flow_context` > 1 a sixth item, both frames warped to tau on the context (then the
    flows and frames are the context's centre crop; `DataConfig.flow_context`).

    A pure function of the step (crop size included), so loader workers can make batches
    ahead and a resumed run asks for exactly the next one.
    """

    def __init__(self, dataset: MixedTriplets, config: TrainConfig, rank: int, world: int, with_flows: bool,
                 motion_base: str = "flow"):
        self.dataset, self.config, self.rank, self.world = dataset, config, rank, world
        self.with_flows = with_flows
        self.motion_base = motion_base

    def __len__(self) -> int:
        return self.config.steps

    def __getitem__(self, step: int):
        cfg = self.config
        crop = crop_for_step(step, cfg)
        context = cfg.data.flow_context if self.with_flows else 1
        drawn = tuple(c * context for c in crop)
        if tuple(self.dataset.config.crop) != drawn:
            self.dataset.config = cfg.data.mix(drawn, cfg.augment)
        f0, ft, f2, tau = load_batch(self.dataset, step, cfg.batch, self.rank, self.world)
        if not self.with_flows:
            return f0, ft, f2, tau, None
        flows = estimate_flows(f0, f2, tau, base=self.motion_base)
        if context == 1:
            return f0, ft, f2, tau, flows
        warped0, warped2 = warp_frames(f0, f2, flows)
        top, left = (drawn[0] - crop[0]) // 2, (drawn[1] - crop[1]) // 2
        centre = lambda x: x[..., top:top + crop[0], left:left + crop[1]].contiguous()  # noqa: E731
        return centre(f0), centre(ft), centre(f2), tau, centre(flows), (centre(warped0), centre(warped2))


def prefetched_batches(batches: StepBatches, first: int, end: int, workers: int):
    """Batches first..end-1 in order, made by `workers` processes ahead of use.

    The workers are forked with OpenCV at one thread (restored in this process afterwards):
    a child forked from a process whose OpenCV thread pool has run can hang in it. Torch's
    worker loop itself sets one torch thread per worker. `workers` 0: made here, on demand.
    """
    import cv2

    if workers <= 0:
        return (batches[step] for step in range(first, end))

    loader = torch.utils.data.DataLoader(batches, batch_size=None, sampler=range(first, end),
                                         num_workers=workers, prefetch_factor=2, collate_fn=_as_is)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return iter(loader)  # forks the workers
    finally:
        cv2.setNumThreads(threads)


def _as_is(batch):
    return batch


# ---------------------------------------------------------------- distributed

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, NCCL on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def barrier(d: Dist) -> None:
    if d.world > 1:
        torch.distributed.barrier()


class _LossModule(torch.nn.Module):
    """Wraps HiFIModel.loss as forward so DDP's gradient hooks see the call."""

    def __init__(self, model: HiFIModel, norm: str = "l1"):
        super().__init__()
        self.model, self.norm = model, norm

    def forward(self, *args):
        *args, pixel_weight = args
        return self.model.loss(*args, norm=self.norm, pixel_weight=pixel_weight)


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


# ---------------------------------------------------------------- validation

def real_clips(config: TrainConfig) -> RealClips:
    """The config's real clips (cached, split into train and validation ranges)."""
    d = config.data
    return RealClips(d.clip_paths(), spans=d.spans, scales=d.scales, split=d.split(),
                     cache_dir=Path(d.cache_dir) if d.cache_dir else None)


@dataclass
class ValTriplet:
    clip: str
    gap: int
    triplet: Triplet


def validation_set(real: RealClips, config: TrainConfig) -> List[ValTriplet]:
    v = config.validation
    out = []
    for w in real.validation_windows(v.gaps, v.per_clip, scale=v.scale):
        f0, ft, f2 = real.window_frames(w)
        out.append(ValTriplet(real.name(w.clip), w.target - w.first,
                              Triplet(to_tensor(f0), to_tensor(ft), to_tensor(f2), w.tau,
                                      f"{real.name(w.clip)}:{w.first}-{w.last}")))
    if not out:
        raise HiFIInputError("the validation ranges of the clips yield no triplets; lower "
                             "data.train_fraction or add clips")
    return out


def _score(method_out: torch.Tensor, target: torch.Tensor) -> Tuple[float, float]:
    from ..metrics import psnr, ssim

    return float(psnr(method_out, target)), float(ssim(method_out, target))


def baseline_scores(val: List[ValTriplet], cache: Path) -> List[dict]:
    """Blend and DIS scores per validation triplet (computed once, cached as JSON)."""
    from ..baselines import blend_interpolate, dis_flow_interpolate

    keys = [f"{v.triplet.source}@{v.triplet.tau}" for v in val]
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("keys") == keys:
            return cached["records"]
    records = []
    for v, key in zip(val, keys):
        t = v.triplet
        for name, fn in (("blend", blend_interpolate), ("dis", dis_flow_interpolate)):
            p, s = _score(fn(t.frame0, t.frame2, t.tau), t.target)
            records.append({"clip": v.clip, "gap": v.gap, "method": name, "case": key, "psnr": p, "ssim": s})
    tmp = cache.with_name(cache.name + ".tmp")
    tmp.write_text(json.dumps({"keys": keys, "records": records}, indent=1))
    os.replace(tmp, cache)
    return records


def hifi_scores(model: HiFIModel, val: List[ValTriplet], config: TrainConfig) -> List[dict]:
    from ..interpolate import CascadeSettings, interpolate

    v = config.validation
    records = []
    for steps in v.steps:
        settings = CascadeSettings(levels=v.levels, patch_size=v.patch, overlap=v.overlap,
                                   steps=steps, samples=1, seed=0)
        for item in val:
            t = item.triplet
            with torch.no_grad():
                out = interpolate(model, t.frame0, t.frame2, tau=t.tau, settings=settings)
            p, s = _score(out, t.target)
            records.append({"clip": item.clip, "gap": item.gap, "method": f"hifi-{steps}step",
                            "case": f"{t.source}@{t.tau}", "psnr": p, "ssim": s})
    return records


def summarise(records: List[dict]) -> Dict[str, Dict[str, float]]:
    """Mean PSNR/SSIM per method, per 'clip/gap' and overall ('all/gapN', 'all')."""
    groups: Dict[Tuple[str, str], List[dict]] = {}
    for r in records:
        for key in (f"{r['clip']}/gap{r['gap']}", f"all/gap{r['gap']}", "all"):
            groups.setdefault((r["method"], key), []).append(r)
    out: Dict[str, Dict[str, float]] = {}
    for (method, key), rows in sorted(groups.items()):
        psnrs = [min(r["psnr"], 100.0) for r in rows]
        out.setdefault(method, {})[key] = round(float(np.mean(psnrs)), 3)
        out[method][key + ":ssim"] = round(float(np.mean([r["ssim"] for r in rows])), 4)
    return out


# ---------------------------------------------------------------- logging

def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def write_val_csv(path: Path, step: int, summary: Dict[str, Dict[str, float]]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["step", "method", "group", "psnr", "ssim"])
        for method, values in summary.items():
            for key, value in values.items():
                if not key.endswith(":ssim"):
                    writer.writerow([step, method, key, value, values.get(key + ":ssim", "")])


# the training curve's axis label per TrainConfig.loss, of the quantity the network predicts
LOSS_LABELS = {"l1": "L1 on {}", "l2": "squared error on {}", "log_l2": "log of {}'s mean squared error"}


def loss_label(loss: str, prediction: str = "v") -> str:
    """'training loss (L1 on v)' and the like: `loss` is TrainConfig.loss, `prediction`
    DiffusionConfig.prediction."""
    return f"training loss ({LOSS_LABELS.get(loss, loss).format(prediction)})"


def plot_curves(log_path: Path, output: Path, baselines: Dict[str, Dict[str, float]], loss: str = "l1",
                prediction: str = "v") -> None:
    """Loss (smoothed) and validation PSNR over steps, with blend and DIS as flat lines.
    `loss`, `prediction`: the run's loss norm and what its network predicts, for the axis
    (log_l2 is negative, so its axis is linear)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = [], []
    for line in log_path.read_text().splitlines():
        rec = json.loads(line)
        (train if rec.get("kind") == "train" else val if rec.get("kind") == "val" else []).append(rec)
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    if train:
        ax0.plot([r["step"] for r in train], [r["loss"] for r in train], lw=0.8, color="tab:blue")
        if all(r["loss"] > 0 for r in train):
            ax0.set_yscale("log")
    ax0.set_ylabel(loss_label(loss, prediction))
    ax0.grid(alpha=0.3)
    gaps = sorted({k.split("/")[1] for r in val for m in r["summary"].values() for k in m
                   if k.startswith("all/") and ":" not in k})
    colours = {"blend": "tab:gray", "dis": "tab:orange"}
    styles = ["-", "--", ":"]
    for gi, gap in enumerate(gaps):
        key = f"all/{gap}"
        methods = sorted({m for r in val for m in r["summary"] if m.startswith("hifi")})
        for method in methods:
            pts = [(r["step"], r["summary"][method][key]) for r in val if key in r["summary"].get(method, {})]
            if pts:
                ax1.plot(*zip(*pts), styles[gi % 3], marker="o", ms=3, label=f"{method} {gap}")
        for name, colour in colours.items():
            if key in baselines.get(name, {}):
                ax1.axhline(baselines[name][key], color=colour, ls=styles[gi % 3], lw=1,
                            label=f"{name} {gap}")
    ax1.set_xlabel("step")
    ax1.set_ylabel("validation PSNR (dB)")
    ax1.grid(alpha=0.3)
    if ax1.lines:
        ax1.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    tmp = output.with_name(output.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, output)


# ---------------------------------------------------------------- the loop

class Trainer:
    """Owns the model, optimizer, EMA, data and run directory of one training run.

    Args:
        config: the run configuration.
        out: run directory (checkpoint, logs, plot).
        device: "cpu" or "cuda[:n]"; under torchrun each rank uses its LOCAL_RANK GPU.
        validate: run in-training validation (off for unit tests that only check weights).
    """

    def __init__(self, config: TrainConfig, out: Path, device: str = "cpu", validate: bool = True):
        self.config, self.out = config, Path(out)
        self.dist = init_distributed(device)
        if device.startswith("cuda") and self.dist.world > 1:
            device = f"cuda:{self.dist.local_rank}"
        self.device = torch.device(device)
        self.validate_enabled = validate
        torch.manual_seed(config.seed)
        model_config = config.model_config()
        self.model = build_model(model_config).to(self.device)
        if config.init_from:
            self.model.load_state_dict(initial_weights(Path(config.init_from), self.model))
        self.ema = build_model(model_config).to(self.device)
        self.ema.load_state_dict(self.model.state_dict())
        self.ema.requires_grad_(False).eval()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.optim.lr,
                                          betas=config.optim.betas, weight_decay=config.optim.weight_decay)
        self.loss_module = _LossModule(self.model, config.loss)
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.loss_module = DistributedDataParallel(
                self.loss_module, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        d = config.data
        cache = Path(d.cache_dir) if d.cache_dir else None
        self.real = real_clips(config) if d.real_fraction > 0 or validate else None
        self.synthetic = (SyntheticScenes(d.photo_path(), config.synthetic, cache_dir=cache)
                          if d.real_fraction < 1 else None)
        self.dataset = MixedTriplets(self.real if d.real_fraction > 0 else None, self.synthetic,
                                     d.mix(d.crop, config.augment), seed=config.seed)
        self.batches = StepBatches(self.dataset, config, self.dist.rank, self.dist.world, self.model.uses_flow,
                                    self.model.motion_base)
        # loss scaling only for fp16 (bf16 keeps float32's exponent range)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.precision == "fp16")
        self.step = 0
        self.elapsed = 0.0
        self.last_validation: dict = {}
        self.stop_requested = False
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)

    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT_NAME

    # state
    def state(self) -> dict:
        return {"step": self.step, "config": self.config.to_dict(), "elapsed_s": self.elapsed,
                "world": self.dist.world, "last_validation": self.last_validation,
                "loss_scaler": self.scaler.state_dict()}

    def save(self) -> None:
        if self.dist.main:
            save_training_state(self.checkpoint_path, self.model, self.ema, self.optimizer, self.state())

    def resume(self) -> bool:
        """Load `<out>/checkpoint.safetensors` if present; True when a run was resumed."""
        if not self.checkpoint_path.exists():
            return False
        state = load_training_state(self.checkpoint_path, self.model, self.ema, self.optimizer)
        if state["config"]["preset"] != self.config.preset:
            raise CheckpointError(f"{self.checkpoint_path}: trained preset {state['config']['preset']!r}, "
                                  f"config says {self.config.preset!r}; use another --out")
        self.step, self.elapsed = int(state["step"]), float(state.get("elapsed_s", 0.0))
        if state.get("loss_scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["loss_scaler"])
        self.last_validation = state.get("last_validation", {})
        return True

    # one step
    def train_step(self, batch=None) -> float:
        """One optimisation step on `batch` (a `StepBatches` item; default: made here)."""
        cfg = self.config
        f0, ft, f2, tau, flows, *context_warps = batch if batch is not None else self.batches[self.step]
        gen = step_generator(cfg.seed, self.step, self.dist.rank)
        # flow models: the residual base and the degraded conditions' mix use the flow average;
        # the network sees the raw or the warped frames (level_inputs, as in the cascade)
        net0, net2, warped = level_inputs(self.model, f0, f2, flows, tau, *context_warps)
        cond, mask = make_condition(ft, f0, f2, tau, cfg.condition, gen, warped)
        apply_own_predictions(self.ema, f0, f2, tau, cond, mask, cfg.condition, gen, flows, warped, *context_warps)
        weight = disagreement_weight(self.model, f0, f2, flows, net0, net2, cfg.disagreement_weight,
                                     *context_warps)
        t = sample_t(cfg.batch, cfg, gen)
        noise = torch.randn(ft.shape, generator=gen)
        dev = self.device
        lr = learning_rate(self.step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        with autocast_context(dev, cfg.precision):
            loss = self.loss_module(ft.to(dev), net0.to(dev), net2.to(dev), tau.to(dev), cond.to(dev),
                                    mask.to(dev), t.to(dev), noise.to(dev),
                                    None if warped is None else warped.to(dev),
                                    None if weight is None else weight.to(dev)).float().mean()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        decay = ema_decay(self.step, cfg.ema_decay, cfg.ema_warmup)
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.model.parameters()):
                e.lerp_(p, 1.0 - decay)
            for e, b in zip(self.ema.buffers(), self.model.buffers()):
                e.copy_(b)
        self.step += 1
        return float(loss.detach())

    # validation
    def validate(self) -> dict:
        val = validation_set(self.real, self.config)
        base = baseline_scores(val, self.out / "val_baselines.json")
        records = hifi_scores(self.ema, val, self.config)
        summary = summarise(records)
        base_summary = summarise(base)
        record = {"kind": "val", "step": self.step, "summary": summary, "records": records}
        append_jsonl(self.out / "log.jsonl", record)
        write_val_csv(self.out / "val.csv", self.step, summary)
        self.last_validation = {"step": self.step, **summary, **base_summary}
        plot_curves(self.out / "log.jsonl", self.out / "curves.png", base_summary, self.config.loss,
                    self.model.config.diffusion.prediction)
        return self.last_validation

    def _install_signal_handlers(self):
        def request_stop(signum, frame):  # finish the step, checkpoint, exit
            self.stop_requested = True

        previous = {}
        if threading_main():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, request_stop)
        return previous

    def fit(self, stop_at: Optional[int] = None, progress: bool = True) -> dict:
        """Train until `config.steps` (or `stop_at`, for tests and budgeted sessions)."""
        from tqdm import tqdm

        cfg = self.config
        end = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
        previous = self._install_signal_handlers()
        bar = tqdm(total=end, initial=self.step, disable=not (progress and self.dist.main), unit="step",
                   dynamic_ncols=True, mininterval=1.0 if sys.stderr.isatty() else 30.0)
        last_save = time.monotonic()
        losses: List[float] = []
        window_start, window_samples = time.monotonic(), 0
        ahead = None
        try:
            if self.validate_enabled and self.dist.main and self.step == 0:
                self.validate()
            barrier(self.dist)
            ahead = (prefetched_batches(self.batches, self.step, end, cfg.loader_workers)
                     if cfg.loader_workers > 0 and self.step < end else None)
            while self.step < end and not self.stop_requested:
                start = time.monotonic()
                losses.append(self.train_step(next(ahead) if ahead is not None else None))
                self.elapsed += time.monotonic() - start
                window_samples += cfg.batch * self.dist.world
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == end:
                    rate = window_samples / max(1e-6, time.monotonic() - window_start)
                    bar.set_postfix(loss=f"{np.mean(losses):.4f}", samples_s=f"{rate:.1f}",
                                    lr=f"{learning_rate(self.step - 1, cfg):.2e}")
                    if self.dist.main:
                        append_jsonl(self.out / "log.jsonl", {
                            "kind": "train", "step": self.step, "loss": float(np.mean(losses)),
                            "lr": learning_rate(self.step - 1, cfg), "samples_per_s": rate,
                            "elapsed_s": round(self.elapsed, 1), "time": time.time()})
                    losses, window_start, window_samples = [], time.monotonic(), 0
                validate_now = self.validate_enabled and self.step % cfg.validation.every == 0
                if validate_now and self.dist.main:
                    summary = self.validate()
                    bar.write(f"step {self.step} validation: " + json.dumps(
                        {m: summary[m].get("all") for m in summary if isinstance(summary[m], dict)}))
                    window_start = time.monotonic()
                # only rank 0 writes (all ranks hold the same weights), so no barrier is needed
                if validate_now or time.monotonic() - last_save > 60 * cfg.checkpoint_minutes:
                    self.save()
                    last_save = time.monotonic()
            self.save()
            barrier(self.dist)
        finally:
            ahead = None  # stops the loader workers
            bar.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.last_validation

    def close(self) -> None:
        if self.dist.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
