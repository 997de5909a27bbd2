// Sampler Lab: live schedule preview on scheduler and SIGMAS nodes.
//
// Nodes with a `scheduler` dropdown and a `steps` input (KSampler, KSamplerAdvanced, BasicScheduler,
// ...) and the pack's schedule nodes get a small chart of their sigma schedule (log scale, step
// index vs sigma). It redraws when the scheduler, steps, denoise, the node's parameters or the
// upstream model type change. Sigmas come from the pack's route /sampler_lab/schedule_preview on
// the local server (nodes/preview_routes.py). When the server does not advertise that route, no
// panel is added at all: no requests, no errors.
import { app } from "../../../scripts/app.js";
import {
  LAB_THEME, addCanvasPanel, chainNodeCallback, labFeature, labFetchJSON, upstreamNode, widgetValue,
} from "./lab_widgets.js";

const FEATURE = "sampler_lab_schedule_preview";
const ROUTE = "/sampler_lab/schedule_preview";
const SETTING = "SamplerLab.SchedulePreview.Enabled";
const PANEL = "sampler_lab_schedule_preview";
const MAX_STEPS = 1000;
const SKIP_WIDGETS = new Set(["steps", "denoise", "control_after_generate", PANEL]);

let routeAvailable = false;

function settingEnabled() {
  try {
    return app.extensionManager?.setting?.get?.(SETTING) !== false;
  } catch {
    return true;
  }
}

function comboValues(spec) {
  if (Array.isArray(spec?.[0])) return spec[0];
  if (spec?.[0] === "COMBO") return spec[1]?.options ?? [];
  return null;
}

/** "scheduler" (any node with a scheduler dropdown + steps), "node" (a pack schedule node) or null. */
function previewKind(nodeData) {
  const required = nodeData?.input?.required ?? {};
  const outputs = nodeData?.output ?? [];
  if (nodeData?.name?.startsWith("SamplerLab") && outputs.includes("SIGMAS") && required.steps && required.model) {
    return "node";
  }
  if (required.scheduler && comboValues(required.scheduler) && required.steps) return "scheduler";
  return null;
}

// Checkpoint file names that identify flow-matching families, with their usual shift.
const FLOW_NAME_HINTS = [[/sd3|sd_3/i, 3.0], [/flux|chroma/i, 3.0], [/wan2|wan_2|\bwan/i, 8.0],
  [/hidream|lumina|qwen|auraflow|hunyuan/i, 3.0]];

/** {model_kind, shift, approx} inferred by walking the `model` input upstream. */
function inferModel(node) {
  let current = upstreamNode(node, "model");
  for (let depth = 0; current && depth < 32; depth++) {
    const type = current.type ?? current.comfyClass;
    if (type === "SamplerLabModel") {
      const kind = widgetValue(current, "parameterization", "eps");
      return { model_kind: kind, shift: Number(widgetValue(current, "flow_shift", 3.0)), approx: false };
    }
    if (type === "ModelSamplingSD3" || type === "ModelSamplingAuraFlow") {
      return { model_kind: "flow", shift: Number(widgetValue(current, "shift", 3.0)), approx: false };
    }
    if (type === "ModelSamplingFlux") return { model_kind: "flow", shift: 3.0, approx: true };
    if (type === "ModelSamplingDiscrete") {
      const sampling = widgetValue(current, "sampling", "eps");
      return { model_kind: sampling === "v_prediction" ? "v" : "eps", shift: 1.0, approx: false };
    }
    for (const name of ["ckpt_name", "unet_name", "model_name"]) {
      const file = widgetValue(current, name);
      if (typeof file === "string") {
        const hint = FLOW_NAME_HINTS.find(([re]) => re.test(file));
        return hint ? { model_kind: "flow", shift: hint[1], approx: true } : { model_kind: "eps", shift: 1.0, approx: false };
      }
    }
    current = upstreamNode(current, "model");
  }
  return { model_kind: "eps", shift: 1.0, approx: !node.inputs?.some((i) => i.name === "model" && i.link != null) };
}

function requestParams(node, kind) {
  const model = inferModel(node);
  const steps = Math.min(MAX_STEPS, Math.max(1, Math.round(Number(widgetValue(node, "steps", 20)) || 1)));
  const denoise = Math.min(1, Math.max(0, Number(widgetValue(node, "denoise", 1.0))));
  const params = { steps, denoise: Number.isFinite(denoise) ? denoise : 1, model_kind: model.model_kind };
  if (model.model_kind === "flow") params.shift = Math.min(100, Math.max(0.01, model.shift || 3.0));
  if (kind === "node") {
    params.node = node.comfyClass ?? node.type;
    for (const w of node.widgets ?? []) {
      if (!SKIP_WIDGETS.has(w.name) && ["number", "combo", "toggle", "text"].includes(w.type)) params[w.name] = w.value;
    }
  } else {
    params.scheduler = widgetValue(node, "scheduler");
  }
  return { params, model };
}

