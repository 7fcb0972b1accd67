"""Writes the example workflows in workflows/ (ComfyUI UI format) from the node definitions.

Run from the repository root after changing a node's inputs:
    .venv/bin/python tests/comfy_stubs/build_workflows.py
Widget values are laid out the way the frontend (1.27) saves them: defaults from INPUT_TYPES,
"fixed" right after a seed with control_after_generate, and an upload button's "image" after
all input widgets; so tests/test_workflows.py and a real ComfyUI read them the same way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[0] = str(HERE.parent)  # not this folder: its folder_paths.py is a test stand-in

from comfy_stubs.graph import _is_widget, load_pack  # noqa: E402

DEFAULT_CHECKPOINT = "hifi-lean.safetensors"
DEFAULT_VIDEO = "clip.mp4"


class Builder:
    def __init__(self, mappings, display):
        self.mappings, self.display = mappings, display
        self.nodes, self.links = [], []

    def node(self, class_type, pos, size=(320, 260), title=None, **values):
        cls = self.mappings[class_type]
        spec = cls.INPUT_TYPES()
        widgets, inputs, upload = [], [], False
        for section in ("required", "optional"):
            for name, input_spec in spec.get(section, {}).items():
                options = input_spec[1] if len(input_spec) > 1 else {}
                if _is_widget(input_spec):
                    if name in values:
                        value = values[name]
                    elif isinstance(input_spec[0], list):
                        value = options.get("default", input_spec[0][0] if input_spec[0] else "")
                    else:
                        value = options.get("default")
                    widgets.append(value)
                    if options.get("control_after_generate"):
                        widgets.append("fixed")
                    if any(options.get(k) for k in ("image_upload", "video_upload", "audio_upload")):
                        upload = True
                else:
                    slot = {"name": name, "type": input_spec[0], "link": None}
                    if section == "optional":
                        slot["shape"] = 7
                    inputs.append(slot)
        if upload:  # the frontend's upload button stores its value after all input widgets
            widgets.append("image")
        node = {"id": len(self.nodes) + 1, "type": class_type, "pos": list(pos), "size": list(size),
                "flags": {}, "order": len(self.nodes), "mode": 0, "inputs": inputs,
                "outputs": [{"name": n, "type": t, "links": [], "slot_index": i}
                            for i, (n, t) in enumerate(zip(cls.RETURN_NAMES, cls.RETURN_TYPES))],
                "properties": {"Node name for S&R": class_type, "cnr_id": "comfyui-hifi"},
                "widgets_values": widgets, "title": title or self.display[class_type]}
        self.nodes.append(node)
        return node

    def link(self, source, output_name, target, input_name):
        slot = [o["name"] for o in source["outputs"]].index(output_name)
        kind = source["outputs"][slot]["type"]
        link_id = len(self.links) + 1
        names = [i["name"] for i in target["inputs"]]
        if input_name in names:
            target_slot = names.index(input_name)
            target["inputs"][target_slot]["link"] = link_id
        else:  # a widget driven by a link: the frontend lists it as an input with "widget"
            target["inputs"].append({"name": input_name, "type": kind,
                                     "widget": {"name": input_name}, "link": link_id})
            target_slot = len(target["inputs"]) - 1
        source["outputs"][slot]["links"].append(link_id)
        self.links.append([link_id, source["id"], slot, target["id"], target_slot, kind])

    def workflow(self, note):
        return {"last_node_id": len(self.nodes), "last_link_id": len(self.links),
                "nodes": self.nodes, "links": self.links, "groups": [], "config": {},
                "extra": {"ds": {"scale": 0.8, "offset": [40, 40]}, "hifi_note": note},
                "version": 0.4}


def interpolate_x2(b: Builder):
    model = b.node("HiFILoadModel", (0, 0), (320, 130), checkpoint=DEFAULT_CHECKPOINT)
    video = b.node("HiFILoadVideo", (0, 200), (320, 420), video=DEFAULT_VIDEO)
    interp = b.node("HiFIInterpolate", (380, 0), (340, 470), multiplier=2)
    combine = b.node("HiFIVideoCombine", (780, 0), (420, 560), filename_prefix="HiFI/x2")
    b.link(model, "hifi_model", interp, "hifi_model")
    b.link(video, "frames", interp, "frames")
    b.link(video, "fps", interp, "fps")
    b.link(interp, "frames", combine, "frames")
    b.link(interp, "fps", combine, "fps")
    b.link(video, "audio", combine, "audio")
    return b.workflow("One node: double the frame rate of a video (x2), audio kept.")


def cascade_4k(b: Builder):
    model = b.node("HiFILoadModel", (0, 0), (320, 130), checkpoint=DEFAULT_CHECKPOINT)
    video = b.node("HiFILoadVideo", (0, 200), (320, 420), video=DEFAULT_VIDEO, frame_cap=48)
    base = b.node("HiFIBaseSample", (380, 0), (340, 520), levels=3, steps=1,
                  patch_width=512, patch_height=512)
    up = b.node("HiFIPatchCascadeUpsample", (760, 0), (360, 560), patch_width=768,
                patch_height=512, overlap=64, steps=1)
    merge = b.node("HiFIMerge", (1160, 0), (320, 260))
    combine = b.node("HiFIVideoCombine", (1520, 0), (420, 560), filename_prefix="HiFI/4k",
                     format="prores-mov", bit_depth="10")
    b.link(model, "hifi_model", base, "hifi_model")
    b.link(video, "frames", base, "frames")
    b.link(video, "fps", base, "fps")
    b.link(model, "hifi_model", up, "hifi_model")
    b.link(video, "frames", up, "frames")
    b.link(base, "intermediate", up, "intermediate")
    b.link(video, "frames", merge, "frames")
    b.link(up, "intermediate", merge, "intermediate")
    b.link(merge, "frames", combine, "frames")
    b.link(merge, "fps", combine, "fps")
    b.link(video, "audio", combine, "audio")
    return b.workflow("The cascade step by step for 4K: coarse base level (3 levels, 960x540 at "
                      "the base), then 768x512 patches up to full resolution, then merge.")


def retime_fps_audio(b: Builder):
    model = b.node("HiFILoadModel", (0, 0), (320, 130), checkpoint=DEFAULT_CHECKPOINT)
    video = b.node("HiFILoadVideo", (0, 200), (320, 420), video=DEFAULT_VIDEO)
    interp = b.node("HiFIInterpolate", (380, 0), (340, 470), target_fps=60.0)
    combine = b.node("HiFIVideoCombine", (780, 0), (420, 560), filename_prefix="HiFI/60fps")
    b.link(model, "hifi_model", interp, "hifi_model")
    b.link(video, "frames", interp, "frames")
    b.link(video, "fps", interp, "fps")
    b.link(interp, "frames", combine, "frames")
    b.link(interp, "fps", combine, "fps")
    b.link(video, "audio", combine, "audio")
    return b.workflow("Retime to 60 fps (in-betweens at the exact times, duration and audio kept).")


def retime_file(b: Builder):
    model = b.node("HiFILoadModel", (0, 0), (320, 130), checkpoint=DEFAULT_CHECKPOINT)
    retime = b.node("HiFIRetimeVideo", (380, 0), (420, 900), video=DEFAULT_VIDEO, target_fps=60.0,
                    filename_prefix="HiFI/retime60")
    b.link(model, "hifi_model", retime, "hifi_model")
    return b.workflow("A whole video file to 60 fps, streaming (memory does not grow with the "
                      "length), audio copied, resumable.")


WORKFLOWS = {
    "HiFI 1 - Double the frame rate": interpolate_x2,
    "HiFI 4 - Cascade step by step at 4K": cascade_4k,
    "HiFI 2 - Clip to 60 fps with audio": retime_fps_audio,
    "HiFI 3 - Retime a video file to 60 fps": retime_file,
}


def main() -> None:
    pack = load_pack(ROOT)
    out = ROOT / "workflows"
    out.mkdir(exist_ok=True)
    for name, build in WORKFLOWS.items():
        workflow = build(Builder(pack.NODE_CLASS_MAPPINGS, pack.NODE_DISPLAY_NAME_MAPPINGS))
        (out / f"{name}.json").write_text(json.dumps(workflow, indent=1) + "\n")
        print("wrote", out / f"{name}.json")


if __name__ == "__main__":
    main()
