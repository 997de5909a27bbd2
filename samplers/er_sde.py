"""ER-SDE-Solver (Cui et al. 2025, "Elucidating the Solution Space of Extended Reverse-Time SDE for
Diffusion Models", arXiv:2309.06169, Sec. 4: the VP data-prediction ER-SDE-Solver-3)
for VE and flow (CONST) models, with a CFG++ form.

With x = alpha x0 + beta n, the ER-SDE time is lam = beta / alpha (VE: lam = sigma; flow:
lam = sigma / (1 - sigma)) and phi(lam) is the noise scaler. One step lam_s -> lam_t, r = phi(lam_t) / phi(lam_s):
    x_t = (alpha_t / alpha_s) r x_s + alpha_t (1 - r) D                                  (stage 1)
        + alpha_t (dl + phi(lam_t) S_1) D'            dl = lam_t - lam_s, S_1 = int_lt^ls dlam / phi  (stage 2)
        + alpha_t (dl^2 / 2 + phi(lam_t) S_2) D''     S_2 = int_lt^ls (lam - lam_s) / phi dlam          (stage 3)
        + alpha_t sqrt(lam_t^2 - lam_s^2 r^2) z.
(The Taylor terms of the exact solution in lam, integrated by parts.) D' and D'' are divided-difference estimates in lam
from the previous denoised values (D' = first divided difference, D'' = 2 x the second), so stage k
needs k - 1 earlier steps; the first step is stage 1 only. No extra model calls.

phi (solver_type, as ComfyUI's SamplerER_SDE node):
- "er_sde" (default): phi(lam) = lam (e^(lam^0.3) + 10), the default of ComfyUI and of the paper's code.
- "reverse_sde": phi(lam) = lam^(1 + eta) (eta = 1: the reverse-time SDE, DDPM-like).
- "ode": phi(lam) = lam: r = lam_t / lam_s, the noise term is exactly 0 and the step is DDIM plus
  Taylor corrections (a deterministic solver of the PF-ODE; order: see `derivative`).
A callable noise_scaler(lam_tensor) -> tensor (core's keyword) overrides solver_type.

derivative: "backward" (default, the paper code's and core's) estimates D' by the first divided
difference, which is only first-order accurate, so with stage 3 the solver is of order 2 (measured in
tests/test_er_sde.py); "newton" uses the derivative of the quadratic through the last three points,
D' = f01 + f012 (lam_s - lam_1), which makes stage 3 order 3.

quadrature for S_1, S_2: "riemann" (default) is the left Riemann sum on 200 points used by the
paper's reference code and by ComfyUI's sample_er_sde (so the same options give the same numbers
as core on VE models); "simpson" is composite Simpson on 200 panels (S to ~1e-8 relative or better),
for when the O(1/200) quadrature error matters (high step counts with the ODE scaler).

Flow start sigma = 1: alpha_s = 0, lam_s = inf. The step is taken in its limit: with
L = lim lam / phi(lam) (evaluated at lam = 1e12; 0 for the ER-SDE and reverse-SDE scalers, 1 for the
ODE), r -> 0, lam_s r -> phi(lam_t) L and (alpha_t / alpha_s) r -> alpha_t phi(lam_t) L / beta_s, so
    x_t = (alpha_t phi(lam_t) L / beta_s) x + alpha_t D + alpha_t sqrt(lam_t^2 - (phi(lam_t) L)^2) z
(the ODE gives DDIM, the default scaler x_t = alpha_t D + beta_t z). ComfyUI instead moves sigma = 1 to
the model's percent_to_sigma(1e-4) and evaluates the model there. A point at lam = inf carries no slope
information and is not used for D', D''.

CFG++ (Chung et al. 2024, arXiv:2406.08070, Alg. 1): with `uncond` (the unconditional denoised D_u
of the step's model call) the term that carries the state, (alpha_t / alpha_s) r x_s, is applied to
the CFG++ state x_s + alpha_s (D - D_u) (guided data, unconditional noise), i.e. the step adds
alpha_t r (D - D_u). Stages 2 and 3 and the noise use the guided D as the base does. D_u = D gives
the base sampler bit for bit.
"""
import math

import torch

