"""Two textbook references for tests, benchmarks and documentation pictures (pure torch).

karras_sigmas: Karras et al. 2022, eq. 5 (rho = 7), followed by 0.
euler: Euler on dx/dsigma = (x - D) / sigma in ComfyUI's x-space (= DDIM for VE and flow);
1 call per step, the last step to 0 returns D. `denoise(x, sigma)` -> x0 estimate.
"""
import torch


def karras_sigmas(n, sigma_max=14.614642, sigma_min=0.0292, rho=7.0):
    """n sigmas from sigma_max to sigma_min (float64), then 0."""
    i = torch.arange(n, dtype=torch.float64) / max(n - 1, 1)
    s = (sigma_max ** (1 / rho) + i * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([s, s.new_zeros(1)])


def euler(denoise, x, sigmas):
    for s, sn in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        d = denoise(x, s)
        x = d if sn == 0 else x + (sn - s) * (x - d) / s
    return x
