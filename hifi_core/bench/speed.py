"""Speed benchmark: time per interpolated frame, U-Net throughput, patch overlap, peers.

For each frame size: HiFI at the given ("default") cascade settings and at a fast setting
(1 step, 1 sample), and every available peer, each timed on one frame pair (one warm-up
on the smallest size first, so one-off costs such as kernel selection are not counted).
Frames are a real photo pair when photos are given (a 2 % pan), else random.

Throughput: the U-Net's FLOPs for one patch batch are counted with `FlopCounterMode`
(`flops.unet_flops`) and its forward timed; achieved GFLOP/s is stated next to the machine's
reference (a large fp32 matmul, timed in the same run) as a percentage. The end-to-end
rate (all patch FLOPs of a frame / the frame's time) is given too.

Patch overlap: sum of patch areas / level area - 1, for the finest level and over all levels.

Retime: a short clip at the smallest size retimed x2 with and without the pipeline, wall time
against the interpolator's own (`retime_speed`).

Runs predicted (from FLOPs or, for peers, from the previous size) to exceed
`max_run_seconds` are skipped with the prediction. `plot` draws time and peak memory
(from the memory benchmark, when it ran) against megapixels.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from ..errors import HiFIInputError
from . import report
from .peers import Method
from .retime_speed import markdown as retime_markdown, panning_frames, time_retime
from .sizes import Resolution


# The throughput probe times one batch of the cascade's size, capped: a 64-patch forward
# would take minutes on a CPU and tells nothing that 8 patches do not.
MAX_THROUGHPUT_BATCH = 8


@dataclass(frozen=True)
class SpeedOptions:
    """Knobs of the speed run.

    Attributes:
        max_run_seconds: skip a run predicted to take longer than this.
        matmul_size: side of the reference matmul.
        fast_steps, fast_samples: the "fast" HiFI setting.
        retime_frames: frames of the clip retimed at the smallest size (`retime_speed`); 0 skips.
    """

    max_run_seconds: float = 300.0
    matmul_size: int = 2048
    fast_steps: int = 1
    fast_samples: int = 1
    retime_frames: int = 6

    def __post_init__(self) -> None:
        if self.max_run_seconds <= 0 or self.matmul_size < 16:
            raise HiFIInputError(f"max_run_seconds={self.max_run_seconds} must be > 0 and "
                                 f"matmul_size={self.matmul_size} >= 16")
        if self.retime_frames == 1 or self.retime_frames < 0:
            raise HiFIInputError(f"retime_frames={self.retime_frames}: a retime needs at least 2 frames (0 skips it)")


def _frame_pair(res: Resolution, photos: Sequence[Path]) -> tuple:
    from .peers import from_uint8_hwc

    if photos:
        return tuple(from_uint8_hwc(frame) for frame in panning_frames(res, 2, photos))
    generator = torch.Generator().manual_seed(0)
    f0 = torch.rand(1, 3, res.height, res.width, generator=generator)
    return f0, torch.roll(f0, max(1, res.width // 50), dims=3)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


def _timed(fn, *args, device: str = "cpu") -> float:
    _sync(device)
    start = time.perf_counter()
    fn(*args)
    _sync(device)
    return time.perf_counter() - start


def patch_throughput(model, settings, reference: Dict[str, float]) -> Dict[str, Any]:
    """FLOPs, time and achieved GFLOP/s of one patch-batch forward at the settings' patch size."""
    from ..memory import plan_patch_batch
    from .flops import time_forward, unet_flops

    ph, pw = settings.patch_size
    device = next(model.parameters()).device
    # the throughput of a fuller batch than a CPU run uses (its cap holds memory, not speed)
    batch = settings.patch_batch or plan_patch_batch(model.config.unet, ph, pw, budget_bytes=settings.memory_budget,
                                                     device=device, max_batch=MAX_THROUGHPUT_BATCH)
    batch = min(batch, MAX_THROUGHPUT_BATCH)
    flops, by_op = unet_flops(model, batch, ph, pw)
    seconds = time_forward(model, batch, ph, pw)
    gflops = flops / seconds / 1e9
    return {"patch": [ph, pw], "batch": batch, "flops": flops, "flops_by_op": by_op,
            "seconds": seconds, "gflops": gflops,
            "percent_of_reference": 100.0 * gflops / reference["gflops"]}


