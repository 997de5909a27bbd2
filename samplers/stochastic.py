"""Ancestral and SDE samplers whose noise injection is right for VE and flow (CONST) models.

Every step is written for x = alpha x0 + beta n (ComfyUI x-space: VE alpha = 1, beta = sigma;
flow alpha = 1 - sigma, beta = sigma), with lambda = log(alpha / beta) and
q = exp(lambda - lambda_next) = (alpha beta_next) / (beta alpha_next), which stays finite at
the flow start sigma = 1 (alpha = 0, q = 0). With D the denoised x0 and eps = (x - alpha D) / beta:

Ancestral (DDIM-eta) step, Song et al. 2021 "Denoising Diffusion Implicit Models", Eq. 12,
written for any (alpha, beta):
    x_next = alpha_next D + beta_next (sqrt(1 - rho^2) eps + rho z),  z ~ N(0, I).
Its law at sigma_next is exactly alpha_next x0 + beta_next n whenever (D, eps) are the true
(x0, n): rho only trades deterministic noise for fresh noise. rho = 0 is DDIM (= Euler on the
PF-ODE in ComfyUI x-space, for both kinds); the DDPM posterior (Ho et al. 2020, Eq. 7) is
rho = sqrt(1 - q^2), and eta scales it: rho = min(eta sqrt(1 - q^2), 1). For VE this is
k-diffusion's sigma_down / sigma_up; for flow it is the same step carried to VE coordinates
(x / alpha, beta / alpha) and back: deterministic to an intermediate point, then the
signal is rescaled by alpha_next / alpha_down while fresh noise fills the variance (the
rectified-flow ancestral step). The naive VE step on flow sigmas (add sigma_up noise,
no rescaling) leaves the signal scale too large: tests/test_stochastic.py shows it fail.

SDE-DPM-Solver++ (Lu et al. 2022, "DPM-Solver++", Sec. 5 / App. B, SDE-DPM-Solver++(2M)),
with an eta family of reverse SDEs dy = (1 + eta)(D - y) dlambda + sqrt(2 eta) e^-lambda dW in
VE coordinates y = x / alpha (Karras et al. 2022, Eq. 6, Langevin rate eta dlambda). Exact
solution over a step h = lambda_next - lambda, with H = (1 + eta) h and u = lambda' - lambda:
    x_next = (beta_next / beta) q^eta x + alpha_next int_0^h (1+eta) e^-(1+eta)(h-u) D(u) du
             + beta_next sqrt(1 - q^(2 eta)) z.
D(u) is a Newton polynomial through the current and previous denoised values (1M/2M/3M);
its moments are int_0^1 H e^-H(1-t) t^n dt = I_n(H): I_0 = 1 - e^-H, I_n = 1 - n I_(n-1) / H.
eta = 0 is the deterministic DPM-Solver++(2M)/(3M); the noise is a Brownian path increment
(samplers.noise.StepBrownianNoise: one Brownian path drawn at the steps taken), so a seed gives a
result that converges as steps grow.
"""
import math

import torch

from .common import alpha_beta, batch_sigma, log_snr, report
from .noise import noise_sampler_for
from .noise_scale import noise_scale
from .registry import register
from .spec import SamplerSpec


def sigma_list(sigmas, model_kind):
    """The schedule as Python floats (one device sync per run), validated."""
    sig = sigmas.detach().to("cpu", torch.float64).reshape(-1).tolist()
    alpha_beta(model_kind, 0.5)  # validates model_kind
    if any(not math.isfinite(s) or s < 0 for s in sig):
        raise ValueError("sigmas must be finite and >= 0")
    if any(b > a for a, b in zip(sig, sig[1:])):
        raise ValueError("sigmas must not increase: these samplers only remove noise "
                         "(to add noise back use a deterministic sampler on flipped sigmas)")
    if model_kind == "flow" and sig and sig[0] > 1.0:
        raise ValueError(f"flow sigmas must be in [0, 1], got sigma {sig[0]:.4g}")
    return sig


