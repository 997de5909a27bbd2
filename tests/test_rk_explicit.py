"""Explicit Runge-Kutta family (samplers/rk_explicit.py) and the tableau data (samplers/tableaus.py).

Expected values come from theory: Butcher's order conditions (rooted trees), the exact PF-ODE
solution of the lab mixture (lab.reference_solution), the closed-form solution for a constant
denoiser, and the documented model-call counts.
"""
import functools
import math

import pytest
import torch

import samplers
from numerics import fit_slope, lab_problem, reference, rms
from samplers import tableaus
from samplers.rk_explicit import sample_rk_explicit

EXPLICIT = {
    "lab_rk_midpoint": ("midpoint", 2, 2), "lab_rk_ralston": ("ralston2", 2, 2),
    "lab_rk_bosh3": ("bosh3", 3, 3), "lab_rk_ssprk3": ("ssprk3", 3, 3), "lab_rk4": ("rk4", 4, 4),
    "lab_rk4_38": ("rk4_38", 4, 4), "lab_rk_dopri5": ("dopri5", 5, 6),
}  # name -> (tableau, order, model calls per step)
KINDS = ("eps", "flow")




# ---- Butcher order conditions ----------------------------------------------------------------

def _canon(t):
    return tuple(sorted(_canon(c) for c in t))


def _grow(t):
    """Every tree made by adding one leaf to t (a tree is the tuple of its children)."""
    yield _canon(t + ((),))
    for i, c in enumerate(t):
        for g in _grow(c):
            yield _canon(t[:i] + (g,) + t[i + 1:])


TREES = {1: {()}}
for _n in range(2, 8):
    TREES[_n] = {g for t in TREES[_n - 1] for g in _grow(t)}


def _gamma(t):
    size = lambda u: 1 + sum(size(c) for c in u)  # noqa: E731
    return size(t) * math.prod(_gamma(c) for c in t)


def _order_residual(tab, weights, order):
    """max |b . Psi(t) - 1/gamma(t)| over the rooted trees with `order` nodes."""
    a = torch.tensor(tab.a, dtype=torch.float64)
    b = torch.tensor(weights, dtype=torch.float64)

    def psi(t):
        v = torch.ones(len(weights), dtype=torch.float64)
        for c in t:
            v = v * (a @ psi(c))
        return v
    return max(abs(float(b @ psi(t)) - 1.0 / _gamma(t)) for t in TREES[order])


def test_rooted_tree_counts():
    """The tree generator itself: 1, 1, 2, 4, 9, 20, 48 rooted trees (OEIS A000081)."""
    assert [len(TREES[n]) for n in range(1, 8)] == [1, 1, 2, 4, 9, 20, 48]


@pytest.mark.parametrize("name", sorted(tableaus.TABLEAUS))
def test_tableau_order_conditions(name):
    """Every tableau satisfies all order conditions up to its stated order and fails one at the next
    order (so the stated order is exact); embedded weights likewise; rows of A sum to c."""
    tab = tableaus.TABLEAUS[name]
    for i in range(tab.stages):
        assert abs(sum(tab.a[i]) - tab.c[i]) < 1e-14, f"row {i} of A does not sum to c"
    pairs = [(tab.b, tab.order)] + ([(tab.b_err, tab.err_order)] if tab.b_err is not None else [])
    for weights, order in pairs:
        for k in range(1, order + 1):
            assert _order_residual(tab, weights, k) < 1e-13, f"order-{k} condition fails"
        assert _order_residual(tab, weights, order + 1) > 1e-6, f"also order {order + 1}: order understated"


def test_fsal_and_used_stages():
    for tab in tableaus.TABLEAUS.values():
        if tab.fsal:
            assert tab.c[-1] == 1.0 and tab.a[-1] == tab.b, tab.name
    assert tableaus.DOPRI5.used_stages == 6 and tableaus.BOSH3.used_stages == 3
    assert tableaus.RK4.used_stages == 4 and tableaus.RADAU_IIA3.used_stages == 3


