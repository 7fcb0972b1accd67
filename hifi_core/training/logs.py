"""Training logs: log.jsonl, val.csv and the curves plot."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Dict



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
