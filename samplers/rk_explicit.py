"""Explicit Runge-Kutta samplers: one generic stepper driven by a Butcher tableau (tableaus.py).

Integration variable (chosen on purpose): the data-prediction exponential form.
With x = alpha x0 + beta n (ComfyUI x-space: VE alpha = 1, beta = sigma; flow alpha = 1 - sigma,
beta = sigma), lambda = log(alpha / beta) and the denoiser D(x, sigma) ~ x0, the PF-ODE is
    d(x / beta) / d(e^lambda) = D(x, sigma)        (Lu et al. 2022, DPM-Solver++, arXiv:2211.01095, eq. (9):
                                                     x_t / sigma_t = x_s / sigma_s + int e^lambda x_theta dlambda)
so with time s = e^lambda = alpha / beta and state u = x / beta the right-hand side is just D:
the linear part of dx/dsigma = (x - D) / sigma is integrated exactly, and the tableau is applied
to u' = D(beta(s) u, sigma(s)). One RK step from sigma to sigma' (ds = s' - s) reads
    X_i    = (beta_i / beta) x + beta_i ds sum_j a_ij K_j,   K_i = D(X_i, sigma_i),  s_i = s + c_i ds
    x_new  = (beta' / beta) x + beta' ds sum_i b_i K_i.
Why this variable and not sigma or log-sigma (k-diffusion's heun is RK in sigma):
- exact when D is constant (the linear part); Euler in this variable is DDIM, the well-tested base;
- one code path for VE and flow through alpha/beta (samplers.common.alpha_beta): s = 1/sigma for
  VE and s = (1 - sigma) / sigma for flow;
- finite at the flow start sigma = 1 (s = 0). lambda itself is -inf there, and the noise-prediction
  form (DEIS' rho = beta/alpha, Zhang & Chen 2022) is infinite there; data prediction is also the
  form that stays bounded under strong CFG (DPM-Solver++ Sec. 3);
- the step in s is relative: ds / s = e^h - 1 for a lambda step h (a log-sigma step for VE), and
  the step times the Jacobian, ds beta dD/dx, is at most e^h - 1 (Gaussian data, VE:
  dD/dx = s_d^2 / (s_d^2 + sigma^2)): as mild as in log-sigma, no stiffness at either end.
The cost of this choice is that s = inf at sigma = 0, so the final step to sigma = 0 is handled
explicitly: it returns D(x, sigma_last) -- the exact limit of the first-order (DDIM) step, the same
as k-diffusion's Euler/Heun final step -- for 1 model call. Its error is O(sigma_last^2).

Model calls: `used_stages` per step (trailing zero-weight stages, i.e. the FSAL stage of
Bogacki-Shampine 3 and Dormand-Prince 5, are never evaluated: a fixed step does not need them),
and 1 for a final step to sigma = 0. So nfe(steps) = used_stages * (steps - 1) + 1 for a schedule
ending at 0 (the spec's warmup_calls is 1 - used_stages), used_stages * steps otherwise.

The helpers here (snr_time, sigma_at, denoise, combine, rk_step, check_sigmas, check_unknown) are
shared with rk_adaptive.py and rk_implicit.py.
"""
import math

import torch

from .common import alpha_beta, report
from .registry import register
from .spec import SamplerSpec
from .tableaus import EXPLICIT


def snr_time(model_kind, sigma):
    """s = alpha / beta = e^lambda for a float sigma (inf at sigma = 0)."""
    if sigma <= 0.0:
        return math.inf
    a, b = alpha_beta(model_kind, sigma)
    return a / b


def sigma_at(model_kind, s):
    """Inverse of snr_time: VE sigma = 1 / s, flow sigma = 1 / (1 + s)."""
    if math.isinf(s):
        return 0.0
    return 1.0 / s if model_kind == "ve" else 1.0 / (1.0 + s)


def denoise(model, x, sigma, extra_args):
    """D(x, sigma) for a float sigma, sigma passed per batch item (at least float32), D in x's dtype."""
    sig = torch.full((x.shape[0],), sigma, dtype=torch.promote_types(x.dtype, torch.float32), device=x.device)
    d = model(x, sig, **extra_args)
    return d if d.dtype == x.dtype else d.to(x.dtype)


def combine(x, ratio, scale, weights, ks):
    """ratio * x + scale * sum_j w_j k_j (zero weights skipped), in x's dtype."""
    out = x * ratio
    for w, k in zip(weights, ks):
        if w != 0.0:
            out.add_(k, alpha=scale * w)
    return out


