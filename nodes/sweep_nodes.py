"""The step sweep node: "how many steps, which sampler, which schedule, for my model?"

Runs a grid of cells (up to three axes) through ComfyUI's own guider and samplers on the
user's MODEL / CONDITIONING / LATENT (or a connected SAMPLER, SIGMAS, GUIDER), one cell at a
time, and measures each: counted model calls, sampling time, distance to a high-accuracy
reference. Finished cells are written to a per-sweep folder at once; a re-run resumes.
The pure parts (axes, planning, metrics, drawing, report, cache) live in sweep/.
"""
import json
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

import comfy.k_diffusion.sampling as k_sampling
import comfy.model_management
import comfy.samplers
import comfy.utils
import folder_paths
import latent_preview
from comfy.cli_args import args as comfy_args

from ..bridge import MARK
from ..sweep import axes as sweep_axes
from ..sweep.axes import SweepAxisError, parse_axis
from ..sweep.cache import SweepCache
from ..sweep.chart import draw_chart
from ..sweep.grid import GridLayout, draw_grid, thumbnail
from ..sweep.plan import calls_from_probe, plan_cells, resolve_equal_cost, run_order, stable_hash
from ..sweep.report import best_recommendation, recommendations, to_csv, to_json
from . import sweep_runtime as rt
from .sweep_pictures import PendingPictures, measure_cells

log = logging.getLogger("sampler_lab")
CATEGORY = "sampling/Sampler Lab"
MAX_QUEUED = 64
CACHE_VERSION = 2       # 2: references as .npy; cells in batches or PNGs with their record


def pack_spec(name):
    """The pack SamplerSpec behind a live sampler name (None for core / other packs' samplers)."""
    return getattr(getattr(k_sampling, "sample_" + str(name), None), MARK, None)


def _fmt(v, spec):
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


