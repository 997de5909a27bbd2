"""Every registered scheduler obeys the contract; the shapes follow their closed forms.

Contract: fn(model_sigmas, steps) -> steps + 1 float32 sigmas, finite, non-increasing,
last == 0, first == the model's sigma_max except where documented (see expected_first).
Closed forms (written here independently of the pack):
- polyexponential: log sigma = log s_min + ramp^rho (log s_max - log s_min) (k-diffusion).
- Laplace quantile: Q(p) = mu - beta sign(p - 1/2) ln(1 - 2|p - 1/2|), truncated to the model's
  range (Hang et al. 2024).
- VP-SDE: sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1) (Song et al. 2021, Eq. 33).
- Beta quantiles in closed form: Beta(1, 1) -> q; Beta(a, 1) -> q^(1/a);
  Beta(1/2, 1/2) (arcsine) -> sin^2(pi q / 2) (Lee et al. 2024 schedule).
"""
import math

import numpy as np
import pytest
import torch

import schedulers
from schedulers import common, shapes
from schedulers.model_sigmas import flow_model_sigmas, sd_model_sigmas

STEPS = [1, 2, 3, 4, 5, 7, 10, 20, 50, 100, 333, 1000]
MODELS = {"sd": sd_model_sigmas(), "flow3": flow_model_sigmas(3.0), "flow1": flow_model_sigmas(1.0)}
CORE_DROPDOWN = {"simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta",
                 "normal", "linear_quadratic", "kl_optimal"}


