"""SA-Solver (samplers/sa_solver.py) against exact answers: ComfyUI's own sample_sa_solver(_pece) (an
independent implementation) on VE and flow, Adams weights that integrate polynomials exactly, observed
orders with tau = 0, split schedules ending at their last sigma, the tau interval, exact call counts,
the mixture distribution with noise on (eps and flow), and the CFG++ form."""
import math

import pytest
import torch

import lab
import samplers
from distribution import CHI2_5DOF_P001, chi_square, distribution_check, flow_sigmas, karras_sigmas, log_sigmas, \
    logit_sigmas
from numerics import fit_slope, reference, rms
from samplers.sa_solver import adams_weights, sample_lab_sa_solver, sample_lab_sa_solver_pece
from samplers.stochastic import exp_moments
from test_er_sde import cfg_pp_gap, core_model, guided_run, keyed_noise, matched_guidance, start

SHAPE = (4, 8, 8)


def _no_noise(sigma, sigma_next):
    raise AssertionError("tau = 0 must not draw noise")


# ---- against ComfyUI's sample_sa_solver ----

CORE_CASES = [
    {},
    {"use_pece": True},
    {"simple_order_2": True, "predictor_order": 2, "corrector_order": 2},
    {"predictor_order": 2, "corrector_order": 3, "use_pece": True},
    {"predictor_order": 1, "corrector_order": 0},
    {"eta": 0.6, "sde_start_percent": 0.1, "sde_end_percent": 0.9, "s_noise": 0.7},
]


@pytest.mark.parametrize("opts", CORE_CASES)
def test_equals_comfyui_sa_solver(opts):
    """Schedules ending at 0 (core's split-schedule result is one sigma early, see the next test); VE from
    sigma_max and from below it, flow starting below 1 (where core does not move the first sigma). The
    tau interval comes from the same ComfyUI model_sampling (the pack reads it from the model it is
    handed, as inside ComfyUI). Same keyed noise for both: equal to float64 round-off."""
    core_opts = {k: v for k, v in opts.items() if k not in ("eta", "sde_start_percent", "sde_end_percent")}
    for par, sigmas in (("eps", karras_sigmas(10)), ("eps", torch.cat([log_sigmas(6.0, 0.1, 7), torch.zeros(1,
                        dtype=torch.float64)])), ("flow", flow_sigmas(11)[1:])):
        k_sampling, wrapped, sampling = core_model(par)
        if "eta" in opts:
            from comfy.k_diffusion import sa_solver as core_sa
            core_opts["tau_func"] = core_sa.get_tau_interval_func(sampling.percent_to_sigma(opts["sde_start_percent"]),
                                                                  sampling.percent_to_sigma(opts["sde_end_percent"]),
                                                                  eta=opts["eta"])
        _, x = start(par, float(sigmas[0]))
        kind = "flow" if par == "flow" else "ve"
        ours = sample_lab_sa_solver(wrapped, x.clone(), sigmas, model_kind=kind, noise_sampler=keyed_noise(x), **opts)
        core = k_sampling.sample_sa_solver(wrapped, x.clone(), sigmas, noise_sampler=keyed_noise(x), disable=True,
                                           **core_opts)
        assert (ours - core).abs().max().item() < 1e-9, (par, opts)


def test_split_schedule_ends_at_its_last_sigma():
    """tau = 0 on 3.0 -> 0.3 (not 0): the result is the PF-ODE solution at 0.3 to the method's accuracy.
    (ComfyUI 0.3.75's sample_sa_solver returns the corrected state at the previous sigma there: printed.)"""
    model, x = start("eps", 3.0, on_data=True)
    sig = log_sigmas(3.0, 0.3, 12)
    ref = reference(model, x, 3.0, 0.3, steps=512)
    one_early = reference(model, x, 3.0, float(sig[-2]), steps=512)
    for fn in (sample_lab_sa_solver, sample_lab_sa_solver_pece):
        out = fn(model, x.clone(), sig, eta=0.0, noise_sampler=_no_noise)
        assert rms(out, ref) < 1e-4 and rms(out, one_early) > 100 * rms(out, ref)
    k_sampling, wrapped, _ = core_model("eps")
    core = k_sampling.sample_sa_solver(wrapped, x.clone(), sig, tau_func=lambda s: 0.0, disable=True)
    print(f"\nsplit schedule: core error {rms(core, ref):.2e} vs pack "
          f"{rms(sample_lab_sa_solver(model, x.clone(), sig, eta=0.0), ref):.2e} (at sigma 0.3)")


