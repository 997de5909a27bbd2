"""The step sweep's engine, pure: planning, the cell loop, references, resume, cancel, measuring,
the report and the pictures. It knows nothing of ComfyUI: what it needs from a model comes in as
plain callables (Hooks). nodes/sweep_nodes.py builds them from ComfyUI objects; the unit tests
build them from a fake sampler.

A sweep runs its cells grouped by reference (one reference in memory at a time). Each finished
cell is measured (distance to its reference, PSNR/SSIM when there are images) and written to the
sweep folder at once, so a re-run with the same inputs resumes. An exception of one of
Hooks.interrupts stops the sweep (finished cells kept, a partial report written); any other
exception of a cell fails that cell only.
"""
import logging
import time
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Callable

import torch

from . import outputs
from .axes import SweepAxisError, parse_axis
from .cache import SweepCache
from .grid import thumbnail
from .pictures import PendingPictures, measure_cells
from .plan import calls_from_probe, plan_cells, resolve_equal_cost, run_order, stable_hash
from .probes import ProbeStore
from .report import build_report, to_csv, to_json
from .writer import Writer

log = logging.getLogger("sampler_lab")
CACHE_VERSION = 4       # 4: cells and references keyed on shift and boundary too; 3: a lab model's reference
                        # is its ODE solution; 2: references as .npy

# One sampling run: the latent, counted model calls, seconds in the sampler, seconds of the whole
# call, and the clock times of its first model calls (the warm-up measures a model call with them).
Sampled = namedtuple("Sampled", "latent calls sample_s call_s call_times")


@dataclass
class Hooks:
    """What the engine needs from the host (ComfyUI, or a test's fake).

    sample(params, sampler_name, steps, on_step) -> Sampled; on_step(i, x0, total) or None, to be
        called after each step (it raises to stop the sweep when the host was interrupted).
    decoder: .kind ('vae', 'lab' or 'preview'), .vae_images(latent), .metric_images(latent,
        decoded=None), .display_image(decoded), .batch_pictures(latents, max_side) (nodes/sweep_runtime.py).
    spec(name) -> the sampler's spec (.model_calls, .warmup_calls, .stochastic, .nfe(steps)) or None.
    reference(params, steps, on_step) -> Sampled: the reference by a method of its own (the lab
        models' ODE solution); None: the reference sampler through sample().
    reference_method: what that method is, in words (report, grid title, viewer).
    progress(done, total, x0): progress units (steps) done; x0 the latest prediction or None.
    interrupts: exception types that stop the whole sweep (re-raised after saving what is done).
    pnginfo: PNG text chunks for the grid and chart (ComfyUI's workflow metadata) or None."""
    sample: Callable
    decoder: object
    spec: Callable = lambda name: None
    reference: Callable = None
    reference_method: str = None
    progress: Callable = lambda done, total, x0: None
    interrupts: tuple = ()
    pnginfo: dict = None


@dataclass
class SweepPlan:
    settings: dict                  # the node's widget values (plain data)
    axes: list                      # [(axis, values)] for x, y, z
    cells: list
    shape: tuple                    # (grids, rows, cols)
    cfg_swept: bool
    reference: dict                 # sampler, steps, scheduler (+ method when not a sampler)
    fixed: dict = field(default_factory=dict)   # the base settings no axis varies


def check_handoff_axes(cells, second_model, guider_input=False):
    """A boundary axis needs the second model (the boundary switches to it), and a connected second
    model needs a boundary axis (it would silently do nothing otherwise); a GUIDER holds one model."""
    swept = any(c.params["boundary"] is not None for c in cells)
    if swept and not second_model:
        raise SweepAxisError("boundary axis: connect model_low, the model for the steps below the boundary (Wan 2.2: "
                             "the low-noise expert; SDXL: the refiner), or set the axis to none")
    if swept and guider_input:
        raise SweepAxisError("boundary axis: a connected GUIDER holds one model; disconnect it and connect model, "
                             "positive and negative (and model_low)")
    if second_model and not swept:
        raise SweepAxisError("model_low is connected but no axis is boundary: pick boundary on an axis (e.g. "
                             "\"0.875, 0.9\"; to sweep something else at one boundary, put that single boundary "
                             "on the z axis) or disconnect model_low")


def check_shift_axis(cells):
    """A connected SIGMAS is a schedule the shift cannot change, and on a flow model the shift
    changes nothing else: the axis would show one picture per value."""
    if any(c.params["shift"] is not None and c.params["scheduler"] == "input" for c in cells):
        raise SweepAxisError("shift axis: the schedule comes from the connected SIGMAS, which a shift does not "
                             "change; disconnect sigmas (or leave 'input' out of the scheduler axis) so the "
                             "schedule is computed from each shifted model")


