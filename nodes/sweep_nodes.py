"""The step sweep node: "how many steps, which sampler, which schedule, for my model?"

A thin adapter: it turns ComfyUI's MODEL / CONDITIONING / LATENT (or a connected SAMPLER, SIGMAS,
GUIDER) into the plain callables the pure engine (sweep/engine.py) runs a sweep with: sample a
cell, decode it, report progress, the reference. Everything else (planning, the cell loop,
resume, measuring, report, pictures) is the engine's. ComfyUI-specific pieces (counting model
calls, timing, guiders, sigmas, decoding, fingerprint) are in nodes/sweep_runtime.py.
"""
import json
import logging
import os
import time

import comfy.k_diffusion.sampling as k_sampling
import comfy.model_management
import comfy.samplers
import comfy.utils
import folder_paths
import latent_preview
from comfy.cli_args import args as comfy_args

from ..bridge import MARK
from ..sweep import axes as sweep_axes
from ..sweep.axes import SweepAxisError
from ..sweep.engine import Hooks, Sampled, SweepRun, plan_sweep
from ..sweep.outputs import viewer_payload
from . import sweep_runtime as rt
from .handoff_nodes import sample_handoff
from .sweep_models import boundary_switch

log = logging.getLogger("sampler_lab")
CATEGORY = "sampling/Sampler Lab"
PREVIEW_EVERY_S = 0.25


def pack_spec(name):
    """The pack SamplerSpec behind a live sampler name (None for core / other packs' samplers)."""
    return getattr(getattr(k_sampling, "sample_" + str(name), None), MARK, None)


