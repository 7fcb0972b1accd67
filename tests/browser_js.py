"""The JavaScript tests/test_browser.py runs in the page (kept apart: the driver is long enough)."""

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
// the graph as queued: what a file written by the run must bring back
out.queued = app.graph.serialize().nodes.map((n) => ({ id: n.id, type: n.type, widgets_values: n.widgets_values ?? null }));

const started = Date.now();
await app.queuePrompt(0);
let status = null, record = null;
while (Date.now() - started < args[3] * 1000) {
  await sleep(500);
  const queue = await (await fetch("/api/queue")).json();
  if (queue.queue_running.length || queue.queue_pending.length) continue;
  const history = await (await fetch("/api/history?max_items=1")).json();
  const last = Object.values(history)[0];
  if (last?.status?.completed !== undefined || last?.status?.status_str === "error") { status = last.status; record = last; break; }
}
out.seconds = (Date.now() - started) / 1000;
out.status = status ? { status_str: status.status_str, messages: JSON.stringify(status.messages).slice(-1500),
                        errors: status.messages.filter((m) => m[0] === "execution_error").map((m) => m[1]) } : null;
out.outputs = record?.outputs ?? {};
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


DROP_JS = SETUP_JS + r"""
// One file the run wrote, fetched as the browser would download it, dropped on an empty canvas.
const [spec, expected] = args;
const response = await fetch("/api/view?" + new URLSearchParams({ filename: spec.filename, subfolder: spec.subfolder, type: spec.type }));
if (!response.ok) return { fetched: response.status };
const blob = await response.blob();
const file = new File([blob], spec.name, { type: spec.mime });
// the frontend's own readers of what the file carries (PNG text chunks, Matroska / ISO-BMFF tags)
const meta = (spec.mime === "image/png" ? await window.comfyAPI.pnginfo.getPngMetadata(file)
              : /\.(mkv|webm)$/i.test(spec.name) ? await window.comfyAPI.ebml.getFromWebmFile(file)
              : await window.comfyAPI.isobmff.getFromIsobmffFile(file)) ?? {};
const parse = (v) => (typeof v === "string" ? JSON.parse(v) : v);
const prompt = meta.prompt ? parse(meta.prompt) : null;
app.graph.clear();
await frames(2);
const emptied = app.graph.nodes.length;
const transfer = new DataTransfer();
transfer.items.add(file);
// the drop a user makes: the frontend's document "drop" listener passes the file to app.handleFile
app.canvasEl.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
for (let t = 0; t < 200 && app.graph.nodes.length < expected; t++) await sleep(150);
await sleep(500);  // anything still arriving (a second load would double the nodes)
await settle();
const graph = app.graph.serialize();
return { fetched: response.status, bytes: blob.size, metaKeys: Object.keys(meta), emptied,
         promptNodes: prompt && Object.fromEntries(Object.entries(prompt).map(([id, n]) => [id, n.class_type])),
         nodes: graph.nodes.map((n) => ({ id: n.id, type: n.type, widgets_values: n.widgets_values ?? null,
                                          names: (app.graph.getNodeById(n.id)?.widgets ?? []).map((w) => w.name) })),
         links: (graph.links ?? []).length,
         toasts: [...document.querySelectorAll(".p-toast-message")].map((e) => e.innerText.slice(0, 300)) };
"""


UNTAGGED_MKV_JS = SETUP_JS + r"""
// A .mkv with no workflow (an EBML header, no tags) dropped on the workflow: the user is told
// so, and the graph stays as it was.
const [name, workflow] = args;
if (!app.graph.nodes.length) { await app.loadGraphData(workflow); await settle(); }  // the last drop failed
const toasts = () => [...document.querySelectorAll(".p-toast-message")].map((e) => e.innerText.slice(0, 300));
const before = app.graph.nodes.length, earlier = toasts().length;
const header = new Uint8Array([0x1a, 0x45, 0xdf, 0xa3, 0x84, 0x42, 0x82, 0x81, 0x00]);  // EBML, DocType ""
const transfer = new DataTransfer();
transfer.items.add(new File([header], name, { type: "video/x-matroska" }));
app.canvasEl.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
for (let t = 0; t < 60 && toasts().length <= earlier; t++) await sleep(150);
await sleep(500);
return { before, after: app.graph.nodes.length, toasts: toasts().slice(earlier) };
"""


ROUNDTRIP_JS = SETUP_JS + r"""
// Every HiFI node as freshly added, saved and loaded again (what reopening a workflow does).
const types = Object.keys(window.LiteGraph.registered_node_types).filter((t) => t.startsWith("HiFI")).sort();
app.graph.clear();
types.forEach((type, i) => { const n = window.LiteGraph.createNode(type); n.pos = [(i % 6) * 450, Math.floor(i / 6) * 900]; app.graph.add(n); });
await settle();
const saved = app.graph.serialize();
await app.loadGraphData(JSON.parse(JSON.stringify(saved)));
await settle();
const loaded = app.graph.serialize();
return types.map((type) => ({
  type, names: (app.graph.nodes.find((n) => n.type === type)?.widgets ?? []).map((w) => w.name),
  saved: saved.nodes.find((n) => n.type === type)?.widgets_values ?? null,
  loaded: loaded.nodes.find((n) => n.type === type)?.widgets_values ?? null }));
"""
