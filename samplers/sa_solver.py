"""SA-Solver: Stochastic Adams predictor-corrector (Xue et al. 2023, NeurIPS, "SA-Solver: Stochastic
Adams Solver for Fast Sampling of Diffusion Models", arXiv:2309.05019, data-prediction SA-Predictor
Eq. 15 and SA-Corrector Eq. 18), for VE and flow (CONST) models, with a CFG++ form.

With x = alpha x0 + beta n, lambda = log(alpha / beta), h = lambda_t - lambda_s and the noise strength
tau (constant over a step), the SDE step from s to t is exactly
    x_t = (beta_t / beta_s) e^(-tau^2 h) x_s + alpha_t int_ls^lt k e^(-k (lt - lam)) D(lam) dlam
          + beta_t sqrt(1 - e^(-2 tau^2 h)) z,            k = 1 + tau^2.
Adams: D(lam) is replaced by the Lagrange polynomial through stored denoised values, so the integral is
sum_j b_j D_j with b_j = alpha_t sum_n c_jn I_n(k h), where l_j(t) = sum_n c_jn t^n is the Lagrange basis
in t = (lam - lambda_s) / h and I_n(H) = int_0^1 H e^(-H (1 - t)) t^n dt (exact moments).
- Predictor (Eq. 15): the last `predictor_order` denoised values (explicit, order predictor_order).
- Corrector (Eq. 18): redo the step s -> t with the last `corrector_order` values INCLUDING the new
  one at t (implicit Adams, order corrector_order), the same tau and the same noise z as the predictor.
  PEC (sa_solver): the corrected state is not re-evaluated; the new D (taken at the predicted state)
  stays in the history. PECE (sa_solver_pece): the corrected state is evaluated again and that D
  replaces the new one (one more model call per step from the second step on).
As in ComfyUI: the first step has no corrector, orders ramp up with the history, and on a schedule
ending at 0 the orders drop near the end (predictor order <= steps left - 1, corrector <= steps left);
the last step to sigma = 0 returns D (PECE: corrected and re-evaluated first). A split schedule (last
sigma > 0) ends at the last predicted state, at the last sigma (ComfyUI 0.3.75 returns the corrected
state one sigma earlier there). Model calls: PEC 1 per step; PECE 2 per step but the first: 2 steps - 1.
Global order with tau = 0: 3 (4 once the history is full; the order-1 first step, corrected with order 2,
caps it at 3; without the corrector the Euler first step caps it at 2): tests/test_sa_solver.py.

tau: `tau_func(sigma_next)` if given (core's keyword); otherwise tau = eta for sigma_next in
[percent_to_sigma(sde_end_percent), percent_to_sigma(sde_start_percent)] and 0 outside (core's default
interval 0.2 .. 0.8 of the model's timesteps, Xue et al. README). percent_to_sigma: the keyword if
given, else the model's model_sampling when the sampler runs inside ComfyUI, else the SD1.x discrete
schedule (VE) or SD3-style flow with shift 3 (the lab model's default) for a bare model (tests, benchmarks).

Flow start sigma = 1 (alpha = 0, lambda = -inf): handled as the exact limit. A stored point at
lambda = -inf is left out of the Lagrange polynomial (its basis function vanishes in the limit);
when it is the only point the polynomial is the constant D. ComfyUI instead moves sigma = 1 to
percent_to_sigma(1e-4) and evaluates the model there.

CFG++ (Chung et al. 2024, arXiv:2406.08070, Alg. 1): with `uncond`, every state-carrying term
c_x x_s (predictor and corrector alike, c_x = (beta_t / beta_s) e^(-tau^2 h)) is applied to the CFG++
state x_s + alpha_s (D_s - D_u,s) (guided data, unconditional noise), i.e. the step adds
c_x alpha_s (D_s - D_u,s). D_s and D_u,s come from the last model call of step s: at the predicted
state for PEC, at the corrected state x_s itself for PECE. Predictor and corrector of one step start
from the same state x_s and add the same correction. The Adams history terms (b_j D_j) use the guided
D as the base does; the corrector's new value at t enters only through b_j (guided). D_u = D gives
the base sampler bit for bit.
"""
import math

