"""Singlestep (multi-stage) ancestral and SDE samplers, right for VE and flow (CONST) models,
each with a CFG++ form: the pack's own versions of ComfyUI's dpm_2_ancestral, dpmpp_sde(_gpu),
seeds_2 and seeds_3, which have no _cfg_pp in core.

Notation as in samplers/stochastic.py: x = alpha x0 + beta n (VE alpha = 1, beta = sigma; flow
alpha = 1 - sigma, beta = sigma), lambda = log(alpha / beta), h = lambda_next - lambda, D the
denoised x0 at x and q = exp(-h) (snr_ratio). Every stage is a move from the step start x:

    x_e = c_x x + (alpha_e - c_x alpha) D + alpha_e sum_j w_j (D_j - D) + beta_e s_noise n_e,
    c_x = k beta_e / beta,

where k is the fraction of the current noise kept and n_e ~ N(0, I) the fresh part (weight rho,
k^2 + rho^2 = 1). Two noise rules (eta >= 0):
- "ancestral" (DDIM-eta, Song et al. 2021 Eq. 12; k-diffusion's sigma_down / sigma_up in VE
  coordinates): rho = min(eta sqrt(1 - q^2), 1), k = sqrt(1 - rho^2).
- "sde" (the eta-SDE's exact linear part: Gonzalez et al. 2023, SEEDS, arXiv:2305.14267; Lu et al.
  2022 SDE-DPM-Solver++): k = q^eta, rho = sqrt(1 - q^(2 eta)); the integral of D over the stage
  is weighted by (1 + eta) e^(-(1 + eta)(lambda_e - u)), H = (1 + eta) h, moments I_n(H) as in
  samplers/stochastic.py. The noise of later stages is the same OU path: n_e = k' n_prev + rho' z.
Both rules keep the law alpha_e x0 + beta_e n when D and the noise estimate are exact.

CFG++ (Chung et al. 2024, arXiv:2406.08070, Alg. 1): every stage is linear in the step start x,
so the step is run from the shifted state x~ = x + alpha (D - D_u) (guided data, unconditional
noise eps_u = (x - alpha D_u) / beta); the model is still evaluated where the base step would.
It is one separate add, so with D_u == D the result equals the base bit for bit.

Flow start sigma = 1 (alpha = 0, lambda = -inf, h = inf): stages cannot sit at a fraction of an
infinite lambda step, so there they are placed at the same fraction of the step in snr time
s = e^lambda (lambda_i = lambda_next + log c_i) and the weights take their h -> inf limits
(exp(-c h) = 0, I_n = 1). Every stage stays finite; D is nearly constant near sigma = 1.

The final step to sigma = 0 returns D (the exact limit of every step above; 1 model call), so
nfe(steps) = calls * steps - (calls - 1) on a schedule ending at 0, as in core.
"""
import math

import torch

from .common import alpha_beta, log_snr
from .noise import noise_sampler_for
from .noise_scale import noise_scale
from .registry import register
from .spec import SamplerSpec
from .stochastic import ancestral_rho, check_option, exp_moments, open_step, sigma_list, snr_ratio

NOISE_FORMS = ("ancestral", "sde")


def _sigma_at(model_kind, lam):
    """Inverse of lambda: VE sigma = e^-lambda, flow sigma = 1 / (1 + e^lambda)."""
    if model_kind == "ve":
        return math.exp(-lam)
    return 1.0 / (1.0 + math.exp(lam)) if lam <= 0 else math.exp(-lam) / (1.0 + math.exp(-lam))


def _stage_sigma(model_kind, lam, lam_next, c):
    """sigma of the stage at fraction c of the step (snr-time fraction when lambda = -inf)."""
    if math.isfinite(lam):
        return _sigma_at(model_kind, lam + c * (lam_next - lam))
    return _sigma_at(model_kind, lam_next + math.log(c))


