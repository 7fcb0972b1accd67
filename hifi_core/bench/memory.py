"""Memory benchmark: peak memory of one interpolated frame per frame size, in child processes.

Each measurement runs in a fresh child process (forked by `probe.serve`, a server that has
only imported torch and the project), so peaks never mix:
HiFI with the patch cascade, HiFI with full-frame denoising (one patch = the whole level:
what a non-patched diffusion interpolator needs), and the peers. On the CPU the figure is
the child's peak resident set size; on CUDA, `torch.cuda.max_memory_allocated`.

A run is recorded as OOM, never a crash, when
- the analytic estimate (`hifi_core.memory`) already exceeds the cap (refused unrun), or
- the child hits its address-space limit or the parent sees its RSS pass the cap (killed).
A run predicted to take longer than `max_run_seconds` (FLOPs / measured FLOP rate for HiFI,
pixel-scaled time of the previous size for peers) is skipped with that prediction, and its
memory is given as the estimate only.

The report separates, for HiFI: `setup` (interpreter, torch, model weights), the frame
buffers computed from the frame size (`inputs`: two input frames and the output;
`cascade_buffers`: `hifi_core.memory.frame_buffer_bytes`), and the rest, the model's working
memory (activations, allocator slack) = peak - setup - inputs - cascade buffers.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..errors import HiFIInputError
from . import report
from .probe import RESULT, ProbeSpec, rss_bytes
from .sizes import Resolution

WATCH_INTERVAL_S = 0.02
PACKAGE_PARENT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class MemoryOptions:
    """Knobs of the memory run.

    Attributes:
        model: preset or checkpoint for HiFI (a cheap one keeps the run short on a CPU).
        steps, samples, levels, patch, overlap: cascade settings (1 step, 1 sample suffice:
            memory does not grow with steps or samples beyond one sample's buffers).
        memory_budget: the cascade's budget for the network's working set (bytes), which
            sets the patch batch; None = the planner's default (80% of free memory).
        cap_bytes: per-run memory cap; runs that would pass it are OOM.
        max_run_seconds: runs predicted to take longer are skipped (estimate reported).
        peers: peer names to measure as well.
        device: "cpu" or "cuda[:N]".
        full_frame: also measure full-frame (non-patched) denoising.
        threads: torch CPU threads in the children (None = torch's default).
        frame_dtype: the input frames' dtype ("float16": half-precision frames, which the
            cascade reads as they are; "float32": what ComfyUI and the retime hold).
    """

    model: str = "tiny"
    steps: int = 1
    samples: int = 1
    levels: Any = 3
    patch: tuple = (256, 256)
    overlap: int = 32
    memory_budget: Optional[int] = 256 << 20
    cap_bytes: int = 12 << 30
    max_run_seconds: float = 600.0
    peers: tuple = ("blend", "dis", "minterpolate", "rife")
    device: str = "cpu"
    full_frame: bool = True
    threads: Optional[int] = None
    frame_dtype: str = "float16"

    def __post_init__(self) -> None:
        if self.cap_bytes <= 0:
            raise HiFIInputError(f"memory cap {self.cap_bytes} bytes must be positive")
        if self.max_run_seconds <= 0:
            raise HiFIInputError(f"max_run_seconds={self.max_run_seconds} must be positive")


def default_cap_bytes() -> int:
    """60% of the memory available now, at most 12 GiB (the machine is shared)."""
    from ..runtime import UNKNOWN_FREE_BYTES, available_memory_bytes

    return int(min(12 << 30, 0.6 * (available_memory_bytes() or UNKNOWN_FREE_BYTES)))


class ProbeServer:
    """The fork server child (`probe.serve`), used as a context manager.

    `run(spec)` measures one spec in a fresh grandchild, watching its resident size every
    WATCH_INTERVAL_S and killing it when it passes the cap (OOM) or the time limit.
    """

    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), env.get("PYTHONPATH")]))
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen([sys.executable, "-m", "hifi_core.bench.probe", "--serve"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._log, env=env)
        self._buffer = b""

    def __enter__(self) -> "ProbeServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc.stdout.close()
        self._log.close()

    def _stderr_tail(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-400:]

    def _line(self, timeout_s: float) -> Optional[str]:
        """The next protocol line, or None after timeout_s (or if the server died)."""
        deadline = time.monotonic() + timeout_s
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], min(left, WATCH_INTERVAL_S))
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return None
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def run(self, spec: ProbeSpec, timeout_s: float) -> Dict[str, Any]:
        start = time.monotonic()
        self._proc.stdin.write((spec.to_json() + "\n").encode())
        self._proc.stdin.flush()
        line = self._line(120.0)
        if line is None or not line.startswith("PID "):
            raise RuntimeError(f"the memory probe server did not start a child: {self._stderr_tail()}")
        pid = int(line.split()[1])
        killed, watched_peak = None, 0
        while True:
            line = self._line(WATCH_INTERVAL_S)
            if line is not None:
                break
            if self._proc.poll() is not None:
                raise RuntimeError(f"the memory probe server died: {self._stderr_tail()}")
            rss = rss_bytes(pid)
            watched_peak = max(watched_peak, rss)
            if killed is None and spec.cap_bytes and rss > spec.cap_bytes:
                killed = "oom"
            elif killed is None and time.monotonic() - start > timeout_s:
                killed = "timeout"
            if killed:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if not line.startswith(RESULT):
            raise RuntimeError(f"unexpected line from the memory probe server: {line[:200]}")
        result = json.loads(line[len(RESULT):])
        if killed:
            result.update(ok=False, oom=killed == "oom", error=(
                f"killed: resident memory passed the cap ({report.fmt_bytes(spec.cap_bytes)})"
                if killed == "oom" else f"killed after {timeout_s:.0f} s"))
        result["watched_peak_rss"] = watched_peak
        result["wall_seconds"] = time.monotonic() - start
        return result


def run_child(spec: ProbeSpec, timeout_s: float, server: Optional[ProbeServer] = None) -> Dict[str, Any]:
    """Measure one spec in a fresh child process (starting a server when none is given)."""
    if server is not None:
        return server.run(spec, timeout_s)
    with ProbeServer() as own:
        return own.run(spec, timeout_s)


def _hifi_estimates(model_config, plan, spec: ProbeSpec) -> Dict[str, int]:
    from ..interpolate import CascadeSettings, job_plan
    from ..memory import SAFETY_FACTOR, estimate_patch_bytes, plan_patch_batch
    import torch

    largest = max(plan.grids, key=lambda g: g.patch_height * g.patch_width)
    if spec.patch_batch is not None:
        batch = spec.patch_batch
    else:
        batch = plan_patch_batch(model_config.unet, largest.patch_height, largest.patch_width,
                                 budget_bytes=spec.memory_budget, device=torch.device(spec.device))
    per_patch = estimate_patch_bytes(model_config.unet, largest.patch_height, largest.patch_width)
    patches_at_once = min(batch, max(len(g.boxes) for g in plan.grids))
    settings = CascadeSettings(levels=spec.levels, patch_size=spec.patch, overlap=spec.overlap, samples=spec.samples,
                               patch_batch=batch)
    # what the ComfyUI readout shows for this job (`hifi_core.interpolate.plan_job`)
    frame_bytes = torch.finfo(getattr(torch, spec.frame_dtype)).bits // 8
    planned = job_plan(model_config, plan, settings, torch.device(spec.device), frame_bytes=frame_bytes)
    return {"patch_batch": batch, "inputs": planned.io_bytes,
            "planned_peak": planned.peak_bytes, "planned_motion": planned.motion_bytes,
            "cascade_buffers": planned.frame_buffer_bytes,
            "working_estimate": per_patch * patches_at_once,
            "working_estimate_unpadded": int(per_patch * patches_at_once / SAFETY_FACTOR)}


def _hifi_flops(model_config, plan, spec: ProbeSpec) -> int:
    from .flops import count_on_meta

    total = 0
    for grid in plan.grids:
        total += count_on_meta(model_config, 1, grid.patch_height, grid.patch_width) * len(grid.boxes)
    return total * spec.steps * spec.samples


def run_memory(resolutions: Sequence[Resolution], out_dir: Path, *,
               options: MemoryOptions = MemoryOptions(), flop_rate: Optional[float] = None,
               log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Measure every (method, size); write memory.json and memory.md.

    Args:
        flop_rate: the U-Net's achieved FLOP/s on this machine (from the speed benchmark's
            patch timing); measured here when None. Used only to predict run times.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    server = ProbeServer()  # starts importing torch while this process plans the runs
    try:
        return _run_memory(server, resolutions, out_dir, options, flop_rate, started, log)
    finally:
        server.close()


def _run_memory(server: ProbeServer, resolutions: Sequence[Resolution], out_dir: Path,
                options: MemoryOptions, flop_rate: Optional[float], started: float,
                log: Callable[[str], None]) -> Dict[str, Any]:
    """Load the model, measure every (method, size) in the server's children, write the reports."""
    from ..checkpoint import load_model
    from ..interpolate import CascadeSettings

    model = load_model(options.model, options.device)
    settings = CascadeSettings(levels=options.levels, patch_size=options.patch, overlap=options.overlap,
                               steps=options.steps, samples=options.samples)
    if flop_rate is None:
        flop_rate = _measure_flop_rate(model, options.patch)
    runner = _JobRunner(server, model, settings, options, flop_rate)
    rows: List[Dict[str, Any]] = []
    jobs = [("hifi", "cascade")] + ([("hifi", "full")] if options.full_frame else [])
    jobs += [(p, "cascade") for p in options.peers]
    for res in resolutions:
        for method, mode in jobs:
            row = runner.row(res, method, mode)
            log(f"[memory] {res.name} {row['method']}: {row.get('status')} "
                f"peak={report.fmt_bytes(row.get('peak'))} t={report.fmt(row.get('seconds'))} s "
                f"{row.get('note') or ''}")
            rows.append(row)
    return _write_reports(out_dir, rows, options, flop_rate, started)


def _measure_flop_rate(model, patch: tuple) -> float:
    """The U-Net's achieved FLOP/s on one patch of this size (for run-time predictions)."""
    from .flops import time_forward, unet_flops

    ph, pw = patch
    return unet_flops(model, 1, ph, pw)[0] / time_forward(model, 1, ph, pw, repeats=2)


def _base_spec(options: MemoryOptions) -> ProbeSpec:
    """The probe spec every run starts from (method and frame size are set per run)."""
    return ProbeSpec(method="hifi", height=8, width=8, model=options.model, steps=options.steps,
                     samples=options.samples, levels=options.levels, patch=options.patch,
                     overlap=options.overlap, memory_budget=options.memory_budget,
                     device=options.device, cap_bytes=options.cap_bytes, threads=options.threads,
                     frame_dtype=options.frame_dtype)


class _JobRunner:
    """Measures one (method, mode, size) at a time, keeping each peer's last time for predictions."""

    def __init__(self, server: ProbeServer, model, settings, options: MemoryOptions, flop_rate: float) -> None:
        self.server, self.model, self.settings = server, model, settings
        self.options, self.flop_rate = options, flop_rate
        self.base = _base_spec(options)
        self.peer_times: Dict[str, tuple] = {}

    def row(self, res: Resolution, method: str, mode: str) -> Dict[str, Any]:
        """The row of one run: refused (OOM), skipped (too slow), or measured in a child."""
        options = self.options
        spec = replace(self.base, method=method, mode=mode, height=res.height, width=res.width)
        row: Dict[str, Any] = {"resolution": res.name, "height": res.height, "width": res.width,
                               "megapixels": res.megapixels,
                               "method": f"hifi-{mode}" if method == "hifi" else method}
        predicted = None
        if method == "hifi":
            spec, predicted = self._plan_hifi(row, spec, res, mode)
        elif method in self.peer_times:
            prev_mp, prev_s = self.peer_times[method]
            predicted = prev_s * res.megapixels / prev_mp
        row["predicted_seconds"] = predicted
        if "status" not in row and predicted is not None and predicted > options.max_run_seconds:
            row.update(status="skipped", note=f"predicted {predicted:.0f} s > "
                       f"{options.max_run_seconds:.0f} s limit")
        if "status" not in row:
            self._measure(row, spec, method, res)
        return row

    def _plan_hifi(self, row: Dict[str, Any], spec: ProbeSpec, res: Resolution, mode: str) -> tuple:
        """Add HiFI's plan, estimates and FLOPs to the row (OOM past the cap); returns (spec, seconds)."""
        from ..interpolate import plan_for

        plan = plan_for(self.model, res.height, res.width, self.settings)
        if mode == "full":
            plan = plan_for(self.model, res.height, res.width, replace(
                self.settings, levels=plan.num_levels,
                patch_size=(plan.padded_height, plan.padded_width)))
            spec = replace(spec, patch_batch=1)
        est = _hifi_estimates(self.model.config, plan, spec)
        row.update(estimate=est, patches=plan.patches_per_level(), levels=plan.num_levels)
        flops = _hifi_flops(self.model.config, plan, spec)
        row["flops"] = flops
        minimum = est["inputs"] + est["cascade_buffers"] + est["working_estimate_unpadded"]
        if minimum > self.options.cap_bytes:
            row.update(status="OOM", note=f"refused: the estimate {report.fmt_bytes(minimum)} "
                       f"exceeds the cap {report.fmt_bytes(self.options.cap_bytes)}")
        return spec, flops / self.flop_rate

    def _measure(self, row: Dict[str, Any], spec: ProbeSpec, method: str, res: Resolution) -> None:
        """Run the spec in a child and record its peak, time and status in the row."""
        cuda = self.options.device.startswith("cuda")
        result = self.server.run(spec, timeout_s=max(self.options.max_run_seconds * 2, 120))
        row["child"] = result
        row["peak"] = result.get("cuda_peak") if cuda else result.get("peak_rss")
        row["setup"] = result.get("setup_rss")
        row["seconds"] = result.get("seconds")
        row.update(_status_of(result))
        if result.get("ok") and method != "hifi" and result.get("seconds"):
            self.peer_times[method] = (res.megapixels, result["seconds"])
        if method == "hifi" and row["status"] == "ok" and not cuda:
            est = row["estimate"]
            row["working"] = row["peak"] - row["setup"] - est["inputs"] - est["cascade_buffers"]


def _status_of(result: Dict[str, Any]) -> Dict[str, Any]:
    """A child's result as the row's status (ok, OOM, unavailable, error) and note."""
    if result.get("ok"):
        return {"status": "ok"}
    if result.get("oom"):
        return {"status": "OOM", "note": result.get("error")}
    if "ModuleNotFoundError" in str(result.get("error")):
        return {"status": "unavailable", "note": result.get("error")}
    return {"status": "error", "note": result.get("error")}


def _write_reports(out_dir: Path, rows: List[Dict[str, Any]], options: MemoryOptions,
                   flop_rate: float, started: float) -> Dict[str, Any]:
    """Write memory.json and memory.md; returns the data with its markdown."""
    data = {"options": {**asdict(options), "patch": list(options.patch), "peers": list(options.peers)},
            "flop_rate_for_predictions": flop_rate, "rows": rows,
            "ratios": _ratios(rows), "seconds": time.perf_counter() - started}
    markdown = _markdown(data, options)
    data["markdown"] = markdown
    report.write_json(out_dir / "memory.json", {k: v for k, v in data.items() if k != "markdown"})
    (out_dir / "memory.md").write_text("## Memory\n\n" + markdown)
    return data


def _ratios(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """peak(largest)/peak(second size) for every method with both measured, esp. 8K/1080p."""
    by_method: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for row in rows:
        if row.get("status") == "ok":
            by_method.setdefault(row["method"], {})[row["resolution"]] = row
    ratios = {}
    for method, by_res in by_method.items():
        if "8K" in by_res and "1080p" in by_res:
            big, ref, label = by_res["8K"], by_res["1080p"], "8K/1080p"
        elif len(by_res) >= 2:
            ordered = sorted(by_res.values(), key=lambda r: r["megapixels"])
            big, ref = ordered[-1], ordered[0]
            label = f"{big['resolution']}/{ref['resolution']}"
        else:
            continue
        entry = {"label": label, "peak_ratio": big["peak"] / ref["peak"],
                 "pixel_ratio": big["megapixels"] / ref["megapixels"]}
        if big.get("working") is not None and ref.get("working"):
            entry["working_ratio"] = big["working"] / ref["working"] if ref["working"] > 0 else None
            entry["above_setup_ratio"] = (big["peak"] - big["setup"]) / max(ref["peak"] - ref["setup"], 1)
        ratios[method] = entry
    return ratios


def _markdown(data: Dict[str, Any], options: MemoryOptions) -> str:
    cuda = options.device.startswith("cuda")
    what = "torch.cuda.max_memory_allocated" if cuda else "peak RSS of a fresh child process"
    lines = [f"Peak memory for one interpolated frame ({what}; cap {report.fmt_bytes(options.cap_bytes)}). "
             f"HiFI model `{options.model}` (untrained preset: memory does not depend on the weights), "
             f"{options.steps} step, {options.samples} sample, levels={options.levels}, patch "
             f"{options.patch[0]}x{options.patch[1]}, overlap {options.overlap}, cascade memory budget "
             f"{report.fmt_bytes(options.memory_budget)}, input frames {options.frame_dtype}. `hifi-full` "
             "denoises each level as a single patch (no patching). setup = interpreter + torch + model; "
             "inputs = the two frames (computed); cascade buffers = `hifi_core.memory.frame_buffer_bytes` (computed); working "
             "= peak - setup - inputs - buffers (the model's working memory); job = peak - setup, beside "
             "the planned peak the ComfyUI readout shows (`JobPlan.peak_bytes`, motion base included).", ""]
    header = ["size", "method", "status", "peak", "setup", "job", "planned peak", "inputs", "cascade buffers",
              "working", "estimated working", "time s", "note"]
    rows = []
    for r in data["rows"]:
        est = r.get("estimate") or {}
        job = r["peak"] - r["setup"] if r.get("peak") and r.get("setup") else None
        rows.append([r["resolution"], r["method"], r.get("status", "?"), report.fmt_bytes(r.get("peak")),
                     report.fmt_bytes(r.get("setup")), report.fmt_bytes(job), report.fmt_bytes(est.get("planned_peak")),
                     report.fmt_bytes(est.get("inputs")),
                     report.fmt_bytes(est.get("cascade_buffers")), report.fmt_bytes(r.get("working")),
                     report.fmt_bytes(est.get("working_estimate")), report.fmt(r.get("seconds"), 2),
                     (r.get("note") or "")[:90]])
    lines.append(report.markdown_table(header, rows))
    for method, ratio in data["ratios"].items():
        extra = ""
        if ratio.get("working_ratio") is not None:
            extra = (f"; working memory ratio {ratio['working_ratio']:.2f}, above-setup ratio "
                     f"{ratio['above_setup_ratio']:.2f}")
        lines.append(f"- `{method}` peak({ratio['label']}) = {ratio['peak_ratio']:.2f}x for "
                     f"{ratio['pixel_ratio']:.0f}x the pixels{extra}")
    return "\n".join(lines) + "\n"
