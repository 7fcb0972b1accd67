"""Child process of the memory benchmark: one method, one frame size, one interpolated frame.

The memory benchmark starts ``python -m hifi_core.bench.probe --serve`` once: a small fork
server that imports torch and the project but computes nothing, then, for every JSON spec
line on its stdin, forks a fresh child that measures it. Each child therefore starts clean
(no tensors, no thread pools) without paying the interpreter and torch start-up again, and
its peak comes from `os.wait4`, i.e. exactly that child. Protocol on the server's stdout:
``PID <pid>`` when the child starts (so the parent can watch and kill it), then
``RESULT {json}`` when it has ended. By hand: ``python -m hifi_core.bench.probe '<json
spec>'`` measures in the current process and prints ``HIFI_PROBE {json}``. Frames are float32 [1, 3, H, W] in [0, 1]
(random content: memory does not depend on it), tau = 0.5.

Measurements (bytes):
- ``setup_rss``: resident memory after imports and model loading, before any frame exists.
- ``peak_rss``: the process's peak resident set (``ru_maxrss``), or that of its own children
  (ffmpeg for minterpolate) when larger.
- ``cuda_peak``: ``torch.cuda.max_memory_allocated`` on CUDA (the frames are created on the
  CPU and moved by the method, as a user's would be).

After setup the process caps its own address space (RLIMIT_AS = current size + the remaining
allowance + slack) so an allocation past the cap fails inside the process and is reported as
``oom`` instead of taking the machine down; the parent also watches the resident size.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

PREFIX = "HIFI_PROBE "
RESULT = "RESULT "
AS_SLACK_BYTES = 1 << 30


FRAME_DTYPES = ("float16", "float32")


@dataclass
class ProbeSpec:
    """What one child measures.

    Attributes:
        method: "hifi" or a peer name (blend, dis, minterpolate, rife).
        mode: for hifi, "cascade" (patches of `patch`) or "full" (one patch = the whole level).
        height, width: frame size.
        model: preset name or checkpoint path (hifi only).
        cap_bytes: resident-memory cap; 0 = none.
        frame_dtype: the input frames' dtype, "float16" (half-precision frames, read as they are) or "float32".
    """

    method: str
    height: int
    width: int
    mode: str = "cascade"
    model: str = "tiny"
    steps: int = 1
    samples: int = 1
    levels: Any = 3
    patch: Tuple[int, int] = (256, 256)
    overlap: int = 32
    memory_budget: Optional[int] = None
    patch_batch: Optional[int] = None
    device: str = "cpu"
    cap_bytes: int = 0
    threads: Optional[int] = None
    frame_dtype: str = "float16"

    def __post_init__(self) -> None:
        self.patch = tuple(int(s) for s in self.patch)
        if self.frame_dtype not in FRAME_DTYPES:
            raise ValueError(f"frame_dtype={self.frame_dtype!r} must be one of {FRAME_DTYPES}")
        if self.mode not in ("cascade", "full"):
            raise ValueError(f"mode={self.mode!r} must be 'cascade' or 'full'")
        if self.height < 1 or self.width < 1:
            raise ValueError(f"frame size {self.width}x{self.height} must be positive")

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def rss_bytes(pid: Optional[int] = None) -> int:
    """Current resident set size of a process (Linux /proc), 0 when it is gone."""
    try:
        with open(f"/proc/{pid or os.getpid()}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _vm_size() -> int:
    with open(f"/proc/{os.getpid()}/status") as handle:
        for line in handle:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def is_oom(error: BaseException) -> bool:
    """Out-of-memory in any of its guises (CUDA, the CPU allocator under RLIMIT_AS, numpy, OpenCV)."""
    from ..memory import is_out_of_memory

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = str(error).lower()
        if (is_out_of_memory(error) or isinstance(error, MemoryError)
                or "can't allocate memory" in text or "cannot allocate memory" in text
                or "insufficient memory" in text or "failed to allocate" in text):
            return True
        error = error.__cause__ or error.__context__
    return False


def _hifi_runner(spec: ProbeSpec, result: Dict[str, Any]):
    from ..checkpoint import load_model
    from ..interpolate import CascadeSettings, interpolate, plan_for

    model = load_model(spec.model, spec.device)
    settings = CascadeSettings(levels=spec.levels, patch_size=spec.patch, overlap=spec.overlap,
                               steps=spec.steps, samples=spec.samples, device=spec.device,
                               memory_budget=spec.memory_budget, patch_batch=spec.patch_batch)
    plan = plan_for(model, spec.height, spec.width, settings)
    if spec.mode == "full":
        # One patch per level: the patch is the padded full frame.
        settings = CascadeSettings(levels=plan.num_levels, patch_size=(plan.padded_height, plan.padded_width),
                                   overlap=spec.overlap, steps=spec.steps, samples=spec.samples,
                                   device=spec.device, memory_budget=spec.memory_budget,
                                   patch_batch=1)
        plan = plan_for(model, spec.height, spec.width, settings)
    result.update(levels=plan.num_levels, patches=plan.patches_per_level(),
                  padded=[plan.padded_height, plan.padded_width],
                  parameters_bytes=sum(p.numel() * p.element_size() for p in model.parameters()))
    return lambda f0, f2: interpolate(model, f0, f2, 0.5, settings=settings)


def _peer_runner(spec: ProbeSpec, result: Dict[str, Any]):
    from .peers import build_peers

    methods, skipped = build_peers([spec.method])
    if skipped:
        raise ModuleNotFoundError(skipped[0].reason)
    method = methods[0]
    return lambda f0, f2: method(f0, f2, 0.5)


def run_probe(spec: ProbeSpec) -> Dict[str, Any]:
    import torch

    if spec.threads:
        torch.set_num_threads(spec.threads)
    result: Dict[str, Any] = {"spec": asdict(spec), "ok": False, "oom": False, "error": None}
    cuda = spec.device.startswith("cuda")
    runner = _hifi_runner(spec, result) if spec.method == "hifi" else _peer_runner(spec, result)
    result["setup_rss"] = rss_bytes()
    if spec.cap_bytes:
        allowance = max(spec.cap_bytes - result["setup_rss"], 0)
        limit = _vm_size() + allowance + AS_SLACK_BYTES
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        if cuda:
            total = torch.cuda.get_device_properties(torch.device(spec.device)).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, spec.cap_bytes / total), torch.device(spec.device))
    try:
        generator = torch.Generator().manual_seed(0)
        frame0 = torch.rand(1, 3, spec.height, spec.width, generator=generator, dtype=getattr(torch, spec.frame_dtype))
        frame2 = torch.roll(frame0, shifts=(3, 5), dims=(2, 3))
        if cuda:
            torch.cuda.reset_peak_memory_stats(torch.device(spec.device))
        start = time.perf_counter()
        out = runner(frame0, frame2)
        if cuda:
            torch.cuda.synchronize(torch.device(spec.device))
        result["seconds"] = time.perf_counter() - start
        result["output_shape"] = list(out.shape)
        result["ok"] = True
    except Exception as error:  # noqa: BLE001 - classified and reported to the parent
        result["oom"] = is_oom(error)
        result["error"] = f"{type(error).__name__}: {str(error)[:300]}"
    finally:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        result["peak_rss"] = max(own, children)
        result["children_peak_rss"] = children
        if cuda:
            result["cuda_peak"] = torch.cuda.max_memory_allocated(torch.device(spec.device))
    return result


def probe(spec: ProbeSpec) -> Dict[str, Any]:
    """`run_probe`, with set-up failures (bad model, missing peer) reported instead of raised."""
    try:
        return run_probe(spec)
    except Exception as error:  # noqa: BLE001 - the parent classifies it
        return {"spec": asdict(spec), "ok": False, "oom": is_oom(error),
                "error": f"{type(error).__name__}: {str(error)[:300]}",
                "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _child(spec_json: str, write_fd: int) -> None:
    """In the forked child: measure, write the JSON result to the pipe, exit without cleanup."""
    code = 0
    try:
        payload = json.dumps(probe(ProbeSpec(**json.loads(spec_json))))
    except BaseException as error:  # noqa: BLE001 - must reach the parent, whatever it is
        payload, code = json.dumps({"ok": False, "oom": False, "error": repr(error)[:300]}), 1
    try:
        with os.fdopen(write_fd, "w") as pipe:
            pipe.write(payload)
    finally:
        os._exit(code)


def serve() -> int:
    """Fork server: one child per spec line on stdin (see the module docstring)."""
    import cv2  # noqa: F401 - imported once here so that children do not pay for it
    import numpy  # noqa: F401
    import torch  # noqa: F401

    from .. import checkpoint, interpolate  # noqa: F401
    from . import peers  # noqa: F401

    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever else prints to stdout goes to stderr: the protocol stays clean
    for line in sys.stdin:
        if not line.strip():
            continue
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _child(line, write_fd)
        os.close(write_fd)
        protocol.write(f"PID {pid}\n")
        with os.fdopen(read_fd) as pipe:
            payload = pipe.read()  # returns when the child exits (or is killed)
        _, status, usage = os.wait4(pid, 0)
        result = json.loads(payload) if payload else {
            "ok": False, "oom": False, "error": "the child ended without a result"}
        result["exit_code"] = os.waitstatus_to_exitcode(status)
        # wait4's rusage is this child's alone (with its own reaped children, e.g. ffmpeg).
        result["peak_rss"] = max(result.get("peak_rss") or 0, usage.ru_maxrss * 1024)
        protocol.write(RESULT + json.dumps(result) + "\n")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--serve"]:
        return serve()
    print(PREFIX + json.dumps(probe(ProbeSpec(**json.loads(argv[0])))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
