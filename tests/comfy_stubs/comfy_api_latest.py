"""Stand-in for `comfy_api.latest` (ComfyUI 0.3.64): the core VIDEO type's classes, as far as
the pack uses them (InputImpl.VideoFromFile / VideoFromComponents, Types.VideoComponents)."""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Optional


class VideoComponents:
    def __init__(self, images, frame_rate: Fraction, audio: Optional[dict] = None,
                 metadata: Optional[dict] = None):
        self.images, self.frame_rate, self.audio, self.metadata = images, frame_rate, audio, metadata


class VideoFromFile:
    def __init__(self, file):
        self._file = file

    def get_stream_source(self):
        if isinstance(self._file, io.BytesIO):
            self._file.seek(0)
        return self._file


class VideoFromComponents:
    def __init__(self, components: VideoComponents):
        self._components = components

    def get_components(self) -> VideoComponents:
        return self._components


class InputImpl:
    VideoFromFile = VideoFromFile
    VideoFromComponents = VideoFromComponents


class Types:
    VideoComponents = VideoComponents