def test_registry_entries():
    for name, (tab, order, calls) in EXPLICIT.items():
        spec = samplers.SAMPLERS[name]
        assert spec.family == "rk_explicit" and spec.options == {"tableau": tab}
        assert spec.order == order and spec.model_calls == calls and not spec.stochastic and spec.flow_safe
        assert spec.nfe(1) == 1 and spec.nfe(10) == 9 * calls + 1


# ---- accuracy on the lab model -----------------------------------------------------------------

# High-noise halves of the trajectories, where every method is in its asymptotic range with few
# steps. (Near sigma = 0 this variable treats the x ~ const regime exactly, which makes midpoint look
# order 3 there, and Dormand-Prince's tiny principal error term keeps it pre-asymptotic down to the
# float64 floor: see test_full_trajectory_order_lower_bound for that range.)
ASYMPTOTIC = {"eps": (14.614642, 3.0, "geo", (6, 8, 12, 16)), "flow": (1.0, 0.7, "lin", (8, 12, 16, 24))}
FULL = {"eps": (14.614642, 0.05, "geo", (32, 48, 64, 96)), "flow": (1.0, 0.05, "geo", (32, 48, 64, 96))}


def _grid(s0, s1, kind, n):
    if kind == "geo":
        return torch.exp(torch.linspace(math.log(s0), math.log(s1), n + 1, dtype=torch.float64))
    return torch.linspace(s0, s1, n + 1, dtype=torch.float64)


@functools.lru_cache(maxsize=None)
def _problem(param, region):
    s0, s1, kind, steps = (ASYMPTOTIC if region == "asymptotic" else FULL)[param]
    model, x, _ = lab_problem(param)
    return model, x, reference(model, x, s0, s1, steps=2048), (s0, s1, kind, steps)


def _observed_order(name, param, region):
    model, x, ref, (s0, s1, kind, steps) = _problem(param, region)
    spec = samplers.SAMPLERS[name]
    errs = [rms(spec.fn(model, x.clone(), _grid(s0, s1, kind, n), model_kind=model.model_kind, **spec.options), ref)
            for n in steps]
    return -fit_slope(steps, errs)


@pytest.mark.parametrize("param", KINDS)
@pytest.mark.parametrize("name", sorted(EXPLICIT))
def test_observed_order(name, param):
    order = _observed_order(name, param, "asymptotic")
    assert abs(order - EXPLICIT[name][1]) < 0.3, f"{name} ({param}): observed order {order:.2f}"


@pytest.mark.parametrize("param", KINDS)
@pytest.mark.parametrize("name", sorted(EXPLICIT))
def test_full_trajectory_order_lower_bound(name, param):
    """Down to sigma = 0.05 no method loses order (it may look higher: see ASYMPTOTIC's note)."""
    order = _observed_order(name, param, "full")
    assert order > EXPLICIT[name][1] - 0.3, f"{name} ({param}): observed order {order:.2f}"


class _ConstantDenoiser:
    def __init__(self, value):
        self.value, self.calls = value, 0

    def __call__(self, x, sigma, **kw):
        self.calls += 1
        return self.value.to(x.dtype).expand_as(x)


@pytest.mark.parametrize("model_kind,s0,s1", [("ve", 14.6, 0.3), ("flow", 1.0, 0.2), ("flow", 0.9, 0.5)])
@pytest.mark.parametrize("name", sorted(EXPLICIT))
def test_linear_part_exact(name, model_kind, s0, s1):
    """With D = c constant the PF-ODE dx/dsigma = (x - c)/sigma has x(s1) = c + (x - c) s1/s0:
    the e^lambda data-prediction variable integrates it exactly in one step (sigma-space RK does not)."""
    c = torch.linspace(-1, 1, 2 * 4 * 8 * 8, dtype=torch.float64).reshape(2, 4, 8, 8)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    spec = samplers.SAMPLERS[name]
    out = spec.fn(_ConstantDenoiser(c), x, torch.tensor([s0, s1], dtype=torch.float64), model_kind=model_kind,
                  **spec.options)
    assert rms(out, c + (x - c) * (s1 / s0)) < 1e-13


# ---- contract: model calls, schedules, shapes, dtypes, errors ---------------------------------