def rk_step(model, x, sigma, sigma_next, tab, n_stages, k1, model_kind, extra_args):
    """One explicit RK step of `tab` (first n_stages stages; K_1 = k1 given) in the data-prediction
    variable s = alpha/beta. Returns (x_new, stage values K). Costs n_stages - 1 model calls."""
    s0 = snr_time(model_kind, sigma)
    ds = snr_time(model_kind, sigma_next) - s0
    ks = [k1]
    for i in range(1, n_stages):
        sig_i = sigma_at(model_kind, s0 + tab.c[i] * ds)
        x_i = combine(x, sig_i / sigma, sig_i * ds, tab.a[i][:i], ks)
        ks.append(denoise(model, x_i, sig_i, extra_args))
    return combine(x, sigma_next / sigma, sigma_next * ds, tab.b[:n_stages], ks), ks


def check_unknown(unknown, name, valid):
    """Reject options the sampler does not have (ValueError naming them and the valid ones)."""
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {', '.join(sorted(unknown))}; "
                         f"valid options are {', '.join(valid) or 'none'}")


def check_sigmas(sigmas, model_kind, name):
    """sigmas as floats (one host copy per run); each > 0 except possibly the last (= 0)."""
    alpha_beta(model_kind, 1.0)  # ValueError naming model_kind for a bad kind
    sig = sigmas.detach().to("cpu", torch.float64).reshape(-1).tolist()
    if any(not math.isfinite(v) or v <= 0.0 for v in sig[:-1]) or (sig and not sig[-1] >= 0.0):
        raise ValueError(f"{name}: sigmas must be finite and > 0, except the last which may be 0")
    if model_kind == "flow" and any(v > 1.0 + 1e-6 for v in sig):
        raise ValueError(f"{name}: sigmas for a flow model must lie in [0, 1]")
    return sig


def resolve(table, tableau, name):
    if tableau not in table:
        raise ValueError(f"{name}: tableau must be one of {', '.join(table)}, got {tableau!r}")
    return table[tableau]


@torch.no_grad()
def sample_rk_explicit(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve",
                       tableau="rk4", **unknown):
    """Explicit Runge-Kutta with any tableau of tableaus.EXPLICIT, in the data-prediction variable
    s = e^lambda (DPM-Solver++, Lu et al. 2022, eq. (9); see the module docstring).

    Order: the tableau's (2 to 5). Model calls per step: tableau.used_stages; a final step to
    sigma = 0 returns D(x, sigma_last) for 1 call.
    """
    name = f"lab_rk ({tableau})"
    check_unknown(unknown, name, ("tableau",))
    tab = resolve(EXPLICIT, tableau, name)
    extra_args = {} if extra_args is None else extra_args
    sig = check_sigmas(sigmas, model_kind, name)
    n_stages = tab.used_stages
    for i in range(len(sig) - 1):
        k1 = denoise(model, x, sig[i], extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], k1)
        if sig[i + 1] == 0.0:
            x = k1  # final step to sigma = 0: the limit of the DDIM step (1 call)
        else:
            x, _ = rk_step(model, x, sig[i], sig[i + 1], tab, n_stages, k1, model_kind, extra_args)
    return x


_ENTRIES = (
    ("lab_rk_midpoint", "midpoint", "Explicit midpoint rule (RK2)"),
    ("lab_rk_ralston", "ralston2", "Ralston's minimum-error RK2"),
    ("lab_rk_bosh3", "bosh3", "Bogacki-Shampine RK3"),
    ("lab_rk_ssprk3", "ssprk3", "Shu-Osher strong-stability-preserving RK3"),
    ("lab_rk4", "rk4", "Classic Runge-Kutta 4"),
    ("lab_rk4_38", "rk4_38", "Kutta's 3/8-rule RK4"),
    ("lab_rk_dopri5", "dopri5", "Dormand-Prince 5 (fixed step, FSAL stage skipped)"),
)

for _name, _tab_name, _summary in _ENTRIES:
    _t = EXPLICIT[_tab_name]
    register(SamplerSpec(
        name=_name, fn=sample_rk_explicit, family="rk_explicit", order=_t.order,
        model_calls=_t.used_stages, warmup_calls=1 - _t.used_stages,
        summary=f"{_summary} in the data-prediction variable e^lambda; {_t.used_stages} calls/step, "
                f"1 for the last step to 0",
        citation=_t.citation + "; variable: Lu et al. (2022) DPM-Solver++ eq. (9)",
        options={"tableau": _tab_name}))