def _keep_fresh(model_kind, sigma, sigma_e, eta, form):
    """(k, rho): kept and fresh noise fractions for a move sigma -> sigma_e under the noise rule."""
    if form == "ancestral":
        rho = ancestral_rho(model_kind, sigma, sigma_e, eta)
        return math.sqrt(max(1.0 - rho * rho, 0.0)), rho
    q = snr_ratio(model_kind, sigma, sigma_e)
    if eta == 0.0:
        return 1.0, 0.0
    if q == 0.0:
        return 0.0, 1.0
    return q ** eta, math.sqrt(max(-math.expm1(2.0 * eta * math.log(q)), 0.0))


def _move(x, den, model_kind, sigma, sigma_e, keep, terms=()):
    """c_x x + (alpha_e - c_x alpha) D + sum coef (D_j - D), c_x = keep beta_e / beta (no noise)."""
    a, b = alpha_beta(model_kind, sigma)
    a_e, b_e = alpha_beta(model_kind, sigma_e)
    c_x = keep * b_e / b
    out = c_x * x + (a_e - c_x * a) * den
    for coef, diff in terms:
        out = out + coef * diff
    return out


def _shift_for_cfg_pp(x, denoised, uncond, model_kind, sigma):
    """CFG++ start state x + alpha (D - D_u); x itself for the base sampler (uncond None)."""
    if uncond is None:
        return x
    return x + alpha_beta(model_kind, sigma)[0] * (denoised - uncond())


def _setup(model, x, sigmas, extra_args, model_kind, eta, s_noise, noise_sampler, kind="brownian"):
    extra_args = {} if extra_args is None else extra_args
    eta = check_option("eta", eta, 0.0)
    s_noise = check_option("s_noise", s_noise, 0.0) * noise_scale(model)   # samplers/noise_scale.py
    sig = sigma_list(sigmas, model_kind)
    noise = noise_sampler
    if noise is None and eta > 0 and s_noise > 0:
        noise = noise_sampler_for(kind, x, extra_args, model_kind)
    return extra_args, eta, s_noise, sig, noise


def _call(model, x, sigma, extra_args):
    """D at a stage: a float sigma per batch item (at least float32), D in x's dtype."""
    sig = torch.full((x.shape[0],), sigma, dtype=torch.promote_types(x.dtype, torch.float32), device=x.device)
    d = model(x, sig, **extra_args)
    return d if d.dtype == x.dtype else d.to(x.dtype)


FLOW_RULES = ("snr", "rf")


def dpm2_down(model_kind, sigma, sigma_next, eta, flow_rule="snr"):
    """(t_down, rho): the VE-coordinate sigma_down (beta_down / alpha_down) the deterministic part steps to,
    and the fresh-noise fraction rho of the step to sigma_next, with rho^2 = 1 - (t_down alpha_n / beta_n)^2
    so that the law at sigma_next is right. flow_rule "snr" (any model): rho = min(eta sqrt(1 - q^2), 1)
    (samplers/stochastic.py). "rf" (flow models only): sigma_down = sigma_next (1 + (sigma_next / sigma - 1)
    eta) in flow sigma, the rule of ComfyUI's sample_dpm_2_ancestral_RF (also right in law, less noise
    per step: at eta = 1 sigma_down = sigma_next^2 / sigma)."""
    a_n, b_n = alpha_beta(model_kind, sigma_next)
    if flow_rule == "rf" and model_kind == "flow":
        s_down = sigma_next * (1.0 + (sigma_next / sigma - 1.0) * eta)
        t_down = s_down / (1.0 - s_down)
        return t_down, math.sqrt(max(1.0 - (t_down * a_n / b_n) ** 2, 0.0))
    rho = ancestral_rho(model_kind, sigma, sigma_next, eta)
    return math.sqrt(max(1.0 - rho * rho, 0.0)) * b_n / a_n, rho


