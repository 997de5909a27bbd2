"""diffusers' timestep spacings on the model's own discrete timesteps.

The rules of diffusers' DDIMScheduler / EulerDiscreteScheduler `set_timesteps` (config
`timestep_spacing`, `steps_offset`), with T = number of entries in the model's sigma table
(1000 for SD-family and ComfyUI flow models) and n = steps:
- "leading":  r = T // n; t_i = i * r for i = n-1, ..., 0; then t += steps_offset.
  SD1.5 / SDXL scheduler configs ship steps_offset = 1, so lab_leading uses 1. Leading never
  starts at T - 1 (50 steps: 981, 961, ...; 1 step: t = 1): it does NOT start at sigma_max.
- "trailing": t_i = round(T - i * T / n) - 1 for i = 0..n-1 (starts at T - 1 = sigma_max).
  What few-step distilled models (SDXL-Turbo, SDXL-Lightning, Hyper-SD) are sampled with, and
  the fix proposed by Lin et al. 2024 ("Common Diffusion Noise Schedules and Sample Steps are
  Flawed", arXiv:2305.08891, Table 2).
- "linspace": t_i = linspace(0, T - 1, n) reversed, fractional (Euler) and read by linear
  interpolation of sigma between neighbouring table entries (diffusers' Euler
  interpolation_type="linear"); round_timesteps=True gives DDIM's rounded variant. At n = 1
  diffusers gets t = [0] (np.linspace(0, T-1, 1)), so a 1-step linspace starts at sigma_min.
sigma_i = table[t_i] (index clamped to [0, T-1], as Euler's np.interp does), then a final 0
(Euler's final_sigmas_type="zero"). Rounding is half-to-even, as numpy's. steps > T raises
ValueError (as diffusers' DDIMScheduler does).
On flow models the same rules index the model's (shifted) flow table, so shift is honoured.
"""
import torch

from . import common
from .registry import register
from .spec import SchedulerSpec

CITATION = ("diffusers DDIMScheduler / EulerDiscreteScheduler set_timesteps (timestep_spacing, "
            "steps_offset); Lin et al. 2024, arXiv:2305.08891, Table 2")
SPACINGS = ("leading", "trailing", "linspace")


def spacing_timesteps(num_train_timesteps, steps, spacing="trailing", steps_offset=0,
                      round_timesteps=False):
    """diffusers' inference timesteps (float64, descending order of noise) for a spacing."""
    common.check_steps(steps)
    T = int(num_train_timesteps)
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    if isinstance(steps_offset, bool) or not isinstance(steps_offset, int) or steps_offset < 0:
        raise ValueError(f"steps_offset must be an integer >= 0, got {steps_offset!r}")
    i = torch.arange(steps, dtype=common.F64)
    if spacing == "leading":
        return (i * (T // steps)).flip(0) + steps_offset
    if spacing == "trailing":
        return torch.round(T + i * (-(T / steps))) - 1
    t = torch.linspace(0, T - 1, steps, dtype=common.F64).flip(0)
    return torch.round(t) if round_timesteps else t


def diffusers_spacing(model_sigmas, steps, spacing="trailing", steps_offset=0, round_timesteps=False):
    """Sigmas of the model's own table at diffusers' timesteps for `spacing`, plus a final 0.

    steps_offset applies to "leading" only (as in diffusers); round_timesteps to "linspace"
    only (False: EulerDiscreteScheduler, True: DDIMScheduler).
    """
    table_len = model_sigmas.sigmas.numel()
    common.check_steps(steps)
    if steps > table_len:
        raise ValueError(f"steps ({steps}) must be <= the model's {table_len} timesteps for a diffusers "
                         "spacing (diffusers refuses this too); use fewer steps or another scheduler")
    t = spacing_timesteps(table_len, steps, spacing, steps_offset if spacing == "leading" else 0,
                          round_timesteps)
    return common.finish(common.table_sigma(model_sigmas, t, log_space=False))


def leading(model_sigmas, steps):
    """diffusers 'leading' with steps_offset=1 (SD1.5/SDXL configs); does not start at sigma_max."""
    return diffusers_spacing(model_sigmas, steps, "leading", steps_offset=1)


def trailing(model_sigmas, steps):
    """diffusers 'trailing' (turbo / lightning models): t = round(T - i T / n) - 1."""
    return diffusers_spacing(model_sigmas, steps, "trailing")


def linspace(model_sigmas, steps):
    """diffusers Euler 'linspace': fractional t = linspace(T - 1, 0, n), linear sigma interpolation."""
    return diffusers_spacing(model_sigmas, steps, "linspace")


register(SchedulerSpec(
    name="lab_leading", fn=leading,
    summary=("diffusers 'leading' spacing with steps_offset=1 (SD1.5/SDXL default configs); "
             "starts below sigma_max by design -- use lab_trailing for few steps"),
    citation=CITATION, options={"spacing": "leading", "steps_offset": 1}))
register(SchedulerSpec(
    name="lab_trailing", fn=trailing,
    summary="diffusers 'trailing' spacing: what turbo / lightning / hyper models expect at 1-8 steps",
    citation=CITATION, options={"spacing": "trailing"}))
register(SchedulerSpec(
    name="lab_linspace", fn=linspace,
    summary="diffusers Euler 'linspace' spacing (fractional timesteps, linear sigma interpolation)",
    citation=CITATION, options={"spacing": "linspace"}))
