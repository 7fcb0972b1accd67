// HiFI node pack: frontend extension (ES module loaded by ComfyUI from WEB_DIRECTORY).
//
// - HiFI Video Combine / HiFI Retime Video: an inline <video> player for the file the node
//   wrote, taken from the node's "hifi_video" ui output (after a run, and when a workflow is
//   reopened while the file still exists).
// - HiFI Patch-Cascade Upsample: a readout of the patch grid per level and the memory the run
//   will plan with, for the current widget values. The numbers come from the pack's
//   /hifi/estimate route, i.e. from hifi_core itself, so they match the run exactly. The frame
//   size is the Load Video upstream's (/hifi/probe), else the last run's, else 4K UHD.
// - HiFI Interpolate / HiFI Retime Video: a time readout before Run: seconds per in-between
//   from this machine's last run at the same model, device and settings (scaled to the frame
//   size; /hifi/eta, nodes/pace.py), the number of in-betweens the clip needs and the ETA.
// - A .mkv the pack wrote, dropped on the canvas or opened, restores its workflow (the frontend
//   reads it as WebM; see "workflows in .mkv files").
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const PREVIEW_NODES = new Set(["HiFIVideoCombine", "HiFIRetimeVideo"]);
const READOUT_NODE = "HiFIPatchCascadeUpsample";
const ETA_NODES = new Set(["HiFIInterpolate", "HiFIRetimeVideo"]);
const DEFAULT_SIZE = { width: 3840, height: 2160, source: "assumed 4K UHD" };

function widgetValue(node, name) {
  const widget = node?.widgets?.find((w) => w.name === name);
  return widget ? widget.value : undefined;
}

function upstream(node, inputName) {
  const slot = node.findInputSlot ? node.findInputSlot(inputName) : -1;
  if (slot < 0 || !node.inputs?.[slot] || node.inputs[slot].link == null) return null;
  return node.getInputNode(slot);
}

function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

