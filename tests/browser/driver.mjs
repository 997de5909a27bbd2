// Browser driver for tests/test_browser.py (dev-only; run with node).
//   node tests/browser/driver.mjs <config.json>
// config: { url, playwrightCore, chromium, artifacts, results, workflows: [{path, name, lab}],
//           queueTimeoutMs, preview: {workflow, scheduler_a, scheduler_b}, degrade: true,
//           sweepViewer: {workflow, cell, before: {widget: value}} }
// Drives headless Debian Chromium through playwright-core against a running ComfyUI with the
// pack, the way a user does (file input, queue button API), and writes a JSON report of what it
// saw; the pytest side asserts on it and checks the screenshots' pixels.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const require = createRequire(import.meta.url);
const { chromium } = require(config.playwrightCore);

const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"];

// Console errors are judged by origin, not silenced by text: an entry is the pack's when its source
// URL, message or stack names the pack's files (/extensions/comfyui-sampler-lab/), its routes
// (/sampler_lab/) or its node types / log prefix. Everything else is the frontend's or the backend's
// own (e.g. a newer frontend's 404s for /api/jobs on an older backend, missing user.css, the blocked
// online registry): kept in the report under "foreign" for inspection, not counted as the pack's.
// (A message that only mentions a pack node id, e.g. the frontend's blocked registry lookup
// https://api.comfy.org/comfy-nodes/SamplerLabModel/node, is the frontend's, not the pack's.)
const escapeRe = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const PACK_ORIGIN = [new RegExp(escapeRe(config.url) + "/extensions/comfyui-sampler-lab/"),
  new RegExp(escapeRe(config.url) + "/(api/)?sampler_lab/"), /\[Sampler Lab\]/];

function isNoise(entry) {
  const text = `${entry.text} ${entry.url ?? ""} ${entry.stack ?? ""}`;
  return !PACK_ORIGIN.some((re) => re.test(text));
}

function isPackPageError(text) {
  return PACK_ORIGIN.some((re) => re.test(text));
}

const report = { startup: {}, workflows: [], preview: null, degrade: null, sweepViewer: null, fatal: null, timings: {} };
fs.mkdirSync(config.artifacts, { recursive: true });
const shot = (name) => path.join(config.artifacts, name);
const now = () => Date.now();

async function openPage(browser, { routes = [] } = {}) {
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const log = { console: [], pageErrors: [], foreignPageErrors: [], failedRequests: [], packRequests: [] };
  page.on("console", (msg) => {
    const entry = { text: msg.text(), url: msg.location()?.url ?? "" };
    // errors from anywhere (judged by origin later), and the pack's own "[Sampler Lab]" warnings,
    // which it logs when a panel cannot draw
    if (msg.type() === "error" || (msg.type() === "warning" && /\[Sampler Lab\]/.test(entry.text))) log.console.push(entry);
  });
  page.on("pageerror", (err) => {
    const text = String(err?.stack ?? err);
    (isPackPageError(text) ? log.pageErrors : log.foreignPageErrors).push(text);
  });
  page.on("requestfailed", (req) => log.failedRequests.push(req.url()));
  page.on("request", (req) => { if (req.url().includes("/sampler_lab/")) log.packRequests.push(req.url()); });
  for (const [pattern, handler] of routes) await page.route(pattern, handler);
  await page.goto(config.url, { waitUntil: "domcontentloaded", timeout: 60000 });
  await waitReady(page);
  return { context, page, log };
}

async function waitReady(page) {
  await page.waitForFunction(() => {
    const app = window.app;
    return Boolean(app && app.graph && app.canvas && app.vueAppReady &&
      app.extensionManager?.workflow?.activeWorkflow);
  }, null, { timeout: 90000, polling: 200 });
  await page.waitForLoadState("networkidle", { timeout: 30000 }).catch(() => {});
  await page.waitForTimeout(500);
}

async function fitView(page) {
  await page.evaluate(async () => {
    try {
      await window.app.extensionManager.command.execute("Comfy.Canvas.FitView");
    } catch {
      window.app.canvas?.ds?.reset?.();
    }
    window.app.graph.setDirtyCanvas(true, true);
  });
  await page.waitForTimeout(400);
}

async function closeDialogs(page) {
  for (let i = 0; i < 3; i++) {
    const open = await page.locator(".p-dialog").count();
    if (!open) return;
    await page.keyboard.press("Escape");
    await page.waitForTimeout(200);
  }
}