class SweepRun:
    """One execution of the node (all state of a sweep lives here, nothing global)."""

    def __init__(self, kw):
        self.kw = kw
        self.model = kw["guider"].model_patcher if kw.get("guider") is not None else kw["model"]
        self.meter = rt.RunMeter()
        self.noise_cache = (None, None)
        self.done_units, self.total_units = 0, 0
        self.last_preview = 0.0
        self.warm = None
        self.cell_keys, self.reference_keys = {}, {}
        self.timing = {"warmup_s": 0.0, "probe_s": 0.0, "reference_s": 0.0}

    # planning ----------------------------------------------------------------------------
    def plan(self):
        kw = self.kw
        self.sampler_choices = list(comfy.samplers.KSampler.SAMPLERS) + (["input"] if kw.get("sampler") is not None else [])
        self.scheduler_choices = list(comfy.samplers.KSampler.SCHEDULERS) + (["input"] if kw.get("sigmas") is not None else [])
        base = {"sampler": "input" if kw.get("sampler") is not None else kw["sampler_name"],
                "scheduler": "input" if kw.get("sigmas") is not None else kw["scheduler"],
                "steps": int(kw["sigmas"].shape[-1] - 1) if kw.get("sigmas") is not None else int(kw["steps"]),
                "cfg": float(kw["cfg"]), "denoise": float(kw["denoise"]), "seed": int(kw["seed"]),
                "controlnet_end": None}
        if base["sampler"] not in self.sampler_choices:
            raise SweepAxisError(f"sampler_name {base['sampler']!r} is not a sampler this ComfyUI knows")
        if base["scheduler"] not in self.scheduler_choices:
            raise SweepAxisError(f"scheduler {base['scheduler']!r} is not a scheduler this ComfyUI knows")
        pairs = []
        for which in ("x", "y", "z"):
            axis = kw[f"{which}_axis"]
            choices = self.sampler_choices if axis == "sampler" else self.scheduler_choices
            pairs.append((axis, parse_axis(axis, kw[f"{which}_values"], choices)))
        self.axes = pairs
        self.cells, self.shape = plan_cells(pairs, base, bool(kw["equal_cost"]), int(kw["cell_limit"]))
        self.cfg_swept = any(a == "cfg" for a, _ in pairs)
        ref = kw["reference_sampler"]
        if ref != "none" and ref not in comfy.samplers.KSampler.SAMPLERS:
            raise SweepAxisError(f"reference_sampler {ref!r} is not a sampler this ComfyUI knows")
        if ref != "none" and pack_spec(ref) is not None and pack_spec(ref).stochastic:
            raise SweepAxisError(f"reference_sampler {ref!r} is stochastic; pick a deterministic high-order one "
                                 f"(lab_rk4, dpmpp_2m, ...)")
        self.ref_desc = {"sampler": ref, "steps": int(kw["reference_steps"]), "scheduler": base["scheduler"]}
        self.factory = rt.GuiderFactory(kw["model"], kw.get("positive"), kw.get("negative"), kw.get("guider"), self.meter)
        for key in {(c.params["cfg"], c.params["controlnet_end"]) for c in self.cells}:
            self.factory.get(key[0], key[1], self.cfg_swept)        # bad cfg / ControlNet axes fail here, early
        self.decoder = rt.Decoder(self.model, self.kw.get("vae"))
        self.decoder_kind = self.decoder.kind

    def open_folder(self):
        kw = self.kw
        out_dir = os.path.abspath(folder_paths.get_output_directory())
        prefix = (kw["filename_prefix"] or "sampler_lab/sweep").strip().replace("\\", "/")
        fp = rt.fingerprint(self.model, kw.get("positive"), kw.get("negative"), kw["latent_image"], kw.get("vae"),
                            kw.get("sampler"), kw.get("sigmas"), kw.get("guider"), kw.get("prompt"), kw.get("unique_id"))
        folder = os.path.abspath(os.path.join(out_dir, f"{prefix}_{fp}"))
        if os.path.commonpath([out_dir, folder]) != out_dir or os.path.isabs(prefix):
            raise SweepAxisError(f"filename_prefix {prefix!r} points outside ComfyUI's output folder; use a relative "
                                 f"name like sampler_lab/sweep")
        self.out_dir, self.folder, self.fingerprint = out_dir, folder, fp
        self.cache = SweepCache(folder)

    # one sampling run ----------------------------------------------------------------------
    def _noise(self, seed):
        if self.noise_cache[0] != seed:
            self.noise_cache = (seed, rt.prepare_latent(self.model, self.kw["latent_image"], seed))
        return self.noise_cache[1]

    def _callback(self, steps, progress):
        hook_on = comfy.utils.PROGRESS_BAR_HOOK is not None

        def callback(i, x0, x, total):
            comfy.model_management.throw_exception_if_processing_interrupted()
            if not progress:
                return
            preview = None
            now = time.perf_counter()
            if hook_on and self.previewer is not None and (now - self.last_preview > 0.25 or i + 1 >= total):
                self.last_preview = now
                preview = self.previewer.decode_latent_to_preview_image("JPEG", x0)
            self.pbar.update_absolute(min(self.total_units, self.done_units + min(i + 1, steps)), self.total_units, preview)
        return callback

    def sample(self, params, sampler_name, steps, progress=True):
        """(latent, counted calls, sampling seconds, whole-call seconds)."""
        self._ensure_warm(params)
        return self._sample(params, sampler_name, steps, progress)

    def _sample(self, params, sampler_name, steps, progress):
        kw = self.kw
        guider = self.factory.get(params["cfg"], params["controlnet_end"], self.cfg_swept)
        sigmas = rt.cell_sigmas(self.model, sampler_name, params["scheduler"], steps, params["denoise"], kw.get("sigmas"))
        image, noise, mask = self._noise(params["seed"])
        sampler = rt.sampler_object(sampler_name, kw.get("sampler"))
        self.meter.reset()
        t0 = time.perf_counter()
        out = guider.sample(noise, image, sampler, sigmas, denoise_mask=mask,
                            callback=self._callback(steps, progress), disable_pbar=True, seed=params["seed"])
        call_s = time.perf_counter() - t0
        return out.to(comfy.model_management.intermediate_device()), self.meter.calls, self.meter.sample_s, call_s

    def _ensure_warm(self, params):
        """One short run before anything is timed: loads the model, fills caches, measures a model call."""
        if self.warm is not None:
            return
        self.warm = {}
        t0 = time.perf_counter()
        warm_params = dict(params, sampler="euler", steps=2)
        self._sample(warm_params, "euler", 2, progress=False)
        times = self.meter.call_times
        self.timing["warmup_s"] = time.perf_counter() - t0
        self.warm["per_call_s"] = (times[1] - times[0]) if len(times) >= 2 else self.timing["warmup_s"] / max(1, self.meter.calls)

    # equal cost -----------------------------------------------------------------------------
    def resolve_equal_cost(self):
        if not self.kw["equal_cost"]:
            return
        probes_path = os.path.join(self.folder, "probes.json")
        probes = {}
        if os.path.isfile(probes_path):
            try:
                with open(probes_path, encoding="utf-8") as f:
                    probes = json.load(f)
            except (OSError, ValueError):
                probes = {}

        def calls_for(cell):
            name, sched = cell.params["sampler"], cell.params["scheduler"]
            spec = pack_spec(name)
            if spec is not None:
                return spec.model_calls, spec.warmup_calls, "spec"
            key = f"{name}|{sched}|{cell.params['denoise']}"
            if key not in probes:
                t0 = time.perf_counter()
                counted = []
                for n in (2, 3):
                    p = dict(cell.params, steps=n)
                    counted.append(self.sample(p, name, n, progress=False)[1])
                self.timing["probe_s"] += time.perf_counter() - t0
                probes[key] = list(calls_from_probe(2, counted[0], 3, counted[1]))
                self.cache.write_text("probes.json", json.dumps(probes, indent=1))
            per_step, extra = probes[key]
            return per_step, extra, "probe"
        resolve_equal_cost(self.cells, calls_for)

    # references -----------------------------------------------------------------------------
    def reference_key(self, cell):
        """The file key of the cell's reference run; hashed once per distinct reference."""
        params = cell.reference_key()
        key = self.reference_keys.get(params)
        if key is None:
            key = self.reference_keys[params] = stable_hash({"ref": self.ref_desc, "params": list(params),
                                                   "decoder": self.decoder_kind, "v": CACHE_VERSION})
        return key

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
                latent, calls, sample_s, _ = self.sample(p, p["sampler"], p["steps"])
            except comfy.model_management.InterruptProcessingException:
                raise
            except Exception as e:  # a failed reference leaves its cells without distances, nothing more
                log.warning("[Sampler Lab] step sweep: reference %s failed: %s", p, e)
                got = (None, None, {"error": f"{type(e).__name__}: {e}"[:400]})
                self.done_units += self.ref_desc["steps"]
                self.current_ref = (key, got)
                return got
            self.done_units += self.ref_desc["steps"]
            self.timing["reference_s"] += time.perf_counter() - t0
            info = {"params": p, "nfe": calls, "sample_s": sample_s}
            got = [latent, None, info]
            if self.decoder_kind == "vae":    # decoded by the writer before any cell uses it (same thread)
                self.post(self._finish_reference, key, got)
            else:                             # its images are made with the first batch of cells
                self.post(self.cache.save_reference, key, latent, None, info, light=True)
        self.references[key] = got[2]
        self.current_ref = (key, got)
        return got

    # cells ------------------------------------------------------------------------------------
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
            latent, calls, sample_s, call_s = self.sample(p, p["sampler"], p["steps"])
            images = self.decoder.vae_images(latent) if self.decoder_kind == "vae" else None   # on ComfyUI's device
        except comfy.model_management.InterruptProcessingException:
            raise
        except Exception as e:  # one bad cell (OOM, a sampler error) must not end the sweep
            if isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower():
                comfy.model_management.soft_empty_cache()
            log.warning("[Sampler Lab] step sweep: cell %d (%s) failed: %s", cell.index, cell.labels, e)
            rec.update(status="failed", error=f"{type(e).__name__}: {e}"[:400], source="run")
            return self.post(self._save_failed, rec)
        finally:
            self.done_units += p["steps"]
        rec.update(status="ok", error=None, source="run", nfe=calls, sample_s=sample_s, call_s=call_s, image=None)
        if self.decoder_kind == "vae":
            rec["image"] = self.cache.cell_image_name(rec["key"]).replace(os.sep, "/")
            self.post(self._finish_cell, rec, latent, images, ref)
        else:
            self.pictures.add(rec, latent, ref)

    def post(self, fn, *args, light=False):
        """Queue work on the writer thread (one thread, so jobs run in order: a reference is decoded
        and saved before the cells that use it). At most two jobs holding decoded images wait
        (bounded memory) or with results to collect; light ones (files of measured cells: no result,
        and their memory the pending batch bounds) may queue up to MAX_QUEUED, so the sampling thread
        does not wait on the disk."""
        while self.inflight and (len(self.inflight) >= MAX_QUEUED or (not light and sum(
                not f.light for f in self.inflight) >= 2)):
            self.collect(self.inflight.pop(0))
        fut = self.worker.submit(fn, *args)
        fut.light = light
        self.inflight.append(fut)
        return fut

    def collect(self, fut):
        got = fut.result()
        if got is not None:
            self.apply(got)

    def apply(self, results):
        """[(record, thumbnail or None)] of measured cells into the sweep's tables."""
        for rec, thumb in results:
            self.records[rec["index"]], self.thumbs[rec["index"]] = rec, thumb

    def _finish_reference(self, key, got):
        """Writer thread: the reference's images for PSNR/SSIM, then its files (resume)."""
        try:
            got[1] = self.decoder.metric_images(got[0])
            self.cache.save_reference(key, got[0], got[1], got[2])
        except Exception as e:  # a full disk or a broken decode costs the image metrics, not the sweep
            log.warning("[Sampler Lab] step sweep: saving the reference failed: %s", e)
        return None

    def drain(self, files_too=True):
        """Wait for the writer's jobs; files_too=False leaves the trailing light ones (files only)
        running, to be drained later (the sweep's end draws and compresses meanwhile)."""
        last = len(self.inflight) if files_too else max(
            [i + 1 for i, f in enumerate(self.inflight) if not f.light] or [0])
        for _ in range(last):
            self.collect(self.inflight.pop(0))

    def _save_failed(self, rec):
        self.cache.save_cell(rec["key"], rec)
        return [(rec, None)]

    def _finish_cell(self, rec, latent, images, ref):
        """Writer thread, VAE-decoded cells: distances, PSNR/SSIM, the cell's files, its thumbnail."""
        try:
            measure_cells([rec], latent[None], torch.from_numpy(images)[None], ref, self.decoder)
            first = self.decoder.display_image(images)
            self.cache.save_cell(rec["key"], rec, first)
            return [(rec, thumbnail(first, int(self.kw["cell_size"])))]
        except Exception as e:  # a broken decode or a full disk fails this cell, not the sweep
            log.warning("[Sampler Lab] step sweep: cell %d post-processing failed: %s", rec["index"], e)
            rec.update(status="failed", error=f"{type(e).__name__}: {e}"[:400])
            return [(rec, None)]

    # the whole sweep --------------------------------------------------------------------------
    def execute(self):
        t_start = time.perf_counter()
        self.plan()
        self.open_folder()
        self.references, self.current_ref = {}, None
        self.previewer = latent_preview.get_previewer(self.model.load_device, self.model.model.latent_format)
        self.pbar = comfy.utils.ProgressBar(1)
        self.resolve_equal_cost()
        self.records, self.thumbs = {}, {}
        records, thumbs = self.records, self.thumbs
        self.inflight = []
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sampler_lab_sweep")
        self.pictures = PendingPictures(self)
        try:
            pending = self.resume(self.cells)
            self.estimate(pending)
            for cell in run_order(pending):
                self.run_cell(cell)
            cell_files = self.pictures.flush(write=False)
            self.drain(files_too=False)
            if not any(r["status"] == "ok" for r in records.values()):
                cell_files()
                self.drain()
                first = next(iter(records.values()))
                self.write_report(records, "failed", time.perf_counter() - t_start)
                raise RuntimeError(f"every cell of the step sweep failed; first error: {first.get('error')}")
            return self.finish(records, thumbs, t_start, cell_files)
        except comfy.model_management.InterruptProcessingException:
            self.pictures.flush()           # finished cells are kept (measured here, written by the worker)
            self.drain()
            self.write_report(records, "interrupted", time.perf_counter() - t_start)
            log.info("[Sampler Lab] step sweep interrupted: %d of %d cells kept in %s", len(records), len(self.cells), self.folder)
            raise
        finally:
            self.worker.shutdown(wait=True)
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
                self.thumbs[cell.index] = thumbnail(got[1], int(self.kw["cell_size"]))
            else:
                from_batches.append((rec, got[2]))
        self.pictures.show(from_batches)
        return left

    def estimate(self, pending):
        self.total_units = sum(c.params["steps"] for c in pending)
        refs = {c.reference_key() for c in pending} if self.ref_desc["sampler"] != "none" else set()
        self.total_units += len(refs) * self.ref_desc["steps"]
        self.pbar = comfy.utils.ProgressBar(max(1, self.total_units))
        if not pending:
            self.estimate_s = 0.0
            return
        self._ensure_warm(pending[0].params)

        def calls(name, steps):
            spec = pack_spec(name)
            return spec.nfe(steps) if spec is not None else steps
        total_calls = sum(c.planned_calls or calls(c.params["sampler"], c.params["steps"]) for c in pending)
        total_calls += len(refs) * calls(self.ref_desc["sampler"], self.ref_desc["steps"])
        self.estimate_s = total_calls * self.warm["per_call_s"]
        log.info("[Sampler Lab] step sweep: %d cells (%d resumed from %s), about %d model calls, estimated %.1f s "
                 "(%.1f ms per model call, warm-up %.2f s)", len(self.cells), len(self.cells) - len(pending),
                 self.folder, total_calls, self.estimate_s, 1000 * self.warm["per_call_s"], self.timing["warmup_s"])

    # outputs -------------------------------------------------------------------------------------
    def pnginfo(self):
        """PNG text chunks with the workflow, as ComfyUI's SaveImage writes them (None when disabled)."""
        if comfy_args.disable_metadata:
            return None
        meta = {}
        if self.kw.get("prompt") is not None:
            meta["prompt"] = json.dumps(self.kw["prompt"])
        for k, v in (self.kw.get("extra_pnginfo") or {}).items():
            meta[k] = json.dumps(v)
        return meta

    def report(self, records, status, total_s):
        kw = self.kw
        ordered = [records[i] for i in sorted(records)]
        recs = recommendations(ordered, float(kw["tolerance"])) if self.ref_desc["sampler"] != "none" else []
        best = best_recommendation(recs)
        ran = [r for r in ordered if r.get("source") == "run" and r["status"] == "ok"]
        return {
            "version": 1, "tool": "Sampler Lab step sweep", "status": status, "folder": self.folder,
            "fingerprint": self.fingerprint,
            "settings": {k: kw[k] for k in ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise", "x_axis",
                                             "x_values", "y_axis", "y_values", "z_axis", "z_values", "equal_cost",
                                             "reference_sampler", "reference_steps", "tolerance", "cell_limit",
                                             "cell_size", "filename_prefix")},
            "inputs": {k: kw.get(k) is not None for k in ("positive", "negative", "vae", "sampler", "sigmas", "guider")},
            "model": type(self.model.model).__name__, "decoder": self.decoder_kind,
            "latent_shape": list(kw["latent_image"]["samples"].shape),
            "axes": [{"axis": a, "values": v} for a, v in self.axes], "shape": list(self.shape),
            "reference": dict(self.ref_desc, runs=list(self.references.values())),
            "tolerance_metric": "rel_rmse",
            "timing": dict(self.timing, estimate_s=getattr(self, "estimate_s", None), total_s=total_s,
                           cells_sample_s=sum(r["sample_s"] for r in ran), cells_call_s=sum(r["call_s"] for r in ran)),
            "counts": {"cells": len(self.cells), "done": len(ordered), "ok": sum(r["status"] == "ok" for r in ordered),
                       "failed": sum(r["status"] == "failed" for r in ordered),
                       "resumed": sum(r.get("source") == "cache" for r in ordered)},
            "recommended": recs, "recommended_best": best,
            "recommended_steps": self.recommended_steps(recs, best),
            "cells": ordered,
        }

    def recommended_steps(self, recs, best):
        if best is not None:
            return int(best["steps"])
        swept = [s for r in recs for s in r["swept_steps"]]
        return int(max(swept)) if swept else int(self.cells[0].params["steps"])

    def write_report(self, records, status, total_s):
        rep = self.report(records, status, total_s)
        rep["files"] = {"report_json": "report.json", "report_csv": "report.csv"}
        text = to_json(rep)
        self.cache.write_text("report.json", text)
        self.cache.write_text("report.csv", to_csv(rep["cells"]))
        return rep, text

    @staticmethod
    def caption(r):
        """The text under a cell: steps, counted calls, sampling time; distances when measured."""
        if r["status"] != "ok":
            return "failed"
        line1 = f"{r['params']['steps']} steps | {r['nfe']} calls | {r['sample_s']:.2f} s"
        lines = [line1]
        if r.get("rel_rmse") is not None:
            lines.append(f"d {_fmt(r['rel_rmse'], '.1e')}")
            if r.get("ssim") is not None:
                # PSNR and SSIM are computed together; an infinite PSNR (identical images) reads back
                # from report.json as null
                psnr = r.get("psnr")
                exact = psnr is None or psnr == float("inf")
                lines[-1] += " | " + ("inf dB" if exact else f"{_fmt(psnr, '.1f')} dB")
                lines.append(f"ssim {_fmt(r['ssim'], '.3f')}")
        return "\n".join(lines)

    def grids(self, records, thumbs):
        g_n, rows, cols = self.shape
        ref = next((t for t in thumbs.values() if t is not None), None)
        ch, cw = (ref.shape[0], ref.shape[1]) if ref is not None else (128, 128)
        by_pos = {(c.grid, c.row, c.col): c for c in self.cells}
        (xa, _), (ya, _), (za, _) = self.axes
        col_labels = [by_pos[(0, 0, c)].labels.get(xa, "") for c in range(cols)]
        row_labels = [by_pos[(0, r, 0)].labels.get(ya, "") for r in range(rows)]
        captions = {c.index: self.caption(records[c.index]) for c in self.cells}
        layout = GridLayout(cw, ch, rows, cols, col_labels, row_labels, list(captions.values()))
        kw = self.kw
        base = (f"seed {kw['seed']}, cfg {kw['cfg']:g}, {kw['sampler_name']}, {kw['scheduler']}, "
                f"{kw['steps']} steps, denoise {kw['denoise']:g}")
        names = {a: f"{a} ({w})" for (a, _), w in zip(self.axes, ("columns", "rows", "grids")) if a != "none"}
        ref_txt = ("no reference" if self.ref_desc["sampler"] == "none" else
                   f"d = distance to {self.ref_desc['sampler']} x {self.ref_desc['steps']} steps")
        images, blank = [], np.full((ch, cw, 3), 205, dtype=np.uint8)
        self.grid_meta = {"columns": col_labels, "rows": row_labels, "titles": [],
                          "size": [layout.width, layout.height], "font_px": layout.fs,
                          "cell_boxes": [list(layout.cell_box(c.row, c.col)) for c in self.cells]}
        for g in range(g_n):
            cells = [[None] * cols for _ in range(rows)]
            caps = [[""] * cols for _ in range(rows)]
            fails = [[None] * cols for _ in range(rows)]
            for r in range(rows):
                for c in range(cols):
                    cell = by_pos[(g, r, c)]
                    rec = records[cell.index]
                    cells[r][c] = thumbs.get(cell.index)
                    caps[r][c] = captions[cell.index]
                    fails[r][c] = None if rec["status"] == "ok" else (rec.get("error") or "failed")
            zlab = by_pos[(g, 0, 0)].labels.get(za, "")
            title = (f"Step sweep{': ' + zlab if zlab else ''} - " + " x ".join(names.values()) +
                     f"\nbase: {base}\n{ref_txt}" + ("; equal model calls (NFE) per column" if kw["equal_cost"] else ""))
            images.append(draw_grid(layout, title, cells, caps, fails))
            self.grid_meta["titles"].append(title)
        singles = [thumbs.get(c.index) if thumbs.get(c.index) is not None else blank for c in self.cells]
        return images, singles

    def chart(self, records):
        (xa, _), (ya, _), (za, _) = self.axes
        series = {}
        for c in self.cells:
            r = records[c.index]
            if r["status"] != "ok":
                continue
            name = " / ".join(c.labels[a] for a in (ya, za, xa) if a not in ("none", "steps") and a in c.labels) or "sweep"
            x = r["nfe"] if self.kw["equal_cost"] else c.params["steps"]
            series.setdefault(name, []).append({"x": x, "error": r.get("rel_rmse"), "time": r.get("sample_s")})
        x_label = "model calls (NFE, counted)" if self.kw["equal_cost"] else "steps"
        tol = float(self.kw["tolerance"]) if self.ref_desc["sampler"] != "none" else None
        return draw_chart([{"name": k, "points": v} for k, v in series.items()], x_label, tol,
                          title=f"Step sweep: distance to the reference and sampling time vs {x_label}")

    def finish(self, records, thumbs, t_start, cell_files):
        """The grids, the chart, their files, the IMAGE outputs and the report. Every PNG compresses
        on the writer thread (numpy's filter and deflate release the GIL, so it has the other core)
        while this one draws the chart, writes the last cells' files, converts the outputs and
        builds the report: the grid's while the chart is drawn, the chart's while the rest is done.
        Every file is on disk before the report (whose total_s covers them) is written and the node
        returns."""
        grid_arrays, singles = self.grids(records, thumbs)
        meta = self.pnginfo()
        sub = os.path.relpath(self.folder, self.out_dir).replace(os.sep, "/")
        names = ["grid.png"] if len(grid_arrays) == 1 else [f"grid_{g + 1}.png" for g in range(len(grid_arrays))]
        writes = [self.cache.write_image(n, arr, meta, self.worker, parts=1) for n, arr in zip(names, grid_arrays)]
        chart_arr = self.chart(records)
        writes.append(self.cache.write_image("chart.png", chart_arr, meta, self.worker, parts=1))
        cell_files()
        result = (images_tensor(grid_arrays), images_tensor(singles), images_tensor([chart_arr]))
        rep = self.report(records, "complete", 0.0)
        rep["files"] = {"grids": names, "chart": "chart.png", "report_json": "report.json", "report_csv": "report.csv"}
        rep["grid"] = self.grid_meta
        for done in writes:
            done()
        self.drain()                    # whatever else the writer still has (files of earlier batches)
        rep["timing"]["total_s"] = time.perf_counter() - t_start
        text = to_json(rep)
        self.cache.write_text("report.json", text)
        self.cache.write_text("report.csv", to_csv(rep["cells"]))
        log.info("[Sampler Lab] step sweep done: %s (recommended steps %s)", self.folder, rep["recommended_steps"])
        ui = [{"filename": n, "subfolder": sub, "type": "output"} for n in names + ["chart.png"]]
        return {"ui": {"images": ui, "sampler_lab_sweep": [viewer_payload(rep, ui[:len(grid_arrays)])]},
                "result": (*result, text, int(rep["recommended_steps"]))}


