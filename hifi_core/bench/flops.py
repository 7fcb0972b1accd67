"""FLOP counting and the machine's reference throughput.

`unet_flops` counts the U-Net's forward FLOPs with `torch.utils.flop_counter.FlopCounterMode`
(multiply-add = 2 FLOPs). On the CPU, `F.scaled_dot_product_attention` runs as one fused
kernel that the counter has no formula for, so we register the standard one (QK^T and AV:
4 * B * heads * Lq * Lk * D). `count_on_meta` runs the same forward on the "meta" device
(shapes only, no compute, no memory) to count a whole frame that would be too costly to run.

`reference_gflops` times a large fp32 matmul on the same device in the same run: the
machine's attainable dense throughput, against which the U-Net's achieved rate is stated.
"""

from __future__ import annotations

import time
from typing import Dict, Tuple

import torch
from torch.utils.flop_counter import FlopCounterMode


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    *batch, lq, d = query_shape
    lk, dv = key_shape[-2], value_shape[-1]
    b = 1
    for n in batch:
        b *= n
    return 2 * b * lq * lk * d + 2 * b * lq * lk * dv


def _custom_mapping() -> Dict:
    mapping = {torch.ops.aten.scaled_dot_product_attention: _sdpa_flops}
    fused_cpu = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if fused_cpu is not None:
        mapping[fused_cpu] = _sdpa_flops
    return mapping


def _patch_inputs(batch: int, height: int, width: int, device) -> Tuple[torch.Tensor, ...]:
    x = torch.zeros(batch, 3, height, width, device=device)
    return (x, torch.zeros(batch, device=device), x, x, x,
            torch.ones(batch, dtype=torch.bool, device=device), torch.full((batch,), 0.5, device=device))


def unet_flops(model, batch: int, height: int, width: int) -> Tuple[int, Dict[str, int]]:
    """FLOPs of one `predict_v` forward on a [batch, 3, height, width] patch, and per operator."""
    device = next(model.parameters()).device
    counter = FlopCounterMode(display=False, custom_mapping=_custom_mapping())
    with torch.inference_mode(), counter:
        model.predict_v(*_patch_inputs(batch, height, width, device))
    by_op = {str(k): int(v) for k, v in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), by_op


def count_on_meta(config, batch: int, height: int, width: int) -> int:
    """The same count for a model config without computing anything (meta tensors)."""
    from ..model import HiFIModel

    with torch.device("meta"):
        model = HiFIModel(config)
    return unet_flops(model, batch, height, width)[0]


def time_forward(model, batch: int, height: int, width: int, repeats: int = 3) -> float:
    """Median seconds of one patch-batch forward (after a warm-up), in the memory layout a run
    uses on this device (`runtime.resolve_channels_last`)."""
    from ..runtime import resolve_channels_last

    device = next(model.parameters()).device
    inputs = _patch_inputs(batch, height, width, device)
    if resolve_channels_last(None, device):
        model.to(memory_format=torch.channels_last)
        inputs = [x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x for x in inputs]
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            _sync(device)
            start = time.perf_counter()
            model.predict_v(*inputs)
            _sync(device)
            if i:
                times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def reference_gflops(device="cpu", size: int = 2048, repeats: int = 5) -> Dict[str, float]:
    """Best fp32 GFLOP/s of an n x n @ n x n matmul on `device` (2 n^3 FLOPs each)."""
    a = torch.rand(size, size, device=device)
    b = torch.rand(size, size, device=device)
    best = float("inf")
    with torch.inference_mode():
        a @ b
        for _ in range(repeats):
            _sync(a.device)
            start = time.perf_counter()
            a @ b
            _sync(a.device)
            best = min(best, time.perf_counter() - start)
    return {"size": size, "seconds": best, "gflops": 2 * size ** 3 / best / 1e9}
