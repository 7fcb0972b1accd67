"""Workflow tools for tests: load a node pack like ComfyUI, convert UI workflows, run graphs.

- `load_pack(folder)`: imports a custom-node folder as ComfyUI does (`spec_from_file_location`
  on its `__init__.py`, module name = the folder path with '.' replaced by '_x_').
- `node_info(mappings)`: the `/object_info` shape (input specs and input order) from node classes,
  so the same conversion works against a real server's `/object_info`.
- `ui_to_api(workflow, info)`: a UI-format (litegraph) workflow -> API-format prompt, mapping
  `widgets_values` by position onto the widget inputs in the frontend's order (an INT with
  `control_after_generate` has one more value after it; upload buttons and extension widgets
  store theirs after all inputs) and links onto `[source node id, output slot]`.
- `run_prompt(prompt, mappings, ...)`: executes an API prompt in topological order, calling
  `VALIDATE_INPUTS` where a node defines it; returns every node's outputs and ui dicts.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def load_pack(folder: Path):
    """Import a node pack folder the way ComfyUI's load_custom_node does; returns the module."""
    folder = Path(folder).resolve()
    name = str(folder).replace(".", "_x_")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def node_info(mappings: Dict[str, type]) -> Dict[str, dict]:
    """{class_type: {"input": INPUT_TYPES(), "input_order": {...}}} like /object_info."""
    info = {}
    for class_type, cls in mappings.items():
        inputs = cls.INPUT_TYPES()
        info[class_type] = {
            "input": inputs,
            "input_order": {section: list(inputs.get(section, {})) for section in ("required", "optional")},
        }
    return info


def _is_widget(spec) -> bool:
    kind = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if options.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _extra_values(spec) -> int:
    """Values the frontend stores right after the input's own value (ComfyUI frontend 1.27).

    A seed's control_after_generate combo follows it; an upload button's value ("image") and
    extension DOM widgets ("") come after all input widgets, so they shift nothing.
    """
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return 1 if options.get("control_after_generate") else 0


FRONTEND_ONLY = {"Note", "MarkdownNote"}  # canvas notes: the frontend never sends them to /prompt


def ui_to_api(workflow: dict, info: Dict[str, dict]) -> Dict[str, dict]:
    """Convert a UI-format workflow to the API format that /prompt accepts."""
    links = {link[0]: link for link in workflow.get("links", [])}
    prompt: Dict[str, dict] = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) in (2, 4) or node["type"] in FRONTEND_ONLY:  # muted / bypassed / notes
            continue
        class_type = node["type"]
        spec = info[class_type]
        inputs: Dict[str, Any] = {}
        values = list(node.get("widgets_values") or [])
        position = 0
        for section in ("required", "optional"):
            for name in spec["input_order"].get(section, []):
                input_spec = spec["input"][section][name]
                if not _is_widget(input_spec):
                    continue
                if position < len(values):
                    inputs[name] = values[position]
                position += 1 + _extra_values(input_spec)
        for slot in node.get("inputs", []):
            if slot.get("link") is None:
                continue
            link = links[slot["link"]]
            inputs[slot["name"]] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": class_type, "inputs": inputs,
                                   "_meta": {"title": node.get("title", class_type)}}
    return prompt


def _order(prompt: Dict[str, dict]) -> List[str]:
    done: List[str] = []
    visiting = set()

    def visit(node_id: str):
        if node_id in done:
            return
        if node_id in visiting:
            raise ValueError(f"the graph has a cycle through node {node_id}")
        visiting.add(node_id)
        for value in prompt[node_id]["inputs"].values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                visit(value[0])
        visiting.discard(node_id)
        done.append(node_id)

    for node_id in prompt:
        visit(node_id)
    return done


def run_prompt(prompt: Dict[str, dict], mappings: Dict[str, type], *,
               extra_pnginfo: Optional[dict] = None) -> Dict[str, dict]:
    """Execute an API-format prompt; returns {node_id: {"outputs": tuple, "ui": dict|None}}."""
    results: Dict[str, dict] = {}
    for node_id in _order(prompt):
        entry = prompt[node_id]
        cls = mappings[entry["class_type"]]
        kwargs = {}
        for name, value in entry["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                kwargs[name] = results[value[0]]["outputs"][value[1]]
            else:
                kwargs[name] = value
        declared = cls.INPUT_TYPES()
        hidden = declared.get("hidden", {})
        if "prompt" in hidden:
            kwargs["prompt"] = prompt
        if "extra_pnginfo" in hidden:
            kwargs["extra_pnginfo"] = extra_pnginfo
        if hasattr(cls, "VALIDATE_INPUTS"):
            import inspect
            wanted = inspect.signature(cls.VALIDATE_INPUTS).parameters
            verdict = cls.VALIDATE_INPUTS(**{k: v for k, v in kwargs.items() if k in wanted})
            if verdict is not True:
                raise ValueError(f"node {node_id} ({entry['class_type']}) failed validation: {verdict}")
        output = getattr(cls(), cls.FUNCTION)(**kwargs)
        ui = None
        if isinstance(output, dict):
            ui = output.get("ui")
            output = output.get("result", ())
        if len(output) != len(cls.RETURN_TYPES):
            raise ValueError(f"node {node_id} returned {len(output)} values for "
                             f"{len(cls.RETURN_TYPES)} RETURN_TYPES")
        results[node_id] = {"outputs": tuple(output), "ui": ui}
    return results