def check_option(name, value, low, high=math.inf):
    """A float option in [low, high]; the message names the option and the fix."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (low <= v <= high):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return v


def snr_ratio(model_kind, sigma, sigma_next):
    """q = exp(-(lambda_next - lambda)) = alpha beta_next / (beta alpha_next), in [0, 1]."""
    a, b = alpha_beta(model_kind, sigma)
    a_n, b_n = alpha_beta(model_kind, sigma_next)
    return (a * b_n) / (b * a_n)


def renoise_step(x, denoised, model_kind, sigma, sigma_next, rho, noise, s_noise=1.0, uncond=None):
    """x_next = alpha_n D + beta_n (sqrt(1 - rho^2) eps + s_noise rho z): one model-free move
    to sigma_next that keeps a fraction sqrt(1 - rho^2) of the predicted noise (floats in).
    CFG++ (Chung et al. 2024, Alg. 1): with `uncond` (D_u) the kept noise is the unconditional
    estimate eps_u = (x - alpha D_u) / beta; written as a correction so D_u = D changes nothing."""
    a, b = alpha_beta(model_kind, sigma)
    a_n, b_n = alpha_beta(model_kind, sigma_next)
    c_x = b_n * math.sqrt(max(1.0 - rho * rho, 0.0)) / b
    out = x * c_x                                   # one new tensor; the rest is fused in place
    out.add_(denoised, alpha=a_n - c_x * a)
    if uncond is not None:
        out.add_(denoised - uncond, alpha=c_x * a)
    c_z = b_n * rho * s_noise
    if c_z > 0.0:
        out.add_(noise(sigma, sigma_next), alpha=c_z)
    return out


def ancestral_rho(model_kind, sigma, sigma_next, eta):
    """rho = min(eta sqrt(1 - q^2), 1): eta = 1 is the DDPM posterior step."""
    if sigma_next <= 0.0:
        return 0.0
    q = snr_ratio(model_kind, sigma, sigma_next)
    return min(eta * math.sqrt(max(1.0 - q * q, 0.0)), 1.0)


@torch.no_grad()
def sample_lab_ancestral_euler(model, x, sigmas, extra_args=None, callback=None, disable=None,
                               model_kind="ve", eta=1.0, s_noise=1.0, noise_sampler=None, uncond=None):
    """Ancestral Euler (DDIM-eta, Song et al. 2021 Eq. 12; Ho et al. 2020 Eq. 7 at eta = 1),
    right for VE and flow. Order 1, 1 model call per step. eta = 0 is DDIM = Euler.
    uncond (the bridge passes it for the _cfg_pp entry): CFG++ re-noising with eps_u."""
    eta = check_option("eta", eta, 0.0)
    s_noise = check_option("s_noise", s_noise, 0.0)
    return renoise_loop(model, x, sigmas, extra_args, callback, model_kind,
                        lambda s, s_n: ancestral_rho(model_kind, s, s_n, eta), noise_sampler, s_noise, uncond)


def open_step(model, x, sigmas, sig, i, extra_args, callback):
    """Step i's model call and preview: (denoised, sigma, sigma_next, done). done is the step's
    result when there is nothing to integrate (a zero-length step: x; a step to sigma = 0: the
    denoised, the exact limit of every step there since alpha = 1, q = 0), else None."""
    denoised = model(x, batch_sigma(x, sigmas[i]), **extra_args)
    report(callback, x, i, sigmas[i], sigmas[i], denoised)
    s, s_n = sig[i], sig[i + 1]
    if s_n == s:
        return denoised, s, s_n, x
    return denoised, s, s_n, (denoised if s_n == 0.0 else None)


def renoise_loop(model, x, sigmas, extra_args, callback, model_kind, rho_fn, noise_sampler=None, s_noise=1.0,
                 uncond=None):
    """One model call per step, then renoise_step with rho_fn(sigma, sigma_next) (ancestral Euler, TCD).
    Noise: seeded Gaussian stream from extra_args["seed"] unless noise_sampler is given."""
    extra_args = {} if extra_args is None else extra_args
    s_noise = s_noise * noise_scale(model)   # newer ComfyUI's rule (samplers/noise_scale.py)
    sig = sigma_list(sigmas, model_kind)
    noise = noise_sampler or noise_sampler_for("gaussian", x, extra_args, model_kind)
    for i in range(len(sig) - 1):
        denoised = model(x, batch_sigma(x, sigmas[i]), **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        s, s_n = sig[i], sig[i + 1]
        if s_n == s:
            continue
        x = renoise_step(x, denoised, model_kind, s, s_n, rho_fn(s, s_n), noise, s_noise,
                         uncond() if uncond else None)
    return x


def exp_moments(big_h, count):
    """[I_0 .. I_(count-1)] with I_n(H) = int_0^1 H e^(-H (1 - t)) t^n dt (the exponential
    integrators' weights). Small H: series I_n = H n! sum_j (-H)^j / (n + j + 1)! (the recurrence
    below loses ~eps / H^n there); else I_0 = 1 - e^-H, I_n = 1 - n I_(n-1) / H; H = inf: all 1."""
    if math.isinf(big_h):
        return [1.0] * count
    if big_h < 1.0:
        return [big_h * math.factorial(n) * sum((-big_h) ** j / math.factorial(n + j + 1) for j in range(30))
                for n in range(count)]
    out = [-math.expm1(-big_h)]
    for n in range(1, count):
        out.append(1.0 - n * out[-1] / big_h)
    return out


THIRD_ORDER_FORMS = ("exact", "reference")


def _polynomial_terms(history, h, big_h, order, solver_type, third_order_form="exact"):
    """[(coefficient, tensor)] of the Newton-polynomial part beyond D0 (before alpha_next).

    history: [(lambda_j, D_j)] newest first, starting with the current point. A previous point
    at lambda = -inf (the flow start sigma = 1) carries no slope information and is dropped.
    third_order_form "reference": the u^2 term weighs h^2 I_2(H) / 2 instead of h^2 I_2(H), the weight of
    the DPM-Solver++(3M) reference code (Lu et al. 2022: -phi_3 D2 with phi_3 = phi_2 / h - 1/2, D2 the
    scaled second difference), which k-diffusion's and ComfyUI's dpmpp_3m_sde use: exact only for a
    D linear in lambda (measured: tests/test_stochastic.py). Kept for parity with core's sampler.
    """
    pts = [(lj, dj) for lj, dj in history if math.isfinite(lj)][:order]
    if len(pts) < 2 or not math.isfinite(h):
        return []
    (l0, d0), (l1, d1) = pts[0], pts[1]
    h1 = l0 - l1
    _, i1, i2 = exp_moments(big_h, 3)
    if len(pts) == 2:
        # D(u) = D0 + f01 u,  f01 = (D0 - D1) / h1
        w1 = 0.5 * (-math.expm1(-big_h)) if solver_type == "midpoint" else i1
        return [(h * w1 / h1, d0 - d1)]
    (l2, d2) = pts[2]
    h2 = l1 - l2
    # D(u) = D0 + b u + c u^2 with c = (f01 - f12) / (h1 + h2), b = f01 + c h1
    f01, f12 = (d0 - d1) / h1, (d1 - d2) / h2
    c = (f01 - f12) / (h1 + h2)
    b = f01 + c * h1
    return [(h * i1, b), (h * h * i2 * (0.5 if third_order_form == "reference" else 1.0), c)]


def sde_dpmpp_multistep(model, x, sigmas, extra_args=None, callback=None, model_kind="ve",
                        eta=1.0, s_noise=1.0, noise_sampler=None, order=2, solver_type="midpoint", uncond=None,
                        third_order_form="exact"):
    """SDE-DPM-Solver++(order M) for VE and flow; see the module docstring for the update.
    uncond (CFG++, Chung et al. 2024): the kept-noise term c_x (x - alpha D) uses D_u instead,
    i.e. x_next += c_x alpha (D - D_u); the polynomial (higher-order) terms are unchanged."""
    extra_args = {} if extra_args is None else extra_args
    eta = check_option("eta", eta, 0.0)
    s_noise = check_option("s_noise", s_noise, 0.0) * noise_scale(model)   # samplers/noise_scale.py
    if solver_type not in ("midpoint", "heun"):
        raise ValueError(f"solver_type must be 'midpoint' or 'heun', got {solver_type!r}")
    if third_order_form not in THIRD_ORDER_FORMS:
        raise ValueError(f"third_order_form must be one of {THIRD_ORDER_FORMS}, got {third_order_form!r}")
    sig = sigma_list(sigmas, model_kind)
    noise = noise_sampler
    if noise is None and eta > 0 and s_noise > 0:
        noise = noise_sampler_for("brownian", x, extra_args, model_kind)
    history = []
    for i in range(len(sig) - 1):
        denoised, s, s_n, done = open_step(model, x, sigmas, sig, i, extra_args, callback)
        if done is not None:
            x = done
            continue
        lam, lam_n = log_snr(model_kind, s), log_snr(model_kind, s_n)
        history = [(lam, denoised)] + history[: order - 1]
        a_n, b_n = alpha_beta(model_kind, s_n)
        b = alpha_beta(model_kind, s)[1]
        q = snr_ratio(model_kind, s, s_n)
        h = lam_n - lam
        big_h = (1.0 + eta) * h
        c_x = (b_n / b) * q ** eta
        x = c_x * x + (a_n * -math.expm1(-big_h) if math.isfinite(big_h) else a_n) * denoised
        if uncond is not None:
            x = x + (c_x * alpha_beta(model_kind, s)[0]) * (denoised - uncond())
        for coef, term in _polynomial_terms(history, h, big_h, order, solver_type, third_order_form):
            x = x + (a_n * coef) * term
        c_z = b_n * math.sqrt(max(-math.expm1(2.0 * eta * math.log(q)) if q > 0 else 1.0, 0.0)) * s_noise
        if eta > 0 and c_z > 0.0:
            x = x + c_z * noise(s, s_n)
    return x


@torch.no_grad()
def sample_lab_sde_dpmpp_2m(model, x, sigmas, extra_args=None, callback=None, disable=None,
                            model_kind="ve", eta=1.0, s_noise=1.0, noise_sampler=None, solver_type="midpoint",
                            uncond=None):
    """SDE-DPM-Solver++(2M), Lu et al. 2022 (App. B; midpoint form as published, heun form with
    the exact linear-term integral). Order 2 (eta = 0: DPM-Solver++(2M), Alg. 2), 1 model call
    per step; the first step is first order. Brownian-path noise from extra_args["seed"]."""
    return sde_dpmpp_multistep(model, x, sigmas, extra_args, callback, model_kind, eta, s_noise,
                               noise_sampler, order=2, solver_type=solver_type, uncond=uncond)


@torch.no_grad()
def sample_lab_sde_dpmpp_3m(model, x, sigmas, extra_args=None, callback=None, disable=None,
                            model_kind="ve", eta=1.0, s_noise=1.0, noise_sampler=None, uncond=None,
                            third_order_form="exact"):
    """SDE-DPM-Solver++(3M): the 2M update with a quadratic Newton polynomial in lambda through
    the last three denoised values, integrated exactly (Lu et al. 2022, Sec. 3.3 Taylor form:
    the u^2 term weighs h^2 I_2(H) times the second divided difference). Order 3 (eta = 0:
    DPM-Solver++(3M)), 1 model call per step. Steps 1 and 2 are order 1 and 2 (no extra calls),
    which caps the asymptotic order at 2 when the run starts on a curved part of the path; from
    sigma_max (nearly constant D) order 3 is observed (tests/test_stochastic.py).
    third_order_form "reference": core's dpmpp_3m_sde weight of the quadratic term (see _polynomial_terms)."""
    return sde_dpmpp_multistep(model, x, sigmas, extra_args, callback, model_kind, eta, s_noise,
                               noise_sampler, order=3, solver_type="heun", uncond=uncond,
                               third_order_form=third_order_form)


