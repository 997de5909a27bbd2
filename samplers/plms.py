"""PLMS / PNDM: pseudo linear multistep on the data prediction (Liu et al. 2022).

Liu, Ren, Lin, Zhao, "Pseudo Numerical Methods for Diffusion Models on Manifolds", ICLR 2022,
arXiv:2202.09778: a linear multistep combination of the network outputs (eq. 12, the
4-step Adams-Bashforth weights 55, -59, 37, -9 over 24) fed through DDIM's "transfer"
phi (eq. 9); PNDM warms up with 3 pseudo Runge-Kutta steps (eq. 13, 4 calls each).

Form used here (ComfyUI x-space, VE and flow alike). With x = alpha x0 + beta n,
lambda = log(alpha / beta) and y = x / beta, the probability-flow ODE is exactly

    dy / dlambda = e^lambda D(x, sigma)          (DPM-Solver++, Lu et al. 2022, eq. 9)

so  x_t = (beta_t / beta_s) x_s + alpha_t * integral_{-h}^{0} e^u D(lambda_t + u) du,
h = lambda_t - lambda_s. DDIM (the PNDM transfer with a constant D) is the exact integral
for constant D. The multistep step ("lab_plms") replaces D by the Lagrange polynomial through
the last `order` denoised values (in lambda) and integrates e^u times it exactly: an
exponential Adams-Bashforth method of order `order` on any step sizes (the fixed 55/-59/37/-9
weights are only right for equal steps without the e^u weight). Warm-up: order 1, 2, 3 on the
first steps (1 call per step), which caps the asymptotic global order at 2 when the first step
is on a curved part of the trajectory; at high noise the first steps are nearly exact.

"lab_pndm" warms up with PNDM's pseudo-RK4 instead: with r = e^lambda = alpha/beta the ODE is
dy/dr = D, and the transfer with an averaged D is a step in r, so the pseudo-RK4 stages taken
at the r-midpoint ARE classical RK4 in r (order 4; PNDM's midpoint in t gives order 2 on
uneven grids). NFE: 4 calls for each of the first 3 steps, then 1 per step (steps + 9).
The last step to sigma = 0 (no extra call) is Adams-Bashforth in rho = beta / alpha on
eps = (x - alpha D) / beta through the current and the last two step starts (`final_step`): a
step in lambda cannot reach lambda = +inf, and returning the denoised (what k-diffusion samplers
do) leaves an error ~ sigma_min^2 / (2 s^2) relative for data of spread s, which at sigma_min = 0.03
dominated the whole run's error at NFE >= 8 in bench/accuracy.py.
"""
import math

import torch

from .common import alpha_beta, report
from .registry import register
from .spec import SamplerSpec

_CITATION = ("Liu et al. 2022, Pseudo Numerical Methods for Diffusion Models on Manifolds, "
             "arXiv:2202.09778, eqs. 9, 12, 13")


def _ab(model_kind, sigma):
    """(alpha, beta, lambda) as Python floats; lambda = -inf where alpha = 0 (flow, sigma = 1)."""
    a, b = alpha_beta(model_kind, sigma)
    a = float(a)
    lam = math.log(a) - math.log(sigma) if a > 0 else -math.inf
    return a, b, lam


def phi(k, z):
    """phi_k(z) = sum_j z^j / (j + k)!  (phi_0 = e^z, phi_{k+1} = (phi_k - 1/k!) / z).
    The recursion loses ~eps / |z|^k to cancellation: used for |z| >= 0.25 (k <= 5: < 1e-12 relative),
    the series below that (under 17 terms to double precision)."""
    if abs(z) < 0.25:
        term, total = 1.0 / math.factorial(k), 0.0
        for j in range(40):
            total += term
            term *= z / (j + k + 1)
            if abs(term) < 1e-17 * abs(total):   # converged to double precision
                break
        return total
    val = math.exp(z)
    for i in range(k):
        val = (val - 1.0 / math.factorial(i)) / z
    return val


def poly_basis(nodes):
    """Lagrange basis polynomials through `nodes`, as ascending coefficient lists."""
    out = []
    for j, uj in enumerate(nodes):
        coeffs = [1.0]
        for m, um in enumerate(nodes):
            if m == j:
                continue
            scale = 1.0 / (uj - um)
            nxt = [0.0] * (len(coeffs) + 1)
            for p, c in enumerate(coeffs):        # multiply by (u - um) * scale
                nxt[p + 1] += c * scale
                nxt[p] -= c * um * scale
            coeffs = nxt
        out.append(coeffs)
    return out


