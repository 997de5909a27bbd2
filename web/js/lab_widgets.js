// Sampler Lab: shared helpers for the pack's node widgets (no extension is registered here).
//
// Used by schedule_preview.js; a second widget-type extension (e.g. a sweep result viewer in its
// own file) builds on the same pieces:
//   labFeature(name)                  -> Promise<boolean>: does the server advertise this pack route?
//   labFetchJSON(path, params)        -> Promise<object|null>: GET a pack route; null on any failure
//   addCanvasPanel(node, name, opts)  -> panel: a non-serialized DOM widget holding a <canvas>
//       opts: { minHeight, maxHeight, draw(ctx, width, height, panel), pointer: bool }
//       (minHeight / maxHeight: a number of px, or a function returning one, for a panel whose
//       height follows its state)
//       panel: { widget, canvas, element, state, redraw(), remove() }
//   widgetValue(node, name), upstreamNode(node, inputName), chainNodeCallback(proto, name, fn)
//   LAB_THEME: colours that read on ComfyUI's dark and light palettes.
import { api } from "../../../scripts/api.js";

export const LAB_THEME = {
  background: "#1b1d22",
  grid: "#33373f",
  axis: "#8a8f98",
  text: "#c9ccd2",
  muted: "#7b808a",
  series: ["#4fc3f7", "#ffb74d", "#81c784", "#e57373"],
};

let featuresPromise = null;

/** The server's feature flags, fetched once (the pack's Python side sets one flag per route). */
function serverFeatures() {
  if (!featuresPromise) {
    featuresPromise = (async () => {
      try {
        const known = api.getServerFeatures?.();
        if (known && Object.keys(known).length) return known;
        const res = await api.fetchApi("/features", { cache: "no-store" });
        return res.ok ? await res.json() : {};
      } catch {
        return {};
      }
    })();
  }
  return featuresPromise;
}

/** True when the server advertises the pack feature `name` (its route is installed). */
export async function labFeature(name) {
  const features = await serverFeatures();
  return Boolean(features && features[name]);
}

/** GET a pack route with query params; the parsed JSON, or null on a network/HTTP/parse failure. */
export async function labFetchJSON(path, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null) query.set(k, String(v));
  }
  try {
    const res = await api.fetchApi(`${path}?${query}`, { cache: "no-store" });
    if (!res.ok && res.status !== 400) return null;
    return await res.json();
  } catch {
    return null;
  }
}

export function findWidget(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

export function widgetValue(node, name, fallback = undefined) {
  const w = findWidget(node, name);
  return w === undefined ? fallback : w.value;
}

/** The node connected to `inputName` of `node`, or null. */
export function upstreamNode(node, inputName) {
  const slot = node.inputs?.findIndex((i) => i.name === inputName) ?? -1;
  if (slot < 0 || node.inputs[slot].link == null) return null;
  try {
    return node.getInputNode?.(slot) ?? null;
  } catch {
    return null;
  }
}

/** Chain `fn` after an existing prototype callback (keeps other extensions' hooks). */
export function chainNodeCallback(proto, name, fn) {
  const previous = proto[name];
  proto[name] = function (...args) {
    const result = previous?.apply(this, args);
    fn.apply(this, args);
    return result;
  };
}

/** A canvas panel as a DOM widget. Not serialized: saved workflows and prompts are unchanged. */
export function addCanvasPanel(node, name, opts = {}) {
  const element = document.createElement("div");
  element.className = "sampler-lab-panel";
  element.style.cssText = "width:100%;height:100%;box-sizing:border-box;padding:2px 0;" +
    (opts.pointer ? "" : "pointer-events:none;");
  const canvas = document.createElement("canvas");
  canvas.style.cssText = "width:100%;height:100%;display:block;border-radius:4px;";
  element.appendChild(canvas);
  const px = (value, fallback) => (typeof value === "function" ? value() : value) ?? fallback;
  const minHeight = () => px(opts.minHeight, 110);
  const widget = node.addDOMWidget(name, "sampler_lab_panel", element, {
    serialize: false,
    hideOnZoom: false,
    getMinHeight: minHeight,
    getMaxHeight: () => px(opts.maxHeight, minHeight() * 2),
  });
  widget.serialize = false;
  const panel = { widget, canvas, element, state: {}, redraw: null, remove: null };
  panel.redraw = () => {
    // Layout size (CSS px, unaffected by the canvas zoom transform); the bitmap is oversampled so the
    // chart stays sharp when the graph is zoomed in.
    const ratio = Math.min(3, Math.max(window.devicePixelRatio || 1, 1) * 2);
    const width = Math.max(1, canvas.offsetWidth);
    const height = Math.max(1, canvas.offsetHeight);
    if (canvas.width !== width * ratio || canvas.height !== height * ratio) {
      canvas.width = width * ratio;
      canvas.height = height * ratio;
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    try {
      opts.draw?.(ctx, width, height, panel);
    } catch (e) {
      console.warn("[Sampler Lab] panel draw failed", e);
    }
  };
  if (typeof ResizeObserver !== "undefined") {
    const observer = new ResizeObserver(() => panel.redraw());
    observer.observe(canvas);
    panel.remove = () => observer.disconnect();
    chainNodeCallback(node, "onRemoved", () => observer.disconnect());
  }
  return panel;
}