def test_flow_from_sigma_one_is_the_limit_of_cores_offset_start():
    """Core moves sigma = 1 to percent_to_sigma(1e-4) = 0.9999 and calls the model there; the pack takes
    the exact limit (the point at lambda = -inf leaves the Lagrange polynomials). Close agreement."""
    k_sampling, wrapped, _ = core_model("flow")
    sigmas = flow_sigmas(12)
    _, x = start("flow", 1.0)
    ours = sample_lab_sa_solver(wrapped, x.clone(), sigmas, model_kind="flow", noise_sampler=keyed_noise(x))
    core = k_sampling.sample_sa_solver(wrapped, x.clone(), sigmas, noise_sampler=keyed_noise(x), disable=True)
    print(f"\nflow from sigma 1: pack vs core rms {rms(ours, core):.2e}")
    assert rms(ours, core) < 1e-3


# ---- exact pieces ----

@pytest.mark.parametrize("tau", [0.0, 0.8])
@pytest.mark.parametrize("h", [0.05, 0.7, 3.0])   # series branch, recurrence branch
def test_adams_weights_integrate_polynomials_exactly(tau, h):
    """sum_j b_j P(lam_j) = int_ls^lt k e^(-k (lt - lam)) P(lam) dlam for every P of degree < #points
    (composite Simpson, 4000 panels), predictor nodes (<= lambda_s) and corrector nodes (with lambda_t)."""
    k = 1.0 + tau * tau
    ls, lt = 0.4, 0.4 + h
    n = 4000
    us = [ls + h * j / n for j in range(n + 1)]
    wts = [(1 if j in (0, n) else (4 if j % 2 else 2)) * h / (3 * n) for j in range(n + 1)]
    for nodes, corrector in (([ls - 2.1 * h, ls - 0.8 * h, ls], False), ([ls - 1.7 * h, ls - h, ls, lt], True)):
        b = adams_weights(nodes, ls, lt, tau, corrector=corrector)
        for p in range(len(nodes)):
            exact = sum(w * k * math.exp(-k * (lt - u)) * (u - 0.3) ** p for u, w in zip(us, wts))
            assert sum(bj * (lj - 0.3) ** p for bj, lj in zip(b, nodes)) == pytest.approx(exact, rel=1e-9, abs=1e-12)
    assert exp_moments(math.inf, 3) == [1.0, 1.0, 1.0]
    assert exp_moments(1.0 - 1e-12, 4) == pytest.approx(exp_moments(1.0, 4), rel=1e-9)   # branches agree


def test_tau_interval_and_noise_draws():
    """Noise is drawn exactly for the steps whose sigma_next lies in the interval; eta = 0 draws none;
    percent_to_sigma and tau_func keywords are honoured."""
    model, x = start("eps", 14.614642)
    sig = karras_sigmas(12)
    seen = []

    def counting(s, s_n):
        seen.append(s_n)
        return torch.zeros_like(x)
    sample_lab_sa_solver(model, x.clone(), sig, noise_sampler=counting, percent_to_sigma=lambda p: 10.0 * (1 - p))
    inside = [float(s) for s in sig[1:] if 2.0 <= float(s) <= 8.0]
    assert seen == pytest.approx(inside) and 0 < len(inside) < 12
    seen.clear()
    sample_lab_sa_solver(model, x.clone(), sig, noise_sampler=counting, tau_func=lambda s: 0.5 if s < 1.0 else 0.0)
    assert seen == pytest.approx([float(s) for s in sig[1:] if 0.0 < float(s) < 1.0])
    sample_lab_sa_solver(model, x.clone(), sig, eta=0.0, noise_sampler=_no_noise)


# ---- observed order with tau = 0 ----

ORDER_CASES = [
    # full predictor-corrector: order 3 (the order-1 first step is corrected by an order-2 corrector: h^3)
    (sample_lab_sa_solver, {}, 3, [64, 128, 256]),
    (sample_lab_sa_solver_pece, {}, 3, [128, 256, 512]),
    # predictor alone: its Euler first step (h^2 local) caps it at order 2
    (sample_lab_sa_solver, {"corrector_order": 0}, 2, [64, 128, 256]),
]


