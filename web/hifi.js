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

function addVideoPreview(node) {
  const box = document.createElement("div");
  box.className = "hifi-preview";
  box.style.cssText = "width:100%;display:flex;flex-direction:column;gap:2px;font:11px monospace;color:#ccc";
  const video = document.createElement("video");
  video.controls = true;
  video.loop = true;
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.style.cssText = "width:100%;max-height:360px;background:#000;display:none";
  const caption = document.createElement("div");
  caption.textContent = "HiFI: the written video will play here";
  box.append(video, caption);
  node.addDOMWidget("hifi_preview", "hifi.preview", box, { serialize: false, hideOnZoom: false });
  node.hifiPreview = { video, caption };
}

function showVideo(node, entry) {
  if (!node.hifiPreview || !entry) return;
  const { video, caption } = node.hifiPreview;
  video.src = viewUrl(entry);
  video.style.display = "block";
  const fps = Number(entry.frame_rate ?? 0).toFixed(3).replace(/\.?0+$/, "");
  caption.textContent = `${entry.file ?? entry.filename} · ${entry.width}×${entry.height} · ` +
    `${entry.frame_count} frames @ ${fps} fps · ${entry.codec ?? ""}`;
  video.play?.().catch(() => {});
  node.properties = node.properties ?? {};
  node.properties.hifi_last_video = entry;  // so a reopened workflow shows it again
  node.setDirtyCanvas?.(true, true);
}

// ---- cascade readout --------------------------------------------------------------------------

function addReadout(node, update = updateReadout) {
  const box = document.createElement("pre");
  box.className = "hifi-readout";
  box.style.cssText = "margin:0;padding:4px 6px;font:11px/1.35 monospace;color:#d8e6ff;" +
    "background:rgba(40,60,90,0.55);border-radius:4px;white-space:pre-wrap;overflow:hidden";
  box.textContent = "HiFI readout: connect the node…";
  node.addDOMWidget("hifi_readout", "hifi.readout", box, { serialize: false, hideOnZoom: false });
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
  node.setDirtyCanvas?.(true, true);
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
  lines.push(`+ ${formatBytes(data.frame_buffer_bytes)} frame buffers ≈ ${formatBytes(data.total_bytes)}` +
    ` on ${data.device ?? "?"}`);
  box.textContent = lines.join("\n");
  node.setDirtyCanvas?.(true, true);
}

// ---- registration -------------------------------------------------------------------------------

app.registerExtension({
  name: "hifi.nodes",

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
