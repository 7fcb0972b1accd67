"""hifi_core.video_io: probing, streaming decode, encoding, audio, colour tags, errors."""

from __future__ import annotations

import warnings
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from hifi_core import video_io as vio
from hifi_core.errors import HiFIInputError
from media import audio_duration, clip_frame, decode_all, tone, write_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {
        "lossless": write_clip(d / "lossless.mkv", num_frames=12, audio=True),
        "h264": write_clip(d / "h264.mp4", num_frames=24, fps=Fraction(24000, 1001),
                           codec="libx264", audio=True, color_range=1, colorspace=1),
        "ten": write_clip(d / "ten.mkv", num_frames=4, bits=10),
    }


def test_probe_reports_geometry_rate_length_audio_and_colour(clips):
    info = vio.probe_video(clips["h264"])
    assert (info.width, info.height) == (64, 48)
    assert info.fps == Fraction(24000, 1001)
    assert info.frame_count == 24 and info.frame_count_exact
    assert info.duration == pytest.approx(24 * 1001 / 24000, abs=1e-3)
    assert info.has_audio and info.audio_codec == "aac" and info.audio_channels == 2
    assert info.codec == "h264" and info.pix_fmt == "yuv420p" and info.bit_depth == 8
    assert (info.color_range, info.color_matrix) == ("tv", "bt709")


def test_probe_estimates_frame_count_when_container_lacks_it(clips):
    info = vio.probe_video(clips["lossless"])  # Matroska stores no frame count
    assert not info.frame_count_exact
    assert info.frame_count == 12 == vio.count_frames(clips["lossless"])
    assert vio.probe_video(clips["ten"]).bit_depth == 10


