"""Streaming video reading and writing with PyAV, with audio passthrough and colour metadata.

Modules: `formats` (colour tags, codecs, output formats), `reader` (probe, frames, whether a
batch fits), `audio`, `writer` (`VideoWriter`), `segments` (lossless joins), `clips` (a video
or an image folder as 8-bit frames, for training and benchmarks). Everything public
is importable from `hifi_core.video_io`.

Frames:
    `iter_frames` yields one frame at a time as float32 `[3, H, W]` RGB in `[0, 1]` (a torch
    tensor, or a numpy array with `as_numpy=True`), never the whole clip; `dtype=torch.float16`
    halves it (`decode_dtype` says which a source's bit depth allows, `as_float32` gives the
    float32 values back). `VideoWriter.write` takes the same layout (`[3, H, W]` or a batch
    `[B, 3, H, W]`, torch or numpy, any float precision), or integer `[H, W, 3]` uint8 /
    uint16 arrays.

Colour:
    YUV <-> RGB conversion uses the stream's tagged matrix and range. An untagged stream is
    read the way players show it: BT.709 for height >= 720, BT.601 below, limited ("tv")
    range unless the pixel format is a full-range `yuvj*` one. The writer converts with the
    matrix/range it is given (by default the same rule) and tags the file with them, so a
    read -> write round trip keeps colours and metadata; primaries and transfer are tags only.
    Sources deeper than 8 bit are read through 16-bit RGB (`as_16bit=None` decides this from
    the stream), and the writer keeps 10/12/16 bit when the codec can store it, warning
    whenever it has to write fewer bits than asked.

Audio:
    The writer copies the first audio stream of `audio_from` packet by packet (no re-encode)
    when the container can hold its codec, else re-encodes it to AAC (Opus for WebM).
    `audio_tempo != 1` time-stretches it (FFmpeg `atempo`, pitch kept, re-encoded).
    `audio_waveform` muxes a float waveform instead (ComfyUI `AUDIO`). Audio packets are
    interleaved with the video as it is written, so nothing accumulates in memory.

Codecs (`available_codecs()` lists the ones this PyAV build can encode):
    h264 (libx264, .mp4/.mov/.mkv, 8/10 bit), h265 (libx265, 8/10/12 bit), prores (prores_ks
    422 HQ, always 10 bit, .mov/.mkv), ffv1 (lossless, .mkv, 8/10/16 bit), vp9 (.webm/.mkv),
    av1 (SVT-AV1), png (a directory of frame_000000.png, 8 or 16 bit; audio as audio.mka).
"""

from .formats import (
    CODECS,
    PathLike,
    CodecSpec,
    ColorInfo,
    OutputFormat,
    VIDEO_EXTENSIONS,
    available_codecs,
    check_output_path,
    resolve_output_format)
from .reader import (
    DecodedFrame,
    VideoInfo,
    as_float32,
    check_frames_fit,
    count_frames,
    decode_dtype,
    frames_nbytes,
    iter_frames,
    probe_video,
    remove_tree)
from .audio import read_audio, write_audio_file
from .writer import VideoWriter
from .segments import container_options, join_segments
from .clips import IMAGE_SUFFIXES, clip_image_files, count_clip_frames, iter_clip_rgb8, read_image_rgb8


__all__ = ["CODECS", "CodecSpec", "ColorInfo", "DecodedFrame", "IMAGE_SUFFIXES", "OutputFormat", "PathLike",
           "VIDEO_EXTENSIONS", "VideoInfo", "VideoWriter", "as_float32", "available_codecs", "check_frames_fit",
           "check_output_path", "clip_image_files", "container_options", "count_clip_frames", "count_frames",
           "decode_dtype", "frames_nbytes", "iter_clip_rgb8", "iter_frames", "join_segments",
           "probe_video", "read_audio", "read_image_rgb8", "remove_tree", "resolve_output_format",
           "write_audio_file"]
