// Stand-in for ComfyUI's /scripts/api.js in the DOM-level test: the pack's routes answer from
// globalThis.hifiRoutes (url -> JSON), unknown ones with 404.
export const api = {
  apiURL(route) {
    return `/api${route}`;
  },
  async fetchApi(url) {
    const path = url.split("?")[0];
    const body = globalThis.hifiRoutes?.[path];
    return { ok: body !== undefined, statusText: "Not Found", json: async () => body ?? { error: "not found" } };
  },
};
