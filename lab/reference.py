"""High-accuracy reference solution of the probability-flow ODE (for tests and benchmarks).

In ComfyUI's x-space every parameterisation obeys dx/dsigma = (x - D(x, sigma)) / sigma
(VE for eps/v models, rectified flow for CONST models). With tau = log(sigma) this is
dx/dtau = x - D(x, e^tau): smooth on the whole range (including sigma = 1 for flow),
so classic RK4 (order 4, 4 denoiser calls per step) on a uniform tau grid in float64
converges fast. Going to sigma = 0 we stop at `sigma_floor` and return D there
(the ODE's limit; the difference is O(sigma_floor^2)).
"""
import math

import torch

from .mixture import alpha_beta, LabMixtureError

Parameterization = ("eps", "v", "flow")


def to_ve(x, sigma, parameterization):
    """Map model x-space (x, sigma) to variance-exploding (x / alpha, beta / alpha)."""
    a, b = alpha_beta(parameterization, torch.as_tensor(sigma, dtype=torch.float64))
    return x / a, b / a


def from_ve(x_ve, sigma_ve, parameterization):
    """Inverse of to_ve: for flow, s = sigma_ve / (1 + sigma_ve), x = x_ve (1 - s)."""
    if parameterization == "flow":
        s = sigma_ve / (1.0 + sigma_ve)
        return x_ve * (1.0 - s), s
    return x_ve, sigma_ve


@torch.no_grad()
def reference_solution(denoise, x, sigma_start, sigma_end=0.0, steps=1024, sigma_floor=1e-6):
    """Integrate the PF-ODE from sigma_start to sigma_end with `steps` RK4 steps in log sigma.

    denoise(x, sigma) returns E[x0 | x] in the same x-space. Returns float64.
    """
    sigma_start, sigma_end = float(sigma_start), float(sigma_end)
    if not sigma_start > 0 or sigma_end < 0 or sigma_end > sigma_start:
        raise LabMixtureError(f"need sigma_start > 0 and 0 <= sigma_end <= sigma_start, got {sigma_start}, {sigma_end}")
    x = x.to(torch.float64)
    stop = max(sigma_end, sigma_floor)
    if stop < sigma_start:
        taus = torch.linspace(math.log(sigma_start), math.log(stop), steps + 1, dtype=torch.float64)
        f = lambda xx, tau: xx - denoise(xx, math.exp(tau))  # noqa: E731 - ODE right-hand side
        for i in range(steps):
            t0, h = float(taus[i]), float(taus[i + 1] - taus[i])
            k1 = f(x, t0)
            k2 = f(x + 0.5 * h * k1, t0 + 0.5 * h)
            k3 = f(x + 0.5 * h * k2, t0 + 0.5 * h)
            k4 = f(x + h * k3, t0 + h)
            x = x + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
    if sigma_end == 0.0:
        x = denoise(x, stop)
    return x
