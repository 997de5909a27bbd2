"""Sampler Chain: a SAMPLER that runs one SAMPLER down to a switch point and another below it (the pure
part is samplers/chain.py; the split rule schedulers/boundary.py)."""
import functools
import inspect

import torch

import comfy.k_diffusion.sampling as k_sampling
import comfy.samplers

from ..samplers.chain import chain
from ..schedulers.boundary import split_index_at_fraction, split_index_at_sigma

CATEGORY = "sampling/Sampler Lab/samplers"
SWITCH_MODES = ("fraction", "sigma")


def _part(sampler, name):
    fn = getattr(sampler, "sampler_function", None)
    if fn is None:
        raise ValueError(f"{name} must be a k-diffusion style SAMPLER (KSAMPLER, e.g. KSamplerSelect or a Sampler Lab "
                         "sampler node); this one has no sampler_function")
    return fn, dict(getattr(sampler, "extra_options", {}) or {})


def _takes_noise_sampler(fn, options):
    if "noise_sampler" in options:
        return False
    try:
        return "noise_sampler" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _same(a, b):
    if a is b:
        return True
    try:
        return a.sampler_function is b.sampler_function and bool(a.extra_options == b.extra_options)
    except Exception:  # options that cannot be compared (tensors): treat as different samplers
        return False


def chain_sampler(sampler_high, sampler_low, mode, switch):
    """The chained KSAMPLER (see samplers/chain.py for what carries across the switch)."""
    fn_a, opts_a = _part(sampler_high, "sampler_high")
    fn_b, opts_b = _part(sampler_low, "sampler_low")
    if mode == "fraction":
        split_index_at_fraction(torch.tensor([1.0, 0.0]), switch, name="switch")  # a bad fraction fails here
        split_index = functools.partial(split_index_at_fraction, fraction=switch, name="switch")
    elif mode == "sigma":
        split_index = functools.partial(split_index_at_sigma, boundary=switch, name="switch")
    else:
        raise ValueError(f"mode must be one of {SWITCH_MODES}, got {mode!r}")
    share = (_takes_noise_sampler(fn_a, opts_a), _takes_noise_sampler(fn_b, opts_b))

    def run_options(x, sigmas, extra_args):
        """One Brownian path over the whole schedule for the parts that accept a noise_sampler."""
        if not any(share):
            return {}, {}
        positive = sigmas[sigmas > 0]
        tree = k_sampling.BrownianTreeNoiseSampler(x, positive.min(), sigmas.max(),
                                                   seed=(extra_args or {}).get("seed"), cpu=True)
        return tuple({"noise_sampler": tree} if s else {} for s in share)

    fn = chain(functools.partial(fn_a, **opts_a), functools.partial(fn_b, **opts_b), split_index,
               same=_same(sampler_high, sampler_low), run_options=run_options)
    return comfy.samplers.KSAMPLER(fn, inpaint_options=getattr(sampler_high, "inpaint_options", {}))


class SamplerLabSamplerChain:
    DESCRIPTION = ("Runs one sampler from the start of the schedule down to a switch point and another from there to "
                   "the end (e.g. an SDE sampler for structure, a high-order ODE sampler for detail). Works with any "
                   "SAMPLER, core's or the pack's.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "sampler_high": ("SAMPLER", {"tooltip": "The sampler for the high-noise steps (above the switch)."}),
            "sampler_low": ("SAMPLER", {"tooltip": "The sampler for the low-noise steps (below the switch)."}),
            "mode": (list(SWITCH_MODES), {"default": "fraction", "tooltip":
                     "fraction: `switch` is a fraction of the steps (0.5 = first half on sampler_high); sigma: steps "
                     "starting at a noise level >= `switch` run on sampler_high."}),
            "switch": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 10000.0, "step": 0.01, "tooltip":
                       "Where to switch: a fraction in [0, 1] or a sigma inside the schedule (see mode)."}),
        }}

    def get_sampler(self, sampler_high, sampler_low, mode, switch):
        return (chain_sampler(sampler_high, sampler_low, mode, switch),)


NODE_CLASS_MAPPINGS = {"SamplerLabSamplerChain": SamplerLabSamplerChain}
NODE_DISPLAY_NAME_MAPPINGS = {"SamplerLabSamplerChain": "Sampler Chain (Sampler Lab)"}
