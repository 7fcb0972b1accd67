// web/hifi.js hands a .mkv to the frontend's app.handleFile typed video/webm (run by
// tests/test_web.py, laid out as for previews.test.mjs):
//
//     node tests/js/matroska.test.mjs <dir>/extensions/hifi/hifi.js
//
// Frontend 1.27's handleFile has no Matroska branch ("Unable to find workflow in x.mkv"); its
// WebM branch reads the same tags. The drop itself, in the real frontend, is
// tests/test_browser.py's. Exits non-zero on the first failed check.
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";

class FakeInput {
  constructor(accept) {
    this.accept = accept;
  }
}
const inputs = { "comfy-file-input": new FakeInput(".json,.png,.webm,video/webm") };
globalThis.document = {
  createElement: () => ({ style: {}, append() {}, addEventListener() {} }),
  getElementById: (id) => inputs[id] ?? null,
};

const hifi = await import(pathToFileURL(process.argv[2]).href);
const { app } = await import(new URL("../../scripts/app.js", pathToFileURL(process.argv[2])).href);
const extension = app.extensions.find((e) => e.name === "hifi.nodes");
assert.ok(extension, "hifi.js registers hifi.nodes");

// the frontend's handleFile, reduced to what it was handed (and by which `this`)
const handed = [];
app.handleFile = async function (file, ...rest) {
  handed.push({ file, rest, self: this });
  return `handled ${file?.name}`;
};
const original = app.handleFile;

let checks = 0;
async function check(name, body) {
  await body();
  checks += 1;
  console.log(`ok ${checks} ${name}`);
}
const bytes = new Uint8Array([0x1a, 0x45, 0xdf, 0xa3, 1, 2, 3, 4]);  // an EBML header's magic first
const file = (name, type) => new File([bytes], name, { type, lastModified: 1764633600000 });
async function drop(f, ...rest) {
  handed.length = 0;
  const result = await app.handleFile(f, ...rest);  // as the drop handler / Open dialog call it
  assert.equal(handed.length, 1, "handed on exactly once");
  return { ...handed[0], result };
}

await check("isMatroskaVideo: .mkv by type or by name, nothing else", () => {
  assert.ok(hifi.isMatroskaVideo(file("x2_00001_.mkv", "video/x-matroska")));
  assert.ok(hifi.isMatroskaVideo(file("x2_00001_.mkv", "")), "no type, by name");
  assert.ok(hifi.isMatroskaVideo(file("CLIP.MKV", "")), "any case");
  assert.ok(hifi.isMatroskaVideo(file("http://host/api/view?filename=a.mkv", "video/x-matroska")), "a URL dropped");
  for (const [name, type] of [["a.mp4", "video/mp4"], ["a.webm", "video/webm"], ["a.mkv", "video/webm"],
    ["a.png", "image/png"], ["a.json", "application/json"], ["a.mov", "video/quicktime"],
    ["a.mka", "audio/x-matroska"], ["mkv", ""], ["a.mkv.json", "application/json"]]) {
    assert.ok(!hifi.isMatroskaVideo(file(name, type)), `${name} (${type})`);
  }
  assert.ok(!hifi.isMatroskaVideo(null) && !hifi.isMatroskaVideo(undefined));
});

await check("setup wraps app.handleFile once and widens the Open dialog once", async () => {
  await extension.setup?.(app);
  assert.notEqual(app.handleFile, original, "wrapped");
  const wrapped = app.handleFile;
  await extension.setup?.(app);
  assert.equal(app.handleFile, wrapped, "a second setup does not wrap it again");
  assert.equal(hifi.readMatroskaWorkflows(app), false);
  assert.equal(inputs["comfy-file-input"].accept, ".json,.png,.webm,video/webm,.mkv,video/x-matroska");
  assert.equal(hifi.acceptMatroskaInOpenDialog(), false, "already there");
  const open = new FakeInput("");
  assert.equal(hifi.acceptMatroskaInOpenDialog({ getElementById: () => open }), false);
  assert.equal(open.accept, "", "an empty accept (every file) is left alone");
  assert.equal(hifi.acceptMatroskaInOpenDialog({ getElementById: () => null }), false);
  assert.equal(hifi.readMatroskaWorkflows({}), false, "no handleFile: nothing to wrap");
});

await check("a dropped .mkv reaches handleFile typed video/webm, same name, bytes and date", async () => {
  const mkv = file("x2_00001_.mkv", "video/x-matroska");
  const { file: got, self, rest, result } = await drop(mkv, "extra");
  assert.notEqual(got, mkv);
  assert.equal(got.type, "video/webm");
  assert.equal(got.name, "x2_00001_.mkv", "the frontend's messages name the file dropped");
  assert.equal(got.lastModified, mkv.lastModified);
  assert.deepEqual(new Uint8Array(await got.arrayBuffer()), bytes);
  assert.equal(self, app, "called on the app");
  assert.deepEqual(rest, ["extra"], "further arguments passed on");
  assert.equal(result, "handled x2_00001_.mkv", "its result returned");
  assert.equal((await drop(file("clip.mkv", ""))).file.type, "video/webm", "untyped .mkv");
});

await check("every other file reaches handleFile untouched", async () => {
  for (const other of [file("a.mp4", "video/mp4"), file("a.webm", "video/webm"), file("a.png", "image/png"),
    file("a.json", "application/json"), file("a.mkv", "video/webm")]) {
    assert.equal((await drop(other)).file, other, other.name);
  }
  assert.equal((await drop(undefined)).file, undefined);
});

await check("an error in the frontend's handling reaches its caller (the drop handler's toast)", async () => {
  const wrapped = app.handleFile;
  const target = { handleFile: async () => { throw new Error("bad file"); } };
  hifi.readMatroskaWorkflows(target);
  await assert.rejects(target.handleFile(file("a.mkv", "video/x-matroska")), /bad file/);
  assert.equal(app.handleFile, wrapped);
});

console.log(`all ${checks} checks passed`);
