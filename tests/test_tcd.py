"""TCD strategic stochastic sampling (samplers/tcd.py) against exact answers: gamma = 0 is
DDIM (= Euler) exactly, order 1; for Gaussian data the output variance equals the closed-form
recursion of Zheng et al.'s Alg. 4 (DDIM to s = (1 - gamma) sigma_next, forward noise to
sigma_next); on the mixture the modes are right and the spread matches that recursion; the
naive VE re-noising on a flow model fails."""
import math

import pytest
import torch

from lab.simple_solvers import euler as _euler

import lab
import samplers
from distribution import CHI2_5DOF_P001, chi_square, distribution_check, flow_sigmas, karras_sigmas, log_sigmas, logit_sigmas
from numerics import fit_slope, lab_problem, reference, rms
from samplers.tcd import sample_lab_tcd

SHAPE = (4, 8, 8)
SPREAD = 0.15


def _ab(kind, s):
    return (1.0 - s, s) if kind == "flow" else (1.0, s)


def _start(par, sigma0, batch=2):
    model, noise, smax = lab_problem(par, SHAPE, batch, 0)
    if par == "flow":
        x0, _ = model.mixture.sample(batch, generator=torch.Generator().manual_seed(1))
        return model, (1 - sigma0) * x0 + sigma0 * (noise / smax)
    return model, noise * (sigma0 / smax)


def _never(sigma, sigma_next):
    raise AssertionError("gamma = 0 must not draw noise")



@pytest.mark.parametrize("par", ["eps", "flow"])
def test_gamma0_is_ddim_exactly_and_first_order(par):
    sig = karras_sigmas(10) if par == "eps" else flow_sigmas(10)
    model, x = _start(par, float(sig[0]))
    out = sample_lab_tcd(model, x.clone(), sig, model_kind=model.model_kind, gamma=0.0, noise_sampler=_never)
    assert rms(out, euler_ref(model, x, sig)) < 1e-12
    sched = (lambda n: log_sigmas(14.614642, 0.05, n)) if par == "eps" else (lambda n: logit_sigmas(0.95, 0.05, n))
    s0 = float(sched(1)[0])
    model, x = _start(par, s0)
    ref = reference(model, x, s0, 0.05, steps=512)
    steps = [12, 24, 48]
    errs = [rms(sample_lab_tcd(model, x.clone(), sched(n), model_kind=model.model_kind, gamma=0.0), ref) for n in steps]
    assert abs(-fit_slope(steps, errs) - 1.0) < 0.3, errs


def tcd_variance(kind, sigmas, gamma, v0):
    """Var of the TCD chain for data N(0, SPREAD^2 I) (D = g x), straight from Alg. 4:
    x_s = alpha_s D + beta_s eps, x_next = (alpha_n / alpha_s) x_s + sqrt(beta_n^2 - (alpha_n beta_s / alpha_s)^2) z."""
    v = v0
    for s, sn in zip(sigmas[:-1], sigmas[1:]):
        a, b = _ab(kind, s)
        an, bn = _ab(kind, sn)
        g = a * SPREAD ** 2 / (a * a * SPREAD ** 2 + b * b)
        a_s, b_s = _ab(kind, (1 - gamma) * sn)
        x_coef = (an / a_s) * (b_s / b)                      # through eps = (x - alpha D) / beta
        d_coef = (an / a_s) * (a_s - b_s * a / b)
        fresh = max(bn * bn - (an * b_s / a_s) ** 2, 0.0)
        v = (x_coef + d_coef * g) ** 2 * v + fresh
    return v


