// DOM-level test of web/hifi.js's previews, in node with no browser (run by tests/test_web.py):
//
//     node tests/js/previews.test.mjs <dir>/extensions/hifi/hifi.js
//
// where <dir>/scripts/ holds tests/js/scripts/ (stand-ins for the frontend's app.js / api.js) and
// <dir>/package.json says "type": "module". A small fake DOM and a LiteGraph-like node stand in
// for the frontend; the node's computeSize and the widget layout follow the frontend's
// (comfyui-frontend-package 1.27: LGraphNode.computeSize, #arrangeWidgets, distributeSpace,
// DOMWidgetImpl.computeLayoutSize). Exits non-zero on the first failed check.
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";

// ---- a fake DOM -----------------------------------------------------------------------------

class FakeElement {
  constructor(tag) {
    this.tagName = tag.toUpperCase();
    this.style = { cssText: "" };
    this.children = [];
    this.listeners = {};
    this.textContent = "";
    this.className = "";
    this.title = "";
    this.src = "";
    this.videoWidth = 0;
    this.videoHeight = 0;
  }
  append(...children) {
    this.children.push(...children);
  }
  addEventListener(type, listener) {
    (this.listeners[type] ??= []).push(listener);
  }
  dispatch(type) {
    for (const listener of this.listeners[type] ?? []) listener({ type, target: this });
  }
  play() {
    return Promise.resolve();
  }
}
globalThis.document = { createElement: (tag) => new FakeElement(tag) };
globalThis.hifiRoutes = {
  "/hifi/probe": { width: 64, height: 48, fps: 12, frame_count: 6 },
  "/hifi/eta": { inbetweens: 20, seconds_per_inbetween: 0.9, eta_seconds: 19, measured_at: "64×48, 2026-12-01 20:02:01" },
};

// ---- a LiteGraph-like node, laid out as the frontend does -------------------------------------

const SLOT_HEIGHT = 20;      // LiteGraph.NODE_SLOT_HEIGHT
const WIDGET_HEIGHT = 20;    // LiteGraph.NODE_WIDGET_HEIGHT

function distributeSpace(total, requests) {  // the frontend's, for growable (DOM) widgets
  const minimum = requests.reduce((sum, r) => sum + r.minSize, 0);
  if (total < minimum) return requests.map((r) => r.minSize);
  let allocations = requests.map((r) => ({ size: r.minSize, room: (r.maxSize ?? Infinity) - r.minSize }));
  let left = total - minimum;
  while (left > 0 && allocations.some((a) => a.room > 0)) {
    const share = left / allocations.filter((a) => a.room > 0).length;
    let used = 0;
    allocations = allocations.map((a) => {
      if (a.room <= 0) return a;
      const grow = Math.min(share, a.room);
      used += grow;
      return { size: a.size + grow, room: a.room - grow };
    });
    left -= used;
    if (used === 0) break;
  }
  return allocations.map((a) => a.size);
}

