"""Exponential RK family (samplers/rk_exponential.py), its phi tableaus (samplers/phi_tableaus.py) and
the phi-functions (samplers/phi.py).

Expected values come from exact math (phi closed forms, Butcher's and Hochbruck-Ostermann's order
conditions, the exact PF-ODE solution of the lab mixture, the constant-denoiser solution) and from the
methods as their papers publish them (RES / DPM-Solver++ expm1 formulas, Cox-Matthews' ETD formulas),
transcribed here independently of the tableau data.
"""
import functools
import math

import pytest
import torch

import samplers
from numerics import fit_slope, lab_problem, log_grid, reference, rms
from samplers.phi import P, phi
from samplers.phi_tableaus import PHI_TABLEAUS
from samplers.rk_exponential import sample_rk_exponential
from samplers.rk_explicit import rk_step
from test_rk_explicit import _order_residual

FAMILY = {  # name -> (tableau, classical order, stiff order, calls per step)
    "lab_res_2s": ("res_2s", 2, 2, 2), "lab_res_3s": ("res_3s", 3, 2, 3), "lab_res_5s": ("res_5s", 4, 3, 5),
    "lab_dpmpp_2s": ("dpmpp_2s", 2, 1, 2), "lab_dpmpp_3s": ("dpmpp_3s", 3, 2, 3),
    "lab_etdrk2": ("etdrk2", 2, 2, 2), "lab_etdrk3": ("etdrk3", 3, 2, 3), "lab_etdrk4": ("etdrk4", 4, 2, 4),
}
ZS = (-0.05, -0.7, -2.3, -6.0)


# ---- phi functions ----------------------------------------------------------------------------

@pytest.mark.parametrize("z", [-30.0, -6.0, -1.0, -0.999, -0.3, -1e-9, 0.0, 1e-7, 0.5, 2.0])
def test_phi_closed_forms(z):
    e = math.exp(z)
    exact = {0: e, 1: 1.0, 2: 0.5, 3: 1 / 6, 4: 1 / 24} if z == 0 else {
        0: e, 1: math.expm1(z) / z, 2: (math.expm1(z) - z) / z ** 2,
        3: (math.expm1(z) - z - z * z / 2) / z ** 3, 4: (math.expm1(z) - z - z * z / 2 - z ** 3 / 6) / z ** 4}
    for k, v in exact.items():
        # the closed forms themselves cancel for small |z|: compare there with the Taylor value
        ref = sum(z ** n / math.factorial(n + k) for n in range(40)) if 0 < abs(z) < 1 and k > 1 else v
        assert abs(phi(k, z) - ref) <= 1e-14 * max(1.0, abs(ref)), (k, z)


def test_phi_expression_algebra():
    expr = 2 * P(1) - P(2, 0.5) * (P(0, 0.5) - 1) + 1
    z = -1.3
    assert abs(expr(z) - (2 * phi(1, z) - phi(2, z / 2) * (math.exp(z / 2) - 1) + 1)) < 1e-15
    with pytest.raises(ValueError, match="k >= 0"):
        phi(-1, 0.0)


# ---- tableau data: classical and stiff order conditions --------------------------------------

def _stiff_residuals(tab, z):
    """Hochbruck-Ostermann stiff order conditions (2005; Acta Numerica 2010) in scalar form,
    by order: order 1 includes the simplifying assumption sum_j a_ij = c_i phi_1(c_i z)."""
    a, b = tab.coefficients(z)
    c = [float(v) for v in tab.c]
    s = tab.stages

    def psi(j, i):
        return sum(a[i][k] * c[k] ** (j - 1) for k in range(i)) / math.factorial(j - 1) - c[i] ** j * phi(j, c[i] * z)
    return {
        1: [sum(b) - phi(1, z)] + [sum(a[i]) - c[i] * phi(1, c[i] * z) for i in range(s)],
        2: [sum(b[i] * c[i] for i in range(s)) - phi(2, z)],
        3: [sum(b[i] * c[i] ** 2 for i in range(s)) / 2 - phi(3, z), sum(b[i] * psi(2, i) for i in range(s))],
        4: [sum(b[i] * c[i] ** 3 for i in range(s)) / 6 - phi(4, z), sum(b[i] * psi(3, i) for i in range(s)),
            sum(b[i] * sum(a[i][k] * psi(2, k) for k in range(i)) for i in range(s)),
            sum(b[i] * c[i] * psi(2, i) for i in range(s))],
    }


