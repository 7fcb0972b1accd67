"""The inline previews in the real ComfyUI frontend, in headless Chromium (web/hifi.js).

A template is loaded into the page (app.loadGraphData), shrunk for CPU like the server tests,
queued with app.queuePrompt and measured with getBoundingClientRect() before the run, after it
and after the graph is reloaded: every DOM widget of a node (our output preview and readout,
the frontend's input preview of a video_upload combo) lies inside the node's on-screen
rectangle, no two of one node overlap, and after the run the output video has a height and the
node grew to hold it. A screenshot of each state goes to $TMPDIR (not into the repository).

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

# In the page: await these in an async function, `args` being the driver's arguments.
SETUP_JS = r"""
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const frames = async (n = 3) => { for (let i = 0; i < n; i++) await new Promise((r) => requestAnimationFrame(r)); };
const app = window.app;

function fitView() {
  // Zoom so that every node is on screen (the frontend hides the DOM widgets of nodes outside).
  const c = app.canvas, rect = c.canvas.getBoundingClientRect();
  const title = window.LiteGraph.NODE_TITLE_HEIGHT;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const n of app.graph.nodes) {
    x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - title);
    x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
  }
  const left = 90, top = 90, pad = 30;  // the side bar and the menu lie over the canvas
  const scale = Math.min(1, (rect.width - left - pad) / (x1 - x0), (rect.height - top - pad) / (y1 - y0));
  c.ds.scale = scale;
  c.ds.offset[0] = left / scale - x0;
  c.ds.offset[1] = top / scale - y0;
  c.setDirty(true, true);
}

async function settle() {
  for (let i = 0; i < 3; i++) { fitView(); await frames(4); await sleep(150); }
}

function measure(label) {
  const c = app.canvas, ds = c.ds, canvasRect = c.canvas.getBoundingClientRect();
  const screen = (x, y) => [canvasRect.left + (x + ds.offset[0]) * ds.scale,
                            canvasRect.top + (y + ds.offset[1]) * ds.scale];
  const box = (r) => ({ left: r.left, top: r.top, right: r.right, bottom: r.bottom });
  const nodes = [];
  for (const n of app.graph.nodes) {
    const [l, t] = screen(n.pos[0], n.pos[1]);
    const [r, b] = screen(n.pos[0] + n.size[0], n.pos[1] + n.size[1]);
    const widgets = [];
    for (const w of n.widgets ?? []) {
      if (!w.element) continue;
      const entry = { name: w.name, y: w.y, height: w.computedHeight,
                      visible: !!w.element.isConnected && w.element.getClientRects().length > 0,
                      rect: box(w.element.getBoundingClientRect()), text: (w.element.innerText ?? "").slice(0, 200) };
      const video = w.element.querySelector("video");
      if (video) Object.assign(entry, { video: box(video.getBoundingClientRect()),
        videoSize: [video.videoWidth, video.videoHeight], videoSrc: video.currentSrc || video.src || "" });
      widgets.push(entry);
    }
    nodes.push({ id: n.id, type: n.type, size: [n.size[0], n.size[1]],
                 rect: { left: l, top: t, right: r, bottom: b }, widgets });
  }
  return { label, scale: ds.scale, nodes };
}
"""

RUN_JS = SETUP_JS + r"""
const [workflow, shrink, freshSizes] = args;
const out = {};
await app.loadGraphData(workflow);
for (const n of app.graph.nodes) {
  for (const w of n.widgets ?? []) {
    if (!(w.name in shrink)) continue;
    const values = w.options?.values;
    if (Array.isArray(values) && !values.includes(shrink[w.name])) continue;
    w.value = shrink[w.name];
    w.callback?.(w.value);
  }
  // A node as if freshly added: the template's width, its own minimum height (no spare room).
  if (freshSizes.includes(n.type)) n.setSize([n.size[0], n.computeSize()[1]]);
}
// the frontend adds the input preview once the clip has loaded
const uploads = app.graph.nodes.filter((n) => n.widgets?.some((w) => w.name === "upload"));
for (let t = 0; t < 100 && !uploads.every((n) => n.widgets.some((w) => w.name === "video-preview")); t++) await sleep(150);
await settle();
out.before = measure("before");
out.sizeBefore = Object.fromEntries(app.graph.nodes.map((n) => [n.id, [n.size[0], n.size[1]]]));