_FLOW_NOTE = "noise injection correct for VE and flow (CONST) models"

# name -> (function, order, summary, citation, options). Each also gets a CFG++ entry (<name>_cfg_pp):
# the same function, to which the bridge passes the unconditional prediction.
_ENTRIES = {
    "lab_ancestral_euler": (sample_lab_ancestral_euler, 1, "Ancestral Euler (DDIM-eta, eta=1 = DDPM posterior)",
                            "Song et al. 2021 (DDIM) Eq. 12; Ho et al. 2020 Eq. 7", {"eta": 1.0}),
    "lab_sde_dpmpp_2m": (sample_lab_sde_dpmpp_2m, 2, "SDE-DPM-Solver++(2M), midpoint form, Brownian-path noise",
                         "Lu et al. 2022 (DPM-Solver++) App. B, SDE-DPM-Solver++(2M)",
                         {"eta": 1.0, "solver_type": "midpoint"}),
    "lab_sde_dpmpp_2m_heun": (sample_lab_sde_dpmpp_2m, 2,
                              "SDE-DPM-Solver++(2M), exact linear-term integral, Brownian-path noise",
                              "Lu et al. 2022 (DPM-Solver++) App. B, SDE-DPM-Solver++(2M)",
                              {"eta": 1.0, "solver_type": "heun"}),
    "lab_sde_dpmpp_3m": (sample_lab_sde_dpmpp_3m, 3, "SDE-DPM-Solver++(3M), Brownian-path noise",
                         "Lu et al. 2022 (DPM-Solver++) Sec. 3.3 / App. B", {"eta": 1.0}),
}

for _name, (_fn, _order, _summary, _citation, _options) in _ENTRIES.items():
    register(SamplerSpec(name=_name, fn=_fn, family="stochastic", order=_order, model_calls=1, stochastic=True,
                         flow_safe=True, summary=f"{_summary}; {_FLOW_NOTE}", citation=_citation, options=_options))
    register(SamplerSpec(name=_name + "_cfg_pp", fn=_fn, family="stochastic", order=_order, model_calls=1,
                         stochastic=True, flow_safe=True, cfg_pp=True, options=_options,
                         summary=f"CFG++ {_summary} (guided x0, unconditional re-noising; cfg 0.5-2); {_FLOW_NOTE}",
                         citation=_citation + "; Chung et al. 2024 (CFG++) Alg. 1"))
