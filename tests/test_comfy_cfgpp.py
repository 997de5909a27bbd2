"""CFG++ in the real ComfyUI runtime on the class-conditional lab model."""
import math

import pytest
import torch

import comfy_runtime


@pytest.fixture(scope="module")
def pack():
    return comfy_runtime.load()


def lab(parameterization):
    return comfy_runtime.node("SamplerLabModel").build(parameterization, 3.0, 6, 3, 0.15, 0, "float32")[0]


def run(guider, sampler_name, sigmas, latent, seed=5):
    import comfy.sample
    import comfy.samplers
    noise = comfy.sample.prepare_noise(latent, seed)
    return guider.sample(noise, latent, comfy.samplers.sampler_object(sampler_name), sigmas, disable_pbar=True, seed=seed)


def cfg_guider(model, pos, neg, cfg):
    import comfy.samplers
    g = comfy.samplers.CFGGuider(model)
    g.set_conds(pos, neg)
    g.set_cfg(cfg)
    return g


def schedule(model, steps=12):
    import comfy.samplers
    return comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "karras" if steps else "simple", steps)


@pytest.mark.parametrize("parameterization", ["eps", "v", "flow"])
def test_guider_with_euler_equals_core_euler_cfg_pp(pack, parameterization):
    model = lab(parameterization)
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(1)
    latent = torch.zeros(2, 4, 8, 8)
    sigmas = schedule(model)
    ours = run(comfy_runtime.node("SamplerLabCFGPPGuider").guide(model, pos, neg, 1.5)[0], "euler", sigmas, latent)
    core = run(cfg_guider(model, pos, neg, 1.5), "euler_cfg_pp", sigmas, latent)
    plain = run(cfg_guider(model, pos, neg, 1.5), "euler", sigmas, latent)
    assert (ours - core).abs().max().item() < 1e-4
    assert (ours - plain).abs().max().item() > 1e-2   # CFG++ really differs from CFG here


def cfg_pp_names(pack):
    """Generated variants plus the pack's own stochastic CFG++ entries."""
    generated = {s.name for s in pack.bridge.cfg_pp_specs(list(pack.samplers.SAMPLERS.values()))}
    return sorted(generated | {n for n, s in pack.samplers.SAMPLERS.items() if s.cfg_pp})


@pytest.mark.parametrize("parameterization", ["eps", "v", "flow"])
def test_every_cfg_pp_variant_equals_its_base_when_guidance_is_a_no_op(pack, parameterization):
    """cond == uncond (positive is the unconditional model): D = D_u, so CFG++ = the base sampler."""
    import comfy.samplers
    names = cfg_pp_names(pack)
    assert len(names) >= 6
    model = lab(parameterization)
    uncond = comfy_runtime.node("SamplerLabConditioning").encode(-1)[0]
    latent = torch.zeros(1, 4, 8, 8)
    sigmas = schedule(model, 8)
    served = pack.bridge.CORE_STOCHASTIC_CFG_PP
    for name in names:
        assert name in comfy.samplers.SAMPLER_NAMES
        base = name[: -len("_cfg_pp")]
        if base in served:
            continue  # core's noise, equal to core's sampler: tests/test_comfy_cfgpp_seed_parity.py
        a = run(cfg_guider(model, uncond, uncond, 3.0), name, sigmas, latent)
        b = run(cfg_guider(model, uncond, uncond, 3.0), base, sigmas, latent)
        assert torch.equal(a, b), name


def test_every_core_sampler_has_a_cfg_pp_form_or_a_stated_reason(pack):
    """Issue 6: every ComfyUI sampler that lacks a CFG++ form gets one from the pack, except the
    few listed with a reason in bridge.CORE_CFG_PP_EXCLUDED (which must really lack one)."""
    import comfy.samplers
    registered = set(comfy.samplers.SAMPLER_NAMES)
    core = [n for n in pack.bridge.CORE_SAMPLER_NAMES if not n.endswith("_cfg_pp")]
    missing = [n for n in core if n + "_cfg_pp" not in registered and n not in pack.bridge.CORE_CFG_PP_EXCLUDED]
    assert not missing, f"core samplers without a _cfg_pp form: {missing}"
    for name in pack.bridge.CORE_CFG_PP_EXCLUDED:
        assert name in core and name + "_cfg_pp" not in registered, name
    print(f"\n{len(core)} core samplers; CFG++ forms for all but {sorted(pack.bridge.CORE_CFG_PP_EXCLUDED)}")
    pack_missing = [n for n, s in pack.samplers.SAMPLERS.items() if not s.cfg_pp and n + "_cfg_pp" not in registered]
    assert not pack_missing, f"pack samplers without a _cfg_pp form: {pack_missing}"


