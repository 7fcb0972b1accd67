"""Where and how the network runs: device, precision, free memory, the memory budget and the
patch batch. Each is defined here once; the library, the CLI, the trainer, the benchmarks and
the ComfyUI nodes (run and readout alike) ask here, so what a readout promises is what a run
uses.
"""

from __future__ import annotations

import os
import warnings
from contextlib import nullcontext
from typing import Callable, Optional

import torch

from .errors import HiFIInputError

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PRECISION_CHOICES = ("auto", *PRECISIONS)

# The network's working set may take this share of the free memory: the rest is left to the
# frame buffers, the decoder and whatever else runs beside us.
BUDGET_FRACTION = 0.8
# On a CPU, batching more patches gains no speed but holds more memory.
CPU_MAX_PATCH_BATCH = 4
CUDA_MAX_PATCH_BATCH = 64
UNKNOWN_FREE_BYTES = 4 * 1024 ** 3  # a platform that does not say: assume a modest 4 GiB


def check_device(device) -> torch.device:
    """A device users may name ("cpu", "cuda", "cuda:1", a torch.device) that exists here."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise HiFIInputError(f"device {device!r} is not a device; use 'cpu', 'cuda' or 'cuda:N'") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise HiFIInputError(f"device {device!r}: CUDA is not available here; use 'cpu'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise HiFIInputError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif resolved.type not in ("cpu", "mps"):
        raise HiFIInputError(f"device {device!r} is not supported; use 'cpu' or 'cuda'")
    return resolved


def resolve_device(choice: Optional[str] = "auto", host_default: Optional[torch.device] = None) -> torch.device:
    """The device a user names: "auto" (or None) is the host's (`host_default`, e.g. ComfyUI's),
    else CUDA when present, else the CPU; anything else goes through `check_device`."""
    if choice is None or choice == "auto":
        if host_default is not None:
            return torch.device(host_default)
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    return check_device(choice)


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> bf16 on a CUDA GPU that has it, else fp16 on CUDA, fp32 elsewhere."""
    if precision not in PRECISION_CHOICES:
        raise HiFIInputError(f"precision={precision!r} is unknown; use one of {PRECISION_CHOICES}")
    if precision != "auto":
        return precision
    if torch.device(device).type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def autocast_context(device: torch.device, precision: str):
    """Autocast to `precision` ("fp32": none) on the device's type; shared by sampling and training."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=PRECISIONS[precision])


def _meminfo_bytes(field: str) -> Optional[int]:
    """A /proc/meminfo figure in bytes (Linux), or None."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def total_memory_bytes() -> Optional[int]:
    """The machine's RAM in bytes (Linux MemTotal), or None where the platform does not say."""
    return _meminfo_bytes("MemTotal")


def available_memory_bytes(device: torch.device = torch.device("cpu")) -> Optional[int]:
    """Free bytes on the device (CUDA: the driver's figure; CPU: Linux MemAvailable, else the
    OS's available pages), or None where the platform does not say."""
    if torch.device(device).type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    available = _meminfo_bytes("MemAvailable")
    if available is not None:
        return available
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_budget(device: torch.device, budget_bytes: Optional[int] = None,
                  free_bytes: Optional[int] = None) -> int:
    """Bytes for the network's working set: `budget_bytes` when given, else BUDGET_FRACTION of
    `free_bytes` (a host's own figure, e.g. ComfyUI's) or of the device's free memory."""
    if budget_bytes is not None:
        if budget_bytes <= 0:
            raise HiFIInputError(f"memory budget {budget_bytes} bytes must be positive")
        return int(budget_bytes)
    if free_bytes is None:
        free_bytes = available_memory_bytes(device)
    return max(1 << 20, int((UNKNOWN_FREE_BYTES if free_bytes is None else free_bytes) * BUDGET_FRACTION))


def max_patch_batch(device: torch.device) -> int:
    """The most patches one network call takes on this kind of device."""
    return CUDA_MAX_PATCH_BATCH if torch.device(device).type == "cuda" else CPU_MAX_PATCH_BATCH


def empty_device_cache(device: torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def resolve_channels_last(choice: Optional[bool], device: torch.device) -> bool:
    """None -> channels_last on CUDA (tensor-core convolutions want it) and on a CPU (oneDNN's
    convolutions too: the lean U-Net 14 % faster on 4 patches of 256^2, small 2.4x; 2-core AMD
    EPYC, 2026-12-01); "mps" keeps the default layout."""
    if choice is not None:
        return bool(choice)
    return torch.device(device).type in ("cuda", "cpu")


def prepare_backend(device: torch.device) -> None:
    """Per-device switches a run wants: cuDNN picks its fastest convolution per shape (our
    patch shapes repeat, so the one-off search pays)."""
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = True


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA / CPU allocator out-of-memory errors."""
    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


class CompiledOrEager:
    """A module's forward through `torch.compile`, falling back to the plain module, with one
    warning, where no compiler works (no C++ toolchain, an unsupported op or platform): the
    compile error surfaces at the first call, so that is where the fallback catches it.

    Args:
        module (torch.nn.Module): what to run.
        backend (str, default "inductor"): `torch.compile`'s backend ("eager" only traces).
    """

    def __init__(self, module: torch.nn.Module, backend: str = "inductor"):
        self.module = module
        self.backend = backend
        self.compiled: Optional[Callable] = None
        self.failed: Optional[str] = None
        try:
            self.compiled = torch.compile(module, backend=backend, dynamic=False)
        except Exception as error:  # noqa: BLE001 - any failure means: run eagerly
            self._fall_back(error)

    def _fall_back(self, error: BaseException) -> None:
        self.compiled, self.failed = None, f"{type(error).__name__}: {error}".splitlines()[0][:200]
        warnings.warn(f"torch.compile ({self.backend}) is not available here ({self.failed}); "
                      "running the network without it", RuntimeWarning, stacklevel=3)

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as error:  # noqa: BLE001
                if is_out_of_memory(error):
                    raise  # the batcher halves the batch; not a compiler problem
                self._fall_back(error)
        return self.module(*args, **kwargs)
