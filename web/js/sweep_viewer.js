// Sampler Lab: sweep result viewer on the Step Sweep node.
//
// After a SamplerLabStepSweep node runs, the node's UI payload ui.sampler_lab_sweep (built by
// viewer_payload() in sweep/outputs.py: per-cell settings, metrics and where each cell sits in the
// grid image, and the recommendation whole) is drawn as a panel of cells: the cell's crop of the saved grid image (loaded
// through the server's /view), or a tile coloured by its distance while the image loads or when it
// cannot. Hovering a cell shows its settings, sampling time, counted model calls (NFE), distance to
// the reference and PSNR/SSIM; clicking it copies sampler_name / scheduler / steps / cfg / denoise
// onto the KSampler chosen in the panel's dropdown (default: the selected KSampler, else the first
// one in the graph). The bar above the cells shows the recommendation (sampler / scheduler, steps,
// model calls) until a cell is copied. No payload yet (before the first run, an older pack, a
// failed run): a one-line panel that says so.
//
// The panel is created with the node, not when results arrive: frontend 1.32.9's Vue node renderer
// (experimental there) does not show a DOM widget added to a node once a prompt has run on the
// page (measured: the widget is in node.widgets, its element never enters the page, and a probe
// widget added the same way stays detached too), while widgets present when the node mounts are
// moved into the Vue node and stay. Created up front, one panel serves both renderers of both
// frontends; only its height and its bar change with the results.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";
import { LAB_THEME, addCanvasPanel, chainNodeCallback, findWidget } from "./lab_widgets.js";

const NODE = "SamplerLabStepSweep";
const KEY = "sampler_lab_sweep";
const PANEL = "sampler_lab_sweep_viewer";
const COPY_KEYS = ["sampler_name", "scheduler", "steps", "cfg", "denoise"];
const AUTO = "";
const EMPTY_HEIGHT = 22;   // px: the one-line "no sweep results yet" panel
const DOM_MARGIN = 10;     // px: LiteGraph's DOM widget overlay insets a widget this much on each side
const CELLS_HEIGHT = 240;  // px: the cells' height where the renderer does not size the panel (Vue nodes)

function fmt(v, digits, mode = "precision") {
  if (typeof v !== "number" || !Number.isFinite(v)) return "-";
  return mode === "exp" ? v.toExponential(digits) : mode === "fixed" ? v.toFixed(digits) : String(Number(v.toPrecision(digits)));
}

/** Nodes whose settings a cell can be copied onto: a sampler_name + scheduler + steps widget set. */
function copyTargets() {
  return (app.graph?.nodes ?? []).filter((n) => n.type !== NODE &&
    ["sampler_name", "scheduler", "steps"].every((name) => findWidget(n, name)));
}

function targetLabel(n) {
  return `${n.title || n.type} #${n.id}`;
}

function chosenTarget(panel) {
  const targets = copyTargets();
  const picked = panel.select.value;
  if (picked !== AUTO) {
    const node = targets.find((n) => String(n.id) === picked);
    if (node) return node;
  }
  const selected = Object.values(app.canvas?.selected_nodes ?? {});
  return targets.find((n) => selected.includes(n)) ?? targets[0] ?? null;
}

function refreshTargets(panel) {
  const select = panel.select;
  const current = select.value;
  const options = [[AUTO, "selected / first KSampler"], ...copyTargets().map((n) => [String(n.id), targetLabel(n)])];
  const same = select.options.length === options.length &&
    options.every(([v, t], i) => select.options[i].value === v && select.options[i].text === t);
  if (!same) {
    select.replaceChildren(...options.map(([value, text]) => {
      const o = document.createElement("option");
      o.value = value;
      o.textContent = text;
      return o;
    }));
    select.value = options.some(([v]) => v === current) ? current : AUTO;
  }
}

