"""Nothing lost, nothing silently wrong: outputs never overwrite inputs and are written whole or
not at all, checkpoints with bad configs or non-finite weights are refused, and NaN settings
or NaN results stop with a clear error instead of black frames."""

import errno
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from hifi_core import (CascadeSettings, CheckpointError, HiFIInputError, NonFiniteOutputError, build_model,
                       interpolate, load_checkpoint, load_model, retime_sequence, save_checkpoint)
from hifi_core.checkpoint import BUNDLED_CHECKPOINT_DIR, DEFAULT_CHECKPOINT_NAME
from hifi_core.cli import main
from hifi_core.image_io import read_image, write_image

from test_cli import make_pair

DEFAULT = BUNDLED_CHECKPOINT_DIR / DEFAULT_CHECKPOINT_NAME
TINY = ["--preset", "tiny", "--levels", "2", "--patch", "16x16", "--overlap", "4", "--device", "cpu"]


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_interpolate_never_writes_over_an_input(tmp_path, link, capsys):
    a, b = make_pair(tmp_path)
    before = open(a, "rb").read()
    output = {"same": a, "symlink": tmp_path / "s.png", "hardlink": tmp_path / "h.png"}[link]
    if link == "symlink":
        os.symlink(a, output)
    elif link == "hardlink":
        os.link(a, output)
    code = main(["interpolate", a, b, "-o", str(output), *TINY])
    assert code == 2 and "would destroy the input" in capsys.readouterr().err
    assert open(a, "rb").read() == before


def test_interpolate_checks_its_output_folder_before_working(tmp_path, capsys, monkeypatch):
    import sys
    api = sys.modules["hifi_core.interpolate"]  # the module (the package exports a function of that name)
    a, b = make_pair(tmp_path)
    monkeypatch.setattr(api, "interpolate", lambda *args, **kwargs: pytest.fail("computed first"))
    code = main(["interpolate", a, b, "-o", str(tmp_path / "missing" / "mid.png"), *TINY])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_a_failed_write_leaves_neither_a_partial_file_nor_a_temporary(tmp_path, monkeypatch):
    target = tmp_path / "mid.png"
    target.write_bytes(b"the previous, complete result")

    def disk_full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(HiFIInputError, match="No space left on device"):
        write_image(target, torch.rand(3, 8, 8))
    assert target.read_bytes() == b"the previous, complete result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mid.png"]


def test_a_written_image_round_trips_and_no_temporary_is_left(tmp_path):
    image = torch.rand(3, 12, 20)
    write_image(tmp_path / "x.png", image, 16)
    back, depth = read_image(tmp_path / "x.png")
    assert depth == 16 and torch.allclose(back, image, atol=1 / 65535)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path):
    path = save_checkpoint(build_model("tiny"), tmp_path / "m.safetensors")
    tensors = load_file(str(path))
    name = sorted(k for k in tensors if k.endswith("weight"))[3]
    tensors[name][..., 0] = float("nan")
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.") + ".*NaN"):
        load_checkpoint(path)


@pytest.mark.parametrize("config", ['[1, 2]', '{"unet": {"base_channels": 0}}',
                                    '{"unet": {"base_channels": 1000000000}}',
                                    '{"unet": {"attention_heads": 0}}', '{"unet": {"norm_groups": 0}}',
                                    '{"unet": {"dropout": "half"}}', '{"diffusion": {"residual_scale": NaN}}'])
