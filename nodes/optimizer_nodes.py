"""Schedule Optimizer node: a step placement fitted to the user's own model, conditioning, latent
size and sampler (schedulers/optimize.py), evaluated honestly on other noises, optionally saved
into the scheduler dropdown."""
import hashlib
import json
import math

import torch

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils

from .. import bridge
from ..schedulers.optimize import candidate_grid, optimal_schedule, trace


def median_rmse(x, reference):
    """Median over the batch of per-sample latent RMSE (robust to a sample switching mode)."""
    return float((x.float() - reference.float()).pow(2).flatten(1).mean(1).sqrt().median())
from . import schedule_store

CATEGORY = "sampling/Sampler Lab/schedulers"
# Model calls per step of core samplers with more than one (the others make one).
CORE_CALLS = {"heun": 2, "heunpp2": 3, "dpm_2": 2, "dpm_2_ancestral": 2, "dpmpp_2s_ancestral": 2,
              "dpmpp_2s_ancestral_cfg_pp": 2, "dpmpp_sde": 2, "dpmpp_sde_gpu": 2, "seeds_2": 2, "seeds_3": 3,
              "sa_solver_pece": 2, "exp_heun_2_x0": 2}


def calls_per_step(sampler):
    fn = getattr(sampler, "sampler_function", None)
    spec = getattr(fn, bridge.MARK, None)
    if spec is not None:
        return spec.model_calls
    name = getattr(fn, "__name__", "").replace("sample_", "")
    return CORE_CALLS.get(name, 1)


def _digest(*parts):
    h = hashlib.sha256()
    for p in parts:
        if torch.is_tensor(p):
            h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        else:
            h.update(repr(p).encode())
    return h.hexdigest()[:24]


def _cond_tensors(cond):
    return [c[0] for c in cond if torch.is_tensor(c[0])]


class _Tracer:
    """A KSAMPLER function that traces the exact trajectory on the grid instead of sampling."""

    def __init__(self, kind, pbar):
        self.kind, self.pbar, self.result = kind, pbar, None

    def __call__(self, model, x, sigmas, extra_args=None, callback=None, disable=None):
        extra_args = extra_args or {}
        s_in = x.new_ones([x.shape[0]])

        def denoise(xx, sigma):
            return model(xx, sigma * s_in, **extra_args)

        def on_point(g):
            comfy.model_management.throw_exception_if_processing_interrupted()
            self.pbar.update(1)
        self.result = trace(denoise, x, sigmas.to(x.dtype), self.kind, on_point=on_point)
        return self.result[0][-1]


