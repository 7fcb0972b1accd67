// Stand-in for ComfyUI's /scripts/app.js in the DOM-level test (tests/js/previews.test.mjs):
// records the extensions that register.
export const app = {
  extensions: [],
  registerExtension(extension) {
    this.extensions.push(extension);
  },
};
