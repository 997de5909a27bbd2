"""SAMPLER nodes for the pack's samplers that have options (use with SamplerCustom /
SamplerCustomAdvanced). The dropdown entries are the same samplers with their default options."""
import dataclasses
import functools
import logging

import comfy.samplers

from .. import bridge
from ..samplers import SAMPLERS
from ..samplers.cfgpp import cfg_pp_variant
from ..samplers.restart import parse_segments
from ..samplers.tableaus import EMBEDDED, EXPLICIT, IMPLICIT
from ..samplers.unic import MODES, VARIANTS, with_unic

CATEGORY = "sampling/Sampler Lab/samplers"
log = logging.getLogger("sampler_lab")
_CFG_PP = ("BOOLEAN", {"default": False, "tooltip":
           "CFG++ form (use cfg 0.5-2): guided image estimate, unconditional re-noising. Same model calls."})


def ksampler(base_name, options=None, cfg_pp=False, fn=None):
    """A ComfyUI SAMPLER running the pack sampler `base_name` with `options` (optionally CFG++)."""
    spec = SAMPLERS[base_name]
    spec = dataclasses.replace(spec, options={**spec.options, **(options or {})})
    if fn is not None:
        spec = dataclasses.replace(spec, fn=fn)
    if cfg_pp:
        spec = dataclasses.replace(spec, fn=cfg_pp_variant(spec.fn), cfg_pp=True)
    return comfy.samplers.KSAMPLER(bridge.adapt_sampler(spec))


class _SamplerNode:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"


def _spec_named(family, tableau):
    """The dropdown entry of `family` that runs `tableau` (its defaults are what the node overrides)."""
    for spec in SAMPLERS.values():
        if spec.options.get("tableau") == tableau and spec.family == family:
            return spec.name
    raise ValueError(f"no pack sampler uses tableau {tableau!r}")


class SamplerLabRungeKutta(_SamplerNode):
    DESCRIPTION = ("Explicit Runge-Kutta from a Butcher tableau, in the exponential-integrator (data-prediction) "
                   "variable. Higher order = fewer steps for the same accuracy, at stages model calls per step.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "tableau": (list(EXPLICIT), {"default": "rk4", "tooltip":
                        "midpoint / ralston2 (order 2, 2 calls), bosh3 / ssprk3 (3, 3), rk4 / rk4_38 (4, 4), dopri5 (5, 6)."}),
            "cfg_pp": _CFG_PP}}

    def get_sampler(self, tableau, cfg_pp):
        return (ksampler(_spec_named("rk_explicit", tableau), {"tableau": tableau}, cfg_pp),)


class SamplerLabAdaptiveRK(_SamplerNode):
    DESCRIPTION = ("Adaptive step size with an embedded RK pair: the schedule's first and last sigma are kept, the steps "
                   "in between are chosen by the error estimate, and a hard budget caps the model calls.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "pair": (list(EMBEDDED), {"default": "dopri5", "tooltip": "fehlberg12: Fehlberg 1(2); bosh3: Bogacki-Shampine 2(3); dopri5: Dormand-Prince 4(5)."}),
            "rtol": ("FLOAT", {"default": 0.005, "min": 1e-6, "max": 1.0, "step": 0.001, "tooltip": "Relative error tolerance per step; smaller = more calls, more accurate."}),
            "atol": ("FLOAT", {"default": 0.002, "min": 1e-6, "max": 1.0, "step": 0.001, "tooltip": "Absolute error tolerance per step (latent units)."}),
            "max_nfe": ("INT", {"default": 0, "min": 0, "max": 10000, "tooltip": "Hard cap on model calls; 0 = the sampler's default budget from the step count."}),
            "cfg_pp": _CFG_PP,
        }}

    def get_sampler(self, pair, rtol, atol, max_nfe, cfg_pp=False):
        name = _spec_named("rk_adaptive", pair) + ("_cfg_pp" if cfg_pp else "")
        base = SAMPLERS[name].fn

        def run(*args, **kwargs):
            stats = {}
            out = base(*args, stats=stats, **kwargs)
            log.info("[Sampler Lab] %s: %s", name, ", ".join(f"{k}={v}" for k, v in stats.items()))
            return out
        opts = {"tableau": pair, "rtol": rtol, "atol": atol, "max_nfe": max_nfe or None}
        return (ksampler(name, opts, fn=functools.wraps(base)(run)),)


class SamplerLabImplicitRK(_SamplerNode):
    DESCRIPTION = ("Implicit Runge-Kutta (Gauss-Legendre, Radau IIA) solved by fixed-point iteration: very accurate "
                   "per step; costs 1 + stages x iterations model calls per step.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "tableau": (list(IMPLICIT), {"default": "gauss_legendre2", "tooltip": "gauss_legendre2 (order 4), gauss_legendre3 (6), radau_iia2 (3), radau_iia3 (5)."}),
            "iterations": ("INT", {"default": 0, "min": 0, "max": 10, "tooltip": "Fixed-point iterations per step; 0 = the method's default (order - 1)."}),
            "cfg_pp": _CFG_PP}}

    def get_sampler(self, tableau, iterations, cfg_pp):
        opts = {"tableau": tableau, "iterations": iterations or None}
        return (ksampler(_spec_named("rk_implicit", tableau), opts, cfg_pp),)