class SamplerLabScheduleOptimizer:
    DESCRIPTION = ("Fits the step placement to YOUR model, prompt, latent size and sampler: traces the exact sampling "
                   "path on a fine grid for a few calibration noises, then picks the steps that minimise the "
                   "sampler's error by dynamic programming (GITS-style). Reports the measured error against Karras "
                   "on different evaluation noises. Can save the result into the scheduler dropdown.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("SIGMAS", "STRING")
    RETURN_NAMES = ("sigmas", "report")
    FUNCTION = "optimize"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The model to fit the schedule to."}),
            "positive": ("CONDITIONING", {"tooltip": "Positive conditioning used while tracing."}),
            "negative": ("CONDITIONING", {"tooltip": "Negative conditioning used while tracing."}),
            "latent_image": ("LATENT", {"tooltip": "Sets the latent size; its first item is used."}),
            "sampler": ("SAMPLER", {"tooltip": "The sampler the schedule is for (its model calls per step set the steps)."}),
            "cfg": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 30.0, "step": 0.1, "tooltip": "Guidance scale you will sample with."}),
            "nfe": ("INT", {"default": 10, "min": 1, "max": 200, "tooltip":
                    "Model-call budget: steps = nfe / (sampler calls per step)."}),
            "grid_points": ("INT", {"default": 48, "min": 8, "max": 200, "tooltip":
                            "Candidate sigmas; tracing costs about 4 model calls per point per noise batch."}),
            "calibration_noises": ("INT", {"default": 8, "min": 1, "max": 64, "tooltip":
                                   "Noises the schedule is fitted on (one batch; more = less overfitting, more memory)."}),
            "evaluation_noises": ("INT", {"default": 4, "min": 0, "max": 32, "tooltip":
                                  "Different noises the result is scored on (0 = skip the evaluation)."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "tooltip":
                     "Calibration noise seed; evaluation uses seed + 1 (never the same noises)."}),
            "save_as": ("STRING", {"default": "", "tooltip":
                        "Optional name: saves the result as scheduler lab_opt_<name> in the KSampler dropdown."}),
        }}

    def optimize(self, model, positive, negative, latent_image, sampler, cfg, nfe, grid_points,
                 calibration_noises, evaluation_noises, seed, save_as):
        name = schedule_store.check_name(save_as)
        calls = calls_per_step(sampler)
        steps = int(nfe // calls)
        if steps < 1:
            raise ValueError(f"nfe {nfe} is below this sampler's minimum: it makes {calls:g} model calls per step; "
                             f"raise nfe to at least {math.ceil(calls)}")
        if steps > grid_points:
            raise ValueError(f"nfe {nfe} gives {steps} steps but grid_points is {grid_points}: raise grid_points")
        ms = model.get_model_object("model_sampling")
        kind = bridge.model_kind(ms)
        latent = latent_image["samples"][:1]
        key = _digest("v1", kind, ms.sigmas, cfg, steps, calls, grid_points, calibration_noises, seed,
                      tuple(latent.shape), *_cond_tensors(positive), *_cond_tensors(negative))
        hit = schedule_store.cached(key)
        if hit is not None:
            report = dict(hit["report"], cached=True)
            if name:
                schedule_store.remember(key, hit, name)
            return (torch.tensor(hit["sigmas"], dtype=torch.float32), json.dumps(report, indent=1))

        grid = candidate_grid(float(ms.sigma_max), float(ms.sigma_min), grid_points, kind)
        refine_evals = 3 + 2 * 4 * max(steps - 1, 0)
        pbar = comfy.utils.ProgressBar((grid_points - 1) * (1 + (1 if evaluation_noises else 0)) + refine_evals + 2)
        states, denoised = self._trace(model, positive, negative, cfg, latent, calibration_noises, seed, grid, kind, pbar)
        batch = latent.repeat((calibration_noises,) + (1,) * (latent.ndim - 1))
        noise = comfy.sample.prepare_noise(batch, seed)
        guider = self._guider(model, positive, negative, cfg)

        def evaluate(path):
            comfy.model_management.throw_exception_if_processing_interrupted()
            x = guider.sample(noise, batch, sampler, grid[path].float(), disable_pbar=True, seed=seed)
            return median_rmse(x, states[-1])
        baseline = comfy.samplers.calculate_sigmas(ms, "karras", steps)
        sigmas, calib_err = optimal_schedule(grid, states, denoised, steps, kind, evaluate=evaluate,
                                             baseline=baseline, on_eval=lambda: pbar.update(1))
        report = {"steps": steps, "nfe": nfe, "calls_per_step": calls, "model_kind": kind, "grid_points": grid_points,
                  "calibration_seed": seed, "calibration_noises": calibration_noises,
                  "calibration_median_rmse": calib_err, "metric": "median per-sample latent RMSE vs traced reference",
                  "sigmas": [round(float(s), 6) for s in sigmas], "cached": False}
        if evaluation_noises:
            report.update(self._evaluate(model, positive, negative, cfg, latent, evaluation_noises, seed + 1, grid,
                                         kind, sampler, sigmas, ms, steps, pbar))
        entry = {"kind": kind, "steps": steps, "sigmas": [float(s) for s in sigmas], "report": report,
                 "model": type(model.model).__name__}
        schedule_store.remember(key, entry, name)
        return (sigmas, json.dumps(report, indent=1))

    @staticmethod
    def _guider(model, positive, negative, cfg):
        g = comfy.samplers.CFGGuider(model)
        g.set_conds(positive, negative)
        g.set_cfg(cfg)
        return g

    def _trace(self, model, positive, negative, cfg, latent, count, seed, grid, kind, pbar):
        batch = latent.repeat((count,) + (1,) * (latent.ndim - 1))
        tracer = _Tracer(kind, pbar)
        self._guider(model, positive, negative, cfg).sample(
            comfy.sample.prepare_noise(batch, seed), batch, comfy.samplers.KSAMPLER(tracer), grid.float(),
            disable_pbar=True, seed=seed)
        return tracer.result

    def _evaluate(self, model, positive, negative, cfg, latent, count, seed, grid, kind, sampler, sigmas, ms, steps, pbar):
        """Latent RMSE of the user's sampler against the traced reference on evaluation noises, for the
        optimised schedule and for Karras with the same steps; counted model calls."""
        states, _ = self._trace(model, positive, negative, cfg, latent, count, seed, grid, kind, pbar)
        reference = states[-1].to(torch.float32)
        batch = latent.repeat((count,) + (1,) * (latent.ndim - 1))
        calls = {"n": 0}

        def count_calls(args):
            calls["n"] += 1
            return args["denoised"]
        counted = model.clone()
        counted.set_model_sampler_post_cfg_function(count_calls)
        out = {}
        for label, sched in (("optimised", sigmas), ("karras", comfy.samplers.calculate_sigmas(ms, "karras", steps))):
            calls["n"] = 0
            x = self._guider(counted, positive, negative, cfg).sample(
                comfy.sample.prepare_noise(batch, seed), batch, sampler, sched.float(), disable_pbar=True, seed=seed)
            out[f"rmse_{label}"] = median_rmse(x, reference)
            out[f"counted_nfe_{label}"] = calls["n"]
            pbar.update(1)
        out["error_ratio_vs_karras"] = out["rmse_optimised"] / max(out["rmse_karras"], 1e-12)
        out["evaluation_seed"] = seed
        return out


NODE_CLASS_MAPPINGS = {"SamplerLabScheduleOptimizer": SamplerLabScheduleOptimizer}
NODE_DISPLAY_NAME_MAPPINGS = {"SamplerLabScheduleOptimizer": "Schedule Optimizer (Sampler Lab)"}