def run_speed(peers: Sequence[Method], model, base_settings,
              resolutions: Sequence[Resolution], out_dir: Path, *, photos: Sequence[Path] = (),
              options: SpeedOptions = SpeedOptions(), memory: Optional[Dict[str, Any]] = None,
              model_name: str = "", log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Time HiFI (default and fast settings) and the peers at every size; write speed.json/md/png.

    Args:
        peers: the peer methods to time next to HiFI.
        model: the HiFI model; base_settings: its default `CascadeSettings` ("default");
            the fast setting replaces steps and samples by `fast_steps` / `fast_samples`.
        memory: the memory benchmark's result, for the plot.
        model_name: label of the model in the report (e.g. "tiny-untrained").
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    device = str(next(model.parameters()).device)
    reference, throughput = _measure_rates(model, base_settings, device, options, log)
    settings_by_name = {
        "default": base_settings,
        "fast": replace(base_settings, steps=options.fast_steps, samples=options.fast_samples),
    }
    timer = _SizeTimer(model, peers, settings_by_name, options, throughput["gflops"], device, log)
    rows = _time_every_size(timer, resolutions, photos, log)
    retime_rows = []
    if options.retime_frames and resolutions:
        smallest = min(resolutions, key=lambda r: r.height * r.width)
        retime_rows = time_retime(model, base_settings, smallest, options.retime_frames, photos=photos, log=log)
    data = {"device": device, "reference": reference, "unet_patch": throughput,
            "settings": {n: _settings_summary(s) for n, s in settings_by_name.items()},
            "model": model_name or getattr(model.config, "preset", "custom"),
            "rows": rows, "retime": retime_rows,
            "seconds": time.perf_counter() - started}
    return _write_reports(out_dir, data, memory)


def _measure_rates(model, base_settings, device: str, options: SpeedOptions,
                   log: Callable[[str], None]) -> tuple:
    """The reference matmul rate and the U-Net's patch throughput, both logged."""
    from .flops import reference_gflops

    reference = reference_gflops(device, options.matmul_size)
    log(f"[speed] reference fp32 matmul {options.matmul_size}^3: {reference['gflops']:.1f} GFLOP/s")
    throughput = patch_throughput(model, base_settings, reference)
    log(f"[speed] U-Net patch {throughput['patch']} x{throughput['batch']}: "
        f"{throughput['flops'] / 1e9:.2f} GFLOP in {throughput['seconds']:.3f} s = "
        f"{throughput['gflops']:.1f} GFLOP/s ({throughput['percent_of_reference']:.0f}% of reference)")
    return reference, throughput


def _time_every_size(timer: "_SizeTimer", resolutions: Sequence[Resolution], photos: Sequence[Path],
                     log: Callable[[str], None]) -> List[Dict[str, Any]]:
    """Every size's HiFI and peer rows, in order, after one untimed warm-up on the first size."""
    rows: List[Dict[str, Any]] = []
    for index, res in enumerate(resolutions):
        frame0, frame2 = _frame_pair(res, photos)
        if index == 0:
            timer.warm_up(frame0, frame2)
        rows.extend(timer.hifi_rows(res, frame0, frame2))
        rows.extend(timer.peer_rows(res, frame0, frame2))
        ratio = ratio_to_rife(rows, res.name)
        if ratio is not None:
            log(f"[speed] {res.name} hifi-default / rife: {ratio:.2f}x (target <= 1.5x)")
    return rows


def _over_limit_note(predicted: float, options: SpeedOptions) -> str:
    """The note of a run skipped because its predicted time passes the limit."""
    return f"predicted {predicted:.0f} s > {options.max_run_seconds:.0f} s limit"


class _SizeTimer:
    """Times HiFI's settings and the peers size by size, reusing per-shape FLOPs and peer times."""

    def __init__(self, model, peers: Sequence[Method], settings_by_name: Dict[str, Any],
                 options: SpeedOptions, unet_gflops: float, device: str,
                 log: Callable[[str], None]) -> None:
        self.model, self.peers, self.settings_by_name = model, peers, settings_by_name
        self.options, self.unet_gflops, self.device, self.log = options, unet_gflops, device, log
        self.flops_cache: Dict[tuple, int] = {}
        self.peer_times: Dict[str, tuple] = {}

    def warm_up(self, frame0, frame2) -> None:
        """Run every peer and HiFI (fast setting) once, untimed."""
        from ..interpolate import interpolate

        # One-off costs (allocator growth, kernel choice, ffmpeg start) are not per-frame costs.
        for method in self.peers:
            try:
                method(frame0, frame2, 0.5)
            except Exception:  # noqa: BLE001 - reported in the timed run below
                pass
        interpolate(self.model, frame0, frame2, 0.5, settings=self.settings_by_name["fast"])

    def hifi_rows(self, res: Resolution, frame0, frame2) -> List[Dict[str, Any]]:
        """One row per HiFI setting at this size: timed, or skipped with its prediction."""
        from ..interpolate import interpolate

        rows: List[Dict[str, Any]] = []
        for name, settings in self.settings_by_name.items():
            if name == "fast" and settings == self.settings_by_name["default"]:
                # the default already is 1 step, 1 sample: report it once, do not time it twice
                rows.append(dict(rows[-1], method="hifi-fast", note="same settings as default"))
                self.log(f"[speed] {res.name} hifi-fast: same settings as default")
                continue
            row = self._hifi_prediction(res, name, settings)
            if row["predicted_seconds"] > self.options.max_run_seconds:
                row.update(status="skipped", note=_over_limit_note(row["predicted_seconds"], self.options))
            else:
                run = functools.partial(interpolate, settings=settings)
                seconds = _timed(run, self.model, frame0, frame2, 0.5, device=self.device)
                row.update(status="ok", seconds=seconds, gflops_end_to_end=row["flops"] / seconds / 1e9)
            self.log(f"[speed] {res.name} {row['method']}: {row.get('status')} "
                     f"{report.fmt(row.get('seconds'), 2)} s (predicted {row['predicted_seconds']:.1f} s)")
            rows.append(row)
        return rows

    def _hifi_prediction(self, res: Resolution, name: str, settings) -> Dict[str, Any]:
        """A HiFI row before timing: the cascade plan, its FLOPs, predicted time and patch overlap."""
        from ..interpolate import plan_for, units_per_pair

        plan = plan_for(self.model, res.height, res.width, settings)
        flops = self._cascade_flops(plan) * settings.steps * settings.samples
        finest = plan.grids[-1]
        all_area = sum(len(g.boxes) * g.patch_height * g.patch_width for g in plan.grids)
        level_area = sum(g.height * g.width for g in plan.grids)
        return {"resolution": res.name, "megapixels": res.megapixels, "method": f"hifi-{name}",
                "steps": settings.steps, "samples": settings.samples, "levels": plan.num_levels,
                "patches": plan.patches_per_level(), "units": units_per_pair(plan, settings),
                "flops": flops, "predicted_seconds": flops / (self.unet_gflops * 1e9),
                "overlap_fraction_finest": finest.overlap_work_fraction,
                "overlap_fraction_all_levels": all_area / level_area - 1.0,
                "work_ratio": all_area / level_area}

    def _cascade_flops(self, plan) -> int:
        """U-Net FLOPs of one denoising pass over every patch of every level of the plan."""
        from .flops import count_on_meta

        flops = 0
        for grid in plan.grids:
            key = (grid.patch_height, grid.patch_width)
            if key not in self.flops_cache:
                self.flops_cache[key] = count_on_meta(self.model.config, 1, *key)
            flops += self.flops_cache[key] * len(grid.boxes)
        return flops

    def peer_rows(self, res: Resolution, frame0, frame2) -> List[Dict[str, Any]]:
        """One row per peer at this size: timed, skipped by prediction, or its error."""
        rows = []
        for method in self.peers:
            row = self._peer_row(method, res, frame0, frame2)
            self.log(f"[speed] {res.name} {method.name}: {row.get('status')} "
                     f"{report.fmt(row.get('seconds'), 3)} s")
            rows.append(row)
        return rows

    def _peer_row(self, method: Method, res: Resolution, frame0, frame2) -> Dict[str, Any]:
        """Time one peer, predicting from its previous size (pixel-scaled) to skip slow runs."""
        row = {"resolution": res.name, "megapixels": res.megapixels, "method": method.name}
        if method.name in self.peer_times:
            mp, s = self.peer_times[method.name]
            row["predicted_seconds"] = s * res.megapixels / mp
        if row.get("predicted_seconds", 0) > self.options.max_run_seconds:
            row.update(status="skipped", note=_over_limit_note(row["predicted_seconds"], self.options))
            return row
        try:
            seconds = _timed(method, frame0, frame2, 0.5, device=method.device)
            row.update(status="ok", seconds=seconds)
            self.peer_times[method.name] = (res.megapixels, seconds)
        except Exception as error:  # noqa: BLE001 - e.g. OOM of a peer at 8K
            row.update(status="error", note=f"{type(error).__name__}: {str(error)[:150]}")
        return row


def _settings_summary(settings) -> Dict[str, Any]:
    """The cascade settings the report states for one named setting."""
    return {"levels": settings.levels, "patch": list(settings.patch_size), "overlap": settings.overlap,
            "steps": settings.steps, "samples": settings.samples, "precision": settings.precision,
            "memory_budget": settings.memory_budget, "patch_batch": settings.patch_batch}


def _write_reports(out_dir: Path, data: Dict[str, Any], memory: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """Draw the plot, write speed.json and speed.md; returns `data` with plot and markdown added."""
    plot_path = plot(out_dir / "speed_memory.png", data["rows"], (memory or {}).get("rows", []))
    data["plot"] = plot_path.name if plot_path else None
    markdown = _markdown(data)
    report.write_json(out_dir / "speed.json", data)
    (out_dir / "speed.md").write_text("## Speed\n\n" + markdown)
    data["markdown"] = markdown
    return data


def ratio_to_rife(rows: Sequence[Dict[str, Any]], resolution: str) -> Optional[float]:
    """HiFI's default time per frame over RIFE's at one size (same run), or None if either
    did not run; stored on the hifi-default row."""
    here = {r["method"]: r for r in rows if r["resolution"] == resolution and r.get("status") == "ok"}
    if "hifi-default" not in here or "rife" not in here:
        return None
    ratio = here["hifi-default"]["seconds"] / here["rife"]["seconds"]
    here["hifi-default"]["ratio_to_rife"] = ratio
    return ratio


def _markdown(data: Dict[str, Any]) -> str:
    ref, tp = data["reference"], data["unet_patch"]
    s = data["settings"]
    lines = [
        f"Device `{data['device']}`. Reference: fp32 matmul {ref['size']}x{ref['size']} = "
        f"**{ref['gflops']:.1f} GFLOP/s** (best of 5, this run). U-Net (`{data['model']}`) forward on a "
        f"{tp['patch'][0]}x{tp['patch'][1]} patch batch of {tp['batch']}: {tp['flops'] / 1e9:.2f} GFLOP "
        f"(FlopCounterMode) in {tp['seconds'] * 1e3:.0f} ms = **{tp['gflops']:.1f} GFLOP/s, "
        f"{tp['percent_of_reference']:.0f}% of the reference**.",
        "",
        f"Settings: default = levels {s['default']['levels']}, patch {s['default']['patch'][0]}x"
        f"{s['default']['patch'][1]}, overlap {s['default']['overlap']}, {s['default']['steps']} steps, "
        f"{s['default']['samples']} sample(s); fast = {s['fast']['steps']} step, {s['fast']['samples']} "
        "sample. Work / frame = pixels the network denoises per step (sum of patch areas, all levels) "
        "divided by the levels' own pixels (1.00 = no overlap); overlap finest = the finest level's "
        "extra pixels.", ""]
    header = ["size", "MP", "method", "time / frame s", "x RIFE", "end-to-end GFLOP/s", "patches per level",
              "overlap finest", "work / frame", "note"]
    rows = []
    for r in data["rows"]:
        rows.append([r["resolution"], f"{r['megapixels']:.2f}", r["method"],
                     report.fmt(r.get("seconds"), 3) if r.get("status") == "ok" else r.get("status"),
                     report.fmt(r.get("ratio_to_rife"), 2),
                     report.fmt(r.get("gflops_end_to_end"), 1),
                     "/".join(map(str, r["patches"])) if "patches" in r else "—",
                     f"{100 * r['overlap_fraction_finest']:.0f}%" if "overlap_fraction_finest" in r else "—",
                     f"{r['work_ratio']:.2f}x" if "work_ratio" in r else "—",
                     (r.get("note") or "")[:80]])
    lines.append(report.markdown_table(header, rows))
    lines.extend(retime_markdown(data.get("retime", [])))
    if data.get("plot"):
        lines.append(f"Plot: `{data['plot']}` (time and peak memory against megapixels).\n")
    return "\n".join(lines)


def plot(path: Path, speed_rows: Sequence[Dict[str, Any]],
         memory_rows: Sequence[Dict[str, Any]]) -> Optional[Path]:
    """Log-log time per frame and peak memory against megapixels, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, rows, key, ylabel in ((axes[0], speed_rows, "seconds", "seconds per frame"),
                                  (axes[1], memory_rows, "peak", "peak memory (GiB)")):
        methods = list(dict.fromkeys(r["method"] for r in rows))
        scale = 2 ** 30 if key == "peak" else 1
        measured = [r[key] / scale for r in rows if r.get("status") == "ok" and r.get(key)]
        top = max(measured) * 1.6 if measured else 1.0
        for method in methods:
            points = sorted((r["megapixels"], r[key] / scale) for r in rows
                            if r["method"] == method and r.get("status") == "ok" and r.get(key))
            failed = [r["megapixels"] for r in rows
                      if r["method"] == method and r.get("status") in ("OOM", "skipped")]
            colour = None
            if points:
                colour = ax.plot(*zip(*points), marker="o", label=method)[0].get_color()
            if failed:
                # Out-of-memory or skipped sizes: an x on the top edge, in the method's colour.
                ax.scatter(failed, [top] * len(failed), marker="x", color=colour,
                           label=None if points else f"{method} (none measured)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("megapixels")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines or ax.collections:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not measured in this run", ha="center", transform=ax.transAxes)
    axes[0].set_title("time per interpolated frame (x: skipped)")
    axes[1].set_title("peak memory per frame (x: OOM or skipped)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
