"""Benchmark inputs: triplets from real clips, and a synthetic stress set with exact truth.

Frames here are uint8 numpy arrays `[H, W, 3]`, RGB, as a video stores them (so that the
methods see the same 8-bit inputs and the scores use [0, 255]-rounded ground truth);
`peers.from_uint8_hwc` turns them into the [1, 3, H, W] float [0, 1] tensors methods take.

Real clips: a video file (anything PyAV decodes, OpenCV as a fallback) or a folder of
numbered images (PNG/JPEG/...; sorted by name). A triplet at gap g is frames (i, i+g, i+2g):
the outer two are the inputs, the middle one the truth at tau = 0.5. Triplets that span a
scene cut (`hifi_core.scenes`, the detector the retime uses, run over every frame decoded)
are dropped, since no method should interpolate across a cut.

Synthetic stress set (`stress_triplets`): a photo background with a layer cut from another
photo moving by a known displacement between frame0 and frame2 (the truth is the same scene
rendered at the half-way position, with the same bilinear sampling), for displacements given
at 1080p and scaled with the frame height. Scenes:
- ``object``: a textured rectangle (crop of another photo, soft 2-px edge), diagonal motion.
- ``texture``: a repetitive texture (a small photo tile repeated with a period of 40 px at
  1080p) moving horizontally: matching is ambiguous by design.
- ``thin``: three thin vertical bars (3, 6 and 12 px wide at 1080p, at least 1 px) moving
  horizontally, perpendicular to their length.
- ``pan``: the whole background pans horizontally (camera motion).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import HiFIInputError
from ..triplet import Triplet
from ..scenes import SceneCutDetector, frame_tensor, spans_cut
from ..video_io import IMAGE_SUFFIXES, VIDEO_EXTENSIONS, count_clip_frames, iter_clip_rgb8
STRESS_DISPLACEMENTS = (8, 32, 96, 256)
STRESS_SCENES = ("object", "texture", "thin", "pan")


# clips
def find_clips(paths: Sequence[Path]) -> List[Path]:
    """Video files and image-folder clips named by `paths` (files, clip folders, or folders of clips)."""
    clips: List[Path] = []
    for path in map(Path, paths):
        if path.is_file():
            clips.append(path)
        elif path.is_dir():
            entries = sorted(path.iterdir())
            if any(p.suffix.lower() in IMAGE_SUFFIXES for p in entries if p.is_file()):
                clips.append(path)  # a frame folder
                continue
            for entry in entries:
                if entry.is_file() and entry.suffix.lower() in VIDEO_EXTENSIONS:
                    clips.append(entry)
                elif entry.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in entry.iterdir()):
                    clips.append(entry)
        else:
            raise HiFIInputError(f"clip path {path} does not exist: give video files, folders of "
                                 "numbered images, or folders containing them")
    return clips


def count_frames(clip: Path) -> int:
    """Number of frames of a video file or a frame folder."""
    return count_clip_frames(clip)


def read_frames(clip: Path, indices: Iterable[int], cuts: Optional[List[int]] = None) -> Dict[int, np.ndarray]:
    """The frames at `indices` (0-based) as uint8 RGB, decoding the clip once, in order.

    `cuts`, when given, receives the scene cuts (`hifi_core.scenes.find_cuts` indices) among
    all frames up to the last one asked for, found in the same pass.
    """
    wanted = set(indices)
    if not wanted:
        return {}
    detector = SceneCutDetector() if cuts is not None else None
    frames: Dict[int, np.ndarray] = {}
    for index, frame in iter_clip_rgb8(clip, stop=max(wanted) + 1):
        if index in wanted:
            frames[index] = frame
        if detector is not None and detector.update(frame_tensor(frame)):
            cuts.append(index - 1)
    return frames


def triplet_starts(num_frames: int, gap: int, per_clip: int) -> List[int]:
    """Up to `per_clip` start indices spread evenly over the clip for triplets at `gap`."""
    last_start = num_frames - 1 - 2 * gap
    if last_start < 0 or per_clip < 1:
        return []
    if per_clip == 1:
        return [last_start // 2]
    return sorted({int(round(x)) for x in np.linspace(0, last_start, per_clip)})


def clip_triplets(clip: Path, *, group: str, gaps: Sequence[int], per_clip: int,
                  skipped: Optional[List[str]] = None) -> List[Triplet]:
    """Triplets of one clip at every gap (scene-cut triplets dropped and noted in `skipped`)."""
    if any(g < 1 for g in gaps):
        raise HiFIInputError(f"frame gaps {list(gaps)} must all be >= 1")
    total = count_frames(clip)
    plan = {gap: triplet_starts(total, gap, per_clip) for gap in gaps}
    needed = {s + k * gap for gap, starts in plan.items() for s in starts for k in (0, 1, 2)}
    cuts: List[int] = []
    frames = read_frames(clip, needed, cuts)
    triplets = []
    for gap, starts in plan.items():
        for start in starts:
            idx = (start, start + gap, start + 2 * gap)
            if any(i not in frames for i in idx):
                continue
            f0, truth, f2 = (frames[i] for i in idx)
            if spans_cut(idx[0], idx[2], cuts):
                if skipped is not None:
                    skipped.append(f"{clip.name} gap{gap}@{start}: scene cut")
                continue
            triplets.append(Triplet.from_uint8(f0, truth, f2, 0.5, source=clip.name, case=f"gap{gap}@{start}",
                                               group=group, gap=gap,
                                               meta={"frames": list(idx), "size": f"{f0.shape[1]}x{f0.shape[0]}"}))
    return triplets


# synthetic stress set
def find_photos(folder: Optional[Path]) -> List[Path]:
    """JPEG/PNG photos under `folder` (recursively), sorted; [] when it does not exist."""
    if folder is None or not Path(folder).is_dir():
        return []
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})


def _load_photo(path: Path, min_height: int, min_width: int) -> np.ndarray:
    """A photo as float32 RGB [0, 1], decoded at reduced size when it is much larger than needed."""
    import cv2

    flag = cv2.IMREAD_COLOR
    header = cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_8)
    if header is not None:
        full_h, full_w = header.shape[0] * 8, header.shape[1] * 8
        for factor, reduced in ((4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2)):
            if full_h / factor >= min_height and full_w / factor >= min_width:
                flag = reduced
                break
    image = cv2.imread(str(path), flag)
    if image is None:
        raise HiFIInputError(f"{path}: OpenCV cannot read this photo")
    return image[:, :, ::-1].astype(np.float32) / 255.0


def _procedural_photo(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth coloured noise with fine detail: a stand-in when no photos are available."""
    import cv2

    image = np.zeros((height, width, 3), np.float32)
    for octave in range(1, 7):
        cells = 2 ** octave
        small = rng.random((cells + 1, cells + 1, 3)).astype(np.float32)
        image += cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC) / 2 ** (octave * 0.7)
    image -= image.min()
    return image / max(float(image.max()), 1e-6)


