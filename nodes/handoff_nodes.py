"""Two-model hand-off at a sigma (Wan 2.2 high/low-noise experts, SDXL base + refiner): a node that
splits any SIGMAS at a boundary, and a sampler node that runs both models in one go. The split rule and
the published boundaries live in schedulers/boundary.py (pure)."""
import torch

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview

from ..schedulers.boundary import MODES, PRESETS, split, split_index_at_fraction, split_index_at_sigma

CATEGORY = "sampling/Sampler Lab/hand-off"
_TIP_MODE = ("How `boundary` is given: sigma (the model's own noise level), timestep (the model's timestep: "
             "flow models 1000 x sigma, as Wan's configs write it; needs a model) or fraction (of the steps, "
             "0.5 = first half on the high-noise side).")
_TIP_BOUNDARY = ("Steps that start at a noise level >= the boundary run on the high-noise side. Ignored when a "
                 "preset is chosen.")
_TIP_PRESET = ("A model family's published boundary (Wan 2.2 A14B: T2V sigma 0.875, I2V sigma 0.900, from its "
               "configs); 'custom' uses mode + boundary.")


def timestep_to_sigma(model_sampling, t):
    """The sigma whose model_sampling.timestep() is t (bisection in log sigma: works for every model class)."""
    lo, hi = float(model_sampling.sigma_min), float(model_sampling.sigma_max)
    ts = [float(model_sampling.timestep(torch.tensor([v], dtype=torch.float64)).reshape(-1)[0]) for v in (lo, hi)]
    if not min(ts) - 1e-6 <= t <= max(ts) + 1e-6:
        raise ValueError(f"boundary timestep {t:.6g} is outside this model's timesteps [{min(ts):.6g}, {max(ts):.6g}]: "
                         "give it in the model's units (Wan / SD3: 0-1000; Flux-style models: 0-1) or use mode 'sigma'")
    a, b = torch.tensor(lo, dtype=torch.float64).log(), torch.tensor(hi, dtype=torch.float64).log()
    for _ in range(80):
        mid = (a + b) / 2
        if float(model_sampling.timestep(mid.exp().reshape(1)).reshape(-1)[0]) < t:
            a = mid
        else:
            b = mid
    return float(((a + b) / 2).exp())


