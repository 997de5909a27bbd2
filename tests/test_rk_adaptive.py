"""Adaptive embedded Runge-Kutta family (samplers/rk_adaptive.py).

Checked against the exact PF-ODE solution of the lab mixture and the documented contract: error falls
with the tolerance, the call budget is never exceeded (the fallback still reaches the end sigma), the
first and last sigma are honoured, FSAL call counting is exact.
"""
import functools
import math

import pytest
import torch

import samplers
from numerics import lab_problem, reference, rms
from samplers.rk_adaptive import sample_rk_adaptive

ADAPTIVE = {"lab_adaptive_fehlberg12": ("fehlberg12", 1, 3), "lab_adaptive_bosh23": ("bosh3", 3, 4),
            "lab_adaptive_dopri45": ("dopri5", 5, 7)}  # name -> (tableau, order, stages)
TABLEAUS = [v[0] for v in ADAPTIVE.values()]
KINDS = ("eps", "flow")
END = 0.05




def _sigmas(smax, steps, end=END):
    return torch.exp(torch.linspace(math.log(smax), math.log(end), steps + 1, dtype=torch.float64))


@functools.lru_cache(maxsize=None)
def _problem(param):
    model, x, smax = lab_problem(param)
    return model, x, smax, reference(model, x, smax, END, steps=2048)


def test_registry_entries():
    for name, (tab, order, stages) in ADAPTIVE.items():
        spec = samplers.SAMPLERS[name]
        assert spec.family == "rk_adaptive" and spec.order == order and not spec.stochastic and spec.flow_safe
        assert spec.options["tableau"] == tab and spec.options["rtol"] > 0 and spec.options["atol"] > 0
        assert spec.nfe(10) == (stages - 1) * 10 + 1   # the default budget: an upper bound


