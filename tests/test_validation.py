"""Bad inputs raise clear errors that name the input and the fix."""

import pytest
import torch

from hifi_core import CascadeSettings, HiFIInputError, build_model, interpolate, retime_sequence


@pytest.fixture(scope="module")
def model():
    return build_model("tiny")


def run(model, f0, f2, tau=0.5):
    return interpolate(model, f0, f2, tau, settings=CascadeSettings(levels=1, patch_size=(16, 16), overlap=4, steps=1))


@pytest.mark.parametrize("f0,f2,message", [
    (torch.rand(3, 16, 16), torch.rand(3, 16, 20), "differ in shape"),
    (torch.rand(1, 16, 16), torch.rand(1, 16, 16), "grayscale"),
    (torch.rand(4, 16, 16), torch.rand(4, 16, 16), "RGBA"),
    (torch.rand(16, 16, 3), torch.rand(16, 16, 3), "16 channels"),
    (torch.full((3, 16, 16), float("nan")), torch.rand(3, 16, 16), "frame0 contains NaN"),
    (torch.rand(3, 16, 16), torch.rand(3, 16, 16) * 255, r"frame2 .*divide by 255"),
    (torch.randint(0, 255, (3, 16, 16), dtype=torch.uint8), torch.rand(3, 16, 16), "float"),
    (torch.rand(3, 2, 16), torch.rand(3, 2, 16), "at least 4x4"),
    (torch.rand(16, 16), torch.rand(16, 16), r"\[3, H, W\]"),
])
def test_bad_frames(model, f0, f2, message):
    with pytest.raises(HiFIInputError, match=message):
        run(model, f0, f2)


@pytest.mark.parametrize("tau", [0.0, 1.0, -0.2, 1.5, []])
def test_bad_tau(model, tau):
    with pytest.raises(HiFIInputError, match="tau"):
        run(model, torch.rand(3, 16, 16), torch.rand(3, 16, 16), tau)


def test_single_frame_sequence(model):
    with pytest.raises(HiFIInputError, match="at least two frames"):
        retime_sequence(model, torch.rand(1, 3, 16, 16), multiplier=2)


@pytest.mark.parametrize("kwargs,message", [
    (dict(steps=0), "steps"), (dict(samples=0), "samples"), (dict(precision="fp8"), "precision"),
    (dict(patch_size=(16,)), "patch_size"), (dict(patch_batch=0), "patch_batch"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(HiFIInputError, match=message):
        CascadeSettings(**kwargs)


@pytest.mark.parametrize("bad", [None, float("nan"), float("inf")])
def test_a_cropped_frame_is_scanned_in_row_bands_of_itself(bad, monkeypatch):
    # The cascade's finest estimate is its padded buffer cropped: flattening that view to scan
    # it copied it whole (400 MB at 8K, the peak of an 8K run).
    import hifi_core.validation as validation

    monkeypatch.setattr(validation, "SCAN_CHUNK_VALUES", 3 * 40 * 8)
    padded = torch.rand(1, 3, 72, 40)
    cropped = padded[..., :70, :33]
    if bad is not None:
        cropped[0, 1, 65, 30] = bad
    chunks = validation._scan_chunks(cropped)
    assert len(chunks) > 1 and sum(chunk.numel() for chunk in chunks) == cropped.numel()
    assert all(chunk.untyped_storage().data_ptr() == padded.untyped_storage().data_ptr() for chunk in chunks)
    expected = None if bad is not None else (float(cropped.min()), float(cropped.max()))
    assert validation.finite_range(cropped) == expected