@pytest.mark.parametrize("gamma,steps", [(0.3, 30), (1.0, 8), (0.6, 12)])
@pytest.mark.parametrize("par", ["eps", "flow"])
def test_exact_gaussian_law(gamma, steps, par):
    gm = lab.GaussianMixture(torch.zeros((1,) + SHAPE, dtype=torch.float64), SPREAD)
    model = lab.LabKModel(gm, par)
    sig = karras_sigmas(steps) if par == "eps" else flow_sigmas(steps)
    noise = torch.randn((256,) + SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = sample_lab_tcd(model, noise * sig[0], sig, extra_args={"seed": 2}, model_kind=model.model_kind, gamma=gamma)
    pred = tcd_variance(model.model_kind, sig.tolist(), gamma, float(sig[0]) ** 2)
    assert float(out.pow(2).mean()) / pred == pytest.approx(1.0, abs=0.03)   # SE 0.6 %


def _mixture(par, steps, batch, model_kind=None, gamma=0.3):
    mix = lab.default_mixture(shape=SHAPE)
    model = lab.LabKModel(mix, par)
    sig = karras_sigmas(steps) if par == "eps" else flow_sigmas(steps)
    noise = torch.randn((batch,) + SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = sample_lab_tcd(model, noise * sig[0], sig, extra_args={"seed": 5},
                         model_kind=model_kind or model.model_kind, gamma=gamma)
    dist, fr = distribution_check(mix, out)
    return dist, chi_square(mix, fr, batch), sig


@pytest.mark.parametrize("par", ["eps", "flow"])
def test_mixture_modes_right_and_spread_as_theory(par):
    """gamma = 0.3, 100 steps: the component fractions match the weights, and the normalised
    distance equals sqrt(predicted variance) / spread from the Gaussian recursion (~0.89):
    with a posterior-mean denoiser (not a trajectory-consistency model) TCD under-disperses,
    by an amount that does not vanish with more steps."""
    dist, chi2, sig = _mixture(par, 100, 256)
    kind = "flow" if par == "flow" else "ve"
    expected = math.sqrt(tcd_variance(kind, sig.tolist(), 0.3, float(sig[0]) ** 2)) / SPREAD
    assert chi2 < CHI2_5DOF_P001
    assert dist == pytest.approx(expected, abs=0.02)
    assert 0.85 < expected < 0.93


def test_naive_ve_renoising_on_flow_fails():
    dist, chi2, _ = _mixture("flow", 100, 256, model_kind="ve")
    assert chi2 > CHI2_5DOF_P001


def test_registration_options_and_contract():
    spec = samplers.SAMPLERS["lab_tcd"]
    assert spec.options == {"gamma": 0.3} and spec.stochastic and spec.flow_safe
    assert spec.order == 1 and spec.model_calls == 1
    model, x = _start("flow", 1.0, batch=3)
    sig = torch.tensor([1.0, 0.6, 0.3, 0.0], dtype=torch.float32)
    seen = []
    model.calls = 0
    a = spec.fn(model, x.float(), sig, extra_args={"seed": 1}, callback=seen.append, model_kind="flow", **spec.options)
    assert model.calls == spec.nfe(3) and [c["i"] for c in seen] == [0, 1, 2]
    assert a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, spec.fn(model, x.float(), sig, extra_args={"seed": 1}, model_kind="flow", **spec.options))
    assert not torch.equal(a, spec.fn(model, x.float(), sig, extra_args={"seed": 2}, model_kind="flow", **spec.options))
    for bad in (-0.1, 1.5, "abc", None):
        with pytest.raises(ValueError, match="gamma"):
            spec.fn(model, x, sig, model_kind="flow", gamma=bad)


def test_split_schedule_video_latent_and_fp16():
    mix = lab.default_mixture(shape=(4, 3, 4, 4))
    for par, sig in (("eps", torch.tensor([6.0, 2.0, 0.7])), ("flow", torch.tensor([1.0, 0.6, 0.3]))):
        model = lab.LabKModel(mix, par)
        x = torch.randn(2, 4, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * sig[0]
        out = sample_lab_tcd(model, x, sig, extra_args={"seed": 0}, model_kind=model.model_kind)
        assert out.shape == x.shape and torch.isfinite(out).all() and float(out.std()) > 0.5 * float(sig[-1])
        one = sample_lab_tcd(model, x.half(), sig[:2], extra_args={"seed": 0}, model_kind=model.model_kind)
        assert one.dtype == torch.float16 and torch.isfinite(one).all()


def euler_ref(model, x, sigmas):
    """Euler on dx/dsigma = (x - D) / sigma (= DDIM in both kinds)."""
    return _euler(model.denoise, x, sigmas)
