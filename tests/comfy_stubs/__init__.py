"""Stand-ins for the parts of ComfyUI the HiFI node pack touches, for tests without ComfyUI.

`install(monkeypatch, root)` puts `comfy`, `comfy.utils`, `comfy.model_management`,
`comfy.model_patcher` and `folder_paths` into `sys.modules` for one test (monkeypatch undoes
it), with ComfyUI's base/input/output/models folders under `root`. They mirror the real
signatures (ComfyUI a125cd8, 2025-10): `ProgressBar(total, node_id=None)` with
`update`/`update_absolute`; `throw_exception_if_processing_interrupted()` raising
`InterruptProcessingException`; `get_torch_device`, `get_free_memory`, `OOM_EXCEPTION`,
`load_model_gpu`, `soft_empty_cache`; `folder_paths.folder_names_and_paths`,
`add_model_folder_path`, `get_filename_list`, `get_full_path`, `get_input_directory`,
`get_output_directory`, `get_annotated_filepath`, `get_save_image_path`.

Test hooks (not part of ComfyUI): `comfy.utils.PROGRESS_UPDATES` records every
`(node_id, value, total)` report, and `comfy.model_management.INTERRUPT_AFTER_CHECKS[0]` makes
the N-th interrupt check raise, as the Cancel button would mid-run.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def install(monkeypatch, root: Path) -> types.SimpleNamespace:
    """Install fresh stand-in modules into sys.modules for one test; returns them."""
    package = types.ModuleType("comfy")
    package.__path__ = []  # a namespace-like package: submodules are set explicitly below
    monkeypatch.setitem(sys.modules, "comfy", package)
    modules = {}
    for short in ("utils", "model_management", "model_patcher"):
        module = _load(f"comfy.{short}", HERE / "comfy" / f"{short}.py")
        monkeypatch.setitem(sys.modules, f"comfy.{short}", module)
        setattr(package, short, module)
        modules[short] = module
    api = types.ModuleType("comfy_api")
    api.__path__ = []
    monkeypatch.setitem(sys.modules, "comfy_api", api)
    latest = _load("comfy_api.latest", HERE / "comfy_api_latest.py")
    monkeypatch.setitem(sys.modules, "comfy_api.latest", latest)
    api.latest = latest
    folder_paths = _load("folder_paths", HERE / "folder_paths.py")
    folder_paths.configure(root)
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    return types.SimpleNamespace(utils=modules["utils"], model_management=modules["model_management"],
                                 model_patcher=modules["model_patcher"], folder_paths=folder_paths,
                                 comfy_api=latest)
