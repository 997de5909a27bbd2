"""Helpers shared by the sampler families (pure torch)."""
import math

import torch


def to_d(x, sigma, denoised):
    """dx/dsigma of the probability-flow ODE in ComfyUI's x-space (VE and flow alike)."""
    return (x - denoised) / sigma


def alpha_beta(model_kind, sigma):
    """Signal and noise scale of x = alpha x0 + beta n for the model kind ("ve" or "flow")."""
    if model_kind == "flow":
        return 1.0 - sigma, sigma
    if model_kind == "ve":
        return torch.ones_like(sigma) if torch.is_tensor(sigma) else 1.0, sigma
    raise ValueError(f"model_kind must be 've' or 'flow', got {model_kind!r}")


def half_log_snr(model_kind, sigma):
    """lambda = log(alpha / beta): the exponential integrators' time (DPM-Solver, UniPC)."""
    a, b = alpha_beta(model_kind, sigma)
    return torch.log(torch.as_tensor(a, dtype=sigma.dtype, device=sigma.device)) - torch.log(sigma)


def log_snr(model_kind, sigma):
    """lambda = log(alpha / beta) for a float sigma: +inf at sigma = 0, -inf where alpha = 0 (the
    flow start sigma = 1). The float twin of half_log_snr, for per-step coefficients."""
    a, b = alpha_beta(model_kind, sigma)
    if float(a) <= 0.0:
        return -math.inf
    return math.inf if sigma == 0 else math.log(float(a)) - math.log(sigma)


def report(callback, x, i, sigma, sigma_hat, denoised):
    """Send ComfyUI's callback keys (previews, progress bar, interrupts) if a callback is set."""
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": denoised})


def batch_sigma(x, sigma):
    """sigma broadcast to the batch, as ComfyUI's samplers call the model (sigma * s_in)."""
    return sigma * x.new_ones([x.shape[0]])
