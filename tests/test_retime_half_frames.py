"""The retime holds frames in half precision where the source's depth allows it: decoded in
bands, the other methods on float32 copies (their frames unchanged), the model on the half
frames (within a code value of the float32 path)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hifi_core import CascadeSettings, Interpolator, load_model, scenes
from hifi_core import video_io as vio
from hifi_core.retime import Encoding, RetimeTarget, RunOptions, engine, interpolators, retime_video
from hifi_core.retime.pipeline import QUEUE_BYTES, queue_depths
from hifi_core.scenes import thumbnail
from hifi_core.video_io import reader, writer
from media import clip_frame, decode_all, write_clip

CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "hifi-lean.safetensors"

LOSSLESS = Encoding(codec="ffv1", pix_fmt="bgr0")  # decoded output == the frames written


def decoded(path, **kwargs):
    return [f.image for f in vio.iter_frames(path, **kwargs)]


def decode_spy(monkeypatch) -> list:
    """Records the dtype the retime asks `iter_frames` for."""
    asked = []

    def spy(*args, dtype=torch.float32, **kwargs):
        asked.append(dtype)
        return vio.iter_frames(*args, dtype=dtype, **kwargs)
    monkeypatch.setattr(engine, "iter_frames", spy)
    return asked


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize("pix_fmt, bits, depth, dtype", [
    ("bgr0", 8, 8, torch.float16),
    ("yuv444p10le", 10, 10, torch.float16),
    ("yuv444p12le", 16, 12, torch.float32),
    ("gbrp16le", 16, 16, torch.float32),
])
def test_the_retime_decodes_by_the_source_depth_and_peers_get_float32(tmp_path, monkeypatch, pix_fmt, bits,
                                                                      depth, dtype):
    source = write_clip(tmp_path / "src.mkv", num_frames=3, codec="ffv1", pix_fmt=pix_fmt, bits=bits)
    assert vio.probe_video(source).bit_depth == depth and vio.decode_dtype(depth) == dtype
    asked, given = decode_spy(monkeypatch), []

    def peer(frame0, frame2, taus):
        given.append(frame0.dtype)
        return (frame0 + frame2).expand(len(taus), -1, -1, -1) / 2
    retime_video(source, tmp_path / "out.mkv", RetimeTarget(multiplier=2), interpolator=peer,
                 encoding=Encoding(codec="ffv1"))
    assert asked == [dtype] and given == [torch.float32, torch.float32]


def test_an_8_bit_source_written_deeper_is_decoded_to_float32_and_keeps_its_codes(tmp_path, monkeypatch):
    source = write_clip(tmp_path / "src.mkv", num_frames=2)
    asked = decode_spy(monkeypatch)
    retime_video(source, tmp_path / "deep", RetimeTarget(multiplier=2), method="blend",
                 encoding=Encoding(codec="png", bit_depth=16))
    written = cv2.imread(str(tmp_path / "deep" / "frame_000000.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert np.array_equal(written, clip_frame(0).astype(np.uint16) * 257)  # v / 255 * 65535, exactly
    assert asked == [torch.float32]


@pytest.mark.parametrize("bits", [8, 10])
def test_half_decoding_in_bands_is_the_float32_decode_rounded(tmp_path, monkeypatch, bits):
    source = write_clip(tmp_path / "src.mkv", num_frames=2, codec="ffv1", bits=bits)
    monkeypatch.setattr(reader, "DECODE_BAND_ROWS", 7)  # 48 rows: 7 bands, the last short
    full = decoded(source)
    half = decoded(source, dtype=torch.float16)
    monkeypatch.setattr(reader, "DECODE_BAND_ROWS", 10 ** 6)
    assert all(torch.equal(f, g) for f, g in zip(full, decoded(source)))  # bands change nothing
    assert [h.dtype for h in half] == [torch.float16] * 2 and [f.dtype for f in full] == [torch.float32] * 2
    assert all(torch.equal(h, f.half()) for h, f in zip(half, full))
    restored = [vio.as_float32(h, bits) for h in half]
    assert all(r.dtype == torch.float32 for r in restored)
    if bits == 8:  # the 8-bit codes come back exactly
        assert all(torch.equal(r, f) for r, f in zip(restored, full))
    else:  # half precision's rounding: half a step of 2 ** -11 at most
        assert max(float((r - f).abs().max()) for r, f in zip(restored, full)) <= 2 ** -12
        assert any(not torch.equal(r, f) for r, f in zip(restored, full))


def test_half_frames_are_written_with_the_codes_of_their_float32_values(monkeypatch):
    frame = torch.rand(3, 48, 20, generator=torch.Generator().manual_seed(3)) * 1.2 - 0.1
    frame[0, :4] = torch.arange(80).view(4, 20) / 255 + 0.5 / 255  # ties between codes
    for bits, scale in ((8, 255), (16, 65535)):
        for values in (frame, frame.half()):
            whole = (values.float() * scale).clamp(0, scale).add(0.5).permute(1, 2, 0).to(torch.int32).numpy()
            monkeypatch.setattr(writer, "ENCODE_BAND_ROWS", 5)
            codes = writer._to_hwc(values, bits)
            assert codes.dtype == (np.uint8 if bits == 8 else np.uint16) and codes.flags.c_contiguous
            assert np.array_equal(codes.astype(np.int32), whole)


def test_thumbnails_of_half_frames_are_made_in_bands_from_their_float32_values(monkeypatch):
    frame = torch.rand(3, 300, 40, generator=torch.Generator().manual_seed(5)).half()
    whole = thumbnail(frame.float())
    monkeypatch.setattr(scenes, "GREY_BAND_ROWS", 7)
    assert torch.equal(thumbnail(frame), whole) and whole.dtype == torch.float32


# ---------------------------------------------------------------- the retime


def test_peers_compute_on_the_float32_decode_of_an_8_bit_source(tmp_path):
    source = write_clip(tmp_path / "src.mkv", num_frames=5, speed=5)
    float32 = decoded(source)
    pairs = []

    def peer(frame0, frame2, taus):
        pairs.append((frame0[0], frame2[0]))
        return torch.stack([(1 - t) * frame0[0] + t * frame2[0] for t in taus])
    retime_video(source, tmp_path / "out.mkv", RetimeTarget(multiplier=3), interpolator=peer, encoding=LOSSLESS)
    assert len(pairs) == 4
    for n, (frame0, frame2) in enumerate(pairs):
        assert torch.equal(frame0, float32[n]) and torch.equal(frame2, float32[n + 1])


@pytest.mark.parametrize("run", [RunOptions(pipeline=True), RunOptions(pipeline=False)], ids=["pipelined", "sequential"])
def test_the_model_reads_half_frames_within_a_code_value_of_float32_frames(tmp_path, monkeypatch, run):
    # (frames this small are not reduced for the motion base; above about 1080p the flows of
    # the reduced half frames can differ locally, and the in-betweens with them)
    source = write_clip(tmp_path / "src.mkv", num_frames=4, width=96, height=64, speed=4)
    model = load_model(CHECKPOINT)
    settings = CascadeSettings(patch_size=(32, 32), overlap=8)
    seen = []
    called = Interpolator.__call__

    def spy(self, frame0, frame2, taus, pair=0):
        seen.append(frame0.dtype)
        return called(self, frame0, frame2, taus, pair)
    monkeypatch.setattr(Interpolator, "__call__", spy)
    half = tmp_path / "half.mkv"
    retime_video(source, half, RetimeTarget(multiplier=2), model=model, settings=settings, encoding=LOSSLESS, run=run)
    monkeypatch.setattr(interpolators, "decode_dtype", lambda bits: torch.float32)
    full = tmp_path / "float32.mkv"
    retime_video(source, full, RetimeTarget(multiplier=2), model=model, settings=settings, encoding=LOSSLESS, run=run)
    assert seen == [torch.float16] * 3 + [torch.float32] * 3
    ours, theirs = decode_all(half)[0].astype(int), decode_all(full)[0].astype(int)
    assert all(np.array_equal(ours[2 * i], clip_frame(i, width=96, height=64, speed=4)) for i in range(4))
    assert np.abs(ours - theirs).max() <= 1


def test_the_queues_count_the_decoded_frames_real_size():
    half_frame = vio.frames_nbytes(1, 2880, 5120, bytes_per_value=2)
    assert half_frame < QUEUE_BYTES / 2 < 2 * half_frame  # two half frames fit, one float32 frame
    assert queue_depths(2880, 5120, torch.float16) == (2, 1)  # outputs are float32
    assert queue_depths(2880, 5120, torch.float32) == (1, 1)
