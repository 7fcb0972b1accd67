"""The pack inside a real ComfyUI server: every workflow POSTed to /prompt, outputs checked.

Runs only when COMFYUI_PATH points at a ComfyUI checkout (skipped otherwise, e.g. in CI).
COMFYUI_PYTHON names the interpreter of ComfyUI's environment (default: this one). The
server runs on 127.0.0.1 with temporary input/output folders, and sees this repository as a
custom node through an extra_model_paths.yaml (the checkout itself is not modified).

    COMFYUI_PATH=/tmp/ComfyUI COMFYUI_PYTHON=/tmp/comfy-venv/bin/python \
        .venv/bin/python -m pytest tests/test_comfyui_server.py -s -q

That environment needs the pack's requirements.txt installed, as ComfyUI-Manager does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import quote
import uuid
from pathlib import Path

import pytest

from comfy_stubs.clips import make_frames, write_clip
from comfy_stubs.graph import ui_to_api
from test_workflows import CLIP_FPS, CLIP_FRAMES, WORKFLOWS, expected_output, shrink

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 240
RUN_TIMEOUT = 300

pytestmark = pytest.mark.skipif(not COMFYUI_PATH, reason="COMFYUI_PATH is not set")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, timeout: float = 10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def _post(url: str, payload: dict):
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise AssertionError(f"/prompt refused the workflow: {error.read().decode()}") from None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfyui")
    custom = base / "custom_nodes"
    custom.mkdir()
    (custom / "hifi").symlink_to(ROOT, target_is_directory=True)
    config = base / "extra_model_paths.yaml"
    config.write_text(f"hifi_test:\n  base_path: {base}\n  custom_nodes: {custom}\n")
    folders = {name: base / name for name in ("input", "output", "temp", "user")}
    for folder in folders.values():
        folder.mkdir()
    port = _free_port()
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    # ComfyUI-Manager / the registry install requirements.txt with the pack; a hand-made
    # ComfyUI environment must have them too, or the nodes fail at run time.
    missing = subprocess.run([python, "-c", "import cv2, av, safetensors, tqdm"], capture_output=True, text=True)
    assert missing.returncode == 0, (f"{python} lacks the pack's requirements ({missing.stderr.strip()[-200:]}): "
                                     f"{python} -m pip install -r {ROOT / 'requirements.txt'}")
    log = open(base / "server.log", "w")
    process = subprocess.Popen(
        [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
         "--extra-model-paths-config", str(config), "--input-directory", str(folders["input"]),
         "--output-directory", str(folders["output"]), "--temp-directory", str(folders["temp"]),
         "--user-directory", str(folders["user"]), "--disable-auto-launch"],
        cwd=COMFYUI_PATH, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise AssertionError(f"ComfyUI exited: {(base / 'server.log').read_text()[-3000:]}")
            try:
                _get(f"{url}/system_stats", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("ComfyUI did not start in time") from None
                time.sleep(1)
        write_clip(folders["input"] / "clip.mp4", make_frames(CLIP_FRAMES, 48, 64), fps=CLIP_FPS)
        yield {"url": url, "log": base / "server.log", **folders}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_pack_loads_with_its_nodes_routes_and_web_extension(server):
    info = _get(f"{server['url']}/object_info")
    hifi = sorted(name for name in info if name.startswith("HiFI"))
    print("\nHiFI nodes in ComfyUI:", ", ".join(hifi))
    assert {"HiFILoadModel", "HiFIInterpolate", "HiFIVideoCombine", "HiFIPatchCascadeUpsample"} <= set(hifi)
    # the templates' example clip was put into the input folder when the pack loaded
    assert info["HiFILoadVideo"]["input"]["required"]["video"][0] == ["clip.mp4", "hifi-example.mp4"]
    log = server["log"].read_text()
    assert "IMPORT FAILED" not in "".join(l for l in log.splitlines() if "hifi" in l.lower())
    extensions = _get(f"{server['url']}/extensions")
    assert any(e.endswith("/hifi.js") for e in extensions), extensions
    estimate = _get(f"{server['url']}/hifi/estimate?width=3840&height=2160&levels=3&patch_width=768"
                    "&patch_height=512&overlap=64&checkpoint=preset:small")
    print("readout for 4K, 768x512 patches:", [(l["level"], l["rows"], l["columns"]) for l in estimate["levels"]],
          f"batch {estimate['patch_batch']}, {estimate['peak_bytes'] / 2**30:.2f} GiB")
    finest = estimate["levels"][-1]  # laid out by the run's planner: fewer, larger patches than the
    assert finest["rows"] * finest["columns"] == finest["patches"] <= 30  # fixed layout's 30 (6 x 5)
    assert finest["patch"][0] * finest["patch"][1] <= 4 * 768 * 512
    eta = _get(f"{server['url']}/hifi/eta?checkpoint=preset:tiny&device=cpu&width=64&height=48&levels=2"
               "&steps=1&samples=1&frame_count=5&multiplier=2")
    assert eta["inbetweens"] == 4, eta  # the time readout's route answers (pace: after a run)
    templates = _get(f"{server['url']}/workflow_templates")
    assert set(templates.get("hifi", [])) >= {p.stem for p in WORKFLOWS}
    for path in WORKFLOWS:  # what the template browser fetches: the JSON and its thumbnail
        # file names are the titles the browser shows (spaces and all), URL-quoted as it does
        assert _get(f"{server['url']}/api/workflow_templates/hifi/{quote(path.name)}")["nodes"]
        with urllib.request.urlopen(f"{server['url']}/api/workflow_templates/hifi/{quote(path.stem)}.jpg",
                                    timeout=30) as reply:
            assert reply.status == 200 and reply.read(3) == b"\xff\xd8\xff"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_runs_in_comfyui(server, path):
    workflow = json.loads(path.read_text())
    info = _get(f"{server['url']}/object_info")
    prompt = shrink(ui_to_api(workflow, info))
    started = time.monotonic()
    queued = _post(f"{server['url']}/prompt", {"prompt": prompt, "client_id": str(uuid.uuid4()),
                                               "extra_data": {"extra_pnginfo": {"workflow": workflow}}})
    assert not queued.get("node_errors"), queued
    prompt_id = queued["prompt_id"]
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        history = _get(f"{server['url']}/history/{prompt_id}")
        if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
            break
        if prompt_id in history and history[prompt_id].get("status", {}).get("status_str") == "error":
            break
        assert time.monotonic() < deadline, f"{path.name} did not finish in {RUN_TIMEOUT} s"
        time.sleep(1)
    record = history[prompt_id]
    status = record["status"]
    errors = [m[1] for m in status["messages"] if m[0] == "execution_error"]
    assert status["status_str"] == "success", (
        "\n".join(f"{e.get('node_type')}: {e.get('exception_type')}: {e.get('exception_message')}\n"
                  + "".join(e.get("traceback", [])[-3:]) for e in errors) or json.dumps(status["messages"])[-2000:])
    output_id = next(i for i, n in prompt.items()
                     if n["class_type"] in ("HiFIVideoCombine", "HiFIRetimeVideo"))
    entry = record["outputs"][output_id]["hifi_video"][0]
    written = server["output"] / entry["file_subfolder"] / entry["file"]
    assert written.exists() and written.stat().st_size > 0
    assert (entry["frame_count"], entry["frame_rate"]) == pytest.approx(expected_output(prompt))
    print(f"\n{path.stem}: {written.relative_to(server['output'])} {entry['width']}x{entry['height']}, "
          f"{entry['frame_count']} frames @ {entry['frame_rate']:g} fps, "
          f"{written.stat().st_size} bytes, {time.monotonic() - started:.1f} s")
