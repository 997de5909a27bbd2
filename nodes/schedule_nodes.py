"""SIGMAS nodes for the pack's schedules, with their parameters (the dropdown entries use the
defaults). Each computes on the model's own model_sampling, so flow shift and discrete tables
are honoured, and honours denoise like ComfyUI's BasicScheduler."""
from .. import bridge
from ..schedulers import SCHEDULERS
from ..schedulers.ays import MODEL_TYPES, ays
from ..schedulers.gits import gits
from ..schedulers.shapes import beta_schedule, laplace, polyexponential, vp
from ..schedulers.spacing import SPACINGS, diffusers_spacing

CATEGORY = "sampling/Sampler Lab/schedulers"
_MODEL = ("MODEL", {"tooltip": "The model whose noise levels (model_sampling, shift included) the schedule uses."})
_STEPS = ("INT", {"default": 20, "min": 1, "max": 10000, "tooltip": "Number of sampling steps (sigmas = steps + 1)."})
_DENOISE = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
            "Fraction of the schedule to run (img2img). 1.0 = from pure noise; 0 gives an empty SIGMAS."})


def with_denoise(fn, steps, denoise):
    """Like BasicScheduler: run the tail of a longer schedule when denoise < 1."""
    if denoise <= 0.0:
        import torch
        return torch.FloatTensor([])
    total = steps if denoise >= 1.0 else int(steps / denoise)
    return fn(total)[-(steps + 1):]


class _ScheduleNode:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "schedule"
    PARAMS = {}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": _MODEL, "steps": _STEPS, **cls.PARAMS, "denoise": _DENOISE}}

    def schedule(self, model, steps, denoise, **params):
        ms = bridge.model_sigmas(model.get_model_object("model_sampling"))
        return (with_denoise(lambda n: self.compute(ms, n, **params), steps, denoise),)


class SamplerLabScheduler(_ScheduleNode):
    DESCRIPTION = "Any Sampler Lab schedule by name (the same list the KSampler scheduler dropdown shows)."
    PARAMS = {"scheduler": (sorted(SCHEDULERS), {"tooltip": "A Sampler Lab schedule, with its default parameters."})}

    def compute(self, ms, n, scheduler):
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler {scheduler!r} is not a Sampler Lab schedule (is the pack up to date?): "
                             f"pick one of {', '.join(sorted(SCHEDULERS))}")
        return SCHEDULERS[scheduler].fn(ms, n)


class SamplerLabAlignYourSteps(_ScheduleNode):
    DESCRIPTION = "Align Your Steps (Sabour et al. 2024): NVIDIA's optimised 10-step tables, log-linear interpolated to any step count."
    PARAMS = {"model_type": (list(MODEL_TYPES), {"default": "sdxl", "tooltip": "Which published table: SD1.5, SDXL or SVD."})}

    def compute(self, ms, n, model_type):
        return ays(ms, n, model_type=model_type)


class SamplerLabGITS(_ScheduleNode):
    DESCRIPTION = "GITS (Chen et al. 2024): published step placements from its dynamic programming, 2..20 steps."
    PARAMS = {"coeff": ("FLOAT", {"default": 1.20, "min": 0.80, "max": 1.50, "step": 0.05, "tooltip":
                                  "GITS tolerance coefficient; published tables exist for 0.80..1.50 in steps of 0.05."})}

    def compute(self, ms, n, coeff):
        return gits(ms, n, coeff=round(coeff * 20) / 20)


class SamplerLabDiffusersSpacing(_ScheduleNode):
    DESCRIPTION = ("diffusers' timestep spacings on the model's own discrete table, to match a diffusers result. "
                   "trailing is what turbo / lightning models need at 1-4 steps.")
    PARAMS = {"spacing": (list(SPACINGS), {"default": "trailing", "tooltip": "diffusers timestep_spacing."}),
              "steps_offset": ("INT", {"default": 0, "min": 0, "max": 100, "tooltip": "diffusers steps_offset (leading only; SD1.5 configs use 1)."})}

    def compute(self, ms, n, spacing, steps_offset):
        return diffusers_spacing(ms, n, spacing=spacing, steps_offset=steps_offset)


class SamplerLabPolyexponential(_ScheduleNode):
    DESCRIPTION = "Polyexponential schedule (k-diffusion): rho = 1 is log-linear; larger rho spends more steps at low noise."
    PARAMS = {"rho": ("FLOAT", {"default": 1.0, "min": 0.05, "max": 100.0, "step": 0.05, "tooltip": "Shape exponent."})}

    def compute(self, ms, n, rho):
        return polyexponential(ms, n, rho=rho)


class SamplerLabLaplace(_ScheduleNode):
    DESCRIPTION = "Laplace schedule (Hang et al. 2024): concentrates steps around log-sigma = mu."
    PARAMS = {"mu": ("FLOAT", {"default": 0.0, "min": -10.0, "max": 10.0, "step": 0.1, "tooltip": "Centre in log-sigma."}),
              "beta": ("FLOAT", {"default": 0.5, "min": 0.01, "max": 10.0, "step": 0.01, "tooltip": "Spread in log-sigma."})}

    def compute(self, ms, n, mu, beta):
        return laplace(ms, n, mu=mu, beta=beta)


class SamplerLabVP(_ScheduleNode):
    DESCRIPTION = "Variance-preserving schedule (Song et al. 2021), continuous VP-SDE times mapped to the model's sigmas."
    PARAMS = {"beta_d": ("FLOAT", {"default": 19.9, "min": 0.01, "max": 100.0, "step": 0.1, "tooltip": "beta_max - beta_min."}),
              "beta_min": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip": "beta_min."}),
              "eps_s": ("FLOAT", {"default": 0.001, "min": 1e-5, "max": 0.5, "step": 0.0001, "tooltip": "Smallest time."})}

    def compute(self, ms, n, beta_d, beta_min, eps_s):
        return vp(ms, n, beta_d=beta_d, beta_min=beta_min, eps_s=eps_s)


class SamplerLabBetaSchedule(_ScheduleNode):
    DESCRIPTION = "Beta-distribution schedule (Lee et al. 2024) with free shape; alpha=0.5, beta=0.7 is the popular 'beta57'."
    PARAMS = {"alpha": ("FLOAT", {"default": 0.5, "min": 0.01, "max": 10.0, "step": 0.01, "tooltip": "Beta shape alpha."}),
              "beta": ("FLOAT", {"default": 0.7, "min": 0.01, "max": 10.0, "step": 0.01, "tooltip": "Beta shape beta."})}

    def compute(self, ms, n, alpha, beta):
        return beta_schedule(ms, n, alpha=alpha, beta=beta)


_NODES = {
    "SamplerLabScheduler": (SamplerLabScheduler, "Lab Scheduler"),
    "SamplerLabAlignYourSteps": (SamplerLabAlignYourSteps, "Align Your Steps"),
    "SamplerLabGITS": (SamplerLabGITS, "GITS Schedule"),
    "SamplerLabDiffusersSpacing": (SamplerLabDiffusersSpacing, "Diffusers Spacing"),
    "SamplerLabPolyexponential": (SamplerLabPolyexponential, "Polyexponential Schedule"),
    "SamplerLabLaplace": (SamplerLabLaplace, "Laplace Schedule"),
    "SamplerLabVP": (SamplerLabVP, "VP Schedule"),
    "SamplerLabBetaSchedule": (SamplerLabBetaSchedule, "Beta Schedule"),
}
NODE_CLASS_MAPPINGS = {k: v[0] for k, v in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {k: v[1] + " (Sampler Lab)" for k, v in _NODES.items()}
