"""UniC plug-in corrector (samplers/unic.py): order goes up by one, NFE stays the same."""

import pytest
import torch

from numerics import fit_slope, log_grid, rms, trajectory_problem
from samplers.plms import sample_lab_plms
from samplers.registry import SAMPLERS
from samplers.unic import sample_dpmpp_2m_x, sample_euler_x, unic_coefficients, with_unic, MODES

CASES = {"ve": ("eps", 3.0, 0.05), "flow": ("flow", 0.8, 0.05)}
STEPS = [16, 24, 32, 48]
CORE_NAMES = {"uni_pc", "uni_pc_bh2", "euler", "heun", "dpmpp_2m", "ipndm", "ipndm_v", "deis", "lms"}





def problem(kind):
    return trajectory_problem(*CASES[kind])


def run(fn, kind, steps):
    """(observed order, errors, model calls per run)."""
    model, x, ref = problem(kind)
    _, s0, s1 = CASES[kind]
    errs, calls = [], []
    for n in steps:
        model.calls = 0
        errs.append(rms(fn(model, x, log_grid(kind, s0, s1, n), model_kind=kind), ref))
        calls.append(model.calls)
    return -fit_slope(steps, errs), errs, calls


@torch.no_grad()
def heun(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Plain Heun in sigma (Karras et al. 2022, Alg. 1): a 2-call-per-step base for mode='per_step'."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        s, t = sigmas[i], sigmas[i + 1]
        d = (x - model(x, s * s_in, **extra_args)) / s
        x_e = x + d * (t - s)
        if t == 0:
            x = x_e
            continue
        d2 = (x_e - model(x_e, t * s_in, **extra_args)) / t
        x = x + (d + d2) * ((t - s) / 2)
    return x


@pytest.mark.parametrize("kind", ["ve", "flow"])
@pytest.mark.parametrize("base, base_order, order", [(sample_euler_x, 1, 1), (sample_dpmpp_2m_x, 2, 2)])
def test_stream_correction_raises_order_at_same_nfe(kind, base, base_order, order):
    o_base, e_base, c_base = run(base, kind, STEPS)
    o_corr, e_corr, c_corr = run(with_unic(base, order=order), kind, STEPS)
    assert c_corr == c_base == STEPS
    assert abs(o_corr - (base_order + 1)) < 0.3, (o_base, o_corr)
    assert o_corr > o_base + 0.7
    assert e_corr[-1] < e_base[-1]


def test_plms_with_unic_beats_plms():
    o_base, e_base, c_base = run(sample_lab_plms, "ve", STEPS)
    o_corr, e_corr, c_corr = run(SAMPLERS["lab_plms_unic"].fn, "ve", STEPS)
    assert c_corr == c_base
    assert o_corr > o_base + 0.7 and e_corr[-1] < 0.2 * e_base[-1], (o_base, o_corr)


def test_per_step_mode_heun_to_third_order():
    o_base, _, c_base = run(lambda m, x, s, model_kind=None: heun(m, x, s), "ve", STEPS)
    o_corr, _, c_corr = run(with_unic(heun, order=2, mode="per_step"), "ve", STEPS)
    assert c_corr == c_base == [2 * n for n in STEPS]
    assert abs(o_base - 2) < 0.3 and abs(o_corr - 3) < 0.3, (o_base, o_corr)


def test_stream_mode_rejects_multi_call_base():
    model, x, _ = problem("ve")
    with pytest.raises(ValueError, match="per_step"):
        with_unic(heun, order=2)(model, x, log_grid("ve", 3.0, 0.05, 6))


def test_per_step_equals_stream_for_single_call_base():
    """Euler has no history, so restarting it on every step must not change the result."""
    model, x, _ = problem("flow")
    sig = log_grid("flow", 0.8, 0.05, 10)
    a = with_unic(sample_euler_x, order=2)(model, x, sig, model_kind="flow")
    b = with_unic(sample_euler_x, order=2, mode="per_step")(model, x, sig, model_kind="flow")
    assert rms(a, b) < 1e-13


def test_corrector_weights_match_quadratic_quadrature_for_small_h():
    """As h -> 0, UniC-2 with nodes r = (-1, 1) must integrate the quadratic through
    (lambda_s - h, lambda_s, lambda_t) over [lambda_s, lambda_t]: by hand, the correction is
    h (D1_prev / 12 + 5 D1_t / 12) with D1_prev = (m_prev - m_s) / (-1), D1_t = m_t - m_s."""
    rho, big_b = unic_coefficients([-1.0, 1.0], 1e-4, "bh2")
    assert big_b * rho[0] / -1e-4 == pytest.approx(1.0 / 12.0, abs=1e-3)
    assert big_b * rho[1] / -1e-4 == pytest.approx(5.0 / 12.0, abs=1e-3)


def test_variants_differ_only_through_first_order_corrections():
    model, x, _ = problem("ve")
    sig = log_grid("ve", 3.0, 0.05, 8)
    a = with_unic(sample_euler_x, order=1, variant="bh1")(model, x, sig)
    b = with_unic(sample_euler_x, order=1, variant="bh2")(model, x, sig)
    assert 0 < rms(a, b) < 1e-2
    for variant in ("bh1", "bh2"):
        o, _, _ = run(with_unic(sample_euler_x, order=1, variant=variant), "ve", STEPS)
        assert abs(o - 2) < 0.3


def test_registered_entries():
    for name, order in (("lab_euler_unic", 2), ("lab_dpmpp2m_unic", 3), ("lab_plms_unic", 3)):
        spec = SAMPLERS[name]
        assert spec.model_calls == 1 and spec.order == order and name not in CORE_NAMES


def test_bad_options_and_callback():
    with pytest.raises(ValueError, match="variant"):
        with_unic(sample_euler_x, variant="bh3")
    with pytest.raises(ValueError, match="order"):
        with_unic(sample_euler_x, order=0)
    with pytest.raises(ValueError, match="mode"):
        with_unic(sample_euler_x, mode="sometimes")
    model, x, _ = problem("ve")
    for mode in MODES:
        seen = []
        with_unic(sample_euler_x, mode=mode)(model, x, log_grid("ve", 3.0, 0.05, 5), callback=seen.append)
        assert [d["i"] for d in seen] == [0, 1, 2, 3, 4], mode
        assert all(set(d) >= {"x", "i", "sigma", "sigma_hat", "denoised"} for d in seen)