def _cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (keeping aspect) so it covers height x width, then centre-crop."""
    import cv2

    scale = max(height / image.shape[0], width / image.shape[1])
    new_h, new_w = max(height, math.ceil(image.shape[0] * scale)), max(width, math.ceil(image.shape[1] * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    y, x = (new_h - height) // 2, (new_w - width) // 2
    return np.ascontiguousarray(resized[y:y + height, x:x + width])


def _shift(image: np.ndarray, dx: float, dy: float, height: int, width: int) -> np.ndarray:
    """Translate (bilinear, zeros outside) into a height x width canvas."""
    import cv2

    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    out = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out if out.ndim == 3 else out[:, :, None]


def _composite(background: np.ndarray, layer: np.ndarray, alpha: np.ndarray, dx: float, dy: float) -> np.ndarray:
    height, width = background.shape[:2]
    rgba = np.concatenate([layer * alpha[:, :, None], alpha[:, :, None]], axis=2)
    moved = _shift(rgba, dx, dy, height, width)
    return background * (1.0 - moved[:, :, 3:4]) + moved[:, :, :3]


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def _textured_crop(image: np.ndarray, crop_h: int, crop_w: int, rng: np.random.Generator,
                   tries: int = 16) -> np.ndarray:
    """The most detailed (largest standard deviation) of `tries` random crops."""
    height, width = image.shape[:2]
    best, best_std = None, -1.0
    for _ in range(tries):
        y, x = rng.integers(0, height - crop_h + 1), rng.integers(0, width - crop_w + 1)
        crop = image[y:y + crop_h, x:x + crop_w]
        std = float(crop.std())
        if std > best_std:
            best, best_std = crop, std
    return best


def _soft_rect(height: int, width: int, edge: float) -> np.ndarray:
    ys = np.minimum(np.arange(height), np.arange(height)[::-1]).astype(np.float32)
    xs = np.minimum(np.arange(width), np.arange(width)[::-1]).astype(np.float32)
    ramp = lambda d: np.clip((d + 0.5) / max(edge, 1e-6), 0.0, 1.0)  # noqa: E731
    return ramp(ys)[:, None] * ramp(xs)[None, :]


def render_stress_scene(scene: str, displacement: float, background: np.ndarray,
                        foreground: np.ndarray, scale: float, rng: np.random.Generator
                        ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render (frame0, truth at tau=0.5, frame2) as uint8 for one scene and displacement in px.

    Args:
        background: float RGB [H + margin, W + margin, 3] photo; the frame is its top-left
            H x W part unless the scene pans (margin >= displacement).
        foreground: float RGB photo the moving layer is cut from (at least H x W).
        scale: frame height / 1080 (sizes of texture periods and bars scale with it).
    """
    height, width = foreground.shape[:2]
    base = np.ascontiguousarray(background[:height, :width])
    times = (0.0, 0.5, 1.0)
    if scene == "pan":
        # The camera moves right: the view window slides over the larger background.
        return tuple(_to_uint8(_shift(background, -t * displacement, 0.0, height, width))
                     for t in times)
    if scene == "object":
        oh, ow = max(4, int(height * 0.35)), max(4, int(width * 0.25))
        layer = np.zeros_like(foreground)
        alpha = np.zeros((height, width), np.float32)
        cy, cx = (height - oh) // 2, (width - ow) // 2
        layer[cy:cy + oh, cx:cx + ow] = _textured_crop(foreground, oh, ow, rng)
        alpha[cy:cy + oh, cx:cx + ow] = _soft_rect(oh, ow, max(1.0, 2.0 * scale))
        angle = math.radians(30.0)
        vx, vy = displacement * math.cos(angle), displacement * math.sin(angle)
        frames = [_composite(base, layer, alpha, (t - 0.5) * vx, (t - 0.5) * vy) for t in times]
        return tuple(_to_uint8(f) for f in frames)
    if scene == "texture":
        period = max(4, int(round(40 * scale)))
        tile = _textured_crop(foreground, period, period, rng, tries=64)
        # Stretch the tile's contrast so the repetition, not a flat patch, is what is seen.
        tile = (tile - tile.mean()) / max(float(tile.std()), 1e-3) * 0.2 + 0.5
        th, tw = max(period, int(height * 0.5)), max(period, int(width * 0.5))
        reps = (math.ceil(th / period), math.ceil(tw / period), 1)
        texture = np.tile(tile, reps)[:th, :tw]
        layer = np.zeros_like(foreground)
        alpha = np.zeros((height, width), np.float32)
        cy, cx = (height - th) // 2, (width - tw) // 2
        layer[cy:cy + th, cx:cx + tw] = np.clip(texture, 0, 1)
        alpha[cy:cy + th, cx:cx + tw] = _soft_rect(th, tw, max(1.0, 2.0 * scale))
        frames = [_composite(base, layer, alpha, (t - 0.5) * displacement, 0.0) for t in times]
        return tuple(_to_uint8(f) for f in frames)
    if scene == "thin":
        layer = np.zeros_like(foreground)
        alpha = np.zeros((height, width), np.float32)
        bar_h = max(2, int(height * 0.7))
        y0 = (height - bar_h) // 2
        for k, bar_w_1080 in enumerate((3, 6, 12)):
            bar_w = max(1, int(round(bar_w_1080 * scale)))
            x0 = int(width * (0.3 + 0.2 * k))
            sy = rng.integers(0, height - bar_h + 1)
            sx = rng.integers(0, width - bar_w + 1)
            layer[y0:y0 + bar_h, x0:x0 + bar_w] = foreground[sy:sy + bar_h, sx:sx + bar_w]
            alpha[y0:y0 + bar_h, x0:x0 + bar_w] = 1.0
        frames = [_composite(base, layer, alpha, (t - 0.5) * displacement, 0.0) for t in times]
        return tuple(_to_uint8(f) for f in frames)
    raise HiFIInputError(f"unknown stress scene {scene!r}; scenes are {', '.join(STRESS_SCENES)}")