def test_a_bad_stored_config_is_a_checkpoint_error_and_info_goes_on(tmp_path, config, capsys):
    bad = tmp_path / "bad.safetensors"
    save_file({"x": torch.zeros(1)}, str(bad), metadata={"format": "hifi", "format_version": "1",
                                                          "model_config": config})
    save_checkpoint(build_model("tiny"), tmp_path / "good.safetensors")
    with pytest.raises(CheckpointError, match="model config is invalid"):
        load_checkpoint(bad)
    assert main(["info", "--checkpoint-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "bad.safetensors\n    unreadable" in out and "good.safetensors\n    good.safetensors: preset tiny" in out


@pytest.mark.parametrize("eta", [float("nan"), -0.1, 1e6])
def test_eta_outside_zero_to_one_is_refused(eta):
    with pytest.raises(HiFIInputError, match="eta"):
        CascadeSettings(eta=eta)


def test_a_nan_result_is_an_error_not_a_black_frame(tmp_path):
    model = build_model("tiny")
    with torch.no_grad():
        model.unet.out_conv.bias.fill_(float("nan"))  # weights damaged after loading
    frame = torch.rand(3, 32, 32)
    with pytest.raises(NonFiniteOutputError, match="NaN or inf.*precision"):
        interpolate(model, frame, frame, 0.5, settings=CascadeSettings(levels=1, patch_size=(32, 32), overlap=8))
    with pytest.raises(NonFiniteOutputError):
        write_image(tmp_path / "never.png", torch.full((3, 4, 4), float("nan")))
    assert not list(tmp_path.iterdir())


# --- the Python API takes what Python users pass and names what it refuses ---------------

def _tiny_settings():
    return CascadeSettings(levels=1, patch_size=(32, 32), overlap=8)


@pytest.mark.parametrize("tau", [np.float32(0.5), np.float64(0.25), torch.tensor(0.5), 1 / 3])
def test_numpy_and_torch_scalars_are_taus(tau):
    frame = torch.rand(3, 32, 32)
    out = interpolate(build_model("tiny"), frame, frame, tau, settings=_tiny_settings())
    assert out.shape == (3, 32, 32)


@pytest.mark.parametrize("kwargs, message", [
    (dict(source_fps=24, target_fps=1e-9), "target_fps"),
    (dict(source_fps=float("nan"), target_fps=30), "source_fps"),
    (dict(source_fps=24, target_fps=float("inf")), "target_fps"),
    (dict(multiplier=float("nan")), "multiplier"),
    (dict(multiplier=float("inf")), "multiplier"),
    (dict(multiplier=2.5), "multiplier"),
    (dict(multiplier="2"), "multiplier"),
])
def test_bad_rates_and_multipliers_are_named(kwargs, message):
    clip = torch.rand(3, 3, 32, 32)
    with pytest.raises(HiFIInputError, match=message):
        retime_sequence(build_model("tiny"), clip, settings=_tiny_settings(), **kwargs)


def test_numpy_rates_and_multipliers_work():
    clip = torch.rand(3, 3, 32, 32)
    model = build_model("tiny")
    assert retime_sequence(model, clip, multiplier=np.int64(2), settings=_tiny_settings()).shape[0] == 5
    out = retime_sequence(model, clip, source_fps=np.float32(24), target_fps=torch.tensor(48.0),
                          settings=_tiny_settings())
    assert out.shape[0] == 6  # a frame rate keeps the duration: 3 frames at 24 fps = 6 at 48


@pytest.mark.parametrize("call, message", [
    (lambda: interpolate(build_model("tiny"), torch.rand(0, 3, 32, 32), torch.rand(0, 3, 32, 32), 0.5),
     "empty batch"),
    (lambda: interpolate(build_model("tiny"), torch.rand(3, 32, 32), torch.rand(3, 32, 32), "0.5"), "tau"),
    (lambda: load_model("tiny", device="banana"), "not a device"),
    (lambda: load_checkpoint(DEFAULT, device="banana"), "not a device"),
    (lambda: CascadeSettings(steps=1.5), "steps"),
    (lambda: CascadeSettings(levels=0), "levels"),
    (lambda: CascadeSettings(overlap=float("nan")), "overlap"),
    (lambda: CascadeSettings(seed=-1), "seed"),
    (lambda: CascadeSettings(patch_size="256"), "patch_size"),
])
def test_bad_arguments_are_hifi_input_errors(call, message):
    with pytest.raises(HiFIInputError, match=message):
        call()