@pytest.mark.parametrize("fn,opts,order,steps", ORDER_CASES)
@pytest.mark.parametrize("par", ["eps", "flow"])
def test_observed_order_with_tau_zero(fn, opts, order, steps, par):
    """From mid-trajectory (VE 3.0, flow 0.75, on the data) to 0.05, uniform in lambda."""
    s0 = 0.75 if par == "flow" else 3.0
    sched = (lambda n: logit_sigmas(s0, 0.05, n)) if par == "flow" else (lambda n: log_sigmas(s0, 0.05, n))
    model, x = start(par, s0, on_data=True)
    ref = reference(model, x, s0, 0.05, steps=1024)
    errs = [rms(fn(model, x.clone(), sched(n), model_kind=model.model_kind, eta=0.0, noise_sampler=_no_noise, **opts),
                ref) for n in steps]
    print(f"\n{par} {fn.__name__} {opts}: errors {['%.2e' % e for e in errs]} order {-fit_slope(steps, errs):.2f}")
    assert abs(-fit_slope(steps, errs) - order) < 0.3, errs


# ---- distribution with noise on (default tau interval) ----

@pytest.mark.parametrize("name", ["lab_sa_solver", "lab_sa_solver_pece"])
@pytest.mark.parametrize("par", ["eps", "flow"])
def test_samples_are_distributed_right(name, par):
    mix = lab.default_mixture(shape=SHAPE)
    model = lab.LabKModel(mix, par)
    sig = karras_sigmas(30) if par == "eps" else flow_sigmas(30)
    noise = torch.randn((256,) + SHAPE, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    out = samplers.SAMPLERS[name].fn(model, noise * sig[0], sig, extra_args={"seed": 5}, model_kind=model.model_kind)
    dist, fractions = distribution_check(mix, out)
    chi2 = chi_square(mix, fractions, 256)
    print(f"\n{name} {par}: distance {dist:.3f}, chi2 {chi2:.1f}")
    assert abs(dist - 1.0) < 0.1 and chi2 < CHI2_5DOF_P001


# ---- calls ----

def test_pece_calls_on_full_and_split_schedules():
    for name in ("lab_sa_solver", "lab_sa_solver_pece", "lab_sa_solver_pece_cfg_pp"):
        spec = samplers.SAMPLERS[name]
        for steps in (1, 2, 5):
            for end in (0.0, 0.2):
                model, x = start("eps", 6.0)
                head = log_sigmas(6.0, 0.3, steps - 1) if steps > 1 else torch.tensor([6.0], dtype=torch.float64)
                sig = torch.cat([head, torch.tensor([end], dtype=torch.float64)])
                spec.fn(model, x, sig, extra_args={"seed": 0}, uncond=(lambda: 0.0) if spec.cfg_pp else None)
                assert model.calls == spec.nfe(steps) == (2 * steps - 1 if "pece" in name else steps), (name, steps)


# ---- CFG++ ----

@pytest.mark.parametrize("name", ["lab_sa_solver", "lab_sa_solver_pece"])
@pytest.mark.parametrize("par", ["eps", "flow"])
def test_cfg_pp_with_uncond_equal_to_guided_is_the_base_bit_for_bit(name, par):
    model, x = start(par, 1.0 if par == "flow" else 14.614642)
    sig = karras_sigmas(9) if par == "eps" else flow_sigmas(9)
    last = {}

    def recording(xx, s, **kw):
        last["d"] = model(xx, s, **kw)
        return last["d"]
    plus = samplers.SAMPLERS[name + "_cfg_pp"].fn(recording, x.clone(), sig, extra_args={"seed": 4},
                                                  model_kind=model.model_kind, uncond=lambda: last["d"])
    plain = samplers.SAMPLERS[name].fn(model, x.clone(), sig, extra_args={"seed": 4}, model_kind=model.model_kind)
    assert torch.equal(plus, plain)


@pytest.mark.parametrize("fn", [sample_lab_sa_solver, sample_lab_sa_solver_pece])
@pytest.mark.parametrize("kind", ["ve", "flow"])
def test_cfg_pp_applies_the_state_terms_to_the_cfg_pp_state(fn, kind):
    """Predictor and corrector both carry x_s with c_x = (beta_t / beta_s) (tau = 0), applied to
    x_s + alpha_s (D_s - D_u,s): the corrected state gets c_x times the previous shift, and so does
    the prediction (a split schedule returns the last prediction)."""
    sig = logit_sigmas(0.9, 0.1, 5) if kind == "flow" else log_sigmas(9.0, 0.2, 5)
    gap, predicted = cfg_pp_gap(fn, kind, sig, lambda s, sn: sn / s, eta=0.0)
    assert gap.abs().max().item() > 1e-3
    assert (gap - predicted).abs().max().item() < 1e-12


@pytest.mark.parametrize("param", ["eps", "flow"])
def test_cfg_pp_stays_on_the_data_at_matched_guidance(param):
    """At matched strength (same class-0 fraction) CFG++ samples are no further from the data than CFG's
    (within 0.05); per unit of scale CFG++ guides at least as hard. Both printed (-s). Flow at cfg 3: finite."""
    for name in ("lab_sa_solver_cfg_pp", "lab_sa_solver_pece_cfg_pp"):
        fn = samplers.SAMPLERS[name].fn
        for w, (d_cfg, f_cfg), lam, (d_pp, f_pp) in matched_guidance(fn, param):
            print(f"\n{name} {param}: CFG w={w}: distance {d_cfg:.3f}, class {f_cfg:.2f} | "
                  f"CFG++ {lam}: distance {d_pp:.3f}, class {f_pp:.2f}")
            assert d_pp < d_cfg + 0.05
            assert guided_run(fn, param, w / 2, True)[1] >= guided_run(fn, param, w / 2, False)[1]
        d, _, finite = guided_run(fn, "flow", 3.0, True)
        assert finite and d < 2.0


# ---- contract ----

def test_video_batch_split_single_step_and_fp16():
    mix = lab.default_mixture(shape=(4, 3, 4, 4))
    for name in ("lab_sa_solver", "lab_sa_solver_pece", "lab_sa_solver_cfg_pp", "lab_sa_solver_pece_cfg_pp"):
        spec = samplers.SAMPLERS[name]
        for par, sig in (("eps", torch.tensor([6.0, 2.0, 1.0, 0.7])), ("flow", torch.tensor([1.0, 0.6, 0.45, 0.3]))):
            model = lab.LabKModel(mix, par)
            x = torch.randn(2, 4, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * sig[0]
            uncond = (lambda: model.denoise(x, 0.5)) if spec.cfg_pp else None
            out = spec.fn(model, x, sig, extra_args={"seed": 0}, model_kind=model.model_kind, uncond=uncond)
            assert out.shape == x.shape and torch.isfinite(out).all()
            assert float(out.std()) > 0.5 * float(sig[-1])      # split schedule: still noisy at the last sigma
            one = spec.fn(model, x.half(), sig[:2], extra_args={"seed": 0}, model_kind=model.model_kind)
            assert one.dtype == torch.float16 and torch.isfinite(one).all()
    model, x = start("eps", 3.0)
    one = sample_lab_sa_solver(model, x, torch.tensor([3.0, 0.0]))
    assert torch.equal(one, model.denoise(x, 3.0))          # one step to 0 returns D
    assert torch.equal(sample_lab_sa_solver(model, x, torch.tensor([3.0])), x)


def test_bad_options_raise_value_errors_naming_the_option():
    model, x = start("eps", 5.0)
    sig = torch.tensor([5.0, 1.0, 0.0])
    for opts, word in (({"predictor_order": 0}, "predictor_order"), ({"corrector_order": 7}, "corrector_order"),
                       ({"predictor_order": 2.5}, "predictor_order"), ({"eta": -1}, "eta"),
                       ({"sde_start_percent": 1.5}, "sde_start_percent"), ({"sde_end_percent": "x"}, "sde_end_percent"),
                       ({"s_noise": -0.1}, "s_noise"), ({"tau_func": 1.0}, "tau_func"),
                       ({"percent_to_sigma": 3}, "percent_to_sigma")):
        with pytest.raises(ValueError, match=word):
            sample_lab_sa_solver(model, x, sig, **opts)
    with pytest.raises(ValueError, match="must not increase"):
        sample_lab_sa_solver(model, x, torch.tensor([1.0, 5.0, 0.0]))
