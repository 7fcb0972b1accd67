"""The inline previews in the real ComfyUI frontend, in headless Chromium (web/hifi.js).

A template is loaded into the page (app.loadGraphData), shrunk for CPU like the server tests,
queued with app.queuePrompt and measured with getBoundingClientRect() before the run, after it
and after the graph is reloaded: every DOM widget of a node (our output preview and readout,
the frontend's input preview of a video_upload combo) lies inside the node's on-screen
rectangle, no two of one node overlap, and after the run the output video has a height and the
node grew to hold it. A screenshot of each state goes to $TMPDIR (not into the repository).

Each file such a run wrote (the mp4 of Retime Video and of Video Combine, one PNG of a PNG
sequence, Video Combine's ffv1 .mkv) is then fetched from /view, the graph cleared, and the file
dropped on the canvas (a DragEvent "drop" carrying it, which the frontend hands to app.handleFile;
web/hifi.js hands it a .mkv typed video/webm): the graph that comes back has the template's nodes
(ids, types), links and the run's widget values, and the file's `prompt` names the same nodes.
A .mkv without a workflow, dropped after, gets the frontend's "Unable to find workflow" message.

With HIFI_BROWSER_FULL=1 each of the four templates also runs unchanged (checkpoint, levels,
patches, the 640x360 example clip) on first click (app.queuePrompt, as the Run button) in a
ComfyUI started for it alone, its output dropped back the same way; minutes each on a CPU.

Runs only when COMFYUI_PATH is set (see tests/test_comfyui_server.py: COMFYUI_PYTHON, the same
server fixture), Chromium and chromedriver are on PATH (or CHROME_BIN / CHROMEDRIVER) and
COMFYUI_PYTHON can import selenium. Selenium is not a dependency of the pack's own environment:
this file is also the browser driver, run by COMFYUI_PYTHON as a script (stdlib and selenium
only above the `__main__` line; pytest and the test code below it).

    COMFYUI_PATH=/tmp/ComfyUI COMFYUI_PYTHON=/tmp/comfy-venv/bin/python \\
        .venv/bin/python -m pytest tests/test_browser.py -q -s
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROME_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1800",
               "--autoplay-policy=no-user-gesture-required", "--mute-audio"]
PAGE_TIMEOUT = 120
RUN_TIMEOUT = 300
DROP_TIMEOUT = 60  # s: fetch one written file, drop it, wait for the graph
UNTAGGED_MKV = "no-workflow.mkv"  # dropped after a run that wrote a .mkv: a message, not a graph
# what a browser names a dropped file's type after its extension (File.type)
MIME = {".mp4": "video/mp4", ".mov": "video/quicktime", ".m4v": "video/x-m4v", ".webm": "video/webm",
        ".mkv": "video/x-matroska", ".png": "image/png"}

# what the page runs, each awaited in an async function with the driver's arguments as `args`
from browser_js import RUN_JS, RELOAD_JS, DROP_JS, UNTAGGED_MKV_JS, ROUNDTRIP_JS  # noqa: E402


def written_files(outputs: dict) -> list[dict]:
    """The files a run's outputs name (`hifi_video` entries), as /view specs: the video itself
    (not the browser preview of a ProRes / PNG run), the first frame of a PNG sequence."""
    files = []
    for node_id, output in sorted(outputs.items()):
        for entry in output.get("hifi_video", []):
            name, subfolder = entry["file"], entry.get("file_subfolder", "")
            if entry.get("codec") == "png-sequence":
                subfolder, name = f"{subfolder}/{name}".strip("/"), "frame_000000.png"
            files.append({"node": node_id, "filename": name, "subfolder": subfolder, "type": "output",
                          "name": name, "mime": MIME.get(Path(name).suffix.lower(), "")})
    return files


def _async_script(driver, body: str, *args):
    """Run `body` as an async function in the page with `args`; return its value."""
    wrapper = ("const done = arguments[arguments.length - 1];"
               "const args = Array.from(arguments).slice(0, -1);"
               "(async () => {" + body + "})().then(done, (e) => done({error: String(e && e.stack || e)}));")
    result = driver.execute_async_script(wrapper, *args)
    if isinstance(result, dict) and "error" in result and len(result) == 1:
        raise RuntimeError(f"in the page: {result['error']}")
    return result


def drive(config: dict) -> dict:
    """Open the page, run the workflow, measure; screenshots to config['screenshot'] + state."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    url = config["url"]
    # a fresh user folder: no "get started" template dialog over the canvas
    request = urllib.request.Request(f"{url}/api/settings/Comfy.TutorialCompleted", data=b"true", method="POST")
    urllib.request.urlopen(request, timeout=30).read()
    options = Options()
    for argument in CHROME_ARGS:
        options.add_argument(argument)
    options.binary_location = config["chrome"]
    driver = webdriver.Chrome(options=options, service=Service(config["chromedriver"]))
    run_timeout = config.get("run_timeout", RUN_TIMEOUT)
    try:
        driver.set_script_timeout(run_timeout + 120)
        driver.get(url)
        deadline = time.monotonic() + PAGE_TIMEOUT
        ready = ("return !!(window.app && window.app.graph && window.app.canvas && window.LiteGraph"
                 " && window.app.extensions?.some((e) => e.name === 'hifi.nodes'))")
        while not driver.execute_script(ready):
            if time.monotonic() > deadline:
                raise RuntimeError("the ComfyUI page did not come up with the hifi.nodes extension")
            time.sleep(0.5)
        time.sleep(2)  # the frontend finishes its start (settings, default graph)
        if config.get("roundtrip"):
            return {"roundtrip": _async_script(driver, ROUNDTRIP_JS)}
        workflow = json.loads(Path(config["workflow"]).read_text())
        result = _async_script(driver, RUN_JS, workflow, config["shrink"], config["fresh"], run_timeout)
        driver.save_screenshot(config["screenshot"] + "-after-run.png")
        if config.get("reload", True):
            result.update(_async_script(driver, RELOAD_JS))
            driver.save_screenshot(config["screenshot"] + "-reloaded.png")
        result["drops"] = []
        if config.get("drop"):
            driver.set_script_timeout(DROP_TIMEOUT)
            for i, spec in enumerate(written_files(result["outputs"])):
                try:
                    dropped = _async_script(driver, DROP_JS, spec, len(workflow["nodes"]))
                except Exception as error:  # reported by the drop test, not fatal to the others
                    dropped = {"error": f"{type(error).__name__}: {error}"[-1500:]}
                shot = f"{config['screenshot']}-dropped-{i}{Path(spec['name']).suffix}.png"
                driver.save_screenshot(shot)
                result["drops"].append({**spec, **dropped, "screenshot": shot})
            if any(Path(spec["name"]).suffix.lower() == ".mkv" for spec in written_files(result["outputs"])):
                try:
                    result["untagged_mkv"] = _async_script(driver, UNTAGGED_MKV_JS, UNTAGGED_MKV, workflow)
                except Exception as error:  # reported by its test
                    result["untagged_mkv"] = {"error": f"{type(error).__name__}: {error}"[-1500:]}
        try:
            log = driver.get_log("browser")
        except Exception:  # a driver without the log endpoint: nothing to report
            log = []
        result["console_errors"] = [entry["message"] for entry in log
                                    if entry["level"] == "SEVERE" and "hifi" in entry["message"].lower()]
        return result
    finally:
        driver.quit()