class ComfySweep:
    """ComfyUI's side of one execution: the callables the engine gets, built from the node's inputs."""

    def __init__(self, kw):
        self.kw = kw
        self.model = kw["guider"].model_patcher if kw.get("guider") is not None else kw["model"]
        self.meter = rt.RunMeter()
        self.noise_cache = (None, None)
        self.last_preview = 0.0
        self.pbar = None
        self.previewer = None

    # planning ----------------------------------------------------------------------------------
    def make_plan(self):
        kw = self.kw
        lab = rt.is_lab_model(self.model)
        sigmas = kw.get("sigmas")
        self.lab_reference = lab and kw["reference_sampler"] != "none"
        self.plan = plan_sweep(kw, comfy.samplers.KSampler.SAMPLERS, comfy.samplers.KSampler.SCHEDULERS,
                               sampler_input=kw.get("sampler") is not None,
                               sigmas_steps=int(sigmas.shape[-1] - 1) if sigmas is not None else None,
                               spec=pack_spec,
                               reference_method=rt.ode_reference_label(kw["reference_steps"]) if lab else None,
                               second_model=kw.get("model_low") is not None, guider_input=kw.get("guider") is not None)
        self.factory = rt.GuiderFactory(kw["model"], kw.get("positive"), kw.get("negative"), kw.get("guider"),
                                        self.meter, kw.get("model_low"))
        for c in self.plan.cells:     # bad cfg / ControlNet / shift axes fail here, early (each guider is built once)
            p = c.params
            self.factory.get(p["cfg"], p["controlnet_end"], self.plan.cfg_swept, p["shift"])
            if p["boundary"] is not None:
                self.factory.get(p["cfg"], p["controlnet_end"], self.plan.cfg_swept, p["shift"], low=True)
        self.check_boundaries()
        self.decoder = rt.Decoder(self.model, kw.get("vae"))
        return self.plan

    def check_boundaries(self):
        """A boundary outside a cell's (or the reference's) schedule fails the sweep before it starts."""
        ref = self.plan.reference
        seen = set()
        for c in self.plan.cells:
            p = c.params
            if p["boundary"] is None:
                continue
            runs = [(p["sampler"], p["steps"] or c.nfe_budget)]
            if ref["sampler"] != "none":
                runs.append(("euler" if self.lab_reference else ref["sampler"], ref["steps"]))
            for sampler_name, steps in runs:
                key = (sampler_name, p["scheduler"], steps, p["denoise"], p["shift"], p["boundary"])
                if key not in seen:
                    seen.add(key)
                    self.switch_index(p, sampler_name, steps)

    def switch_index(self, params, sampler_name, steps, sigmas=None):
        """Steps of `sigmas` (default: the cell's schedule) on the high-noise side of its boundary."""
        if sigmas is None:
            sigmas = self.sigmas(params, sampler_name, steps)
        where = f"the schedule ({params['scheduler']}, {steps} steps, denoise {params['denoise']:g})"
        return boundary_switch(sigmas, params["boundary"], self.factory.patcher(params["shift"]), where)

    def sigmas(self, params, sampler_name, steps):
        """The cell's schedule, from its (shifted) model's sampling."""
        return rt.cell_sigmas(self.factory.patcher(params["shift"]), sampler_name, params["scheduler"], steps,
                              params["denoise"], self.kw.get("sigmas"))

    def folder(self):
        kw = self.kw
        out_dir = os.path.abspath(folder_paths.get_output_directory())
        prefix = (kw["filename_prefix"] or "sampler_lab/sweep").strip().replace("\\", "/")
        fp = rt.fingerprint(self.model, kw.get("positive"), kw.get("negative"), kw["latent_image"], kw.get("vae"),
                            kw.get("sampler"), kw.get("sigmas"), kw.get("guider"), kw.get("prompt"),
                            kw.get("unique_id"), kw.get("model_low"))
        folder = os.path.abspath(os.path.join(out_dir, f"{prefix}_{fp}"))
        if os.path.commonpath([out_dir, folder]) != out_dir or os.path.isabs(prefix):
            raise SweepAxisError(f"filename_prefix {prefix!r} points outside ComfyUI's output folder; use a relative "
                                 f"name like sampler_lab/sweep")
        return out_dir, folder, fp

    # the callables -----------------------------------------------------------------------------
    def _noise(self, seed):
        if self.noise_cache[0] != seed:
            self.noise_cache = (seed, rt.prepare_latent(self.model, self.kw["latent_image"], seed))
        return self.noise_cache[1]

    def _run(self, params, sampler, sigmas, on_step, sampler_name):
        p = params
        guider = self.factory.get(p["cfg"], p["controlnet_end"], self.plan.cfg_swept, p["shift"])
        image, noise, mask = self._noise(p["seed"])

        def callback(i, x0, x, total):
            comfy.model_management.throw_exception_if_processing_interrupted()
            if on_step is not None:
                on_step(i, x0, total)
        k = None if p["boundary"] is None else self.switch_index(p, sampler_name, int(sigmas.shape[-1] - 1), sigmas)
        self.meter.reset()
        t0 = time.perf_counter()
        try:
            if k is None:
                out = guider.sample(noise, image, sampler, sigmas, denoise_mask=mask, callback=callback,
                                    disable_pbar=True, seed=p["seed"])
            else:       # the Two-Model Sampler's run: model above the boundary, model_low below it
                low = self.factory.get(p["cfg"], p["controlnet_end"], self.plan.cfg_swept, p["shift"], low=True)
                out = sample_handoff(guider, low, noise, image, sampler, sigmas, k, mask, callback, True, p["seed"])
        except Exception as e:
            if "out of memory" in str(e).lower() or type(e).__name__ == "OutOfMemoryError":
                comfy.model_management.soft_empty_cache()
            raise
        call_s = time.perf_counter() - t0
        return Sampled(out.to(comfy.model_management.intermediate_device()), self.meter.calls, self.meter.sample_s,
                       call_s, list(self.meter.call_times))

    def sample(self, params, sampler_name, steps, on_step):
        sigmas = self.sigmas(params, sampler_name, steps)
        return self._run(params, rt.sampler_object(sampler_name, self.kw.get("sampler")), sigmas, on_step, sampler_name)

    def reference(self, params, steps, on_step):
        """The lab models' reference: their probability-flow ODE solved to high accuracy (RK4 in log
        sigma, float64) on the reference's schedule, through the same guider as the cells (with a
        boundary: RK4 on each side of it, on each side's model)."""
        sigmas = self.sigmas(params, "euler", steps)
        return self._run(params, rt.ode_reference_sampler(steps), sigmas, on_step, "euler")

    def progress(self, done, total, x0):
        if self.pbar is None or self.pbar.total != total:
            self.pbar = comfy.utils.ProgressBar(total)
        preview = None
        now = time.perf_counter()
        if (x0 is not None and comfy.utils.PROGRESS_BAR_HOOK is not None and self.previewer is not None
                and (now - self.last_preview > PREVIEW_EVERY_S or done >= total)):
            self.last_preview = now
            preview = self.previewer.decode_latent_to_preview_image("JPEG", x0)
        self.pbar.update_absolute(done, total, preview)

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

    # the whole execution -----------------------------------------------------------------------
    def execute(self):
        t_start = time.perf_counter()
        kw = self.kw
        plan = self.make_plan()
        out_dir, folder, fp = self.folder()
        self.previewer = latent_preview.get_previewer(self.model.load_device, self.model.model.latent_format)
        hooks = Hooks(sample=self.sample, decoder=self.decoder, spec=pack_spec,
                      reference=self.reference if self.lab_reference else None,
                      reference_method=plan.reference.get("method"), progress=self.progress,
                      interrupts=(comfy.model_management.InterruptProcessingException,), pnginfo=self.pnginfo())
        context = {"fingerprint": fp, "model": type(self.model.model).__name__,
                   "latent_shape": list(kw["latent_image"]["samples"].shape),
                   "inputs": {k: kw.get(k) is not None for k in ("positive", "negative", "vae", "sampler", "sigmas",
                                                                 "guider", "model_low")}}
        got = SweepRun(plan, hooks, folder, context).execute(t_start)
        rep = got.report
        sub = os.path.relpath(folder, out_dir).replace(os.sep, "/")
        ui = [{"filename": n, "subfolder": sub, "type": "output"} for n in got.grid_files + ["chart.png"]]
        ans = rep["recommendation"]
        result = (*got.tensors, got.report_text, int(rep["recommended_steps"]), ans["sampler_name"],
                  ans["scheduler_name"], int(ans["model_calls"] or 0))
        return {"ui": {"images": ui, "sampler_lab_sweep": [viewer_payload(rep, ui[:len(got.grids)])]},
                "result": result}