class FakeNode {
  constructor(type, widgetNames, outputs = 1) {
    this.title = this.type = this.comfyClass = type;
    this.outputs = Array.from({ length: outputs }, (_, i) => ({ name: `out${i}` }));
    this.inputs = [];
    this.properties = {};
    this.widgets = [];
    for (const [name, value] of widgetNames) this.widgets.push({ name, value, type: "combo" });
    this.size = [420, 100];
    this.size = this.computeSize();
    this.size[0] = 420;
  }
  addDOMWidget(name, type, element, options = {}) {
    const widget = {
      name, type, element, options: { hideOnZoom: true, ...options },
      get margin() { return this.options.margin ?? 10; },
      computeLayoutSize() {  // DOMWidgetImpl.computeLayoutSize with no CSS variables set
        const minHeight = this.options.getMinHeight?.();
        const maxHeight = this.options.getMaxHeight?.();
        return { minHeight: minHeight ?? 50, maxHeight, minWidth: 0 };
      },
    };
    this.addCustomWidget(widget);
    return widget;
  }
  addCustomWidget(widget) {
    this.widgets.push(widget);
    return widget;
  }
  get startY() {
    return Math.max(this.inputs.length, this.outputs.length, 1) * SLOT_HEIGHT;
  }
  computeSize() {  // LGraphNode.computeSize: slots, then each widget's (minimum) height + 4
    let height = this.startY;
    let widgets = 0;
    for (const w of this.widgets) widgets += (w.computeLayoutSize ? w.computeLayoutSize(this).minHeight : WIDGET_HEIGHT) + 4;
    height += widgets + 8 + 6;
    return [210, height];
  }
  setSize(size) {
    this.size = [size[0], size[1]];
  }
  setDirtyCanvas() {}
  findInputSlot() {
    return -1;
  }
  arrange() {  // LGraphNode.#arrangeWidgets: y and computedHeight of each widget; grows the node
    let free = this.size[1] - this.startY - 2;
    const growable = [];
    for (const w of this.widgets) {
      if (w.computeLayoutSize) {
        const { minHeight, maxHeight } = w.computeLayoutSize(this);
        growable.push({ w, minSize: minHeight, maxSize: maxHeight });
      } else {
        w.computedHeight = WIDGET_HEIGHT + 4;
        free -= w.computedHeight;
      }
    }
    distributeSpace(Math.max(0, free), growable).forEach((size, i) => { growable[i].w.computedHeight = size; });
    let y = this.startY + 2;
    for (const w of this.widgets) {
      w.y = y;
      y += w.computedHeight;
    }
    if (y > this.size[1]) this.setSize([this.size[0], y]);
  }
}

function nodeType() {
  return class extends FakeNode {};
}

// ---- the extension --------------------------------------------------------------------------

const hifi = await import(pathToFileURL(process.argv[2]).href);
const { app } = await import(new URL("../../scripts/app.js", pathToFileURL(process.argv[2])).href);
const extension = app.extensions.find((e) => e.name === "hifi.nodes");
assert.ok(extension, "hifi.js registers hifi.nodes");

async function makeNode(name, widgets, outputs) {
  const Type = nodeType();
  await extension.beforeRegisterNodeDef(Type, { name });
  const node = new Type(name, widgets, outputs);
  node.onNodeCreated?.();
  return node;
}

const widget = (node, name) => node.widgets.find((w) => w.name === name);
const minHeight = (node, name) => widget(node, name).computeLayoutSize(node).minHeight;
const entry = (width, height, extra = {}) => ({
  filename: "x2_00001_.mp4", file: "x2_00001_.mp4", subfolder: "HiFI", type: "output",
  width, height, frame_count: 11, frame_rate: 24, codec: "h264-mp4", ...extra,
});
let checks = 0;
async function check(name, body) {
  await body();
  checks += 1;
  console.log(`ok ${checks} ${name}`);
}

// ---- the pure sizing functions ----------------------------------------------------------------

await check("previewHeight: caption + video at the width and the clip's aspect ratio", () => {
  assert.equal(hifi.previewHeight(400, 64, 48, 28), 28 + 2 + 300);
  assert.equal(hifi.previewHeight(400, 1920, 1080, 14), Math.ceil(14 + 2 + 225));
  assert.equal(hifi.previewHeight(400, 0, 0, 14), 14, "no video yet: the caption only");
  assert.ok(hifi.previewHeight(600, 1920, 1080, 14) > hifi.previewHeight(400, 1920, 1080, 14), "grows with the width");
});

await check("previewHeight: the video is capped (portrait clips, very wide nodes)", () => {
  assert.equal(hifi.PREVIEW_MAX_VIDEO, 480);
  assert.equal(hifi.previewHeight(400, 1080, 1920, 14), 14 + 2 + 480);
  assert.equal(hifi.previewHeight(2000, 1920, 1080, 14), 14 + 2 + 480);
  assert.equal(hifi.previewHeight(400, 1080, 1920, 14, 300), 14 + 2 + 300);
});

