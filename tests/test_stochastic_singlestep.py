"""Singlestep ancestral / SDE samplers with CFG++ forms (samplers/stochastic_singlestep.py), checked
against exact answers: VE runs equal ComfyUI's own dpm_2_ancestral, dpmpp_sde, seeds_2 and seeds_3
with the same noise, eta = 0 orders match theory (eps and flow), eta = 1 samples of the lab mixture
are distributed right (eps and flow), the _cfg_pp entries equal their bases when D_u == D and guide
no farther from the data than CFG, and the contract cases (5-D, split schedules, one step, errors)."""
import math
from types import SimpleNamespace

import pytest
import torch

import comfy_runtime
import lab
import samplers
from distribution import CHI2_5DOF_P001, chi_square, distribution_check, flow_sigmas, karras_sigmas, log_sigmas, \
    logit_sigmas
from lab.means import component_means
from lab.mixture import GaussianMixture
from numerics import fit_slope, lab_problem, reference, rms
from samplers.stochastic_singlestep import sample_lab_ancestral_dpm2, sample_lab_sde_dpmpp_2s, sample_lab_seeds_3

SHAPE = (4, 8, 8)
BASES = ["lab_ancestral_dpm2", "lab_sde_dpmpp_2s", "lab_seeds_2", "lab_seeds_3"]


def _start(par, sigma0, batch=2, seed=0, shape=SHAPE):
    """x at sigma0: VE noise * sigma0; flow (1 - s) x0 + s n from an exact data sample."""
    model, noise, smax = lab_problem(par, shape, batch, seed)
    if par == "flow":
        x0, _ = model.mixture.sample(batch, generator=torch.Generator().manual_seed(seed + 1))
        return model, (1 - sigma0) * x0 + sigma0 * (noise / smax)
    return model, noise * (sigma0 / smax)


def keyed_noise(like, seed=0):
    """A deterministic noise 'sampler': a smooth function of (sigma, sigma_next), so two
    implementations that ask for the same interval get the same tensor (float rounding of the
    sigmas changes it only by that rounding)."""
    g = torch.Generator().manual_seed(seed)
    w1, w2, p = (torch.randn(like.shape, generator=g, dtype=like.dtype) for _ in range(3))
    return lambda a, b: math.sqrt(2.0) * torch.sin(w1 * float(a) + 3.0 * w2 * float(b) + p)


# ---- (a) VE equals ComfyUI's own implementation of the same method, same noise ----

class CoreView:
    """The lab model seen by core k-diffusion samplers: they look up model_sampling through
    inner_model only to test isinstance(..., CONST) (flow) -- a VE model is anything else."""

    def __init__(self, model):
        import comfy.model_sampling
        self.model = model
        ms = comfy.model_sampling.CONST() if model.model_kind == "flow" else SimpleNamespace(name="not CONST")
        self.inner_model = SimpleNamespace(inner_model=SimpleNamespace(model_sampling=ms),
                                           model_patcher=SimpleNamespace(get_model_object=lambda name: ms))

    def __call__(self, x, sigma, **extra_args):
        return self.model(x, sigma, **extra_args)


CORE_CASES = [
    ("dpm_2_ancestral", "lab_ancestral_dpm2", {}),
    ("dpmpp_sde", "lab_sde_dpmpp_2s", {}),
    ("dpmpp_sde", "lab_sde_dpmpp_2s", {"r": 0.3}),
    ("seeds_2", "lab_seeds_2", {}),
    ("seeds_2", "lab_seeds_2", {"r": 0.7}),
    ("seeds_3", "lab_seeds_3", {}),
    ("seeds_3", "lab_seeds_3", {"r_1": 0.25, "r_2": 0.5}),
]


CORE_RUNS = [(par, eta) + case for par in ("eps", "flow") for eta in (1.0, 0.6, 0.0) for case in CORE_CASES
             if not (case[0] == "dpm_2_ancestral" and par == "flow" and eta > 0)]


