"""CFG++ forms of lab_restart and the adaptive RK samplers (samplers/restart.py, samplers/rk_adaptive.py).

Checked against independent formulations: the CFG++ step of Chung et al. 2024 (arXiv:2406.08070,
Alg. 1) written in its own form, x_next = alpha_next D + beta_next eps_u, eps_u = (x - alpha D_u) / beta,
and the generic CFG++ construction (samplers/cfgpp.cfg_pp_variant) of the same tableau at fixed steps.
Plus: identity when D_u = D (bit for bit), class-conditional guidance (CFG++ at matched strength lands no
farther from the data than CFG), no NaN at cfg 3 on flow, and the nodes' cfg_pp toggle in real ComfyUI.
"""

import pytest
import torch

import samplers
from lab import LabKModel, default_mixture
from lab.means import component_means
from lab.mixture import GaussianMixture
from lab.simple_solvers import karras_sigmas
from numerics import log_grid
from samplers.cfgpp import cfg_pp_variant
from samplers.common import alpha_beta
from samplers.restart import plan, renoise, sample_lab_restart
from samplers.rk_adaptive import sample_rk_adaptive
from samplers.rk_explicit import denoise, rk_step, sample_rk_explicit
from samplers.tableaus import EMBEDDED

ADAPTIVE = {"lab_adaptive_fehlberg12": "fehlberg12", "lab_adaptive_bosh23": "bosh3",
            "lab_adaptive_dopri45": "dopri5"}
SEGMENTS = {"ve": "0.2-1.5:2x3", "flow": "0.15-0.6:2x3"}


class Guided:
    """A class-conditional CFG model D = D_u + cfg (D_c - D_u) that records D_u of its last call
    (what the bridge's post-cfg hook gives a _cfg_pp sampler). same_uncond: D_u := D (a no-op guide).
    Optionally logs (x, sigma) of each call."""

    def __init__(self, mix, param, cfg, class_id=0, same_uncond=False, log=False):
        self.model_kind = "flow" if param == "flow" else "ve"
        self.cfg, self.same, self.log = cfg, same_uncond, [] if log else None
        self.param, self.mix, self.class_id = param, mix, class_id
        self.box, self.calls = {}, 0

    def __call__(self, x, sigma, **extra_args):
        self.calls += 1
        s = sigma.reshape(-1)[0] if torch.is_tensor(sigma) else sigma
        cw = torch.nn.functional.one_hot(torch.full((x.shape[0],), self.class_id), self.mix.num_classes).double()
        c = self.mix.denoiser(self.param, class_weights=cw)(x, s).to(x.dtype)
        u = self.mix.denoiser(self.param)(x, s).to(x.dtype)
        d = u + self.cfg * (c - u)
        self.box["u"] = d if self.same else u
        if self.log is not None:
            self.log.append((x.clone(), float(s), d, self.box["u"]))
        return d

    def uncond(self):
        return self.box["u"]


def keyed_noise(x):
    """A deterministic noise sampler: a seeded standard normal per (sigma, sigma_next)."""
    def noise(s, t):
        g = torch.Generator().manual_seed(int(round(s * 1e6)) * 7919 + int(round(t * 1e6)))
        return torch.randn(x.shape, generator=g, dtype=torch.float64).to(x.dtype)
    return noise


def cfgpp_ddim(x, d, du, s, t, kind):
    """CFG++ step in the paper's form (Chung et al. 2024, Alg. 1): alpha_t D + beta_t eps_u."""
    a, b = alpha_beta(kind, s)
    a_t, b_t = alpha_beta(kind, t)
    return a_t * d + b_t * (x - a * du) / b


def start(kind, batch=2, shape=(4, 6, 6), seed=1, sigma0=None):
    s0 = sigma0 if sigma0 is not None else (1.0 if kind == "flow" else 8.0)
    g = torch.Generator().manual_seed(seed)
    return torch.randn((batch,) + shape, generator=g, dtype=torch.float64) * s0, s0


def mixture(shape=(4, 6, 6)):
    return default_mixture(shape)


# ---- (1) D_u == D: the CFG++ forms are their bases, bit for bit ------------------------------------------------


