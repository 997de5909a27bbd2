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
            x = rk4_step(f, x, float(taus[i]), float(taus[i + 1] - taus[i]))
    if sigma_end == 0.0:
        x = denoise(x, stop)
    return x


@torch.no_grad()
def piecewise_reference_solution(denoise, x, sigma_start, sigma_stop, breakpoints, steps_per_piece=1, max_step=0.05,
                                 step=None):
    """RK4 (or `step`, e.g. heun_step) in log sigma (as reference_solution) restarted at every breakpoint between sigma_start and
    sigma_stop (> 0), for a denoiser that is smooth between breakpoints but jumps at them.

    Why: ComfyUI's discrete (eps / v) model sampling feeds the network the NEAREST of its 1000 timesteps
    (ModelSamplingDiscrete.timestep is an argmin), so D(x, sigma) jumps where the nearest timestep changes;
    RK4 steps that straddle those jumps drop to about first order. Integrating piece by piece restores
    order 4 (4 calls per step). Each evaluation's log sigma is kept 1e-4 of a step inside the piece, so a
    denoiser that is ambiguous exactly at a breakpoint is only ever read on the piece's own side (error of that nudge: 1e-4 h |dD/dlog sigma|). A piece wider than max_step (in log sigma; e.g.
    above the model's largest sigma, where the timestep is clamped) gets as many more steps as it needs.
    Returns float64 x at sigma_stop (no final denoise).
    """
    sigma_start, sigma_stop = float(sigma_start), float(sigma_stop)
    if not 0 < sigma_stop <= sigma_start:
        raise LabMixtureError(f"need 0 < sigma_stop <= sigma_start, got {sigma_start}, {sigma_stop}")
    inner = sorted((float(b) for b in breakpoints if sigma_stop < float(b) < sigma_start), reverse=True)
    edges = [math.log(v) for v in [sigma_start] + inner + [sigma_stop]]
    x = x.to(torch.float64)
    step = step or rk4_step
    for hi, lo in zip(edges[:-1], edges[1:]):
        if hi == lo:
            continue
        n = int(steps_per_piece) * max(1, math.ceil((hi - lo) / max_step))
        nudge = 1e-4 * (hi - lo) / n
        f = lambda xx, tau, hi=hi, lo=lo, nudge=nudge: xx - denoise(  # noqa: E731 - ODE right-hand side
            xx, math.exp(min(hi - nudge, max(lo + nudge, tau))))
        taus = torch.linspace(hi, lo, n + 1, dtype=torch.float64)
        for i in range(n):
            x = step(f, x, float(taus[i]), float(taus[i + 1] - taus[i]))
    return x


def rk4_step(f, x, t0, h):
    """Classic RK4 (order 4, 4 calls)."""
    k1 = f(x, t0)
    k2 = f(x + 0.5 * h * k1, t0 + 0.5 * h)
    k3 = f(x + 0.5 * h * k2, t0 + 0.5 * h)
    k4 = f(x + h * k3, t0 + h)
    return x + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)


def heun_step(f, x, t0, h):
    """Heun's trapezoidal rule (order 2, 2 calls)."""
    k1 = f(x, t0)
    k2 = f(x + h * k1, t0 + h)
    return x + (h / 2.0) * (k1 + k2)


def nearest_timestep_breakpoints(log_sigmas):
    """Where a discrete model sampling's nearest-timestep choice changes: the midpoints (in log sigma)
    of consecutive entries of its log_sigmas table, as sigmas."""
    ls = torch.as_tensor(log_sigmas, dtype=torch.float64).flatten().sort().values
    return ((ls[1:] + ls[:-1]) / 2).exp().tolist()
