"""Checkpoints: round trip, self-description, and every bad-file error."""

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from hifi_core import (CheckpointError, HiFIInputError, build_model, load_checkpoint, load_model,
                       read_checkpoint_config, save_checkpoint)
from hifi_core.config import PRESETS


def perturbed_tiny():
    torch.manual_seed(0)
    model = build_model("tiny")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model


def test_round_trip_restores_weights_and_config(tmp_path):
    model = perturbed_tiny()
    path = save_checkpoint(model, tmp_path / "m.safetensors", metadata={"steps": 12})
    assert read_checkpoint_config(path) == PRESETS["tiny"]
    loaded = load_checkpoint(path)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    x = torch.randn(1, 12, 16, 16)
    args = (torch.zeros(1), torch.full((1,), 0.5), torch.tensor([False]))
    assert torch.equal(model.unet(x, *args), loaded.unet(x, *args))
    assert not (tmp_path / "m.safetensors.tmp").exists()


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_pickle_is_refused_not_loaded(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="pickle.*never loads"):
        load_checkpoint(path)


def test_empty_and_truncated_files(tmp_path):
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty or truncated"):
        load_checkpoint(empty)
    good = save_checkpoint(perturbed_tiny(), tmp_path / "good.safetensors")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated|corrupt"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(struct.pack("<Q", 10 ** 12) + b"{}")
    with pytest.raises(CheckpointError, match="header length"):
        load_checkpoint(garbage)


def test_foreign_safetensors_file_is_named_as_such(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"conv.weight": torch.zeros(3, 3)}, str(path), metadata={"arch": "rife"})
    with pytest.raises(CheckpointError, match="not a HiFI checkpoint"):
        load_checkpoint(path)


def test_weights_that_do_not_match_their_config(tmp_path):
    small_weights = build_model("small").state_dict()
    path = tmp_path / "mismatch.safetensors"
    meta = {"format": "hifi", "format_version": "1", "model_config": PRESETS["tiny"].to_json()}
    save_file({k: v.contiguous() for k, v in small_weights.items()}, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        load_checkpoint(path)


def test_invalid_stored_config(tmp_path):
    path = tmp_path / "badconfig.safetensors"
    config = json.loads(PRESETS["tiny"].to_json())
    config["unet"]["channel_mults"] = [1, 2]
    meta = {"format": "hifi", "format_version": "1", "model_config": json.dumps(config)}
    save_file({"x": torch.zeros(1)}, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="stored model config is invalid"):
        load_checkpoint(path)


def test_load_model_by_preset_path_or_unknown_name(tmp_path):
    assert load_model("tiny").config == PRESETS["tiny"]
    path = save_checkpoint(perturbed_tiny(), tmp_path / "x.safetensors")
    assert load_model(str(path)).config.preset == "tiny"
    with pytest.raises(HiFIInputError, match="unknown model 'hifi-huge'.*Presets: tiny"):
        load_model("hifi-huge")


def test_header_length_starting_with_pk_is_still_safetensors(tmp_path):
    # 0x4B50 = 19,280: a header of that length begins with the bytes "PK" like a zip file.
    import struct

    from safetensors.torch import save_file

    from hifi_core.checkpoint import _check_safetensors_header

    path = tmp_path / "pk.safetensors"
    for pad in range(0, 400):
        save_file({"w": torch.zeros(1)}, str(path), metadata={"pad": "x" * (19_200 + pad)})
        if path.read_bytes()[:2] == b"PK":
            break
    assert struct.unpack("<Q", path.read_bytes()[:8])[0] & 0xFFFF == 0x4B50
    _check_safetensors_header(path)  # no error


@pytest.mark.parametrize("name", ["hifi-lean", "hifi-small"])
def test_every_bundled_checkpoint_loads_and_interpolates(name):
    """Both shipped files stay loadable: hifi-small predates `stem_factor` and `prediction`, and
    must get the behaviour from before those fields (no stem fold, v-prediction), not today's
    defaults (the lean preset's), which would not even match its weights."""
    from pathlib import Path

    from hifi_core import CascadeSettings, interpolate

    path = Path(__file__).resolve().parent.parent / "checkpoints" / f"{name}.safetensors"
    model = load_model(path)
    if name == "hifi-small":
        assert model.config.unet.stem_factor == 1 and model.config.diffusion.residual_base == "flow"
    g = torch.Generator().manual_seed(0)
    frame0, frame2 = torch.rand(3, 64, 96, generator=g), torch.rand(3, 64, 96, generator=g)
    middle = interpolate(model, frame0, frame2, 0.5, settings=CascadeSettings(levels=1, patch_size=(64, 96)))
    assert middle.shape == (3, 64, 96) and bool(torch.isfinite(middle).all())


def test_a_stored_config_without_a_later_field_keeps_the_behaviour_from_before_it(tmp_path):
    model = build_model("tiny")
    path = save_checkpoint(model, tmp_path / "old.safetensors")
    with open(path, "rb") as handle:
        header_length = struct.unpack("<Q", handle.read(8))[0]
        header = json.loads(handle.read(header_length))
        rest = handle.read()
    stored = json.loads(header["__metadata__"]["model_config"])
    del stored["unet"]["stem_factor"], stored["diffusion"]["prediction"]
    header["__metadata__"]["model_config"] = json.dumps(stored)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + rest)
    config = read_checkpoint_config(path)
    assert config.unet.stem_factor == 1 and config.diffusion.prediction == "v"
    assert config == PRESETS["tiny"]  # tiny states stem 1 and v: nothing moved
