"""Colour tags, codecs and output formats: what a file can hold and how we write it."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import av

from ..errors import HiFIInputError

PathLike = Union[str, os.PathLike]

# colour tables (FFmpeg AVColor* codes)
_MATRIX_NAMES = {0: "rgb", 1: "bt709", 2: "unspecified", 4: "fcc", 5: "bt470bg", 6: "smpte170m",
                 7: "smpte240m", 8: "ycgco", 9: "bt2020nc", 10: "bt2020c"}
_MATRIX_TO_SWS = {1: "itu709", 4: "fcc", 5: "itu601", 6: "itu601", 7: "smpte240m", 9: "bt2020",
                  10: "bt2020"}
_RANGE_NAMES = {0: "unspecified", 1: "tv", 2: "pc"}
_PRIMARIES_NAMES = {1: "bt709", 2: "unspecified", 4: "bt470m", 5: "bt470bg", 6: "smpte170m",
                    7: "smpte240m", 8: "film", 9: "bt2020", 10: "smpte428", 11: "smpte431",
                    12: "smpte432", 22: "ebu3213"}
_TRC_NAMES = {1: "bt709", 2: "unspecified", 4: "gamma22", 5: "gamma28", 6: "smpte170m",
              7: "smpte240m", 8: "linear", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12",
              16: "smpte2084", 18: "arib-std-b67"}
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 8: "7.1"}
# File names we take for videos (inputs: anything FFmpeg demuxes; what we write is CODECS').
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".m4v", ".avi", ".mpg", ".mpeg", ".ts",
                              ".wmv", ".flv", ".mxf", ".y4m", ".gif"})


@dataclass(frozen=True)
class ColorInfo:
    """Colour tags of a stream as FFmpeg codes: `range` (0 unspecified, 1 limited "tv", 2 full
    "pc"), `matrix`, `primaries`, `transfer` (2 = unspecified; 1 = BT.709, 5/6 = BT.601, ...)."""

    range: int = 0
    matrix: int = 2
    primaries: int = 2
    transfer: int = 2

    def __post_init__(self):
        if self.range not in _RANGE_NAMES:
            raise HiFIInputError(f"colour range code {self.range} is not one of {_RANGE_NAMES}")

    @property
    def names(self) -> dict:
        """Human-readable tags, e.g. {'range': 'tv', 'matrix': 'bt709', ...}."""
        return {"range": _RANGE_NAMES.get(self.range, str(self.range)),
                "matrix": _MATRIX_NAMES.get(self.matrix, str(self.matrix)),
                "primaries": _PRIMARIES_NAMES.get(self.primaries, str(self.primaries)),
                "transfer": _TRC_NAMES.get(self.transfer, str(self.transfer))}

    def resolved(self, height: int, pix_fmt: str = "yuv420p") -> "ColorInfo":
        """Fill unspecified matrix/range the way players do (see the module docstring)."""
        matrix = self.matrix if self.matrix in _MATRIX_TO_SWS else (1 if height >= 720 else 6)
        rng = self.range or (2 if pix_fmt.startswith("yuvj") else 1)
        return ColorInfo(rng, matrix, self.primaries, self.transfer)


def _is_rgb_format(pix_fmt: str) -> bool:
    return av.VideoFormat(pix_fmt).is_rgb


def _format_bits(pix_fmt: str) -> int:
    return max(c.bits for c in av.VideoFormat(pix_fmt).components)


# ---------------------------------------------------------------- codecs


@dataclass(frozen=True)
class CodecSpec:
    """An output codec.

    Attributes:
        name (str): the codec's name here ("h264", "prores", ...); encoders (tuple): FFmpeg
            encoders to try, in order; extensions (tuple): containers that hold it;
        pix_fmts (dict): bit depth -> pixel format; quality_option (str or None): the encoder
            option the quality goes to (e.g. "crf"), default_quality (int or None) its default;
        options (dict): fixed encoder options.
    """

    name: str
    encoders: tuple
    extensions: tuple
    pix_fmts: dict
    quality_option: Optional[str] = None
    default_quality: Optional[int] = None
    options: dict = field(default_factory=dict)


CODECS = {
    "h264": CodecSpec("h264", ("libx264",), (".mp4", ".mov", ".mkv"),
                      {8: "yuv420p", 10: "yuv420p10le"}, "crf", 18, {"preset": "medium"}),
    "h265": CodecSpec("h265", ("libx265",), (".mp4", ".mov", ".mkv"),
                      {8: "yuv420p", 10: "yuv420p10le", 12: "yuv420p12le"}, "crf", 20,
                      {"preset": "medium", "x265-params": "log-level=error"}),
    "prores": CodecSpec("prores", ("prores_ks",), (".mov", ".mkv"),
                        {10: "yuv422p10le"}, None, None, {"profile": "3"}),
    "ffv1": CodecSpec("ffv1", ("ffv1",), (".mkv",),
                      {8: "yuv444p", 10: "yuv444p10le", 12: "yuv444p12le", 16: "yuv444p16le"},
                      None, None, {"level": "3", "slicecrc": "1"}),
    "vp9": CodecSpec("vp9", ("libvpx-vp9",), (".webm", ".mkv"), {8: "yuv420p"}, "crf", 31,
                     {"row-mt": "1", "b": "0"}),
    "av1": CodecSpec("av1", ("libsvtav1", "libaom-av1"), (".mp4", ".mkv", ".webm"),
                     {8: "yuv420p", 10: "yuv420p10le"}, "crf", 30),
    "png": CodecSpec("png", (), ("",), {8: "rgb24", 16: "rgb48le"}),
}


def _encoder_available(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:  # UnknownCodecError and friends: not in this build
        return False


def available_codecs() -> list[str]:
    """Output codec names this PyAV build can write."""
    return [n for n, s in CODECS.items() if not s.encoders or any(map(_encoder_available, s.encoders))]


@dataclass(frozen=True)
class OutputFormat:
    """A resolved output: `codec`, `encoder` (None for PNG sequences), `pix_fmt`, `bit_depth`,
    `is_sequence` (a folder of PNGs) and `quality` (the codec's quality value, or None)."""

    codec: str
    encoder: Optional[str]
    pix_fmt: str
    bit_depth: int
    is_sequence: bool
    quality: Optional[int]


def resolve_output_format(path: PathLike, codec: str = "h264", *, bit_depth: Optional[int] = None,
                          pix_fmt: Optional[str] = None, crf: Optional[int] = None,
                          source_bit_depth: Optional[int] = None) -> OutputFormat:
    """Check codec, container extension, pixel format and bit depth; pick defaults.

    `path` is the output (its extension is the container; a folder for "png"), `pix_fmt` an
    explicit pixel format (None: from codec and depth), `crf` the codec's quality (None: its
    default). `bit_depth=None` keeps `source_bit_depth` (8 when unknown). Asking for fewer bits than
    the source, or a codec that cannot store the bits asked for, warns (never silently).

    Raises:
        HiFIInputError: unknown/unavailable codec (the message lists the available ones), a
            container extension the codec cannot go in, or an unsupported pixel format.
    """
    key = {"hevc": "h265", "x264": "h264", "x265": "h265", "prores_ks": "prores"}.get(codec, codec)
    avail = available_codecs()
    if key not in CODECS or key not in avail:
        raise HiFIInputError(f"unknown or unavailable codec {codec!r}; this build can write: "
                             f"{', '.join(avail)}")
    spec = CODECS[key]
    path = Path(path)
    ext = path.suffix.lower()
    if key == "png":
        if ext in VIDEO_EXTENSIONS:
            raise HiFIInputError(f"codec 'png' writes an image sequence into a directory, but "
                                 f"{str(path)!r} looks like a video file; give a directory path")
    elif ext not in spec.extensions:
        raise HiFIInputError(f"codec {key!r} cannot be written to {str(path)!r}: use one of "
                             f"{', '.join(spec.extensions)} as the file extension")
    encoder = next((e for e in spec.encoders if _encoder_available(e)), None)
    src_bits = source_bit_depth or 8
    if bit_depth is not None and bit_depth not in (8, 10, 12, 16):
        raise HiFIInputError(f"bit depth {bit_depth} is not one of 8, 10, 12, 16")
    # 10-bit H.264 (High 10) plays in few players and browsers: by default h264 stays 8-bit
    compat = key == "h264" and bit_depth is None and pix_fmt is None
    want = bit_depth if bit_depth is not None else (8 if compat else src_bits)
    if pix_fmt is None:
        depths = sorted(spec.pix_fmts)
        fits = [d for d in depths if d >= want]
        pix = spec.pix_fmts[fits[0] if fits else depths[-1]]
    else:
        pix = pix_fmt
        if key == "png":
            if pix not in ("rgb24", "rgb48le", "rgb48be"):
                raise HiFIInputError(f"png sequences are rgb24 (8 bit) or rgb48le (16 bit), not {pix!r}")
        else:
            formats = [f.name for f in (av.codec.Codec(encoder, "w").video_formats or [])]
            if pix not in formats:
                raise HiFIInputError(f"encoder {encoder} does not support pixel format {pix!r}; "
                                     f"supported: {', '.join(formats)}")
    bits = _format_bits(pix)
    if pix_fmt is not None and bit_depth is not None and bits != bit_depth:
        raise HiFIInputError(f"--pix-fmt {pix_fmt} is {bits}-bit but --bit-depth {bit_depth} was asked for; "
                             "give one of them, or a pixel format of that depth")
    if bits < max(want, src_bits):
        if compat:
            reason = ("because 10-bit H.264 plays in few players; pass --bit-depth 10 to keep "
                      "the bits in H.264")
        elif pix_fmt is not None or (bit_depth is not None and bit_depth < src_bits):
            reason = "as requested"
        else:
            reason = f"because {key} ({pix}) cannot store {want} bit"
        warnings.warn(f"writing {bits}-bit output from {max(want, src_bits)}-bit data {reason}; "
                      f"--codec h265/prores/ffv1 keep 10 bit or more", stacklevel=2)
    quality = None
    if spec.quality_option:
        quality = spec.default_quality if crf is None else int(crf)
        if not 0 <= quality <= 63:
            raise HiFIInputError(f"crf {crf} is outside 0..63 (lower is better; 18 is near-lossless)")
    elif crf is not None:
        warnings.warn(f"--crf is ignored for codec {key!r} (it has no CRF quality setting)",
                      stacklevel=2)
    return OutputFormat(key, encoder, pix, bits, key == "png", quality)


def check_output_path(path: PathLike, *, is_sequence: bool = False) -> Path:
    """Check that `path` can be written (its directory exists and is writable).

    Raises:
        HiFIInputError: naming the path and what is wrong with it.
    """
    path = Path(path).expanduser()
    if is_sequence:
        if path.exists() and not path.is_dir():
            raise HiFIInputError(f"output {str(path)!r} exists and is not a directory; a PNG "
                                 f"sequence needs a directory path")
        parent = path if path.is_dir() else path.parent
    else:
        if path.is_dir():
            raise HiFIInputError(f"output {str(path)!r} is a directory; give a file name such as "
                                 f"{str(path / 'out.mp4')!r}")
        parent = path.parent
    parent = parent if str(parent) else Path(".")
    if not parent.exists():
        raise HiFIInputError(f"output directory {str(parent)!r} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise HiFIInputError(f"output directory {str(parent)!r} is not writable; choose another "
                             f"output path or fix its permissions")
    return path