/** Copy a cell's settings onto `target`; returns the keys written. Values a combo lacks are skipped. */
function copySettings(cell, target) {
  const written = [];
  for (const key of COPY_KEYS) {
    const value = cell.settings?.[key];
    const w = findWidget(target, key);
    if (value === undefined || !w) continue;
    if (w.type === "combo" && Array.isArray(w.options?.values) && !w.options.values.includes(value)) continue;
    w.value = value;
    try {
      w.callback?.(value, app.canvas, target);
    } catch (e) {
      console.warn("[Sampler Lab] sweep viewer: widget callback failed", e);
    }
    written.push(key);
  }
  target.setDirtyCanvas?.(true, true);
  app.graph.setDirtyCanvas(true, true);
  try {
    app.graph.change?.();
    app.extensionManager?.workflow?.activeWorkflow?.changeTracker?.checkState?.();
  } catch {
    // marking the workflow modified is a convenience only
  }
  return written;
}

function distanceColor(cell, range) {
  if (cell.status !== "ok") return "#5a2a2a";
  if (cell.rel_rmse == null || !range) return "#3a4f66";
  const t = range[1] > range[0] ? (Math.log10(cell.rel_rmse) - range[0]) / (range[1] - range[0]) : 0;
  const hue = 120 * (1 - Math.min(1, Math.max(0, t)));   // green (closest) .. red (farthest)
  return `hsl(${hue.toFixed(0)}, 55%, 38%)`;
}

function layout(panel, width, height) {
  const data = panel.state.data;
  const [grids, rows, cols] = data.shape;
  const ctx = panel.canvas.getContext("2d");
  ctx.font = "10px sans-serif";
  const rowLabel = (g, r) => [data.rows?.[r], grids > 1 ? data.cells.find((c) => c.grid === g)?.labels?.[data.axes[2]] : ""]
    .filter(Boolean).join(" | ");
  let left = 4;
  for (let g = 0; g < grids; g++) for (let r = 0; r < rows; r++) left = Math.max(left, ctx.measureText(rowLabel(g, r)).width + 8);
  left = Math.min(left, width * 0.35);
  const top = data.columns?.some(Boolean) ? 14 : 4;
  const bottom = 14;
  const box = data.cell_boxes?.[0];
  const aspect = box ? (box[2] - box[0]) / Math.max(1, box[3] - box[1]) : 1;
  let tw = (width - left - 4) / cols;
  let th = (height - top - bottom) / (grids * rows);
  if (tw / th > aspect) tw = th * aspect; else th = tw / aspect;
  const tiles = data.cells.map((cell) => ({
    cell, x: left + cell.col * tw, y: top + (cell.grid * rows + cell.row) * th, w: tw, h: th,
  }));
  return { tiles, left, top, tw, th, rowLabel, grids, rows, cols };
}

function drawViewer(ctx, width, height, panel) {
  const { state } = panel;
  ctx.clearRect(0, 0, width, height);
  ctx.fillStyle = LAB_THEME.background;
  ctx.fillRect(0, 0, width, height);
  ctx.font = "10px sans-serif";
  ctx.textBaseline = "top";
  const data = state.data;
  if (!data?.cells?.length || !Array.isArray(data.shape)) {
    state.tiles = [];
    ctx.fillStyle = LAB_THEME.muted;
    ctx.fillText("no sweep results yet: queue the sweep", 8, 4);
    return;
  }
  const L = layout(panel, width, height);
  state.tiles = L.tiles;
  ctx.fillStyle = LAB_THEME.text;
  ctx.textBaseline = "middle";
  (data.columns ?? []).forEach((label, c) => {
    if (label) ctx.fillText(String(label).slice(0, 24), L.left + c * L.tw + 2, 7, L.tw - 4);
  });
  for (let g = 0; g < L.grids; g++) {
    for (let r = 0; r < L.rows; r++) {
      ctx.fillText(L.rowLabel(g, r).slice(0, 40), 2, L.top + (g * L.rows + r + 0.5) * L.th, L.left - 6);
    }
  }
  const logs = data.cells.filter((c) => c.status === "ok" && c.rel_rmse > 0).map((c) => Math.log10(c.rel_rmse));
  const range = logs.length ? [Math.min(...logs), Math.max(...logs)] : null;
  for (const t of L.tiles) {
    const { cell } = t;
    const img = state.images?.[cell.grid];
    const box = data.cell_boxes?.[cell.index];
    ctx.fillStyle = distanceColor(cell, range);
    ctx.fillRect(t.x + 1, t.y + 1, t.w - 2, t.h - 2);
    if (cell.status === "ok" && img?.complete && img.naturalWidth > 0 && box) {
      ctx.drawImage(img, box[0], box[1], box[2] - box[0], box[3] - box[1], t.x + 1, t.y + 1, t.w - 2, t.h - 2);
      ctx.fillStyle = distanceColor(cell, range);              // distance strip along the bottom edge
      ctx.fillRect(t.x + 1, t.y + t.h - 5, t.w - 2, 4);
    } else if (cell.status !== "ok") {
      ctx.fillStyle = LAB_THEME.text;
      ctx.fillText("failed", t.x + 4, t.y + t.h / 2, t.w - 8);
    } else {
      ctx.fillStyle = LAB_THEME.text;
      ctx.fillText(`d ${fmt(cell.rel_rmse, 1, "exp")}`, t.x + 4, t.y + t.h / 2, t.w - 8);
    }
    if (state.hover === cell.index) {
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 2;
      ctx.strokeRect(t.x + 1, t.y + 1, t.w - 2, t.h - 2);
    }
  }
  ctx.fillStyle = LAB_THEME.muted;
  ctx.textBaseline = "bottom";
  ctx.fillText(`${referenceText(data)} | click a cell to copy`.slice(0, 120), 2, height - 1);
}