await check("textHeight: wraps monospace text at the width", () => {
  const line = hifi.CAPTION_LINE;
  assert.equal(hifi.textHeight("Output: a.mp4", 400), line);
  assert.equal(hifi.textHeight("one\ntwo", 400), 2 * line);
  const perLine = Math.floor(400 / hifi.CHAR_WIDTH);
  assert.equal(hifi.textHeight("x".repeat(perLine), 400), line);
  assert.equal(hifi.textHeight("x".repeat(perLine + 1), 400), 2 * line, "a long word breaks anywhere");
  assert.equal(hifi.textHeight(`${"a".repeat(perLine - 2)} bbbb`, 400), 2 * line, "a word that does not fit wraps");
});

await check("outputCaption: labelled Output, with size, frames and rate", () => {
  assert.equal(hifi.outputCaption(entry(1280, 720, { frame_rate: 59.94 })),
    "Output: x2_00001_.mp4 · 1280×720 · 11 frames @ 59.94 fps · h264-mp4");
  assert.match(hifi.outputCaption(null), /^Output: the written video will play here after a run$/);
});

// ---- HiFI Video Combine: grows on output, never shrinks ---------------------------------------

const combine = await makeNode("HiFIVideoCombine", [["frame_rate", 24], ["filename_prefix", "HiFI/x2"]]);
const preview = widget(combine, "hifi_preview");

await check("Video Combine: before a run the preview is its caption only", () => {
  assert.ok(preview, "the preview widget");
  assert.equal(preview.element.children[0].textContent, "Output: the written video will play here after a run");
  assert.equal(minHeight(combine, "hifi_preview"), hifi.CAPTION_LINE + 2 * 10);
  assert.equal(preview.options.getMaxHeight(), preview.options.getMinHeight(), "takes no spare room");
  assert.match(preview.element.style.cssText, /height:100%/);
  assert.match(preview.element.style.cssText, /overflow:hidden/);
  assert.match(combine.hifiPreview.video.style.cssText, /object-fit:contain/);
  assert.match(combine.hifiPreview.video.style.cssText, /min-height:0/);
  assert.match(combine.hifiPreview.video.style.cssText, /display:none/);
});

const beforeRun = combine.size[1];
combine.onExecuted({ hifi_video: [entry(64, 48)] });

await check("Video Combine: after a run the preview reports caption + video and the node grows", () => {
  const inner = 420 - 2 * 10;
  const caption = hifi.textHeight(hifi.outputCaption(entry(64, 48)), inner);
  assert.equal(minHeight(combine, "hifi_preview"), hifi.previewHeight(inner, 64, 48, caption) + 20);
  assert.ok(minHeight(combine, "hifi_preview") >= inner * 48 / 64, "the video at the node's width");
  assert.ok(combine.size[1] >= combine.computeSize()[1], "the node holds its widgets");
  assert.ok(combine.size[1] - beforeRun >= inner * 48 / 64, `grew ${beforeRun} -> ${combine.size[1]}`);
  assert.equal(combine.size[0], 420, "the width is the user's");
  assert.match(combine.hifiPreview.video.src, /^\/api\/view\?filename=x2_00001_.mp4&subfolder=HiFI&type=output$/);
  assert.equal(combine.hifiPreview.video.style.display, "block");
  assert.equal(combine.hifiPreview.caption.textContent, hifi.outputCaption(entry(64, 48)));
  assert.deepEqual(combine.properties.hifi_last_video, entry(64, 48));
});

await check("Video Combine: the layout gives each widget its height inside the node", () => {
  combine.arrange();
  const grown = combine.size[1];
  assert.equal(preview.computedHeight, minHeight(combine, "hifi_preview"));
  assert.ok(preview.y + preview.computedHeight <= grown, "inside the node");
});

await check("Video Combine: loadedmetadata refines the aspect ratio; the cap holds", () => {
  const video = combine.hifiPreview.video;
  Object.assign(video, { videoWidth: 1080, videoHeight: 1920 });
  video.dispatch("loadedmetadata");
  const caption = hifi.textHeight(combine.hifiPreview.caption.textContent, 400);
  assert.equal(minHeight(combine, "hifi_preview"), caption + 2 + 480 + 20);
  assert.ok(combine.size[1] >= combine.computeSize()[1]);
});