def switch_index(sigmas, mode, boundary, preset="custom", model=None):
    """The number of steps on the high-noise side (see schedulers/boundary.py)."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {list(PRESETS)}, got {preset!r}")
    if PRESETS[preset] is not None:
        return split_index_at_sigma(sigmas, PRESETS[preset], name=f"preset {preset!r}: boundary")
    if mode == "fraction":
        return split_index_at_fraction(sigmas, boundary)
    if mode == "timestep":
        if model is None:
            raise ValueError("mode 'timestep' needs the model input connected (to turn the timestep into a sigma)")
        boundary = timestep_to_sigma(model.get_model_object("model_sampling"), float(boundary))
    elif mode != "sigma":
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return split_index_at_sigma(sigmas, boundary)


def boundary_inputs():
    return {"mode": (list(MODES), {"default": "sigma", "tooltip": _TIP_MODE}),
            "boundary": ("FLOAT", {"default": 0.875, "min": 0.0, "max": 10000.0, "step": 0.005,
                                   "tooltip": _TIP_BOUNDARY}),
            "preset": (list(PRESETS), {"default": "custom", "tooltip": _TIP_PRESET})}


class SamplerLabSplitAtBoundary:
    DESCRIPTION = ("Splits a schedule where one model hands over to another (Wan 2.2 high/low-noise experts, a "
                   "refiner): high_sigmas then low_sigmas take exactly the schedule's steps.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("SIGMAS", "SIGMAS", "INT")
    RETURN_NAMES = ("high_sigmas", "low_sigmas", "switch_step")
    OUTPUT_TOOLTIPS = ("The steps from the start down to the boundary (for the high-noise model).",
                       "The steps from the boundary to the end (for the low-noise model).",
                       "Steps on the high-noise side: KSamplerAdvanced end_at_step / start_at_step.")
    FUNCTION = "split"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sigmas": ("SIGMAS", {"tooltip": "The whole schedule (from a scheduler node)."}),
                             **boundary_inputs()},
                "optional": {"model": ("MODEL", {"tooltip": "Needed only for mode 'timestep' (its model_sampling "
                                                            "turns the timestep into a sigma)."})}}

    def split(self, sigmas, mode, boundary, preset, model=None):
        k = switch_index(sigmas, mode, boundary, preset, model)
        high, low = split(sigmas, k)
        return (high, low, k)


def sample_handoff(guider_high, guider_low, noise, x, sampler, sigmas, k, mask=None, callback=None,
                   disable_pbar=True, seed=0):
    """The two-model run: guider_high samples the first k steps of `sigmas` from `noise`, guider_low
    the rest from where it left off. The low part adds no noise of its own (its noise is zeros: the
    latent already holds the noise of sigmas[k], as KSamplerAdvanced's add_noise=disable does) and a
    stochastic sampler there draws from seed + 1, so its noise differs from the high part's.
    callback(step, x0, x, total) counts steps over the whole schedule. Returns the latent (outer scale,
    as guider.sample returns it)."""
    high, low = split(sigmas, k)
    steps = sigmas.shape[-1] - 1
    zeros = torch.zeros(noise.shape, dtype=noise.dtype, layout=noise.layout, device=noise.device)
    if k > 0:
        x = guider_high.sample(noise, x, sampler, high, denoise_mask=mask, callback=callback,
                               disable_pbar=disable_pbar, seed=seed)
    if k < steps:
        def offset(step, x0, xs, total):
            if callback is not None:
                return callback(step + k, x0, xs, steps)
        x = guider_low.sample(zeros if k > 0 else noise, x, sampler, low, denoise_mask=mask, callback=offset,
                              disable_pbar=disable_pbar, seed=seed + 1 if k > 0 else seed)
    return x


def _guider(model, positive, negative, cfg):
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    return guider


class SamplerLabTwoModelSampler:
    DESCRIPTION = ("Samples with a high-noise model above the boundary and a low-noise model below it, in one node "
                   "(Wan 2.2 A14B experts, or a base model and its refiner); each with its own cfg.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_high": ("MODEL", {"tooltip": "The model for the high-noise steps (Wan 2.2: the high_noise "
                                                "expert)."}),
            "model_low": ("MODEL", {"tooltip": "The model for the low-noise steps (Wan 2.2: the low_noise expert; "
                                               "SDXL: the refiner)."}),
            "positive": ("CONDITIONING", {"tooltip": "Positive conditioning, used by both models."}),
            "negative": ("CONDITIONING", {"tooltip": "Negative conditioning, used by both models."}),
            "cfg_high": ("FLOAT", {"default": 4.0, "min": 0.0, "max": 100.0, "step": 0.1, "tooltip":
                         "CFG scale of the high-noise model (Wan 2.2 T2V config: 4.0)."}),
            "cfg_low": ("FLOAT", {"default": 3.0, "min": 0.0, "max": 100.0, "step": 0.1, "tooltip":
                        "CFG scale of the low-noise model (Wan 2.2 T2V config: 3.0)."}),
            "sampler": ("SAMPLER", {"tooltip": "The sampler for both parts (a Sampler Chain node gives two)."}),
            "sigmas": ("SIGMAS", {"tooltip": "The whole schedule; it is split at the boundary."}),
            "noise_seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "control_after_generate": True,
                                   "tooltip": "Seed of the starting noise (the low-noise part of a stochastic sampler "
                                              "uses seed + 1)."}),
            "add_noise": ("BOOLEAN", {"default": True, "tooltip": "Start from fresh noise (off: continue a latent "
                                                                  "that already holds the noise of sigmas[0])."}),
            "latent_image": ("LATENT", {"tooltip": "The latent to sample (an empty latent for text-to-image/video)."}),
            **boundary_inputs()}}

    def sample(self, model_high, model_low, positive, negative, cfg_high, cfg_low, sampler, sigmas, noise_seed,
               add_noise, latent_image, mode, boundary, preset):
        k = switch_index(sigmas, mode, boundary, preset, model_high)
        steps = sigmas.shape[-1] - 1
        latent = latent_image.copy()
        x = comfy.sample.fix_empty_latent_channels(model_high, latent["samples"])
        zeros = torch.zeros(x.shape, dtype=x.dtype, layout=x.layout, device="cpu")
        noise = comfy.sample.prepare_noise(x, noise_seed, latent.get("batch_index")) if add_noise else zeros
        high, low = _guider(model_high, positive, negative, cfg_high), _guider(model_low, positive, negative, cfg_low)
        x = sample_handoff(high, low, noise, x, sampler, sigmas, k, latent.get("noise_mask"),
                           latent_preview.prepare_callback(model_high, steps), not comfy.utils.PROGRESS_BAR_ENABLED,
                           noise_seed)
        out = latent.copy()
        out["samples"] = x.to(comfy.model_management.intermediate_device())
        return (out,)


_NODES = {
    "SamplerLabSplitAtBoundary": (SamplerLabSplitAtBoundary, "Split Sigmas at Boundary"),
    "SamplerLabTwoModelSampler": (SamplerLabTwoModelSampler, "Two-Model Sampler (hand-off)"),
}
NODE_CLASS_MAPPINGS = {k: v[0] for k, v in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {k: v[1] + " (Sampler Lab)" for k, v in _NODES.items()}