@pytest.mark.parametrize("param", KINDS)
@pytest.mark.parametrize("tableau", TABLEAUS)
def test_error_falls_with_tolerance(tableau, param):
    model, x, smax, ref = _problem(param)
    errs, calls = [], []
    for tol in (1e-5, 1e-6, 1e-7, 1e-8):
        stats = {}
        out = sample_rk_adaptive(model, x, _sigmas(smax, 10), model_kind=model.model_kind, tableau=tableau,
                                 rtol=tol, atol=tol, max_nfe=100000, stats=stats)
        errs.append(rms(out, ref))
        calls.append(stats["nfe"])
        assert stats["fallback_steps"] == 0
    assert all(b < a for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < errs[0] / 50, errs
    assert calls == sorted(calls) and calls[-1] > calls[0], calls


@pytest.mark.parametrize("param", KINDS)
@pytest.mark.parametrize("tableau", TABLEAUS)
def test_first_last_sigma_and_fsal_counting(tableau, param):
    """The run starts at sigmas[0] and ends exactly at sigmas[-1] (the result matches the exact solution
    there), the interior sigmas are not used as the grid, and with FSAL every attempt costs stages - 1
    calls plus 1 for the very first D."""
    model, x, smax, ref = _problem(param)
    sigmas, stats, seen = _sigmas(smax, 4), {}, []
    model.calls = 0
    out = sample_rk_adaptive(model, x, sigmas, model_kind=model.model_kind, tableau=tableau, rtol=1e-7,
                             atol=1e-7, max_nfe=100000, stats=stats, callback=seen.append)
    grid = stats["sigmas"]
    assert grid[0] == float(sigmas[0]) and grid[-1] == float(sigmas[-1]) and len(grid) == stats["accepted"] + 1
    assert len(grid) > len(sigmas) and all(a > b for a, b in zip(grid, grid[1:]))
    assert rms(out, ref) < 2e-4
    stages = ADAPTIVE[[k for k, v in ADAPTIVE.items() if v[0] == tableau][0]][2]
    assert model.calls == stats["nfe"] == 1 + (stages - 1) * (stats["accepted"] + stats["rejected"])
    assert [float(d["sigma"]) for d in seen] == grid[:-1] and [d["i"] for d in seen] == list(range(len(seen)))


@pytest.mark.parametrize("param", KINDS)
def test_schedule_ending_at_zero(param):
    """Adaptive down to the last positive sigma, then D there from the FSAL stage (no extra call)."""
    model, x, smax, _ = _problem(param)
    sigmas = torch.cat([_sigmas(smax, 5, end=0.03), torch.zeros(1)])
    stats = {}
    model.calls = 0
    out = sample_rk_adaptive(model, x, sigmas, model_kind=model.model_kind, tableau="bosh3", rtol=1e-7, atol=1e-7,
                             max_nfe=100000, stats=stats)
    floor = float(sigmas[-2])
    at_floor = reference(model, x, smax, floor, steps=1024)
    assert rms(out, model.denoise(at_floor, floor)) < 1e-4
    assert stats["sigmas"][-2:] == [floor, 0.0] and model.calls == stats["nfe"]
    model.calls = 0
    one = sample_rk_adaptive(model, x, torch.tensor([smax, 0.0]), model_kind=model.model_kind)
    assert model.calls == 1 and torch.equal(one, model(x, torch.tensor([smax])))


@pytest.mark.parametrize("end", [0.0, END])
@pytest.mark.parametrize("budget", [1, 2, 5, 7, 13, 40])
@pytest.mark.parametrize("tableau", TABLEAUS)
def test_budget_never_exceeded(tableau, budget, end):
    """A tolerance that cannot be met within max_nfe: the run still ends at sigmas[-1] within budget."""
    model, x, smax = lab_problem("eps", shape=(4, 8, 8), batch=2)
    sigmas = _sigmas(smax, 8)
    if end == 0.0:
        sigmas = torch.cat([sigmas, torch.zeros(1, dtype=sigmas.dtype)])
    stats = {}
    out = sample_rk_adaptive(model, x, sigmas, tableau=tableau, rtol=1e-9, atol=1e-9, max_nfe=budget, stats=stats)
    assert model.calls <= budget and model.calls == stats["nfe"]
    assert stats["forced"] + stats["fallback_steps"] > 0
    assert stats["sigmas"][-1] == float(sigmas[-1]) and torch.isfinite(out).all()
    if budget == 40 and end > 0:   # the budget is spent on full-order steps: still near the exact answer
        assert rms(out, reference(model, x, smax, END, steps=512)) < 0.01


@pytest.mark.parametrize("name", sorted(ADAPTIVE))
def test_default_budget_is_spec_nfe(name):
    spec = samplers.SAMPLERS[name]
    model, x, smax = lab_problem("flow", shape=(4, 8, 8), batch=2)
    for steps in (1, 2, 6):
        model.calls = 0
        sigmas = torch.cat([torch.linspace(1.0, 0.05, steps), torch.zeros(1)]) if steps > 1 else torch.tensor([1., 0.])
        spec.fn(model, x, sigmas, model_kind="flow", **{**spec.options, "rtol": 1e-9, "atol": 1e-9})
        assert 1 <= model.calls <= spec.nfe(steps)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("param", KINDS)
def test_5d_batch_low_precision(dtype, param):
    model, x, smax = lab_problem(param, shape=(3, 2, 4, 4), batch=3)
    sigmas = _sigmas(smax, 6).float()
    stats = {}
    exact = sample_rk_adaptive(model, x, sigmas, model_kind=model.model_kind)
    out = sample_rk_adaptive(model, x.to(dtype), sigmas, model_kind=model.model_kind, stats=stats)
    assert out.dtype == dtype and out.shape == x.shape and torch.isfinite(out).all()
    assert rms(out, exact) < {torch.float16: 2e-2, torch.bfloat16: 5e-2}[dtype]   # step choices may differ
    assert stats["nfe"] <= 6 * 6 + 1 and stats["sigmas"][-1] == float(sigmas[-1])


@pytest.mark.parametrize("kwargs,word", [
    ({"rtol": -1.0}, "rtol"), ({"rtol": float("nan")}, "rtol"), ({"atol": "0.1"}, "atol"),
    ({"rtol": 0.0, "atol": 0.0}, "rtol"), ({"max_nfe": 0}, "max_nfe"), ({"max_nfe": 2.5}, "max_nfe"),
    ({"max_step": 0.0}, "max_step"), ({"stats": []}, "stats"), ({"tableau": "rk4"}, "tableau"),
    ({"h_init": 0.1}, "h_init"), ({"model_kind": "vp"}, "model_kind"),
])
def test_bad_options(kwargs, word):
    model, x, smax = lab_problem("eps", shape=(2, 4, 4), batch=1)
    with pytest.raises(ValueError, match=word):
        sample_rk_adaptive(model, x, torch.tensor([smax, 1.0, 0.0]), **kwargs)


def test_increasing_sigmas_rejected():
    model, x, _ = lab_problem("eps", shape=(2, 4, 4), batch=1)
    with pytest.raises(ValueError, match="sigmas"):
        sample_rk_adaptive(model, x, torch.tensor([1.0, 2.0]))