@pytest.mark.parametrize("kind", ["ve", "flow"])
def test_restart_cfg_pp_with_uncond_equal_to_denoised_is_the_base(kind):
    param = "flow" if kind == "flow" else "eps"
    x, s0 = start(kind)
    sig = log_grid(kind, 0.95 if kind == "flow" else s0, 0.03, 12)
    sig = torch.cat([sig, sig.new_zeros(1)])
    for segments in (None, SEGMENTS[kind], ""):
        m1, m2 = Guided(mixture(), param, 2.0, same_uncond=True), Guided(mixture(), param, 2.0, same_uncond=True)
        base = sample_lab_restart(m1, x, sig, extra_args={"seed": 4}, model_kind=kind, segments=segments)
        plus = samplers.SAMPLERS["lab_restart_cfg_pp"].fn(m2, x, sig, extra_args={"seed": 4}, model_kind=kind,
                                                          segments=segments, uncond=m2.uncond)
        assert torch.equal(base, plus) and m1.calls == m2.calls, segments


@pytest.mark.parametrize("kind", ["ve", "flow"])
@pytest.mark.parametrize("name", sorted(ADAPTIVE))
def test_adaptive_cfg_pp_with_uncond_equal_to_denoised_is_the_base(name, kind):
    param = "flow" if kind == "flow" else "eps"
    x, s0 = start(kind)
    base_spec, plus_spec = samplers.SAMPLERS[name], samplers.SAMPLERS[name + "_cfg_pp"]
    assert plus_spec.cfg_pp and not plus_spec.follows_schedule and plus_spec.fn is base_spec.fn
    assert (plus_spec.order, plus_spec.model_calls, plus_spec.nfe(7)) == (base_spec.order, base_spec.model_calls,
                                                                        base_spec.nfe(7))
    sig = torch.cat([log_grid(kind, s0 if kind == "ve" else 0.98, 0.04, 8), torch.zeros(1, dtype=torch.float64)])
    # default budget; a budget too small for one attempt at the end (DDIM fallback); a split schedule
    for opts, sched in (({}, sig), ({"max_nfe": EMBEDDED[ADAPTIVE[name]].stages - 1}, sig), ({}, sig[:-3])):
        m1, m2 = Guided(mixture(), param, 2.0, same_uncond=True), Guided(mixture(), param, 2.0, same_uncond=True)
        st1, st2 = {}, {}
        base = base_spec.fn(m1, x, sched, model_kind=kind, **{**base_spec.options, **opts, "stats": st1})
        plus = plus_spec.fn(m2, x, sched, model_kind=kind, uncond=m2.uncond,
                            **{**plus_spec.options, **opts, "stats": st2})
        assert torch.equal(base, plus) and st1 == st2, opts


# ---- (2) restart: every Heun step's Euler part is the CFG++ step; the whole run is a hand-written CFG++ Heun --


def cfgpp_heun(model, x, s, t, after, kind):
    """CFG++ Heun written from the paper's step: the slope at each stage is the slope of the CFG++ step the
    pass takes from there (s -> t, then t -> after); the step to 0 is the CFG++ step itself (= D)."""
    d, du = model(x, torch.full((x.shape[0],), s, dtype=x.dtype)), model.uncond()
    x_e = cfgpp_ddim(x, d, du, s, t, kind)
    if t <= 0:
        return x_e
    d2, du2 = model(x_e, torch.full((x.shape[0],), t, dtype=x.dtype)), model.uncond()
    slope2 = (x_e - d2) / t if after <= 0 else (cfgpp_ddim(x_e, d2, du2, t, after, kind) - x_e) / (after - t)
    return x + 0.5 * (x_e - x) + 0.5 * (t - s) * slope2


def hand_restart(model, x, sigmas, segments, kind, noise):
    sig = sigmas.tolist()
    restarts = plan(sigmas, segments, kind)
    for i in range(len(sig) - 1):
        after = sig[i + 2] if i + 2 < len(sig) else 0.0
        x = cfgpp_heun(model, x, sig[i], sig[i + 1], after, kind)
        for grid in restarts.get(i + 1, []):
            x = renoise(x, grid[-1], grid[0], noise(grid[-1], grid[0]), kind)
            path = grid + sig[i + 2:]
            for j in range(len(grid) - 1):
                x = cfgpp_heun(model, x, path[j], path[j + 1], path[j + 2] if j + 2 < len(path) else 0.0, kind)
    return x


