"""Streaming retime engine: decode -> (duplicates, scene cuts) -> interpolate -> encode.

Modules: `targets` (multiplier / fps / slow motion), `options` (detection, encoding, run),
`interpolators`, `keyframes` (cuts and duplicates), `output` (segments, resume state,
finishing), `pipeline` (the decoder and encoder threads), `engine` (`retime_video`),
`distributed` (one file shared by several torchrun processes). Public names are importable
from `hifi_core.retime`.

Used by `python -m hifi_core retime` and the ComfyUI "HiFI Retime Video" node. Frames are
`[3, H, W]` RGB in `[0, 1]` (`[1, 3, H, W]` when handed to an interpolator), decoded to half
precision from sources of up to 10 bits and to float32 from deeper ones
(`video_io.decode_dtype`); the model reads them as they are, the other methods get float32
copies of each pair (`interpolators.with_float32_frames`).

Timing (exact rational arithmetic, no drift):
    Source frame i is at position i (time i / fps_in; a variable-frame-rate input is treated
    as constant at its average rate). The generation ratio r is `multiplier`, or
    `fps / fps_in`, or `slowmo`. Output frame k sits at source position p_k = k / r and the
    output has K = ceil(N * r) frames, so it lasts as long as the source (a multiplier gives
    exactly N * M frames; the last source frame is held to the end). `--slowmo S` makes the
    same N * S frames as `--multiplier S` but plays them at fps_in, i.e. S times slower.
    Keyframes are the source frames kept (all of them, or the non-duplicates with `dedup`),
    at positions s_0 = 0 < s_1 < ... For p in [s_j, s_j+1): p == s_j is the original frame
    (tau = 0), else the in-between of that pair at tau = (p - s_j) / (s_j+1 - s_j), unless a
    scene cut lies between them: then the nearer frame is repeated (tau < 0.5 -> s_j). After
    the last keyframe the last frame is held (the schedule is `hifi_core.timeline`'s, the one
    every path uses; this engine keeps the duration so the audio stays in sync).

Memory (bounded, independent of the clip length): the two keyframes of the current pair,
their thumbnails, the in-betweens of at most `tau_batch` times, the encoder's look-ahead and
the audio interleaving queue; with the pipeline (`RunOptions.pipeline`, the default: decoding
and encoding in threads beside the interpolator) also up to 2 decoded frames ahead and 4
output frames behind (fewer at 4K and 8K: a queue holds at most 256 MiB, see
`pipeline.queue_depth`). Nothing is accumulated per frame.

Output, interruption and resume:
    Video is encoded into segments of `segment_seconds` of output (`.NAME.hifi-parts/`, next
    to the output, with `progress.json`), then joined without re-encoding into the output,
    with the input's audio interleaved (untouched; slow-motion drops it by default, or
    time-stretches it with `slowmo_audio="stretch"`). Cancellation (the `cancel` check,
    Ctrl-C, or any error) closes the open segment cleanly, writes a playable partial output
    of every frame finished so far, keeps the parts folder and re-raises. `resume=True`
    continues from the last finished frame: the decoder and the cut/duplicate detectors
    re-run over the skipped part (cheap, and it makes their decisions identical), the
    interrupted pair is recomputed whole (same seed, same tau batches), so the joined result
    equals an uninterrupted run (bit-exact decoded frames for lossless codecs; for lossy
    ones the frames differ only by re-encoding noise at the resume point). PNG sequences are
    written frame by frame (`frame_000000.png`, atomically) with `.hifi-retime.json` in the
    folder. The parts folder is deleted after a successful run. Disk: segments plus the
    joined output need about twice the output size until the end.

Several processes (torchrun, `distributed=torchrun_group()`):
    The output is cut into contiguous shares at segment boundaries, one per rank; each rank
    renders its share into the shared parts folder with its own resume state, and rank 0
    joins every share's segments with the audio: the same file as one process makes (see
    `hifi_core.retime.distributed`).
"""

from .distributed import torchrun_group
from .engine import RetimeProgress, RetimeResult, check_retime_io, retime_video
from .interpolators import FrameInterpolator, blend_interpolator, make_interpolator, model_interpolator
from .keyframes import DetectionStats, Keyframe, keyframes
from .options import Detection, Encoding, RunOptions
from .targets import RetimeTarget, parse_fps

__all__ = ["Detection", "DetectionStats", "Encoding", "FrameInterpolator", "Keyframe", "RetimeProgress",
           "RetimeResult", "RetimeTarget", "RunOptions", "blend_interpolator", "check_retime_io", "keyframes",
           "make_interpolator", "model_interpolator", "parse_fps", "retime_video", "torchrun_group"]
