"""A frame seen as its replicate-padded float32 self, read one block at a time.

The cascade pads every frame to its plan's size (each level a whole multiple of the U-Net's
alignment) and works in float32. At 8K a padded float32 copy of one frame is 400 MB, held
beside the caller's own. A `PaddedFrame` keeps the caller's tensor as it is (float32, or
half precision to halve it) and hands out float32 blocks with the padding filled in on the
fly: patch crops, the row bands a warp reads, area-downsampled levels. Nothing frame-sized
is converted or copied.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

# rows per block when area-downsampling: a few MB of float32 at 8K, whatever the frame's size
DOWNSAMPLE_BAND_ROWS = 64


class PaddedFrame:
    """`frame` ([1, C, h, w], any float dtype) replicate-padded to height x width, read as float32.

    Attributes:
        frame (Tensor): the stored frame, never written to.
        height, width (int): the padded size (at least the frame's).
    """

    def __init__(self, frame: torch.Tensor, height: Optional[int] = None, width: Optional[int] = None):
        self.frame = frame
        self.height = frame.shape[-2] if height is None else height
        self.width = frame.shape[-1] if width is None else width
        if self.height < frame.shape[-2] or self.width < frame.shape[-1]:
            raise ValueError(f"a padded size {self.height}x{self.width} smaller than the frame "
                             f"{tuple(frame.shape[-2:])}")

    @property
    def shape(self) -> Tuple[int, int, int, int]:
        return (self.frame.shape[0], self.frame.shape[1], self.height, self.width)

    @property
    def device(self) -> torch.device:
        return self.frame.device

    dtype = torch.float32  # what every block comes back as

    def block(self, top: int, bottom: int, left: int = 0, right: Optional[int] = None) -> torch.Tensor:
        """Rows [top, bottom) and columns [left, right) of the padded frame, float32.

        Rows and columns past the stored frame repeat its last row or column. May be a view of
        the stored frame (a float32 frame, no padding in the block): never write into it.
        """
        right = self.width if right is None else right
        part = _replicate_slice(self.frame, -2, top, bottom)
        return _replicate_slice(part, -1, left, right).to(torch.float32)

    def downsampled(self, factor: int) -> torch.Tensor:
        """The padded frame area-averaged by `factor` (float32 [B, C, height/factor, width/factor]),
        a band of rows at a time; equal to `F.avg_pool2d` of the padded float32 frame. Factor 1
        is `block` of the whole frame (the stored one itself when it is float32 and unpadded)."""
        if factor == 1:
            return self.block(0, self.height)
        height, width = self.height // factor, self.width // factor
        out = torch.empty(self.shape[0], self.shape[1], height, width, device=self.device)
        band = max(1, DOWNSAMPLE_BAND_ROWS // factor) * factor
        for top in range(0, height * factor, band):
            bottom = min(height * factor, top + band)
            out[..., top // factor:bottom // factor, :] = F.avg_pool2d(self.block(top, bottom, 0, width * factor), factor)
        return out


def _replicate_slice(tensor: torch.Tensor, dim: int, start: int, stop: int) -> torch.Tensor:
    """tensor's [start, stop) along dim, indices past its end clamped to the last one."""
    size = tensor.shape[dim]
    if stop <= size:
        return tensor.narrow(dim, start, stop - start)
    index = torch.arange(start, stop, device=tensor.device).clamp_(max=size - 1)
    return tensor.index_select(dim, index)


def as_padded(frame, height: Optional[int] = None, width: Optional[int] = None) -> PaddedFrame:
    """A `PaddedFrame` of a tensor (or the PaddedFrame itself)."""
    return frame if isinstance(frame, PaddedFrame) else PaddedFrame(frame, height, width)
