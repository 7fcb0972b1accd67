"""`retime`: a video file -> a retimed video file (multiplier, target fps or slow motion), streaming."""

from __future__ import annotations

import argparse
import sys

from .common import add_cascade_arguments, add_model_arguments, finite_float, int_in

HELP = ("retime a video file (2x/4x frames, any target fps, or slow motion) at full resolution, "
        "streaming: memory does not grow with the clip length; under torchrun the processes share "
        "the file")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..scenes import DEFAULT_SCENE_THRESHOLD
    from ..video_io import available_codecs

    parser.add_argument("input", help="the source video (anything FFmpeg/PyAV reads)")
    parser.add_argument("output", help="output video file (.mp4/.mov/.mkv/.webm), or a directory "
                        "for --codec png")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--multiplier", type=int, help="N output frames per source frame (2, 3, 4, 8...)")
    target.add_argument("--fps", help="target frame rate, e.g. 60, 59.94 or 24000/1001 "
                        "(in-betweens at the exact times; the duration is kept)")
    target.add_argument("--slowmo", type=int, help="N times slower: N x frames played at the source rate")
    parser.add_argument("--method", default="hifi", choices=["hifi", "blend", "dis"],
                        help="hifi (the model, default); blend/dis are cheap baselines for tests "
                        "and memory checks")
    add_model_arguments(parser)
    add_cascade_arguments(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--codec", default="h264", choices=available_codecs(),
                     help="output codec (default h264; prores -> .mov, ffv1 -> .mkv, png -> directory)")
    out.add_argument("--crf", type=int_in(0, 63), default=None, help="quality for h264/h265/vp9/av1 "
                     "(lower is better; default 18 for h264, 20 for h265)")
    out.add_argument("--encoder-preset", default=None, help="x264/x265 speed preset, ultrafast..veryslow "
                     "(default medium)")
    out.add_argument("--pix-fmt", default=None, help="encoder pixel format, e.g. yuv420p10le")
    out.add_argument("--bit-depth", type=int, choices=[8, 10, 12, 16], default=None,
                     help="output bit depth (default: the source's, if the codec can store it)")
    out.add_argument("--slowmo-audio", default="drop", choices=["drop", "stretch"],
                     help="audio for --slowmo: drop it (default) or time-stretch it (pitch kept)")
    out.add_argument("--max-frames", type=int, default=None, metavar="N",
                     help="retime only the first N source frames (a quick preview; audio is cut to match)")
    out.add_argument("--segment-seconds", type=finite_float(0.0, 86400.0, low_open=True), default=10.0,
                     help="output seconds per resumable segment (default 10)")
    det = parser.add_argument_group("scene cuts and duplicates")
    det.add_argument("--no-scene-detect", action="store_true",
                     help="interpolate across everything (no scene-cut detection)")
    det.add_argument("--scene-threshold", type=finite_float(0.0, 1.0, low_open=True), default=DEFAULT_SCENE_THRESHOLD,
                     help="cut score in (0, 1] above which a change is a cut (default "
                     "%(default)s; lower finds more cuts; see docs/retime.md)")
    det.add_argument("--dedup", action="store_true",
                     help="drop duplicate frames (animation on twos, screen recordings) and "
                     "re-time the motion across them")
    det.add_argument("--dedup-threshold", type=finite_float(0.0, 1.0, low_open=True), default=None,
                     help="mean difference below which frames are duplicates (default 0.004)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted retime of the same command")
    parser.add_argument("--pipeline", action=argparse.BooleanOptionalAction, default=None,
                        help="decode and encode in threads beside the network (--pipeline) or one "
                        "after the other in one thread (--no-pipeline); the frames are the same "
                        "(default: the pipeline, except for the model on the CPU, whose cores it "
                        "would only take)")