class SamplerLabPLMS(_SamplerNode):
    DESCRIPTION = ("PLMS / PNDM (Liu et al. 2022): exponential Adams-Bashforth on the denoised, 1 model call per step; "
                   "PNDM warms up with pseudo-RK4 (4 calls for each of the first 3 steps).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "warmup": (["plms", "pndm"], {"default": "plms", "tooltip":
                       "plms: lower-order multistep warm-up (1 call per step); pndm: pseudo-RK4 warm-up (+9 calls)."}),
            "order": ("INT", {"default": 4, "min": 1, "max": 4, "tooltip":
                      "How many past denoised values the multistep uses (4 = the paper's PLMS)."}),
            "cfg_pp": _CFG_PP}}

    def get_sampler(self, warmup, order, cfg_pp):
        return (ksampler("lab_" + warmup, {"order": order}, cfg_pp),)


class SamplerLabUniC(_SamplerNode):
    DESCRIPTION = ("Adds UniPC's corrector (UniC, Zhao et al. 2023) after every step of ANY sampler, reusing the next "
                   "model evaluation: one order more accuracy for no extra model calls.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "sampler": ("SAMPLER", {"tooltip": "Any k-diffusion style sampler (pack, core, or another pack's KSAMPLER)."}),
            "order": ("INT", {"default": 2, "min": 1, "max": 4, "tooltip": "Corrector order (uses this many past model outputs)."}),
            "variant": (list(VARIANTS), {"default": "bh2", "tooltip": "UniPC's B(h): bh1 or bh2 (only differs at order 1)."}),
            "mode": (list(MODES), {"default": "stream", "tooltip":
                     "stream: for 1-call-per-step samplers (euler, dpmpp_2m, PLMS ...); per_step: for multi-call samplers (heun, RK)."}),
        }}

    def get_sampler(self, sampler, order, variant, mode):
        base_fn = getattr(sampler, "sampler_function", None)
        if base_fn is None:
            raise ValueError("UniC needs a k-diffusion style SAMPLER (KSAMPLER); this one has no sampler_function")
        base = functools.partial(base_fn, **getattr(sampler, "extra_options", {}))
        spec = dataclasses.replace(SAMPLERS["lab_euler_unic"], name="unic", fn=with_unic(base, order, variant, mode), options={})
        return (comfy.samplers.KSAMPLER(bridge.adapt_sampler(spec), inpaint_options=getattr(sampler, "inpaint_options", {})),)


class SamplerLabRestart(_SamplerNode):
    DESCRIPTION = ("Restart sampling (Xu et al. 2023): Heun ODE steps, plus segments where noise is added back and the "
                   "segment is re-solved, which contracts accumulated errors.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"segments": ("STRING", {"default": "default", "tooltip":
            "Comma-separated 'low-high:repeatsxsteps' in the model's own sigma (eps/v models: e.g. '0.1-2.0:2x4'; "
            "flow models run 1 -> 0: e.g. '0.1-0.6:2x4'). 'default' = the paper's default scaled to the schedule; "
            "'none' = plain Heun."}),
            "cfg_pp": _CFG_PP}}

    def get_sampler(self, segments, cfg_pp=False):
        name = "lab_restart_cfg_pp" if cfg_pp else "lab_restart"
        text = segments.strip()
        if text.lower() == "default":
            return (ksampler(name),)
        parse_segments(text)  # validate now: the error names the bad token
        return (ksampler(name, {"segments": text}),)


class SamplerLabTCD(_SamplerNode):
    DESCRIPTION = "TCD strategic stochastic sampling (Zheng et al. 2024) for TCD LoRAs and distilled models."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"gamma": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip":
            "Stochasticity: 0 = deterministic DDIM, higher = more fresh noise each step (TCD recommends 0.3; more detail "
            "with lower values)."})}}

    def get_sampler(self, gamma):
        return (ksampler("lab_tcd", {"gamma": gamma}),)


_STOCHASTIC = {"ancestral_euler": "lab_ancestral_euler", "sde_dpmpp_2m": "lab_sde_dpmpp_2m",
               "sde_dpmpp_2m_heun": "lab_sde_dpmpp_2m_heun", "sde_dpmpp_3m": "lab_sde_dpmpp_3m"}


class SamplerLabStochastic(_SamplerNode):
    DESCRIPTION = ("Ancestral / SDE samplers whose noise injection is right for flow models (SD3, Flux, Wan) as well "
                   "as eps and v models. Noise comes from the seed; SDE forms use Brownian noise (stable across steps).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "method": (list(_STOCHASTIC), {"default": "sde_dpmpp_2m", "tooltip": "Ancestral Euler, or SDE-DPM-Solver++ 2M (midpoint / heun) or 3M."}),
            "eta": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": "Amount of fresh noise: 0 = deterministic ODE solver, 1 = full SDE / ancestral."}),
            "s_noise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.01, "tooltip": "Scale of the added noise (1 = exact)."}),
        }}

    def get_sampler(self, method, eta, s_noise):
        return (ksampler(_STOCHASTIC[method], {"eta": eta, "s_noise": s_noise}),)


_NODES = {
    "SamplerLabRungeKutta": (SamplerLabRungeKutta, "Runge-Kutta Sampler"),
    "SamplerLabAdaptiveRK": (SamplerLabAdaptiveRK, "Adaptive RK Sampler"),
    "SamplerLabImplicitRK": (SamplerLabImplicitRK, "Implicit RK Sampler"),
    "SamplerLabPLMS": (SamplerLabPLMS, "PLMS / PNDM Sampler"),
    "SamplerLabUniC": (SamplerLabUniC, "UniC Corrector"),
    "SamplerLabRestart": (SamplerLabRestart, "Restart Sampler"),
    "SamplerLabTCD": (SamplerLabTCD, "TCD Sampler"),
    "SamplerLabStochastic": (SamplerLabStochastic, "Flow-safe SDE Sampler"),
}
NODE_CLASS_MAPPINGS = {k: v[0] for k, v in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {k: v[1] + " (Sampler Lab)" for k, v in _NODES.items()}