function drawPreview(ctx, width, height, panel) {
  const { state } = panel;
  ctx.clearRect(0, 0, width, height);
  ctx.fillStyle = LAB_THEME.background;
  ctx.fillRect(0, 0, width, height);
  ctx.font = "11px sans-serif";
  ctx.textBaseline = "top";
  const sigmas = state.result?.ok ? state.result.sigmas : null;
  if (!sigmas) {
    ctx.fillStyle = LAB_THEME.muted;
    const message = state.result?.error ?? (state.status === "loading" ? "computing schedule..." : "no schedule");
    ctx.fillText(message.slice(0, 90), 8, 8);
    return;
  }
  const pad = { left: 34, right: 8, top: 18, bottom: 14 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const positive = sigmas.filter((s) => s > 0);
  const lo = Math.log10(Math.min(...positive, state.result.sigma_min || 1e-3));
  const hi = Math.log10(Math.max(...positive, 1e-3));
  const span = Math.max(hi - lo, 0.25);
  const zeroRow = 10;
  const n = Math.max(1, sigmas.length - 1);
  const x = (i) => pad.left + (w * i) / n;
  const y = (s) => (s > 0 ? pad.top + (h - zeroRow) * (1 - (Math.log10(s) - lo) / span) : pad.top + h);
  // grid: decades
  ctx.strokeStyle = LAB_THEME.grid;
  ctx.fillStyle = LAB_THEME.muted;
  ctx.lineWidth = 1;
  ctx.textBaseline = "middle";
  const decadePx = (h - zeroRow) / span;
  const every = decadePx >= 12 ? 1 : Math.ceil(12 / Math.max(decadePx, 1));  // keep labels from overlapping
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) {
    const gy = y(10 ** e);
    ctx.beginPath(); ctx.moveTo(pad.left, gy); ctx.lineTo(width - pad.right, gy); ctx.stroke();
    if ((Math.floor(hi) - e) % every === 0) ctx.fillText(e >= 0 ? String(10 ** e) : `1e${e}`, 4, gy);
  }
  ctx.fillText("0", 4, pad.top + h);
  ctx.strokeStyle = LAB_THEME.axis;
  ctx.beginPath(); ctx.moveTo(pad.left, pad.top); ctx.lineTo(pad.left, pad.top + h); ctx.lineTo(width - pad.right, pad.top + h); ctx.stroke();
  // curve and step markers
  ctx.strokeStyle = LAB_THEME.series[0];
  ctx.fillStyle = LAB_THEME.series[0];
  ctx.lineWidth = 2;
  ctx.beginPath();
  sigmas.forEach((s, i) => (i ? ctx.lineTo(x(i), y(s)) : ctx.moveTo(x(i), y(s))));
  ctx.stroke();
  const r = sigmas.length > 60 ? 1 : 2.5;
  sigmas.forEach((s, i) => { ctx.beginPath(); ctx.arc(x(i), y(s), r, 0, 2 * Math.PI); ctx.fill(); });
  // caption
  const res = state.result;
  const kind = res.model_kind === "flow" ? `flow shift ${Number(res.shift).toFixed(2)}` : res.model_kind;
  ctx.fillStyle = LAB_THEME.text;
  ctx.textBaseline = "top";
  const caption = `${res.scheduler.replace(/^SamplerLab/, "")} | ${res.steps} steps | ${kind}${state.approx ? " (guess)" : ""}` +
    ` | sigma ${Number(sigmas[0]).toPrecision(3)} -> ${Number(sigmas[sigmas.length - 1]).toPrecision(2)}`;
  ctx.fillText(caption.slice(0, 100), pad.left, 3);
}

function attachPreview(node, kind) {
  if (!settingEnabled() || node.sampler_lab_preview) return;
  const panel = addCanvasPanel(node, PANEL, { minHeight: 96, draw: drawPreview });
  panel.state = { key: null, status: "idle", result: null, requests: 0, updates: 0 };
  node.sampler_lab_preview = panel;
  let timer = null;
  let serial = 0;
  panel.update = () => {
    let request;
    try {
      request = requestParams(node, kind);
    } catch (e) {
      return;
    }
    const key = JSON.stringify(request.params);
    if (key === panel.state.key) return;
    panel.state.key = key;
    panel.state.approx = request.model.approx;
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++serial;
      panel.state.pendingKey = key;
      panel.state.status = "loading";
      panel.state.requests++;
      const result = await labFetchJSON(ROUTE, request.params);
      if (mine !== serial) return;  // a newer request superseded this one
      panel.state.result = result ?? { ok: false, error: "schedule preview: no answer from the server" };
      panel.state.status = result?.ok ? "ok" : "error";
      panel.state.resultKey = key;
      panel.state.updates++;
      panel.redraw();
    }, 120);
  };
  // Any change is caught on the next frame (covers widget edits, links, loading a workflow) ...
  chainNodeCallback(node, "onDrawForeground", () => panel.update());
  // ... and widget callbacks make it immediate even when the canvas is idle.
  for (const w of node.widgets ?? []) {
    if (w === panel.widget) continue;
    const previous = w.callback;
    w.callback = function (...args) {
      const result = previous?.apply(this, args);
      panel.update();
      return result;
    };
  }
  chainNodeCallback(node, "onConnectionsChange", () => panel.update());
  chainNodeCallback(node, "onConfigure", () => setTimeout(() => panel.update(), 0));
  setTimeout(() => panel.update(), 0);  // first schedule even before the node is first drawn
}

app.registerExtension({
  name: "Sampler Lab.SchedulePreview",
  settings: [{
    id: SETTING,
    category: ["Sampler Lab", "Schedule preview", "Enabled"],
    name: "Show a live sigma-schedule preview on scheduler and SIGMAS nodes (applies to new nodes)",
    type: "boolean",
    defaultValue: true,
  }],
  async init() {
    routeAvailable = await labFeature(FEATURE);
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const kind = previewKind(nodeData);
    if (!kind || !routeAvailable) return;
    chainNodeCallback(nodeType.prototype, "onNodeCreated", function () {
      try {
        attachPreview(this, kind);
      } catch (e) {
        console.warn("[Sampler Lab] schedule preview unavailable on this node", e);
      }
    });
  },
});