def exp_ab_weights(lams, lam_s, lam_t):
    """w_j with integral_{-h}^{0} e^u P(lambda_t + u) du = sum_j w_j D_j, P the polynomial through
    (lams[j], D_j). Uses I_m = integral e^u u^m du = (-1)^m m! e^{-h} h^{m+1} phi_{m+1}(h)."""
    h = lam_t - lam_s
    moments = [(-1) ** m * math.factorial(m) * math.exp(-h) * h ** (m + 1) * phi(m + 1, h)
               for m in range(len(lams))]
    basis = poly_basis([lj - lam_t for lj in lams])
    return [sum(c * mom for c, mom in zip(coeffs, moments)) for coeffs in basis]


def transfer(x, denoised, s, t, model_kind):
    """DDIM / DPM-Solver++(1) from sigma s to t with a constant denoised (PNDM's phi, eq. 9)."""
    a_s, b_s, lam_s = _ab(model_kind, s)
    a_t, b_t, lam_t = _ab(model_kind, t)
    return x * (b_t / b_s) + denoised * (a_t * -math.expm1(lam_s - lam_t))


def eps_node(x, denoised, sigma, model_kind):
    """(rho, eps) of one model evaluation in VE-equivalent variables: rho = beta / alpha and
    eps = (x - alpha D) / beta, so that with z = x / alpha the PF-ODE is dz / drho = eps."""
    a, b, _ = _ab(model_kind, sigma)
    return b / a, (x - denoised * a) * (1.0 / b)


MAX_FINAL_GAIN = 4.0


def eps_nodes(past, model_kind):
    """[(rho, eps)] from stored (sigma, x, denoised) step starts (computed once, at the last step)."""
    return [eps_node(xk, dk, sk, model_kind) for sk, xk, dk in past]


def final_step(x, denoised, sigma, past, model_kind, order=3):
    """The step from the last positive sigma to 0 as Adams-Bashforth in rho on eps.

    x_0 = z_s - integral_0^{rho_s} eps(rho) drho (alpha = 1 at sigma = 0), with eps replaced by the
    polynomial through the current and up to order - 1 earlier (rho, eps) nodes in `past`. One node
    gives x_0 = D(x_s) (DDIM / every k-diffusion sampler's last step). More nodes remove that step's
    leading error: near sigma = 0 eps changes linearly in rho for data with a density (a Gaussian of
    spread s: eps = rho c / sqrt(s^2 + rho^2)), so D(x_s) is off by ~ rho_s^2 / (2 s^2) relative,
    which at sigma_min = 0.03 dominates every high-order sampler's error (the same step in sigma is
    what ipndm-style AB in sigma would do; Zhang & Chen 2023, DEIS, arXiv:2204.13902, eq. 13 is the
    eps-polynomial extrapolation used here in the VE variable). No model call.
    Stability guard: the weights multiply the eps values' errors (the model's denoised error, float
    rounding); the order drops until sum |w_j| <= MAX_FINAL_GAIN * rho_s (DDIM's is rho_s), so the
    step never amplifies them more than 4x: order 3 needs steps in rho with ratio >= ~1.75, order 2
    >= ~1.35; near-equal last steps (thousands of steps) fall back to the denoised.
    A one-step run from the flow start sigma = 1 (alpha = 0: rho and eps's weight are infinite) returns
    the denoised, the exact limit of this step and of DDIM from sigma = 1 to 0."""
    if _ab(model_kind, sigma)[0] <= 0.0:
        return denoised
    rho, eps = eps_node(x, denoised, sigma, model_kind)
    nodes = [p for p in past if p[0] > rho][-(order - 1):] + [(rho, eps)] if order > 1 else [(rho, eps)]
    while True:
        if len(nodes) == 1:
            return denoised
        basis = poly_basis([p[0] for p in nodes])
        w = [sum(c * rho ** (k + 1) / (k + 1) for k, c in enumerate(coeffs)) for coeffs in basis]
        if sum(abs(v) for v in w) <= MAX_FINAL_GAIN * rho:
            break
        nodes = nodes[1:]        # nodes too close together for the distance to 0: drop the oldest
    out = x * (1.0 / _ab(model_kind, sigma)[0])
    for wj, p in zip(w, nodes):
        out = out - p[1] * wj
    return out


def _r_to_sigma(r, model_kind):
    """Inverse of r = alpha / beta: VE sigma = 1 / r; flow sigma = 1 / (1 + r)."""
    return 1.0 / r if model_kind == "ve" else 1.0 / (1.0 + r)


