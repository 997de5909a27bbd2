"""Exponential Runge-Kutta samplers in the data-prediction form, driven by the phi tableaus of
phi_tableaus.py (res_2s/3s/5s, DPM-Solver++(2S)/(3S), Cox-Matthews ETDRK2/3/4).

Derivation. With x = alpha x0 + beta n (ComfyUI x-space: VE alpha = 1, beta = sigma; flow
alpha = 1 - sigma, beta = sigma), lambda = log(alpha / beta) and D(x, sigma) ~ x0, the PF-ODE in
y = x / alpha and time lambda is semilinear with L = -1:
    dy/dlambda = -y + D                     (DPM-Solver++, Lu et al. 2022, arXiv:2211.01095, eq. (9):
                                              x_t = (sigma_t/sigma_s) x_s + sigma_t int e^lambda x_theta dlambda)
so the explicit exponential RK method of Hochbruck & Ostermann (2005) with z = -h,
h = lambda' - lambda, and stage times lambda_i = lambda + c_i h reads in x-space
    X_i   = (beta_i / beta) x + alpha_i h sum_j a_ij(-h) K_j,     K_i = D(X_i, sigma_i)
    x_new = (beta' / beta) x + alpha' h sum_i b_i(-h) K_i
(e^{c_i z} y alpha_i = (beta_i / beta) x). Exact for constant D (b_1 + ... = phi_1, the linear part is
integrated exactly); a one-stage method would be DDIM.

Order: the tableau's classical order (2, 3 or 4; measured on the lab mixture in
tests/test_rk_exponential.py). Model calls per step: the tableau's stages; the final step to
sigma = 0 returns D(x, sigma_last) for 1 call (the limit of the DDIM step, as rk_explicit.py does).
So nfe(steps) = stages * (steps - 1) + 1 for a schedule ending at 0.

The flow start sigma = 1 has alpha = 0, lambda = -inf, h = inf: every stage with c_i < 1 would sit at
sigma = 1. A step from there runs the tableau's underlying classical RK (z = 0, same stages, same
order) in the data-prediction variable s = e^lambda of rk_explicit.py, which is finite at s = 0.
"""
import math

import torch

from .common import alpha_beta, log_snr, report
from .phi_tableaus import PHI_TABLEAUS
from .registry import register
from .rk_explicit import check_sigmas, check_unknown, combine, denoise, rk_step, sigma_at
from .spec import SamplerSpec


def sigma_of_lambda(model_kind, lam):
    """Inverse of log_snr: VE sigma = e^-lambda, flow sigma = 1 / (1 + e^lambda)."""
    return sigma_at(model_kind, math.exp(lam))


def exp_rk_step(model, x, sigma, sigma_next, tab, k1, model_kind, extra_args):
    """One exponential RK step sigma -> sigma_next > 0 (alpha(sigma) > 0); K_1 = k1 given.
    Costs tab.stages - 1 model calls. Returns x_new."""
    lam = log_snr(model_kind, sigma)
    h = log_snr(model_kind, sigma_next) - lam
    a, b = tab.coefficients(-h)
    ks = [k1]
    for i in range(1, tab.stages):
        sig_i = sigma_of_lambda(model_kind, lam + float(tab.c[i]) * h)
        alpha_i, _ = alpha_beta(model_kind, sig_i)
        x_i = combine(x, sig_i / sigma, alpha_i * h, a[i], ks)
        ks.append(denoise(model, x_i, sig_i, extra_args))
    alpha_next, _ = alpha_beta(model_kind, sigma_next)
    return combine(x, sigma_next / sigma, alpha_next * h, b, ks)


@torch.no_grad()
def sample_rk_exponential(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve",
                          tableau="res_2s", **unknown):
    """Exponential Runge-Kutta (Hochbruck & Ostermann 2005) in the data-prediction form of DPM-Solver++
    (Lu et al. 2022, eq. (9)), any tableau of phi_tableaus.PHI_TABLEAUS.

    Order: the tableau's classical order. Model calls per step: its stages; a final step to sigma = 0
    returns D(x, sigma_last) for 1 call.
    """
    name = f"lab exponential RK ({tableau})"
    check_unknown(unknown, name, ("tableau",))
    if tableau not in PHI_TABLEAUS:
        raise ValueError(f"{name}: tableau must be one of {', '.join(PHI_TABLEAUS)}, got {tableau!r}")
    tab = PHI_TABLEAUS[tableau]
    extra_args = {} if extra_args is None else extra_args
    sig = check_sigmas(sigmas, model_kind, name)
    for i in range(len(sig) - 1):
        k1 = denoise(model, x, sig[i], extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], k1)
        if sig[i + 1] == 0.0:
            x = k1  # final step to sigma = 0: the limit of the DDIM step (1 call)
        elif alpha_beta(model_kind, sig[i])[0] <= 0.0:
            x, _ = rk_step(model, x, sig[i], sig[i + 1], tab.underlying(), tab.stages, k1, model_kind, extra_args)
        else:
            x = exp_rk_step(model, x, sig[i], sig[i + 1], tab, k1, model_kind, extra_args)
    return x


_ENTRIES = (
    ("lab_res_2s", "res_2s", "RES 2-stage exponential RK (Hochbruck-Ostermann, c2 = 1/2)"),
    ("lab_res_3s", "res_3s", "RES 3-stage exponential RK (Hochbruck-Ostermann, c = 1/2, 2/3)"),
    ("lab_res_5s", "res_5s", "Hochbruck-Ostermann 5-stage exponential RK (stiff order 4, weak form)"),
    ("lab_dpmpp_2s", "dpmpp_2s", "DPM-Solver++(2S) singlestep, r = 1/2"),
    ("lab_dpmpp_3s", "dpmpp_3s", "DPM-Solver++(3S) singlestep, r = 1/3, 2/3"),
    ("lab_etdrk2", "etdrk2", "Cox-Matthews ETD2RK"),
    ("lab_etdrk3", "etdrk3", "Cox-Matthews ETD3RK"),
    ("lab_etdrk4", "etdrk4", "Cox-Matthews ETDRK4"),
)

for _name, _tab_name, _summary in _ENTRIES:
    _t = PHI_TABLEAUS[_tab_name]
    register(SamplerSpec(
        name=_name, fn=sample_rk_exponential, family="rk_exponential", order=_t.order,
        model_calls=_t.stages, warmup_calls=1 - _t.stages,
        summary=f"{_summary}, data prediction; order {_t.order}, {_t.stages} calls/step, 1 for the last step to 0",
        citation=_t.citation + "; data-prediction form: Lu et al. (2022) DPM-Solver++ eq. (9)",
        options={"tableau": _tab_name}))
