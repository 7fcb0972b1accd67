"""Reading and writing still frames (PNG 8/16-bit, JPEG) via OpenCV.

`read_image` returns float32 [3, H, W] RGB in [0, 1] and the source bit depth;
`write_image` writes 8-bit (PNG/JPEG) or 16-bit (PNG only).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from .errors import HiFIInputError, NonFiniteOutputError
from .validation import check_not_an_input


def read_image(path) -> Tuple[torch.Tensor, int]:
    """Read an RGB image file; returns ([3, H, W] float32 in [0, 1], bit depth 8 or 16)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise HiFIInputError(f"image {path}: no such file")
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise HiFIInputError(f"image {path}: OpenCV cannot decode it; use PNG (8/16-bit) or JPEG")
    if data.ndim == 2 or data.shape[2] == 1:
        raise HiFIInputError(f"image {path} is grayscale; HiFI needs RGB images: convert it to RGB")
    if data.shape[2] == 4:
        raise HiFIInputError(
            f"image {path} has an alpha channel; HiFI interpolates RGB: flatten or drop the alpha")
    if data.dtype == np.uint8:
        depth, scale = 8, 255.0
    elif data.dtype == np.uint16:
        depth, scale = 16, 65535.0
    else:
        raise HiFIInputError(f"image {path} has sample type {data.dtype}; use 8- or 16-bit images")
    rgb = np.ascontiguousarray(data[:, :, ::-1]).astype(np.float32) / scale
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), depth


def check_image_output(path, bit_depth: int = 8, inputs: Sequence = ()) -> Path:
    """The output path, checked before any work: extension, bit depth, folder, not an input."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg"):
        raise HiFIInputError(f"output {path}: unsupported extension; use .png, .jpg or .jpeg")
    if bit_depth not in (8, 16) or (bit_depth == 16 and suffix != ".png"):
        raise HiFIInputError(f"output {path}: bit depth {bit_depth} unsupported here; 16-bit needs .png")
    if not path.parent.is_dir():
        raise HiFIInputError(f"output {path}: the folder {path.parent} does not exist; create it first")
    if path.is_dir():
        raise HiFIInputError(f"output {path} is a folder; give a file name ending in .png or .jpg")
    check_not_an_input(path, inputs)
    return path


def png_with_text(encoded: bytes, text: Optional[dict] = None) -> bytes:
    """A PNG with text chunks added after its header (what ComfyUI's SaveImage writes, e.g.
    "prompt" and "workflow" as JSON, so dropping the file on the canvas restores the graph):
    tEXt for Latin-1 text, iTXt (UTF-8) otherwise."""
    if not text:
        return encoded
    if encoded[:8] != b"\x89PNG\r\n\x1a\n" or encoded[12:16] != b"IHDR":
        raise HiFIInputError("png_with_text: not a PNG stream")
    header_end = 8 + 8 + int.from_bytes(encoded[8:12], "big") + 4
    chunks = []
    for key, value in text.items():
        keyword = str(key).encode("latin-1")[:79]
        try:
            kind, data = b"tEXt", keyword + b"\0" + str(value).encode("latin-1")
        except UnicodeEncodeError:
            kind, data = b"iTXt", keyword + b"\0\0\0\0\0" + str(value).encode("utf-8")
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        chunks.append(len(data).to_bytes(4, "big") + kind + data + crc.to_bytes(4, "big"))
    return encoded[:header_end] + b"".join(chunks) + encoded[header_end:]


def read_png_text(path) -> dict:
    """The text chunks (tEXt and uncompressed iTXt) of a PNG file, as {keyword: text}."""
    data, found, offset = Path(path).read_bytes(), {}, 8
    while offset + 8 <= len(data):
        length, kind = int.from_bytes(data[offset:offset + 4], "big"), data[offset + 4:offset + 8]
        body = data[offset + 8:offset + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            found[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            if rest[:1] == b"\0":  # uncompressed
                _lang, _, rest = rest[2:].partition(b"\0")
                _translated, _, value = rest.partition(b"\0")
                found[key.decode("latin-1")] = value.decode("utf-8")
        offset += 12 + length
    return found


def write_image(path, image: torch.Tensor, bit_depth: int = 8, inputs: Sequence = (),
                text: Optional[dict] = None) -> Path:
    """Write [3, H, W] float in [0, 1]; 16-bit is PNG only. The image goes to a temporary name
    in the target folder first and is renamed into place only when complete, so a crash, a kill
    or a full disk never leaves a half-written file under `path`. `text`: PNG text chunks
    (`png_with_text`; PNG only)."""
    import cv2

    path = check_image_output(path, bit_depth, inputs)
    if not bool(torch.isfinite(image).all()):
        raise NonFiniteOutputError(f"output {path}: the image holds NaN or inf values; nothing was written")
    scale, dtype = (65535.0, np.uint16) if bit_depth == 16 else (255.0, np.uint8)
    array = (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * scale + 0.5).astype(dtype)
    ok, encoded = cv2.imencode(path.suffix.lower(), np.ascontiguousarray(array[:, :, ::-1]))
    if not ok:
        raise HiFIInputError(f"output {path}: OpenCV could not encode the image")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(png_with_text(encoded.tobytes(), text) if path.suffix.lower() == ".png" else encoded.tobytes())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise HiFIInputError(f"output {path}: could not be written ({error.strerror or error}); "
                             "nothing was left behind. Free disk space or pick a writable folder") from None
    return path