def stress_triplets(photos: Sequence[Path], height: int, width: int, *,
                    displacements: Sequence[float] = STRESS_DISPLACEMENTS,
                    scenes: Sequence[str] = STRESS_SCENES, seed: int = 0) -> Iterator[Triplet]:
    """The synthetic stress set at height x width (displacements given at 1080p, scaled).

    Photos are picked deterministically from `photos` by `seed`; with no photos, procedural
    colour noise stands in (and `meta["photos"]` says so).
    """
    if height < 8 or width < 8:
        raise HiFIInputError(f"stress frames {width}x{height} are too small; use at least 8x8")
    unknown = [s for s in scenes if s not in STRESS_SCENES]
    if unknown:
        raise HiFIInputError(f"unknown stress scenes {unknown}; scenes are {', '.join(STRESS_SCENES)}")
    scale = height / 1080.0
    margin = int(math.ceil(max(displacements) * scale)) + 2
    for s_index, scene in enumerate(scenes):
        rng = np.random.default_rng([seed, s_index])
        if photos:
            bg_path, fg_path = (photos[int(i)] for i in rng.choice(len(photos), 2, replace=len(photos) < 2))
            background = _cover(_load_photo(bg_path, height + margin, width + margin),
                                height + margin, width + margin)
            foreground = _cover(_load_photo(fg_path, height, width), height, width)
            source = f"{bg_path.name} + {fg_path.name}"
        else:
            background = _procedural_photo(rng, height + margin, width + margin)
            foreground = _procedural_photo(rng, height, width)
            source = "procedural noise (no photos found)"
        for d_1080 in displacements:
            d_px = d_1080 * scale
            f0, truth, f2 = render_stress_scene(scene, d_px, background, foreground, scale,
                                                np.random.default_rng([seed, s_index, int(d_1080)]))
            yield Triplet.from_uint8(f0, truth, f2, 0.5, source=scene, case=f"d={d_1080:g}", group="synthetic",
                                     meta={"displacement_1080p": d_1080, "displacement_px": round(d_px, 2),
                                           "size": f"{width}x{height}", "photos": source})


# quick-mode fixtures
def write_quick_clips(folder: Path, photos: Sequence[Path], height: int = 48, width: int = 64) -> List[Path]:
    """Two tiny clips for --quick: a static frame folder and a panning lossless video."""
    import av
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    source = (_cover(_load_photo(photos[0], height, width + 32), height, width + 32) if photos
              else _procedural_photo(rng, height, width + 32))
    static_dir = folder / "static_frames"
    static_dir.mkdir(exist_ok=True)
    still = _to_uint8(source[:, :width])
    for i in range(5):
        cv2.imwrite(str(static_dir / f"frame_{i:04d}.png"), still[:, :, ::-1])
    video = folder / "pan.mkv"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "bgr0"
        for i in range(7):
            frame = np.ascontiguousarray(_to_uint8(source[:, 2 * i:2 * i + width]))
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return [static_dir, video]