@pytest.mark.parametrize("kind", ["ve", "flow"])
def test_restart_cfg_pp_equals_hand_written_cfg_pp_heun(kind):
    param = "flow" if kind == "flow" else "eps"
    x, s0 = start(kind)
    sig = torch.cat([log_grid(kind, 0.95 if kind == "flow" else s0, 0.05, 8), torch.zeros(1, dtype=torch.float64)])
    noise = keyed_noise(x)
    m = Guided(mixture(), param, 2.0, log=True)
    out = sample_lab_restart(m, x, sig, model_kind=kind, segments=SEGMENTS[kind], noise_sampler=noise,
                             uncond=m.uncond)
    assert len(plan(sig, SEGMENTS[kind], kind)) == 1
    # first-order part: the second call of every Heun step is at the CFG++ Euler step of the first
    # (calls alternate stage 1 at (x, s), stage 2 at (x_e, t); the final step to 0 has one call)
    log = m.log
    for (x1, s, d, du), (x2, t, _, _) in zip(log[0:-1:2], log[1::2]):
        assert t < s
        assert (x2 - cfgpp_ddim(x1, d, du, s, t, kind)).abs().max().item() < 1e-12
    ref = hand_restart(Guided(mixture(), param, 2.0), x, sig, SEGMENTS[kind], kind, noise)
    assert (out - ref).abs().max().item() < 1e-10 * max(1.0, float(ref.abs().max()))
    plain = sample_lab_restart(Guided(mixture(), param, 2.0), x, sig, model_kind=kind, segments=SEGMENTS[kind],
                               noise_sampler=noise)
    assert (out - plain).abs().max().item() > 1e-2   # guidance really acts


# ---- (3) adaptive at forced equal log-sigma steps == the generic CFG++ form of the same tableau ------------------