async function loadWorkflow(page, wf) {
  const expected = JSON.parse(fs.readFileSync(wf.path, "utf8")).nodes.length;
  await page.setInputFiles("#comfy-file-input", wf.path);
  await page.waitForFunction((n) => window.app.graph.nodes.length === n, expected, { timeout: 30000 });
  await page.waitForLoadState("networkidle", { timeout: 15000 }).catch(() => {});
  await page.waitForTimeout(600);
  return page.evaluate(() => {
    const { app, LiteGraph } = window;
    const registered = LiteGraph.registered_node_types;
    const nodes = app.graph.nodes;
    const missing = nodes.filter((n) => !registered[n.type]).map((n) => n.type);
    const dialogs = [...document.querySelectorAll(".p-dialog")].map((d) => d.innerText.slice(0, 400));
    const missingDialog = dialogs.some((t) => /missing/i.test(t) && /node/i.test(t));
    const badWidgets = [];
    for (const n of nodes) {
      for (const w of n.widgets ?? []) {
        if (w.type === "combo" && Array.isArray(w.options?.values)) {
          const fileInput = /_name$/.test(w.name) && typeof w.value === "string" && /\.(safetensors|ckpt|pt|pth|bin|gguf)$/i.test(w.value);
          if (!fileInput && !w.options.values.includes(w.value)) badWidgets.push(`${n.type}.${w.name}=${w.value}`);
        }
        if (w.type === "number" && typeof w.value === "number") {
          const { min, max } = w.options ?? {};
          if ((min !== undefined && w.value < min) || (max !== undefined && w.value > max)) badWidgets.push(`${n.type}.${w.name}=${w.value}`);
        }
      }
    }
    return {
      nodes: nodes.length, types: [...new Set(nodes.map((n) => n.type))], missing, missingDialog, dialogs, badWidgets,
      errors: nodes.filter((n) => n.has_errors).map((n) => n.type),
      previews: nodes.filter((n) => n.sampler_lab_preview).map((n) => n.type),
    };
  });
}

async function serverJSON(route) {
  const res = await fetch(config.url + route);
  return res.json();
}