def images_tensor(arrays):
    """uint8 (H, W, 3) arrays of one size -> ComfyUI IMAGE batch, float32 in [0, 1]."""
    batch = arrays[0][None] if len(arrays) == 1 else np.stack(arrays)
    return torch.from_numpy(batch).to(torch.float32).div_(255.0)


def _finite(v):
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def viewer_payload(rep, grid_images):
    """Per-cell records for the sweep viewer (web/js/sweep_viewer.js), sent as ui["sampler_lab_sweep"]:
    settings that can be copied onto a KSampler, the measured metrics, and where each cell sits in
    which grid image (filename/subfolder/type for /view). JSON-safe: non-finite numbers become None."""
    cells = []
    for c in rep["cells"]:
        p = c["params"]
        settings = {"steps": int(p["steps"]), "cfg": float(p["cfg"]), "denoise": float(p["denoise"]), "seed": int(p["seed"])}
        if p["sampler"] != "input":
            settings["sampler_name"] = p["sampler"]
        if p["scheduler"] != "input":
            settings["scheduler"] = p["scheduler"]
        cells.append({"index": c["index"], "grid": c["grid"], "row": c["row"], "col": c["col"],
                      "labels": c["labels"], "status": c["status"], "error": c.get("error"), "source": c.get("source"),
                      "settings": settings, "nfe": c.get("nfe"), "sample_s": _finite(c.get("sample_s")),
                      **{k: _finite(c.get(k)) for k in ("rmse", "rel_rmse", "psnr", "ssim")}})
    grid = rep.get("grid", {})
    return {"version": 1, "images": grid_images, "size": grid.get("size"), "cell_boxes": grid.get("cell_boxes"),
            "columns": grid.get("columns"), "rows": grid.get("rows"), "shape": rep["shape"],
            "axes": [a["axis"] for a in rep["axes"]], "reference": {k: rep["reference"][k] for k in ("sampler", "steps")},
            "tolerance": _finite(rep["settings"]["tolerance"]), "metric": rep["tolerance_metric"],
            "recommended_steps": rep["recommended_steps"], "cells": cells}


