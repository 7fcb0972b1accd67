"""Reading and writing still frames (PNG 8/16-bit, JPEG) via OpenCV.

`read_image` returns float32 [3, H, W] RGB in [0, 1] and the source bit depth;
`write_image` writes 8-bit (PNG/JPEG) or 16-bit (PNG only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np
import torch

from .errors import HiFIInputError


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


def write_image(path, image: torch.Tensor, bit_depth: int = 8) -> Path:
    """Write [3, H, W] float in [0, 1]; 16-bit is PNG only."""
    import cv2

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg"):
        raise HiFIInputError(f"output {path}: unsupported extension; use .png, .jpg or .jpeg")
    if bit_depth not in (8, 16) or (bit_depth == 16 and suffix != ".png"):
        raise HiFIInputError(f"output {path}: bit depth {bit_depth} unsupported here; 16-bit needs .png")
    if not path.parent.exists():
        raise HiFIInputError(f"output {path}: the folder {path.parent} does not exist")
    scale, dtype = (65535.0, np.uint16) if bit_depth == 16 else (255.0, np.uint8)
    array = (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * scale + 0.5).astype(dtype)
    if not cv2.imwrite(str(path), np.ascontiguousarray(array[:, :, ::-1])):
        raise HiFIInputError(f"output {path}: could not be written (check permissions and free space)")
    return path