def plan_sweep(settings, samplers, schedulers, sampler_input=False, sigmas_steps=None, spec=lambda n: None,
               reference_method=None, second_model=False, guider_input=False):
    """The cells of a sweep from its settings. samplers / schedulers: the names the host knows;
    sampler_input: a SAMPLER is connected (the sampler axis calls it 'input'); sigmas_steps: steps
    of a connected SIGMAS (None: none); second_model: a second MODEL for a boundary axis is
    connected; guider_input: a GUIDER is. Errors are SweepAxisError naming the setting to fix."""
    kw = settings
    sampler_choices = list(samplers) + (["input"] if sampler_input else [])
    scheduler_choices = list(schedulers) + (["input"] if sigmas_steps is not None else [])
    base = {"sampler": "input" if sampler_input else kw["sampler_name"],
            "scheduler": "input" if sigmas_steps is not None else kw["scheduler"],
            "steps": int(sigmas_steps) if sigmas_steps is not None else int(kw["steps"]),
            "cfg": float(kw["cfg"]), "denoise": float(kw["denoise"]), "seed": int(kw["seed"]),
            "controlnet_end": None}
    if base["sampler"] not in sampler_choices:
        raise SweepAxisError(f"sampler_name {base['sampler']!r} is not a sampler this ComfyUI knows")
    if base["scheduler"] not in scheduler_choices:
        raise SweepAxisError(f"scheduler {base['scheduler']!r} is not a scheduler this ComfyUI knows")
    pairs = []
    for which in ("x", "y", "z"):
        axis = kw[f"{which}_axis"]
        choices = sampler_choices if axis == "sampler" else scheduler_choices
        pairs.append((axis, parse_axis(axis, kw[f"{which}_values"], choices)))
    cells, shape = plan_cells(pairs, base, bool(kw["equal_cost"]), int(kw["cell_limit"]))
    check_handoff_axes(cells, second_model, guider_input)
    check_shift_axis(cells)
    ref = kw["reference_sampler"]
    if ref != "none" and ref not in samplers:
        raise SweepAxisError(f"reference_sampler {ref!r} is not a sampler this ComfyUI knows")
    if ref != "none" and reference_method is None and spec(ref) is not None and spec(ref).stochastic:
        raise SweepAxisError(f"reference_sampler {ref!r} is stochastic; pick a deterministic high-order one "
                             f"(lab_rk4, dpmpp_2m, ...)")
    ref_desc = {"sampler": ref, "steps": int(kw["reference_steps"]), "scheduler": base["scheduler"]}
    if ref != "none" and reference_method is not None:
        ref_desc["method"] = reference_method
    swept = {a for a, _ in pairs}
    fixed = {k: v for k, v in base.items() if k not in swept and v is not None}
    return SweepPlan(dict(kw), pairs, cells, shape, "cfg" in swept, ref_desc, fixed)