@torch.no_grad()
def sample_lab_ancestral_dpm2(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve",
                              eta=1.0, s_noise=1.0, noise_sampler=None, flow_rule="snr", uncond=None):
    """Ancestral DPM-Solver-2: Karras et al. 2022 Alg. 2 with the DPM-Solver-2 midpoint (Lu et al.
    2022, Alg. 1; k-diffusion's sample_dpm_2_ancestral). The deterministic part goes to sigma_down
    by the midpoint rule on dx/dsigma = (x - D) / sigma (midpoint geometric in sigma), then the
    ancestral rule of samplers/stochastic.py re-noises: x_next = (alpha_next / alpha_down) x_down
    + s_noise beta_next rho z, rho = min(eta sqrt(1 - q^2), 1) (VE: core's sigma_up / sigma_down).
    Order 2 (eta = 0: DPM-Solver-2), 2 model calls per step; 1 for the step to sigma = 0 and for a
    step with rho = 1 (sigma_down = 0: the flow start at eta >= 1). Gaussian noise per step.
    flow_rule: how much noise a flow step renews ("snr" as above; "rf": ComfyUI's flow rule, see dpm2_down)."""
    if flow_rule not in FLOW_RULES:
        raise ValueError(f"flow_rule must be one of {FLOW_RULES}, got {flow_rule!r}")
    extra_args, eta, s_noise, sig, noise = _setup(model, x, sigmas, extra_args, model_kind, eta, s_noise, noise_sampler,
                                                  "gaussian")
    for i in range(len(sig) - 1):
        denoised, s, s_n, done = open_step(model, x, sigmas, sig, i, extra_args, callback)
        if done is not None:
            x = done
            continue
        x = _shift_for_cfg_pp(x, denoised, uncond, model_kind, s)
        a_n, b_n = alpha_beta(model_kind, s_n)
        t_down, rho = dpm2_down(model_kind, s, s_n, eta, flow_rule)     # VE-coordinate sigma_down
        if t_down == 0.0:
            x_down, a_down = denoised, 1.0                            # Euler to sigma_down = 0
        else:
            s_down = t_down if model_kind == "ve" else t_down / (1.0 + t_down)
            a_down = alpha_beta(model_kind, s_down)[0]
            s_mid = math.sqrt(s * s_down)
            x_mid = (s_mid / s) * x + (1.0 - s_mid / s) * denoised    # Euler (= DDIM) to the midpoint
            d_mid = _call(model, x_mid, s_mid, extra_args)
            x_down = x + ((s_down - s) / s_mid) * (x_mid - d_mid)     # full step with the midpoint slope
        x = (a_n / a_down) * x_down if a_n != a_down else x_down
        if rho > 0.0 and s_noise > 0.0:
            x = x + (b_n * rho * s_noise) * noise(s, s_n)
    return x


