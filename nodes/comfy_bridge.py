"""Access to ComfyUI's services, with plain fallbacks when the pack runs outside ComfyUI.

Every ComfyUI module (`comfy.utils`, `comfy.model_management`, `comfy.model_patcher`,
`folder_paths`) is looked up at call time, never at import: the pack imports cleanly without
ComfyUI (tests, the CLI), and test stand-ins installed into `sys.modules` are seen at once.

What this module maps onto hifi_core's hooks:
- progress: `comfy.utils.ProgressBar` driven by `ProgressEvent.units_done / units_total`
  (one unit = one patch through the network for one denoising step, over every level).
- cancel: `comfy.model_management.throw_exception_if_processing_interrupted`, which raises
  ComfyUI's own `InterruptProcessingException`, so Cancel stops within a denoising step.
- device and free memory: `get_torch_device()` / `get_free_memory()`.
- folders: the `hifi` model folder (ComfyUI's models/hifi), input and output folders.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Callable, List, Optional

import torch

from ..hifi_core import runtime
from ..hifi_core.motion_base import add_motion_dir
from ..hifi_core.video_io import VIDEO_EXTENSIONS

PACK_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CHECKPOINT_DIR = PACK_ROOT / "checkpoints"
MODEL_FOLDER = "hifi"
MOTION_SUBFOLDER = "motion"
MODEL_EXTENSIONS = {".safetensors"}


def comfy_module(name: str) -> Optional[ModuleType]:
    """The ComfyUI module `name`, or None when the pack runs outside ComfyUI."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def in_comfyui() -> bool:
    return comfy_module("comfy.model_management") is not None


# device and memory
def resolve_device(choice: str) -> torch.device:
    """auto (ComfyUI's device, else CUDA if present, else CPU), cpu or cuda: `runtime.resolve_device`
    with ComfyUI's device as the host's."""
    if choice not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device: {choice!r} is unknown; choose auto, cpu or cuda")
    if choice == "cuda" and not torch.cuda.is_available():  # the library would say "use 'cpu'"
        raise ValueError("device: 'cuda' was chosen but this PyTorch sees no CUDA GPU; choose 'auto' or 'cpu'")
    management = comfy_module("comfy.model_management")
    host = management.get_torch_device() if management is not None else None
    device = runtime.resolve_device(choice, host_default=host)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def offload_device(device: torch.device) -> torch.device:
    management = comfy_module("comfy.model_management")
    if management is not None and device.type != "cpu":
        return management.unet_offload_device()
    return torch.device("cpu")


def free_memory_bytes(device: torch.device) -> Optional[int]:
    """Free memory ComfyUI reports for the device (None outside ComfyUI: hifi_core measures)."""
    management = comfy_module("comfy.model_management")
    if management is None:
        return None
    return int(management.get_free_memory(device))


def soft_empty_cache() -> None:
    management = comfy_module("comfy.model_management")
    if management is not None:
        management.soft_empty_cache()


# progress and cancel
def cancel_check() -> Optional[Callable[[], None]]:
    """ComfyUI's interrupt check (raises when the user pressed Cancel), or None."""
    management = comfy_module("comfy.model_management")
    if management is None:
        return None
    return management.throw_exception_if_processing_interrupted


class ComfyProgress:
    """A hifi_core progress callback that drives one `comfy.utils.ProgressBar`.

    The bar is created on the first event (when the job's total is known) and advanced to the
    absolute count each time, so several hifi_core calls can share one bar via `offset`.
    """

    def __init__(self, total: Optional[int] = None, node_id: Optional[str] = None):
        self.node_id = node_id
        self.total = total
        self.offset = 0
        self._bar = None

    def _ensure_bar(self, total: int):
        utils = comfy_module("comfy.utils")
        if utils is None:
            return None
        if self._bar is None:
            self._bar = utils.ProgressBar(total, node_id=self.node_id)
        return self._bar

    def __call__(self, event) -> None:
        total = self.total if self.total is not None else event.units_total
        bar = self._ensure_bar(total)
        if bar is not None:
            bar.update_absolute(self.offset + event.units_done, total)

    def advance_offset(self, units: int) -> None:
        """Start the next hifi_core call where the previous one ended (shared bar)."""
        self.offset += units

    def step(self, value: int, total: int) -> None:
        """Report a plain count (frames written, pairs done) outside hifi_core's events."""
        bar = self._ensure_bar(total)
        if bar is not None:
            bar.update_absolute(value, total)


# folders
def register_model_folder() -> None:
    """Register ComfyUI's models/hifi folder (and the pack's checkpoints) as `hifi` models.

    Called at pack import and again before listing (idempotent), so the folder exists in
    whatever `folder_paths` is current.
    """
    folder_paths = comfy_module("folder_paths")
    if folder_paths is None:
        return
    default = os.path.join(folder_paths.models_dir, MODEL_FOLDER)
    if MODEL_FOLDER not in folder_paths.folder_names_and_paths:
        # Our own extension set: add_model_folder_path alone would list every file.
        folder_paths.folder_names_and_paths[MODEL_FOLDER] = ([default], set(MODEL_EXTENSIONS))
    else:
        folder_paths.add_model_folder_path(MODEL_FOLDER, default)
    # the learned motion base's weights may sit in <models/hifi>/motion (setup-motion --out-dir)
    for folder in folder_paths.folder_names_and_paths[MODEL_FOLDER][0]:
        add_motion_dir(os.path.join(folder, MOTION_SUBFOLDER))