@pytest.mark.parametrize("name", sorted(PHI_TABLEAUS))
def test_underlying_tableau_has_the_classical_order(name):
    """At z = 0 an exponential RK of classical order p is a Butcher tableau of order p: all rooted-tree
    conditions up to p hold and one at p + 1 fails."""
    tab = PHI_TABLEAUS[name]
    u = tab.underlying()
    for k in range(1, tab.order + 1):
        assert _order_residual(u, u.b, k) < 1e-13, f"order-{k} condition fails"
    assert _order_residual(u, u.b, tab.order + 1) > 1e-6


@pytest.mark.parametrize("name", sorted(PHI_TABLEAUS))
def test_stiff_order_conditions(name):
    """The stated stiff order is exact: every condition up to it holds for all z, one at the next fails."""
    tab = PHI_TABLEAUS[name]
    for k in range(1, tab.stiff_order + 1):
        worst = max(abs(r) for z in ZS for r in _stiff_residuals(tab, z)[k])
        assert worst < 1e-13, f"stiff order-{k} condition fails by {worst:.2e}"
    if tab.stiff_order < 4:
        assert max(abs(r) for z in ZS for r in _stiff_residuals(tab, z)[tab.stiff_order + 1]) > 1e-6


def test_res_5s_weakened_order_4():
    """Hochbruck-Ostermann's five-stage method: of the order-4 conditions the two psi_2 ones hold for
    all z, the other two at z = 0 (their weakened form)."""
    tab = PHI_TABLEAUS["res_5s"]
    for z in ZS:
        assert max(abs(r) for r in _stiff_residuals(tab, z)[4][2:]) < 1e-13
    assert max(abs(r) for r in _stiff_residuals(tab, 0.0)[4]) < 1e-13


def test_registry_entries():
    for name, (tab, order, stiff, calls) in FAMILY.items():
        spec = samplers.SAMPLERS[name]
        assert spec.family == "rk_exponential" and spec.options == {"tableau": tab}
        assert PHI_TABLEAUS[tab].stiff_order == stiff
        assert spec.order == order and spec.model_calls == calls and not spec.stochastic and spec.flow_safe
        assert spec.follows_schedule and spec.nfe(1) == 1 and spec.nfe(10) == 9 * calls + 1


# ---- measured order on the lab mixture ---------------------------------------------------------
# Grids uniform in lambda (the integrators' own time): eps the high-noise half as in
# test_rk_explicit.py, flow from sigma 0.9 to 0.1.
REGIONS = {"eps": (14.614642, 3.0, (6, 8, 12, 16)), "flow": (0.9, 0.1, (12, 16, 24, 32))}


@functools.lru_cache(maxsize=None)
def _problem(param):
    s0, s1, steps = REGIONS[param]
    model, x, smax = lab_problem(param)
    x = reference(model, x, smax, s0, steps=64)
    return model, x, reference(model, x, s0, s1, steps=2048)


def _order(name, param, grid):
    model, x, ref = _problem(param)
    s0, s1, steps = REGIONS[param]
    spec = samplers.SAMPLERS[name]
    errs = [rms(spec.fn(model, x.clone(), grid(n), model_kind=model.model_kind, **spec.options), ref) for n in steps]
    return -fit_slope(steps, errs)