@pytest.mark.parametrize("par,eta,core,name,opts", CORE_RUNS)
def test_equals_core_with_the_same_noise(par, eta, core, name, opts):
    """VE: always. Flow: core's dpmpp_sde / seeds step in lambda with alpha = 1 - sigma, which is the
    pack's flow form, so they agree too (schedules starting below 1: at sigma = 1 core moves the
    first sigma to 1 - 1e-4). Core's dpm_2_ancestral on flow models maps eta to sigma_down its own
    way (dpm_2_ancestral_RF), so there only the deterministic part (eta = 0) is the same method."""
    comfy_runtime.load()
    import comfy.k_diffusion.sampling as ks
    spec = samplers.SAMPLERS[name]
    options = {**spec.options, **opts, "eta": eta}
    scheds = (karras_sigmas(6), torch.tensor([9.0, 3.0, 1.2, 0.4], dtype=torch.float64)) if par == "eps" else \
        (torch.cat([logit_sigmas(0.9, 0.08, 5), torch.zeros(1, dtype=torch.float64)]),
         torch.tensor([0.85, 0.6, 0.4, 0.2], dtype=torch.float64))
    for sig in scheds:  # one ending at 0, one split (neither at sigma_max nor at 0)
        model, x = _start(par, float(sig[0]))
        core_opts = {k: v for k, v in options.items() if k != "noise_form"}
        want = getattr(ks, "sample_" + core)(CoreView(model), x.clone(), sig, disable=True,
                                             noise_sampler=keyed_noise(x), **core_opts)
        got = spec.fn(model, x.clone(), sig, model_kind=model.model_kind, noise_sampler=keyed_noise(x), **options)
        assert rms(got, want) < 1e-9 * max(1.0, float(want.abs().max())), (core, rms(got, want))
        if eta > 0:  # the noise matters (the comparison can fail): another noise, another result
            other = spec.fn(model, x.clone(), sig, model_kind=model.model_kind, noise_sampler=keyed_noise(x, 1),
                            **options)
            assert rms(other, want) > 1e-3


# ---- (b) eta = 0: observed order ----

def _order_schedule(par):
    return (lambda n: log_sigmas(14.614642, 0.05, n)) if par == "eps" else (lambda n: logit_sigmas(0.95, 0.05, n))


_REFS = {}


def _order_problem(par):
    if par not in _REFS:
        s0 = float(_order_schedule(par)(1)[0])
        model, x = _start(par, s0)
        _REFS[par] = model, x, reference(model, x, s0, 0.05, steps=512)
    return _REFS[par]


ORDER_CASES = [("lab_ancestral_dpm2", 2, [8, 16, 32]), ("lab_sde_dpmpp_2s", 2, [8, 16, 32]),
               ("lab_seeds_2", 2, [8, 16, 32]), ("lab_seeds_3", 3, [16, 32, 64])]


@pytest.mark.parametrize("name,order,steps", ORDER_CASES)
@pytest.mark.parametrize("par", ["eps", "flow"])
def test_observed_order_with_eta0(name, order, steps, par):
    """VE: log-uniform sigmas sigma_max -> 0.05; flow: logit-uniform 0.95 -> 0.05 (noise never drawn)."""
    spec = samplers.SAMPLERS[name]
    model, x, ref = _order_problem(par)

    def no_noise(a, b):
        raise AssertionError("eta = 0 must not draw noise")
    errs = [rms(spec.fn(model, x.clone(), _order_schedule(par)(n), model_kind=model.model_kind, noise_sampler=no_noise,
                        **{**spec.options, "eta": 0.0}), ref) for n in steps]
    slope = -fit_slope(steps, errs)
    print(f"\n{name} {par}: observed order {slope:.2f} (theory {order}), errors {errs}")
    assert abs(slope - order) < 0.3, errs


# ---- (c) eta = 1: samples distributed right, eps and flow (flow starting at sigma = 1) ----