from .common import alpha_beta, batch_sigma, report
from .noise import noise_sampler_for
from .noise_scale import noise_scale
from .registry import register
from .spec import SamplerSpec
from .stochastic import check_option, sigma_list

POINTS = 200          # quadrature points / panels per step (the reference code's 200)
LAM_INFINITY = 1e12   # lam_s standing for the flow start sigma = 1 (alpha = 0) in the limit lam_s r


def er_sde_scaler(lam):
    """ER-SDE noise scaler phi(lam) = lam (exp(lam^0.3) + 10) (ComfyUI's and the reference code's default)."""
    return lam * (torch.exp(lam ** 0.3) + 10.0)


def resolve_scaler(solver_type, eta, noise_scaler):
    """phi as a function of a float64 tensor; validates solver_type / eta / noise_scaler."""
    if noise_scaler is not None:
        if not callable(noise_scaler):
            raise ValueError(f"noise_scaler must be a function of lam (a tensor) or None, got {noise_scaler!r}")
        return noise_scaler
    if solver_type == "er_sde":
        return er_sde_scaler
    if solver_type == "reverse_sde":
        power = 1.0 + check_option("eta", eta, 0.0, 100.0)
        return lambda lam: lam ** power
    if solver_type == "ode":
        return lambda lam: lam
    raise ValueError(f"solver_type must be 'er_sde', 'reverse_sde' or 'ode', got {solver_type!r}")


def _phi(scaler, lam):
    """phi at one lam (float in, float out)."""
    return float(scaler(torch.tensor([lam], dtype=torch.float64))[0])


def _integrals(scaler, lam_t, lam_s, quadrature):
    """(S_1, S_2) = (int_lt^ls dlam / phi, int_lt^ls (lam - lam_s) / phi dlam) on [lam_t, lam_s]."""
    width = lam_s - lam_t
    if quadrature == "riemann":
        lam = lam_t + torch.arange(POINTS, dtype=torch.float64) * (width / POINTS)
        weights = torch.full_like(lam, width / POINTS)
    else:
        lam = lam_t + torch.arange(POINTS + 1, dtype=torch.float64) * (width / POINTS)
        weights = torch.ones_like(lam)
        weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
        weights = weights * (width / (3 * POINTS))
    inv = weights / scaler(lam)
    return float(inv.sum()), float((inv * (lam - lam_s)).sum())


def er_lambda(model_kind, sigma):
    """lam = beta / alpha (inf at the flow start alpha = 0)."""
    a, b = alpha_beta(model_kind, sigma)
    return b / a if a > 0 else math.inf


def _taylor_terms(history, denoised, lam_s, lam_t, phi_t, scaler, max_stage, quadrature, derivative):
    """(stage 2 + stage 3 terms before alpha_t, or None; this step's first divided difference D').
    history: [(lam, D, D')] of the previous steps, newest first."""
    if max_stage < 2 or not history:
        return None, None
    lam_1, d_1, slope_1 = history[0]
    s_1, s_2 = _integrals(scaler, lam_t, lam_s, quadrature)
    dl = lam_t - lam_s
    slope = (denoised - d_1) / (lam_s - lam_1)
    terms = (dl + phi_t * s_1) * slope                                      # stage 2
    if max_stage >= 3 and slope_1 is not None:
        curvature = (slope - slope_1) / ((lam_s - history[1][0]) / 2.0)     # D'' = 2 f[s, 1, 2]
        terms = terms + (dl * dl / 2.0 + phi_t * s_2) * curvature           # stage 3
        if derivative == "newton":  # D'(lam_s) of the quadratic through the 3 points: f01 + f012 (lam_s - lam_1)
            terms = terms + ((dl + phi_t * s_1) * (lam_s - lam_1) / 2.0) * curvature
    return terms, slope