@pytest.mark.parametrize("parameterization", ["eps", "flow"])
def test_cfg_pp_variants_stay_on_the_data(pack, parameterization):
    """Top of the documented range (cfg 2): every variant is finite and its samples stay on the data:
    distance to the nearest mixture component / (std sqrt(d)) is ~1 for exact samples; we accept
    0.6..1.4 (10 steps blur a little; drifting off the data gives > 1.5). Core's euler_cfg_pp is
    printed beside each for comparison."""
    from lab import default_mixture
    mix = default_mixture((4, 8, 8))
    model = lab(parameterization)
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(0)
    latent = torch.zeros(8, 4, 8, 8)
    sigmas = schedule(model, 10)
    scale = 1.0 - float(sigmas[-1]) if parameterization == "flow" else 1.0
    core = mix.nearest(run(cfg_guider(model, pos, neg, 2.0), "euler_cfg_pp", sigmas, latent) * scale)[1].mean()
    print(f"\n{parameterization}: core euler_cfg_pp normalised distance {float(core):.3f}")
    for name in cfg_pp_names(pack):
        out = run(cfg_guider(model, pos, neg, 2.0), name, sigmas, latent)
        assert torch.isfinite(out).all(), name
        if name in ("lab_tcd_cfg_pp", "lcm_cfg_pp"):
            continue  # TCD / LCM steps are exact only for consistency-distilled models (tests/test_tcd.py)
        dist = float(mix.nearest(out * scale)[1].mean())
        print(f"{parameterization}: {name} {dist:.3f}")
        assert 0.6 < dist < 1.4, (name, dist)


def test_guidance_interval_limits(pack):
    model = lab("eps")
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(2)
    latent = torch.zeros(2, 4, 8, 8)
    sigmas = schedule(model)
    node = comfy_runtime.node("SamplerLabGuidanceInterval")
    everywhere = node.guide(model, pos, neg, 4.0, "cfg", 1e4, 0.0, "constant")[0]
    assert torch.equal(run(everywhere, "euler", sigmas, latent), run(cfg_guider(model, pos, neg, 4.0), "euler", sigmas, latent))
    nowhere = node.guide(model, pos, neg, 4.0, "cfg", 1e-3, 0.0, "constant")[0]
    cond_only = run(cfg_guider(model, pos, neg, 1.0), "euler", sigmas, latent)
    assert (run(nowhere, "euler", sigmas, latent) - cond_only).abs().max().item() < 1e-5
    middle = run(node.guide(model, pos, neg, 4.0, "cfg", 5.0, 0.3, "cosine")[0], "euler", sigmas, latent)
    assert torch.isfinite(middle).all()
    with pytest.raises(ValueError, match="sigma_low"):
        node.guide(model, pos, neg, 4.0, "cfg", 0.1, 1.0, "constant")


def test_interval_scale_schedules():
    import importlib
    mod = importlib.import_module(comfy_runtime.load().__name__ + ".nodes.guidance_nodes")
    assert mod.interval_scale(5.0, 10.0, 5.0, 0.3, "constant") is None
    assert mod.interval_scale(5.0, 1.0, 5.0, 0.3, "constant") == 5.0
    assert mod.interval_scale(5.0, 5.0, 5.0, 0.3, "linear_down") == 5.0
    assert math.isclose(mod.interval_scale(5.0, 0.3, 5.0, 0.3, "linear_down"), 1.0)
    mid = math.exp((math.log(5.0) + math.log(0.3)) / 2)
    assert math.isclose(mod.interval_scale(5.0, mid, 5.0, 0.3, "cosine"), 5.0)