@torch.no_grad()
def fixed_rk(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve", tableau="fehlberg12"):
    """Fixed-step RK of an embedded pair's propagated solution (as rk_explicit does for its tableaus)."""
    tab = EMBEDDED[tableau]
    sig = sigmas.tolist()
    for i in range(len(sig) - 1):
        k1 = denoise(model, x, sig[i], {})
        x = k1 if sig[i + 1] == 0.0 else rk_step(model, x, sig[i], sig[i + 1], tab, tab.used_stages, k1, model_kind, {})[0]
    return x


@pytest.mark.parametrize("end", [0.0, 0.05])
@pytest.mark.parametrize("kind", ["ve", "flow"])
@pytest.mark.parametrize("name", sorted(ADAPTIVE))
def test_adaptive_cfg_pp_equals_fixed_step_cfg_pp_on_its_grid(name, kind, end):
    """Forced steps (tolerance far below reach, budget for n attempts, tiny first guess): n equal
    log-sigma steps. The generic construction on the accepted grid must give the same result."""
    param = "flow" if kind == "flow" else "eps"
    tableau = ADAPTIVE[name]
    tab = EMBEDDED[tableau]
    x, s0 = start(kind)
    n, last = 6, 0.05 if end == 0.0 else end
    sig = torch.tensor([s0, s0 * 0.999] + [last] * (n - 1) + ([0.0] if end == 0.0 else []), dtype=torch.float64)
    budget = (tab.stages - 1) * n + 1
    m = Guided(mixture(), param, 2.0)
    stats = {}
    out = sample_rk_adaptive(m, x, sig, model_kind=kind, tableau=tableau, rtol=1e-12, atol=1e-12, max_nfe=budget,
                             stats=stats, uncond=m.uncond)
    grid = torch.tensor(stats["sigmas"], dtype=torch.float64)
    assert stats["accepted"] == n and stats["fallback_steps"] == 0 and len(grid) == n + 1 + (end == 0.0)
    steps = torch.log(grid[:n]) - torch.log(grid[1:n + 1])
    assert float(steps.max() - steps.min()) < 1e-9     # equal log-sigma steps
    fixed = sample_rk_explicit if tableau in ("bosh3", "dopri5") else fixed_rk
    g = Guided(mixture(), param, 2.0)
    ref = cfg_pp_variant(fixed)(g, x, grid, model_kind=kind, uncond=g.uncond, tableau=tableau)
    assert (out - ref).abs().max().item() < 1e-9 * max(1.0, float(ref.abs().max())), name
    plain = sample_rk_adaptive(Guided(mixture(), param, 2.0), x, sig, model_kind=kind, tableau=tableau,
                               rtol=1e-12, atol=1e-12, max_nfe=budget)
    assert (out - plain).abs().max().item() > 1e-2   # guidance really acts


def test_adaptive_fallback_steps_are_cfg_pp_ddim():
    """A budget below one attempt: DDIM steps log-spaced to the end, each the CFG++ step of the paper."""
    x, s0 = start("ve")
    sig = torch.tensor([s0, 1.0, 0.1], dtype=torch.float64)
    m = Guided(mixture(), "eps", 2.0, log=True)
    stats = {}
    out = sample_rk_adaptive(m, x, sig, model_kind="ve", tableau="dopri5", max_nfe=3, stats=stats, uncond=m.uncond)
    assert stats["fallback_steps"] == 3 and stats["accepted"] == 0
    grid = stats["sigmas"]
    y = x
    for (xi, s, d, du), t in zip(m.log, grid[1:]):
        assert (xi - y).abs().max().item() < 1e-12 * max(1.0, float(y.abs().max()))
        y = cfgpp_ddim(y, d, du, s, t, "ve")
    assert (out - y).abs().max().item() < 1e-12 * max(1.0, float(y.abs().max()))


# ---- (4) class-conditional guidance: CFG++ at matched strength no farther from the data than CFG ---------------


N = 64


def _overlap_mixture():
    means = component_means(6, 3, 4, (2, 2), seed=0) * 0.5
    return GaussianMixture(means, 0.3, classes=torch.arange(6) % 3, num_classes=3)


def _draw(mix, param, scale, plus, fn, options, sigmas, x):
    m = Guided(mix, param, scale)
    kind = m.model_kind
    out = fn(m, x, sigmas, extra_args={"seed": 2}, model_kind=kind, **options, **({"uncond": m.uncond} if plus else {}))
    assert torch.isfinite(out).all()
    idx, dist = mix.nearest(out)
    return float(dist.mean()), float((mix.classes[idx] == 0).double().mean())


@pytest.mark.parametrize("param", ["eps", "flow"])
@pytest.mark.parametrize("name", ["lab_restart", "lab_adaptive_bosh23", "lab_adaptive_dopri45"])
def test_cfg_pp_stays_on_the_data_at_matched_strength(name, param):
    mix = _overlap_mixture()
    spec = samplers.SAMPLERS[name]
    options = dict(spec.options)
    if name == "lab_restart":
        options["segments"] = "0.2-1.5:1x4" if param == "eps" else "0.15-0.6:1x4"
    sigmas = karras_sigmas(16) if param == "eps" else torch.cat([
        torch.linspace(1.0, 0.02, 16, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])
    x = torch.randn(N, 4, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * float(sigmas[0])
    pp = {lam: _draw(mix, param, lam, True, spec.fn, options, sigmas, x) for lam in (0.2, 0.4, 0.6, 0.8, 1.0)}
    for w in (1.5, 2.0, 4.0):
        d_cfg, f_cfg = _draw(mix, param, w, False, spec.fn, options, sigmas, x)
        lam = min([k for k in pp if pp[k][1] >= f_cfg - 0.02] or [max(pp)])
        d_pp, f_pp = pp[lam]
        print(f"\n{name} {param}: CFG w={w}: distance {d_cfg:.3f}, target class {f_cfg:.2f} | "
              f"CFG++ lambda={lam}: distance {d_pp:.3f}, target class {f_pp:.2f}")
        assert d_pp < d_cfg + 0.05
    if param == "flow":   # far above the documented range: still finite
        _draw(mix, param, 3.0, True, spec.fn, options, sigmas, x)


@pytest.mark.parametrize("tableau", ["bosh3", "dopri5"])
def test_adaptive_cfg_pp_step_control_does_not_run_away(tableau):
    """With a generous budget the controller takes about the steps the base takes (an error estimate
    built on D' never reaches the tolerance: hundreds of forced steps, samples off the data)."""
    mix = _overlap_mixture()
    sig = karras_sigmas(16)
    x = torch.randn(N, 4, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * float(sig[0])
    base, plus = {}, {}
    sample_rk_adaptive(Guided(mix, "eps", 1.0), x, sig, tableau=tableau, max_nfe=3000, stats=base)
    m = Guided(mix, "eps", 1.0)
    out = sample_rk_adaptive(m, x, sig, tableau=tableau, max_nfe=3000, stats=plus, uncond=m.uncond)
    print(f"\n{tableau}: base {base['accepted']} steps, CFG++ {plus['accepted']} steps ({plus['forced']} forced)")
    assert plus["accepted"] <= 2 * base["accepted"] + 2 and plus["forced"] == 0
    assert float(mix.nearest(out)[1].mean()) < 1.2


# ---- (5) contract odds and ends: 5-D latents, batch 2, split schedule, one step, bad options ---------------------


@pytest.mark.parametrize("name", ["lab_restart_cfg_pp"] + [n + "_cfg_pp" for n in sorted(ADAPTIVE)])
def test_cfg_pp_entries_on_odd_inputs(name):
    spec = samplers.SAMPLERS[name]
    for kind, shape in (("ve", (4, 3, 4, 4)), ("flow", (4, 5, 5))):
        param = "flow" if kind == "flow" else "eps"
        mix = default_mixture(shape)
        x, s0 = start(kind, shape=shape, sigma0=0.9 if kind == "flow" else 6.0)
        for sig in ([s0, 0.0], [s0, s0 / 3, s0 / 9], [s0, s0 / 2, s0 / 5, s0 / 12, 0.0]):
            m = Guided(mix, param, 1.5)
            out = spec.fn(m, x.float(), torch.tensor(sig), extra_args={"seed": 1}, model_kind=kind, uncond=m.uncond,
                          **spec.options)
            assert out.shape == x.shape and out.dtype == torch.float32 and torch.isfinite(out).all(), sig
            if sig[-1] == 0.0 and len(sig) == 2:
                assert m.calls == 1   # a single step to 0 is D itself
    m = Guided(default_mixture((4, 5, 5)), "eps", 1.5)
    x, _ = start("ve", shape=(4, 5, 5))
    with pytest.raises(ValueError, match="rtol" if "adaptive" in name else "segment"):
        bad = {"rtol": -1.0} if "adaptive" in name else {"segments": "0.1-x:1x2"}
        spec.fn(m, x, torch.tensor([8.0, 1.0, 0.0]), model_kind="ve", uncond=m.uncond, **{**spec.options, **bad})


def test_restart_noise_sampler_option_is_checked():
    x, _ = start("ve")
    with pytest.raises(ValueError, match="noise_sampler"):
        sample_lab_restart(LabKModel(mixture(), "eps"), x, torch.tensor([8.0, 1.0, 0.0]), noise_sampler=3)


# ---- (6) the nodes' cfg_pp toggle in the real ComfyUI runtime -----------------------------------------------------


def _comfy_run(sampler, parameterization, sigmas, cfg, class_id, seed=3):
    import comfy.sample
    import comfy.samplers
    import comfy_runtime
    model = comfy_runtime.node("SamplerLabModel").build(parameterization, 3.0, 6, 3, 0.15, 0, "float32")[0]
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(class_id)
    latent = torch.zeros(2, 4, 8, 8)
    noise = comfy.sample.prepare_noise(latent, seed)
    g = comfy.samplers.CFGGuider(model)
    g.set_conds(pos, neg)
    g.set_cfg(cfg)
    return noise, g.sample(noise, latent, sampler, sigmas, disable_pbar=True, seed=seed)


NODE_CASES = [("SamplerLabRestart", {"segments": "0.2-0.6:1x3"}, "lab_restart_cfg_pp", {"segments": "0.2-0.6:1x3"}),
              ("SamplerLabAdaptiveRK", {"pair": "bosh3", "rtol": 0.01, "atol": 0.01, "max_nfe": 20},
               "lab_adaptive_bosh23_cfg_pp", {"tableau": "bosh3", "rtol": 0.01, "atol": 0.01, "max_nfe": 20})]


@pytest.mark.parametrize("parameterization", ["eps", "flow"])
@pytest.mark.parametrize("node_id, inputs, name, options", NODE_CASES, ids=[c[0] for c in NODE_CASES])
def test_node_cfg_pp_toggle_in_comfyui(node_id, inputs, name, options, parameterization):
    import comfy_runtime
    comfy_runtime.load()
    node = comfy_runtime.node(node_id)
    assert "cfg_pp" in node.INPUT_TYPES()["required"]
    on, off = node.get_sampler(**inputs, cfg_pp=True)[0], node.get_sampler(**inputs, cfg_pp=False)[0]
    sigmas = torch.tensor([0.9, 0.7, 0.5, 0.3, 0.15, 0.0]) if parameterization == "flow" else \
        torch.tensor([10.0, 4.0, 1.5, 0.6, 0.2, 0.0])
    # no-op guidance (cond == uncond): the toggle changes nothing, bit for bit
    assert torch.equal(_comfy_run(on, parameterization, sigmas, 3.0, -1)[1],
                       _comfy_run(off, parameterization, sigmas, 3.0, -1)[1])
    # real guidance: CFG++ differs from CFG and equals the pure CFG++ entry on the same guided model
    noise, got = _comfy_run(on, parameterization, sigmas, 1.5, 2)
    _, plain = _comfy_run(off, parameterization, sigmas, 1.5, 2)
    m = Guided(default_mixture((4, 8, 8)), parameterization, 1.5, class_id=2)
    spec = samplers.SAMPLERS[name]
    direct = spec.fn(m, noise * float(sigmas[0]), sigmas, extra_args={"seed": 3},
                     model_kind=m.model_kind, uncond=m.uncond, **{**spec.options, **options})
    off_by = (got - direct).abs().max().item()
    assert off_by < 2e-3 * max(1.0, float(direct.abs().max()))
    assert (got - plain).abs().max().item() > max(1e-3, 5 * off_by)   # the toggle really switches to CFG++
