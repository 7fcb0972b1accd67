"""The web extension (web/hifi.js): syntax, namespacing, and agreement with the Python side.

The browser check itself (the previews and the readout in the real frontend) needs a ComfyUI
server and Chromium: tests/test_browser.py. These checks run everywhere (the ones that run the
module need node, and are skipped without it).
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from comfy_stubs.graph import load_pack

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "web" / "hifi.js"
JS_TESTS = Path(__file__).resolve().parent / "js"
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


@pytest.fixture(scope="module")
def source():
    return SCRIPT.read_text()


@needs_node
def test_script_parses_as_an_es_module(tmp_path):
    module = tmp_path / "hifi.mjs"
    module.write_text(SCRIPT.read_text())
    result = subprocess.run(["node", "--check", str(module)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _run_js_test(tmp_path: Path, name: str) -> None:
    """Run tests/js/<name> on a copy of hifi.js laid out as ComfyUI serves it."""
    extension = tmp_path / "extensions" / "hifi" / "hifi.js"
    extension.parent.mkdir(parents=True)
    shutil.copy(SCRIPT, extension)  # where ../../scripts/app.js resolves to the stand-ins
    shutil.copytree(JS_TESTS / "scripts", tmp_path / "scripts")
    (tmp_path / "package.json").write_text('{"type": "module"}\n')
    result = subprocess.run(["node", str(JS_TESTS / name), str(extension)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "checks passed" in result.stdout, result.stdout


@needs_node
def test_previews_size_order_and_labels_with_a_fake_frontend(tmp_path):
    """tests/js/previews.test.mjs: the previews' heights (caption + video at the node's width and
    the clip's aspect ratio, capped), the node growing on output and never shrinking, the input
    preview labelled and ours kept after it, the readout sized to its text; node and a fake DOM."""
    _run_js_test(tmp_path, "previews.test.mjs")


@needs_node
def test_mkv_files_reach_the_frontend_typed_as_webm(tmp_path):
    """tests/js/matroska.test.mjs: app.handleFile, wrapped once at setup, gets a .mkv (by type or
    name) as the same bytes typed video/webm, which frontend 1.27 reads a workflow from, and every
    other file untouched; the Open dialog lists .mkv. The real drop: tests/test_browser.py."""
    _run_js_test(tmp_path, "matroska.test.mjs")


def test_extension_is_namespaced_and_uses_the_frontend_api(source):
    names = re.findall(r'registerExtension\(\{\s*name:\s*"([^"]+)"', source)
    assert names and all(name.startswith("hifi.") for name in names)
    assert 'from "../../scripts/app.js"' in source and 'from "../../scripts/api.js"' in source
    for widget in re.findall(r'addDOMWidget\("([^"]+)"', source):
        assert widget.startswith("hifi_")


def test_script_names_existing_nodes_inputs_and_routes(source):
    pack = load_pack(ROOT)
    mappings = pack.NODE_CLASS_MAPPINGS
    for node in set(re.findall(r'"(HiFI[A-Za-z]+)"', source)):
        assert node in mappings, f"hifi.js names unknown node {node}"
    def inputs(*node_ids):
        names = set()
        for node_id in node_ids:
            spec = mappings[node_id].INPUT_TYPES()
            names |= set(spec["required"]) | set(spec.get("optional", {}))
        return names

    readers = {"node": inputs("HiFIPatchCascadeUpsample", "HiFIInterpolate", "HiFIRetimeVideo"),
               "loader": inputs("HiFILoadVideo"), "model": inputs("HiFILoadModel"),
               "fileNode": inputs("HiFILoadVideo") & inputs("HiFIRetimeVideo")}
    for reader, name in re.findall(r'widgetValue\((node|loader|model|fileNode), "([a-z_]+)"\)', source):
        assert name in readers[reader], f"hifi.js reads widget {name!r} of a {reader} that lacks it"
    routes = (ROOT / "nodes" / "routes.py").read_text()
    for route in set(re.findall(r'(?:fetchApi|fetchJson)\(`(/hifi/[a-z]+)', source)):
        assert f'routes.get("{route}")' in routes, f"hifi.js calls {route}, which routes.py lacks"


def test_readout_matches_what_a_run_plans():
    """The numbers the readout shows come from hifi_core, for the same widget values."""
    pack = load_pack(ROOT)
    readout = importlib.import_module(f"{pack.__name__}.nodes.readout").cascade_readout(
        checkpoint="preset:small", width=3840, height=2160, levels=3, patch_width=768,
        patch_height=512, overlap=64, patch_batch=0, memory_budget_mb=4096)
    core = pack.hifi_core
    settings = core.CascadeSettings(levels=3, patch_size=(512, 768), overlap=64, memory_budget=4096 * 2 ** 20)
    job = core.plan_job(core.get_preset("small"), 2160, 3840, settings, torch.device("cpu"))
    plan = job.cascade
    assert [level["patches"] for level in readout["levels"]] == plan.patches_per_level()
    assert [(level["height"], level["width"]) for level in readout["levels"]] == list(plan.level_sizes)
    assert [tuple(level["patch"]) for level in readout["levels"]] == [(g.patch_height, g.patch_width)
                                                                      for g in plan.grids]
    assert readout["patch_batch"] == job.patch_batch
    last = readout["levels"][-1]
    assert last["rows"] * last["columns"] == last["patches"]
