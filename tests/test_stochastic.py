"""Flow-correct ancestral / SDE samplers (samplers/stochastic.py), checked against exact answers:
eta = 0 equals independently written deterministic solvers, orders match theory, the exact
law for Gaussian data matches a closed-form recursion, mixture samples are distributed right
for VE and flow, and the naive VE noise injection on a flow model fails the same check."""
import functools
import math

import pytest
import torch

from lab.simple_solvers import euler as _euler

import lab
import samplers
from distribution import (CHI2_5DOF_P001, chi_square, distribution_check, flow_sigmas, karras_sigmas,
                          log_sigmas, logit_sigmas)
from numerics import fit_slope, lab_problem, reference, rms
from samplers.noise import GaussianNoise
from samplers.stochastic import sample_lab_ancestral_euler, sample_lab_sde_dpmpp_2m, sample_lab_sde_dpmpp_3m

SHAPE = (4, 8, 8)
SPREAD = 0.15


def _ab(kind, s):
    return (1.0 - s, s) if kind == "flow" else (1.0, s)


def _zero_noise(sigma, sigma_next):
    raise AssertionError("eta = 0 must not draw noise")


def _start(par, sigma0, batch=2, seed=0):
    """x at sigma0: VE pure noise * sigma0; flow (1 - s) x0 + s n from an exact data sample."""
    model, noise, smax = lab_problem(par, SHAPE, batch, seed)
    if par == "flow":
        x0, _ = model.mixture.sample(batch, generator=torch.Generator().manual_seed(seed + 1))
        return model, (1 - sigma0) * x0 + sigma0 * (noise / smax)
    return model, noise * (sigma0 / smax)


# ---- deterministic references (written here from the papers, not from the code under test) ----


def dpmpp_2m_ref(model, x, sigmas, kind):
    """DPM-Solver++(2M), Lu et al. 2022 Alg. 2 (first step DPM-Solver++1)."""
    lam = lambda s: math.log(_ab(kind, s)[0] / s)  # noqa: E731
    old, h_last = None, None
    sig = sigmas.tolist()
    for i in range(len(sig) - 1):
        s, sn = sig[i], sig[i + 1]
        d = model.denoise(x, s)
        if sn == 0:
            x = d
            continue
        h = lam(sn) - lam(s)
        dd = d if old is None else (1 + 1 / (2 * h_last / h)) * d - (1 / (2 * h_last / h)) * old
        x = (sn / s) * x - _ab(kind, sn)[0] * math.expm1(-h) * dd
        old, h_last = d, h
    return x


def quadrature_ref(model, x, sigmas, kind, eta, order):
    """Exponential integrator of the eta-SDE's drift with D replaced by the Lagrange
    polynomial (in lambda) through the last `order` denoised values, the integral
    int_0^h k e^-k(h-u) P(u) du (k = 1 + eta) done by composite Simpson (4000 panels)."""
    sig = sigmas.tolist()
    lam = lambda s: math.log(_ab(kind, s)[0] / s)  # noqa: E731
    hist = []
    n = 4000
    for i in range(len(sig) - 1):
        s, sn = sig[i], sig[i + 1]
        d = model.denoise(x, s)
        if sn == 0:
            x = d
            continue
        l0, h, k = lam(s), lam(sn) - lam(s), 1.0 + eta
        hist = [(l0, d)] + hist[: order - 1]
        us = [h * j / n for j in range(n + 1)]
        wts = [(1 if j in (0, n) else (4 if j % 2 else 2)) * h / (3 * n) for j in range(n + 1)]
        integral = torch.zeros_like(x)
        for m, (lm, dm) in enumerate(hist):
            # Lagrange basis L_m(u) at nodes u_j = lambda_j - l0
            nodes = [lj - l0 for lj, _ in hist]
            c = sum(w * k * math.exp(-k * (h - u)) *
                    math.prod((u - nodes[j]) / (nodes[m] - nodes[j]) for j in range(len(nodes)) if j != m)
                    for u, w in zip(us, wts))
            integral = integral + c * dm
        b, bn = _ab(kind, s)[1], _ab(kind, sn)[1]
        x = (bn / b) * math.exp(-eta * h) * x + _ab(kind, sn)[0] * integral
    return x


def test_ancestral_eta0_is_euler_exactly():
    for par, sig in (("eps", karras_sigmas(12)), ("flow", flow_sigmas(12))):
        model, x = _start(par, float(sig[0]))
        out = sample_lab_ancestral_euler(model, x.clone(), sig, model_kind=model.model_kind, eta=0.0,
                                         noise_sampler=_zero_noise)
        assert rms(out, euler_ref(model, x, sig)) < 1e-12