@torch.no_grad()
def sample_lab_er_sde(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve",
                      s_noise=1.0, noise_sampler=None, noise_scaler=None, max_stage=3, solver_type="er_sde",
                      eta=1.0, quadrature="riemann", derivative="backward", uncond=None):
    """ER-SDE-Solver-3 (Cui et al. 2025, Sec. 4, VP data-prediction form), VE and flow; 1 model call per step,
    the first two steps use stages 1 and 2. Order of the deterministic part (solver_type "ode"): 2 with
    the default (core's) backward-difference D'; 3 with derivative="newton" and quadrature="simpson" from a
    smooth start; max_stage 1 is DDIM (order 1). Noise: fresh seeded Gaussian per step from
    extra_args["seed"] (as core). uncond: CFG++ form (module docstring)."""
    extra_args = {} if extra_args is None else extra_args
    s_noise = check_option("s_noise", s_noise, 0.0) * noise_scale(model)   # samplers/noise_scale.py
    if max_stage not in (1, 2, 3):
        raise ValueError(f"max_stage must be 1, 2 or 3, got {max_stage!r}")
    if quadrature not in ("riemann", "simpson"):
        raise ValueError(f"quadrature must be 'riemann' or 'simpson', got {quadrature!r}")
    if derivative not in ("backward", "newton"):
        raise ValueError(f"derivative must be 'backward' or 'newton', got {derivative!r}")
    scaler = resolve_scaler(solver_type, eta, noise_scaler)
    sig = sigma_list(sigmas, model_kind)
    noise = noise_sampler
    history = []   # [(lam, D, first divided difference or None)], newest first, finite lam only
    for i in range(len(sig) - 1):
        denoised = model(x, batch_sigma(x, sigmas[i]), **extra_args)
        d_u = uncond() if uncond is not None else None
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        s, s_n = sig[i], sig[i + 1]
        if s_n == s:
            continue
        if s_n == 0.0:
            x = denoised
            continue
        lam_s, lam_t = er_lambda(model_kind, s), er_lambda(model_kind, s_n)
        a_s, a_t = alpha_beta(model_kind, s)[0], alpha_beta(model_kind, s_n)[0]
        phi_t = _phi(scaler, lam_t)
        if math.isfinite(lam_s):
            r = phi_t / _phi(scaler, lam_s)
            c_x, lam_r = (a_t / a_s) * r, lam_s * r
        else:  # flow start: the limit lam_s -> inf, with L = lim lam / phi(lam) (module docstring)
            r, lam_r = 0.0, LAM_INFINITY * phi_t / _phi(scaler, LAM_INFINITY)
            c_x = a_t * lam_r / alpha_beta(model_kind, s)[1]
        x = c_x * x + (a_t * (1.0 - r)) * denoised                          # stage 1
        if d_u is not None:
            x = x + (a_t * r) * (denoised - d_u)                            # CFG++: c_x alpha_s (D - D_u)
        if math.isfinite(lam_s):
            taylor, slope = _taylor_terms(history, denoised, lam_s, lam_t, phi_t, scaler, max_stage, quadrature,
                                          derivative)
            if taylor is not None:
                x = x + a_t * taylor                                        # stages 2 and 3
            history = [(lam_s, denoised, slope)] + history[:1]
        variance = lam_t * lam_t - lam_r * lam_r   # <= 1e-12 relative is round-off (the ODE scaler gives 0)
        c_z = a_t * math.sqrt(variance) * s_noise if variance > 1e-12 * lam_t * lam_t else 0.0
        if c_z > 0.0:
            if noise is None:
                noise = noise_sampler_for("gaussian", x, extra_args, model_kind)
            x = x + c_z * noise(s, s_n)
    return x


_SUMMARY = "ER-SDE-Solver-3 (extended reverse-time SDE, noise scaler lam (e^lam^0.3 + 10))"
_CITATION = "Cui et al. 2025 (ER-SDE-Solver), arXiv:2309.06169, Sec. 4"
_FLOW_NOTE = "correct for VE and flow (CONST) models"

register(SamplerSpec(name="lab_er_sde", fn=sample_lab_er_sde, family="er_sde", order=2, model_calls=1,
                     stochastic=True, flow_safe=True, summary=f"{_SUMMARY}; {_FLOW_NOTE}", citation=_CITATION))
register(SamplerSpec(name="lab_er_sde_cfg_pp", fn=sample_lab_er_sde, family="er_sde", order=2, model_calls=1,
                     stochastic=True, flow_safe=True, cfg_pp=True,
                     summary=f"CFG++ {_SUMMARY} (guided x0, unconditional noise in the state term; cfg 0.5-2); "
                             f"{_FLOW_NOTE}",
                     citation=_CITATION + "; Chung et al. 2024 (CFG++) Alg. 1"))