import torch

from .common import alpha_beta, batch_sigma, log_snr, report
from .noise import noise_sampler_for
from .noise_scale import noise_scale
from .plms import poly_basis
from .registry import register
from .spec import SamplerSpec
from .stochastic import check_option, exp_moments, sigma_list


def adams_weights(lams, lam_s, lam_t, tau, simple_order_2=False, corrector=False):
    """b_j / alpha_t for the points at `lams` (finite), for the step lam_s -> lam_t (Eqs. 15 / 18)."""
    k = 1.0 + tau * tau
    h = lam_t - lam_s
    big_h = k * h
    if len(lams) == 1 or math.isinf(h):
        return [exp_moments(big_h, 1)[0]] + [0.0] * (len(lams) - 1)
    total = -math.expm1(-big_h)
    if simple_order_2 and len(lams) == 2:
        # SA-Solver App. D, simplified order-2 coefficients; order: [older, newer]
        if corrector:
            newer = 0.5 * k * h
        else:
            older = 0.5 * k * h * h / (lams[0] - lam_s)
            return [older, total - older]
        return [total - newer, newer]
    nodes = [(lam - lam_s) / h for lam in lams]
    moments = exp_moments(big_h, len(nodes))
    return [sum(c * m for c, m in zip(row, moments)) for row in poly_basis(nodes)]


def adams_sum(points, lam_s, lam_t, tau, alpha_t, simple_order_2, corrector):
    """alpha_t sum_j b_j D_j over points [(lam, D)] (oldest first); points at lam = -inf are left out
    (exact limit) unless no other point is left, in which case the newest is the constant."""
    finite = [(lam, d) for lam, d in points if math.isfinite(lam)] or points[-1:]
    weights = adams_weights([lam for lam, _ in finite], lam_s, lam_t, tau, simple_order_2, corrector)
    out = None
    for w, (_, d) in zip(weights, finite):
        term = (alpha_t * w) * d
        out = term if out is None else out + term
    return out


def _model_percent_to_sigma(model):
    """percent_to_sigma of the ComfyUI model the sampler was handed (None for a bare model)."""
    try:
        return model.inner_model.model_patcher.get_model_object("model_sampling").percent_to_sigma
    except AttributeError:
        return None


def _fallback_percent_to_sigma(model_kind):
    """A bare model's percent_to_sigma: the pack's standard model sigmas (schedulers/model_sigmas.py):
    SD1.x / SDXL discrete for VE, SD3-style flow with shift 3 (also the lab model's default) for flow."""
    try:
        from ..schedulers import model_sigmas
    except (ImportError, ValueError):  # the pack's folders imported as top-level packages (tests)
        from schedulers import model_sigmas
    table = model_sigmas.flow_model_sigmas() if model_kind == "flow" else model_sigmas.sd_model_sigmas()
    return table.percent_to_sigma


def tau_interval(model, model_kind, eta, sde_start_percent, sde_end_percent, percent_to_sigma=None):
    """tau(sigma_next) = eta inside [sigma(end_percent), sigma(start_percent)], else 0 (core's default)."""
    eta = check_option("eta", eta, 0.0)
    start = check_option("sde_start_percent", sde_start_percent, 0.0, 1.0)
    end = check_option("sde_end_percent", sde_end_percent, 0.0, 1.0)
    if percent_to_sigma is not None and not callable(percent_to_sigma):
        raise ValueError(f"percent_to_sigma must be a function of a percent or None, got {percent_to_sigma!r}")
    to_sigma = percent_to_sigma or _model_percent_to_sigma(model) or _fallback_percent_to_sigma(model_kind)
    hi, lo = float(to_sigma(start)), float(to_sigma(end))
    return lambda sigma: eta if (eta > 0 and hi >= sigma >= lo) else 0.0


