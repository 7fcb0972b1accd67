"""Every workflow in workflows/ runs end to end on a tiny generated clip with the tiny preset.

The UI-format files are converted to the API format the way a real server's /object_info
describes the nodes (tests/comfy_stubs/graph.py), then shrunk for CPU speed (model
preset:tiny, 2 levels, 32-px patches, 1 step) and executed by a small topological runner.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import av
import pytest

from comfy_stubs import install
from comfy_stubs.clips import make_frames, write_clip
from comfy_stubs.graph import FRONTEND_ONLY, load_pack, node_info, run_prompt, ui_to_api

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
CLIP_FRAMES, CLIP_FPS = 6, 12

# Input name -> value used for every node that has it (CPU-sized runs of the real graphs).
SHRINK = {"checkpoint": "preset:tiny", "video": "clip.mp4", "levels": 2, "patch_width": 32,
          "patch_height": 32, "overlap": 8, "steps": 1, "samples": 1, "frame_cap": 0}


def shrink(prompt: dict) -> dict:
    for node in prompt.values():
        for name, value in SHRINK.items():
            if name in node["inputs"] and not isinstance(node["inputs"][name], list):
                node["inputs"][name] = value
    return prompt


def expected_output(prompt: dict):
    """(frames, fps) the workflow must write for the CLIP_FRAMES-frame CLIP_FPS clip."""
    node = next(n for n in prompt.values()
                if n["class_type"] in ("HiFIInterpolate", "HiFIBaseSample", "HiFIRetimeVideo"))
    inputs = node["inputs"]
    target_fps = inputs.get("target_fps", 0)
    if node["class_type"] == "HiFIRetimeVideo":  # streaming: keeps the duration, last frame held
        fps = target_fps or CLIP_FPS * inputs["multiplier"]
        return math.ceil(CLIP_FRAMES * fps / CLIP_FPS), fps
    if target_fps:  # a frame rate keeps the duration on every path (hifi_core.timeline)
        return math.ceil(CLIP_FRAMES * target_fps / CLIP_FPS), target_fps
    return (CLIP_FRAMES - 1) * inputs["multiplier"] + 1, CLIP_FPS * inputs["multiplier"]


@pytest.fixture(scope="module")
def pack():
    return load_pack(ROOT)


def test_there_are_the_three_example_workflows():
    names = {p.stem for p in WORKFLOWS}
    assert {"HiFI 1 - Double the frame rate", "HiFI 4 - Cascade step by step at 4K", "HiFI 2 - Clip to 60 fps with audio",
            "HiFI 3 - Retime a video file to 60 fps"} <= names


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_is_valid_ui_format(path, pack):
    workflow = json.loads(path.read_text())
    info = node_info(pack.NODE_CLASS_MAPPINGS)
    ids = {node["id"] for node in workflow["nodes"]}
    for link_id, source, slot, target, target_slot, kind in workflow["links"]:
        assert source in ids and target in ids
        source_node = next(n for n in workflow["nodes"] if n["id"] == source)
        target_node = next(n for n in workflow["nodes"] if n["id"] == target)
        assert link_id in source_node["outputs"][slot]["links"]
        assert target_node["inputs"][target_slot]["link"] == link_id
        assert source_node["outputs"][slot]["type"] == kind
    for node in workflow["nodes"]:
        assert node["type"] in info or node["type"] in FRONTEND_ONLY, f"{path.name}: unknown node {node['type']}"
    prompt = ui_to_api(workflow, info)
    for node_id, node in prompt.items():  # every required input is set, by widget or link
        required = info[node["class_type"]]["input"]["required"]
        missing = set(required) - set(node["inputs"])
        assert not missing, f"{path.name}: node {node_id} misses {missing}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_runs_end_to_end(path, pack, monkeypatch, tmp_path):
    comfy = install(monkeypatch, tmp_path / "ComfyUI")
    write_clip(Path(comfy.folder_paths.get_input_directory()) / "clip.mp4",
               make_frames(CLIP_FRAMES, 48, 64), fps=CLIP_FPS)
    workflow = json.loads(path.read_text())
    mappings = pack.NODE_CLASS_MAPPINGS
    prompt = shrink(ui_to_api(workflow, node_info(mappings)))
    results = run_prompt(prompt, mappings, extra_pnginfo={"workflow": workflow})
    outputs = [node_id for node_id, node in prompt.items()
               if node["class_type"] in ("HiFIVideoCombine", "HiFIRetimeVideo")]
    assert len(outputs) == 1
    result = results[outputs[0]]
    output = Path(result["outputs"][0])
    assert output.exists() and Path(comfy.folder_paths.get_output_directory()) in output.parents
    entry = result["ui"]["hifi_video"][0]
    expected_frames, expected_fps = expected_output(prompt)
    assert entry["frame_count"] == expected_frames
    assert entry["frame_rate"] == pytest.approx(expected_fps)
    with av.open(str(output)) as container:
        video = container.streams.video[0]
        assert Fraction(video.average_rate) == Fraction(expected_fps).limit_denominator(1000)
        assert sum(1 for _ in container.decode(video)) == expected_frames
        assert container.streams.audio, f"{path.name}: the audio was not kept"
        audio = container.streams.audio[0]
        seconds = float(audio.duration * audio.time_base) if audio.duration else None
        if seconds is not None:  # same length as the video, within one AAC frame or so
            assert abs(seconds - expected_frames / expected_fps) < 0.2
        if prompt[outputs[0]]["class_type"] == "HiFIVideoCombine":  # retime files carry none
            assert json.loads(container.metadata["comment"])["workflow"]["nodes"] == workflow["nodes"]


def test_conversion_reads_what_the_real_frontend_saves(pack):
    """widgets_values as ComfyUI frontend 1.27 serialised a fresh Retime Video node (captured in
    headless Chromium): seed's control value follows it, the upload button and the extension's
    preview widget come last."""
    saved = ["clip.mp4", "", 2, 0, False, True, 0.15, False, "h264-mp4", 18, "HiFI/retime", 3, 256,
             256, 32, 2, 1, 0, "randomize", False, "image", ""]
    workflow = {"nodes": [{"id": 7, "type": "HiFIRetimeVideo", "inputs": [], "widgets_values": saved}],
                "links": []}
    inputs = ui_to_api(workflow, node_info(pack.NODE_CLASS_MAPPINGS))["7"]["inputs"]
    assert inputs["video"] == "clip.mp4" and inputs["path"] == "" and inputs["multiplier"] == 2
    assert inputs["seed"] == 0 and inputs["resume"] is False and inputs["format"] == "h264-mp4"
    assert len(inputs) == 19  # every widget input, nothing from the button or the preview


def test_templates_run_on_first_click_with_the_shipped_example_clip(pack, monkeypatch, tmp_path):
    """Every template loads the pack's own example clip, which the pack puts into ComfyUI's
    input folder when it loads (and never over a user's file); each has a thumbnail and a
    readable title for the template browser."""
    import cv2

    clip = ROOT / "assets" / "hifi-example.mp4"
    assert clip.is_file() and clip.stat().st_size < 1 << 20  # small enough to ship
    with av.open(str(clip)) as container:
        assert container.streams.video[0].frames >= 24 and container.streams.audio
    comfy = install(monkeypatch, tmp_path / "ComfyUI")
    installed = pack.nodes.comfy_bridge.install_example_input()
    assert installed == Path(comfy.folder_paths.get_input_directory()) / clip.name
    assert installed.read_bytes() == clip.read_bytes()
    installed.write_bytes(b"the user's own file")
    pack.nodes.comfy_bridge.install_example_input()
    assert installed.read_bytes() == b"the user's own file"
    for path in WORKFLOWS:
        workflow = json.loads(path.read_text())
        videos = [n["widgets_values"][0] for n in workflow["nodes"]
                  if n["type"] in ("HiFILoadVideo", "HiFIRetimeVideo")]
        assert videos == [clip.name], path.name
        assert workflow["extra"]["hifi_title"] and workflow["extra"]["hifi_note"]
        notes = [n for n in workflow["nodes"] if n["type"] == "MarkdownNote"]  # shown on the canvas
        assert len(notes) == 1 and workflow["extra"]["hifi_note"] in notes[0]["widgets_values"][0]
        thumbnail = cv2.imread(str(path.with_suffix(".jpg")))
        assert thumbnail is not None and thumbnail.shape[:2] == (180, 320), path.name