def _pseudo_rk4(model, x, d1, s, t, s_in, extra_args, model_kind):
    """One PNDM pseudo-RK4 step (eq. 13) with stages at the r-midpoint: classical RK4 in r. 3 calls."""
    a_s, b_s, _ = _ab(model_kind, s)
    a_t, b_t, _ = _ab(model_kind, t)
    mid = _r_to_sigma(0.5 * (a_s / b_s + a_t / b_t), model_kind)
    d2 = model(transfer(x, d1, s, mid, model_kind), s_in * mid, **extra_args)
    d3 = model(transfer(x, d2, s, mid, model_kind), s_in * mid, **extra_args)
    d4 = model(transfer(x, d3, s, t, model_kind), s_in * t, **extra_args)
    return transfer(x, (d1 + 2.0 * d2 + 2.0 * d3 + d4) / 6.0, s, t, model_kind)


def _check(order, model_kind):
    if model_kind not in ("ve", "flow"):
        raise ValueError(f"model_kind must be 've' or 'flow', got {model_kind!r}")
    if not isinstance(order, int) or not 1 <= order <= 4:
        raise ValueError(f"order must be an integer from 1 to 4, got {order!r}")


@torch.no_grad()
def plms_core(model, x, sigmas, extra_args=None, callback=None, model_kind="ve", order=4, rk_warmup=0,
              last_order=1):
    """Shared loop: `rk_warmup` pseudo-RK4 steps, then exponential Adams-Bashforth of `order`."""
    _check(order, model_kind)
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    sig = [float(v) for v in sigmas.tolist()]
    hist = []                                   # (lambda, denoised) of previous step starts
    past = []                                   # (sigma, x, denoised) of previous step starts (last step)
    for i in range(len(sig) - 1):
        s, t = sig[i], sig[i + 1]
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if t <= 0.0:
            x = final_step(x, denoised, s, eps_nodes(past, model_kind), model_kind, last_order) if s > 0 else denoised
            continue
        if last_order > 1 and _ab(model_kind, s)[0] > 0:
            past = (past + [(s, x, denoised)])[-(last_order - 1):]   # references: eps only if needed
        lam_s, lam_t = _ab(model_kind, s)[2], _ab(model_kind, t)[2]
        hist = [p for p in hist if math.isfinite(p[0]) and p[0] < lam_s][-(order - 1):] if order > 1 else []
        if i < rk_warmup:
            x = _pseudo_rk4(model, x, denoised, s, t, s_in, extra_args, model_kind)
        elif not math.isfinite(lam_s) or not hist:
            x = transfer(x, denoised, s, t, model_kind)
        else:
            nodes = hist + [(lam_s, denoised)]
            w = exp_ab_weights([p[0] for p in nodes], lam_s, lam_t)
            a_t, b_t = _ab(model_kind, t)[:2]
            acc = nodes[0][1] * (w[0] * a_t)           # one new latent, the rest accumulates in place
            for wj, p in zip(w[1:], nodes[1:]):
                acc.add_(p[1], alpha=wj * a_t)
            x = acc.add_(x, alpha=b_t / _ab(model_kind, s)[1])
        hist.append((lam_s, denoised))
    return x


@torch.no_grad()
def sample_lab_plms(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve", order=4,
                    last_order=1):
    """PLMS on the data prediction (Liu et al. 2022, eq. 12) as exponential Adams-Bashforth in lambda.

    Steps of order `order` (default 4) after a multistep warm-up of orders 1..order-1, so the global
    order is 2 (the 1st-order first step), nearer 4 when the run starts at high noise; 1 call per step.
    last_order: nodes of the final step's Adams-Bashforth in rho (`final_step`; 1 = return the denoised).
    """
    return plms_core(model, x, sigmas, extra_args, callback, model_kind, order, rk_warmup=0, last_order=last_order)


@torch.no_grad()
def sample_lab_pndm(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve", order=4,
                    last_order=1):
    """PNDM (Liu et al. 2022, eqs. 12-13): 3 pseudo-RK4 warm-up steps (4 calls each), then PLMS.

    Order 4; NFE = steps + 9 (a step to sigma = 0 costs 1 call and is not a warm-up step).
    """
    return plms_core(model, x, sigmas, extra_args, callback, model_kind, order, rk_warmup=3, last_order=last_order)


register(SamplerSpec(
    name="lab_plms", fn=sample_lab_plms, family="plms", order=2, model_calls=1,
    summary="PLMS: 4-step exponential Adams-Bashforth on the denoised; 1st-order start caps order at 2",
    citation=_CITATION))
register(SamplerSpec(
    name="lab_pndm", fn=sample_lab_pndm, family="plms", order=4, model_calls=1, warmup_calls=9,
    nfe_rule=lambda steps: steps + 3 * min(3, max(steps - 1, 0)),  # the step to 0 is a plain denoise
    summary="PNDM: pseudo-RK4 warm-up (3 steps x 4 calls), then 4-step PLMS on the denoised",
    citation=_CITATION))