class SamplerLabStepSweep:
    DESCRIPTION = ("Answers 'how many steps, which sampler, which schedule?' for your model with numbers: runs a grid "
                   "of settings (steps, sampler, scheduler, cfg, denoise, seed, ControlNet end) on your MODEL, "
                   "conditioning and latent, counts model calls, times each cell, measures the distance to a "
                   "high-accuracy reference and recommends the smallest steps within your tolerance. Cells are saved as "
                   "they finish; queue again to resume an interrupted sweep.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "IMAGE", "IMAGE", "STRING", "INT")
    RETURN_NAMES = ("grid", "images", "chart", "report", "recommended_steps")
    OUTPUT_TOOLTIPS = ("The labelled grid (one image per z value).",
                       "Every cell's first image, at grid-cell size, in cell order.",
                       "Distance to the reference and sampling time against steps (or counted model calls).",
                       "The full report as JSON (also written as report.json and report.csv in the sweep folder).",
                       "Smallest steps within tolerance for the cheapest sampler/scheduler that reaches it.")
    FUNCTION = "sweep"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        samplers = list(comfy.samplers.KSampler.SAMPLERS)
        schedulers = list(comfy.samplers.KSampler.SCHEDULERS)
        axes = list(sweep_axes.AXIS_NAMES)
        ref_default = "lab_rk4" if "lab_rk4" in samplers else "dpmpp_2m"
        syntax = ("Values: numbers and ranges like 8,12,16-32:4 (start-end:step, inclusive); names separated by "
                  "commas, wildcards allowed (lab_rk*).")
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model to sweep (ignored when a GUIDER is connected: its model is used)."}),
                "latent_image": ("LATENT", {"tooltip": "The latent to sample (empty latent, or an image latent for img2img with denoise < 1). 4-D image or 5-D video latents."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "control_after_generate": True,
                                 "tooltip": "Noise seed shared by every cell (unless the seed axis varies it). Keep it fixed to resume a sweep."}),
                "steps": ("INT", {"default": 20, "min": 1, "max": 10000, "tooltip": "Steps for cells when steps is not an axis."}),
                "cfg": ("FLOAT", {"default": 7.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                                  "tooltip": "CFG scale for cells when cfg is not an axis."}),
                "sampler_name": (samplers, {"default": "euler", "tooltip": "Sampler for cells when sampler is not an axis (a connected SAMPLER wins)."}),
                "scheduler": (schedulers, {"default": "karras" if "karras" in schedulers else schedulers[0],
                                           "tooltip": "Scheduler for cells when scheduler is not an axis (a connected SIGMAS wins); also the reference's scheduler."}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Denoise for cells when denoise is not an axis."}),
                "x_axis": (axes, {"default": "steps", "tooltip": "What varies across the columns."}),
                "x_values": ("STRING", {"default": "8,12,16-32:8", "tooltip": "Column values. " + syntax}),
                "y_axis": (axes, {"default": "sampler", "tooltip": "What varies down the rows (none: one row)."}),
                "y_values": ("STRING", {"default": "euler, dpmpp_2m, heun", "tooltip": "Row values. " + syntax}),
                "z_axis": (axes, {"default": "none", "tooltip": "A third axis: one grid per value."}),
                "z_values": ("STRING", {"default": "", "tooltip": "Values of the third axis (one grid each). " + syntax}),
                "equal_cost": ("BOOLEAN", {"default": False, "tooltip":
                    "Compare at equal model calls: the steps axis values become NFE budgets and each sampler gets "
                    "as many steps as fit (a 2-call sampler gets half). Calls per step come from the pack's specs or "
                    "a short counted probe run; the actual calls are counted and reported."}),
                "reference_sampler": (["none"] + samplers, {"default": ref_default, "tooltip":
                    "Deterministic high-order sampler for the reference (same seed, many steps); none skips distances."}),
                "reference_steps": ("INT", {"default": 100, "min": 2, "max": 10000, "tooltip":
                    "Steps of the reference run (one per cfg/denoise/seed/ControlNet-end combination)."}),
                "tolerance": ("FLOAT", {"default": 0.02, "min": 0.0, "max": 10.0, "step": 0.001, "tooltip":
                    "Recommended steps = the smallest swept steps from which the latent RMSE to the reference, relative "
                    "to the reference's RMS, stays below this (0.02 = 2%)."}),
                "cell_limit": ("INT", {"default": 64, "min": 1, "max": 10000, "tooltip":
                    "Refuse sweeps with more cells than this (a guard against typos like 1-1000)."}),
                "cell_size": ("INT", {"default": 384, "min": 64, "max": 4096, "step": 16, "tooltip":
                    "Longest side of a grid cell in pixels (full-size images are saved in the sweep folder)."}),
                "filename_prefix": ("STRING", {"default": "sampler_lab/sweep", "tooltip":
                    "Sweep folder under ComfyUI's output folder; a settings digest is appended. Same inputs = same folder = resume."}),
            },
            "optional": {
                "positive": ("CONDITIONING", {"tooltip": "Positive conditioning (ControlNets attached to it are honoured; the controlnet_end axis rescales them)."}),
                "negative": ("CONDITIONING", {"tooltip": "Negative conditioning."}),
                "vae": ("VAE", {"tooltip": "Decodes cells to images and enables PSNR/SSIM. Without it the lab model uses its exact decode, other models a latent preview."}),
                "sampler": ("SAMPLER", {"tooltip": "Any SAMPLER (core, pack or another pack's node); the sampler axis calls it 'input'."}),
                "sigmas": ("SIGMAS", {"tooltip": "Any SIGMAS; the scheduler axis calls it 'input'; a steps axis resamples it (log-linear)."}),
                "guider": ("GUIDER", {"tooltip": "Any GUIDER (CFGGuider, DualCFGGuider, BasicGuider, ...) used instead of MODEL + conditioning."}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    def sweep(self, **kw):
        for k in ("positive", "negative", "vae", "sampler", "sigmas", "guider", "prompt", "extra_pnginfo", "unique_id"):
            kw.setdefault(k, None)
        return SweepRun(kw).execute()


NODE_CLASS_MAPPINGS = {"SamplerLabStepSweep": SamplerLabStepSweep}
NODE_DISPLAY_NAME_MAPPINGS = {"SamplerLabStepSweep": "Step Sweep (Sampler Lab)"}