@pytest.mark.parametrize("steps", [1, 3, 10])
@pytest.mark.parametrize("name", sorted(EXPLICIT))
def test_model_calls_match_spec(name, steps):
    model, x, smax = lab_problem("eps", shape=(2, 4, 4), batch=1)
    sigmas = torch.cat([torch.exp(torch.linspace(math.log(smax), math.log(0.03), steps)), torch.zeros(1)])
    spec = samplers.SAMPLERS[name]
    spec.fn(model, x, sigmas, **spec.options)
    assert model.calls == spec.nfe(steps)
    model.calls = 0
    spec.fn(model, x, sigmas[:-1], **spec.options)   # ends above 0: every step pays all stages
    assert model.calls == spec.model_calls * (steps - 1)


def test_split_schedule_equals_whole_and_callback():
    """sigmas not ending at 0: running [s0..sk] then [sk..0] is the same computation as [s0..0]."""
    model, x, smax = lab_problem("flow", shape=(4, 8, 8), batch=2)
    sigmas = torch.cat([torch.linspace(1.0, 0.05, 9), torch.zeros(1)])
    seen = []
    whole = sample_rk_explicit(model, x, sigmas, model_kind="flow", tableau="rk4", callback=seen.append)
    first = sample_rk_explicit(model, x, sigmas[:5], model_kind="flow", tableau="rk4")
    assert torch.equal(sample_rk_explicit(model, first, sigmas[4:], model_kind="flow", tableau="rk4"), whole)
    assert [d["i"] for d in seen] == list(range(9))
    assert all(float(d["sigma"]) == float(sigmas[d["i"]]) for d in seen)
    assert set(seen[0]) == {"x", "i", "sigma", "sigma_hat", "denoised"}


def test_single_step():
    model, x, smax = lab_problem("eps")
    out = sample_rk_explicit(model, x, torch.tensor([smax, 0.0]), tableau="dopri5")
    assert model.calls == 1 and torch.equal(out, model(x, torch.tensor([smax])))   # final step = D
    one = sample_rk_explicit(model, x, torch.tensor([smax, 5.0]), tableau="rk4")  # one RK4 step, h ~ 1.07
    assert rms(one, reference(model, x, smax, 5.0, steps=256)) < 1e-3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("param", KINDS)
def test_5d_batch_low_precision(dtype, param):
    """Video latents (B, C, T, H, W), batch 3, half precision: dtype kept, finite, close to float64."""
    model, x, smax = lab_problem(param, shape=(3, 2, 4, 4), batch=3)
    sigmas = torch.cat([_grid(smax, 0.05, "geo", 6).float(), torch.zeros(1)])
    exact = sample_rk_explicit(model, x, sigmas, model_kind=model.model_kind, tableau="bosh3")
    out = sample_rk_explicit(model, x.to(dtype), sigmas, model_kind=model.model_kind, tableau="bosh3")
    assert out.dtype == dtype and out.shape == x.shape and torch.isfinite(out).all()
    assert rms(out, exact) < {torch.float16: 5e-3, torch.bfloat16: 5e-2, torch.float32: 1e-5}[dtype]


@pytest.mark.parametrize("kwargs,word", [
    ({"tableau": "rk5"}, "tableau"), ({"tableau": "gauss_legendre2"}, "tableau"),
    ({"order": 2}, "order"), ({"model_kind": "vp"}, "model_kind"),
])
def test_bad_options(kwargs, word):
    model, x, smax = lab_problem("eps", shape=(2, 4, 4), batch=1)
    with pytest.raises(ValueError, match=word):
        sample_rk_explicit(model, x, torch.tensor([smax, 0.0]), **kwargs)


@pytest.mark.parametrize("sigmas,kind", [([1.0, 0.0, 0.5], "ve"), ([1.0, -0.5], "ve"), ([1.5, 0.5], "flow"),
                                         ([float("nan"), 0.5], "ve")])
def test_bad_sigmas(sigmas, kind):
    model, x, _ = lab_problem("eps", shape=(2, 4, 4), batch=1)
    with pytest.raises(ValueError, match="sigmas"):
        sample_rk_explicit(model, x, torch.tensor(sigmas), model_kind=kind)
