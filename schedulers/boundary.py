"""Where a schedule is handed from one model (or sampler) to another: the split rule and presets.

Rule (Wan 2.2's, wan/text2video.py and image2video.py: `if t.item() >= boundary: high-noise model`, with
`boundary = config.boundary * num_train_timesteps`): a step belongs to the high-noise part when the
sigma it starts from is >= the boundary. With k such steps, high = sigmas[:k + 1] and low = sigmas[k:]
(the two share sigmas[k]; running them one after the other is the same steps as the whole schedule).
Comparisons allow a relative 1e-6, so a float32 schedule value typed as the boundary (0.9) counts as on it.

The boundary can be given as
- "sigma": in the model's own sigma units;
- "timestep": the model's timestep (ComfyUI's model_sampling.timestep convention: flow models
  t = 1000 sigma, which is Wan's t; eps/v models the index in the 1000-entry table); the node converts
  it to sigma with the model;
- "fraction": of the schedule's steps (0.5 = the first half of the steps on the high-noise side).
A sigma / timestep boundary must lie inside the schedule [sigma_last, sigma_first]; a fraction in [0, 1].

Published boundaries (PRESETS, sigma of a flow model = timestep / 1000): Wan 2.2 A14B T2V 0.875 and
I2V 0.900 (Wan-Video/Wan2.2, wan/configs/wan_t2v_A14B.py and wan_i2v_A14B.py: `boundary`; their
sample_shift is 12.0 and 5.0). SDXL's refiner (Podell et al. 2023, arXiv:2307.01952) has no published
sigma boundary: give a fraction of the steps (diffusers' base + refiner example uses 0.8).
"""
import math

import torch

MODES = ("sigma", "timestep", "fraction")
PRESETS = {
    "custom": None,
    "Wan 2.2 T2V A14B (sigma 0.875)": 0.875,
    "Wan 2.2 I2V A14B (sigma 0.900)": 0.900,
}
PRESET_CITATION = "Wan-Video/Wan2.2 wan/configs/wan_t2v_A14B.py, wan_i2v_A14B.py (boundary 0.875 / 0.900)"


def _values(sigmas):
    if not torch.is_tensor(sigmas) or sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError("sigmas must be a schedule with at least 2 values (1 step): connect a scheduler's SIGMAS")
    return sigmas.detach().to("cpu", torch.float64).tolist()


def split_index_at_sigma(sigmas, boundary, name="boundary"):
    """k = the number of steps whose start sigma is >= boundary (the high-noise steps)."""
    sig = _values(sigmas)
    if not (isinstance(boundary, (int, float)) and math.isfinite(boundary)):
        raise ValueError(f"{name} must be a finite number, got {boundary!r}")
    lo, hi = min(sig[0], sig[-1]), max(sig[0], sig[-1])
    if not lo <= boundary <= hi:
        raise ValueError(f"{name} sigma {boundary:.6g} is outside the schedule, which runs from sigma {sig[0]:.6g} "
                         f"to {sig[-1]:.6g}: pick a boundary between them (or use mode 'fraction'); check that the "
                         "boundary is in this model's units (flow models: sigma = timestep / 1000)")
    return sum(1 for s in sig[:-1] if s >= boundary * (1.0 - 1e-6))   # float32 schedules: 0.9 is 0.89999998


def split_index_at_fraction(sigmas, fraction, name="boundary"):
    """k = round(fraction * steps): the first k steps are the high-noise part."""
    sig = _values(sigmas)
    if not (isinstance(fraction, (int, float)) and math.isfinite(fraction) and 0.0 <= fraction <= 1.0):
        raise ValueError(f"{name} as a fraction of the steps must be in [0, 1], got {fraction!r}")
    return int(math.floor(fraction * (len(sig) - 1) + 0.5))


def split(sigmas, k):
    """(high, low) = (sigmas[:k + 1], sigmas[k:])."""
    return sigmas[:k + 1], sigmas[k:]