function formatBytes(bytes) {
  if (bytes == null) return "?";
  const gib = bytes / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

function viewUrl(entry) {
  const params = new URLSearchParams({
    filename: entry.filename,
    subfolder: entry.subfolder ?? "",
    type: entry.type ?? "output",
  });
  return api.apiURL(`/view?${params.toString()}`);
}

// ---- inline video preview -------------------------------------------------------------------
//
// The frontend lays DOM widgets out from their options' getMinHeight()/getMaxHeight() (a widget
// that gives none gets 50 px and a share of any free space), so the preview reports the height
// it needs: its caption plus the video at the widget's width and the clip's aspect ratio, capped
// at PREVIEW_MAX_VIDEO. The node grows to that when a video is shown; it never shrinks.
//
// Retime Video also carries the frontend's own preview of its input clip (the "video-preview"
// widget the frontend adds for a combo with video_upload, appended once the clip has loaded).
// Ours is kept after it and each has a caption ("Input: …" above the clip, "Output: …" above the
// written video), so the two cannot be mistaken for each other and never overlap.

export const PREVIEW_MAX_VIDEO = 480;  // px: the tallest the output video is drawn
export const CAPTION_LINE = 14;        // px: line height of the 11px monospace captions
export const CHAR_WIDTH = 6.7;         // px: advance of an 11px monospace character (a bit wide)
const PREVIEW_GAP = 2;
const INPUT_PREVIEW = "video-preview"; // the frontend's preview of a video_upload combo
const OUTPUT_PLACEHOLDER = "Output: the written video will play here after a run";

export function textHeight(text, width, { lineHeight = CAPTION_LINE, charWidth = CHAR_WIDTH } = {}) {
  // Height of monospace text in a block `width` px wide: wrapped at spaces, a word longer than a
  // line broken anywhere (white-space: pre-wrap or normal, with overflow-wrap: anywhere).
  const perLine = Math.max(1, Math.floor(width / charWidth));
  let lines = 0;
  for (const paragraph of String(text ?? "").split("\n")) {
    let used = 0;
    lines += 1;
    for (const word of paragraph.split(" ")) {
      let length = word.length;
      const needed = used === 0 ? length : used + 1 + length;
      if (needed <= perLine) { used = needed; continue; }
      if (used > 0) lines += 1;  // the word starts a new line
      while (length > perLine) { lines += 1; length -= perLine; }
      used = length;
    }
  }
  return lines * lineHeight;
}

export function previewHeight(width, videoWidth, videoHeight, captionHeight, maxVideo = PREVIEW_MAX_VIDEO) {
  // Height of the preview box: the caption, then the video at `width` and its aspect ratio.
  if (!(width > 0 && videoWidth > 0 && videoHeight > 0)) return Math.ceil(captionHeight);
  const video = Math.min(maxVideo, width * videoHeight / videoWidth);
  return Math.ceil(captionHeight + PREVIEW_GAP + video);
}

export function outputCaption(entry) {
  if (!entry) return OUTPUT_PLACEHOLDER;
  const fps = Number(entry.frame_rate ?? 0).toFixed(3).replace(/\.?0+$/, "");
  const parts = [`${entry.width}×${entry.height}`, `${entry.frame_count} frames @ ${fps} fps`];
  if (entry.codec) parts.push(entry.codec);
  return `Output: ${entry.file ?? entry.filename} · ${parts.join(" · ")}`;
}

function widgetMargin(widget) {
  return widget?.margin ?? 10;  // the frontend insets a DOM widget's element by this on each side
}

function fitNode(node) {
  // Grow the node to what its widgets need now (never shrink what the user made bigger).
  if (!node.computeSize || !node.setSize || !node.size) return;
  const needed = node.computeSize()[1];
  if (needed > node.size[1]) node.setSize([node.size[0], needed]);
  node.setDirtyCanvas?.(true, true);
}

function orderPreviews(node) {
  // Input caption + the frontend's input preview, then our output preview last.
  const widgets = node.widgets;
  if (!widgets) return;
  const ours = new Set(["hifi_input_caption", "hifi_preview"]);
  const ordered = widgets.filter((w) => !ours.has(w.name));
  const inputCaption = widgets.find((w) => w.name === "hifi_input_caption");
  if (inputCaption) {
    const at = ordered.findIndex((w) => w.name === INPUT_PREVIEW);
    ordered.splice(at < 0 ? ordered.length : at, 0, inputCaption);
  }
  const preview = widgets.find((w) => w.name === "hifi_preview");
  if (preview) ordered.push(preview);
  if (ordered.some((w, i) => w !== widgets[i])) widgets.splice(0, widgets.length, ...ordered);
}

function addInputCaption(node) {
  // "Input: <clip>" above the frontend's preview of the clip the node reads.
  const label = document.createElement("div");
  label.className = "hifi-input-caption";
  label.style.cssText = "box-sizing:border-box;width:100%;height:100%;overflow:hidden;" +
    "white-space:nowrap;text-overflow:ellipsis;font:11px/14px monospace;color:#ccc";
  const text = () => {
    const path = String(widgetValue(node, "path") ?? "").trim();
    return `Input: ${path || widgetValue(node, "video") || "?"}${path ? " (path)" : ""}`;
  };
  label.textContent = text();
  let widget;
  const height = () => CAPTION_LINE + 2 * widgetMargin(widget);
  widget = addUnsavedDomWidget(node, "hifi_input_caption", "hifi.caption", label, {
    serialize: false, hideOnZoom: false, getMinHeight: height, getMaxHeight: height,
    onDraw() {  // follows the video / path widgets (the frontend replaces their callbacks)
      const now = text();
      if (label.textContent !== now) { label.textContent = now; label.title = now; }
    },
  });
  return widget;
}

// A display-only DOM widget. The frontend honours the `serialize: false` option when it builds
// the prompt but reads `widget.serialize` when it saves the graph: without the property every
// display widget added a '' to widgets_values, and on reload frontend 1.27 took HiFI
// Interpolate's longer array for an old layout and shifted it (scene_threshold came back '').
function addUnsavedDomWidget(node, name, type, element, options) {
  const widget = node.addDOMWidget(name, type, element, { ...options, serialize: false });
  if (widget) widget.serialize = false;
  return widget;
}

function addVideoPreview(node) {
  const box = document.createElement("div");
  box.className = "hifi-preview";
  // The frontend sizes the element to the widget's box; the video takes what the caption leaves
  // (object-fit: contain), so nothing can spill out of the box whatever the layout does.
  box.style.cssText = "box-sizing:border-box;width:100%;height:100%;overflow:hidden;display:flex;" +
    `flex-direction:column;gap:${PREVIEW_GAP}px;font:11px/${CAPTION_LINE}px monospace;color:#ccc`;
  const caption = document.createElement("div");
  caption.className = "hifi-preview-caption";
  caption.style.cssText = "flex:none;overflow-wrap:anywhere";
  caption.textContent = OUTPUT_PLACEHOLDER;
  const video = document.createElement("video");
  video.controls = true;
  video.loop = true;
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.style.cssText = "flex:1 1 0;min-height:0;width:100%;object-fit:contain;background:#000;display:none";
  box.append(caption, video);
  const preview = { box, video, caption, size: null, widget: null };
  const height = () => {
    const width = Math.max(0, (node.size?.[0] ?? 0) - 2 * widgetMargin(preview.widget));
    const [videoWidth, videoHeight] = preview.size ?? [0, 0];
    return previewHeight(width, videoWidth, videoHeight, textHeight(caption.textContent, width)) +
      2 * widgetMargin(preview.widget);
  };
  preview.widget = addUnsavedDomWidget(node, "hifi_preview", "hifi.preview", box, {
    serialize: false, hideOnZoom: false, getMinHeight: height, getMaxHeight: height,
  });
  video.addEventListener("loadedmetadata", () => {
    if (video.videoWidth && video.videoHeight) preview.size = [video.videoWidth, video.videoHeight];
    fitNode(node);
  });
  node.hifiPreview = preview;

  // The frontend appends its input preview once the clip has loaded: keep ours after it.
  const addCustomWidget = node.addCustomWidget;
  if (typeof addCustomWidget === "function") {
    node.addCustomWidget = function (widget, ...rest) {
      const result = addCustomWidget.call(this, widget, ...rest);
      if (widget?.name === INPUT_PREVIEW && !this.widgets?.some((w) => w.name === "hifi_input_caption")) {
        addInputCaption(this);
      }
      orderPreviews(this);
      return result;
    };
  }
  orderPreviews(node);
}

function showVideo(node, entry) {
  if (!node.hifiPreview || !entry) return;
  const { video, caption } = node.hifiPreview;
  video.src = viewUrl(entry);
  video.style.display = "block";
  caption.textContent = outputCaption(entry);
  caption.title = caption.textContent;
  if (entry.width > 0 && entry.height > 0) node.hifiPreview.size = [entry.width, entry.height];
  video.play?.().catch(() => {});
  node.properties = node.properties ?? {};
  node.properties.hifi_last_video = entry;  // so a reopened workflow shows it again
  fitNode(node);
}

// ---- cascade readout --------------------------------------------------------------------------

function addReadout(node, update = updateReadout) {
  const box = document.createElement("pre");
  box.className = "hifi-readout";
  box.style.cssText = "box-sizing:border-box;margin:0;padding:4px 6px;font:11px/1.35 monospace;" +
    "color:#d8e6ff;background:rgba(40,60,90,0.55);border-radius:4px;white-space:pre-wrap;" +
    "overflow-wrap:anywhere;overflow:hidden";
  box.textContent = "HiFI readout: connect the node…";
  let readout;
  const height = () => {  // its text, wrapped at the widget's width, and the padding
    const margin = widgetMargin(readout);
    const width = Math.max(0, (node.size?.[0] ?? 0) - 2 * margin - 12);
    return Math.ceil(textHeight(box.textContent, width, { lineHeight: 11 * 1.35 })) + 8 + 2 * margin;
  };
  readout = addUnsavedDomWidget(node, "hifi_readout", "hifi.readout", box, {
    serialize: false, hideOnZoom: false, getMinHeight: height, getMaxHeight: height,
  });
  node.hifiReadout = { box, timer: null, sizeCache: {}, update };
  for (const widget of node.widgets ?? []) {
    const original = widget.callback;
    widget.callback = function (...args) {
      const result = original?.apply(this, args);
      scheduleReadout(node);
      return result;
    };
  }
  scheduleReadout(node);
}

function scheduleReadout(node) {
  if (!node.hifiReadout) return;
  clearTimeout(node.hifiReadout.timer);
  node.hifiReadout.timer = setTimeout(() => node.hifiReadout.update(node), 250);
}

async function frameSize(node) {
  // The clip connected now comes first: a size from the last run would go stale as soon as the
  // artist picks another clip.
  const executed = node.properties?.hifi_frame;
  const loader = upstream(node, "frames");
  if (loader && (loader.comfyClass ?? loader.type) === "HiFILoadVideo") {
    const clip = await probeClip(node, loader);
    if (clip?.width) return { ...clip, source: "Load Video" };
  }
  if (executed?.width) return { ...executed, source: "last run" };
  return DEFAULT_SIZE;
}

async function probeClip(node, fileNode) {
  // {width, height, fps, frame_count} of the file a Load Video / Retime Video node names
  const params = new URLSearchParams({
    video: String(widgetValue(fileNode, "video") ?? ""),
    path: String(widgetValue(fileNode, "path") ?? ""),
  });
  const key = params.toString();
  const cache = node.hifiReadout.sizeCache;
  if (!(key in cache)) {
    try {
      const response = await api.fetchApi(`/hifi/probe?${key}`);
      cache[key] = response.ok ? await response.json() : null;
    } catch {
      cache[key] = null;
    }
  }
  return cache[key];
}

async function fetchJson(url, box, label) {
  // A route's JSON, or null after writing its error into the readout box.
  try {
    const response = await api.fetchApi(url);
    const data = await response.json();
    if (!response.ok) throw new Error(data.error ?? response.statusText);
    return data;
  } catch (error) {
    box.textContent = `${label}: ${error.message ?? error}`;
    return null;
  }
}

function formatSeconds(seconds) {
  if (seconds < 90) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// ---- time readout (HiFI Interpolate, HiFI Retime Video) ----------------------------------------

async function clipForEta(node) {
  // The clip the node will work on, as the loader will hand it over.
  if ((node.comfyClass ?? node.type) === "HiFIRetimeVideo") return probeClip(node, node);
  const loader = upstream(node, "frames");
  if (!loader || (loader.comfyClass ?? loader.type) !== "HiFILoadVideo") return null;
  const clip = await probeClip(node, loader);
  if (!clip?.width) return null;
  const every = Math.max(1, Number(widgetValue(loader, "every_nth") ?? 1));
  const skip = Math.max(0, Number(widgetValue(loader, "skip_first") ?? 0));
  const cap = Number(widgetValue(loader, "frame_cap") ?? 0);
  let count = Math.ceil(Math.max(0, clip.frame_count - skip) / every);
  if (cap > 0) count = Math.min(count, cap);
  return { ...clip, frame_count: count, fps: clip.fps / every };
}

async function updateEta(node) {
  const { box } = node.hifiReadout;
  const model = upstream(node, "hifi_model");
  const clip = await clipForEta(node);
  const params = new URLSearchParams({
    checkpoint: model ? String(widgetValue(model, "checkpoint") ?? "") : "",
    device: model ? String(widgetValue(model, "device") ?? "auto") : "auto",
    width: clip?.width ?? 0,
    height: clip?.height ?? 0,
    frame_count: clip?.frame_count ?? 0,
    fps: clip?.fps ?? 0,
    levels: widgetValue(node, "levels") ?? 2,
    steps: widgetValue(node, "steps") ?? 1,
    samples: widgetValue(node, "samples") ?? 1,
    multiplier: widgetValue(node, "multiplier") ?? 2,
    target_fps: widgetValue(node, "target_fps") ?? 0,
  });
  const data = await fetchJson(`/hifi/eta?${params.toString()}`, box, "HiFI time");
  if (!data) return;
  const lines = [];
  if (!clip?.width) lines.push("HiFI time: connect a Load Video to estimate the whole clip");
  else if (data.inbetweens !== null) lines.push(`${clip.width}×${clip.height}: ${plural(data.inbetweens, "in-between", "in-betweens")} to make`);
  if (data.seconds_per_inbetween !== null) {
    lines.push(`≈ ${formatSeconds(data.seconds_per_inbetween)} each on this machine (measured ${data.measured_at})`);
    if (data.eta_seconds !== null) lines.push(`whole clip ≈ ${formatSeconds(data.eta_seconds)}`);
  } else {
    lines.push("time: not measured at these settings yet; the first run calibrates it");
  }
  box.textContent = lines.join("\n");
  fitNode(node);
}

function cascadeLevels(node) {
  // Walk the intermediate chain up to the Base Sample that decided the number of levels.
  let current = upstream(node, "intermediate");
  for (let hops = 0; current && hops < 16; hops++) {
    if ((current.comfyClass ?? current.type) === "HiFIBaseSample") return widgetValue(current, "levels");
    current = upstream(current, "intermediate");
  }
  return 3;
}

async function updateReadout(node) {
  const { box } = node.hifiReadout;
  const size = await frameSize(node);
  const model = upstream(node, "hifi_model");
  const params = new URLSearchParams({
    width: size.width,
    height: size.height,
    levels: cascadeLevels(node) ?? 2,
    patch_width: widgetValue(node, "patch_width"),
    patch_height: widgetValue(node, "patch_height"),
    overlap: widgetValue(node, "overlap"),
    patch_batch: widgetValue(node, "patch_batch"),
    memory_budget_mb: widgetValue(node, "memory_budget_mb"),
    samples: widgetValue(node, "samples"),
    checkpoint: model ? String(widgetValue(model, "checkpoint") ?? "") : "",
    precision: model ? String(widgetValue(model, "precision") ?? "fp32") : "fp32",
  });
  const data = await fetchJson(`/hifi/estimate?${params.toString()}`, box, "HiFI readout");
  if (!data) return;
  const lines = [`frame ${size.width}×${size.height} (${size.source}), ${data.levels.length} levels`];
  for (const level of data.levels) {
    if (level.level === 1 && data.levels.length > 1) {  // denoised by Base Sample, its own patches
      lines.push(`L1 ${level.width}×${level.height}: Base Sample`);
      continue;
    }
    lines.push(`L${level.level} ${level.width}×${level.height}: ${level.rows}×${level.columns} = ` +
      `${plural(level.patches, "patch", "patches")} of ${level.patch[1]}×${level.patch[0]}`);
  }
  lines.push(`patch batch ${data.patch_batch} × ${formatBytes(data.patch_bytes)} = ` +
    `${formatBytes(data.working_bytes)} working`);
  if (data.motion_bytes) lines.push(`motion base (flows, before the patches) ${formatBytes(data.motion_bytes)}`);
  lines.push(`+ ${formatBytes(data.frame_buffer_bytes + data.io_bytes)} frames: ` +
    `peak ≈ ${formatBytes(data.peak_bytes)} on ${data.device ?? "?"} (this job, besides loaded models)`);
  box.textContent = lines.join("\n");
  fitNode(node);
}

// ---- workflows in .mkv files ----------------------------------------------------------------------
//
// Video Combine's "ffv1-mkv" stores the workflow in Matroska tags, but frontend 1.27's
// app.handleFile picks its reader by MIME type and has no Matroska branch: a dropped .mkv
// (video/x-matroska) got "Unable to find workflow in ...". Its video/webm branch reads the same
// EBML tags (WebM is Matroska), so a .mkv is handed on re-typed as video/webm. handleFile is
// wrapped rather than the drop event caught, so the frontend keeps its own order (a node under
// the cursor that takes the drop still gets it), reader, prompt-only fallback and error for a
// file without a workflow ("Unable to find workflow in x.mkv"), and its Open dialog gets the same.
// Any other file goes on untouched, and a frontend that reads .mkv itself reads it the same way.

export const WEBM_TYPE = "video/webm";
const MATROSKA_TYPE = "video/x-matroska";

export function isMatroskaVideo(file) {
  // by type (a browser types a .mkv as video/x-matroska) or by name (a file with no type)
  if (!file || file.type === WEBM_TYPE) return false;
  return file.type === MATROSKA_TYPE || /\.mkv$/i.test(String(file.name ?? ""));
}

export function asWebm(file) {
  // the same bytes, name and date, typed as the frontend's WebM branch expects
  return new File([file], file.name, { type: WEBM_TYPE, lastModified: file.lastModified });
}

export function readMatroskaWorkflows(target = app) {
  // Wrap target.handleFile once (the flag keeps a second call from wrapping it again).
  const handleFile = target?.handleFile;
  if (typeof handleFile !== "function" || handleFile.hifiMatroska) return false;
  const wrapped = function (file, ...rest) {
    return handleFile.call(this, isMatroskaVideo(file) ? asWebm(file) : file, ...rest);
  };
  wrapped.hifiMatroska = true;
  target.handleFile = wrapped;
  return true;
}

export function acceptMatroskaInOpenDialog(doc = globalThis.document) {
  // Workflow > Open lists only the types the frontend reads (an empty accept lists everything).
  const input = doc?.getElementById?.("comfy-file-input");
  if (!input || !input.accept || /(^|,)\s*\.mkv\s*(,|$)/i.test(input.accept)) return false;
  input.accept = `${input.accept},.mkv,${MATROSKA_TYPE}`;
  return true;
}

// ---- registration -------------------------------------------------------------------------------

app.registerExtension({
  name: "hifi.nodes",

  setup() {
    readMatroskaWorkflows(app);
    acceptMatroskaInOpenDialog();
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (PREVIEW_NODES.has(nodeData.name)) {
      const onNodeCreated = nodeType.prototype.onNodeCreated;
      nodeType.prototype.onNodeCreated = function (...args) {
        const result = onNodeCreated?.apply(this, args);
        addVideoPreview(this);
        return result;
      };
      const onExecuted = nodeType.prototype.onExecuted;
      nodeType.prototype.onExecuted = function (message, ...rest) {
        const result = onExecuted?.apply(this, [message, ...rest]);
        showVideo(this, message?.hifi_video?.[0]);
        return result;
      };
      const onConfigure = nodeType.prototype.onConfigure;
      nodeType.prototype.onConfigure = function (...args) {
        const result = onConfigure?.apply(this, args);
        const last = this.properties?.hifi_last_video;
        if (last) showVideo(this, last);
        return result;
      };
    }
    if (ETA_NODES.has(nodeData.name)) {
      for (const [hook, after] of [
        ["onNodeCreated", (node) => addReadout(node, updateEta)],
        ["onExecuted", (node) => scheduleReadout(node)],  // the run just measured the pace
        ["onConnectionsChange", (node) => scheduleReadout(node)],
        ["onConfigure", (node) => scheduleReadout(node)],
      ]) {
        const original = nodeType.prototype[hook];
        nodeType.prototype[hook] = function (...args) {
          const result = original?.apply(this, args);
          after(this);
          return result;
        };
      }
    }
    if (nodeData.name === READOUT_NODE) {
      const onNodeCreated = nodeType.prototype.onNodeCreated;
      nodeType.prototype.onNodeCreated = function (...args) {
        const result = onNodeCreated?.apply(this, args);
        addReadout(this);
        return result;
      };
      const onExecuted = nodeType.prototype.onExecuted;
      nodeType.prototype.onExecuted = function (message, ...rest) {
        const result = onExecuted?.apply(this, [message, ...rest]);
        const frame = message?.hifi_frame?.[0];
        if (frame) {
          this.properties = this.properties ?? {};
          this.properties.hifi_frame = frame;
          scheduleReadout(this);
        }
        return result;
      };
      const onConnectionsChange = nodeType.prototype.onConnectionsChange;
      nodeType.prototype.onConnectionsChange = function (...args) {
        const result = onConnectionsChange?.apply(this, args);
        scheduleReadout(this);
        return result;
      };
      const onConfigure = nodeType.prototype.onConfigure;
      nodeType.prototype.onConfigure = function (...args) {
        const result = onConfigure?.apply(this, args);
        scheduleReadout(this);
        return result;
      };
    }
  },
});