async function queueAndWait(page, timeoutMs) {
  const before = new Set(Object.keys(await serverJSON("/history?max_items=10000")));
  await page.evaluate(() => window.app.queuePrompt(0, 1));
  const end = now() + timeoutMs;
  while (now() < end) {
    const hist = await serverJSON("/history?max_items=10000");
    const fresh = Object.keys(hist).filter((k) => !before.has(k));
    if (fresh.length) {
      const entry = hist[fresh[0]];
      const status = entry.status ?? {};
      if (status.status_str === "error") return { ok: false, error: JSON.stringify(status.messages ?? []).slice(0, 2000) };
      if (status.completed) {
        const images = Object.values(entry.outputs ?? {}).reduce((n, o) => n + (o.images?.length ?? 0), 0);
        return { ok: true, prompt_id: fresh[0], images };
      }
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  return { ok: false, error: `timed out after ${timeoutMs} ms` };
}

async function imagesShown(page, timeoutMs = 30000) {
  // Every image-output node (SaveImage / PreviewImage) shows its results: loaded images held by the
  // node (LiteGraph renderer) or <img> elements inside its DOM node (Vue renderer, [data-node-id]).
  const check = () => page.evaluate(() => window.app.graph.nodes
    .filter((n) => ["SaveImage", "PreviewImage"].includes(n.type) && n.mode === 0)
    .map((n) => {
      const loaded = (imgs) => imgs.filter((i) => i.complete && i.naturalWidth > 0).length;
      const dom = [...document.querySelectorAll(`[data-node-id="${n.id}"] img`)];
      return { id: n.id, count: Math.max(loaded(n.imgs ?? []), loaded(dom)) };
    }));
  const end = now() + timeoutMs;
  let state = await check();
  while (now() < end && state.some((s) => s.count === 0)) {
    await page.waitForTimeout(300);
    state = await check();
  }
  return state;
}

async function previewState(page, nodeId) {
  return page.evaluate((id) => {
    const node = window.app.graph.getNodeById(id);
    const p = node?.sampler_lab_preview;
    if (!p) return null;
    const r = p.canvas.getBoundingClientRect();
    return { status: p.state.status, updates: p.state.updates, requests: p.state.requests, key: p.state.key,
      result: p.state.result, rect: { x: r.x, y: r.y, width: r.width, height: r.height } };
  }, nodeId);
}

async function previewShot(page, nodeId, file) {
  const st = await previewState(page, nodeId);
  const r = st.rect;
  await page.screenshot({ path: shot(file), clip: { x: r.x, y: r.y, width: Math.max(1, r.width), height: Math.max(1, r.height) } });
  return st;
}

async function setWidgetAndWait(page, nodeId, name, value) {
  await page.evaluate(({ id, name, value }) => {
    const node = window.app.graph.getNodeById(id);
    const w = node.widgets.find((x) => x.name === name);
    w.value = value;
    w.callback?.(value, window.app.canvas, node);
    window.app.graph.setDirtyCanvas(true, true);
  }, { id: nodeId, name, value });
  // done when the preview holds the answer for the request that carries the new value
  await page.waitForFunction(({ id, name, value }) => {
    const p = window.app.graph.getNodeById(id)?.sampler_lab_preview;
    if (!p || !p.state.key || p.state.resultKey !== p.state.key) return false;
    return String(JSON.parse(p.state.key)[name]) === String(value);
  }, { id: nodeId, name, value }, { timeout: 15000 });
  await page.waitForTimeout(200);
}

async function previewTest(page, log) {
  const cfg = config.preview;
  const mark = log.console.length;
  const loaded = await loadWorkflow(page, { path: cfg.workflow });
  await closeDialogs(page);
  // the first KSampler with a preview; zoom so the node is comfortably large on screen
  const nodeId = await page.evaluate(() => {
    const node = window.app.graph.nodes.find((n) => n.sampler_lab_preview && n.type === "KSampler");
    if (!node) return null;
    const canvas = window.app.canvas;
    canvas.ds.scale = 1.2;
    canvas.ds.offset = [-node.pos[0] + 200, -node.pos[1] + 80];
    window.app.graph.setDirtyCanvas(true, true);
    return node.id;
  });
  if (nodeId == null) return { ok: false, error: "no KSampler with a schedule preview", loaded };
  await page.waitForTimeout(500);
  await setWidgetAndWait(page, nodeId, "scheduler", cfg.scheduler_a);
  const a = await previewShot(page, nodeId, "preview_a.png");
  await setWidgetAndWait(page, nodeId, "scheduler", cfg.scheduler_b);
  const b = await previewShot(page, nodeId, "preview_b.png");
  await setWidgetAndWait(page, nodeId, "steps", cfg.steps_c);
  const c = await previewShot(page, nodeId, "preview_c.png");
  await page.screenshot({ path: shot("preview_node.png") });
  // SIGMAS nodes: a pack schedule node (its own parameters) and core BasicScheduler, fresh from the menu
  const created = await page.evaluate((types) => {
    const ids = {};
    types.forEach((type, k) => {
      const node = window.LiteGraph.createNode(type);
      node.pos = [40 + 360 * k, 1200];
      window.app.graph.add(node);
      ids[type] = node.id;
    });
    window.app.graph.setDirtyCanvas(true, true);
    return ids;
  }, cfg.sigmas_nodes);
  const sigmasNodes = {};
  for (const [type, id] of Object.entries(created)) {
    await page.waitForFunction((nid) => {
      const p = window.app.graph.getNodeById(nid)?.sampler_lab_preview;
      return p && p.state.key && p.state.resultKey === p.state.key;
    }, id, { timeout: 15000 });
    sigmasNodes[type] = await previewState(page, id);
  }
  return { ok: true, nodeId, a, b, c, sigmasNodes, console: log.console.slice(mark).filter((e) => !isNoise(e)) };
}

async function sweepViewerTest(page, log, run) {
  // The sweep result viewer on the Step Sweep node that just ran: hover a cell, read the card, click it.
  const cfg = config.sweepViewer;
  const mark = log.console.length;
  const hist = await serverJSON(`/history/${run.prompt_id}`);
  let report = null;
  for (const out of Object.values(hist[run.prompt_id]?.outputs ?? {})) {
    for (const text of out.text ?? []) {
      try {
        const parsed = JSON.parse(text);
        if (Array.isArray(parsed?.cells)) report = parsed;
      } catch {
        // not the report
      }
    }
  }
  const nodeId = await page.evaluate(() => window.app.graph.nodes.find((n) => n.type === "SamplerLabStepSweep")?.id);
  await page.waitForFunction((id) => {
    const p = window.app.graph.getNodeById(id)?.sampler_lab_sweep_viewer;
    return p && p.state.data && p.state.tiles.length > 0 && p.state.images.every((i) => !i || i.complete);
  }, nodeId, { timeout: 20000 });
  // a KSampler to copy onto (the workflow has none), with settings unlike every cell's
  const ksId = await page.evaluate(({ id, before }) => {
    const { app, LiteGraph } = window;
    const sweep = app.graph.getNodeById(id);
    const ks = LiteGraph.createNode("KSampler");
    ks.pos = [sweep.pos[0] + sweep.size[0] + 60, sweep.pos[1]];
    app.graph.add(ks);
    for (const [k, v] of Object.entries(before)) ks.widgets.find((w) => w.name === k).value = v;
    const canvas = app.canvas;
    canvas.ds.scale = 1;
    canvas.ds.offset = [-sweep.pos[0] + 140, -sweep.pos[1] + 60];  // clear of the sidebar
    app.graph.setDirtyCanvas(true, true);
    return ks.id;
  }, { id: nodeId, before: cfg.before });
  await page.waitForTimeout(400);
  // bring the panel fully into view
  await page.evaluate((id) => {
    const { app } = window;
    const r = app.graph.getNodeById(id).sampler_lab_sweep_viewer.canvas.getBoundingClientRect();
    if (r.bottom > window.innerHeight - 20) app.canvas.ds.offset[1] -= r.bottom - window.innerHeight + 40;
    app.graph.setDirtyCanvas(true, true);
  }, nodeId);
  await page.waitForTimeout(400);
  const point = await page.evaluate(({ id, cell }) => {
    const p = window.app.graph.getNodeById(id).sampler_lab_sweep_viewer;
    p.redraw();
    const pt = p.cellClientPoint(cell);
    const hit = pt && document.elementFromPoint(pt.x, pt.y);
    return pt && { ...pt, onPanel: hit === p.canvas };
  }, { id: nodeId, cell: cfg.cell });
  if (!point) return { ok: false, error: "no tile for the cell", report };
  await page.mouse.move(point.x - 30, point.y - 30);
  await page.mouse.move(point.x, point.y, { steps: 5 });
  await page.waitForFunction((cell) => {
    const card = document.querySelector(".sampler-lab-sweep-card");
    return card && card.style.display !== "none" && card.dataset.cell === String(cell);
  }, cfg.cell, { timeout: 10000 });
  const card = await page.evaluate(() => document.querySelector(".sampler-lab-sweep-card").innerText);
  await page.screenshot({ path: shot("sweep_viewer_hover.png") });
  const rect = await page.evaluate((id) => {
    const r = window.app.graph.getNodeById(id).sampler_lab_sweep_viewer.canvas.getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  }, nodeId);
  await page.screenshot({ path: shot("sweep_viewer_panel.png"), clip: { ...rect, width: Math.max(1, rect.width), height: Math.max(1, rect.height) } });
  await page.selectOption("select.sampler-lab-sweep-target", String(ksId));
  await page.mouse.click(point.x, point.y);
  await page.waitForTimeout(300);
  const copied = await page.evaluate(({ id, ks }) => {
    const p = window.app.graph.getNodeById(id).sampler_lab_sweep_viewer;
    const node = window.app.graph.getNodeById(ks);
    const values = Object.fromEntries(["sampler_name", "scheduler", "steps", "cfg", "denoise"]
      .map((k) => [k, node.widgets.find((w) => w.name === k).value]));
    return { values, lastCopy: p.state.lastCopy, status: p.status.textContent };
  }, { id: nodeId, ks: ksId });
  await page.mouse.move(5, 5);
  return { ok: true, cell: cfg.cell, point, card, copied, ksampler: ksId,
    report: report && { recommended_steps: report.recommended_steps, reference: report.reference,
      cells: report.cells.map((c) => ({ index: c.index, params: c.params, status: c.status, nfe: c.nfe,
        sample_s: c.sample_s, rel_rmse: c.rel_rmse, psnr: c.psnr, ssim: c.ssim })) },
    console: log.console.slice(mark).filter((e) => !isNoise(e)) };
}

async function degradeTest(browser) {
  // The pack's Python side without its route: the server advertises no feature flag and the path 404s.
  const { context, page, log } = await openPage(browser, {
    routes: [
      ["**/features", (route) => route.fulfill({ status: 200, contentType: "application/json", body: "{}" })],
      ["**/sampler_lab/**", (route) => route.fulfill({ status: 404, body: "" })],
    ],
  });
  const wf = config.workflows.find((w) => w.lab);
  const loaded = await loadWorkflow(page, wf);
  await closeDialogs(page);
  await fitView(page);
  await page.screenshot({ path: shot("degrade_no_route.png") });
  const previewRequests = [...log.packRequests];
  const result = { loaded, console: log.console.filter((e) => !isNoise(e)), pageErrors: log.pageErrors,
    previewRequests };
  await context.close();
  return result;
}

// A partial report after each step, so a run stopped by its time limit still says where it was.
function saveProgress(where) {
  report.timings.progress_ms = now() - started;
  fs.writeFileSync(config.results, JSON.stringify({ ...report, fatal: report.fatal ?? `incomplete: stopped ${where}` }, null, 1));
}
const started = now();

async function main() {
  const t0 = now();
  const browser = await chromium.launch({ executablePath: config.chromium, headless: true, args: CHROMIUM_ARGS });
  try {
    const { context, page, log } = await openPage(browser);
    report.timings.startup_ms = now() - t0;
    Object.assign(report, await page.evaluate(() => {
      const setting = (id) => {
        try {
          return window.app.extensionManager.setting.get(id);
        } catch {
          return window.app.ui?.settings?.getSettingValue?.(id) ?? null;
        }
      };
      return { frontend: window.__COMFYUI_FRONTEND_VERSION__ ?? null, vueNodes: Boolean(setting("Comfy.VueNodes.Enabled")) };
    }));
    report.startup = {
      console: log.console.filter((e) => !isNoise(e)), pageErrors: [...log.pageErrors],
      extensions: await page.evaluate(() => window.app.extensions.map((e) => e.name).filter((n) => n.startsWith("Sampler Lab"))),
    };
    await page.screenshot({ path: shot("startup.png") });
    saveProgress("after start-up");
    for (const wf of config.workflows) {
      const t = now();
      const mark = log.console.length;
      const pmark = log.pageErrors.length;
      const item = { name: wf.name, lab: wf.lab };
      try {
        Object.assign(item, await loadWorkflow(page, wf));
        await closeDialogs(page);
        await fitView(page);
        await page.screenshot({ path: shot(`${wf.name}_loaded.png`) });
        if (wf.lab) {
          item.run = await queueAndWait(page, config.queueTimeoutMs ?? 180000);
          if (item.run.ok) item.shown = await imagesShown(page);
          if (item.run.ok && config.sweepViewer?.workflow === wf.name) {
            const t1 = now();
            try {
              report.sweepViewer = await sweepViewerTest(page, log, item.run);
            } catch (e) {
              report.sweepViewer = { ok: false, error: String(e?.stack ?? e) };
            }
            report.timings.sweep_viewer_ms = now() - t1;
          }
          await fitView(page);
          await page.screenshot({ path: shot(`${wf.name}_run.png`) });
        }
      } catch (e) {
        item.exception = String(e?.stack ?? e);
      }
      item.console = log.console.slice(mark).filter((e) => !isNoise(e));
      item.pageErrors = log.pageErrors.slice(pmark);
      item.ms = now() - t;
      report.workflows.push(item);
      saveProgress(`after workflow ${wf.name}`);
    }
    if (config.preview) {
      const t = now();
      try {
        report.preview = await previewTest(page, log);
      } catch (e) {
        report.preview = { ok: false, error: String(e?.stack ?? e) };
      }
      report.timings.preview_ms = now() - t;
      saveProgress("after the schedule preview");
    }
    report.finalConsole = log.console.filter((e) => !isNoise(e));
    report.finalPageErrors = log.pageErrors;
    report.foreign = { console: log.console.filter(isNoise).slice(0, 200), pageErrors: log.foreignPageErrors.slice(0, 50) };
    await context.close();
    if (config.degrade) {
      const t = now();
      try {
        report.degrade = await degradeTest(browser);
      } catch (e) {
        report.degrade = { error: String(e?.stack ?? e) };
      }
      report.timings.degrade_ms = now() - t;
    }
  } catch (e) {
    report.fatal = String(e?.stack ?? e);
  } finally {
    await browser.close();
    report.timings.total_ms = now() - t0;
    fs.writeFileSync(config.results, JSON.stringify(report, null, 1));
  }
}

await main();
