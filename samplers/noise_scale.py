"""The model's noise scale: how newer ComfyUI sizes the fresh noise of stochastic samplers.

Newer ComfyUI gives flow model_sampling a `noise_scale` s (ModelSamplingDiscreteFlow.set_noise_scale,
default 1; the ModelNoiseScale node sets it, Comfy-Org/ComfyUI PR #13817) and uses it twice:
- CONST.noise_scaling(sigma, noise, latent) = sigma * (s * noise) + (1 - sigma) * latent
  (comfy/model_sampling.py @ 2fd20839): the starting noise, and the re-noising of sample_lcm;
- each stochastic sampler in comfy/k_diffusion/sampling.py starts with
  s_noise = s_noise * getattr(model_sampling, "noise_scale", 1.0), model_sampling read from
  model.inner_model.model_patcher (that file is not in the stored source index; the rule is quoted
  from it, at core commit b78cec87, by public packs that mirror core's samplers).
So a sampler's fresh noise is s times what it would be: the pack's samplers multiply their s_noise
(or, where they have none, their fresh noise) by noise_scale(model). ComfyUI 0.3.75 has no such
attribute: the factor is exactly 1.0 there and nothing changes.

Pure: reads attributes of the object a sampler is given, imports nothing from ComfyUI.
"""


def model_sampling_of(model):
    """model_sampling of the model a k-diffusion sampler receives, or None if unreachable.

    ComfyUI passes KSamplerX0Inpaint, whose inner_model (the guider's model wrapper) has the
    model_patcher core's samplers read it from; the BaseModel's own attribute is the fallback."""
    inner = getattr(model, "inner_model", None)
    try:
        return inner.model_patcher.get_model_object("model_sampling")
    except AttributeError:
        return getattr(getattr(inner, "inner_model", None), "model_sampling", None)


def noise_scale(model):
    """getattr(model_sampling, "noise_scale", 1.0) as a float, as newer ComfyUI reads it."""
    return float(getattr(model_sampling_of(model), "noise_scale", 1.0))
