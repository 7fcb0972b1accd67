"""runtime: the one place that resolves devices and precision and reads free memory."""

import pytest
import torch

from hifi_core import runtime
from hifi_core.errors import HiFIInputError


def test_auto_is_the_hosts_device_else_cuda_when_present_else_cpu(monkeypatch):
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    assert runtime.resolve_device("auto", host_default=torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.resolve_device(None) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.resolve_device("auto") == torch.device("cuda")  # named, not touched
    assert runtime.resolve_device("auto", host_default="cpu") == torch.device("cpu")  # the host decides


def test_unknown_or_missing_devices_are_named_with_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(HiFIInputError, match="'tpu' is not a device; use 'cpu'"):
        runtime.resolve_device("tpu")
    with pytest.raises(HiFIInputError, match="CUDA is not available here; use 'cpu'"):
        runtime.resolve_device("cuda:0")


def test_memory_figures_come_from_the_machine():
    total, free = runtime.total_memory_bytes(), runtime.available_memory_bytes()
    assert total is not None and free is not None and 0 < free <= total
    assert runtime.memory_budget(torch.device("cpu"), free_bytes=1 << 30) == int((1 << 30) * runtime.BUDGET_FRACTION)
    assert runtime.resolve_precision("auto", torch.device("cpu")) == "fp32"