/** What the distances are measured against: a method of its own (lab models) or a sampler run. */
function referenceText(data) {
  if (!data.reference?.sampler || data.reference.sampler === "none") return "no reference";
  const to = data.reference_method ?? `${data.reference.sampler} x ${data.reference.steps} (its row: ref)`;
  return `d = ${data.metric ?? "distance"} to ${to}`;
}

/** The answer whole: sampler / scheduler, steps, counted model calls (older payloads: steps only). */
function recommendationText(data) {
  if (data.recommendation_text) return `recommended: ${data.recommendation_text}`;
  return `recommended steps ${data.recommended_steps ?? "-"}`;
}

function cardLines(panel, cell) {
  const data = panel.state.data;
  const s = cell.settings ?? {};
  const labels = Object.values(cell.labels ?? {}).join(" | ");
  const lines = [[`cell ${cell.index + 1}: ${labels}`, true],
    [`${s.sampler_name ?? "input sampler"} | ${s.scheduler ?? "input sigmas"} | steps ${s.steps} | cfg ${s.cfg} | denoise ${s.denoise} | seed ${s.seed}`]];
  if (cell.status !== "ok") {
    lines.push([`failed: ${cell.error ?? "unknown error"}`.slice(0, 200)]);
  } else {
    lines.push([`NFE ${cell.nfe} (counted model calls)`]);
    lines.push([`time ${fmt(cell.sample_s, 4)} s (sampling)`]);
    const ref = data.reference?.sampler && data.reference.sampler !== "none"
      ? ` to ${data.reference_method ? `${data.reference_method}, instead of ` : ""}${data.reference.sampler} x ${data.reference.steps}` : "";
    lines.push([cell.rel_rmse == null ? "distance - (no reference)" : `distance ${fmt(cell.rel_rmse, 3, "exp")} (relative RMSE${ref})`]);
    if (cell.is_reference_sampler) lines.push(["(the reference's own sampler: measured against its own method)"]);
    if (cell.psnr != null || cell.ssim != null) lines.push([`PSNR ${fmt(cell.psnr, 2, "fixed")} dB | SSIM ${fmt(cell.ssim, 4, "fixed")}`]);
    if (cell.source === "cache") lines.push(["(resumed from the sweep folder)"]);
  }
  const target = chosenTarget(panel);
  lines.push([target ? `click: copy settings to ${targetLabel(target)}` : "add a KSampler to copy these settings"]);
  return lines;
}