class SweepRun:
    """One execution of a sweep (all of its state lives here, nothing global).

    folder: the sweep's folder (resume cache and output files); context: plain facts for the
    report (model, inputs, latent_shape, fingerprint, folder relative to the output folder)."""

    def __init__(self, plan, hooks, folder, context):
        self.plan, self.hooks, self.folder, self.context = plan, hooks, folder, context
        self.kw = plan.settings
        self.cells, self.axes, self.shape = plan.cells, plan.axes, plan.shape
        self.ref_desc = plan.reference
        self.decoder = hooks.decoder
        self.decoder_kind = hooks.decoder.kind
        self.cell_size = int(self.kw["cell_size"])
        self.done_units, self.total_units = 0, 0
        self.warm = None
        self.cell_keys, self.reference_keys = {}, {}
        self.references, self.current_ref = {}, None
        self.records, self.thumbs = {}, {}
        self.timing = {"warmup_s": 0.0, "probe_s": 0.0, "reference_s": 0.0}
        self.estimate_s = None

    # one sampling run ------------------------------------------------------------------------
    def _on_step(self, steps):
        def on_step(i, x0, total):
            self.hooks.progress(min(self.total_units, self.done_units + min(i + 1, steps)), self.total_units, x0)
        return on_step

    def sample(self, params, sampler_name, steps, progress=True):
        self._ensure_warm(params)
        return self.hooks.sample(params, sampler_name, steps, self._on_step(steps) if progress else None)

    def _ensure_warm(self, params):
        """One short run before anything is timed: loads the model, fills caches, measures a model call."""
        if self.warm is not None:
            return
        self.warm = {}
        t0 = time.perf_counter()
        got = self.hooks.sample(dict(params, sampler="euler", steps=2), "euler", 2, None)
        self.timing["warmup_s"] = time.perf_counter() - t0
        times = got.call_times
        self.warm["per_call_s"] = (times[1] - times[0]) if len(times) >= 2 else \
            self.timing["warmup_s"] / max(1, got.calls)

    # equal cost ------------------------------------------------------------------------------
    def resolve_equal_cost(self):
        if not self.kw["equal_cost"]:
            return
        probes = ProbeStore(self.cache)

        def calls_for(cell):
            name, sched = cell.params["sampler"], cell.params["scheduler"]
            spec = self.hooks.spec(name)
            if spec is not None:
                return spec.model_calls, spec.warmup_calls, "spec"
            key = f"{name}|{sched}|{cell.params['denoise']}"
            if cell.params["boundary"] is not None:     # a hand-off runs the sampler twice: its own extra calls
                key += f"|{cell.params['boundary']}"
            if key not in probes:
                t0 = time.perf_counter()
                counted = [self.sample(dict(cell.params, steps=n), name, n, progress=False).calls for n in (2, 3)]
                self.timing["probe_s"] += time.perf_counter() - t0
                probes[key] = list(calls_from_probe(2, counted[0], 3, counted[1]))
            per_step, extra = probes[key]
            return per_step, extra, "probe"
        resolve_equal_cost(self.cells, calls_for)

    # references ------------------------------------------------------------------------------
    def reference_key(self, cell):
        """The file key of the cell's reference run; hashed once per distinct reference."""
        params = cell.reference_key()
        key = self.reference_keys.get(params)
        if key is None:
            key = self.reference_keys[params] = stable_hash({"ref": self.ref_desc, "params": list(params),
                                                             "decoder": self.decoder_kind, "v": CACHE_VERSION})
        return key

    def _run_reference(self, p):
        if self.hooks.reference is not None:
            self._ensure_warm(p)
            return self.hooks.reference(p, p["steps"], self._on_step(p["steps"]))
        return self.sample(p, p["sampler"], p["steps"])

    def reference(self, cell):
        """[latent, uint8 images or None, info] for the cell's reference, loading or computing it."""
        if self.ref_desc["sampler"] == "none":
            return None
        key = self.reference_key(cell)
        if self.current_ref is not None and self.current_ref[0] == key:
            return self.current_ref[1]
        self.pictures.flush()            # cells waiting on the previous reference are measured, then
        self.current_ref = None          # it is freed before the next one exists (bounded memory)
        got = self.cache.load_reference(key)
        got = list(got) if got is not None else None
        if got is None:
            p = dict(cell.params, sampler=self.ref_desc["sampler"], steps=self.ref_desc["steps"])
            t0 = time.perf_counter()
            try:
                ran = self._run_reference(p)
            except self.hooks.interrupts:
                raise
            except Exception as e:  # a failed reference leaves its cells without distances, nothing more
                log.warning("[Sampler Lab] step sweep: reference %s failed: %s", p, e)
                got = (None, None, {"error": f"{type(e).__name__}: {e}"[:400]})
                self.done_units += self.ref_desc["steps"]
                self.current_ref = (key, got)
                return got
            self.done_units += self.ref_desc["steps"]
            self.timing["reference_s"] += time.perf_counter() - t0
            info = {"params": p, "nfe": ran.calls, "sample_s": ran.sample_s}
            if "method" in self.ref_desc:     # not the reference sampler: a method of its own
                info.update(params=dict(p, sampler=None), method=self.ref_desc["method"])
            got = [ran.latent, None, info]
            if self.decoder_kind == "vae":    # decoded by the writer before any cell uses it (same thread)
                self.post(self._finish_reference, key, got)
            else:                             # its images are made with the first batch of cells
                self.post(self.cache.save_reference, key, ran.latent, None, info, light=True)
        self.references[key] = got[2]
        self.current_ref = (key, got)
        return got

    def _finish_reference(self, key, got):
        """Writer thread: the reference's images for PSNR/SSIM, then its files (resume)."""
        try:
            got[1] = self.decoder.metric_images(got[0])
            self.cache.save_reference(key, got[0], got[1], got[2])
        except Exception as e:  # a full disk or a broken decode costs the image metrics, not the sweep
            log.warning("[Sampler Lab] step sweep: saving the reference failed: %s", e)
        return None

    # cells -------------------------------------------------------------------------------------
    def cell_key(self, cell):
        """The cell's file key (its settings, budget, reference and decoder); hashed once per cell."""
        key = self.cell_keys.get(cell.index)
        if key is None:
            key = self.cell_keys[cell.index] = stable_hash({"params": cell.params, "budget": cell.nfe_budget,
                                                            "ref": self.ref_desc, "decoder": self.decoder_kind,
                                                            "v": CACHE_VERSION})
        return key

    def base_record(self, cell):
        return {"index": cell.index, "grid": cell.grid, "row": cell.row, "col": cell.col, "labels": dict(cell.labels),
                "params": dict(cell.params), "nfe_budget": cell.nfe_budget, "planned_calls": cell.planned_calls,
                "calls_source": cell.calls_source, "key": self.cell_key(cell)}

    def run_cell(self, cell):
        """Sample one cell here. With a VAE it is decoded here too, and its metrics and files go to
        the writer thread (overlapping the next cell's sampling: the main thread mostly waits on the
        GPU then); otherwise it joins the batch measured by PendingPictures."""
        rec = self.base_record(cell)
        ref = self.reference(cell)
        p = cell.params
        try:
            ran = self.sample(p, p["sampler"], p["steps"])
            images = self.decoder.vae_images(ran.latent) if self.decoder_kind == "vae" else None
        except self.hooks.interrupts:
            raise
        except Exception as e:  # one bad cell (OOM, a sampler error) must not end the sweep
            log.warning("[Sampler Lab] step sweep: cell %d (%s) failed: %s", cell.index, cell.labels, e)
            rec.update(status="failed", error=f"{type(e).__name__}: {e}"[:400], source="run")
            return self.post(self._save_failed, rec)
        finally:
            self.done_units += p["steps"]
        rec.update(status="ok", error=None, source="run", nfe=ran.calls, sample_s=ran.sample_s, call_s=ran.call_s,
                   image=None)
        if self.decoder_kind == "vae":
            rec["image"] = self.cache.cell_image_name(rec["key"]).replace("\\", "/")
            self.post(self._finish_cell, rec, ran.latent, images, ref)
        else:
            self.pictures.add(rec, ran.latent, ref)

    def post(self, fn, *args, light=False):
        return self.writer.post(fn, *args, light=light)

    def apply(self, results):
        """[(record, thumbnail or None)] of measured cells into the sweep's tables."""
        for rec, thumb in results:
            self.records[rec["index"]], self.thumbs[rec["index"]] = rec, thumb

    def _save_failed(self, rec):
        self.cache.save_cell(rec["key"], rec)
        return [(rec, None)]

    def _finish_cell(self, rec, latent, images, ref):
        """Writer thread, VAE-decoded cells: distances, PSNR/SSIM, the cell's files, its thumbnail."""
        try:
            measure_cells([rec], latent[None], torch.from_numpy(images)[None], ref, self.decoder)
            first = self.decoder.display_image(images)
            self.cache.save_cell(rec["key"], rec, first)
            return [(rec, thumbnail(first, self.cell_size))]
        except Exception as e:  # a broken decode or a full disk fails this cell, not the sweep
            log.warning("[Sampler Lab] step sweep: cell %d post-processing failed: %s", rec["index"], e)
            rec.update(status="failed", error=f"{type(e).__name__}: {e}"[:400])
            return [(rec, None)]

    # the whole sweep ---------------------------------------------------------------------------
    def execute(self, t_start=None):
        """Run every cell not in the folder yet; returns outputs.SweepOutputs."""
        t_start = time.perf_counter() if t_start is None else t_start
        self.cache = SweepCache(self.folder)
        self.resolve_equal_cost()
        self.writer = Writer(self.apply)
        self.pictures = PendingPictures(self)
        try:
            pending = self.resume(self.cells)
            self.estimate(pending)
            for cell in run_order(pending):
                self.run_cell(cell)
            cell_files = self.pictures.flush(write=False)
            self.writer.drain(files_too=False)
            if not any(r["status"] == "ok" for r in self.records.values()):
                cell_files()
                self.writer.drain()
                first = next(iter(self.records.values()))
                self.write_report("failed", time.perf_counter() - t_start)
                raise RuntimeError(f"every cell of the step sweep failed; first error: {first.get('error')}")
            return self.finish(t_start, cell_files)
        except self.hooks.interrupts:
            self.pictures.flush()           # finished cells are kept (measured here, written by the writer)
            self.writer.drain()
            self.write_report("interrupted", time.perf_counter() - t_start)
            log.info("[Sampler Lab] step sweep interrupted: %d of %d cells kept in %s", len(self.records),
                     len(self.cells), self.folder)
            raise
        finally:
            self.writer.close()
            self.current_ref = None

    def resume(self, cells):
        """Take the finished cells from the sweep folder; returns the cells left to run."""
        left, from_batches = [], []
        for cell in cells:
            got = self.cache.load_cell(self.cell_key(cell))
            if got is None:
                left.append(cell)
                continue
            rec = dict(got[0], **self.base_record(cell), source="cache")
            if got[1] is not None:
                self.records[cell.index] = rec
                self.thumbs[cell.index] = thumbnail(got[1], self.cell_size)
            else:
                from_batches.append((rec, got[2]))
        self.pictures.show(from_batches)
        return left

    def estimate(self, pending):
        self.total_units = sum(c.params["steps"] for c in pending)
        refs = {c.reference_key() for c in pending} if self.ref_desc["sampler"] != "none" else set()
        self.total_units += len(refs) * self.ref_desc["steps"]
        self.hooks.progress(0, max(1, self.total_units), None)
        if not pending:
            self.estimate_s = 0.0
            return
        self._ensure_warm(pending[0].params)

        def calls(name, steps):
            spec = self.hooks.spec(name)
            return spec.nfe(steps) if spec is not None else steps
        total_calls = sum(c.planned_calls or calls(c.params["sampler"], c.params["steps"]) for c in pending)
        ref_calls = 4 * self.ref_desc["steps"] if "method" in self.ref_desc else \
            calls(self.ref_desc["sampler"], self.ref_desc["steps"])
        total_calls += len(refs) * ref_calls
        self.estimate_s = total_calls * self.warm["per_call_s"]
        log.info("[Sampler Lab] step sweep: %d cells (%d resumed from %s), about %d model calls, estimated %.1f s "
                 "(%.1f ms per model call, warm-up %.2f s)", len(self.cells), len(self.cells) - len(pending),
                 self.folder, total_calls, self.estimate_s, 1000 * self.warm["per_call_s"], self.timing["warmup_s"])

    # outputs -----------------------------------------------------------------------------------
    def report(self, status, total_s):
        return build_report(self, status, total_s)

    def write_report(self, status, total_s):
        rep = self.report(status, total_s)
        rep["files"] = {"report_json": "report.json", "report_csv": "report.csv"}
        text = to_json(rep)
        self.cache.write_text("report.json", text)
        self.cache.write_text("report.csv", to_csv(rep["cells"]))
        return rep, text

    def finish(self, t_start, cell_files):
        """The grids, the chart, their files and the report. The PNGs compress on the writer thread
        (Pillow's encoder releases the GIL) while this one draws the chart, writes the last cells'
        files, builds the report and converts the IMAGE outputs. Every file is on disk before the report (whose total_s covers
        them) is written and the sweep returns."""
        grid_arrays, singles, grid_meta = outputs.grids(self)
        names = ["grid.png"] if len(grid_arrays) == 1 else [f"grid_{g + 1}.png" for g in range(len(grid_arrays))]
        pool = self.writer
        writes = [self.cache.write_image(n, arr, self.hooks.pnginfo, pool) for n, arr in zip(names, grid_arrays)]
        chart_arr = outputs.chart(self)
        writes.append(self.cache.write_image("chart.png", chart_arr, self.hooks.pnginfo, pool))
        cell_files()
        rep = self.report("complete", 0.0)
        rep["files"] = {"grids": names, "chart": "chart.png", "report_json": "report.json", "report_csv": "report.csv"}
        rep["grid"] = grid_meta
        tensors = (outputs.images_tensor(grid_arrays), outputs.images_tensor(singles),
                   outputs.images_tensor([chart_arr]))      # the IMAGE outputs, while the PNGs compress
        for done in writes:
            done()
        self.writer.drain()              # whatever else the writer still has (files of earlier batches)
        rep["timing"]["total_s"] = time.perf_counter() - t_start
        rep["timing"]["writer_s"] = self.writer.busy_s
        text = to_json(rep)
        self.cache.write_text("report.json", text)
        self.cache.write_text("report.csv", to_csv(rep["cells"]))
        log.info("[Sampler Lab] step sweep done: %s (recommended: %s)", self.folder,
                 outputs.answer_text(rep["recommendation"]))
        return outputs.SweepOutputs(grid_arrays, singles, chart_arr, rep, text, names, tensors)
