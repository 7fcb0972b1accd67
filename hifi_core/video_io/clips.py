"""A clip as 8-bit RGB frames, the way training and the benchmarks score them.

A clip is a video file or a folder of numbered images (sorted by name). Frames are uint8
`[H, W, 3]` RGB as stored: PyAV's default conversion for video (OpenCV for a file PyAV
cannot open; evaluation clips come in many containers), 16-bit images rounded to 8 bit.
The product reads video through `iter_frames` instead (colour-managed, 10-bit kept).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np

from ..errors import HiFIInputError
from .reader import count_frames, decoded_frames, set_decoder_threads

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr"})


def clip_image_files(folder: Path) -> List[Path]:
    """The frame images of a folder clip, in order."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_image_rgb8(path: Path) -> np.ndarray:
    """One image as uint8 [H, W, 3] RGB (grey repeated, alpha dropped, 16 bit rounded)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise HiFIInputError(f"{path}: OpenCV cannot read this image; remove it from the frame folder")
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        image = (np.clip(image.astype(np.float32), 0, 1) * 255).round().astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, 2::-1])  # BGR(A) -> RGB


def iter_clip_rgb8(clip: Path, stop: Optional[int] = None) -> Iterator[Tuple[int, np.ndarray]]:
    """(index, uint8 [H, W, 3] RGB frame) for frames 0 .. `stop` - 1 (None: all) of a clip."""
    clip = Path(clip)
    if clip.is_dir():
        for index, file in enumerate(clip_image_files(clip)[:stop]):
            yield index, read_image_rgb8(file)
        return
    import av

    try:
        container = av.open(str(clip))
    except Exception:  # not a container PyAV opens: let OpenCV try
        yield from _iter_opencv(clip, stop)
        return
    with container:
        stream = container.streams.video[0]
        set_decoder_threads(stream)
        try:
            for index, frame in enumerate(decoded_frames(container, stream)):
                if stop is not None and index >= stop:
                    return
                yield index, frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as error:
            raise HiFIInputError(f"{clip}: cannot decode this video ({error}); re-encode it (e.g. to "
                                 "FFV1 or H.264) or use another clip") from None


def _iter_opencv(clip: Path, stop: Optional[int]) -> Iterator[Tuple[int, np.ndarray]]:
    import cv2

    capture = cv2.VideoCapture(str(clip))
    if not capture.isOpened():
        raise HiFIInputError(f"{clip}: neither PyAV nor OpenCV can read this video")
    try:
        index = 0
        while stop is None or index < stop:
            ok, bgr = capture.read()
            if not ok:
                return
            yield index, np.ascontiguousarray(bgr[:, :, ::-1])
            index += 1
    finally:
        capture.release()


def count_clip_frames(clip: Path) -> int:
    """Number of frames of a clip (video files counted by demuxing, as `count_frames`)."""
    clip = Path(clip)
    if clip.is_dir():
        return len(clip_image_files(clip))
    try:
        return count_frames(clip)
    except HiFIInputError:
        return sum(1 for _ in _iter_opencv(clip, None))
