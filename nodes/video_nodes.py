"""HiFI Load Video, Video Combine and Retime Video: files <-> IMAGE batches, over hifi_core.

Retime Video is file in, file out: `hifi_core.retime.retime_video` streams decode ->
interpolate -> encode with bounded memory, for clips too long to load as an IMAGE batch.


Load Video decodes with `video_io.iter_frames` (colour-tag aware, 10-bit kept as float) into
an IMAGE [N, H, W, 3] float32 in [0, 1], preallocated from the probed frame count after
`video_io.check_frames_fit` has refused anything that would not fit in RAM. Audio comes out
as ComfyUI AUDIO {"waveform": [1, C, S] float32, "sample_rate": int}, cut to the loaded span.

Video Combine encodes with `video_io.VideoWriter` into ComfyUI's output folder and returns a
"ui" entry (`hifi_video`) that the pack's web extension turns into an inline player. The
ComfyUI workflow and prompt are embedded where ComfyUI reads them back when the file is
dropped on the canvas: `workflow`/`prompt` container tags (as core SaveVideo) or PNG text
chunks (as core SaveImage), plus all of it in `comment` (where other packs look) and a
workflow.json next to a PNG sequence.
"""

from __future__ import annotations

import json
import time
import math
import os
from fractions import Fraction
from pathlib import Path

import torch
import torch.nn.functional as F

from ..hifi_core import video_io
from ..hifi_core.errors import HiFIInputError
from ..hifi_core.retime import Detection, Encoding, RetimeTarget, RunOptions, retime_video
from ..hifi_core.scenes import DEFAULT_SCENE_THRESHOLD
from . import comfy_bridge, engine, pace, widgets
from .inputs import resolve_video_path

CATEGORY = "HiFI"
FORMATS = {  # widget value -> (codec, extension); never reorder (saved workflows keep the value)
    "h264-mp4": ("h264", ".mp4"),
    "prores-mov": ("prores", ".mov"),
    "png-sequence": ("png", ""),
    "h265-mp4": ("h265", ".mp4"),
    "ffv1-mkv": ("ffv1", ".mkv"),
}
BROWSER_PLAYABLE = {"h264-mp4"}
PREVIEW_MAX_WIDTH = 640


