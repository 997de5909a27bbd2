"""Implicit Runge-Kutta samplers (Gauss-Legendre, Radau IIA) solved by fixed-point iteration.

Same integration variable as rk_explicit.py (read its docstring): time s = e^lambda = alpha/beta,
state u = x / beta, u' = D(x, sigma), so a stage value in x-space is
    X_i = (beta_i / beta) x + beta_i ds sum_j a_ij K_j,   K_i = D(X_i, sigma(s + c_i ds)).
The implicit stage equations K = D(X(K)) are solved by Jacobi fixed-point iteration
(Hairer-Norsett-Wanner I, Sec. II.7, eq. (7.6); Hairer-Wanner II, Sec. IV.8):
    K^(0)_i = D(x, sigma)                            (1 call, shared by all stages)
    K^(m)_i = D(X_i(K^(m-1)), sigma_i),  m = 1..iterations   (stages calls each)
    x_new   = (beta' / beta) x + beta' ds sum_i b_i K^(iterations)_i.
Iteration converges because ds * beta * |dD/dx| <= e^h - 1 (h the lambda step; see rk_explicit.py),
i.e. the problem is not stiff in this variable. Each iteration gains one order (the start K^(0) is O(h) off; the map is
an O(h) contraction), so the order is min(p, iterations + 1): the default `iterations` is p - 1,
the fewest that reach the tableau's order p. Fixed-point iteration does NOT give these methods
their A-/L-stability (that needs Newton); they are here as accurate high-order collocation methods.

Model calls per step: 1 + stages * iterations; a final step to sigma = 0 returns D(x, sigma_last)
(1 call, the limit of the DDIM step). nfe(steps) = (1 + stages*iterations)(steps - 1) + 1 for a
schedule ending at 0 (spec warmup_calls = -stages*iterations), (1 + stages*iterations) steps otherwise.
"""
import torch

from .common import report
from .registry import register
from .rk_explicit import check_sigmas, check_unknown, combine, denoise, resolve, sigma_at, snr_time
from .spec import SamplerSpec
from .tableaus import IMPLICIT


def implicit_step(model, x, sigma, sigma_next, tab, iterations, k0, model_kind, extra_args):
    """One implicit RK step by `iterations` Jacobi sweeps from K = k0 (= D(x, sigma)).
    Costs stages * iterations model calls."""
    s0 = snr_time(model_kind, sigma)
    ds = snr_time(model_kind, sigma_next) - s0
    sig = [sigma_at(model_kind, s0 + c * ds) for c in tab.c]
    ks = [k0] * tab.stages
    for _ in range(iterations):
        ks = [denoise(model, combine(x, sig[i] / sigma, sig[i] * ds, tab.a[i], ks), sig[i], extra_args)
              for i in range(tab.stages)]
    return combine(x, sigma_next / sigma, sigma_next * ds, tab.b, ks)


@torch.no_grad()
def sample_rk_implicit(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve",
                       tableau="gauss_legendre2", iterations=None, **unknown):
    """Implicit RK (tableaus.IMPLICIT: Gauss-Legendre 2/3 stages, Radau IIA 2/3 stages) by fixed-point
    iteration in the data-prediction variable e^lambda (DPM-Solver++ eq. (9), Lu et al. 2022).

    Order: min(tableau order, iterations + 1) -- Gauss-Legendre 4 / 6, Radau IIA 3 / 5 with the default
    iterations = order - 1. Model calls per step: 1 + stages * iterations (last step to 0: 1 call).
    """
    name = f"lab_implicit_rk ({tableau})"
    check_unknown(unknown, name, ("tableau", "iterations"))
    tab = resolve(IMPLICIT, tableau, name)
    if iterations is None:
        iterations = tab.order - 1
    if isinstance(iterations, bool) or not isinstance(iterations, int) or not 1 <= iterations <= 50:
        raise ValueError(f"{name}: iterations must be an integer from 1 to 50 "
                         f"({tab.order - 1} reaches order {tab.order}), got {iterations!r}")
    extra_args = {} if extra_args is None else extra_args
    sig = check_sigmas(sigmas, model_kind, name)
    for i in range(len(sig) - 1):
        k0 = denoise(model, x, sig[i], extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], k0)
        if sig[i + 1] == 0.0:
            x = k0  # final step to sigma = 0: the limit of the DDIM step (1 call)
        else:
            x = implicit_step(model, x, sig[i], sig[i + 1], tab, iterations, k0, model_kind, extra_args)
    return x


_ENTRIES = (
    ("lab_gauss_legendre2", "gauss_legendre2", "Gauss-Legendre 2-stage collocation (order 4)"),
    ("lab_gauss_legendre3", "gauss_legendre3", "Gauss-Legendre 3-stage collocation (order 6)"),
    ("lab_radau_iia2", "radau_iia2", "Radau IIA 2-stage (order 3)"),
    ("lab_radau_iia3", "radau_iia3", "Radau IIA 3-stage (order 5)"),
)

for _name, _tab_name, _summary in _ENTRIES:
    _t = IMPLICIT[_tab_name]
    _calls = 1 + _t.stages * (_t.order - 1)
    register(SamplerSpec(
        name=_name, fn=sample_rk_implicit, family="rk_implicit", order=_t.order,
        model_calls=_calls, warmup_calls=1 - _calls,
        summary=f"{_summary}, fixed-point iteration ({_t.order - 1} sweeps) in e^lambda; "
                f"{_calls} calls/step, 1 for the last step to 0",
        citation=_t.citation + "; variable: Lu et al. (2022) DPM-Solver++ eq. (9)",
        options={"tableau": _tab_name, "iterations": _t.order - 1}))