@pytest.mark.parametrize("param", ["eps", "flow"])
@pytest.mark.parametrize("name", sorted(FAMILY))
def test_observed_order(name, param):
    s0, s1, _ = REGIONS[param]
    kind = "flow" if param == "flow" else "ve"
    order = _order(name, param, lambda n: log_grid(kind, s0, s1, n))
    assert abs(order - FAMILY[name][1]) < 0.3, f"{name} ({param}): observed order {order:.2f}"


@pytest.mark.parametrize("name", ["lab_res_2s", "lab_res_5s", "lab_etdrk4"])
def test_flow_from_sigma_one(name):
    """From the flow start sigma = 1 (lambda = -inf) the first step is the underlying classical RK in
    s = e^lambda; on a schedule uniform in sigma the lambda steps near sigma = 1 do not shrink with the
    step count, so the measured order there is about 2 (documented): finite, and at least 1.5."""
    model, x, _ = lab_problem("flow")
    spec = samplers.SAMPLERS[name]
    tab = PHI_TABLEAUS[spec.options["tableau"]]
    first = sample_rk_exponential(model, x, torch.tensor([1.0, 0.9], dtype=torch.float64), model_kind="flow",
                                  **spec.options)
    k1 = model(x, torch.tensor([1.0]))
    expect, _ = rk_step(model, x, 1.0, 0.9, tab.underlying(), tab.stages, k1, "flow", {})
    assert torch.equal(first, expect)
    ref = reference(model, x, 1.0, 0.3, steps=2048)
    steps = (12, 16, 24, 32)
    errs = [rms(spec.fn(model, x.clone(), torch.linspace(1.0, 0.3, n + 1, dtype=torch.float64),
                        model_kind="flow", **spec.options), ref) for n in steps]
    assert -fit_slope(steps, errs) > 1.5


# ---- equivalences with the methods as published ----------------------------------------------

def _ab(kind, sigma):
    return (1.0 - sigma, sigma) if kind == "flow" else (1.0, sigma)


def _lam(kind, sigma):
    a, b = _ab(kind, sigma)
    return math.log(a / b)


def _sig(kind, lam):
    return 1.0 / (1.0 + math.exp(lam)) if kind == "flow" else math.exp(-lam)


def _run_published(step, model, x, sigmas, kind):
    """Loop a published single step over the schedule; the final step to 0 returns D (as documented)."""
    def D(x, s):
        return model(x, torch.full((x.shape[0],), s, dtype=torch.float64))
    sig = sigmas.tolist()
    for s, s_next in zip(sig[:-1], sig[1:]):
        d0 = D(x, s)
        x = d0 if s_next == 0 else step(x, s, s_next, d0, lambda y, t: D(y, t), kind)
    return x


def _res_2s(x, s, t, d0, D, kind):
    """RES 2-stage, c2 = 1/2: b2 = phi_2 / c2, b1 = phi_1 - b2 (Zhang et al. 2023; HO 2005)."""
    h = _lam(kind, t) - _lam(kind, s)
    m = _sig(kind, _lam(kind, s) + h / 2)
    xm = (m / s) * x - _ab(kind, m)[0] * math.expm1(-h / 2) * d0
    d1 = D(xm, m)
    hphi1, hphi2 = -math.expm1(-h), (math.expm1(-h) + h) / h
    return (t / s) * x + _ab(kind, t)[0] * ((hphi1 - 2 * hphi2) * d0 + 2 * hphi2 * d1)


def _dpmpp_2s(x, s, t, d0, D, kind, r=0.5):
    """DPM-Solver++(2S), Lu et al. (2022), arXiv:2211.01095, Alg. 1."""
    h = _lam(kind, t) - _lam(kind, s)
    m = _sig(kind, _lam(kind, s) + r * h)
    u = (m / s) * x - _ab(kind, m)[0] * math.expm1(-r * h) * d0
    d = (1 - 1 / (2 * r)) * d0 + D(u, m) / (2 * r)
    return (t / s) * x - _ab(kind, t)[0] * math.expm1(-h) * d


