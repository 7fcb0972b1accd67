"""Render the pack's example clip and the template thumbnails (procedural, no third-party
pixels, so both are ours to ship under the project's licence).

    .venv/bin/python scripts/make_example_clip.py

Writes `assets/hifi-example.mp4` (2 s, 24 fps, 640x360, h264, a 440/660 Hz stereo tone) and
`workflows/<template>.jpg` for every template in `workflows/` (a frame of the clip with the
template's title). The clip holds what frame interpolation has to get right: a textured
background panning under the camera, a ball crossing fast, thin rotating bars and a small
object that is occluded and revealed.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "assets" / "hifi-example.mp4"
WIDTH, HEIGHT, FPS, SECONDS = 640, 360, 24, 2
SAMPLE_RATE = 48000


def background(shift: float) -> np.ndarray:
    """A smooth texture of sinusoids and soft stripes, panned `shift` px to the left."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    xs = xs + shift
    red = 0.55 + 0.18 * np.sin(xs / 43.0) * np.cos(ys / 51.0) + 0.05 * np.sin((xs + ys) / 11.0)
    green = 0.50 + 0.15 * np.sin((xs - 2 * ys) / 67.0) + 0.04 * np.cos(xs / 7.5)
    blue = 0.45 + 0.15 * np.cos(xs / 71.0 + ys / 37.0) + 0.03 * np.sin(ys / 6.0)
    return np.clip(np.stack([blue, green, red], axis=-1), 0, 1)


def frame(index: int) -> np.ndarray:
    """Frame `index` as uint8 BGR."""
    t = index / FPS
    image = (background(60.0 * t) * 255).astype(np.uint8)
    # thin bars rotating about a point, a slow occluder and a fast ball in front
    centre = (470, 120)
    for k in range(3):
        angle = 1.4 * t + k * np.pi / 3
        tip = (int(centre[0] + 70 * np.cos(angle)), int(centre[1] + 70 * np.sin(angle)))
        tail = (int(centre[0] - 70 * np.cos(angle)), int(centre[1] - 70 * np.sin(angle)))
        cv2.line(image, tail, tip, (30, 30, 30), 3, cv2.LINE_AA)
    cv2.rectangle(image, (int(120 + 40 * t), 210), (int(150 + 40 * t), 250), (40, 200, 240), -1)
    cv2.rectangle(image, (int(90 + 110 * t), 190), (int(170 + 110 * t), 290), (90, 60, 200), -1)
    ball = (int(40 + 280 * t), int(300 - 150 * t + 90 * t * t))
    cv2.circle(image, ball, 22, (20, 240, 250), -1, cv2.LINE_AA)
    cv2.circle(image, ball, 22, (0, 0, 0), 2, cv2.LINE_AA)
    return image


def write_clip() -> None:
    CLIP.parent.mkdir(parents=True, exist_ok=True)
    count = FPS * SECONDS
    with av.open(str(CLIP), "w") as container:
        video = container.add_stream("libx264", rate=FPS, options={"crf": "26", "preset": "slow"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = container.add_stream("aac", rate=SAMPLE_RATE)
        audio.layout = "stereo"
        for index in range(count):
            picture = av.VideoFrame.from_ndarray(cv2.cvtColor(frame(index), cv2.COLOR_BGR2RGB), format="rgb24")
            picture.pts, picture.time_base = index, Fraction(1, FPS)
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
        seconds = np.arange(SAMPLE_RATE * SECONDS) / SAMPLE_RATE
        tone = np.stack([0.2 * np.sin(2 * np.pi * 440 * seconds), 0.2 * np.sin(2 * np.pi * 660 * seconds)])
        tone = tone.astype(np.float32)
        for start in range(0, tone.shape[1], 1024):
            piece = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]),
                                               format="fltp", layout="stereo")
            piece.sample_rate, piece.pts = SAMPLE_RATE, start
            container.mux(audio.encode(piece))
        container.mux(audio.encode(None))


def write_thumbnails() -> None:
    """One 320x180 JPEG per template: a frame of the clip and the template's title."""
    for index, template in enumerate(sorted((ROOT / "workflows").glob("*.json"))):
        title = json.loads(template.read_text()).get("extra", {}).get("hifi_title", template.stem)
        thumb = cv2.resize(frame(12 + 9 * index), (320, 180), interpolation=cv2.INTER_AREA)
        cv2.rectangle(thumb, (0, 146), (320, 180), (20, 20, 20), -1)
        cv2.putText(thumb, title[:46], (8, 169), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.imwrite(str(template.with_suffix(".jpg")), thumb, [cv2.IMWRITE_JPEG_QUALITY, 85])


def main() -> None:
    write_clip()
    write_thumbnails()
    print(f"wrote {CLIP} ({CLIP.stat().st_size // 1024} KiB) and the template thumbnails")


if __name__ == "__main__":
    main()