class HiFILoadVideo:
    """A video file -> IMAGE batch, fps, frame count and AUDIO."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "FLOAT", "INT", "AUDIO")
    RETURN_NAMES = ("frames", "fps", "frame_count", "audio")
    OUTPUT_TOOLTIPS = ("The loaded frames [N, H, W, 3] in [0, 1].",
                       "Frame rate of the loaded frames (the source rate / every_nth).",
                       "Number of frames loaded.",
                       "The audio of the loaded span (None when the file has none).")
    FUNCTION = "load"
    DESCRIPTION = ("Loads a video (any format FFmpeg reads) as an IMAGE batch with its frame rate "
                   "and audio. Refuses, before decoding, a clip that would not fit in memory.")

    @classmethod
    def INPUT_TYPES(cls):
        files = comfy_bridge.input_videos()
        return {"required": {
            "video": (files or [""], {"video_upload": True, "tooltip": (
                "A video in ComfyUI's input folder (upload one with the button). Ignored when "
                "'path' is set.")}),
            "path": ("STRING", {"default": "", "tooltip": (
                "Optional file path (absolute, or relative to the input folder). Overrides "
                "'video' when not empty.")}),
            "frame_cap": ("INT", {"default": 0, "min": 0, "max": 1_000_000, "tooltip": (
                "Load at most this many frames (0 = all). Keeps long or 4K clips within memory; "
                "for whole films use HiFI Retime Video, which streams.")}),
            "skip_first": ("INT", {"default": 0, "min": 0, "max": 10_000_000, "tooltip": (
                "Skip this many frames at the start.")}),
            "every_nth": ("INT", {"default": 1, "min": 1, "max": 1000, "tooltip": (
                "Keep every n-th frame (2 halves the frame rate).")}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, video, path):
        # Replaces ComfyUI's "value not in list" check: 'video' may be empty when 'path' is set.
        try:
            resolve_video_path(video, path, "HiFI Load Video")
        except ValueError as error:
            return str(error)
        return True

    @classmethod
    def IS_CHANGED(cls, video, path, **_kwargs):
        try:
            return os.path.getmtime(resolve_video_path(video, path, "HiFI Load Video"))
        except (ValueError, OSError):
            return float("nan")

    def load(self, video, path, frame_cap, skip_first, every_nth):
        node = "HiFI Load Video"
        source = resolve_video_path(video, path, node)
        try:
            info = video_io.probe_video(source)
        except HiFIInputError as error:
            raise ValueError(f"{node}: {error}") from None
        remaining = max(0, info.frame_count - skip_first)
        expected = math.ceil(remaining / every_nth)
        if frame_cap:
            expected = min(expected, frame_cap)
        if expected < 1:
            raise ValueError(f"{node}: input 'skip_first'={skip_first} skips the whole clip "
                             f"({info.frame_count} frames)")
        try:
            video_io.check_frames_fit(expected, info.height, info.width)
        except HiFIInputError as error:
            raise MemoryError(f"{node}: {error}") from None
        if not info.frame_count_exact:  # the count is estimated from the duration
            expected += max(2, expected // 50)
        frames = torch.empty(expected, info.height, info.width, 3, dtype=torch.float32)
        cancel = comfy_bridge.cancel_check()
        progress = comfy_bridge.ComfyProgress()
        loaded = 0
        for decoded in video_io.iter_frames(source, start=skip_first, every_nth=every_nth,
                                            max_frames=frame_cap or None):
            if cancel is not None:
                cancel()
            if loaded == frames.shape[0]:  # more frames than the container said: grow a little
                frames = torch.cat([frames, torch.empty(max(8, loaded // 10), *frames.shape[1:])])
            frames[loaded] = decoded.image.permute(1, 2, 0)
            loaded += 1
            progress.step(loaded, max(loaded, expected))
        if loaded == 0:
            raise ValueError(f"{node}: no frames were decoded from {source.name} with skip_first="
                             f"{skip_first}, every_nth={every_nth}")
        frames = frames[:loaded]
        fps = float(info.fps) / every_nth
        audio = None
        if info.has_audio:
            waveform, rate = video_io.read_audio(source)
            start = skip_first / float(info.fps)
            stop = start + loaded * every_nth / float(info.fps)
            waveform = waveform[:, int(start * rate):int(math.ceil(stop * rate))]
            audio = {"waveform": waveform.unsqueeze(0).contiguous(), "sample_rate": int(rate)}
        return (frames, fps, loaded, audio)


def _workflow_metadata(prompt, extra_pnginfo) -> dict:
    meta = {}
    if prompt is not None:
        meta["prompt"] = prompt
    if isinstance(extra_pnginfo, dict):
        meta.update(extra_pnginfo)
    return meta


def _container_tags(meta: dict) -> dict:
    """The workflow as container tags: one per key, as core SaveVideo writes them (the writer
    keeps them in MP4/MOV with use_metadata_tags), and all of it in `comment` as well."""
    if not meta:
        return {}
    return {"comment": json.dumps(meta), **{key: json.dumps(value) for key, value in meta.items()}}


def _preview_frames(rgb: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] scaled so the width is at most PREVIEW_MAX_WIDTH (even sides for h264)."""
    height, width = rgb.shape[-2:]
    scale = min(1.0, PREVIEW_MAX_WIDTH / width)
    new_h, new_w = max(2, int(height * scale) // 2 * 2), max(2, int(width * scale) // 2 * 2)
    if (new_h, new_w) == (height, width):
        return rgb
    return F.interpolate(rgb, size=(new_h, new_w), mode="area")


class HiFIVideoCombine:
    """IMAGE batch + fps (+ AUDIO) -> a video file in the output folder, previewed in the node."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("Full path of the written file (or folder, for a PNG sequence).",)
    FUNCTION = "combine"
    OUTPUT_NODE = True
    DESCRIPTION = ("Writes frames to a video in ComfyUI's output folder (h264 mp4, ProRes mov, "
                   "PNG sequence ...), with audio, the workflow embedded, and a preview.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The frames to write, in order."}),
                "fps": ("FLOAT", {"default": 24.0, "min": 0.01, "max": 1000.0, "step": 0.001,
                                  "tooltip": "Playback frame rate (connect Merge's or Interpolate's fps)."}),
                "filename_prefix": ("STRING", {"default": "HiFI/video", "tooltip": (
                    "Name of the file inside the output folder; a counter is appended. A '/' "
                    "makes a subfolder.")}),
                "format": (list(FORMATS), {"default": "h264-mp4", "tooltip": (
                    "h264-mp4: plays everywhere. prores-mov: 10-bit 4:2:2 for editing. "
                    "png-sequence: lossless frames in a folder (16-bit with bit_depth 16). "
                    "h265-mp4: smaller files. ffv1-mkv: lossless video.")}),
                "crf": ("INT", {"default": 18, "min": 0, "max": 51, "tooltip": (
                    "Quality for h264/h265 (lower = better and bigger; 18 is visually lossless). "
                    "Ignored by the other formats.")}),
                "bit_depth": (["8", "10", "16"], {"default": "8", "tooltip": (
                    "Bits per channel: 8 for delivery, 10 for h264/h265/ProRes masters (ProRes is "
                    "always 10), 16 for PNG sequences and FFV1.")}),
            },
            "optional": {
                "audio": ("AUDIO", {"tooltip": "Optional audio to mux (e.g. Load Video's audio)."}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    def combine(self, frames, fps, filename_prefix, format, crf, bit_depth, audio=None,
                prompt=None, extra_pnginfo=None):
        node = "HiFI Video Combine"
        if format not in FORMATS:
            raise ValueError(f"{node}: input 'format' {format!r} is unknown; choose one of {list(FORMATS)}")
        if not fps or fps <= 0:
            raise ValueError(f"{node}: input 'fps' is {fps}; connect the fps output of HiFI Merge, "
                             "HiFI Interpolate or Load Video, or type a rate above 0")
        if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.shape[-1] not in (1, 3, 4):
            raise ValueError(f"{node}: input 'frames' must be an IMAGE batch [B, H, W, C]")
        codec, extension = FORMATS[format]
        if codec not in video_io.available_codecs():
            raise ValueError(f"{node}: input 'format' {format!r} needs the {codec} encoder, which "
                             f"this PyAV build lacks; available: {video_io.available_codecs()}")
        rgb = frames.detach().cpu().float()
        rgb = rgb[..., :3] if rgb.shape[-1] >= 3 else rgb.expand(-1, -1, -1, 3)
        rgb = rgb.permute(0, 3, 1, 2).clamp(0, 1)
        count, _, height, width = rgb.shape
        folder, filename, counter, subfolder = comfy_bridge.save_path(filename_prefix, width, height)
        name = f"{filename}_{counter:05}_{extension}" if extension else f"{filename}_{counter:05}"
        target = Path(folder) / name
        meta = _workflow_metadata(prompt, extra_pnginfo)
        rate = Fraction(fps).limit_denominator(1001 * 1000)
        waveform = audio if isinstance(audio, dict) and audio.get("waveform") is not None else None
        depth = 10 if codec == "prores" else int(bit_depth)
        progress = comfy_bridge.ComfyProgress()
        try:
            with video_io.VideoWriter(target, rate, width, height, codec=codec,
                                      crf=crf if codec in ("h264", "h265") else None,
                                      bit_depth=depth, audio_waveform=waveform,
                                      audio_sample_rate=waveform["sample_rate"] if waveform else None,
                                      metadata=_container_tags(meta)) as writer:
                for i in range(count):
                    writer.write(rgb[i])
                    progress.step(i + 1, count)
        except HiFIInputError as error:
            raise ValueError(f"{node}: {error}") from None
        if codec == "png" and meta:
            (target / "workflow.json").write_text(json.dumps(meta))
        preview = {"filename": name, "subfolder": subfolder, "type": "output"}
        if format not in BROWSER_PLAYABLE:
            preview = self._browser_preview(rgb, rate, filename, counter)
        entry = {**preview, "format": "video/mp4", "frame_rate": float(fps), "frame_count": count,
                 "width": width, "height": height, "file": name, "file_subfolder": subfolder,
                 "codec": format}
        return {"ui": {"hifi_video": [entry]}, "result": (str(target),)}

    @staticmethod
    def _browser_preview(rgb: torch.Tensor, rate: Fraction, filename: str, counter: int) -> dict:
        """A small h264 copy in the temp folder, for formats a browser cannot play."""
        folder_paths = comfy_bridge.comfy_module("folder_paths")
        temp = Path(folder_paths.get_temp_directory())
        temp.mkdir(parents=True, exist_ok=True)
        small = _preview_frames(rgb)
        name = f"{Path(filename).name}_{counter:05}_preview.mp4"
        with video_io.VideoWriter(temp / name, rate, small.shape[-1], small.shape[-2],
                                  codec="h264", crf=28) as writer:
            writer.write(small)
        return {"filename": name, "subfolder": "", "type": "temp"}


class HiFIRetimeVideo:
    """File in, file out: streaming retime for clips too long to hold as an IMAGE batch."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING", "FLOAT", "INT", "VIDEO")
    RETURN_NAMES = ("path", "fps", "frame_count", "video")
    OUTPUT_TOOLTIPS = ("Full path of the written video.", "Its frame rate.", "Frames written.",
                       "The written video as a core VIDEO (for Save Video, Get Video Components…).")
    FUNCTION = "retime"
    OUTPUT_NODE = True
    DESCRIPTION = ("Retimes a whole video file with HiFI, streaming (memory does not grow with "
                   "the clip length): multiplier, target fps or slow motion; scene cuts never "
                   "interpolated across; audio copied; an interrupted run can be resumed.")

    @classmethod
    def INPUT_TYPES(cls):
        files = comfy_bridge.input_videos()
        return {"required": {
            "hifi_model": ("HIFI_MODEL", {"tooltip": "The model from HiFI Load Model."}),
            "video": (files or [""], {"video_upload": True, "tooltip": (
                "A video in ComfyUI's input folder. Ignored when 'path' is set.")}),
            "path": ("STRING", {"default": "", "tooltip": (
                "Optional input file path (absolute, or relative to the input folder).")}),
            "multiplier": widgets.multiplier(),
            "target_fps": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1000.0, "step": 0.001,
                                     "tooltip": ("Retime to this frame rate (e.g. 60 or 59.94), keeping "
                                                 "the duration and the audio. 0 = use the multiplier.")}),
            "slow_motion": ("BOOLEAN", {"default": False, "tooltip": (
                "Play the multiplied frames at the source rate (multiplier x slower). The audio "
                "is dropped then, since it would no longer match.")}),
            "scene_detect": ("BOOLEAN", {"default": True, "tooltip": (
                "Detect scene cuts and never interpolate across one (the nearer frame repeats).")}),
            "scene_threshold": widgets.scene_threshold(DEFAULT_SCENE_THRESHOLD),
            "dedup": ("BOOLEAN", {"default": False, "tooltip": (
                "Drop duplicate frames (screen recordings, animation on twos) and re-time the "
                "real motion across them.")}),
            "format": (list(FORMATS), {"default": "h264-mp4", "tooltip": "Output format (as in Video Combine)."}),
            "crf": ("INT", {"default": 18, "min": 0, "max": 51, "tooltip": (
                "Quality for h264/h265 (lower = better and bigger).")}),
            "filename_prefix": ("STRING", {"default": "HiFI/retime", "tooltip": (
                "Name of the output inside ComfyUI's output folder; a counter is appended.")}),
            "levels": widgets.levels(),
            "patch_width": widgets.patch_side("width"),
            "patch_height": widgets.patch_side("height"),
            "overlap": widgets.overlap(),
            "steps": widgets.steps(1, "per cascade level"),
            "samples": widgets.samples(),
            "seed": widgets.seed(),
            "resume": ("BOOLEAN", {"default": False, "tooltip": (
                "Continue the last interrupted run with this prefix and settings instead of "
                "starting a new file.")}),
        }, "optional": {
            "source_video": ("VIDEO", {"tooltip": (
                "A core VIDEO (e.g. from Load Video) to retime instead of 'video'/'path'.")}),
        }, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    @classmethod
    def VALIDATE_INPUTS(cls, video, path, input_types=None):
        if input_types and "source_video" in input_types:
            return True  # the connected VIDEO is the source; the file widgets are not used
        try:
            resolve_video_path(video, path, "HiFI Retime Video")
        except ValueError as error:
            return str(error)
        return True

    def retime(self, hifi_model, video, path, multiplier, target_fps, slow_motion, scene_detect,
               scene_threshold, dedup, format, crf, filename_prefix, levels, patch_width,
               patch_height, overlap, steps, samples, seed, resume, source_video=None, prompt=None,
               extra_pnginfo=None):
        node = "HiFI Retime Video"
        source = (comfy_bridge.video_file(source_video, node) if source_video is not None
                  else resolve_video_path(video, path, node))
        if format not in FORMATS:
            raise ValueError(f"{node}: input 'format' {format!r} is unknown; choose one of {list(FORMATS)}")
        if slow_motion and target_fps > 0:
            raise ValueError(f"{node}: inputs 'slow_motion' and 'target_fps' exclude each other: "
                             "slow motion plays the multiplied frames at the source rate")
        codec, extension = FORMATS[format]
        try:
            info = video_io.probe_video(source)
        except HiFIInputError as error:
            raise ValueError(f"{node}: {error}") from None
        folder, filename, counter, subfolder = comfy_bridge.save_path(filename_prefix, info.width,
                                                                      info.height)
        name = self._output_name(Path(folder), filename, counter, extension, resume)
        target = Path(folder) / name
        settings = engine.make_settings(hifi_model, levels=levels, patch_width=patch_width,
                                        patch_height=patch_height, overlap=overlap, steps=steps,
                                        samples=samples, seed=seed)
        model = hifi_model.ready()
        bar = comfy_bridge.ComfyProgress()
        started = time.monotonic()
        try:
            timing = (RetimeTarget(fps=target_fps) if target_fps > 0 else
                      RetimeTarget(slowmo=multiplier) if slow_motion else RetimeTarget(multiplier=multiplier))
            encoding = Encoding(codec=codec, crf=crf if codec in ("h264", "h265") else None,
                                metadata=_container_tags(_workflow_metadata(prompt, extra_pnginfo)))
            result = retime_video(source, target, timing, model=model, settings=settings,
                                  detection=Detection(scene_cuts=scene_detect, scene_threshold=scene_threshold,
                                                      dedup=dedup),
                                  encoding=encoding, run=RunOptions(resume=resume),
                                  progress=lambda p: bar.step(p.frames_done, p.frames_total),
                                  cancel=comfy_bridge.cancel_check())
        except HiFIInputError as error:
            raise ValueError(f"{node}: {error}") from None
        if not result.resumed_from:  # a whole run: its pace predicts the next one
            inbetweens = max(0, result.frames_written - result.source_frames)
            pace.record(pace.pace_key(hifi_model.name, hifi_model.device, settings.levels, steps, samples),
                        info.width, info.height, inbetweens, time.monotonic() - started)
        ui = {}
        if format in BROWSER_PLAYABLE:
            ui = {"hifi_video": [{"filename": name, "subfolder": subfolder, "type": "output",
                                  "format": "video/mp4", "frame_rate": float(result.fps),
                                  "frame_count": result.frames_written, "width": info.width,
                                  "height": info.height, "file": name, "file_subfolder": subfolder,
                                  "codec": format}]}
        return {"ui": ui, "result": (str(result.output), float(result.fps), result.frames_written,
                                     comfy_bridge.video_from_file(result.output))}

    @staticmethod
    def _output_name(folder: Path, filename: str, counter: int, extension: str, resume: bool) -> str:
        """A new numbered name, or with resume the previous one when it left a partial run."""
        def named(number: int) -> str:
            return f"{filename}_{number:05}_{extension}" if extension else f"{filename}_{number:05}"

        if resume and counter > 1:
            previous = named(counter - 1)
            parts = folder / (previous if not extension else f".{previous}.hifi-parts")
            if parts.exists():
                return previous
        return named(counter)