def _dpmpp_3s(x, s, t, d0, D, kind, r1=1 / 3, r2=2 / 3):
    """DPM-Solver-3 in data prediction (DPM-Solver++ singlestep third-order update, r1 = 1/3, r2 = 2/3)."""
    lam, h = _lam(kind, s), _lam(kind, t) - _lam(kind, s)
    s1, s2 = _sig(kind, lam + r1 * h), _sig(kind, lam + r2 * h)
    p11, p12, p1 = math.expm1(-r1 * h), math.expm1(-r2 * h), math.expm1(-h)
    p22, p2 = math.expm1(-r2 * h) / (r2 * h) + 1, math.expm1(-h) / h + 1
    x1 = (s1 / s) * x - _ab(kind, s1)[0] * p11 * d0
    d1 = D(x1, s1)
    x2 = (s2 / s) * x - _ab(kind, s2)[0] * p12 * d0 + (r2 / r1) * _ab(kind, s2)[0] * p22 * (d1 - d0)
    d2 = D(x2, s2)
    return (t / s) * x - _ab(kind, t)[0] * p1 * d0 + (1 / r2) * _ab(kind, t)[0] * p2 * (d2 - d0)


def _cm_weights(h):
    """Cox-Matthews (2002) ETD3RK / ETDRK4 final-stage brackets with L = -1: h^-2 L^-3 [...] for N_u, N_a(+b), N_c."""
    E, L = math.exp(-h), -1.0
    k = 1.0 / (h ** 2 * L ** 3)
    return (k * (-4 - L * h + E * (4 - 3 * L * h + (L * h) ** 2)), k * (2 + L * h + E * (-2 + L * h)),
            k * (-4 - 3 * L * h - (L * h) ** 2 + E * (4 - L * h)))


def _etd(x, s, t, d0, D, kind, stages):
    """Cox & Matthews (2002) ETD2RK, ETD3RK, ETDRK4 as the paper writes them, on y = x / alpha,
    y' = -y + D (L = -1): (e^{Lh} - 1) / L = 1 - e^{-h}."""
    lam, h = _lam(kind, s), _lam(kind, t) - _lam(kind, s)
    m = _sig(kind, lam + h / 2)
    am, at = _ab(kind, m)[0], _ab(kind, t)[0]
    y, eh, eh2 = x / _ab(kind, s)[0], math.exp(-h), math.exp(-h / 2)
    if stages == 2:
        a = eh * y + (1 - eh) * d0
        na = D(at * a, t)
        return at * (eh * y + (1 - eh) * d0 + (na - d0) * (eh - 1 + h) / h)
    w_u, w_a, w_c = _cm_weights(h)
    a = eh2 * y + (1 - eh2) * d0
    na = D(am * a, m)
    if stages == 3:
        b = eh * y + (1 - eh) * (2 * na - d0)
        nb = D(at * b, t)
        return at * (eh * y + w_u * d0 + 4 * w_a * na + w_c * nb)
    b = eh2 * y + (1 - eh2) * na
    nb = D(am * b, m)
    c = eh2 * a + (1 - eh2) * (2 * nb - d0)
    nc = D(at * c, t)
    return at * (eh * y + w_u * d0 + 2 * w_a * (na + nb) + w_c * nc)


PUBLISHED = {
    "lab_res_2s": _res_2s, "lab_dpmpp_2s": _dpmpp_2s, "lab_dpmpp_3s": _dpmpp_3s,
    "lab_etdrk2": functools.partial(_etd, stages=2), "lab_etdrk3": functools.partial(_etd, stages=3),
    "lab_etdrk4": functools.partial(_etd, stages=4),
}