def _check_order(name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 6:
        raise ValueError(f"{name} must be an integer in [{low}, 6], got {value!r}")
    return value


def _correct(x, carried, points, lam_prev, lam_here, alpha_here, simple_order_2):
    """Corrector (Eq. 18): redo the last step from x with the new point included, same tau and noise;
    the CFG++ shift of x is the one its predictor used."""
    c_x, shift, z, tau = carried
    x = c_x * x + adams_sum(points, lam_prev, lam_here, tau, alpha_here, simple_order_2, True)
    if shift is not None:
        x = x + c_x * shift                      # CFG++: c_x alpha_s (D_s - D_u,s), as in the predictor
    return x if z is None else x + z


def _predict(x, points, step, tau, shift, simple_order_2, s_noise, draw):
    """Predictor (Eq. 15) for step = (model_kind, sigma, sigma_next, lambda, lambda_next); returns the
    predicted state and what its corrector re-uses: (c_x, shift, scaled noise, tau)."""
    model_kind, s, s_n, lam, lam_n = step
    h = lam_n - lam
    b, (a_n, b_n) = alpha_beta(model_kind, s)[1], alpha_beta(model_kind, s_n)
    c_x = (b_n / b) * (math.exp(-tau * tau * h) if tau > 0 else 1.0)
    x_pred = c_x * x + adams_sum(points, lam, lam_n, tau, a_n, simple_order_2, False)
    if shift is not None:
        x_pred = x_pred + c_x * shift            # CFG++: c_x alpha_s (D - D_u)
    c_z = b_n * math.sqrt(max(-math.expm1(-2.0 * tau * tau * h), 0.0)) * s_noise if tau > 0 else 0.0
    z = c_z * draw(s, s_n) if c_z > 0.0 else None
    return (x_pred if z is None else x_pred + z), (c_x, shift, z, tau)


@torch.no_grad()
def sample_lab_sa_solver(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve",
                         tau_func=None, eta=1.0, sde_start_percent=0.2, sde_end_percent=0.8, s_noise=1.0,
                         noise_sampler=None, predictor_order=3, corrector_order=4, use_pece=False,
                         simple_order_2=False, percent_to_sigma=None, uncond=None):
    """SA-Solver (Xue et al. 2023, Eqs. 15 and 18), VE and flow. Predictor order 3 + corrector order 4
    (data-prediction stochastic Adams); global order 3 with tau = 0 (the low-order first steps cap it;
    tests/test_sa_solver.py). PEC: 1 model call per step; use_pece: 2 per step but the first.
    Noise: fresh seeded Gaussian per step from extra_args["seed"] (as core). uncond: CFG++ (module doc)."""
    extra_args = {} if extra_args is None else extra_args
    p_order = _check_order("predictor_order", predictor_order, 1)
    c_order = _check_order("corrector_order", corrector_order, 0)
    s_noise = check_option("s_noise", s_noise, 0.0) * noise_scale(model)   # samplers/noise_scale.py
    if tau_func is None:
        tau_func = tau_interval(model, model_kind, eta, sde_start_percent, sde_end_percent, percent_to_sigma)
    elif not callable(tau_func):
        raise ValueError(f"tau_func must be a function of sigma or None, got {tau_func!r}")
    sig = sigma_list(sigmas, model_kind)
    keep = [0] + [j for j in range(1, len(sig)) if sig[j] != sig[j - 1]]   # zero-length steps change nothing
    steps, lams = len(keep) - 1, [log_snr(model_kind, sig[j]) for j in keep]
    noise = [noise_sampler]

    def draw(s, s_n):
        if noise[0] is None:
            noise[0] = noise_sampler_for("gaussian", x, extra_args, model_kind)
        return noise[0](s, s_n)
    history, x_pred, carried = [], x, None      # history: [(lambda, D)] oldest first
    for i in range(steps):
        at, s, s_n = keep[i], sig[keep[i]], sig[keep[i + 1]]
        denoised = model(x_pred, batch_sigma(x, sigmas[at]), **extra_args)
        d_u = uncond() if uncond is not None else None
        report(callback, x_pred, i, sigmas[at], sigmas[at], denoised)
        history = (history + [(lams[i], denoised)])[-max(p_order, c_order, 1):]
        p_used = min(p_order, len(history))
        c_used = 0 if i == 0 or (s_n == 0.0 and not use_pece) else min(c_order, len(history))
        if sig[-1] == 0.0:  # lower orders near the end (as core)
            p_used, c_used = min(p_used, steps - 1 - i), min(c_used, steps - i)
        if c_used == 0:
            x = x_pred
        else:
            x = _correct(x, carried, history[-c_used:], lams[i - 1], lams[i], alpha_beta(model_kind, s)[0],
                         simple_order_2)
            if use_pece:
                denoised = model(x, batch_sigma(x, sigmas[at]), **extra_args)
                d_u = uncond() if uncond is not None else None
                history[-1] = (lams[i], denoised)
        if s_n == 0.0:
            x = denoised
            continue
        shift = alpha_beta(model_kind, s)[0] * (denoised - d_u) if d_u is not None else None
        x_pred, carried = _predict(x, history[-p_used:], (model_kind, s, s_n, lams[i], lams[i + 1]),
                                   float(tau_func(s_n)), shift, simple_order_2, s_noise, draw)
    # A split schedule (last sigma > 0) ends at the last predicted state: no model call is left to
    # correct it. (ComfyUI 0.3.75 returns the corrected state one sigma earlier there.)
    return x if sig[-1] == 0.0 or steps == 0 else x_pred


@torch.no_grad()
def sample_lab_sa_solver_pece(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve",
                              uncond=None, **options):
    """SA-Solver in PECE mode (predict, evaluate, correct, evaluate): see sample_lab_sa_solver.
    Order 3 observed with tau = 0; 2 model calls per step but the first (2 steps - 1)."""
    options["use_pece"] = True
    return sample_lab_sa_solver(model, x, sigmas, extra_args, callback, disable, model_kind, uncond=uncond, **options)


def pece_nfe(steps):
    """Model calls of sa_solver_pece for `steps` steps: the first step has no corrector."""
    return max(2 * steps - 1, 0)


_CITATION = "Xue et al. 2023 (SA-Solver, NeurIPS) Eqs. 15 / 18"
_SUMMARY = "SA-Solver: stochastic Adams predictor (3) + corrector (4), SDE on 20-80% of the schedule"
_FLOW_NOTE = "correct for VE and flow (CONST) models"
_ENTRIES = {
    "lab_sa_solver": (sample_lab_sa_solver, _SUMMARY + " (PEC)", None),
    "lab_sa_solver_pece": (sample_lab_sa_solver_pece, _SUMMARY + " (PECE: corrected state re-evaluated)",
                           pece_nfe),
}

for _name, (_fn, _summary, _rule) in _ENTRIES.items():
    register(SamplerSpec(name=_name, fn=_fn, family="sa_solver", order=3, model_calls=2 if _rule else 1,
                         stochastic=True, flow_safe=True, summary=f"{_summary}; {_FLOW_NOTE}",
                         citation=_CITATION, nfe_rule=_rule))
    register(SamplerSpec(name=_name + "_cfg_pp", fn=_fn, family="sa_solver", order=3, model_calls=2 if _rule else 1,
                         stochastic=True, flow_safe=True, cfg_pp=True, nfe_rule=_rule,
                         summary=f"CFG++ {_summary} (guided x0, unconditional noise in the state terms; "
                                 f"cfg 0.5-2); {_FLOW_NOTE}",
                         citation=_CITATION + "; Chung et al. 2024 (CFG++) Alg. 1"))
