"""In-training validation: held-out real triplets, HiFI with the EMA weights, the baselines."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch

from ..errors import HiFIInputError
from ..model import HiFIModel
from .config import TrainConfig
from ..triplet import Triplet, to_tensor
from .real import RealClips

# ---------------------------------------------------------------- validation

def real_clips(config: TrainConfig) -> RealClips:
    """The config's real clips (cached, split into train and validation ranges)."""
    d = config.data
    return RealClips(d.clip_paths(), spans=d.spans, scales=d.scales, split=d.split(),
                     cache_dir=Path(d.cache_dir) if d.cache_dir else None)


@dataclass
class ValTriplet:
    """A held-out triplet with the clip it comes from and its frame gap (what scores group by)."""

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


@dataclass(frozen=True)
class EvalSetting:
    """One HiFI configuration to score: cascade levels, sampling steps, averaged samples."""

    levels: int
    steps: int
    samples: int = 1

    @property
    def name(self) -> str:
        return f"hifi L{self.levels} {self.steps}step" + (f" x{self.samples}" if self.samples > 1 else "")


def score_record(item: ValTriplet, method: str, output: torch.Tensor) -> dict:
    """The one scoring of a method's output on a held-out triplet: PSNR and SSIM of the
    8-bit-rounded frames (`hifi_core.metrics`), with what `summarise` groups by."""
    from ..metrics import psnr, ssim

    t = item.triplet
    return {"clip": item.clip, "gap": item.gap, "method": method, "case": f"{t.source}@{t.tau}",
            "psnr": float(psnr(output, t.target)), "ssim": float(ssim(output, t.target))}


def hifi_output(model: HiFIModel, item: ValTriplet, setting: EvalSetting, *, patch=(256, 256),
                overlap: int = 32, seed: int = 0) -> torch.Tensor:
    """The model's in-between of a validation triplet under one setting."""
    from ..interpolate import CascadeSettings, interpolate

    t = item.triplet
    settings = CascadeSettings(levels=setting.levels, patch_size=tuple(patch), overlap=overlap,
                               steps=setting.steps, samples=setting.samples, seed=seed)
    with torch.no_grad():
        return interpolate(model, t.frame0, t.frame2, tau=t.tau, settings=settings)


def baseline_scores(val: List[ValTriplet], cache: Path) -> List[dict]:
    """Blend and DIS scores per validation triplet (computed once, cached as JSON)."""
    from ..baselines import blend_interpolate, dis_flow_interpolate

    keys = [f"{v.triplet.source}@{v.triplet.tau}" for v in val]
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("keys") == keys:
            return cached["records"]
    records = [score_record(v, name, fn(v.triplet.frame0, v.triplet.frame2, v.triplet.tau))
               for v in val for name, fn in (("blend", blend_interpolate), ("dis", dis_flow_interpolate))]
    tmp = cache.with_name(cache.name + ".tmp")
    tmp.write_text(json.dumps({"keys": keys, "records": records}, indent=1))
    os.replace(tmp, cache)
    return records


def hifi_scores(model: HiFIModel, val: List[ValTriplet], config: TrainConfig) -> List[dict]:
    """The EMA model's scores at every validation step count (methods "hifi-{steps}step")."""
    v = config.validation
    return [score_record(item, f"hifi-{steps}step",
                         hifi_output(model, item, EvalSetting(v.levels, steps), patch=v.patch, overlap=v.overlap))
            for steps in v.steps for item in val]


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
