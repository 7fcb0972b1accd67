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


def test_channels_last_and_cudnn_follow_the_device(monkeypatch):
    assert runtime.resolve_channels_last(None, torch.device("cpu")) is True
    assert runtime.resolve_channels_last(None, torch.device("cuda")) is True  # only named, never touched
    assert runtime.resolve_channels_last(False, torch.device("cpu")) is False
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    runtime.prepare_backend(torch.device("cpu"))
    assert torch.backends.cudnn.benchmark is False
    runtime.prepare_backend(torch.device("cuda"))
    assert torch.backends.cudnn.benchmark is True


def test_compile_runs_the_same_network_and_falls_back_where_no_compiler_works(monkeypatch):
    from hifi_core import CascadeSettings, build_model, interpolate

    torch.manual_seed(0)
    model = build_model("tiny")
    g = torch.Generator().manual_seed(1)
    frame0, frame2 = torch.rand(3, 32, 48, generator=g), torch.rand(3, 32, 48, generator=g)
    settings = CascadeSettings(levels=1, patch_size=(32, 48), overlap=8, steps=2)
    eager = interpolate(model, frame0, frame2, settings=settings)

    traced = runtime.CompiledOrEager(model.unet, backend="eager")  # dynamo tracing, no C++ toolchain
    model.compiled_unet = traced
    assert torch.allclose(interpolate(model, frame0, frame2, settings=settings), eager, atol=1e-5)
    assert traced.compiled is not None and traced.failed is None

    def broken(module, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("no working C++ compiler found")
        return run
    monkeypatch.setattr(torch, "compile", broken)
    model.compiled_unet = None
    with pytest.warns(RuntimeWarning, match="torch.compile .* not available here .*C\\+\\+ compiler"):
        fallen = interpolate(model, frame0, frame2, settings=CascadeSettings(levels=1, patch_size=(32, 48), overlap=8, steps=2,
                                                                            compile=True))
    assert torch.equal(fallen, eager) and model.compiled_unet.failed.startswith("RuntimeError")
