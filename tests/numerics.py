"""Shared helpers for numeric tests (pure torch, no ComfyUI)."""
import math

import torch

from lab import LabKModel, default_mixture, reference_solution


def fit_slope(steps, errors):
    """Least-squares slope of log(error) against log(steps): the observed order is -slope."""
    xs = [math.log(s) for s in steps]
    ys = [math.log(e) for e in errors]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((a - mx) * (b - my) for a, b in zip(xs, ys)) / sum((a - mx) ** 2 for a in xs)


def rms(a, b):
    return float(((a.to(torch.float64) - b.to(torch.float64)) ** 2).mean().sqrt())


def lab_problem(parameterization="eps", shape=(4, 8, 8), batch=2, seed=0, cfg=1.0, class_id=None):
    """(model, x_start, sigma_max) for the default lab mixture; x_start = sigma_max * noise
    for VE and pure noise for flow (sigma_max = 1)."""
    mix = default_mixture(shape=shape)
    cw = None
    if class_id is not None:
        cw = torch.nn.functional.one_hot(torch.tensor([class_id] * batch), mix.num_classes).to(torch.float64)
    model = LabKModel(mix, parameterization, class_weights=cw, cfg=cfg)
    sigma_max = 1.0 if parameterization == "flow" else 14.614642
    noise = torch.randn((batch,) + tuple(shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return model, noise * sigma_max, sigma_max


def reference(model, x, sigma_start, sigma_end=0.0, steps=2048):
    return reference_solution(model.denoise, x, sigma_start, sigma_end, steps=steps)


def log_grid(kind, s0, s1, n):
    """n steps uniform in log of the VE-equivalent sigma (beta / alpha), in the model's sigma."""
    if kind == "flow":
        a, b = math.log(s0 / (1 - s0)), math.log(s1 / (1 - s1))
        g = torch.linspace(a, b, n + 1, dtype=torch.float64).exp()
        return g / (1 + g)
    return torch.linspace(math.log(s0), math.log(s1), n + 1, dtype=torch.float64).exp()


_TRAJECTORIES = {}


def trajectory_problem(parameterization, s0, s1):
    """(model, x at s0 on an exact trajectory, exact solution at s1), cached."""
    key = (parameterization, s0, s1)
    if key not in _TRAJECTORIES:
        model, x, smax = lab_problem(parameterization)
        x = reference(model, x, smax, s0, steps=32)   # any start point will do
        _TRAJECTORIES[key] = (model, x, reference(model, x, s0, s1, steps=192))
    return _TRAJECTORIES[key]
