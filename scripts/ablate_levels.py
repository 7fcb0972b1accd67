"""Which cascade level helps: validation PSNR with the network silenced at one kind of level.

A silenced level returns its residual base (v = 0 is "no correction"): the base level then
gives the flow average, an upsampling level the upsampled coarser correction on its own flow
average. Comparing the three rows with the DIS line says whether the base-level network, the
upsampling-level network, or both improve on optical flow. Same triplets and settings as the
config's in-training validation.

    .venv/bin/python scripts/ablate_levels.py --config configs/train/small-own.json \
        --checkpoint checkpoints/hifi-small.safetensors --threads 2
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hifi_core import load_model  # noqa: E402
from hifi_core.training.config import load_config  # noqa: E402
from hifi_core.training.trainer import baseline_scores, hifi_scores, real_clips, summarise, validation_set  # noqa: E402


def silence(model, which: str) -> None:
    """Make the network predict v = 0 at the base level ("base") or the upsampling levels."""
    predict_v = model.predict_v

    def silenced(z, logsnr, frame0, frame2, cond, cond_mask, tau):
        v = predict_v(z, logsnr, frame0, frame2, cond, cond_mask, tau)
        upsampling = torch.as_tensor(cond_mask, device=v.device).reshape(-1).expand(v.shape[0])
        quiet = upsampling if which == "upsampler" else ~upsampling
        return torch.where(quiet.view(-1, 1, 1, 1), torch.zeros_like(v), v)

    model.predict_v = silenced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baselines-cache", default="/tmp/ablate_val_baselines.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    val = validation_set(real_clips(config), config)
    rows = summarise(baseline_scores(val, Path(args.baselines_cache)))
    for which in ("full", "base", "upsampler"):
        model = load_model(args.checkpoint).eval()
        if which != "full":
            silence(model, which)
        label = {"full": "hifi", "base": "hifi, base level silenced", "upsampler": "hifi, upsampling silenced"}
        rows[label[which]] = next(iter(summarise(hifi_scores(model, val, config)).values()))
    groups = [k for k in rows["dis"] if not k.endswith(":ssim")]
    print("| method | " + " | ".join(groups) + " |")
    print("|---|" + "---|" * len(groups))
    for method, values in rows.items():
        print(f"| {method} | " + " | ".join(f"{values[g]:.2f}" for g in groups) + " |")
    print(json.dumps({m: v.get("all") for m, v in rows.items()}))


if __name__ == "__main__":
    main()
