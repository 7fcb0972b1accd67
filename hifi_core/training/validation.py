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
from .data import Triplet, to_tensor
from .real import RealClips

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
