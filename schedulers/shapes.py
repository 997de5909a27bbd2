"""Parametric schedule shapes ComfyUI's scheduler dropdown lacks (core has some only as
separate SIGMAS nodes with hand-typed sigma_min / sigma_max; these read the model's range).

- polyexponential(rho): log sigma polynomial in the step ramp (k-diffusion
  get_sigmas_polyexponential). rho = 1 is core's "exponential", so lab_polyexp uses rho = 2.
- laplace(mu, beta): log-SNR at evenly spaced quantiles of a Laplace(mu, beta) distribution
  truncated to the model's range (Hang et al. 2024, "Improved Noise Schedule for Diffusion
  Training", arXiv:2407.03297).
- vp(beta_d, beta_min, eps_s): uniform steps in the time of the VP-SDE (Song et al. 2021,
  arXiv:2011.13456, Eq. 33 / Karras et al. 2022, Table 1 "VP" schedule).
- beta_schedule(alpha, beta): timesteps at the quantiles of a Beta(alpha, beta) distribution (Lee et al.
  2024, "Beta Sampling is All You Need", arXiv:2407.12173); lab_beta57 is the popular
  alpha = 0.5, beta = 0.7 shape (RES4LYF's "beta57"; core's "beta" is 0.6 / 0.6).
All start at the model's sigma_max and end with ..., sigma >= sigma_min, 0. polyexponential and
beta read the model's own range / table (flow shift included); laplace and vp are laid out on
the base noise scale and then shifted like the model (common.log_ve_to_model).
"""
import math

import torch

from . import common
from .registry import register
from .spec import SchedulerSpec


def _positive(name, value):
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def polyexponential(model_sigmas, steps, rho=1.0):
    """sigma_i = exp(log s_min + (1 - i/(n-1))^rho (log s_max - log s_min)), i < n; then 0.

    k-diffusion get_sigmas_polyexponential ("polynomial in log sigma"), on the model's own
    sigma_min / sigma_max (model units; flow models included, as core's exponential does).
    rho > 1 spends more steps at low noise, rho < 1 at high noise.
    """
    common.check_steps(steps)
    rho = _positive("rho", rho)
    lo, hi = math.log(model_sigmas.sigma_min), math.log(model_sigmas.sigma_max)
    ramp = torch.linspace(1.0, 0.0, steps, dtype=common.F64) ** rho
    sigmas = torch.exp(lo + ramp * (hi - lo))
    sigmas[0] = model_sigmas.sigma_max
    return common.finish(sigmas)


def _laplace_cdf(v, mu, b):
    z = (v - mu) / b
    return torch.where(z < 0, 0.5 * torch.exp(z.clamp(max=0)), 1.0 - 0.5 * torch.exp(-z.clamp(min=0)))


def _laplace_ppf(p, mu, b):
    return torch.where(p < 0.5, mu + b * torch.log(2.0 * p), mu - b * torch.log(2.0 * (1.0 - p)))


def laplace(model_sigmas, steps, mu=0.0, beta=0.5):
    """Laplace schedule: log sigma at evenly spaced quantiles of Laplace(mu, beta).

    lambda = log sigma of the VE-equivalent noise (= -half-log-SNR; Hang et al. 2024 put a
    Laplace density on it; k-diffusion get_sigmas_laplace samples its quantiles). Here the
    distribution is truncated to the model's range [log sigma_min, log sigma_max] and the steps
    sit at quantiles p_i = (1 - x_i) F(hi) + x_i F(lo), x_i = i/(n-1): the first sigma is exactly
    sigma_max, the last before 0 exactly sigma_min, and no two steps share a sigma (k-diffusion
    clamps instead, which repeats sigma_max / sigma_min when the tails leave the range).
    For flow models lambda is the base (unshifted) log noise and the model's shift k is applied,
    s = sigmoid(lambda + log k) (common.log_ve_to_model): mu = 0 centres an unshifted flow
    model's steps at s = 1/2.
    """
    common.check_steps(steps)
    beta = _positive("beta", beta)
    if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not math.isfinite(mu):
        raise ValueError(f"mu must be a finite number, got {mu!r}")
    bounds = common.model_to_base_ve(model_sigmas, [model_sigmas.sigma_min, model_sigmas.sigma_max]).log()
    f_lo, f_hi = _laplace_cdf(bounds, float(mu), beta).tolist()
    x = torch.linspace(0.0, 1.0, steps, dtype=common.F64)
    lam = _laplace_ppf((1.0 - x) * f_hi + x * f_lo, float(mu), beta)
    sigmas = common.log_ve_to_model(model_sigmas, lam).clamp(model_sigmas.sigma_min, model_sigmas.sigma_max)
    sigmas[0] = model_sigmas.sigma_max
    return common.finish(sigmas)


def _vp_time(sigma_ve, beta_d, beta_min):
    """Inverse of sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1)."""
    L = torch.log1p(torch.as_tensor(sigma_ve, dtype=common.F64) ** 2)
    if beta_d == 0.0:
        return L / beta_min
    return (torch.sqrt(beta_min ** 2 + 2.0 * beta_d * L) - beta_min) / beta_d