def test_sde_2m_eta0_is_dpmpp_2m_exactly():
    for par, sig in (("eps", log_sigmas(14.6, 0.05, 10)), ("flow", logit_sigmas(0.95, 0.05, 10))):
        model, x = _start(par, float(sig[0]))
        out = sample_lab_sde_dpmpp_2m(model, x.clone(), sig, model_kind=model.model_kind, eta=0.0,
                                      noise_sampler=_zero_noise)
        assert rms(out, dpmpp_2m_ref(model, x, sig, model.model_kind)) < 1e-12


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_sde_deterministic_part_matches_quadrature(eta):
    """heun-2M and 3M drift (noise switched off) = the exact integral of their interpolant."""
    silent = lambda s, sn: torch.zeros(2, *SHAPE, dtype=torch.float64)  # noqa: E731
    for par, sig in (("eps", log_sigmas(9.0, 0.1, 6)), ("flow", logit_sigmas(0.9, 0.1, 6))):
        model, x = _start(par, float(sig[0]))
        kind = model.model_kind
        got2 = sample_lab_sde_dpmpp_2m(model, x.clone(), sig, model_kind=kind, eta=eta, s_noise=0.0,
                                       solver_type="heun", noise_sampler=silent)
        got3 = sample_lab_sde_dpmpp_3m(model, x.clone(), sig, model_kind=kind, eta=eta, s_noise=0.0,
                                       noise_sampler=silent)
        assert rms(got2, quadrature_ref(model, x, sig, kind, eta, 2)) < 1e-9
        assert rms(got3, quadrature_ref(model, x, sig, kind, eta, 3)) < 1e-9


def _order_schedule(par):
    if par == "eps":
        return lambda n: log_sigmas(14.614642, 0.05, n)
    return lambda n: logit_sigmas(0.95, 0.05, n)


@functools.lru_cache(maxsize=None)
def _order_problem(par):
    """(model, x, PF-ODE reference at 0.05); 512 RK4 steps agree with 2048 to ~1e-10."""
    s0 = float(_order_schedule(par)(1)[0])
    model, x = _start(par, s0)
    return model, x, reference(model, x, s0, 0.05, steps=512)


ORDER_CASES = [
    ("lab_ancestral_euler", {}, 1, [12, 24, 48]),
    ("lab_sde_dpmpp_2m", {}, 2, [24, 48, 96]),
    ("lab_sde_dpmpp_2m", {"solver_type": "heun"}, 2, [24, 48, 96]),
    ("lab_sde_dpmpp_3m", {}, 3, [32, 64, 128]),
]


@pytest.mark.parametrize("name,opts,order,steps", ORDER_CASES)
@pytest.mark.parametrize("par", ["eps", "flow"])
def test_observed_order_with_eta0(name, opts, order, steps, par):
    """VE: log-uniform sigmas from sigma_max to 0.05; flow: logit-uniform 0.95 -> 0.05."""
    fn = samplers.SAMPLERS[name].fn
    sched = _order_schedule(par)
    model, x, ref = _order_problem(par)
    errs = [rms(fn(model, x.clone(), sched(n), model_kind=model.model_kind, eta=0.0, **opts), ref) for n in steps]
    assert abs(-fit_slope(steps, errs) - order) < 0.3, errs


# ---- exact law for Gaussian data ----

def ancestral_variance(kind, sigmas, eta, v0):
    """Var of the ancestral chain for data N(0, SPREAD^2 I): k-diffusion's sigma_up / sigma_down
    (Karras et al. 2022 code; Ho et al. 2020 posterior) applied in VE coordinates y = x / alpha."""
    v = v0
    for s, sn in zip(sigmas[:-1], sigmas[1:]):
        a, b = _ab(kind, s)
        an, bn = _ab(kind, sn)
        g = a * SPREAD ** 2 / (a * a * SPREAD ** 2 + b * b)        # D = g x
        ratio_ve = 0.0 if a == 0 else (bn / an) / (b / a)         # sigma_next_ve / sigma_ve
        sn_ve = bn / an
        up = min(sn_ve, eta * sn_ve * math.sqrt(max(1 - ratio_ve ** 2, 0)))
        down = math.sqrt(max(sn_ve ** 2 - up ** 2, 0))
        # x_next = alpha_n (D + down (x / alpha - D) / sigma_ve + up z)
        coef_x = an * down / b
        coef_d = an * (1 - down * a / b)
        v = (coef_x + coef_d * g) ** 2 * v + (an * up) ** 2
    return v


