"""Implicit Runge-Kutta family (samplers/rk_implicit.py): Gauss-Legendre and Radau IIA by fixed-point
iteration. Expected values come from theory (collocation orders, the min(p, iterations + 1) order of
Jacobi fixed-point iteration, model-call counts) and the exact PF-ODE solution of the lab mixture.
(The tableaus' order conditions are checked in test_rk_explicit.py with the others.)
"""
import functools
import math

import pytest
import torch

import samplers
from numerics import fit_slope, lab_problem, reference, rms
from samplers.rk_implicit import sample_rk_implicit

IMPLICIT = {  # name -> (tableau, order, stages)
    "lab_gauss_legendre2": ("gauss_legendre2", 4, 2), "lab_gauss_legendre3": ("gauss_legendre3", 6, 3),
    "lab_radau_iia2": ("radau_iia2", 3, 2), "lab_radau_iia3": ("radau_iia3", 5, 3),
}
KINDS = ("eps", "flow")
# The high-noise halves of the trajectories: asymptotic with few steps (see test_rk_explicit.py).
REGION = {"eps": (14.614642, 3.0, "geo", (6, 8, 12, 16)), "flow": (1.0, 0.7, "lin", (8, 12, 16, 24))}




def _grid(s0, s1, kind, n):
    if kind == "geo":
        return torch.exp(torch.linspace(math.log(s0), math.log(s1), n + 1, dtype=torch.float64))
    return torch.linspace(s0, s1, n + 1, dtype=torch.float64)


@functools.lru_cache(maxsize=None)
def _problem(param):
    s0, s1, _, _ = REGION[param]
    model, x, _ = lab_problem(param)
    return model, x, reference(model, x, s0, s1, steps=2048)


def _observed_order(param, **options):
    model, x, ref = _problem(param)
    s0, s1, kind, steps = REGION[param]
    errs = [rms(sample_rk_implicit(model, x.clone(), _grid(s0, s1, kind, n), model_kind=model.model_kind,
                                   **options), ref) for n in steps]
    return -fit_slope(steps, errs)


def test_registry_entries():
    for name, (tab, order, stages) in IMPLICIT.items():
        spec = samplers.SAMPLERS[name]
        calls = 1 + stages * (order - 1)
        assert spec.family == "rk_implicit" and spec.order == order and not spec.stochastic and spec.flow_safe
        assert spec.options == {"tableau": tab, "iterations": order - 1}
        assert spec.model_calls == calls and spec.nfe(1) == 1 and spec.nfe(5) == 4 * calls + 1


@pytest.mark.parametrize("param", KINDS)
@pytest.mark.parametrize("name", sorted(IMPLICIT))
def test_observed_order(name, param):
    order = _observed_order(param, **samplers.SAMPLERS[name].options)
    assert abs(order - IMPLICIT[name][1]) < 0.3, f"{name} ({param}): observed order {order:.2f}"


@pytest.mark.parametrize("iterations", [1, 2])
def test_order_is_iterations_plus_one(iterations):
    """Fixed-point iteration from K = D(x): each sweep gains one order, so Gauss-Legendre 3 (order 6)
    with fewer sweeps has order iterations + 1 -- the documented min(p, iterations + 1)."""
    order = _observed_order("eps", tableau="gauss_legendre3", iterations=iterations)
    assert abs(order - (iterations + 1)) < 0.3, f"observed order {order:.2f}"


@pytest.mark.parametrize("steps", [1, 2, 5])
@pytest.mark.parametrize("name", sorted(IMPLICIT))
def test_model_calls_match_spec(name, steps):
    model, x, smax = lab_problem("flow", shape=(2, 4, 4), batch=1)
    sigmas = torch.cat([torch.linspace(1.0, 0.05, steps), torch.zeros(1)])
    spec = samplers.SAMPLERS[name]
    spec.fn(model, x, sigmas, model_kind="flow", **spec.options)
    assert model.calls == spec.nfe(steps)
    model.calls = 0
    spec.fn(model, x, sigmas[:-1], model_kind="flow", **spec.options)   # ends above 0
    assert model.calls == spec.model_calls * (steps - 1)
    model.calls = 0
    sample_rk_implicit(model, x, torch.tensor([1.0, 0.5]), model_kind="flow", tableau=spec.options["tableau"],
                       iterations=7)
    assert model.calls == 1 + IMPLICIT[name][2] * 7


def test_single_step_and_split_schedule():
    model, x, smax = lab_problem("eps")
    out = sample_rk_implicit(model, x, torch.tensor([smax, 0.0]), tableau="radau_iia3")
    assert model.calls == 1 and torch.equal(out, model(x, torch.tensor([smax])))
    one = sample_rk_implicit(model, x, torch.tensor([smax, 5.0]), tableau="gauss_legendre3")
    assert rms(one, reference(model, x, smax, 5.0, steps=256)) < 1e-4
    sigmas = torch.cat([_grid(smax, 0.03, "geo", 6), torch.zeros(1)])
    whole = sample_rk_implicit(model, x, sigmas, tableau="gauss_legendre2")
    part = sample_rk_implicit(model, x, sigmas[:4], tableau="gauss_legendre2")
    assert torch.equal(sample_rk_implicit(model, part, sigmas[3:], tableau="gauss_legendre2"), whole)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("param", KINDS)
def test_5d_batch_low_precision(dtype, param):
    model, x, smax = lab_problem(param, shape=(3, 2, 4, 4), batch=3)
    sigmas = torch.cat([_grid(smax, 0.05, "geo", 4).float(), torch.zeros(1)])
    seen = []
    exact = sample_rk_implicit(model, x, sigmas, model_kind=model.model_kind, tableau="gauss_legendre2")
    out = sample_rk_implicit(model, x.to(dtype), sigmas, model_kind=model.model_kind, tableau="gauss_legendre2",
                             callback=seen.append)
    assert out.dtype == dtype and out.shape == x.shape and torch.isfinite(out).all()
    assert rms(out, exact) < {torch.float16: 5e-3, torch.bfloat16: 5e-2}[dtype]
    assert [d["i"] for d in seen] == list(range(5)) and all(d["x"].dtype == dtype for d in seen)


@pytest.mark.parametrize("kwargs,word", [
    ({"iterations": 0}, "iterations"), ({"iterations": 2.5}, "iterations"), ({"iterations": True}, "iterations"),
    ({"tableau": "rk4"}, "tableau"), ({"newton": True}, "newton"), ({"model_kind": "edm"}, "model_kind"),
])
def test_bad_options(kwargs, word):
    model, x, smax = lab_problem("eps", shape=(2, 4, 4), batch=1)
    with pytest.raises(ValueError, match=word):
        sample_rk_implicit(model, x, torch.tensor([smax, 0.0]), **kwargs)