class SamplerLabStepSweep:
    DESCRIPTION = ("Answers 'how many steps, which sampler, which schedule?' for your model with numbers: runs a grid "
                   "of settings (steps, sampler, scheduler, cfg, denoise, seed, ControlNet end, a flow model's shift, "
                   "the boundary of a two-model hand-off) on your MODEL, "
                   "conditioning and latent, counts model calls, times each cell, measures the distance to a "
                   "high-accuracy reference and recommends the sampler, scheduler and steps that reach your tolerance "
                   "at the fewest model calls (outputs you can wire into a KSampler). Cells are saved as they finish; "
                   "queue again to resume an interrupted sweep.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "IMAGE", "IMAGE", "STRING", "INT", comfy.samplers.KSampler.SAMPLERS,
                    comfy.samplers.KSampler.SCHEDULERS, "INT")
    RETURN_NAMES = ("grid", "images", "chart", "report", "recommended_steps", "recommended_sampler",
                    "recommended_scheduler", "recommended_model_calls")
    OUTPUT_TOOLTIPS = ("The labelled grid (one image per z value).",
                       "Every cell's first image, at grid-cell size, in cell order.",
                       "Distance to the reference and sampling time against steps (or counted model calls).",
                       "The full report as JSON (also written as report.json and report.csv in the sweep folder).",
                       "Steps of the recommendation: the sampler/scheduler that reaches the tolerance at the fewest "
                       "model calls, at its smallest swept steps within it (the most swept steps when none reaches it).",
                       "Sampler of the recommendation; connects to a KSampler's sampler_name.",
                       "Scheduler of the recommendation; connects to a KSampler's scheduler.",
                       "Counted model calls (NFE) of the recommended cell: what it costs (0 when unknown).")
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
                "model": ("MODEL", {"tooltip": "The model to sweep (ignored when a GUIDER is connected: its model is used). With a boundary axis: the model for the steps above the boundary (Wan 2.2: the high-noise expert)."}),
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
                    "Deterministic high-order sampler for the reference (same seed, many steps); none skips distances. On "
                    "the lab models the reference is their ODE solved to high accuracy (RK4 in log sigma, float64, "
                    "reference_steps steps) instead, so no row is measured against its own method; on other models "
                    "the row of this sampler is marked (ref)."}),
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
                "model_low": ("MODEL", {"tooltip": "The model for the steps below the boundary (Wan 2.2: the low-noise expert; "
                                                   "SDXL: the refiner); `model` runs the steps above it. Needed by the boundary "
                                                   "axis, and only used by it."}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    def sweep(self, **kw):
        for k in ("positive", "negative", "vae", "sampler", "sigmas", "guider", "model_low", "prompt", "extra_pnginfo",
                  "unique_id"):
            kw.setdefault(k, None)
        return ComfySweep(kw).execute()


NODE_CLASS_MAPPINGS = {"SamplerLabStepSweep": SamplerLabStepSweep}
NODE_DISPLAY_NAME_MAPPINGS = {"SamplerLabStepSweep": "Step Sweep (Sampler Lab)"}