@pytest.mark.parametrize("eta", [1.0, 0.5])
@pytest.mark.parametrize("par", ["eps", "flow"])
def test_ancestral_matches_exact_gaussian_law(eta, par):
    gm = lab.GaussianMixture(torch.zeros((1,) + SHAPE, dtype=torch.float64), SPREAD)
    model = lab.LabKModel(gm, par)
    sig = karras_sigmas(20) if par == "eps" else flow_sigmas(20)
    noise = torch.randn((256,) + SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = sample_lab_ancestral_euler(model, noise * sig[0], sig, extra_args={"seed": 2},
                                     model_kind=model.model_kind, eta=eta)
    pred = ancestral_variance(model.model_kind, sig.tolist(), eta, float(sig[0]) ** 2)
    assert float(out.pow(2).mean()) / pred == pytest.approx(1.0, abs=0.03)   # SE 0.6 %


# ---- mixture distribution (VE and flow) ----

def _mixture_run(par, fn, steps, batch, model_kind=None, seed=5, **opts):
    mix = lab.default_mixture(shape=SHAPE)
    model = lab.LabKModel(mix, par)
    sig = karras_sigmas(steps) if par == "eps" else flow_sigmas(steps)
    noise = torch.randn((batch,) + SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = fn(model, noise * sig[0], sig, extra_args={"seed": seed},
             model_kind=model_kind or model.model_kind, **opts)
    dist, fr = distribution_check(mix, out)
    return dist, chi_square(mix, fr, batch)


@pytest.mark.parametrize("name,steps", [("lab_ancestral_euler", 200), ("lab_sde_dpmpp_2m", 40),
                                        ("lab_sde_dpmpp_2m_heun", 40), ("lab_sde_dpmpp_3m", 40)])
@pytest.mark.parametrize("par", ["eps", "flow"])
def test_eta1_samples_are_distributed_right(name, steps, par):
    spec = samplers.SAMPLERS[name]
    dist, chi2 = _mixture_run(par, spec.fn, steps, 128, **spec.options)
    assert abs(dist - 1.0) < 0.1
    assert chi2 < CHI2_5DOF_P001


def test_naive_ve_noise_injection_on_flow_fails_the_check():
    """The same ancestral chain told the flow model is VE (no signal rescaling) is wrong;
    told the truth it passes, at a step count where discretisation error is small."""
    good = _mixture_run("flow", sample_lab_ancestral_euler, 300, 512)
    naive = _mixture_run("flow", sample_lab_ancestral_euler, 300, 512, model_kind="ve")
    assert abs(good[0] - 1.0) < 0.05 and good[1] < CHI2_5DOF_P001
    assert abs(naive[0] - 1.0) > 0.1 or naive[1] > CHI2_5DOF_P001
    assert naive[1] > CHI2_5DOF_P001


def test_brownian_sde_converges_with_steps_for_one_seed():
    """Same seed, more steps: the SDE result converges (Brownian-path noise); with a fresh
    Gaussian per step it does not (the test can fail)."""
    mix = lab.default_mixture(shape=SHAPE)
    model = lab.LabKModel(mix, "flow")
    _, x = _start("flow", 0.95)
    run = lambda n, **kw: sample_lab_sde_dpmpp_2m(model, x.clone(), logit_sigmas(0.95, 0.05, n),  # noqa: E731
                                                  extra_args={"seed": 3}, model_kind="flow", **kw)
    ref = run(640)
    steps = [40, 80, 160]
    errs = [rms(run(n), ref) for n in steps]
    assert -fit_slope(steps, errs) > 0.5, errs
    fresh = [rms(run(n, noise_sampler=GaussianNoise(x, 3)), ref) for n in steps]
    assert min(fresh) > 10 * errs[-1], fresh


# ---- contract ----

ALL = ["lab_ancestral_euler", "lab_sde_dpmpp_2m", "lab_sde_dpmpp_2m_heun", "lab_sde_dpmpp_3m"]


@pytest.mark.parametrize("name", ALL)
def test_seeded_callbacks_calls_and_shapes(name):
    spec = samplers.SAMPLERS[name]
    assert spec.stochastic and spec.flow_safe and spec.name.startswith("lab_")
    for par in ("eps", "flow"):
        s0 = 0.9 if par == "flow" else 5.0
        model, x = _start(par, s0, batch=3)
        sig = torch.tensor([s0, 0.5, 0.2, 0.0], dtype=torch.float32)
        seen = []
        model.calls = 0
        a = spec.fn(model, x.float(), sig, extra_args={"seed": 1}, callback=seen.append,
                    model_kind=model.model_kind, **spec.options)
        assert model.calls == spec.nfe(3) == 3
        assert [c["i"] for c in seen] == [0, 1, 2] and set(seen[0]) == {"x", "i", "sigma", "sigma_hat", "denoised"}
        assert a.dtype == torch.float32 and a.shape == x.shape and torch.isfinite(a).all()
        b = spec.fn(model, x.float(), sig, extra_args={"seed": 1}, model_kind=model.model_kind, **spec.options)
        c = spec.fn(model, x.float(), sig, extra_args={"seed": 2}, model_kind=model.model_kind, **spec.options)
        assert torch.equal(a, b) and not torch.equal(a, c)


# every pack sampler that adds noise (this file's, the singlestep ones, ER-SDE, SA-Solver, Restart)
NOISY = sorted(n for n, s in samplers.SAMPLERS.items() if s.stochastic and not s.cfg_pp and s.family != "tcd")


@pytest.mark.parametrize("name", NOISY)
def test_split_schedule_single_step_video_and_fp16(name):
    """5-D latents, batch 2, flow from sigma = 1, a schedule not ending at 0, one fp16 step."""
    spec = samplers.SAMPLERS[name]
    mix = lab.default_mixture(shape=(4, 3, 4, 4))
    for par, sig in (("eps", torch.tensor([6.0, 2.0, 0.7])), ("flow", torch.tensor([1.0, 0.6, 0.3]))):
        model = lab.LabKModel(mix, par)
        x = torch.randn(2, 4, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * sig[0]
        out = spec.fn(model, x, sig, extra_args={"seed": 0}, model_kind=model.model_kind, **spec.options)
        assert out.shape == x.shape and torch.isfinite(out).all()
        assert float(out.std()) > 0.5 * float(sig[-1])              # still noisy at sigma 0.3 / 0.7
        one = spec.fn(model, x.half(), sig[:2], extra_args={"seed": 0}, model_kind=model.model_kind, **spec.options)
        assert one.dtype == torch.float16 and one.shape == x.shape and torch.isfinite(one).all()


def test_bad_options_raise_value_errors_naming_the_option():
    model, x = _start("eps", 5.0)
    sig = torch.tensor([5.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="eta"):
        sample_lab_ancestral_euler(model, x, sig, eta=-0.5)
    with pytest.raises(ValueError, match="s_noise"):
        sample_lab_sde_dpmpp_3m(model, x, sig, s_noise="loud")
    with pytest.raises(ValueError, match="solver_type"):
        sample_lab_sde_dpmpp_2m(model, x, sig, solver_type="rk4")
    with pytest.raises(ValueError, match="must not increase"):
        sample_lab_sde_dpmpp_2m(model, x, torch.tensor([1.0, 5.0, 0.0]))
    with pytest.raises(ValueError, match="model_kind"):
        sample_lab_ancestral_euler(model, x, sig, model_kind="vp")
    with pytest.raises(ValueError, match="flow sigmas"):
        sample_lab_ancestral_euler(model, x, sig, model_kind="flow")


def euler_ref(model, x, sigmas):
    """Euler on dx/dsigma = (x - D) / sigma (= DDIM in both kinds)."""
    return _euler(model.denoise, x, sigmas)


def test_third_order_forms_against_the_exact_integral_of_a_quadratic():
    """The 3M update integrates the Newton polynomial through three denoised values exactly: for D
    quadratic in lambda it equals int_0^h e^(u - h) D(u) du (eta = 0, VE, x_s = 0) in closed form.
    "reference" is the DPM-Solver++(3M) update as published (Lu et al. 2022: phi_2 = (e^-h - 1) / h + 1,
    phi_3 = phi_2 / h - 1/2, + phi_2 D1 - phi_3 D2), the weights of core's dpmpp_3m_sde: not exact there."""
    from samplers.stochastic import _polynomial_terms
    a, c, h = 0.7, 0.9, 0.5
    lams = [0.0, -0.4, -1.0]                              # current point first, then the two before it
    dens = [torch.tensor([1.0 + a * u + c * u * u], dtype=torch.float64) for u in lams]
    history = list(zip(lams, dens))
    exact = (-math.expm1(-h)) + a * (h - 1 + math.exp(-h)) + c * (h * h - 2 * h + 2 - 2 * math.exp(-h))
    base = -math.expm1(-h) * dens[0]

    def update(form):
        return float(base + sum(k * t for k, t in _polynomial_terms(history, h, h, 3, "heun", form)))
    assert abs(update("exact") - exact) < 1e-12
    r0, r1 = (lams[0] - lams[1]) / h, (lams[1] - lams[2]) / h
    d1_0, d1_1 = (dens[0] - dens[1]) / r0, (dens[1] - dens[2]) / r1
    d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
    d2 = (d1_0 - d1_1) / (r0 + r1)
    phi_2 = math.expm1(-h) / h + 1
    phi_3 = phi_2 / h - 0.5
    published = float(base + phi_2 * d1 - phi_3 * d2)
    assert abs(update("reference") - published) < 1e-12
    assert abs(published - exact) > 1e-2                  # the published weight is half the exact one