if __name__ == "__main__":  # the driver, run by COMFYUI_PYTHON (selenium, no pytest)
    print(json.dumps(drive(json.loads(sys.argv[1]))))
    sys.exit(0)

import pytest  # noqa: E402  (the test side: the driver's interpreter need not have pytest)

from comfy_stubs.graph import FRONTEND_ONLY  # noqa: E402
from test_comfyui_server import COMFYUI_PATH, server  # noqa: E402,F401  (the server fixture)
from test_workflows import SHRINK, WORKFLOWS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PYTHON = os.environ.get("COMFYUI_PYTHON", sys.executable)
CHROME = os.environ.get("CHROME_BIN") or next(
    (path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None)
CHROMEDRIVER = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
TOLERANCE = 1.0  # px, on screen: the frontend positions widgets at sub-pixel offsets


def _missing() -> str | None:
    if not COMFYUI_PATH:
        return "COMFYUI_PATH is not set"
    if not CHROME or not CHROMEDRIVER:
        return "chromium / chromedriver not found (PATH, CHROME_BIN, CHROMEDRIVER)"
    probe = subprocess.run([PYTHON, "-c", "import selenium"], capture_output=True, text=True)
    if probe.returncode:
        return f"{PYTHON} cannot import selenium"
    return None


MISSING = _missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
FULL = os.environ.get("HIFI_BROWSER_FULL") == "1"
FULL_RUN_TIMEOUT = 1800  # s per template, unshrunk on a CPU

# template -> node types cut to their minimum height before the run (as if freshly added)
CASES = {"HiFI 3 - Retime a video file to 60 fps": ["HiFIRetimeVideo"],
         "HiFI 2 - Clip to 60 fps with audio": ["HiFIVideoCombine", "HiFILoadVideo"]}
# dropped files: case -> (template, widget values set on top of SHRINK, the file's extension)
DROP_CASES = {"Retime Video mp4": ("HiFI 3 - Retime a video file to 60 fps", {}, ".mp4"),
              "Video Combine mp4": ("HiFI 2 - Clip to 60 fps with audio", {}, ".mp4"),
              "Video Combine PNG sequence": ("HiFI 2 - Clip to 60 fps with audio", {"format": "png-sequence"}, ".png"),
              "Video Combine ffv1 mkv": ("HiFI 2 - Clip to 60 fps with audio", {"format": "ffv1-mkv"}, ".mkv")}
# ComfyUI frontend 1.27's app.handleFile has no Matroska branch (a .mkv typed video/x-matroska got
# "Unable to find workflow in ..."): web/hifi.js hands it a .mkv typed video/webm, whose branch
# reads the same Matroska tags
_RUNS: dict = {}  # one page run per (server, template, values) serves the layout and the drop tests


def _drive(url: str, template: str, values: dict, *, fresh=(), reload=True, run_timeout=RUN_TIMEOUT,
           tag: str = "") -> dict:
    """The driver's result for `template` with `values` set (SHRINK and more, or nothing)."""
    key = (url, template, json.dumps(values, sort_keys=True))
    if key not in _RUNS:
        workflow = ROOT / "workflows" / f"{template}.json"
        assert workflow in WORKFLOWS
        config = {"url": url, "workflow": str(workflow), "shrink": values, "fresh": list(fresh),
                  "reload": reload, "drop": True, "run_timeout": run_timeout,
                  "screenshot": str(Path(tempfile.gettempdir()) / f"hifi-browser-{template}{tag}"),
                  "chrome": CHROME, "chromedriver": CHROMEDRIVER}
        run = subprocess.run([PYTHON, __file__, json.dumps(config)], capture_output=True, text=True,
                             timeout=PAGE_TIMEOUT + 2 * run_timeout + 10 * DROP_TIMEOUT)
        assert run.returncode == 0, run.stderr[-3000:]
        result = json.loads(run.stdout.strip().splitlines()[-1])
        result["screenshot"] = config["screenshot"]
        _RUNS[key] = result
    return _RUNS[key]


def _failure(status: dict | None) -> str:
    if not status:
        return "no status in /history (the run did not finish in time)"
    return "\n".join(f"{e.get('node_type')}: {e.get('exception_type')}: {e.get('exception_message')}\n"
                     + "".join(e.get("traceback", [])[-3:]) for e in status.get("errors", [])) or status["messages"]


def check_restored(drop: dict, template: dict, queued: list) -> list[str]:
    """What is wrong with the graph a dropped file brought back (empty: nothing)."""
    where = f"{drop['subfolder']}/{drop['name']}"
    if "error" in drop:
        return [f"{where}: the drop failed in the page: {drop['error']}"]
    if drop.get("fetched") != 200:
        return [f"{where}: /view answered {drop.get('fetched')}"]
    problems = []
    if not {"workflow", "prompt"} <= set(drop["metaKeys"]):
        problems.append(f"{where}: the frontend reads {drop['metaKeys']} from it, not workflow and prompt")
    if drop["emptied"]:
        problems.append(f"{where}: the graph still had {drop['emptied']} nodes before the drop")
    nodes = sorted((n["id"], n["type"]) for n in drop["nodes"])
    wanted = sorted((n["id"], n["type"]) for n in template["nodes"])
    if nodes != wanted:
        problems.append(f"{where}: dropped graph has nodes {nodes}, the template {wanted}; toasts {drop['toasts']}")
    failed = [t for t in drop.get("toasts", []) if "Unable to find workflow" in t]
    if failed:  # the graph came back, yet the frontend also said it found none
        problems.append(f"{where}: the frontend also said {failed}")
    if drop["links"] != len(template["links"]):
        problems.append(f"{where}: {drop['links']} links, the template {len(template['links'])}")
    back = {n["id"]: n for n in drop["nodes"]}
    for node in queued:  # the run's values (shrunk or not), not the template's
        if node["id"] not in back or back[node["id"]]["widgets_values"] == node["widgets_values"]:
            continue
        values, names = back[node["id"]]["widgets_values"] or [], back[node["id"]]["names"]
        changed = [f"{names[i] if i < len(names) else i}: {old!r} -> {values[i] if i < len(values) else None!r}"
                   for i, old in enumerate(node["widgets_values"] or []) if i >= len(values) or values[i] != old]
        problems.append(f"{where}: {node['type']} #{node['id']} came back with {', '.join(changed) or values} "
                        f"(queued {node['widgets_values']}, back {values})")
    sent = {str(n["id"]): n["type"] for n in template["nodes"] if n["type"] not in FRONTEND_ONLY}
    if drop["promptNodes"] != sent:
        problems.append(f"{where}: its prompt holds {drop['promptNodes']}, the queued graph {sent}")
    return problems


def _inside(inner: dict, outer: dict) -> bool:
    return (inner["left"] >= outer["left"] - TOLERANCE and inner["top"] >= outer["top"] - TOLERANCE
            and inner["right"] <= outer["right"] + TOLERANCE and inner["bottom"] <= outer["bottom"] + TOLERANCE)


def _overlap(a: dict, b: dict) -> float:
    """Height of the overlap of two rectangles (0 when they only touch)."""
    width = min(a["right"], b["right"]) - max(a["left"], b["left"])
    height = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
    return max(0.0, height) if width > TOLERANCE else 0.0


def check_layout(state: dict) -> list[str]:
    """What is wrong with one measured state of the page (empty: nothing)."""
    problems = []
    for node in state["nodes"]:
        shown = [w for w in node["widgets"] if w["visible"]]
        for widget in node["widgets"]:  # on screen, so that the checks below are not vacuous
            if not widget["visible"] and (widget["name"].startswith("hifi_") or widget["name"] == "video-preview"):
                problems.append(f"{state['label']}: {node['type']} #{node['id']} {widget['name']} is not shown")
        for widget in shown:
            where = f"{state['label']}: {node['type']} #{node['id']} {widget['name']}"
            if not _inside(widget["rect"], node["rect"]):
                problems.append(f"{where} {widget['rect']} is not inside its node {node['rect']}")
            if "video" in widget and widget["video"]["bottom"] > widget["video"]["top"]:
                if not _inside(widget["video"], widget["rect"]):
                    problems.append(f"{where}: its video {widget['video']} spills out of {widget['rect']}")
        for i, first in enumerate(shown):
            for second in shown[i + 1:]:
                if _overlap(first["rect"], second["rect"]) > TOLERANCE:
                    problems.append(f"{state['label']}: {node['type']} #{node['id']}: {first['name']} "
                                    f"{first['rect']} overlaps {second['name']} {second['rect']}")
    return problems


def _report(state: dict) -> None:
    """Node sizes and widget y / height in graph units; the video's drawn height on screen."""
    for node in state["nodes"]:
        if not node["widgets"] or node["type"] == "MarkdownNote":
            continue
        print(f"  {state['label']:>8} (zoom {state['scale']:.2f}) {node['type']} #{node['id']} "
              f"{node['size'][0]:.0f}x{node['size'][1]:.0f}: " +
              ", ".join(f"{w['name']} y={w['y']:.0f} h={w['height']:.0f}"
                        + (f" (video {w['video']['bottom'] - w['video']['top']:.0f} px on screen)" if "video" in w else "")
                        for w in node["widgets"] if w["visible"]))


@pytest.mark.parametrize("template", sorted(CASES))
def test_previews_fit_their_nodes_in_the_real_frontend(server, template):
    result = _drive(server["url"], template, SHRINK, fresh=CASES[template])
    shots = result["screenshot"]
    print(f"\n{template}: run {result['seconds']:.1f} s, screenshots {shots}-after-run.png, {shots}-reloaded.png")
    for label in ("before", "after", "reloaded"):
        _report(result[label])
    assert result["status"] and result["status"]["status_str"] == "success", _failure(result["status"])
    assert not result["console_errors"], result["console_errors"]
    problems = [p for label in ("before", "after", "reloaded") for p in check_layout(result[label])]
    assert not problems, "\n".join(problems)

    for state in ("before", "after", "reloaded"):
        for node in result[state]["nodes"]:
            names = [w["name"] for w in node["widgets"]]
            if "hifi_preview" not in names:
                continue
            # the output preview is last: below the frontend's input preview, never above it
            assert names[-1] == "hifi_preview", names
            caption = next(w for w in node["widgets"] if w["name"] == "hifi_preview")["text"]
            assert caption.startswith("Output:"), caption
            if "video-preview" in names:
                assert names.index("hifi_input_caption") == names.index("video-preview") - 1, names
                label = next(w for w in node["widgets"] if w["name"] == "hifi_input_caption")["text"]
                assert label == "Input: clip.mp4", label

    before = {n["id"]: n for n in result["before"]["nodes"]}
    for state in ("after", "reloaded"):
        for node in result[state]["nodes"]:
            preview = next((w for w in node["widgets"] if w["name"] == "hifi_preview"), None)
            if preview is None:
                continue
            height = preview["video"]["bottom"] - preview["video"]["top"]
            assert preview["videoSize"][1] > 0 and height > 0, (state, preview)
            assert "/view?" in preview["videoSrc"] and "frames @" in preview["text"], preview
            # the video is drawn at the widget's width and the clip's aspect ratio
            width = preview["video"]["right"] - preview["video"]["left"]
            video_width, video_height = preview["videoSize"]
            assert height == pytest.approx(width * video_height / video_width, abs=2), preview
            if state == "after":  # it grew to hold the player (it was at its minimum before)
                assert node["size"][1] > before[node["id"]]["size"][1] + height / result[state]["scale"] * 0.9


def _drop_run(url: str, case: str) -> dict:
    """The page run whose written files the drop case drops (the mp4 cases reuse the layout
    test's run: same template, same values)."""
    template, values, _ = DROP_CASES[case]
    fresh = CASES[template] if not values else ()
    tag = "".join(f"-{v}" for v in values.values())
    return _drive(url, template, {**SHRINK, **values}, fresh=fresh, reload=not values, tag=tag)


@pytest.mark.parametrize("case", sorted(DROP_CASES))
def test_dropping_a_written_file_restores_its_graph(server, case):
    template, values, suffix = DROP_CASES[case]
    result = _drop_run(server["url"], case)
    assert result["status"] and result["status"]["status_str"] == "success", _failure(result["status"])
    drops = [d for d in result["drops"] if Path(d["name"]).suffix == suffix]
    assert drops, f"the run wrote no {suffix} file: {result['outputs']}"
    workflow = json.loads((ROOT / "workflows" / f"{template}.json").read_text())
    for drop in drops:
        _report_drop(case, drop)
        problems = check_restored(drop, workflow, result["queued"])
        assert not problems, "\n".join(problems)


def test_dropping_a_mkv_without_a_workflow_says_so(server):
    """After the .mkv drop case: a .mkv with no workflow tags gets the frontend's message naming
    it, and the graph on the canvas stays."""
    result = _drop_run(server["url"], "Video Combine ffv1 mkv")
    assert "untagged_mkv" in result, f"the run wrote no .mkv: {result['outputs']}"
    untagged = result["untagged_mkv"]
    print(f"\n{UNTAGGED_MKV} dropped: {untagged}")
    assert "error" not in untagged, untagged["error"]
    assert any("Unable to find workflow" in t and UNTAGGED_MKV in t for t in untagged["toasts"]), untagged
    assert untagged["after"] == untagged["before"] > 0, untagged


def test_every_hifi_node_keeps_its_widget_values_when_saved_and_loaded(server):
    """What a dropped file, a reopened tab or a saved workflow goes through: serialize, then
    loadGraphData. The frontend maps widgets_values back by position (and "migrates" an array
    as long as a node's widget inputs plus its forceInput ones), so a value the page adds to
    the array can shift a real one."""
    config = {"url": server["url"], "roundtrip": True, "chrome": CHROME, "chromedriver": CHROMEDRIVER}
    run = subprocess.run([PYTHON, __file__, json.dumps(config)], capture_output=True, text=True,
                         timeout=PAGE_TIMEOUT + 120)
    assert run.returncode == 0, run.stderr[-3000:]
    nodes = json.loads(run.stdout.strip().splitlines()[-1])["roundtrip"]
    with urllib.request.urlopen(f"{server['url']}/object_info", timeout=30) as reply:
        defined = sorted(name for name in json.loads(reply.read()) if name.startswith("HiFI"))
    print(f"\n{len(nodes)} HiFI node types saved and loaded: {', '.join(n['type'] for n in nodes)}")
    assert [n["type"] for n in nodes] == defined
    problems = []
    for node in nodes:
        saved, loaded, names = node["saved"] or [], node["loaded"] or [], node["names"]
        if saved != loaded:
            changed = [f"{names[i] if i < len(names) else i}: {value!r} -> {loaded[i] if i < len(loaded) else None!r}"
                       for i, value in enumerate(saved) if i >= len(loaded) or loaded[i] != value]
            problems.append(f"{node['type']}: {', '.join(changed)} (saved {saved}, loaded {loaded})")
    assert not problems, "\n".join(problems)


def _report_drop(label: str, drop: dict) -> None:
    if "error" in drop:
        print(f"\n{label}: dropping {drop['subfolder']}/{drop['name']} failed: {drop['error']}")
        return
    print(f"\n{label}: dropped {drop['subfolder']}/{drop['name']} ({drop['mime']}, {drop.get('bytes')} bytes, "
          f"tags {drop.get('metaKeys')}): {len(drop.get('nodes', []))} nodes, {drop.get('links')} links back; "
          f"screenshot {drop['screenshot']}")


@pytest.fixture(scope="module")
def first_click(tmp_path_factory):
    """template path -> its unshrunk run, queued from the page in a ComfyUI started for it alone
    (the `server` fixture's body: nothing loaded, cached or run before, a new user folder, the
    example clip put in by the pack as it loads) and stopped after; one run serves two tests."""
    runs = {}

    def run(path: Path) -> dict:
        if path not in runs:
            instance = server.__wrapped__(tmp_path_factory)
            try:
                fresh = next(instance)
                started = time.monotonic()
                result = _drive(fresh["url"], path.stem, {}, reload=False, run_timeout=FULL_RUN_TIMEOUT, tag="-full")
                runs[path] = {**result, "output": fresh["output"], "wall": time.monotonic() - started}
            except Exception as error:  # the second test of this template reports it as well
                runs[path] = error
            finally:
                instance.close()  # ComfyUI stops: the next template gets a fresh one
        if isinstance(runs[path], Exception):
            raise runs[path]
        return runs[path]

    return run


FULL_ONLY = pytest.mark.skipif(not FULL, reason="HIFI_BROWSER_FULL=1 runs the unshrunk templates (minutes each on a CPU)")


@FULL_ONLY
@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_templates_run_unchanged_on_first_click_in_a_fresh_comfyui(first_click, path):
    result = first_click(path)
    status = result["status"]
    outputs = [entry for output in result["outputs"].values() for entry in output.get("hifi_video", [])]
    print(f"\n{path.stem}: queued on first click, {status and status['status_str']} after {result['seconds']:.1f} s "
          f"(with the page: {result['wall']:.1f} s); "
          + "; ".join(f"{e['file_subfolder']}/{e['file']} {e['width']}x{e['height']}, {e['frame_count']} frames "
                      f"@ {e['frame_rate']:g} fps" for e in outputs)
          + f"; screenshot {result['screenshot']}-after-run.png")
    assert status and status["status_str"] == "success" and not status["errors"], _failure(status)
    assert outputs, result["outputs"]
    for entry in outputs:
        assert (result["output"] / entry["file_subfolder"] / entry["file"]).exists(), entry


@FULL_ONLY
@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_unshrunk_template_outputs_restore_their_graph(first_click, path):
    result = first_click(path)
    assert result["drops"], f"nothing written to drop: {result['outputs']}"
    workflow = json.loads(path.read_text())
    problems = []
    for drop in result["drops"]:  # what it wrote (a ProRes mov for the 4K one) restores the graph
        _report_drop(path.stem, drop)
        problems += check_restored(drop, workflow, result["queued"])
    assert not problems, "\n".join(problems)