await check("Video Combine: a node the user made bigger is not shrunk", () => {
  combine.setSize([420, 2000]);
  combine.onExecuted({ hifi_video: [entry(64, 48)] });
  assert.equal(combine.size[1], 2000);
});

await check("Video Combine: a reopened workflow shows the last video at its size", async () => {
  const reopened = await makeNode("HiFIVideoCombine", [["frame_rate", 24]]);
  const small = reopened.size[1];
  reopened.properties = { hifi_last_video: entry(64, 48) };
  reopened.onConfigure?.({});
  assert.match(reopened.hifiPreview.video.src, /x2_00001_.mp4/);
  assert.ok(reopened.size[1] - small >= 300, `${small} -> ${reopened.size[1]}`);
});

// ---- HiFI Retime Video: input preview labelled, ours after it ----------------------------------

const retime = await makeNode("HiFIRetimeVideo",
  [["video", "clip.mp4"], ["path", ""], ["multiplier", 2], ["upload", "image"]], 4);

await check("Retime Video: output preview after the readout", () => {
  const names = retime.widgets.map((w) => w.name);
  assert.deepEqual(names.slice(-2), ["hifi_readout", "hifi_preview"]);
});

// the frontend appends its preview of the input clip once the clip has loaded
const inputPreview = retime.addDOMWidget("video-preview", "video", new FakeElement("div"), { hideOnZoom: false });
inputPreview.serialize = false;

await check("Retime Video: the input preview gets an Input caption, ours stays last", () => {
  const names = retime.widgets.map((w) => w.name);
  assert.deepEqual(names.slice(-4), ["hifi_readout", "hifi_input_caption", "video-preview", "hifi_preview"]);
  assert.deepEqual(names.slice(0, 4), ["video", "path", "multiplier", "upload"], "value widgets keep their order");
  const label = widget(retime, "hifi_input_caption");
  label.options.onDraw(label);
  assert.equal(label.element.textContent, "Input: clip.mp4");
  widget(retime, "video").value = "other.mp4";
  label.options.onDraw(label);
  assert.equal(label.element.textContent, "Input: other.mp4");
  assert.equal(minHeight(retime, "hifi_input_caption"), hifi.CAPTION_LINE + 20);
  assert.equal(retime.hifiPreview.caption.textContent.split(":")[0], "Output");
});

await check("Retime Video: after a run every widget has its room and the node holds them all", () => {
  retime.onExecuted({ hifi_video: [entry(64, 48, { file: "retime60_00001_.mp4" })] });
  retime.arrange();
  let previous = null;
  for (const w of retime.widgets) {
    if (previous) assert.ok(w.y >= previous.y + previous.computedHeight, `${w.name} below ${previous.name}`);
    if (w.computeLayoutSize) assert.ok(w.computedHeight >= w.computeLayoutSize(retime).minHeight, w.name);
    previous = w;
  }
  assert.ok(previous.y + previous.computedHeight <= retime.size[1], "inside the node");
  assert.ok(widget(retime, "hifi_preview").y > widget(retime, "video-preview").y, "output below input");
});

// the readout's text arrives after its timer (250 ms) and the routes' answers
await new Promise((resolve) => setTimeout(resolve, 400));
await check("readout: its height follows its text", () => {
  const readout = widget(retime, "hifi_readout");
  const text = readout.element.textContent;
  assert.match(text, /20 in-betweens to make/);
  const lines = text.split("\n").length;
  assert.ok(minHeight(retime, "hifi_readout") >= lines * 11 * 1.35 + 8 + 20, `${lines} lines`);
  assert.ok(retime.size[1] >= retime.computeSize()[1]);
});

await check("display widgets are never saved into widgets_values", () => {
  // the frontend saves every widget whose `serialize` property is not false; a display widget
  // saved as '' shifted HiFI Interpolate's values on reload (scene_threshold came back '')
  for (const node of [retime]) {
    for (const w of node.widgets.filter((w) => w.name.startsWith("hifi_"))) {
      assert.equal(w.serialize, false, `${w.name} would be saved`);
    }
  }
});

console.log(`all ${checks} checks passed`);