function showCard(panel, cell, clientX, clientY) {
  let card = panel.card;
  if (!card) {
    card = document.createElement("div");
    card.className = "sampler-lab-sweep-card";
    card.style.cssText = "position:fixed;z-index:10000;pointer-events:none;max-width:420px;padding:6px 8px;" +
      `border-radius:6px;font:12px sans-serif;line-height:1.35;background:${LAB_THEME.background};` +
      `color:${LAB_THEME.text};border:1px solid ${LAB_THEME.axis};box-shadow:0 2px 8px rgba(0,0,0,.5);`;
    document.body.appendChild(card);
    panel.card = card;
  }
  card.replaceChildren(...cardLines(panel, cell).map(([text, bold]) => {
    const div = document.createElement("div");
    div.textContent = text;
    if (bold) div.style.fontWeight = "bold";
    return div;
  }));
  card.dataset.cell = String(cell.index);
  card.style.display = "block";
  const x = Math.min(clientX + 14, window.innerWidth - card.offsetWidth - 4);
  const y = clientY + 14 + card.offsetHeight > window.innerHeight ? clientY - card.offsetHeight - 8 : clientY + 14;
  card.style.left = `${Math.max(0, x)}px`;
  card.style.top = `${Math.max(0, y)}px`;
}

function hideCard(panel) {
  if (panel.card) panel.card.style.display = "none";
}

function tileAt(panel, event) {
  const r = panel.canvas.getBoundingClientRect();
  if (!r.width || !r.height) return null;
  const x = (event.clientX - r.left) * (panel.canvas.offsetWidth / r.width);
  const y = (event.clientY - r.top) * (panel.canvas.offsetHeight / r.height);
  return (panel.state.tiles ?? []).find((t) => x >= t.x && x < t.x + t.w && y >= t.y && y < t.y + t.h) ?? null;
}

function createViewer(node) {
  const shown = () => Boolean(node.sampler_lab_sweep_viewer?.state?.data);
  const panel = addCanvasPanel(node, PANEL, {
    minHeight: () => (shown() ? CELLS_HEIGHT : EMPTY_HEIGHT + 2 * DOM_MARGIN),
    maxHeight: () => (shown() ? 560 : EMPTY_HEIGHT + 2 * DOM_MARGIN),
    pointer: true, draw: drawViewer,
  });
  panel.state = { data: null, images: [], tiles: [], hover: null, copies: 0, lastCopy: null };
  const { element, canvas } = panel;
  element.style.display = "flex";
  element.style.flexDirection = "column";
  canvas.style.minHeight = "0";
  const bar = document.createElement("div");
  bar.style.cssText = `display:flex;gap:6px;align-items:center;font:11px sans-serif;color:${LAB_THEME.text};padding:0 0 3px 0;`;
  const label = document.createElement("span");
  label.textContent = "copy to";
  const select = document.createElement("select");
  select.className = "sampler-lab-sweep-target";
  select.style.cssText = `flex:0 1 auto;max-width:60%;font:11px sans-serif;background:${LAB_THEME.background};color:${LAB_THEME.text};border:1px solid ${LAB_THEME.grid};`;
  const status = document.createElement("span");
  status.className = "sampler-lab-sweep-status";
  // min-width 0: a long recommendation is cut with an ellipsis instead of widening the node
  status.style.cssText = `flex:1 1 auto;min-width:0;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;color:${LAB_THEME.muted};`;
  bar.append(label, select, status);
  element.insertBefore(bar, canvas);
  Object.assign(panel, { bar, select, status, card: null });
  refreshTargets(panel);
  for (const ev of ["pointerdown", "focus"]) select.addEventListener(ev, () => refreshTargets(panel));
  element.addEventListener("pointerenter", () => refreshTargets(panel));   // nodes added since the last look

  canvas.addEventListener("pointermove", (event) => {
    const tile = tileAt(panel, event);
    const index = tile ? tile.cell.index : null;
    if (index !== panel.state.hover) {
      panel.state.hover = index;
      panel.redraw();
    }
    if (tile) showCard(panel, tile.cell, event.clientX, event.clientY); else hideCard(panel);
  });
  canvas.addEventListener("pointerleave", () => {
    panel.state.hover = null;
    hideCard(panel);
    panel.redraw();
  });
  canvas.addEventListener("click", (event) => {
    const tile = tileAt(panel, event);
    if (!tile) return;
    event.stopPropagation();
    panel.copy(tile.cell.index);
  });
  panel.copy = (index) => {
    const cell = panel.state.data?.cells?.find((c) => c.index === index);
    if (!cell) return null;
    refreshTargets(panel);
    const target = chosenTarget(panel);
    if (!target) {
      status.textContent = "no KSampler in the graph to copy to";
      return null;
    }
    const written = copySettings(cell, target);
    panel.state.copies++;
    panel.state.lastCopy = { cell: index, target: target.id, keys: written };
    status.textContent = `cell ${index + 1} -> ${targetLabel(target)} (${written.join(", ")})`;
    return panel.state.lastCopy;
  };
  /** Client (page) coordinates of a cell's centre: for tests and keyboard-free automation. */
  panel.cellClientPoint = (index) => {
    const t = panel.state.tiles.find((x) => x.cell.index === index);
    const r = canvas.getBoundingClientRect();
    if (!t || !canvas.offsetWidth) return null;
    const sx = r.width / canvas.offsetWidth;
    const sy = r.height / canvas.offsetHeight;
    return { x: r.left + (t.x + t.w / 2) * sx, y: r.top + (t.y + t.h / 2) * sy };
  };
  chainNodeCallback(node, "onRemoved", () => panel.card?.remove());
  setLayout(panel, false);
  return panel;
}