def _mixture_run(par, fn, steps, batch, seed=5, **opts):
    mix = lab.default_mixture(shape=SHAPE)
    model = lab.LabKModel(mix, par)
    sig = karras_sigmas(steps) if par == "eps" else flow_sigmas(steps)
    noise = torch.randn((batch,) + SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = fn(model, noise * sig[0], sig, extra_args={"seed": seed}, model_kind=model.model_kind, **opts)
    dist, fr = distribution_check(mix, out)
    return dist, chi_square(mix, fr, batch)


@pytest.mark.parametrize("name,steps", [("lab_ancestral_dpm2", 60), ("lab_sde_dpmpp_2s", 30), ("lab_seeds_2", 30),
                                        ("lab_seeds_3", 20)])
@pytest.mark.parametrize("par", ["eps", "flow"])
def test_eta1_samples_are_distributed_right(name, steps, par):
    spec = samplers.SAMPLERS[name]
    dist, chi2 = _mixture_run(par, spec.fn, steps, 128, **spec.options)
    print(f"\n{name} {par}: normalised distance {dist:.3f} (exact 1), chi2 {chi2:.1f}")
    assert abs(dist - 1.0) < 0.1
    assert chi2 < CHI2_5DOF_P001


def test_sde_noise_form_keeps_the_exact_law_where_ancestral_differs():
    """At eta = 0.5 the two noise rules are different processes; both must land on the data."""
    for form in ("ancestral", "sde"):
        dist, chi2 = _mixture_run("flow", sample_lab_sde_dpmpp_2s, 30, 128, eta=0.5, noise_form=form)
        assert abs(dist - 1.0) < 0.1 and chi2 < CHI2_5DOF_P001, (form, dist, chi2)


# ---- (d) CFG++ ----

class Guided:
    """CFG on a class-conditional mixture: D = D_u + scale (D_c - D_u); uncond() = last D_u."""

    def __init__(self, mix, par, scale, n, target=0):
        cw = torch.nn.functional.one_hot(torch.full((n,), target, dtype=torch.long), mix.num_classes).double()
        self.dc, self.du, self.scale = mix.denoiser(par, class_weights=cw), mix.denoiser(par), scale
        self.last_u = None

    def __call__(self, x, sigma, **extra_args):
        s = sigma.reshape(-1)[0]
        c, u = self.dc(x, s), self.du(x, s)
        self.last_u = u
        return u + self.scale * (c - u)

    def uncond(self):
        return self.last_u


@pytest.mark.parametrize("name", BASES)
@pytest.mark.parametrize("par", ["eps", "flow"])
def test_cfg_pp_with_uncond_equal_to_output_is_the_base_bit_for_bit(name, par):
    base, pp = samplers.SAMPLERS[name], samplers.SAMPLERS[name + "_cfg_pp"]
    assert pp.cfg_pp and not base.cfg_pp and pp.fn is base.fn and pp.options == base.options
    sig = karras_sigmas(6) if par == "eps" else flow_sigmas(6)
    model, x = _start(par, float(sig[0]))
    box = {}

    def recorded(xx, s, **kw):
        box["d"] = model(xx, s, **kw)
        return box["d"]
    a = base.fn(recorded, x.clone(), sig, extra_args={"seed": 4}, model_kind=model.model_kind, **base.options)
    b = pp.fn(recorded, x.clone(), sig, extra_args={"seed": 4}, model_kind=model.model_kind, uncond=lambda: box["d"],
              **pp.options)
    assert torch.equal(a, b)


def _guided_run(par, name, scale, plus_plus, n=64, steps=16):
    means = component_means(6, 3, 4, (2, 2), seed=0) * 0.5
    mix = GaussianMixture(means, 0.3, classes=torch.arange(6) % 3, num_classes=3)
    sig = karras_sigmas(steps) if par == "eps" else flow_sigmas(steps)
    x = torch.randn(n, 4, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * float(sig[0])
    model = Guided(mix, par, scale, n)
    spec = samplers.SAMPLERS[name + ("_cfg_pp" if plus_plus else "")]
    out = spec.fn(model, x, sig, extra_args={"seed": 7}, model_kind=model_kind(par),
                  uncond=model.uncond if plus_plus else None, **spec.options)
    idx, dist = mix.nearest(out)
    return out, float(dist.mean()), float((mix.classes[idx] == 0).double().mean())


def model_kind(par):
    return "flow" if par == "flow" else "ve"


@pytest.mark.parametrize("name", BASES)
@pytest.mark.parametrize("par", ["eps", "flow"])
def test_cfg_pp_stays_on_the_data_at_matched_strength(name, par):
    """Matched strength as in tests/test_cfgpp_manifold.py: for CFG at scale w, the smallest CFG++
    scale (grid) whose target-class fraction reaches CFG's (within 0.02). There CFG++ lands no
    farther from the data than CFG (within 0.02); at the same scale it guides at least as strongly."""
    pp = {lam: _guided_run(par, name, lam, True)[1:] for lam in (0.4, 0.6, 0.8, 1.0, 1.5, 2.0)}
    for w in (1.5, 2.0):
        _, d_cfg, f_cfg = _guided_run(par, name, w, False)
        lam = min([k for k in pp if pp[k][1] >= f_cfg - 0.02] or [max(pp)])
        d_pp, f_pp = pp[lam]
        print(f"\n{name} {par}: CFG w={w}: distance {d_cfg:.3f}, target class {f_cfg:.2f} | "
              f"CFG++ scale {lam}: distance {d_pp:.3f}, target class {f_pp:.2f} | "
              f"CFG++ at {w}: distance {pp[w][0]:.3f}, target class {pp[w][1]:.2f}")
        assert d_pp <= d_cfg + 0.02
        assert pp[w][1] >= f_cfg


@pytest.mark.parametrize("name", BASES)
def test_cfg_pp_flow_strong_guidance_is_finite(name):
    out, dist, _ = _guided_run("flow", name, 3.0, True)
    assert torch.isfinite(out).all() and math.isfinite(dist)


# ---- (e) contract ----

@pytest.mark.parametrize("name", BASES + [n + "_cfg_pp" for n in BASES])
def test_calls_callbacks_seeds_and_nfe(name):
    spec = samplers.SAMPLERS[name]
    assert spec.stochastic and spec.flow_safe and spec.name.startswith("lab_")
    for par in ("eps", "flow"):
        s0 = 0.9 if par == "flow" else 5.0
        model, x = _start(par, s0, batch=2)
        sig = torch.tensor([s0, 0.5, 0.2, 0.0], dtype=torch.float32)
        kw = {"uncond": (lambda: model.last) if spec.cfg_pp else None}
        inner = model

        def counted(xx, s, **extra):
            inner.last = inner(xx, s, **extra)
            return inner.last
        seen = []
        model.calls = 0
        a = spec.fn(counted, x.float(), sig, extra_args={"seed": 1}, callback=seen.append,
                    model_kind=model.model_kind, **spec.options, **kw)
        assert model.calls == spec.nfe(3) == spec.model_calls * 2 + 1
        assert [c["i"] for c in seen] == [0, 1, 2] and set(seen[0]) == {"x", "i", "sigma", "sigma_hat", "denoised"}
        assert a.dtype == torch.float32 and a.shape == x.shape and torch.isfinite(a).all()
        b = spec.fn(counted, x.float(), sig, extra_args={"seed": 1}, model_kind=model.model_kind, **spec.options, **kw)
        c = spec.fn(counted, x.float(), sig, extra_args={"seed": 2}, model_kind=model.model_kind, **spec.options, **kw)
        assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("name", BASES)
@pytest.mark.parametrize("par", ["eps", "flow"])
def test_four_d_split_schedule_lands_on_the_exact_solution(name, par):
    """4-D, batch 2, a schedule that neither starts at sigma_max nor ends at 0: with eta = 0 the run
    ends where the PF-ODE does (to the method's accuracy); a second leg from there to 0 is finite."""
    spec = samplers.SAMPLERS[name]
    sig = torch.tensor([4.0, 2.0, 1.0, 0.5], dtype=torch.float64) if par == "eps" else \
        torch.tensor([0.8, 0.6, 0.45, 0.3], dtype=torch.float64)
    model, x = _start(par, float(sig[0]))
    out = spec.fn(model, x.clone(), sig, model_kind=model.model_kind, **{**spec.options, "eta": 0.0})
    ref = reference(model, x, float(sig[0]), float(sig[-1]), steps=256)
    assert rms(out, ref) < 0.05 * rms(x, ref)
    tail = spec.fn(model, out, torch.cat([sig[-1:], sig.new_zeros(1)]), extra_args={"seed": 1},
                   model_kind=model.model_kind, **spec.options)
    assert torch.isfinite(tail).all()


def test_bad_options_raise_value_errors_naming_the_option():
    model, x = _start("eps", 5.0)
    sig = torch.tensor([5.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="eta"):
        sample_lab_ancestral_dpm2(model, x, sig, eta=-0.5)
    with pytest.raises(ValueError, match="s_noise"):
        sample_lab_seeds_3(model, x, sig, s_noise="loud")
    with pytest.raises(ValueError, match="r must"):
        sample_lab_sde_dpmpp_2s(model, x, sig, r=0.0)
    with pytest.raises(ValueError, match="noise_form"):
        sample_lab_sde_dpmpp_2s(model, x, sig, noise_form="brownian")
    with pytest.raises(ValueError, match="r_1"):
        sample_lab_seeds_3(model, x, sig, r_1=0.7, r_2=0.5)
    with pytest.raises(ValueError, match="r_2"):
        sample_lab_seeds_3(model, x, sig, r_2=1.5)
    with pytest.raises(ValueError, match="must not increase"):
        sample_lab_seeds_3(model, x, torch.tensor([1.0, 5.0, 0.0]))
    with pytest.raises(ValueError, match="model_kind"):
        sample_lab_ancestral_dpm2(model, x, sig, model_kind="vp")
    with pytest.raises(ValueError, match="flow sigmas"):
        sample_lab_sde_dpmpp_2s(model, x, sig, model_kind="flow")
