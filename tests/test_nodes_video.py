"""The video nodes, without ComfyUI: Load Video, Video Combine and Retime Video, and the same
frames through the image path and the file path, run on the tiny preset."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
import torch

from comfy_stubs.clips import make_frames, write_clip
from node_pack import TINY


# --- video in and out --------------------------------------------------------------------------

def test_load_video_options_and_audio(nodes, comfy):
    frames = make_frames(10, 48, 64)
    write_clip(Path(comfy.folder_paths.get_input_directory()) / "clip.mp4", frames, fps=12)
    loader = nodes["HiFILoadVideo"]
    assert "clip.mp4" in loader.INPUT_TYPES()["required"]["video"][0]
    assert loader.VALIDATE_INPUTS("clip.mp4", "") is True
    assert "not in ComfyUI's input folder" in loader.VALIDATE_INPUTS("nope.mp4", "")
    images, fps, count, audio = loader().load("clip.mp4", "", 3, 2, 2)
    assert images.shape == (3, 48, 64, 3) and count == 3 and fps == 6.0
    assert images.dtype == torch.float32 and 0 <= float(images.min()) <= float(images.max()) <= 1
    # frame 2 of the source is the first loaded one (lossy h264: compare loosely)
    assert float((images[0] - frames[2]).abs().mean()) < 0.03
    assert float((images[1] - frames[4]).abs().mean()) < 0.03
    assert audio["sample_rate"] == 16000 and audio["waveform"].shape[:2] == (1, 1)
    # 3 frames at 2-frame steps = 0.5 s of the 12 fps source
    assert abs(audio["waveform"].shape[-1] - 8000) <= 1100


def test_load_video_refuses_what_does_not_fit(nodes, comfy, monkeypatch, pack):
    write_clip(Path(comfy.folder_paths.get_input_directory()) / "clip.mp4", make_frames(10, 48, 64),
               fps=12, audio_hz=None)
    monkeypatch.setattr(pack.hifi_core.runtime, "available_memory_bytes", lambda device=None: 48 * 64 * 3 * 4 * 5)
    with pytest.raises(MemoryError, match="frame cap"):
        nodes["HiFILoadVideo"]().load("clip.mp4", "", 0, 0, 1)
    images, _, count, audio = nodes["HiFILoadVideo"]().load("clip.mp4", "", 2, 0, 1)
    assert count == 2 and audio is None


def test_load_video_path_input_and_errors(nodes, comfy, tmp_path):
    clip = write_clip(tmp_path / "elsewhere" / "a.mp4", make_frames(4, 32, 32), fps=8, audio_hz=None)
    _, fps, count, _ = nodes["HiFILoadVideo"]().load("", str(clip), 0, 0, 1)
    assert (fps, count) == (8.0, 4)
    with pytest.raises(ValueError, match="input 'path'"):
        nodes["HiFILoadVideo"]().load("", str(tmp_path / "missing.mp4"), 0, 0, 1)
    with pytest.raises(ValueError, match="skip_first"):
        nodes["HiFILoadVideo"]().load("", str(clip), 0, 50, 1)


@pytest.mark.parametrize("fmt, suffix", [("h264-mp4", ".mp4"), ("prores-mov", ".mov"),
                                         ("png-sequence", ""), ("h265-mp4", ".mp4"), ("ffv1-mkv", ".mkv")])
def test_video_combine_writes_previews_and_embeds_the_workflow(nodes, comfy, fmt, suffix):
    frames = make_frames(4, 48, 64)
    audio = {"waveform": torch.sin(torch.linspace(0, 600, 16000))[None, None] * 0.2, "sample_rate": 16000}
    workflow = {"nodes": [{"id": 1, "type": "HiFIVideoCombine"}]}
    result = nodes["HiFIVideoCombine"]().combine(frames, 8.0, "HiFI/test", fmt, 18, "8", audio=audio,
                                                 prompt={"1": {"class_type": "HiFIVideoCombine"}},
                                                 extra_pnginfo={"workflow": workflow})
    (path,) = result["result"]
    entry = result["ui"]["hifi_video"][0]
    assert Path(path).name.endswith(suffix) and Path(path).exists()
    assert entry["frame_count"] == 4 and entry["frame_rate"] == 8.0 and entry["file_subfolder"] == "HiFI"
    preview_root = comfy.folder_paths.get_output_directory() if entry["type"] == "output" \
        else comfy.folder_paths.get_temp_directory()
    preview = Path(preview_root) / entry["subfolder"] / entry["filename"]
    with av.open(str(preview)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    prompt = {"1": {"class_type": "HiFIVideoCombine"}}
    if fmt == "png-sequence":
        from hifi_core.image_io import read_png_text

        pngs = sorted(Path(path).glob("frame_*.png"))
        assert len(pngs) == 4
        assert json.loads((Path(path) / "workflow.json").read_text())["workflow"] == workflow
        for png in pngs:  # where the frontend reads a PNG's graph, as core SaveImage writes it
            text = read_png_text(png)
            assert json.loads(text["workflow"]) == workflow and json.loads(text["prompt"]) == prompt
        return
    with av.open(path) as container:
        stream = container.streams.video[0]
        assert sum(1 for _ in container.decode(stream)) == 4
        # the keys the frontend reads from a video, as core SaveVideo writes them (Matroska
        # stores tag names upper-cased, for core's files too)
        tags = {key.lower(): value for key, value in container.metadata.items()}
        assert json.loads(tags["workflow"]) == workflow and json.loads(tags["prompt"]) == prompt
        assert json.loads(tags["comment"])["workflow"] == workflow
    with av.open(path) as container:
        assert container.streams.audio, "audio was not muxed"


def test_video_combine_errors(nodes, comfy):
    with pytest.raises(ValueError, match="input 'fps'"):
        nodes["HiFIVideoCombine"]().combine(make_frames(2, 32, 32), 0.0, "x", "h264-mp4", 18, "8")
    with pytest.raises(ValueError, match="input 'format'"):
        nodes["HiFIVideoCombine"]().combine(make_frames(2, 32, 32), 8.0, "x", "gif", 18, "8")


def test_retime_video_streams_file_to_file(nodes, comfy, tiny_model):
    write_clip(Path(comfy.folder_paths.get_input_directory()) / "clip.mp4", make_frames(6, 48, 64),
               fps=12)
    node = nodes["HiFIRetimeVideo"]
    assert node.VALIDATE_INPUTS("clip.mp4", "") is True
    args = dict(hifi_model=tiny_model, video="clip.mp4", path="", multiplier=2, target_fps=0.0,
                slow_motion=False, scene_detect=True, scene_threshold=0.15, dedup=False,
                format="h264-mp4", crf=18, filename_prefix="HiFI/retime", levels=2,
                patch_width=32, patch_height=32, overlap=8, steps=1, samples=1, seed=0,
                resume=False)
    workflow = {"nodes": [{"id": 1, "type": "HiFIRetimeVideo"}]}
    result = node().retime(**args, prompt={"1": {"class_type": "HiFIRetimeVideo"}},
                           extra_pnginfo={"workflow": workflow})
    path, fps, count, video_out = result["result"]
    assert video_out.get_stream_source() == path  # a core VIDEO for Save Video
    assert fps == 24.0 and count == 12  # the duration is kept: 6 frames at 12 fps -> 12 at 24
    with av.open(path) as container:
        assert sum(1 for _ in container.decode(container.streams.video[0])) == 12
        assert container.streams.audio
        assert json.loads(container.metadata["comment"])["workflow"] == workflow
        assert json.loads(container.metadata["workflow"]) == workflow  # joined segments keep it
    assert result["ui"]["hifi_video"][0]["filename"] == Path(path).name
    assert comfy.utils.PROGRESS_UPDATES[-1][1:] == (12, 12)
    comfy.model_management.INTERRUPT_AFTER_CHECKS[0] = 4
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        node().retime(**dict(args, target_fps=30.0))
    with pytest.raises(ValueError, match="slow_motion"):
        node().retime(**dict(args, target_fps=30.0, slow_motion=True))


def test_the_image_path_and_the_file_path_give_the_same_number_of_frames_at_a_target_fps(nodes, comfy, tiny_model):
    """10 frames at 29.97 fps to 60 fps: 21 frames (the duration kept) through HiFI Interpolate
    and through HiFI Retime Video, as one timeline (hifi_core.timeline) says."""
    from fractions import Fraction

    frames = make_frames(10, 48, 64)
    write_clip(Path(comfy.folder_paths.get_input_directory()) / "ntsc.mp4", frames, fps=Fraction(30000, 1001))
    image_out, image_fps, _, image_video = nodes["HiFIInterpolate"]().interpolate(
        tiny_model, frames, 2, 60.0, scene_cuts="off", scene_threshold=0.15, fps=30000 / 1001, **TINY)
    result = nodes["HiFIRetimeVideo"]().retime(
        hifi_model=tiny_model, video="ntsc.mp4", path="", multiplier=2, target_fps=60.0, slow_motion=False,
        scene_detect=False, scene_threshold=0.15, dedup=False, format="h264-mp4", crf=18,
        filename_prefix="HiFI/ntsc", levels=2, patch_width=32, patch_height=32, overlap=8, steps=1,
        samples=1, seed=0, resume=False)
    _, file_fps, file_count, _ = result["result"]
    assert image_out.shape[0] == file_count == 21 and image_fps == file_fps == 60.0
    components = image_video.get_components()  # the IMAGE path hands a core VIDEO on too
    assert torch.equal(components.images, image_out) and components.frame_rate == 60
    assert torch.equal(image_out[-1], frames[-1])  # the last frame is held to the end


def test_retime_video_takes_a_core_video_from_a_file_or_from_memory(nodes, comfy, tiny_model):
    """Core Load Video -> HiFI Retime Video -> core Save Video, without unpacking frames."""
    import io

    clip = write_clip(Path(comfy.folder_paths.get_input_directory()) / "core.mp4", make_frames(5, 48, 64), fps=12)
    node = nodes["HiFIRetimeVideo"]
    assert node.VALIDATE_INPUTS("", "", input_types={"source_video": "VIDEO"}) is True
    assert node.VALIDATE_INPUTS("", "") is not True  # no file and no VIDEO: named error
    args = dict(hifi_model=tiny_model, video="", path="", multiplier=2, target_fps=0.0, slow_motion=False,
                scene_detect=False, scene_threshold=0.15, dedup=False, format="h264-mp4", crf=18,
                filename_prefix="HiFI/core", levels=2, patch_width=32, patch_height=32, overlap=8,
                steps=1, samples=1, seed=0, resume=False)
    api = comfy.comfy_api
    for source in (api.InputImpl.VideoFromFile(str(clip)), api.InputImpl.VideoFromFile(io.BytesIO(clip.read_bytes()))):
        path, fps, count, video = node().retime(**args, source_video=source)["result"]
        assert fps == 24.0 and count == 10 and Path(video.get_stream_source()) == Path(path)
        with av.open(path) as container:
            assert sum(1 for _ in container.decode(container.streams.video[0])) == 10
    with pytest.raises(ValueError, match="VIDEO input"):
        node().retime(**args, source_video=object())


# --- one noise per pair, whatever the path ---------------------------------------------------

def test_same_seed_same_frames_through_the_image_path_the_file_path_and_a_resumed_file(
        pack, nodes, comfy, tiny_model, tmp_path):
    """Each pair's noise comes from (seed, pair index, tau, level), so HiFI Interpolate on an
    IMAGE batch, `retime_video` on the file and a retime cancelled and resumed agree."""
    import numpy as np

    core = pack.hifi_core
    retime = pack.hifi_core.retime
    frames = make_frames(5, 48, 64)
    clip = tmp_path / "clip.mkv"
    with av.open(str(clip), "w") as out:  # lossless, so both paths read the same pixels
        stream = out.add_stream("ffv1", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "bgr0"
        for image in frames:
            rgb = (image * 255).round().to(torch.uint8).numpy()
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))
    decoded = torch.stack([torch.from_numpy(f.to_ndarray(format="rgb24")) for f in av.open(str(clip)).decode(video=0)])
    images = decoded.float() / 255
    widgets = dict(levels=2, patch_width=32, patch_height=32, overlap=8, steps=2, samples=1)

    def image_path(seed):
        out, _, _, _ = nodes["HiFIInterpolate"]().interpolate(
            tiny_model, images, 2, 0.0, scene_cuts="off", scene_threshold=0.15, fps=12.0, seed=seed, **widgets)
        return (out * 255).round().to(torch.uint8).numpy()

    settings = core.CascadeSettings(levels=2, patch_size=(32, 32), overlap=8, steps=2, seed=5)
    lossless = dict(encoding=retime.Encoding(codec="ffv1", pix_fmt="bgr0"),
                    detection=retime.Detection(scene_cuts=False))
    twice = retime.RetimeTarget(multiplier=2)
    whole = tmp_path / "whole.mkv"
    retime.retime_video(clip, whole, twice, model=tiny_model.model, settings=settings, **lossless)
    file_frames = np.stack([f.to_ndarray(format="rgb24") for f in av.open(str(whole)).decode(video=0)])

    nodes_frames = image_path(5)
    assert nodes_frames.shape == (9, 48, 64, 3) and file_frames.shape[0] == 10  # the file keeps the duration
    assert np.abs(nodes_frames.astype(int) - file_frames[:9].astype(int)).max() <= 1
    other_seed = image_path(6)
    assert np.abs(other_seed.astype(int) - nodes_frames.astype(int)).max() > 8  # the noise matters

    calls = []

    def stop_after_two_pairs():
        return len(calls) >= 2

    resumed = tmp_path / "resumed.mkv"

    class Counting(core.Interpolator):
        def __call__(self, frame0, frame2, taus, pair=0):
            calls.append(pair)
            return super().__call__(frame0, frame2, taus, pair=pair)

    with pytest.raises(core.Cancelled):
        retime.retime_video(clip, resumed, twice, interpolator=Counting(tiny_model.model, settings),
                            run=retime.RunOptions(segment_seconds=0.1), cancel=stop_after_two_pairs, **lossless)
    retime.retime_video(clip, resumed, twice, interpolator=Counting(tiny_model.model, settings),
                        run=retime.RunOptions(segment_seconds=0.1, resume=True), **lossless)
    assert calls[:2] == [0, 1] and 0 not in calls[2:]  # the resumed run started later in the clip
    resumed_frames = np.stack([f.to_ndarray(format="rgb24") for f in av.open(str(resumed)).decode(video=0)])
    assert np.array_equal(resumed_frames, file_frames)