/** Results or none: the cells under the copy bar, or one line of text. The height is a definite
 * basis: the LiteGraph renderers size the panel and the cells grow or shrink to fill it; the Vue
 * renderers size the node from its content, where an "auto" canvas height would follow the bitmap's
 * last aspect ratio (measured: a 32 px strip after the one-line state). */
function setLayout(panel, withData) {
  const { canvas } = panel;
  panel.bar.style.display = withData ? "flex" : "none";
  canvas.style.height = `${withData ? CELLS_HEIGHT : EMPTY_HEIGHT - 4}px`;
  canvas.style.flex = withData ? "1 1 auto" : "0 0 auto";
}

function imageURL(ref) {
  const query = new URLSearchParams({ filename: ref.filename, subfolder: ref.subfolder ?? "", type: ref.type ?? "output" });
  return api.apiURL(`/view?${query}${app.getRandParam?.() ?? ""}`);
}

/** The node's viewer panel, made once per node (see the note at the top). */
function ensureViewer(node) {
  if (!node.sampler_lab_sweep_viewer) node.sampler_lab_sweep_viewer = createViewer(node);
  return node.sampler_lab_sweep_viewer;
}

function showResults(node, message) {
  const data = message?.[KEY]?.[0];
  const valid = data && Array.isArray(data.cells) && Array.isArray(data.shape) && data.shape.length === 3;
  const panel = ensureViewer(node);
  if (!valid) {
    panel.state.data = null;
    setLayout(panel, false);
    hideCard(panel);
    panel.redraw();
    return;
  }
  const first = !panel.state.data;
  panel.state.data = data;
  if (first) {   // the panel grows from one line to the cells: make room on the node
    setLayout(panel, true);
    const want = node.computeSize?.() ?? node.size;
    node.setSize([Math.max(node.size[0], 360), Math.max(node.size[1], want[1])]);
  }
  panel.state.hover = null;
  panel.state.images = (Array.isArray(data.images) ? data.images : []).map((ref) => {
    if (!ref?.filename) return null;
    const img = new Image();
    img.onload = () => panel.redraw();
    img.onerror = () => panel.redraw();            // tiles keep their colours
    img.src = imageURL(ref);
    return img;
  });
  refreshTargets(panel);
  panel.status.textContent = recommendationText(data);
  panel.status.title = panel.status.textContent;
  hideCard(panel);
  panel.redraw();
  node.setDirtyCanvas?.(true, true);
}

app.registerExtension({
  name: "Sampler Lab.SweepViewer",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE) return;
    chainNodeCallback(nodeType.prototype, "onNodeCreated", function () {
      try {
        ensureViewer(this);
      } catch (e) {
        console.warn("[Sampler Lab] sweep viewer unavailable on this node", e);
      }
    });
    chainNodeCallback(nodeType.prototype, "onExecuted", function (message) {
      try {
        showResults(this, message);
      } catch (e) {
        console.warn("[Sampler Lab] sweep viewer could not show the results", e);
      }
    });
  },
});
