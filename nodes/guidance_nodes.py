"""Guiders: CFG++ for any sampler, and (CFG or CFG++) guidance limited to a sigma interval with a
scale schedule (Kynkaanniemi et al. 2024, "Applying Guidance in a Limited Interval Improves Sample
and Distribution Quality in Diffusion Models", arXiv:2404.07724). Core 0.3.75 has no guidance
interval node; newer core's CFGOverride covers plain CFG only, so this composes both."""
import math

import comfy.samplers

from .. import bridge
from ..samplers.cfgpp import next_sigma, substituted_denoised

CATEGORY = "sampling/Sampler Lab/guidance"
SCHEDULES = ("constant", "linear_down", "linear_up", "cosine")


def interval_scale(cfg, sigma, sigma_high, sigma_low, schedule):
    """Guidance scale at sigma: cfg inside [sigma_low, sigma_high] shaped by schedule, None outside."""
    if not sigma_low <= sigma <= sigma_high:
        return None
    if schedule == "constant" or not math.isfinite(sigma_high) or sigma_high <= sigma_low:
        return cfg
    # position in the interval, 0 at sigma_high (start of sampling) .. 1 at sigma_low, in log sigma
    lo = math.log(max(sigma_low, 1e-8))
    p = (math.log(sigma_high) - math.log(max(sigma, 1e-8))) / (math.log(sigma_high) - lo)
    p = min(max(p, 0.0), 1.0)
    w = {"linear_down": 1.0 - p, "linear_up": p, "cosine": 0.5 - 0.5 * math.cos(2 * math.pi * p)}[schedule]
    return 1.0 + (cfg - 1.0) * w


class LabGuider(comfy.samplers.CFGGuider):
    """CFGGuider with CFG++ stepping and an optional guidance interval. cfg_pp=True: every
    first-order step is exactly CFG++ (samplers/cfgpp.py); outside the interval the model is
    evaluated with the positive conditioning only (scale 1, no CFG++ substitution)."""

    def __init__(self, model_patcher, cfg_pp, sigma_high=math.inf, sigma_low=0.0, schedule="constant"):
        super().__init__(model_patcher)
        self.cfg_pp, self.sigma_high, self.sigma_low, self.schedule = cfg_pp, sigma_high, sigma_low, schedule
        self.kind = bridge.model_kind(model_patcher.get_model_object("model_sampling"))

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        sigma = float(timestep.reshape(-1)[0])
        scale = interval_scale(self.cfg, sigma, self.sigma_high, self.sigma_low, self.schedule)
        if scale is None:
            return comfy.samplers.sampling_function(self.inner_model, x, timestep, None, self.conds.get("positive"),
                                                    1.0, model_options=model_options, seed=seed)
        if not self.cfg_pp:
            return comfy.samplers.sampling_function(self.inner_model, x, timestep, self.conds.get("negative"),
                                                    self.conds.get("positive"), scale, model_options=model_options, seed=seed)
        extra, uncond = bridge.capture_uncond({"model_options": model_options})
        denoised = comfy.samplers.sampling_function(self.inner_model, x, timestep, self.conds.get("negative"),
                                                    self.conds.get("positive"), scale, model_options=extra["model_options"], seed=seed)
        sigmas = model_options.get("transformer_options", {}).get("sample_sigmas")
        if sigmas is None:
            raise RuntimeError("CFG++ guider: ComfyUI did not pass the sigma schedule (transformer_options['sample_sigmas'])")
        s = timestep.reshape(-1)[0].to(denoised.dtype)
        return substituted_denoised(denoised, uncond(), s, next_sigma(sigmas.to(s.device), s).to(s.dtype), self.kind)


_COMMON = {
    "model": ("MODEL", {"tooltip": "The model to guide."}),
    "positive": ("CONDITIONING", {"tooltip": "What you want."}),
    "negative": ("CONDITIONING", {"tooltip": "What you don't want (the unconditional prediction)."}),
}


class SamplerLabCFGPPGuider:
    DESCRIPTION = ("CFG++ for ANY sampler (use with SamplerCustomAdvanced): the step uses the guided image estimate "
                   "but re-noises with the unconditional noise estimate, which keeps samples on the data manifold at "
                   "low scales. Exact for first-order steps; equals core's euler_cfg_pp with euler. For ancestral / SDE "
                   "samplers use their *_cfg_pp dropdown forms instead (this guider over-guides them).")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("GUIDER",)
    FUNCTION = "guide"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**_COMMON, "cfg": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 30.0, "step": 0.05, "tooltip":
                "CFG++ scale in ComfyUI's *_cfg_pp convention: sensible 0.5-2 (1.0 is already strong guidance; "
                "regular CFG values like 7 are far too high here)."})}}

    def guide(self, model, positive, negative, cfg):
        g = LabGuider(model, cfg_pp=True)
        g.set_conds(positive, negative)
        g.set_cfg(cfg)
        return (g,)


class SamplerLabGuidanceInterval:
    DESCRIPTION = ("Guidance only inside a noise interval (Kynkaanniemi et al. 2024): no guidance at the highest noise "
                   "levels (keeps diversity) or the lowest (keeps detail), with CFG or CFG++ and a scale schedule.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("GUIDER",)
    FUNCTION = "guide"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**_COMMON,
            "cfg": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 30.0, "step": 0.05, "tooltip":
                    "Guidance scale inside the interval (CFG: typically 3-8; CFG++: 0.5-2)."}),
            "mode": (["cfg", "cfg++"], {"default": "cfg", "tooltip": "Classic CFG or CFG++ stepping inside the interval."}),
            "sigma_high": ("FLOAT", {"default": 5.42, "min": 0.0, "max": 10000.0, "step": 0.01, "tooltip":
                           "Guidance starts below this sigma (the paper uses 5.42 for EDM2 / SD-like models; flow models: 0..1)."}),
            "sigma_low": ("FLOAT", {"default": 0.28, "min": 0.0, "max": 10000.0, "step": 0.01, "tooltip":
                          "Guidance stops below this sigma (the paper uses 0.28)."}),
            "schedule": (list(SCHEDULES), {"default": "constant", "tooltip":
                         "Scale across the interval in log-sigma: constant, ramp down, ramp up, or a cosine bump."}),
        }}

    def guide(self, model, positive, negative, cfg, mode, sigma_high, sigma_low, schedule):
        if sigma_low > sigma_high:
            raise ValueError(f"sigma_low ({sigma_low}) must not exceed sigma_high ({sigma_high}): swap them")
        g = LabGuider(model, cfg_pp=(mode == "cfg++"), sigma_high=sigma_high, sigma_low=sigma_low, schedule=schedule)
        g.set_conds(positive, negative)
        g.set_cfg(cfg)
        return (g,)


NODE_CLASS_MAPPINGS = {"SamplerLabCFGPPGuider": SamplerLabCFGPPGuider,
                       "SamplerLabGuidanceInterval": SamplerLabGuidanceInterval}
NODE_DISPLAY_NAME_MAPPINGS = {"SamplerLabCFGPPGuider": "CFG++ Guider (Sampler Lab)",
                              "SamplerLabGuidanceInterval": "Guidance Interval (Sampler Lab)"}
