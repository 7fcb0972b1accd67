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

import json
import signal
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from ..cascade import level_inputs
from ..runtime import autocast_context
from ..errors import CheckpointError
from ..model import build_model
from .condition import apply_own_predictions, make_condition
from .config import TrainConfig
from .dataset import MixedTriplets
from .synthetic import SyntheticScenes
from .distributed import _LossModule, barrier, init_distributed
from .logs import append_jsonl, plot_curves, write_val_csv
from .state import CHECKPOINT_NAME, initial_weights, load_training_state, save_training_state
from .steps import StepBatches, disagreement_weight, ema_decay, learning_rate, prefetched_batches, sample_t, step_generator
from .validation import baseline_scores, hifi_scores, real_clips, summarise, validation_set

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