def _check_fraction(name, value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not 0.0 < v <= 1.0:
        raise ValueError(f"{name} must be a number in (0, 1] (stage position as a fraction of the step), "
                         f"got {value!r}")
    return v


@torch.no_grad()
def sample_lab_sde_dpmpp_2s(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve",
                            eta=1.0, s_noise=1.0, noise_sampler=None, r=0.5, noise_form="ancestral", uncond=None):
    """Stochastic DPM-Solver++(2S): Lu et al. 2022 (DPM-Solver++, Alg. 1 with the stage at lambda + r h)
    with noise in each stage. noise_form "ancestral": k-diffusion's / core's dpmpp_sde (each stage a
    DDIM-eta move from x; the final noise is the Brownian increment over the whole step). noise_form
    "sde": SEEDS-2 (Gonzalez et al. 2023, arXiv:2305.14267, data prediction; core's seeds_2): exact eta-SDE
    linear part, the final noise continues the stage's OU path. Both: D_d = D + (D_2 - D) / (2 r).
    Order 2 (eta = 0: DPM-Solver++(2S)), 2 model calls per step (1 for the step to 0)."""
    if noise_form not in NOISE_FORMS:
        raise ValueError(f"noise_form must be one of {NOISE_FORMS}, got {noise_form!r}")
    # default noise as core draws it for each method: a Brownian path for dpmpp_sde, fresh Gaussian
    # draws for seeds_2 (both exact in law; the path also makes a seed converge as steps grow)
    extra_args, eta, s_noise, sig, noise = _setup(model, x, sigmas, extra_args, model_kind, eta, s_noise, noise_sampler,
                                                  "brownian" if noise_form == "ancestral" else "gaussian")
    r = _check_fraction("r", r)
    noisy = eta > 0 and s_noise > 0
    for i in range(len(sig) - 1):
        denoised, s, s_n, done = open_step(model, x, sigmas, sig, i, extra_args, callback)
        if done is not None:
            x = done
            continue
        x = _shift_for_cfg_pp(x, denoised, uncond, model_kind, s)
        lam, lam_n = log_snr(model_kind, s), log_snr(model_kind, s_n)
        s_1 = _stage_sigma(model_kind, lam, lam_n, r)
        k1, rho1 = _keep_fresh(model_kind, s, s_1, eta, noise_form)
        x_1 = _move(x, denoised, model_kind, s, s_1, k1)
        n_1 = None
        if noisy and rho1 > 0.0:
            n_1 = rho1 * noise(s, s_1)
            x_1 = x_1 + (alpha_beta(model_kind, s_1)[1] * s_noise) * n_1
        d_1 = _call(model, x_1, s_1, extra_args)
        den = torch.lerp(denoised, d_1, 1.0 / (2.0 * r))
        k, rho = _keep_fresh(model_kind, s, s_n, eta, noise_form)
        x = _move(x, den, model_kind, s, s_n, k)
        if noisy and rho > 0.0:
            if noise_form == "ancestral":
                n = rho * noise(s, s_n)
            else:
                k12, rho12 = _keep_fresh(model_kind, s_1, s_n, eta, "sde")
                n = rho12 * noise(s_1, s_n) if n_1 is None else k12 * n_1 + rho12 * noise(s_1, s_n)
            x = x + (alpha_beta(model_kind, s_n)[1] * s_noise) * n
    return x


@torch.no_grad()
def sample_lab_seeds_3(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve",
                       eta=1.0, s_noise=1.0, noise_sampler=None, r_1=1.0 / 3.0, r_2=2.0 / 3.0, uncond=None):
    """SEEDS-3 (Gonzalez et al. 2023, "SEEDS: Exponential SDE Solvers for Fast High-Quality Sampling
    from Diffusion Models", arXiv:2305.14267, data prediction; core's seeds_3): three stages at
    lambda + r_1 h, lambda + r_2 h, lambda + h; each integrates the linear interpolant of D exactly
    against the eta-SDE weight: stage 2 adds alpha (r_2 / r_1) I_1(r_2 H) (D_1 - D), the last
    alpha I_1(H) / r_2 (D_2 - D) (DPM-Solver-3 in data prediction, Lu et al. 2022, arXiv:2206.00927).
    Noise: the "sde" rule, one OU path through the stages. Order 3 at eta = 0 with r_1 = 1/3, r_2 = 2/3
    (DPM-Solver-3), 3 model calls per step (1 for the step to sigma = 0)."""
    extra_args, eta, s_noise, sig, noise = _setup(model, x, sigmas, extra_args, model_kind, eta, s_noise, noise_sampler,
                                                  "gaussian")   # fresh Gaussian draws, as core's seeds_3
    r_1, r_2 = _check_fraction("r_1", r_1), _check_fraction("r_2", r_2)
    if not r_1 < r_2:
        raise ValueError(f"r_1 must be smaller than r_2 (stage order), got r_1={r_1!r}, r_2={r_2!r}")
    noisy = eta > 0 and s_noise > 0
    for i in range(len(sig) - 1):
        denoised, s, s_n, done = open_step(model, x, sigmas, sig, i, extra_args, callback)
        if done is not None:
            x = done
            continue
        x = _shift_for_cfg_pp(x, denoised, uncond, model_kind, s)
        lam, lam_n = log_snr(model_kind, s), log_snr(model_kind, s_n)
        big_h = (1.0 + eta) * (lam_n - lam)
        s_1, s_2 = _stage_sigma(model_kind, lam, lam_n, r_1), _stage_sigma(model_kind, lam, lam_n, r_2)
        n_prev, s_prev, ds = None, s, [denoised]
        for s_e, weight in ((s_1, None), (s_2, (r_2 / r_1) * exp_moments(r_2 * big_h, 2)[1]),
                            (s_n, exp_moments(big_h, 2)[1] / r_2)):
            k, _ = _keep_fresh(model_kind, s, s_e, eta, "sde")
            a_e, b_e = alpha_beta(model_kind, s_e)
            terms = () if weight is None else ((a_e * weight, ds[-1] - denoised),)
            x_e = _move(x, denoised, model_kind, s, s_e, k, terms)
            if noisy:
                k_seg, rho_seg = _keep_fresh(model_kind, s_prev, s_e, eta, "sde")
                z = noise(s_prev, s_e)
                n_prev = rho_seg * z if n_prev is None else k_seg * n_prev + rho_seg * z
                x_e = x_e + (b_e * s_noise) * n_prev
            if s_e == s_n:
                x = x_e
            else:
                ds.append(_call(model, x_e, s_e, extra_args))
            s_prev = s_e
    return x


def _nfe(calls):
    return lambda steps: calls * steps - (calls - 1) if steps > 0 else 0


def dpm2_ancestral_calls(sig, model_kind, options):
    """Model calls of sample_lab_ancestral_dpm2 on a schedule: 2 per step, 1 for a step to sigma = 0, a
    zero-length step, or a step with sigma_down = 0 (rule "snr" from the flow start sigma = 1)."""
    eta, rule = options.get("eta", 1.0), options.get("flow_rule", "snr")
    return sum(1 if s_n == 0.0 or s_n == s or dpm2_down(model_kind, s, s_n, eta, rule)[0] == 0.0 else 2
               for s, s_n in zip(sig[:-1], sig[1:]))


_FLOW_NOTE = "noise injection correct for VE and flow (CONST) models"

# name -> (function, order, calls per step, summary, citation, options). Each also gets a CFG++ entry
# (<name>_cfg_pp): the same function, to which the bridge passes the unconditional prediction.
_ENTRIES = {
    "lab_ancestral_dpm2": (sample_lab_ancestral_dpm2, 2, 2, "Ancestral DPM-Solver-2 (core's dpm_2_ancestral method)",
                           "Karras et al. 2022 Alg. 2; Lu et al. 2022 (DPM-Solver) Alg. 1; Song et al. 2021 Eq. 12",
                           {"eta": 1.0}),
    "lab_sde_dpmpp_2s": (sample_lab_sde_dpmpp_2s, 2, 2, "Stochastic DPM-Solver++(2S) (core's dpmpp_sde method), "
                         "Brownian-path noise", "Lu et al. 2022 (DPM-Solver++) Alg. 1, r = 1/2, ancestral noise",
                         {"eta": 1.0, "r": 0.5, "noise_form": "ancestral"}),
    "lab_seeds_2": (sample_lab_sde_dpmpp_2s, 2, 2, "SEEDS-2 exponential SDE solver (core's seeds_2 method)",
                    "Gonzalez et al. 2023 (SEEDS, arXiv:2305.14267) SEEDS-2, data prediction",
                    {"eta": 1.0, "r": 0.5, "noise_form": "sde"}),
    "lab_seeds_3": (sample_lab_seeds_3, 3, 3, "SEEDS-3 exponential SDE solver (core's seeds_3 method)",
                    "Gonzalez et al. 2023 (SEEDS, arXiv:2305.14267) SEEDS-3, data prediction", {"eta": 1.0}),
}

for _name, (_fn, _order, _calls, _summary, _citation, _options) in _ENTRIES.items():
    _by_schedule = dpm2_ancestral_calls if _fn is sample_lab_ancestral_dpm2 else None
    register(SamplerSpec(name=_name, fn=_fn, family="stochastic_singlestep", order=_order, model_calls=_calls,
                         stochastic=True, flow_safe=True, summary=f"{_summary}; {_FLOW_NOTE}", citation=_citation,
                         options=_options, nfe_rule=_nfe(_calls), nfe_schedule=_by_schedule))
    register(SamplerSpec(name=_name + "_cfg_pp", fn=_fn, family="stochastic_singlestep", order=_order,
                         model_calls=_calls, stochastic=True, flow_safe=True, cfg_pp=True, options=_options,
                         summary=f"CFG++ {_summary} (guided x0, unconditional re-noising; cfg 0.5-2); {_FLOW_NOTE}",
                         citation=_citation + "; Chung et al. 2024 (CFG++) Alg. 1", nfe_rule=_nfe(_calls),
                         nfe_schedule=_by_schedule))
