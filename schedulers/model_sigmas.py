"""Pure constructors of ModelSigmas for the common model families (tests, benchmarks, the lab model).

SD1.x / SDXL: DDPM "scaled_linear" betas, beta_start 0.00085, beta_end 0.012, 1000 steps
(Rombach et al. 2022 configs); sigma_t = sqrt((1 - abar_t) / abar_t).
Flow (SD3 / Flux / Wan): t_i = i / 1000, i = 1..1000, shifted as shift t / (1 + (shift - 1) t)
(Esser et al. 2024, eq. 23).
"""
import torch

from .spec import ModelSigmas


def discrete_vp_sigmas(beta_start=0.00085, beta_end=0.012, timesteps=1000):
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, timesteps, dtype=torch.float64) ** 2
    abar = torch.cumprod(1.0 - betas, dim=0)
    return ((1 - abar) / abar) ** 0.5


def flow_shift(t, shift):
    return shift * t / (1 + (shift - 1) * t)


def sd_model_sigmas():
    """eps / v SD-style model (ComfyUI ModelSamplingDiscrete defaults)."""
    sig = discrete_vp_sigmas()

    def percent_to_sigma(p):
        if p <= 0.0:
            return 999999999.9
        if p >= 1.0:
            return 0.0
        t = (1.0 - p) * 999.0
        lo = int(t)
        hi = min(lo + 1, 999)
        w = t - lo
        return float(torch.exp((1 - w) * sig[lo].log() + w * sig[hi].log()))
    return ModelSigmas(sigmas=sig.to(torch.float32), kind="ve", percent_to_sigma=percent_to_sigma)


def flow_model_sigmas(shift=3.0, timesteps=1000):
    t = torch.arange(1, timesteps + 1, dtype=torch.float64) / timesteps

    def percent_to_sigma(p):
        if p <= 0.0:
            return 1.0
        if p >= 1.0:
            return 0.0
        return float(flow_shift(torch.tensor(1.0 - p, dtype=torch.float64), shift))
    return ModelSigmas(sigmas=flow_shift(t, shift).to(torch.float32), kind="flow",
                       percent_to_sigma=percent_to_sigma, shift=shift)