@pytest.mark.parametrize("param", ["eps", "flow"])
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_equals_published_formula(name, param):
    """The phi-tableau sampler equals the method written the way its paper writes it."""
    model, x, smax = lab_problem(param, shape=(4, 6, 6))
    kind = model.model_kind
    start = 0.95 if kind == "flow" else smax
    sigmas = torch.cat([log_grid(kind, start, 0.05, 7), torch.zeros(1, dtype=torch.float64)])
    spec = samplers.SAMPLERS[name]
    ours = spec.fn(model, x, sigmas, model_kind=kind, **spec.options)
    published = _run_published(PUBLISHED[name], model, x, sigmas, kind)
    assert rms(ours, published) < 1e-10 * max(1.0, rms(published, torch.zeros_like(published)))


# ---- contract ------------------------------------------------------------------------------------

class _ConstantDenoiser:
    def __init__(self, value):
        self.value = value

    def __call__(self, x, sigma, **kw):
        return self.value.to(x.dtype).expand_as(x)


@pytest.mark.parametrize("model_kind,s0,s1", [("ve", 14.6, 0.3), ("flow", 1.0, 0.2), ("flow", 0.9, 0.5)])
@pytest.mark.parametrize("name", sorted(FAMILY))
def test_linear_part_exact(name, model_kind, s0, s1):
    """D = c constant: x(s1) = c + (x - c) s1 / s0 (VE) or the flow analogue, exactly, in one step."""
    c = torch.linspace(-1, 1, 2 * 3 * 4 * 4 * 4, dtype=torch.float64).reshape(2, 3, 4, 4, 4)
    x = torch.randn(2, 3, 4, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    spec = samplers.SAMPLERS[name]
    out = spec.fn(_ConstantDenoiser(c), x, torch.tensor([s0, s1], dtype=torch.float64), model_kind=model_kind,
                  **spec.options)
    # x = alpha c + beta n along the exact path: n = (x - alpha0 c) / beta0
    a0, a1 = _ab(model_kind, s0)[0], _ab(model_kind, s1)[0]
    assert rms(out, a1 * c + (x - a0 * c) * (s1 / s0)) < 1e-13


@pytest.mark.parametrize("steps", [1, 2, 5])
@pytest.mark.parametrize("name", sorted(FAMILY))
def test_model_calls_match_spec(name, steps):
    model, x, smax = lab_problem("flow", shape=(2, 4, 4), batch=1)
    sigmas = torch.cat([torch.linspace(1.0, 0.05, steps), torch.zeros(1)])
    spec = samplers.SAMPLERS[name]
    spec.fn(model, x, sigmas, model_kind="flow", **spec.options)
    assert model.calls == spec.nfe(steps)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("param", ["eps", "flow"])
def test_5d_batch_low_precision(dtype, param):
    """Video latents (B, C, T, H, W): dtype and shape kept, finite, close to the float64 run."""
    model, x, smax = lab_problem(param, shape=(3, 2, 4, 4), batch=3)
    kind = model.model_kind
    sigmas = torch.cat([log_grid(kind, 0.95 if kind == "flow" else smax, 0.05, 6).float(), torch.zeros(1)])
    exact = sample_rk_exponential(model, x, sigmas, model_kind=kind, tableau="res_3s")
    out = sample_rk_exponential(model, x.to(dtype), sigmas, model_kind=kind, tableau="res_3s")
    assert out.dtype == dtype and out.shape == x.shape and torch.isfinite(out).all()
    assert rms(out, exact) < {torch.float16: 5e-3, torch.bfloat16: 5e-2, torch.float32: 1e-5}[dtype]


@pytest.mark.parametrize("kwargs,word", [({"tableau": "rk4"}, "tableau"), ({"order": 2}, "order"),
                                         ({"model_kind": "vp"}, "model_kind")])
def test_bad_options(kwargs, word):
    model, x, smax = lab_problem("eps", shape=(2, 4, 4), batch=1)
    with pytest.raises(ValueError, match=word):
        sample_rk_exponential(model, x, torch.tensor([smax, 0.0]), **kwargs)
