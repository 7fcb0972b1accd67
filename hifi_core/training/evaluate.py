"""Evaluate a trained checkpoint on the held-out validation triplets at full resolution.

Two measurements, written as JSON and Markdown (`docs/training/` keeps the default
checkpoint's):

1. **Quality**: PSNR/SSIM (uint8 RGB, see `hifi_core.metrics`) of HiFI under several cascade
   settings next to frame blending and DIS optical flow, on the *same* triplets, per clip and
   gap. These are the numbers the README quotes.
2. **Shortcut check** (the paper's): an upsampling level is fed a *wrong* condition (the
   middle frame of another clip) instead of the lower level's estimate. A model that only
   sharpens its condition copies the wrong image; a model that uses its input frames puts
   their details back. We measure the correlation of the output's high frequencies with the
   true frame's and with the wrong condition's, and the same with the correct condition.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..baselines import blend_interpolate, dis_flow_interpolate
from ..cascade import pad_to_plan, resize_to_level, run_cascade
from ..flow_base import flow_average
from ..interpolate import CascadeSettings, level_context, plan_for
from ..metrics import psnr
from ..model import HiFIModel
from ..progress import ProgressCounter
from ..motion_base import ifnet_interpolate, motion_net
from .validation import EvalSetting, ValTriplet, hifi_output, score_record, summarise


def _triplets(val: Sequence[ValTriplet], desc: str, progress: bool):
    """The triplets, with a tqdm bar when asked: full-resolution scoring takes minutes."""
    from tqdm import tqdm

    return tqdm(val, desc=desc, unit="triplet", disable=not progress)


def score_methods(model: HiFIModel, val: Sequence[ValTriplet], settings: Sequence[EvalSetting], *,
                  patch=(256, 256), overlap: int = 32, seed: int = 0, progress: bool = False) -> List[dict]:
    """Blend, DIS, RIFE's own midpoint (when its weights are set up), the model's residual base
    alone (``base <name>``: the network silenced, as the cascade returns it with v = 0) and
    every HiFI setting on every triplet (one record per method and triplet)."""
    rife = motion_net("cpu")
    records = []
    for item in _triplets(val, "scoring", progress):
        t = item.triplet
        records.append(score_record(item, "blend", blend_interpolate(t.frame0, t.frame2, t.tau)))
        records.append(score_record(item, "dis", dis_flow_interpolate(t.frame0, t.frame2, t.tau)))
        f0, f2 = t.frame0[None], t.frame2[None]  # triplet frames are [3, h, w]
        if rife is not None and t.tau == 0.5:  # its weights make the midpoint only
            records.append(score_record(item, "rife", ifnet_interpolate(rife, f0, f2).clamp(0, 1)[0]))
        if model.uses_flow:
            base = flow_average(f0, f2, t.tau, base=model.motion_base).clamp(0, 1)[0]
            records.append(score_record(item, f"base {model.motion_base}", base))
        for setting in settings:
            out = hifi_output(model, item, setting, patch=patch, overlap=overlap, seed=seed)
            records.append(score_record(item, setting.name, out))
    return records


def _high_pass(image: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Image minus its Gaussian blur: the detail a 2x-upsampling level has to supply."""
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-x ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(image)
    c = image.shape[1]
    blurred = F.conv2d(F.pad(image, (radius,) * 4, mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1),
                       groups=c)
    blurred = F.conv2d(blurred, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return image - blurred


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def condition_check(model: HiFIModel, val: Sequence[ValTriplet], *, patch=(256, 256), overlap: int = 32,
                    steps: int = 2, seed: int = 0, progress: bool = False) -> List[dict]:
    """Run the finest level of a 2-level cascade with the correct and with a wrong condition.

    The correct condition is the true middle frame at half size (the ideal lower level); the
    wrong one is the middle frame of a triplet from another clip, resized. Returns one record
    per triplet with PSNRs and high-frequency correlations (see the module docstring).
    """
    settings = CascadeSettings(levels=2, patch_size=tuple(patch), overlap=overlap, steps=steps, seed=seed)
    device = next(model.parameters()).device
    records = []
    for i, item in enumerate(_triplets(val, "shortcut check", progress)):
        others = [v for v in val if v.clip != item.clip] or [v for v in val if v is not item]
        if not others:
            break
        other = others[i % len(others)]
        t = item.triplet
        h, w = t.target.shape[-2:]
        wrong_full = F.interpolate(other.triplet.target[None], size=(h, w), mode="bilinear",
                                   align_corners=False, antialias=True)[0]
        plan = plan_for(model, h, w, settings)
        row = {"clip": item.clip, "gap": item.gap, "case": f"{t.source}@{t.tau}",
               "wrong_from": other.triplet.source}
        target_hp = _high_pass(t.target[None])
        for label, full in (("correct", t.target), ("wrong", wrong_full)):
            low = resize_to_level(pad_to_plan(full[None], plan), plan, 0)
            ctx = level_context(model, plan, settings, device, ProgressCounter(1, None), None)
            model.eval()
            with torch.no_grad():
                out, _ = run_cascade(model, t.frame0[None].to(device), t.frame2[None].to(device), t.tau,
                                     plan, ctx, start_level=1, start_estimate=low.to(device))
            out = out.cpu()[0].clamp(0, 1)
            condition = F.interpolate(low, scale_factor=2.0, mode="bilinear", align_corners=False)
            condition = condition[..., :h, :w][0]
            out_hp = _high_pass(out[None])
            row[label] = {
                "psnr_output_vs_truth": float(psnr(out, t.target)),
                "psnr_condition_vs_truth": float(psnr(condition, t.target)),
                "detail_corr_truth": _correlation(out_hp, target_hp),
                "detail_corr_condition": _correlation(out_hp, _high_pass(full[None])),
            }
        records.append(row)
    return records


def summarise_condition_check(records: Sequence[dict]) -> Dict[str, Dict[str, float]]:
    out: Dict[str, Dict[str, float]] = {}
    for label in ("correct", "wrong"):
        keys = records[0][label].keys() if records else []
        out[label] = {k: round(float(np.mean([r[label][k] for r in records])), 4) for k in keys}
    return out


def markdown_report(records: Sequence[dict], check: Sequence[dict], *, title: str, command: str,
                    machine: str) -> str:
    """The quality table (per clip/gap and overall) and the shortcut check, as Markdown."""
    summary = summarise(records)
    methods = ["blend", "dis"] + sorted(m for m in summary if m not in ("blend", "dis"))
    groups = sorted({k for m in summary.values() for k in m if ":" not in k},
                    key=lambda k: (k.startswith("all"), k))
    counts = {}
    for r in records:
        if r["method"] == "blend":
            for key in (f"{r['clip']}/gap{r['gap']}", f"all/gap{r['gap']}", "all"):
                counts[key] = counts.get(key, 0) + 1
    lines = [f"# {title}", "", f"Command: `{command}`  ", f"Machine: {machine}", "",
             "PSNR in dB (uint8 RGB, full resolution); SSIM in brackets. "
             "`hifi Lx Ns` = cascade with x levels, N DDIM steps per level, 1 sample.", "",
             "| clip / gap | triplets | " + " | ".join(methods) + " |",
             "|---|---|" + "---|" * len(methods)]
    for g in groups:
        cells = [f"{summary[m][g]:.2f} ({summary[m][g + ':ssim']:.3f})" if g in summary.get(m, {}) else "–"
                 for m in methods]
        lines.append(f"| {g} | {counts.get(g, 0)} | " + " | ".join(cells) + " |")
    if check:
        c = summarise_condition_check(check)
        lines += ["", "## Shortcut check (finest level of a 2-level cascade, 2 steps)", "",
                  "The level gets the true middle frame at half size (correct) or the middle frame "
                  "of another clip (wrong) as its condition. Detail correlation = correlation of the "
                  "output's high frequencies (image − Gaussian blur σ 1.5) with the true frame's / "
                  "the condition's.", "",
                  "| condition | PSNR condition→truth | PSNR output→truth | detail corr. with truth "
                  "| detail corr. with condition |", "|---|---|---|---|---|"]
        for label in ("correct", "wrong"):
            s = c[label]
            lines.append(f"| {label} | {s['psnr_condition_vs_truth']:.2f} | {s['psnr_output_vs_truth']:.2f} "
                         f"| {s['detail_corr_truth']:.3f} | {s['detail_corr_condition']:.3f} |")
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, records: Sequence[dict], check: Sequence[dict], **kwargs) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(json.dumps(
        {"summary": summarise(records), "records": list(records),
         "condition_check": {"summary": summarise_condition_check(check) if check else {},
                             "records": list(check)}}, indent=1))
    path = out_dir / "evaluation.md"
    path.write_text(markdown_report(records, check, **kwargs))
    return path