# the core VIDEO type (comfy_api.latest, ComfyUI 0.3.4x on)


def video_file(video, node: str) -> Path:
    """The file behind a core VIDEO input (Load Video's is a path; an in-memory one is written
    to ComfyUI's temp folder first), for nodes that stream a file."""
    source = video.get_stream_source() if hasattr(video, "get_stream_source") else None
    if isinstance(source, (str, os.PathLike)):
        return Path(source)
    if source is not None and hasattr(source, "read"):
        folder_paths = comfy_module("folder_paths")
        folder = Path(folder_paths.get_temp_directory() if folder_paths else tempfile.gettempdir())
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"hifi_video_input_{os.getpid()}_{id(video)}.mp4"
        target.write_bytes(source.read())
        return target
    raise ValueError(f"{node}: the VIDEO input has no file or stream behind it (got "
                     f"{type(video).__name__}); connect core Load Video, or use the 'video' widget")


def video_from_file(path: Path):
    """A core VIDEO for a file we wrote (None outside ComfyUI)."""
    api = comfy_module("comfy_api.latest")
    return None if api is None else api.InputImpl.VideoFromFile(str(path))


def video_from_frames(images, fps: float, audio=None):
    """A core VIDEO from an IMAGE batch [N, H, W, 3] (None outside ComfyUI or without a rate)."""
    api = comfy_module("comfy_api.latest")
    if api is None or not fps:
        return None
    rate = Fraction(fps).limit_denominator(1001000)
    return api.InputImpl.VideoFromComponents(api.Types.VideoComponents(images=images, frame_rate=rate, audio=audio))


# not in examples/: ComfyUI serves a pack's examples/ and workflows/ under one URL prefix for
# templates, and the first folder registered would hide the templates' JSON
EXAMPLE_CLIP = Path(__file__).resolve().parent.parent / "assets" / "hifi-example.mp4"


def install_example_input() -> Optional[Path]:
    """Copy the pack's example clip into ComfyUI's input folder (once; never over a file the
    user put there), so the templates, which load it by name, run on first click."""
    folder_paths = comfy_module("folder_paths")
    if folder_paths is None or not EXAMPLE_CLIP.is_file():
        return None
    target = Path(folder_paths.get_input_directory()) / EXAMPLE_CLIP.name
    if not target.exists():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(EXAMPLE_CLIP, target)
        except OSError:  # a read-only input folder: the templates then name a missing file
            return None
    return target


def model_folder_files() -> List[str]:
    """Checkpoint names in ComfyUI's `hifi` model folder(s) (empty outside ComfyUI)."""
    folder_paths = comfy_module("folder_paths")
    if folder_paths is None:
        return []
    register_model_folder()
    return [name for name in folder_paths.get_filename_list(MODEL_FOLDER)
            if os.path.splitext(name)[1].lower() in MODEL_EXTENSIONS
            and not name.replace("\\", "/").startswith(MOTION_SUBFOLDER + "/")]  # motion weights are no HiFI model


def model_folder_path(name: str) -> Optional[str]:
    folder_paths = comfy_module("folder_paths")
    if folder_paths is None:
        return None
    register_model_folder()
    return folder_paths.get_full_path(MODEL_FOLDER, name)


def bundled_checkpoints() -> List[str]:
    if not BUNDLED_CHECKPOINT_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_CHECKPOINT_DIR.glob("*.safetensors"))


def input_directory() -> Optional[str]:
    folder_paths = comfy_module("folder_paths")
    return folder_paths.get_input_directory() if folder_paths is not None else None


def output_directory() -> str:
    folder_paths = comfy_module("folder_paths")
    if folder_paths is None:
        raise RuntimeError("ComfyUI's folder_paths is not available: the output folder is unknown")
    return folder_paths.get_output_directory()


def input_videos() -> List[str]:
    """Video files in ComfyUI's input folder (top level and subfolders), sorted."""
    root = input_directory()
    if root is None or not os.path.isdir(root):
        return []
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS:
                found.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return sorted(found)


def annotated_input_path(name: str) -> str:
    """Path of an input-folder file chosen in a combo (supports ComfyUI's [input]/[output] tags)."""
    folder_paths = comfy_module("folder_paths")
    if folder_paths is None:
        return name
    return folder_paths.get_annotated_filepath(name)


def save_path(filename_prefix: str, width: int, height: int):
    """(folder, filename, counter, subfolder) for a new output file, like SaveImage."""
    folder_paths = comfy_module("folder_paths")
    if folder_paths is None:
        raise RuntimeError("ComfyUI's folder_paths is not available: the output folder is unknown")
    folder, filename, counter, subfolder, _prefix = folder_paths.get_save_image_path(
        filename_prefix, folder_paths.get_output_directory(), width, height)
    return folder, filename, counter, subfolder
