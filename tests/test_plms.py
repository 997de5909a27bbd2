"""PLMS / PNDM (samplers/plms.py): exact quadrature weights, observed order, NFE, edge cases."""
import math

import pytest
import torch

from numerics import fit_slope, lab_problem, log_grid, reference, rms, trajectory_problem
from samplers.plms import eps_node, exp_ab_weights, final_step, phi, sample_lab_plms, sample_lab_pndm, transfer
from samplers.registry import SAMPLERS

CASES = {"ve": ("eps", 3.0, 0.05), "flow": ("flow", 0.8, 0.05)}





def problem(kind):
    return trajectory_problem(*CASES[kind])


def observed_order(fn, kind, steps, **kw):
    model, x, ref = problem(kind)
    _, s0, s1 = CASES[kind]
    errs = [rms(fn(model, x, log_grid(kind, s0, s1, n), model_kind=kind, **kw), ref) for n in steps]
    return -fit_slope(steps, errs), errs


def test_phi_matches_closed_forms():
    for z in (-3.0, -0.7, -1e-3, 0.4, 2.5):
        assert phi(1, z) == pytest.approx(math.expm1(z) / z, rel=1e-12)
        assert phi(2, z) == pytest.approx((math.expm1(z) - z) / z ** 2, rel=1e-9)
        assert phi(3, z) == pytest.approx((math.expm1(z) - z - z * z / 2) / z ** 3, rel=1e-6)


@pytest.mark.parametrize("h", [0.05, 0.4, 1.5])
def test_exp_ab_weights_integrate_cubics_exactly(h):
    """sum w_j P(lambda_j) must equal integral_{-h}^0 e^u P(lambda_t + u) du for any cubic P."""
    lam_t = 0.3
    lams = [lam_t - h - 0.9 * h * k for k in (3, 2, 1, 0)]      # uneven history, last = lambda_s
    coeffs = [0.7, -1.3, 0.4, 0.25]
    p = lambda lam: sum(c * lam ** k for k, c in enumerate(coeffs))  # noqa: E731
    w = exp_ab_weights(lams, lams[-1], lam_t)
    n = 4000                                     # composite Simpson, independent of the code under test
    us = [-h + h * i / n for i in range(n + 1)]
    f = [math.exp(u) * p(lam_t + u) for u in us]
    simpson = h / (3 * n) * (f[0] + f[-1] + 4 * sum(f[1:-1:2]) + 2 * sum(f[2:-1:2]))
    assert sum(wj * p(lj) for wj, lj in zip(w, lams)) == pytest.approx(simpson, rel=1e-10, abs=1e-12)


def test_transfer_is_exact_for_constant_denoiser():
    """A constant D = c gives the ODE solution x_t = c + (beta_t/beta_s)(x_s - c) (VE) - DDIM's property."""
    x, c = torch.randn(2, 3, 4, 4, dtype=torch.float64), torch.randn(2, 3, 4, 4, dtype=torch.float64)
    assert rms(transfer(x, c, 2.0, 0.5, "ve"), c + 0.25 * (x - c)) < 1e-14
    # flow: x = (1-s) x0 + s n with x0 = c: x_t = (1-t) c + t n, n = (x_s - (1-s) c) / s
    n = (x - 0.4 * c) / 0.6
    assert rms(transfer(x, c, 0.6, 0.2, "flow"), 0.8 * c + 0.2 * n) < 1e-14


@pytest.mark.parametrize("kind", ["ve", "flow"])
def test_pndm_is_fourth_order(kind):
    order, _ = observed_order(sample_lab_pndm, kind, [24, 32, 48, 64])
    assert abs(order - 4.0) < 0.3, order


@pytest.mark.parametrize("kind", ["ve", "flow"])
def test_plms_order_two_from_its_first_order_start(kind):
    order, _ = observed_order(sample_lab_plms, kind, [16, 24, 32, 48])
    assert abs(order - 2.0) < 0.3, order
    assert SAMPLERS["lab_plms"].order == 2


def test_plms_order_one_is_ddim():
    order, _ = observed_order(sample_lab_plms, "ve", [16, 24, 32, 48], order=1)
    assert abs(order - 1.0) < 0.3, order


