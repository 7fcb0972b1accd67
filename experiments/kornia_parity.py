"""Can kornia replace the hand-written warp, Gaussian blur, SSIM and grey conversion? (a check)

Each hand-written version (copied here as it was before kornia, the reference) is compared
with its kornia counterpart on realistic inputs: the largest absolute difference (float32 and
float64) and the median CPU time of `--repeats` runs at each of `--threads`. kornia is
adopted where it is exact to float rounding and not slower; the table says which.

- backward warp (flow_base, ifnet): 720p frame, smooth flows up to ~20 px, whole frame and
  a 256-row band; kornia.geometry.transform.remap (pixel maps, border, align_corners=True);
- per-sample Gaussian blur (training conditions): [8, 3, 256, 256], sigma in [0, 1] per
  sample, 7x7, replicated edges; kornia.filters.gaussian_blur2d with a [B, 2] sigma;
- SSIM (metrics): 8-bit-rounded frames on a 255 scale, float64, 'valid' filtering, the
  window shrunk for tiny frames; kornia.metrics.ssim(padding='valid', eps=0) averaged;
- BT.601 grey (scenes' thumbnails): a 4K frame; kornia.color.rgb_to_grayscale.

The last table also scores the product's `hifi_core.metrics.ssim`. About 8 minutes on 2 cores,
most of it the hand-written 1080p SSIM.

    .venv/bin/python -m experiments.kornia_parity [--threads 1 2] [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List

import kornia
import torch
import torch.nn.functional as F

from hifi_core.metrics import ssim as product_ssim


# ---- the hand-written versions, as they were (references) --------------------------------

def reference_warp(image: torch.Tensor, flow: torch.Tensor, first_row: int = 0) -> torch.Tensor:
    _, _, h, w = image.shape
    band = flow.shape[-2]
    ys = torch.arange(first_row, first_row + band, dtype=flow.dtype).view(1, band, 1)
    xs = torch.arange(w, dtype=flow.dtype).view(1, 1, w)
    grid_x = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    grid_y = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([grid_x, grid_y], dim=-1).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def reference_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    radius = 3
    coords = torch.arange(-radius, radius + 1, dtype=x.dtype)
    s = sigma.clamp_min(1e-3).view(-1, 1)
    kernel = torch.exp(-coords[None] ** 2 / (2 * s ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    b, c, h, w = x.shape
    xp = F.pad(x.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="replicate")
    kx = kernel.repeat_interleave(c, 0).view(b * c, 1, 1, -1)
    ky = kernel.repeat_interleave(c, 0).view(b * c, 1, -1, 1)
    return F.conv2d(F.conv2d(xp, kx, groups=b * c), ky, groups=b * c).view(b, c, h, w)


def _quantise(x: torch.Tensor) -> torch.Tensor:
    return (x.float().clamp(0, 1) * 255.0).round().double()


def reference_ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p, t = _quantise(pred), _quantise(target)
    channels = p.shape[1]
    size = min(11, p.shape[-2], p.shape[-1])
    size -= 1 - size % 2
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-coords ** 2 / (2 * 1.5 ** 2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :])[None, None].repeat(channels, 1, 1, 1)
    blur = lambda x: F.conv2d(x, window, groups=channels)  # noqa: E731
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    mu_p, mu_t = blur(p), blur(t)
    var_p, var_t, cov = blur(p * p) - mu_p ** 2, blur(t * t) - mu_t ** 2, blur(p * t) - mu_p * mu_t
    num = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
    den = (mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2)
    return (num / den).flatten(1).mean(dim=1)


def reference_grey(frame: torch.Tensor) -> torch.Tensor:
    return frame[0] * 0.299 + frame[1] * 0.587 + frame[2] * 0.114


# ---- kornia's ----------------------------------------------------------------------------

def kornia_warp(image: torch.Tensor, flow: torch.Tensor, first_row: int = 0) -> torch.Tensor:
    _, _, _, w = image.shape
    band = flow.shape[-2]
    ys = torch.arange(first_row, first_row + band, dtype=flow.dtype).view(1, band, 1)
    xs = torch.arange(w, dtype=flow.dtype).view(1, 1, w)
    return kornia.geometry.transform.remap(image, xs + flow[:, 0], ys + flow[:, 1], mode="bilinear",
                                           padding_mode="border", align_corners=True)


def kornia_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    s = sigma.clamp_min(1e-3).to(x.dtype)
    return kornia.filters.gaussian_blur2d(x, 7, torch.stack([s, s], dim=1), border_type="replicate")


def kornia_ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p, t = _quantise(pred), _quantise(target)
    size = min(11, p.shape[-2], p.shape[-1])
    size -= 1 - size % 2
    return kornia.metrics.ssim(p, t, size, max_val=255.0, eps=0.0, padding="valid").flatten(1).mean(dim=1)


def kornia_grey(frame: torch.Tensor) -> torch.Tensor:
    return kornia.color.rgb_to_grayscale(frame)[0]


# ---- inputs and measurement ---------------------------------------------------------------

def smooth_flow(batch: int, height: int, width: int, amplitude: float, generator: torch.Generator) -> torch.Tensor:
    coarse = torch.randn(batch, 2, max(2, height // 64), max(2, width // 64), generator=generator)
    return F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False) * amplitude


def textured(batch: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """Frames [B, 3, H, W] in [0, 1]: smooth structure plus pixel noise, like camera frames."""
    base = F.interpolate(torch.rand(batch, 3, max(2, height // 16), max(2, width // 16), generator=generator),
                         size=(height, width), mode="bicubic", align_corners=False)
    return (base + 0.05 * torch.randn(batch, 3, height, width, generator=generator)).clamp(0, 1)


def median_ms(calls: List[Callable[[], torch.Tensor]], repeats: int) -> List[float]:
    """Median milliseconds of each call; the calls take turns, so load from other processes
    on the machine falls on all of them alike."""
    times: List[List[float]] = [[] for _ in calls]
    for call in calls:
        call()  # warm-up
    for _ in range(repeats):
        for call, spent in zip(calls, times):
            start = time.perf_counter()
            call()
            spent.append(time.perf_counter() - start)
    return [1000.0 * statistics.median(spent) for spent in times]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    frame = textured(1, 720, 1280, generator)
    flow = smooth_flow(1, 720, 1280, 8.0, generator)
    blur_input = textured(8, 256, 256, generator)
    sigmas = torch.rand(8, generator=generator)
    sigmas[0] = 0.0  # the identity, as make_condition draws it
    clean = textured(1, 1080, 1920, generator)
    noisy = (clean + 0.03 * torch.randn(clean.shape, generator=generator)).clamp(0, 1)
    four_k = textured(1, 2160, 3840, generator)[0]

    # (name, reference call, kornia call) per dtype; timings in float32
    cases: Dict[str, List] = {
        "warp 720p": [lambda d: reference_warp(frame.to(d), flow.to(d)),
                      lambda d: kornia_warp(frame.to(d), flow.to(d))],
        "warp 720p, rows 256-511": [lambda d: reference_warp(frame.to(d), flow[..., 256:512, :].to(d), 256),
                                    lambda d: kornia_warp(frame.to(d), flow[..., 256:512, :].to(d), 256)],
        "blur 8x256x256": [lambda d: reference_blur(blur_input.to(d), sigmas.to(d)),
                           lambda d: kornia_blur(blur_input.to(d), sigmas.to(d))],
        "SSIM 1080p": [lambda d: reference_ssim(noisy, clean), lambda d: kornia_ssim(noisy, clean)],
        "grey 4K": [lambda d: reference_grey(four_k.to(d)), lambda d: kornia_grey(four_k.to(d))],
    }
    print("| operation | max abs diff float32 | float64 | " +
          " | ".join(f"ours / kornia ms ({n} thr)" for n in args.threads) + " |")
    print("|---" * (3 + len(args.threads)) + "|")
    for name, (ours, theirs) in cases.items():
        diffs = [max_diff(ours(d), theirs(d)) for d in (torch.float32, torch.float64)]
        timings = []
        for threads in args.threads:
            torch.set_num_threads(threads)
            # a 1080p SSIM takes seconds: fewer turns
            repeats = min(args.repeats, 3) if name.startswith("SSIM") else args.repeats
            ours_ms, theirs_ms = median_ms([lambda: ours(torch.float32), lambda: theirs(torch.float32)], repeats)
            timings.append(f"{ours_ms:.1f} / {theirs_ms:.1f}")
        print(f"| {name} | {diffs[0]:.2e} | {diffs[1]:.2e} | " + " | ".join(timings) + " |", flush=True)

    # SSIM must be exact on every size, the window shrinking on tiny frames
    print("\n| SSIM frame size | hand-written | kornia | difference | product |\n|---|---|---|---|---|")
    for height, width in ((1080, 1920), (96, 128), (16, 16), (11, 11), (10, 13), (7, 5), (2, 3), (1, 1)):
        a = textured(2, height, width, generator)
        b = (a + 0.05 * torch.randn(a.shape, generator=generator)).clamp(0, 1)
        ours, theirs, product = reference_ssim(a, b), kornia_ssim(a, b), product_ssim(a, b)
        print(f"| {height}x{width} | {float(ours[0]):.9f} | {float(theirs[0]):.9f} | "
              f"{max_diff(ours, theirs):.1e} | {max_diff(ours, product):.1e} |", flush=True)


if __name__ == "__main__":
    main()