def vp(model_sigmas, steps, beta_d=19.9, beta_min=0.1, eps_s=1e-3):
    """VP-SDE schedule: sigma(t) = sqrt(exp(beta_d t^2/2 + beta_min t) - 1), t uniform.

    Song et al. 2021 (VP-SDE, Eq. 33) as in Karras et al. 2022 Table 1 and k-diffusion
    get_sigmas_vp, but the t range is fitted to the model: t from min(1, t(sigma_max)) down to
    max(eps_s, t(sigma_min)), sigma taken as the base VE-equivalent noise (flow: s = k sigma /
    (1 + k sigma) with the model's shift k, common.log_ve_to_model). The first sigma is the
    model's sigma_max (flow: sigma(1) = 151.7 gives s < 1, replaced by 1 = pure noise).
    """
    common.check_steps(steps)
    beta_d = float(beta_d)
    beta_min = float(beta_min)
    if not (math.isfinite(beta_d) and beta_d >= 0) or not (math.isfinite(beta_min) and beta_min >= 0) \
            or beta_d + beta_min <= 0:
        raise ValueError(f"beta_d and beta_min must be >= 0 and not both 0, got {beta_d}, {beta_min}")
    eps_s = _positive("eps_s", eps_s)
    if eps_s >= 1.0:
        raise ValueError(f"eps_s must be in (0, 1), got {eps_s}")
    ve_max = common.model_to_base_ve(model_sigmas, model_sigmas.sigma_max)
    ve_min = common.model_to_base_ve(model_sigmas, model_sigmas.sigma_min)
    t_hi = min(1.0, float(_vp_time(ve_max, beta_d, beta_min)))
    t_lo = max(eps_s, float(_vp_time(ve_min, beta_d, beta_min)))
    if t_lo > t_hi:
        raise ValueError(f"eps_s={eps_s} is above the VP time of the model's sigma_max ({t_hi:.4g}); lower eps_s")
    t = torch.linspace(t_hi, t_lo, steps, dtype=common.F64)
    log_sigma = 0.5 * torch.log(torch.expm1(0.5 * beta_d * t ** 2 + beta_min * t))
    sigmas = common.log_ve_to_model(model_sigmas, log_sigma).clamp(model_sigmas.sigma_min, model_sigmas.sigma_max)
    sigmas[0] = model_sigmas.sigma_max
    return common.finish(sigmas)


def beta_schedule(model_sigmas, steps, alpha=0.6, beta=0.6):
    """Beta schedule: timesteps at Beta(alpha, beta) quantiles of 1 - i/n, i = 0..n-1.

    Lee et al. 2024 (arXiv:2407.12173): t_i = F^-1(1 - i/n) (T - 1) on the model's own table.
    Unlike core's "beta" the timesteps are not rounded and nothing is dropped: fractional t is
    read with log-linear interpolation, so the result always has exactly steps + 1 values.
    Quantiles via scipy.special.betaincinv (scipy ships with ComfyUI).
    """
    common.check_steps(steps)
    a = _positive("alpha", alpha)
    b = _positive("beta", beta)
    from scipy.special import betaincinv
    q = 1.0 - torch.arange(steps, dtype=common.F64) / steps
    x = torch.from_numpy(betaincinv(a, b, q.numpy())).to(common.F64)
    n = model_sigmas.sigmas.numel()
    sigmas = common.table_sigma(model_sigmas, x * (n - 1))
    sigmas[0] = model_sigmas.sigma_max
    return common.finish(sigmas)


def _with(fn, label, **opts):
    def preset(model_sigmas, steps):
        return fn(model_sigmas, steps, **opts)
    preset.__name__ = f"{fn.__name__}_{label}"
    preset.__doc__ = f"{fn.__name__} with {opts}; see {fn.__name__}()."
    return preset


_K = "k-diffusion sampling.py"
register(SchedulerSpec(
    name="lab_polyexp", fn=_with(polyexponential, "rho2", rho=2.0),
    summary=("polyexponential, rho=2 (log sigma quadratic in the ramp: more steps at low noise; "
             "rho=1 is core's exponential)"),
    citation=f"Crowson, {_K} get_sigmas_polyexponential", options={"rho": 2.0}))
register(SchedulerSpec(
    name="lab_laplace", fn=_with(laplace, "default", mu=0.0, beta=0.5),
    summary="Laplace schedule (mu=0, beta=0.5): steps concentrated around SNR 1 (flow: shifted like the model)",
    citation="Hang et al. 2024, Improved Noise Schedule for Diffusion Training, arXiv:2407.03297",
    options={"mu": 0.0, "beta": 0.5}))
register(SchedulerSpec(
    name="lab_vp", fn=_with(vp, "default", beta_d=19.9, beta_min=0.1, eps_s=1e-3),
    summary="VP-SDE schedule (beta_d=19.9, beta_min=0.1, eps_s=1e-3), time range fitted to the model",
    citation="Song et al. 2021, arXiv:2011.13456, Eq. 33; Karras et al. 2022, arXiv:2206.00364, Table 1",
    options={"beta_d": 19.9, "beta_min": 0.1, "eps_s": 1e-3}))
register(SchedulerSpec(
    name="lab_beta57", fn=_with(beta_schedule, "57", alpha=0.5, beta=0.7),
    summary="beta schedule with alpha=0.5, beta=0.7 ('beta57'), no rounding, always steps+1 sigmas",
    citation="Lee et al. 2024, Beta Sampling is All You Need, arXiv:2407.12173",
    options={"alpha": 0.5, "beta": 0.7}))