def test_plms_multistep_beats_low_order():
    model, x, ref = problem("ve")
    sig = log_grid("ve", 3.0, 0.05, 32)
    e4 = rms(sample_lab_plms(model, x, sig, order=4), ref)
    e2 = rms(sample_lab_plms(model, x, sig, order=2), ref)
    assert e4 < 0.5 * e2, (e4, e2)


@pytest.mark.parametrize("end", [0.0, 0.05])
def test_nfe_matches_spec(end):
    model, x, smax = lab_problem("eps")
    sig = torch.cat([log_grid("ve", smax, 0.03, 9), torch.tensor([end], dtype=torch.float64)]) \
        if end == 0.0 else log_grid("ve", smax, end, 10)
    for name, fn in (("lab_plms", sample_lab_plms), ("lab_pndm", sample_lab_pndm)):
        model.calls = 0
        out = fn(model, x, sig, model_kind="ve")
        assert model.calls == SAMPLERS[name].nfe(10)
        assert torch.isfinite(out).all()
    if end == 0.0:   # the last step to 0 (AB in rho, no call): local error far below the denoised's
        states = [reference(model, x, smax, float(s), steps=512) for s in sig[-4:-1]]
        exact0 = reference(model, states[-1], float(sig[-2]), 0.0, steps=512)
        past = [eps_node(xs, model(xs, sig[k:k + 1]), float(sig[k]), "ve") for k, xs in zip((-4, -3), states[:2])]
        d9 = model(states[-1], sig[-2:-1])
        e_new = rms(final_step(states[-1], d9, float(sig[-2]), past, "ve"), exact0)
        assert e_new < 0.1 * rms(d9, exact0), (e_new, rms(d9, exact0))


@pytest.mark.parametrize("kind", ["ve", "flow"])
def test_final_step_integrates_quadratic_eps_exactly(kind):
    """final_step: x_0 = z_s - integral_0^rho_s eps drho is exact when eps is a quadratic in rho
    (3 nodes), and with one node it is the denoised (DDIM's last step)."""
    g = torch.Generator().manual_seed(3)
    c0, c1, c2 = (torch.randn(2, 4, 3, 3, generator=g, dtype=torch.float64) for _ in range(3))
    eps = lambda r: c0 + c1 * r + c2 * r * r   # noqa: E731
    sig = [0.4, 0.2, 0.1] if kind == "flow" else [0.5, 0.22, 0.09]
    def node(s):
        a, b = (1.0 - s, s) if kind == "flow" else (1.0, s)
        return b / a, a, b
    past = [(node(s)[0], eps(node(s)[0])) for s in sig[:-1]]
    rho, a, b = node(sig[-1])
    z0 = torch.randn(2, 4, 3, 3, generator=g, dtype=torch.float64)
    x = a * (z0 + c0 * rho + c1 * rho ** 2 / 2 + c2 * rho ** 3 / 3)   # z_s consistent with z(0) = z0
    denoised = (x - b * eps(rho)) / a
    assert torch.allclose(final_step(x, denoised, sig[-1], past, kind, order=3), z0, atol=1e-12)
    assert torch.equal(final_step(x, denoised, sig[-1], past, kind, order=1), denoised)


def test_flow_from_sigma_one_and_edge_cases():
    model, x, _ = lab_problem("flow", batch=3)
    sig = torch.linspace(1.0, 0.05, 13, dtype=torch.float64)
    ref = reference(model, x, 1.0, 0.05, steps=128)
    errs = [rms(fn(model, x, sig, model_kind="flow"), ref) for fn in (sample_lab_plms, sample_lab_pndm)]
    assert max(errs) < 1e-2, errs          # Euler: 2.3e-2 here
    one = sample_lab_pndm(model, x, sig[:2], model_kind="flow")           # a single step
    assert torch.isfinite(one).all() and one.shape == x.shape
    x32 = x.to(torch.float32)
    assert sample_lab_plms(model, x32, sig.to(torch.float32), model_kind="flow").dtype == torch.float32


def test_bad_options_raise():
    model, x, smax = lab_problem("eps")
    with pytest.raises(ValueError, match="order"):
        sample_lab_plms(model, x, log_grid("ve", 2.0, 0.1, 4), order=5)
    with pytest.raises(ValueError, match="model_kind"):
        sample_lab_pndm(model, x, log_grid("ve", 2.0, 0.1, 4), model_kind="vp")