def test_iter_frames_streams_exact_pictures_and_times(clips):
    frames = list(vio.iter_frames(clips["lossless"]))
    assert [f.index for f in frames] == list(range(12))
    assert [f.time for f in frames] == pytest.approx([i / 24 for i in range(12)], abs=1e-3)
    for f in frames:
        assert f.image.dtype == torch.float32 and f.image.shape == (3, 48, 64)
        got = (f.image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert np.array_equal(got, clip_frame(f.index))  # bgr0 FFV1 is lossless RGB


def test_iter_frames_start_every_nth_max_frames_and_numpy(clips):
    picked = list(vio.iter_frames(clips["lossless"], start=3, every_nth=4, max_frames=2, as_numpy=True))
    assert [f.index for f in picked] == [3, 7]
    assert isinstance(picked[0].image, np.ndarray) and picked[0].image.shape == (3, 48, 64)
    with pytest.raises(HiFIInputError, match="every_nth"):
        next(vio.iter_frames(clips["lossless"], every_nth=0))


def test_ten_bit_source_keeps_its_precision_by_default(clips):
    expected = [clip_frame(i, bits=16).transpose(2, 0, 1) / 65535.0 for i in range(4)]
    deep = [f.image.numpy() for f in vio.iter_frames(clips["ten"])]
    shallow = [f.image.numpy() for f in vio.iter_frames(clips["ten"], as_16bit=False)]
    err_deep = np.mean([np.abs(a - b).mean() for a, b in zip(deep, expected)])
    err_shallow = np.mean([np.abs(a - b).mean() for a, b in zip(shallow, expected)])
    assert err_deep < 0.5 / 255 and err_deep < err_shallow / 2


@pytest.mark.parametrize("codec,suffix,pix_fmt,bits", [
    ("h264", ".mp4", "yuv420p", 8), ("h265", ".mkv", "yuv420p10le", 10),
    ("prores", ".mov", "yuv422p10le", 10), ("ffv1", ".mkv", "yuv444p16le", 16),
])
def test_writer_round_trip(tmp_path, clips, codec, suffix, pix_fmt, bits):
    src = [f.image for f in vio.iter_frames(clips["lossless"])]
    out = tmp_path / f"out{suffix}"
    with vio.VideoWriter(out, Fraction(30000, 1001), 64, 48, codec=codec, bit_depth=bits) as w:
        for frame in src:
            w.write(frame)
    info = vio.probe_video(out)
    assert info.pix_fmt == pix_fmt and info.bit_depth == bits and info.fps == Fraction(30000, 1001)
    back = list(vio.iter_frames(out))
    assert len(back) == len(src)
    err = np.mean([float((a - b.image).abs().mean()) for a, b in zip(src, back)])
    assert err < (0.02 if codec in ("h264", "h265") else 0.004)
    assert [b.time for b in back] == pytest.approx([i * 1001 / 30000 for i in range(12)], abs=2e-3)


def test_png_sequence_8_and_16_bit(tmp_path):
    import cv2

    frame = torch.linspace(0, 1, 64).repeat(3, 48, 1)
    for bits, dtype in ((8, np.uint8), (16, np.uint16)):
        d = tmp_path / f"seq{bits}"
        with vio.VideoWriter(d, 24, 64, 48, codec="png", bit_depth=bits) as w:
            w.write(torch.stack([frame, frame]))
        files = sorted(p.name for p in d.iterdir())
        assert files == ["frame_000000.png", "frame_000001.png"]
        img = cv2.imread(str(d / files[1]), cv2.IMREAD_UNCHANGED)
        assert img.dtype == dtype
        assert img[0, -1, 0] == np.iinfo(dtype).max and img[0, 0, 0] == 0


def test_colour_tags_are_carried_over(tmp_path, clips):
    info = vio.probe_video(clips["h264"])
    out = tmp_path / "tagged.mp4"
    with vio.VideoWriter(out, info.fps, 64, 48, color=vio.ColorInfo(1, 1, 1, 1),
                         metadata={"comment": "workflow"}) as w:
        for f in vio.iter_frames(clips["h264"], max_frames=3):
            w.write(f.image)
    tags = vio.probe_video(out).color.names
    assert tags == {"range": "tv", "matrix": "bt709", "primaries": "bt709", "transfer": "bt709"}
    with av.open(str(out)) as c:
        assert c.metadata.get("comment") == "workflow"


def test_a_pixel_format_that_contradicts_the_bit_depth_is_refused(tmp_path):
    with pytest.raises(HiFIInputError, match="yuv420p10le is 10-bit but --bit-depth 8"):
        vio.resolve_output_format(tmp_path / "a.mkv", "h265", bit_depth=8, pix_fmt="yuv420p10le")
    assert vio.resolve_output_format(tmp_path / "a.mkv", "h265", bit_depth=10, pix_fmt="yuv420p10le").bit_depth == 10


def test_losing_bits_is_never_silent(tmp_path):
    with pytest.warns(UserWarning, match="8-bit output from 10-bit data because vp9"):
        vio.resolve_output_format(tmp_path / "a.webm", "vp9", source_bit_depth=10)
    with pytest.warns(UserWarning, match="as requested"):
        vio.resolve_output_format(tmp_path / "a.mkv", "h265", bit_depth=8, source_bit_depth=10)
    with pytest.warns(UserWarning, match="few players"):  # h264 stays 8-bit unless asked
        assert vio.resolve_output_format(tmp_path / "a.mp4", "h264", source_bit_depth=10).bit_depth == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fmts = [vio.resolve_output_format(tmp_path / "a.mp4", "h264", bit_depth=10, source_bit_depth=10),
                vio.resolve_output_format(tmp_path / "a.mp4", "h265", source_bit_depth=10),
                vio.resolve_output_format(tmp_path / "a.mov", "prores", source_bit_depth=10),
                vio.resolve_output_format(tmp_path / "d", "png", source_bit_depth=10)]
    assert [f.pix_fmt for f in fmts] == ["yuv420p10le", "yuv420p10le", "yuv422p10le", "rgb48le"]


def _audio_packets(path):
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def test_audio_is_copied_untouched_and_trimmed_to_the_video(tmp_path, clips):
    out = tmp_path / "copy.mkv"
    with vio.VideoWriter(out, 24, 64, 48, codec="ffv1", audio_from=clips["h264"],
                         trim_audio=False) as w:
        for f in vio.iter_frames(clips["h264"]):
            w.write(f.image)
    assert _audio_packets(out) == _audio_packets(clips["h264"])
    short = tmp_path / "short.mp4"
    with vio.VideoWriter(short, 24, 64, 48, audio_from=clips["h264"]) as w:
        for f in vio.iter_frames(clips["h264"], max_frames=12):
            w.write(f.image)
    assert audio_duration(short) == pytest.approx(0.5, abs=0.05)


def test_audio_time_stretch_and_waveform_mux(tmp_path, clips):
    slow = vio.write_audio_file(tmp_path / "slow.mka", audio_from=clips["lossless"], tempo=0.5)
    assert audio_duration(slow) == pytest.approx(2 * 12 / 24, abs=0.05)
    wave = torch.from_numpy(tone(24000, 48000))[None]  # ComfyUI AUDIO is [B, C, T]
    out = tmp_path / "wave.mp4"
    with vio.VideoWriter(out, 24, 64, 48, audio_waveform={"waveform": wave, "sample_rate": 48000},
                         trim_audio=False) as w:
        for f in vio.iter_frames(clips["lossless"]):
            w.write(f.image)
    data, rate = vio.read_audio(out)
    assert rate == 48000 and data.shape[0] == 2
    assert data.shape[1] / rate == pytest.approx(0.5, abs=0.05)
    assert float(data[:, 4800:19200].pow(2).mean().sqrt()) == pytest.approx(0.3 / 2 ** 0.5, rel=0.05)


def test_read_audio_matches_the_tone(clips):
    data, rate = vio.read_audio(clips["lossless"])  # PCM: exact up to 16-bit rounding
    assert data.dtype == torch.float32 and rate == 48000
    ref = tone(data.shape[1], rate)
    assert np.abs(data.numpy() - ref).max() < 2e-4


def test_join_segments_equals_one_encode(tmp_path, clips):
    frames = [f.image for f in vio.iter_frames(clips["lossless"])]
    parts = []
    for i, (a, b) in enumerate([(0, 5), (5, 12)]):
        p = tmp_path / f"p{i}.mp4"
        with vio.VideoWriter(p, 24, 64, 48) as w:
            for f in frames[a:b]:
                w.write(f)
        parts.append(p)
    whole = tmp_path / "whole.mp4"
    assert vio.join_segments(parts, whole, 24, audio_from=clips["lossless"]) == 12
    info = vio.probe_video(whole)
    assert info.frame_count == 12 and info.has_audio
    got, times, rate = decode_all(whole)
    assert times == pytest.approx([i / 24 for i in range(12)], abs=1e-3)
    seg = np.concatenate([decode_all(p)[0] for p in parts])
    assert np.array_equal(got, seg)  # packets copied, not re-encoded


def test_input_errors_are_clear(tmp_path):
    with pytest.raises(HiFIInputError, match="not found"):
        vio.probe_video(tmp_path / "missing.mp4")
    with pytest.raises(HiFIInputError, match="directory"):
        vio.probe_video(tmp_path)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(HiFIInputError, match="could not read"):
        vio.probe_video(text)
    audio_only = vio.write_audio_file(tmp_path / "a.mka", waveform=tone(4800, 48000), sample_rate=48000)
    with pytest.raises(HiFIInputError, match="no video stream"):
        vio.probe_video(audio_only)


def test_output_errors_are_clear(tmp_path):
    with pytest.raises(HiFIInputError, match="h264, h265"):
        vio.VideoWriter(tmp_path / "a.mp4", 24, 64, 48, codec="mpeg2")
    with pytest.raises(HiFIInputError, match=r"\.mov"):
        vio.VideoWriter(tmp_path / "a.mp4", 24, 64, 48, codec="prores")
    with pytest.raises(HiFIInputError, match="does not exist"):
        vio.VideoWriter(tmp_path / "no" / "a.mp4", 24, 64, 48)
    with pytest.raises(HiFIInputError, match="even width"):
        vio.VideoWriter(tmp_path / "a.mp4", 24, 63, 48)
    with pytest.raises(HiFIInputError, match="does not support pixel format"):
        vio.VideoWriter(tmp_path / "a.mp4", 24, 64, 48, pix_fmt="rgb565")
    with vio.VideoWriter(tmp_path / "a.mp4", 24, 64, 48) as w:
        with pytest.raises(HiFIInputError, match="differs"):
            w.write(torch.zeros(3, 32, 32))


def test_memory_estimate_refuses_before_loading():
    assert vio.frames_nbytes(10, 1080, 1920) == 10 * 1080 * 1920 * 3 * 4
    need = vio.check_frames_fit(10, 100, 100, available=10 ** 9)
    assert need == 1_200_000
    with pytest.raises(HiFIInputError, match="about 34 frames fit"):
        vio.check_frames_fit(5000, 1080, 1920, available=2 ** 30)


@pytest.mark.parametrize("suffix, codec", [(".mp4", "h264"), (".mov", "prores"), (".mkv", "ffv1"), (".webm", "vp9")])
def test_every_container_keeps_comfyui_workflow_tags(tmp_path, suffix, codec):
    """ComfyUI's frontend reads "workflow" and "prompt" tags from a dropped video; MP4/MOV keep
    such keys only with movflags=use_metadata_tags (core SaveVideo sets it too)."""
    import json

    import av
    import torch

    from hifi_core.video_io import VideoWriter

    tags = {"workflow": json.dumps({"nodes": [{"id": 1}]}), "prompt": json.dumps({"1": {}})}
    path = tmp_path / f"tagged{suffix}"
    with VideoWriter(path, 8, 32, 32, codec=codec, metadata=tags) as writer:
        for _ in range(3):
            writer.write(torch.rand(3, 32, 32))
    with av.open(str(path)) as container:
        found = {key.lower(): value for key, value in container.metadata.items()}
    assert found["workflow"] == tags["workflow"] and found["prompt"] == tags["prompt"]


def test_png_text_chunks_round_trip_and_the_image_is_unchanged(tmp_path):
    import cv2
    import numpy as np

    from hifi_core.image_io import png_with_text, read_png_text

    image = (np.arange(12 * 16 * 3) % 256).astype(np.uint8).reshape(12, 16, 3)
    ok, encoded = cv2.imencode(".png", image)
    text = {"workflow": '{"nodes": []}', "prompt": "{}", "note": "caf\u00e9 \u2192 60 fps"}
    path = tmp_path / "tagged.png"
    path.write_bytes(png_with_text(encoded.tobytes(), text))
    assert read_png_text(path) == text
    assert np.array_equal(cv2.imread(str(path)), image)


def test_decoding_holds_no_frame_but_the_one_handed_out(tmp_path):
    # PyAV's container.decode keeps each packet's frames listed until the next packet: at 8K
    # the frame a caller was done with (133 MB) sat under all the interpolation.
    import sys

    from hifi_core.video_io.reader import decoded_frames

    path = write_clip(tmp_path / "c.mkv", num_frames=5, width=64, height=48)
    with av.open(str(path)) as container:
        pyav_frames = container.decode(container.streams.video[0])
        theirs = next(pyav_frames)
        assert sys.getrefcount(theirs) > 2  # PyAV's suspended generator holds it too
    with av.open(str(path)) as container:
        frames = decoded_frames(container, container.streams.video[0])
        ours = [next(frames) for _ in range(2)][-1]
        assert sys.getrefcount(ours) == 2  # this name and getrefcount's argument
        assert len(list(frames)) == 3
    reference, _, _ = decode_all(path)
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in decoded_frames(container, container.streams.video[0])]
    assert len(decoded) == len(reference) and all(np.array_equal(a, b) for a, b in zip(decoded, reference))


@pytest.mark.parametrize("budget_frames,expected", [(100, "AUTO"), (3, "AUTO"), (1, "SLICE")])
def test_decoder_threads_keep_the_frames_in_flight_within_the_budget(tmp_path, monkeypatch, budget_frames, expected):
    # frame threading holds a frame per thread: 17 x 133 MB for 8K RGB on sixteen cores
    from hifi_core.video_io import reader

    path = write_clip(tmp_path / "c.mkv", num_frames=3, width=64, height=48)
    monkeypatch.setattr(reader, "DECODE_FRAMES_BUDGET", budget_frames * 64 * 48 * 4)
    monkeypatch.setattr(reader.os, "cpu_count", lambda: 8)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        reader.set_decoder_threads(stream)
        assert stream.thread_type.name == expected
        if budget_frames == 3:
            assert stream.codec_context.thread_count == 3
    reference, _, _ = decode_all(path)
    codes = [(f.image * 255).round().byte().permute(1, 2, 0).numpy() for f in vio.iter_frames(path)]
    assert len(codes) == 3 and all(np.array_equal(a, b) for a, b in zip(codes, reference))
