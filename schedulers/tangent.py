"""Tangent-shaped schedule (lab_bong_tangent): an arctan step curve over the model's timesteps.

The shape users know as "bong_tangent" (RES4LYF; no paper): few steps near pure noise and near the
end, many around a pivot, the noise level falling along an arctan ("tangent") curve. Ours is one
normalised arctan curve, defined here (not a port of that pack's code or parameters):
    g(u) = 1/2 - arctan(slope (u - pivot)) / pi,   u_i = i / steps,  i = 0..steps - 1,
    f_i  = (g(u_i) - g(1)) / (g(0) - g(1))        (f_0 = 1; f = 0 would be u = 1, replaced by sigma = 0)
and f_i is the timestep fraction of the model's own table (1 = sigma_max; common.fraction_to_model),
so flow shift and discrete tables are honoured like ComfyUI's "simple" schedule. pivot in (0, 1) is where
along the run the noise falls fastest; slope > 0 is how sharply (slope -> 0 tends to uniform timesteps,
i.e. "simple"; large slopes approach a step at the pivot).
"""
import math

import torch

from . import common
from .registry import register
from .spec import SchedulerSpec


def _checked(name, value, lo, hi):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and lo < value < hi
    if not ok:
        raise ValueError(f"{name} must be a number in ({lo}, {hi}), got {value!r}")
    return float(value)


def tangent_fractions(steps, pivot=0.6, slope=6.0):
    """f_i of the module docstring for i = 0..steps - 1 (float64, descending from 1)."""
    common.check_steps(steps)
    pivot = _checked("pivot", pivot, 0.0, 1.0)
    slope = _checked("slope", slope, 0.0, 1000.0)
    u = torch.arange(steps, dtype=common.F64) / steps
    g = 0.5 - torch.atan(slope * (u - pivot)) / math.pi
    g0, g1 = 0.5 + math.atan(slope * pivot) / math.pi, 0.5 - math.atan(slope * (1.0 - pivot)) / math.pi
    return (g - g1) / (g0 - g1)


def tangent(model_sigmas, steps, pivot=0.6, slope=6.0):
    """Tangent-shaped schedule on the model's timesteps: steps + 1 sigmas, first sigma_max, last 0."""
    sigmas = common.fraction_to_model(model_sigmas, tangent_fractions(steps, pivot, slope))
    sigmas[0] = model_sigmas.sigma_max
    return common.finish(sigmas)


def _default(model_sigmas, steps):
    return tangent(model_sigmas, steps)


register(SchedulerSpec(
    name="lab_bong_tangent", fn=_default,
    summary="tangent-shaped (arctan) schedule over the model's timesteps, pivot 0.6, slope 6: the shape known "
            "as bong_tangent, defined in schedulers/tangent.py",
    citation="arctan step curve (shape popularised as RES4LYF's bong_tangent; no paper); definition in the help page",
    options={"pivot": 0.6, "slope": 6.0}))