const started = Date.now();
await app.queuePrompt(0);
let status = null;
while (Date.now() - started < args[3] * 1000) {
  await sleep(500);
  const queue = await (await fetch("/api/queue")).json();
  if (queue.queue_running.length || queue.queue_pending.length) continue;
  const history = await (await fetch("/api/history?max_items=1")).json();
  const last = Object.values(history)[0];
  if (last?.status?.completed !== undefined || last?.status?.status_str === "error") { status = last.status; break; }
}
out.seconds = (Date.now() - started) / 1000;
out.status = status ? { status_str: status.status_str, messages: JSON.stringify(status.messages).slice(-1500) } : null;
// the written video's metadata, so that the preview knows its aspect ratio
const previews = app.graph.nodes.filter((n) => n.hifiPreview);
for (let t = 0; t < 100 && !previews.every((n) => n.hifiPreview.video.videoHeight > 0); t++) await sleep(150);
await settle();
out.after = measure("after");
return out;
"""

RELOAD_JS = SETUP_JS + r"""
await app.loadGraphData(app.graph.serialize());
const previews = app.graph.nodes.filter((n) => n.hifiPreview);
for (let t = 0; t < 100 && !previews.every((n) => n.hifiPreview.video.videoHeight > 0); t++) await sleep(150);
const uploads = app.graph.nodes.filter((n) => n.widgets?.some((w) => w.name === "upload"));
for (let t = 0; t < 100 && !uploads.every((n) => n.widgets.some((w) => w.name === "video-preview")); t++) await sleep(150);
await settle();
return { reloaded: measure("reloaded") };
"""


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
    try:
        driver.set_script_timeout(RUN_TIMEOUT + 120)
        driver.get(url)
        deadline = time.monotonic() + PAGE_TIMEOUT
        ready = ("return !!(window.app && window.app.graph && window.app.canvas && window.LiteGraph"
                 " && window.app.extensions?.some((e) => e.name === 'hifi.nodes'))")
        while not driver.execute_script(ready):
            if time.monotonic() > deadline:
                raise RuntimeError("the ComfyUI page did not come up with the hifi.nodes extension")
            time.sleep(0.5)
        time.sleep(2)  # the frontend finishes its start (settings, default graph)
        workflow = json.loads(Path(config["workflow"]).read_text())
        result = _async_script(driver, RUN_JS, workflow, config["shrink"], config["fresh"], RUN_TIMEOUT)
        driver.save_screenshot(config["screenshot"] + "-after-run.png")
        result.update(_async_script(driver, RELOAD_JS))
        driver.save_screenshot(config["screenshot"] + "-reloaded.png")
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

# template -> node types cut to their minimum height before the run (as if freshly added)
CASES = {"HiFI 3 - Retime a video file to 60 fps": ["HiFIRetimeVideo"],
         "HiFI 2 - Clip to 60 fps with audio": ["HiFIVideoCombine", "HiFILoadVideo"]}


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
    workflow = ROOT / "workflows" / f"{template}.json"
    assert workflow in WORKFLOWS
    shots = Path(tempfile.gettempdir()) / f"hifi-browser-{template}"
    config = {"url": server["url"], "workflow": str(workflow), "shrink": SHRINK, "fresh": CASES[template],
              "screenshot": str(shots), "chrome": CHROME, "chromedriver": CHROMEDRIVER}
    run = subprocess.run([PYTHON, __file__, json.dumps(config)], capture_output=True, text=True,
                         timeout=PAGE_TIMEOUT + 2 * RUN_TIMEOUT)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"\n{template}: run {result['seconds']:.1f} s, screenshots {shots}-after-run.png, {shots}-reloaded.png")
    for label in ("before", "after", "reloaded"):
        _report(result[label])
    assert result["status"] and result["status"]["status_str"] == "success", result["status"]
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