def run(args: argparse.Namespace) -> int:
    """The command; under torchrun (WORLD_SIZE > 1) every process runs it and renders its share
    of the output (`hifi_core.retime.distributed`), on cuda:LOCAL_RANK when CUDA is present."""
    from ..distributed import close_distributed, rank_device
    from ..retime import Detection, Encoding, RetimeTarget, RunOptions, check_retime_io, torchrun_group

    # fail fast, before a model is loaded: bad target, options, input file, output path or codec
    target = RetimeTarget(multiplier=args.multiplier, fps=args.fps, slowmo=args.slowmo)
    detection = Detection(scene_cuts=not args.no_scene_detect, scene_threshold=args.scene_threshold,
                          dedup=args.dedup, dedup_threshold=args.dedup_threshold)
    encoding = Encoding(codec=args.codec, crf=args.crf, pix_fmt=args.pix_fmt, bit_depth=args.bit_depth,
                        preset=args.encoder_preset, slowmo_audio=args.slowmo_audio)
    options = RunOptions(resume=args.resume, segment_seconds=args.segment_seconds, max_frames=args.max_frames,
                         pipeline=args.pipeline)
    check_retime_io(args.input, args.output, codec=args.codec, crf=args.crf,
                    pix_fmt=args.pix_fmt, bit_depth=args.bit_depth)
    group = torchrun_group()
    try:
        if group is not None:
            args.device = rank_device(args.device, group.local_rank)
        return _retime(args, target, detection, encoding, options, group)
    finally:
        close_distributed(group)


def _retime(args: argparse.Namespace, target, detection, encoding, options, group) -> int:
    from tqdm import tqdm

    from ..errors import Cancelled
    from ..retime import retime_video

    model = settings = None
    if args.method == "hifi":
        from .common import model_from_args, settings_from_args

        settings = settings_from_args(args)
        model = model_from_args(args)
    bar = None
    # one bar per process: each counts its own share
    name = "retiming" if group is None else f"retiming, process {group.rank}/{group.world}"

    def progress(event) -> None:
        nonlocal bar
        if bar is None:  # created on the first frame, so errors before it print cleanly
            bar = tqdm(desc=name, unit="frame", dynamic_ncols=True,
                       total=event.frames_total, initial=event.frames_done - 1)
            if event.resumed_from:
                bar.set_postfix_str(f"resumed at frame {event.resumed_from}", refresh=False)
        bar.total = event.frames_total
        bar.update(event.frames_done - bar.n)

    def model_progress(event) -> None:  # inside one pair: slow at 4K, so show it
        if bar is not None:
            bar.set_postfix_str(f"pair: {event.units_done}/{event.units_total} patches")

    try:
        result = retime_video(
            args.input, args.output, target, model=model, settings=settings, method=args.method,
            detection=detection, encoding=encoding, run=options, progress=progress,
            model_progress=model_progress if args.method == "hifi" else None, distributed=group)
    except (Cancelled, KeyboardInterrupt):
        done = bar.n if bar is not None else 0
        if bar is not None:
            bar.close()
        if group is None:
            print(f"interrupted after {done} frames: the frames finished so far are in "
                  f"{args.output}; run the same command with --resume to continue", file=sys.stderr)
        else:
            print(f"process {group.rank} interrupted after {done} frames of its share: its finished "
                  "segments are kept; run the same torchrun command with --resume to continue",
                  file=sys.stderr)
        return 130
    except BaseException:
        if bar is not None:
            bar.close()
        raise
    if bar is not None:  # None when a --resume found every frame already done
        bar.close()
    if group is not None and not group.main:
        return 0  # rank 0 reports the joined file
    cuts = ", ".join(map(str, result.cuts[:10])) + (" ..." if len(result.cuts) > 10 else "")
    print(f"wrote {result.output}: {result.frames_written} frames at {float(result.fps):.3f} fps "
          f"from {result.source_frames} source frames; scene cuts before source frames: "
          f"{cuts or 'none'}; duplicates dropped: {result.duplicates_dropped}; audio "
          f"{result.audio}")
    if result.seconds > 0:
        print(f"time: {result.seconds:.1f} s, of which {result.interpolation_seconds:.1f} s interpolating "
              f"({result.seconds / max(result.interpolation_seconds, 1e-9):.2f}x the interpolator's own time; "
              "the rest is decoding, detection, encoding and joining)")
    return 0
