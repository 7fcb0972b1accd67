"""Research: a matrix of bad or hostile inputs across the entry points, with the outcome of each.

Runs the CLI (`interpolate`, `retime`, `info`, as subprocesses) and the Python API on inputs a
user can get wrong, and classifies every case: clean error (exit 2 / HiFIInputError or
CheckpointError with a one-line message), traceback (any other exception), data loss (an input
file changed) or accepted (exit 0: printed for a human to judge). Prints the counts and every
case that is not a clean error.

    .venv/bin/python scripts/bad_input_matrix.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from hifi_core import (CascadeSettings, CheckpointError, HiFIInputError, build_model, interpolate,  # noqa: E402
                       load_checkpoint, load_model, retime_sequence, save_checkpoint)
from hifi_core.image_io import write_image  # noqa: E402


def digest(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def make_inputs(root: Path) -> dict:
    from media import write_clip
    import cv2
    g = torch.Generator().manual_seed(0)
    files = {}
    for name in ("a.png", "b.png"):
        files[name] = write_image(root / name, torch.rand(3, 40, 56, generator=g))
    files["big.png"] = write_image(root / "big.png", torch.rand(3, 48, 64, generator=g))
    cv2.imwrite(str(root / "grey.png"), np.zeros((40, 56), np.uint8))
    cv2.imwrite(str(root / "rgba.png"), np.zeros((40, 56, 4), np.uint8))
    cv2.imwrite(str(root / "tiny.png"), np.zeros((1, 1, 3), np.uint8))
    (root / "corrupt.png").write_bytes(files["a.png"].read_bytes()[:60])
    (root / "text.png").write_text("not an image")
    files["clip.mkv"] = write_clip(root / "clip.mkv", num_frames=8, width=64, height=48)
    (root / "corrupt.mkv").write_bytes(files["clip.mkv"].read_bytes()[:300])
    (root / "text.mp4").write_text("not a video")
    model = build_model("tiny")
    save_checkpoint(model, root / "tiny.safetensors")
    torch.save({"x": 1}, root / "pickle.safetensors")
    (root / "truncated.safetensors").write_bytes((root / "tiny.safetensors").read_bytes()[:500])
    from safetensors.torch import save_file
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state[sorted(state)[2]].fill_(float("nan"))
    save_file(state, str(root / "nan.safetensors"), metadata={"format": "hifi", "format_version": "1",
                                                              "model_config": model.config.to_json()})
    save_file({"x": torch.zeros(1)}, str(root / "badcfg.safetensors"),
              metadata={"format": "hifi", "format_version": "1", "model_config": '{"unet": {"norm_groups": 0}}'})
    os.symlink(root / "a.png", root / "link.png")
    os.link(root / "a.png", root / "hard.png")
    os.link(root / "clip.mkv", root / "hardclip.mkv")
    (root / "out").mkdir()
    return files


def cli_cases(r: Path) -> list:
    a, b, out = str(r / "a.png"), str(r / "b.png"), str(r / "out" / "mid.png")
    fast = ["--preset", "tiny", "--levels", "1", "--patch", "16x16", "--overlap", "4"]
    interp = lambda *extra, o=out, f0=a, f2=b: ["interpolate", f0, f2, "-o", o, *extra]  # noqa: E731
    clip, vout = str(r / "clip.mkv"), str(r / "out" / "o.mkv")
    ret = lambda *extra, i=clip, o=vout: ["retime", i, o, "--method", "blend", "--codec", "ffv1", *extra]  # noqa: E731
    cases = [
        interp(*fast, f0=str(r / "missing.png")), interp(*fast, o=a), interp(*fast, o=str(r / "link.png")),
        interp(*fast, o=str(r / "hard.png")), interp(*fast, f2=str(r / "big.png")),
        interp(*fast, f0=str(r / "grey.png")), interp(*fast, f0=str(r / "rgba.png")),
        interp(*fast, f0=str(r / "tiny.png"), f2=str(r / "tiny.png")), interp(*fast, f0=str(r / "corrupt.png")),
        interp(*fast, f0=str(r / "text.png")), interp(*fast, o=str(r / "out" / "mid.bmp")),
        interp(*fast, o=str(r / "nofolder" / "mid.png")), interp(*fast, o=str(r / "out")),
        *[interp(*fast, "--tau", t) for t in ("0", "1", "nan", "-1", "abc", "inf")],
        *[interp(*fast, flag, v) for flag, v in (("--steps", "0"), ("--steps", "-1"), ("--samples", "0"),
                                                ("--levels", "0"), ("--levels", "99"), ("--eta", "nan"),
                                                ("--eta", "1e6"), ("--eta", "-1"), ("--seed", "-5"),
                                                ("--device", "banana"), ("--device", "cuda"),
                                                ("--precision", "fp8"), ("--patch-batch", "0"),
                                                ("--memory-budget-mb", "-1"), ("--memory-budget-mb", "nan"),
                                                ("--overlap", "-1"), ("--overlap", "9999"))],
        interp("--patch", "0x0"), interp("--patch", "abc"), interp("--preset", "tiny", "--patch", "7x7"),
        interp("--preset", "tiny", "--bit-depth", "16", o=str(r / "out" / "m.jpg")),
        *[interp("--checkpoint", str(r / name)) for name in ("missing.safetensors", "pickle.safetensors",
                                                             "truncated.safetensors", "nan.safetensors",
                                                             "badcfg.safetensors")],
        interp("--checkpoint", "not-a-preset-or-file"),
        ret("--multiplier", "2", i=str(r / "missing.mkv")), ret("--multiplier", "2", o=clip),
        ret("--multiplier", "2", o=str(r / "hardclip.mkv")),
        *[ret("--fps", v) for v in ("0", "nan", "-5", "abc", "inf", "1e-9")],
        *[ret("--multiplier", v) for v in ("0", "-2")], ret("--slowmo", "0"),
        ret("--multiplier", "2", "--codec", "foo"), ret("--multiplier", "2", "--crf", "-5"),
        ret("--multiplier", "2", "--crf", "999", "--codec", "h264", o=str(r / "out" / "o.mp4")),
        ret("--multiplier", "2", "--bit-depth", "7"), ret("--multiplier", "2", "--pix-fmt", "foo"),
        ret("--multiplier", "2", "--segment-seconds", "0"), ret("--multiplier", "2", "--segment-seconds", "nan"),
        ret("--multiplier", "2", "--max-frames", "1"), ret("--multiplier", "2", "--max-frames", "0"),
        ret("--multiplier", "2", "--scene-threshold", "5"), ret("--multiplier", "2", "--scene-threshold", "nan"),
        ret("--multiplier", "2", "--dedup", "--dedup-threshold", "-1"),
        ret("--multiplier", "2", i=str(r / "text.mp4")), ret("--multiplier", "2", i=str(r / "corrupt.mkv")),
        ret("--multiplier", "2", o=str(r / "out" / "o.txt")), ret("--multiplier", "2", o=str(r / "nofolder" / "o.mkv")),
        ret("--multiplier", "2", "--codec", "h264", "--pix-fmt", "yuv420p10le", "--bit-depth", "8",
            o=str(r / "out" / "o10.mkv")),
        ["info", "--checkpoint-dir", str(r / "missing-dir")], ["info", "--checkpoint-dir", str(r)],
        ["info", "--flops-patch", "0"], ["info", "--flops-patch", "-5"],
    ]
    return cases


def api_cases(r: Path) -> list:
    m = build_model("tiny")
    s = CascadeSettings(levels=1, patch_size=(32, 32), overlap=8)
    f = torch.rand(3, 32, 32)
    clip = torch.rand(3, 3, 32, 32)
    return [
        lambda: interpolate(m, f, f, float("nan"), settings=s), lambda: interpolate(m, f, f, "0.5", settings=s),
        lambda: interpolate(m, f, f, [], settings=s), lambda: interpolate(m, f, f[:, :16], 0.5, settings=s),
        lambda: interpolate(m, f[None, :1], f[None, :1], 0.5, settings=s),
        lambda: interpolate(m, f * 255, f * 255, 0.5, settings=s), lambda: interpolate(m, f.numpy(), f, 0.5),
        lambda: interpolate(m, torch.rand(0, 3, 32, 32), torch.rand(0, 3, 32, 32), 0.5, settings=s),
        lambda: interpolate(m, f.long(), f.long(), 0.5, settings=s),
        lambda: interpolate(m, torch.full_like(f, float("nan")), f, 0.5, settings=s),
        lambda: retime_sequence(m, clip, source_fps=24, target_fps=1e-9, settings=s),
        lambda: retime_sequence(m, clip, source_fps=float("nan"), target_fps=30, settings=s),
        lambda: retime_sequence(m, clip, multiplier=float("inf"), settings=s),
        lambda: retime_sequence(m, clip, multiplier=0, settings=s),
        lambda: retime_sequence(m, clip[:1], multiplier=2, settings=s),
        lambda: retime_sequence(m, clip, multiplier=2, target_fps=30, settings=s),
        lambda: retime_sequence(m, clip, target_fps=30, settings=s),
        lambda: load_model("tiny", device="banana"), lambda: load_model("nonexistent-model"),
        lambda: load_checkpoint(r / "nan.safetensors"), lambda: load_checkpoint(r / "badcfg.safetensors"),
        lambda: load_checkpoint(r / "pickle.safetensors"), lambda: load_checkpoint(r / "truncated.safetensors"),
        lambda: CascadeSettings(eta=float("nan")), lambda: CascadeSettings(steps=0),
        lambda: CascadeSettings(patch_size=(0, 0)), lambda: CascadeSettings(device="cuda:7"),
        lambda: CascadeSettings(precision="fp8"), lambda: CascadeSettings(overlap=-1),
        lambda: CascadeSettings(levels="many"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="hifi-bad-"))
    root.mkdir(parents=True, exist_ok=True)
    make_inputs(root)
    counts = {"clean": 0, "traceback": 0, "data loss": 0, "accepted": 0}
    notes = []
    for argv in cli_cases(root):
        before = digest(root)
        run = subprocess.run([sys.executable, "-m", "hifi_core", *argv], capture_output=True, text=True, cwd=ROOT)
        after = {p: h for p, h in digest(root).items() if p in before}
        if any(before[p] != after.get(p) for p in before if (root / "out") not in p.parents):
            kind = "data loss"
        elif "Traceback" in run.stderr:
            kind = "traceback"
        elif run.returncode == 0:
            kind = "accepted"
        else:  # ours: "error: ..."; argparse's: "prog: error: ...", both exit 2
            kind = "clean" if run.returncode == 2 and "error:" in run.stderr.strip().splitlines()[-1] else "traceback"
        counts[kind] += 1
        if kind != "clean":
            notes.append(f"{kind}: {' '.join(argv[:1] + argv[3:] if len(argv) > 3 else argv)} -> "
                         f"{(run.stderr.strip().splitlines() or [''])[-1][:160]}")
    for n, case in enumerate(api_cases(root)):
        try:
            case()
            counts["accepted"] += 1
            notes.append(f"accepted: api case {n}")
        except (HiFIInputError, CheckpointError):
            counts["clean"] += 1
        except Exception as error:  # noqa: BLE001 - the point is to count these
            counts["traceback"] += 1
            notes.append(f"traceback: api case {n}: {type(error).__name__}: {error}")
    print(f"{sum(counts.values())} cases: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print("\n".join(notes))


if __name__ == "__main__":
    main()