def expected_first(name, ms, steps):
    """The value the first sigma must equal; the documented exceptions live here."""
    if name in ("lab_ays_sd15", "lab_ays_sdxl") and ms.kind == "ve":
        return 14.615                      # published table as-is (= SD sigma_max to 3 decimals)
    if name == "lab_leading":              # diffusers leading + steps_offset 1: t = (n-1)(T//n) + 1
        T = ms.sigmas.numel()
        return float(ms.sigmas[min((steps - 1) * (T // steps) + 1, T - 1)])
    if name == "lab_linspace" and steps == 1:
        return ms.sigma_min                # diffusers: np.linspace(0, T - 1, 1) == [0]
    return ms.sigma_max


def test_registry_names_and_metadata():
    names = set(schedulers.SCHEDULERS)
    assert {"lab_ays_sd15", "lab_ays_sdxl", "lab_ays_svd", "lab_gits", "lab_leading", "lab_trailing",
            "lab_linspace", "lab_polyexp", "lab_laplace", "lab_vp", "lab_beta57"} <= names
    for name, spec in schedulers.SCHEDULERS.items():
        assert name.startswith("lab_") and name not in CORE_DROPDOWN
        assert spec.summary and spec.citation and callable(spec.fn)


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("name", sorted(schedulers.SCHEDULERS))
def test_contract(name, model):
    ms = MODELS[model]
    fn = schedulers.SCHEDULERS[name].fn
    for steps in STEPS:
        s = fn(ms, steps)
        assert isinstance(s, torch.Tensor) and s.dtype == torch.float32 and s.shape == (steps + 1,)
        assert bool(torch.isfinite(s).all())
        assert bool((s[1:] <= s[:-1]).all()), (name, model, steps)
        assert float(s[-1]) == 0.0 and bool((s[:-1] > 0).all())
        assert float(s[:-1].min()) >= ms.sigma_min * (1 - 1e-6)
        assert float(s[0]) == float(np.float32(expected_first(name, ms, steps))), (name, model, steps)


@pytest.mark.parametrize("name", ["lab_ays_sd15", "lab_ays_sdxl"])
def test_documented_first_sigma_is_close_to_sigma_max(name):
    ms = MODELS["sd"]
    assert abs(float(schedulers.SCHEDULERS[name].fn(ms, 10)[0]) / ms.sigma_max - 1) < 1e-4


def test_strictly_decreasing_where_promised():
    """No zero-length steps (multistep samplers divide by step sizes); leading clamps only at n = T."""
    for model, ms in MODELS.items():
        for name, spec in schedulers.SCHEDULERS.items():
            for steps in (2, 10, 100, 999):
                s = spec.fn(ms, steps)
                assert bool((s[1:] < s[:-1]).all()), (name, model, steps)


def test_bad_steps_raise():
    for spec in schedulers.SCHEDULERS.values():
        for bad in (0, -3, 2.5, True):
            with pytest.raises(ValueError, match="steps"):
                spec.fn(MODELS["sd"], bad)


# ---------------------------------------------------------------- shapes against closed forms

@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("rho", [0.5, 1.0, 2.0, 3.0])
def test_polyexponential_closed_form(model, rho):
    ms = MODELS[model]
    for steps in (2, 5, 17):
        ramp = np.linspace(1.0, 0.0, steps) ** rho
        lo, hi = math.log(ms.sigma_min), math.log(ms.sigma_max)
        expect = np.exp(lo + ramp * (hi - lo))
        got = shapes.polyexponential(ms, steps, rho=rho).double().numpy()
        np.testing.assert_allclose(got[:-1], expect, rtol=1e-6)
    geo = np.geomspace(ms.sigma_max, ms.sigma_min, 9)      # rho = 1: log-uniform
    np.testing.assert_allclose(shapes.polyexponential(ms, 9).double().numpy()[:-1], geo, rtol=1e-6)


def laplace_cdf(v, mu, b):
    return np.where(v < mu, 0.5 * np.exp(np.minimum(v - mu, 0) / b), 1 - 0.5 * np.exp(-np.maximum(v - mu, 0) / b))


def laplace_quantile(p, mu, b):
    """Q(p) = mu - b sign(p - 1/2) ln(1 - 2|p - 1/2|), written per half so tiny p keeps precision."""
    with np.errstate(divide="ignore"):
        return np.where(p < 0.5, mu + b * np.log(2.0 * p), mu - b * np.log(2.0 * (1.0 - p)))


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("mu,beta", [(0.0, 0.5), (1.0, 0.8), (-0.5, 0.3), (0.0, 0.05)])
def test_laplace_truncated_quantiles(model, mu, beta):
    """Evenly spaced quantiles of Laplace(mu, beta) over log sigma, truncated to the model's range;
    flow models: log(s / (1 - s)) - log(shift) is the Laplace variable."""
    ms = MODELS[model]
    steps = 12
    if ms.kind == "flow":
        lo, hi = math.log(ms.sigma_min / (1 - ms.sigma_min) / ms.shift), math.inf
    else:
        lo, hi = math.log(ms.sigma_min), math.log(ms.sigma_max)
    f_lo, f_hi = laplace_cdf(np.array([lo, hi]), mu, beta)
    x = np.linspace(0.0, 1.0, steps)
    p = (1 - x) * f_hi + x * f_lo
    lam = laplace_quantile(p[1:], mu, beta)
    expect = 1.0 / (1.0 + np.exp(-lam) / ms.shift) if ms.kind == "flow" else np.exp(lam)
    got = shapes.laplace(ms, steps, mu=mu, beta=beta).double().numpy()
    np.testing.assert_allclose(got[1:-1], expect, rtol=1e-6)
    assert got[0] == ms.sigma_max and got[-1] == 0.0
    assert got[-2] == pytest.approx(ms.sigma_min, rel=1e-6)
    assert np.all(np.diff(got) < 0)


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("beta_d,beta_min", [(19.9, 0.1), (10.0, 1.0), (0.0, 8.0)])
def test_vp_is_uniform_in_vp_time(model, beta_d, beta_min):
    ms = MODELS[model]
    steps = 9
    got = shapes.vp(ms, steps, beta_d=beta_d, beta_min=beta_min).double().numpy()[:-1]
    k = ms.shift if ms.kind == "flow" else 1.0
    g = got[1:]                                                       # got[0] is sigma_max itself
    sig_ve = g / (1.0 - g) / k if ms.kind == "flow" else g            # back to the base VP sigma
    L = np.log1p(sig_ve ** 2)
    t = L / beta_min if beta_d == 0 else (np.sqrt(beta_min ** 2 + 2 * beta_d * L) - beta_min) / beta_d
    dt = np.diff(t)
    np.testing.assert_allclose(dt, dt[0], rtol=1e-4)                  # equally spaced in t
    t_hi = t[0] - dt[0]                                               # where the first step starts
    if ms.kind == "ve":
        L0 = math.log1p(ms.sigma_max ** 2)
        t0 = L0 / beta_min if beta_d == 0 else (math.sqrt(beta_min ** 2 + 2 * beta_d * L0) - beta_min) / beta_d
        assert t_hi == pytest.approx(min(1.0, t0), rel=1e-5)
    else:
        assert t_hi == pytest.approx(1.0, rel=1e-5)                   # the VP-SDE's T = 1
    assert got[0] == ms.sigma_max


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("a,b,ppf", [
    (1.0, 1.0, lambda q: q),
    (2.0, 1.0, lambda q: q ** 0.5),
    (0.5, 1.0, lambda q: q ** 2),
    (0.5, 0.5, lambda q: np.sin(np.pi * q / 2) ** 2),
])
def test_beta_schedule_quantiles(model, a, b, ppf):
    ms = MODELS[model]
    steps = 10
    q = 1.0 - np.arange(steps) / steps
    index = ppf(q) * (ms.sigmas.numel() - 1)
    table = ms.sigmas.double().numpy()
    expect = np.exp(np.interp(index, np.arange(table.size), np.log(table)))
    got = shapes.beta_schedule(ms, steps, alpha=a, beta=b).double().numpy()
    np.testing.assert_allclose(got[:-1], expect, rtol=1e-6)


def test_beta57_is_between_its_neighbours():
    """beta57 (0.5, 0.7) quantiles lie between Beta(0.5, 0.5) and Beta(0.5, 1) ones (stochastic
    order in beta), a check of the shape without re-deriving scipy's numbers."""
    ms = MODELS["sd"]
    lo = shapes.beta_schedule(ms, 10, alpha=0.5, beta=1.0)
    hi = shapes.beta_schedule(ms, 10, alpha=0.5, beta=0.5)
    mid = schedulers.SCHEDULERS["lab_beta57"].fn(ms, 10)
    assert bool((lo[1:-1] < mid[1:-1]).all() and (mid[1:-1] < hi[1:-1]).all())


def test_flow_shift_read_from_the_table():
    for shift in (1.0, 1.15, 3.0, 5.0):
        assert common.flow_log_shift(flow_model_sigmas(shift)) == pytest.approx(math.log(shift), abs=1e-6)
    assert common.flow_log_shift(MODELS["sd"]) == 0.0


def test_shape_bad_options():
    ms = MODELS["sd"]
    with pytest.raises(ValueError, match="rho"):
        shapes.polyexponential(ms, 10, rho=0.0)
    with pytest.raises(ValueError, match="beta"):
        shapes.laplace(ms, 10, beta=-1.0)
    with pytest.raises(ValueError, match="mu"):
        shapes.laplace(ms, 10, mu=float("nan"))
    with pytest.raises(ValueError, match="eps_s"):
        shapes.vp(ms, 10, eps_s=2.0)
    with pytest.raises(ValueError, match="beta_d"):
        shapes.vp(ms, 10, beta_d=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        shapes.beta_schedule(ms, 10, alpha=0.0)
