"""TCD: Strategic Stochastic Sampling (Zheng et al. 2024, "Trajectory Consistency
Distillation", Alg. 4, arXiv:2402.19159), for VE and flow (CONST) models.

Each step from sigma to sigma_next predicts D = x0 and eps = (x - alpha D) / beta, jumps
deterministically (DDIM) to the intermediate s = (1 - gamma) sigma_next,
    x_s = alpha_s D + beta_s eps,
and adds noise back to sigma_next with the forward transition from s:
    x_next = (alpha_next / alpha_s) x_s + sqrt(beta_next^2 - (alpha_next beta_s / alpha_s)^2) z.
VE: x_next = x_s + sqrt(sigma_next^2 - s^2) z. Flow: x_s = (1 - s) D + s eps and
x_next = ((1 - sigma_next) / (1 - s)) x_s + sqrt(sigma_next^2 - ((1 - sigma_next) s / (1 - s))^2) z,
so x_next = (1 - sigma_next) x0 + sigma_next n in law when (D, eps) are exact.
This is samplers.stochastic.renoise_step with rho^2 = 1 - (alpha_next beta_s / (alpha_s beta_next))^2.

gamma (the paper's gamma, often called eta in UIs) in [0, 1]: 0 is deterministic DDIM,
1 is LCM-style multistep consistency sampling (x_next = alpha_next D + beta_next z).
Here gamma is a fraction of the model's sigma (the paper uses the discrete timestep; for flow
models sigma is the timestep / 1000, for VE models it differs: a documented approximation).
TCD's s is exact for a trajectory-consistency model, which returns the PF-ODE point at s; with
an ordinary denoiser (posterior mean) gamma > 0 under-disperses by an amount that does not
vanish with more steps (tests/test_tcd.py measures it against the exact Gaussian recursion).
"""
import math

import torch

from .common import alpha_beta
from .registry import register
from .spec import SamplerSpec
from .stochastic import check_option, renoise_loop


def tcd_rho(model_kind, sigma_next, gamma):
    """Fresh-noise fraction rho of the TCD step to sigma_next (0 when sigma_next = 0)."""
    if sigma_next <= 0.0:
        return 0.0
    s = (1.0 - gamma) * sigma_next
    a_s, b_s = alpha_beta(model_kind, s)
    a_n, b_n = alpha_beta(model_kind, sigma_next)
    keep = (a_n * b_s) / (a_s * b_n)
    return math.sqrt(max(1.0 - keep * keep, 0.0))


@torch.no_grad()
def sample_lab_tcd(model, x, sigmas, extra_args=None, callback=None, disable=None,
                   model_kind="ve", gamma=0.3, noise_sampler=None, uncond=None):
    """TCD strategic stochastic sampling (Zheng et al. 2024, Alg. 4: tau_n' = (1 - gamma) tau_n,
    here in sigma). Order 1 (gamma = 0: DDIM), 1 model call per step.
    Noise: seeded Gaussian stream from extra_args["seed"]."""
    gamma = check_option("gamma", gamma, 0.0, 1.0)
    return renoise_loop(model, x, sigmas, extra_args, callback, model_kind,
                        lambda s, s_n: tcd_rho(model_kind, s_n, gamma), noise_sampler, uncond=uncond)


register(SamplerSpec(
    name="lab_tcd", fn=sample_lab_tcd, family="tcd", order=1, model_calls=1, stochastic=True,
    flow_safe=True,
    summary="TCD strategic stochastic sampling (gamma 0.3): DDIM to (1-gamma) sigma_next, then re-noise",
    citation="Zheng et al. 2024, Trajectory Consistency Distillation, Alg. 4",
    options={"gamma": 0.3}))
register(SamplerSpec(
    name="lab_tcd_cfg_pp", fn=sample_lab_tcd, family="tcd", order=1, model_calls=1, stochastic=True,
    flow_safe=True, cfg_pp=True,
    summary="CFG++ TCD (guided x0, unconditional re-noising; cfg 0.5-2)",
    citation="Zheng et al. 2024 Alg. 4 with Chung et al. 2024 Alg. 1",
    options={"gamma": 0.3}))
