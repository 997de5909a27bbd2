"""Registration into the real ComfyUI: in place, additive, idempotent, contained; and every
pack sampler / scheduler run through ComfyUI equals the pure function called directly."""
import asyncio
import dataclasses
import logging

import pytest
import torch

import comfy_runtime
import samplers as pure_samplers
import schedulers as pure_schedulers
from lab import LabKModel, default_mixture

CORE_SAMPLERS = """euler euler_cfg_pp euler_ancestral euler_ancestral_cfg_pp heun heunpp2 dpm_2 dpm_2_ancestral
lms dpm_fast dpm_adaptive dpmpp_2s_ancestral dpmpp_2s_ancestral_cfg_pp dpmpp_sde dpmpp_sde_gpu dpmpp_2m
dpmpp_2m_cfg_pp dpmpp_2m_sde dpmpp_2m_sde_gpu dpmpp_2m_sde_heun dpmpp_2m_sde_heun_gpu dpmpp_3m_sde
dpmpp_3m_sde_gpu ddpm lcm ipndm ipndm_v deis res_multistep res_multistep_cfg_pp res_multistep_ancestral
res_multistep_ancestral_cfg_pp gradient_estimation gradient_estimation_cfg_pp er_sde seeds_2 seeds_3
sa_solver sa_solver_pece ddim uni_pc uni_pc_bh2""".split()
# core samplers of 0.3.75 that the oldest supported core (0.3.52) does not have yet
CORE_SAMPLERS_SINCE_0_3_75 = {"dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu"}
CORE_SCHEDULERS = "simple sgm_uniform karras exponential ddim_uniform beta normal linear_quadratic kl_optimal".split()
SAMPLER_NAMES = sorted(pure_samplers.SAMPLERS)
SCHEDULER_NAMES = sorted(pure_schedulers.SCHEDULERS)


@pytest.fixture(scope="module")
def pack():
    return comfy_runtime.load()


def test_pack_has_samplers_and_schedulers():
    assert SAMPLER_NAMES and SCHEDULER_NAMES


def options(spec):
    """Dropdown options in V1 ([list, opts]) or V3 (["COMBO", {"options": list}]) form."""
    return spec[0] if isinstance(spec[0], list) else spec[1]["options"]


def test_every_pack_name_is_in_the_stock_dropdowns(pack):
    import comfy.samplers
    import nodes
    ks = nodes.NODE_CLASS_MAPPINGS["KSampler"].INPUT_TYPES()["required"]
    select = nodes.NODE_CLASS_MAPPINGS["KSamplerSelect"].INPUT_TYPES()["required"]
    for name in SAMPLER_NAMES:
        assert name in options(ks["sampler_name"]) and name in options(select["sampler_name"]), name
        assert comfy.samplers.KSampler.SAMPLERS is comfy.samplers.SAMPLER_NAMES
    for name in SCHEDULER_NAMES:
        assert name in options(ks["scheduler"]), name
    registered_samplers, registered_schedulers = pack.bridge.registered_names()
    assert set(SAMPLER_NAMES) <= set(registered_samplers) and registered_schedulers == SCHEDULER_NAMES
    assert set(registered_samplers) - set(SAMPLER_NAMES) == {s.name for s in pack.bridge.cfg_pp_specs(
        list(pack.samplers.SAMPLERS.values()))}


def test_core_entries_untouched(pack):
    import comfy.k_diffusion.sampling as ks
    import comfy.samplers
    for name in CORE_SAMPLERS:
        fn = getattr(ks, "sample_" + name, None)
        assert fn is None or not hasattr(fn, pack.bridge.MARK), name
        if name not in comfy.samplers.SAMPLER_NAMES:   # an older core: the pack neither adds it nor a CFG++ form
            assert name in CORE_SAMPLERS_SINCE_0_3_75, name
            assert name + "_cfg_pp" not in comfy.samplers.SAMPLER_NAMES, name
    for name in CORE_SCHEDULERS:
        assert not hasattr(comfy.samplers.SCHEDULER_HANDLERS[name].handler, pack.bridge.MARK)
    assert set(CORE_SAMPLERS).isdisjoint(SAMPLER_NAMES) and set(CORE_SCHEDULERS).isdisjoint(SCHEDULER_NAMES)


def test_loading_twice_changes_nothing(pack, caplog):
    import comfy.samplers
    import nodes
    before = (list(comfy.samplers.SAMPLER_NAMES), list(comfy.samplers.SCHEDULER_NAMES),
              dict(comfy.samplers.SCHEDULER_HANDLERS))
    with caplog.at_level(logging.WARNING):
        assert asyncio.run(nodes.load_custom_node(comfy_runtime.PACK_DIR))
    after = (list(comfy.samplers.SAMPLER_NAMES), list(comfy.samplers.SCHEDULER_NAMES),
             dict(comfy.samplers.SCHEDULER_HANDLERS))
    assert before[:2] == after[:2]
    assert set(before[2]) == set(after[2])
    assert not [r for r in caplog.records if "Sampler Lab" in r.getMessage()]


def test_name_taken_by_another_pack_is_skipped_with_one_line(pack, caplog):
    import comfy.k_diffusion.sampling as ks
    import comfy.samplers
    spec_cls = pure_samplers.SamplerSpec
    spec = spec_cls(name="lab_taken_by_other_pack", fn=lambda *a, **k: None, family="t", order=1, model_calls=1)

    def theirs(model, x, sigmas, extra_args=None, callback=None, disable=None):
        return x
    ks.sample_lab_taken_by_other_pack = theirs
    comfy.samplers.SAMPLER_NAMES.append("lab_taken_by_other_pack")
    try:
        with caplog.at_level(logging.WARNING):
            assert pack.bridge.register_sampler(spec) == "skipped"
        assert ks.sample_lab_taken_by_other_pack is theirs
        assert comfy.samplers.SAMPLER_NAMES.count("lab_taken_by_other_pack") == 1
        lines = [r.getMessage() for r in caplog.records if "lab_taken_by_other_pack" in r.getMessage()]
        assert len(lines) == 1 and "skipping ours" in lines[0]
    finally:
        comfy.samplers.SAMPLER_NAMES.remove("lab_taken_by_other_pack")
        del ks.sample_lab_taken_by_other_pack


def test_one_broken_registration_does_not_stop_the_others(pack, caplog):
    import comfy.k_diffusion.sampling as ks
    import comfy.samplers
    spec_cls = pure_samplers.SamplerSpec
    good = [spec_cls(name=f"lab_test_good_{i}", fn=lambda *a, **k: None, family="t", order=1, model_calls=1)
            for i in range(2)]
    broken = spec_cls(name=None, fn=None, family="t", order=1, model_calls=1)
    try:
        with caplog.at_level(logging.ERROR):
            counts = pack.bridge.register_all([good[0], broken, good[1]], [])
        assert counts["samplers"]["added"] == 2 and counts["samplers"]["failed"] == 1
        assert any("could not register" in r.getMessage() for r in caplog.records)
    finally:
        for g in good:
            if g.name in comfy.samplers.SAMPLER_NAMES:
                comfy.samplers.SAMPLER_NAMES.remove(g.name)
            if g.name in comfy.samplers.KSAMPLER_NAMES:
                comfy.samplers.KSAMPLER_NAMES.remove(g.name)
            if hasattr(ks, "sample_" + g.name):
                delattr(ks, "sample_" + g.name)


def _through_comfy(name, parameterization, sigmas, seed):
    import comfy.sample
    import comfy.samplers
    patcher = comfy_runtime.node("SamplerLabModel").build(parameterization, 3.0, 6, 3, 0.15, 0, "float32")[0]
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(1)
    latent = torch.zeros(2, 4, 8, 8)
    noise = comfy.sample.prepare_noise(latent, seed)
    guider = comfy.samplers.CFGGuider(patcher)
    guider.set_conds(pos, neg)
    guider.set_cfg(1.0)
    out = guider.sample(noise, latent, comfy.samplers.sampler_object(name), sigmas, disable_pbar=True, seed=seed)
    return noise, out


@pytest.mark.parametrize("parameterization", ["eps", "flow"])
@pytest.mark.parametrize("name", [n for n in SAMPLER_NAMES if not pure_samplers.SAMPLERS[n].cfg_pp])
def test_sampler_through_comfy_equals_direct_call(pack, name, parameterization):
    """(CFG++ entries need the unconditional prediction: tests/test_comfy_cfgpp.py covers them.)"""
    spec = pure_samplers.SAMPLERS[name]
    if parameterization == "flow" and not spec.flow_safe:
        pytest.skip("spec says not flow-safe")
    if parameterization == "flow":
        sigmas = torch.tensor([0.9, 0.75, 0.55, 0.35, 0.2, 0.1, 0.05, 0.0])
    else:
        sigmas = torch.tensor([10.0, 5.0, 2.5, 1.2, 0.6, 0.3, 0.1, 0.0])
    noise, out = _through_comfy(name, parameterization, sigmas, seed=11)
    x = noise * float(sigmas[0])                 # zero latent, sigma below sigma_max: noise_scaling = sigma * noise
    model = LabKModel(default_mixture((4, 8, 8)), parameterization, class_weights=torch.tensor([[0.0, 1.0, 0.0]] * 2))
    direct = spec.fn(model, x, sigmas, extra_args={"seed": 11}, disable=True,
                     model_kind=model.model_kind, **spec.options)
    scale = float(direct.abs().max())
    assert torch.isfinite(out).all()
    assert (out - direct).abs().max().item() < 2e-3 * max(1.0, scale), name


@pytest.mark.parametrize("parameterization", ["eps", "flow"])
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_scheduler_through_comfy_equals_pure_function(pack, name, parameterization):
    import comfy.samplers
    patcher = comfy_runtime.node("SamplerLabModel").build(parameterization, 3.0, 6, 3, 0.15, 0, "float32")[0]
    ms = patcher.get_model_object("model_sampling")
    got = comfy.samplers.calculate_sigmas(ms, name, 9)
    want = pure_schedulers.SCHEDULERS[name].fn(pack.bridge.model_sigmas(ms), 9)
    assert got.shape == (10,) and torch.equal(got.float(), want.float())
    assert float(got[-1]) == 0.0 and bool((got[:-1] >= got[1:]).all())


def test_names_reach_a_ksampler_list_another_pack_rebound(pack):
    """A pack that rebinds KSampler.SCHEDULERS / SAMPLERS to a new list (instead of extending the
    module's list) must not hide names registered after it from the stock KSampler."""
    import comfy.k_diffusion.sampling as ks
    import comfy.samplers
    import nodes
    old = comfy.samplers.KSampler.SCHEDULERS, comfy.samplers.KSampler.SAMPLERS
    comfy.samplers.KSampler.SCHEDULERS = comfy.samplers.KSampler.SCHEDULERS + ["other_pack_sched"]
    comfy.samplers.KSampler.SAMPLERS = list(comfy.samplers.KSampler.SAMPLERS)
    sched = pure_schedulers.SCHEDULERS[SCHEDULER_NAMES[0]]
    spec = pure_samplers.SamplerSpec(name="lab_test_after_rebind_s", fn=lambda *a, **k: None, family="t",
                                     order=1, model_calls=1)
    try:
        new_sched = dataclasses.replace(sched, name="lab_test_after_rebind")
        assert pack.bridge.register_scheduler(new_sched) == "added"
        assert pack.bridge.register_sampler(spec) == "added"
        required = nodes.NODE_CLASS_MAPPINGS["KSampler"].INPUT_TYPES()["required"]
        assert "lab_test_after_rebind" in options(required["scheduler"])
        assert "lab_test_after_rebind_s" in options(required["sampler_name"])
        assert "lab_test_after_rebind" in comfy.samplers.SCHEDULER_NAMES
        # names registered before the rebinding are in the new list too (it was built from the old one),
        # and a second registration finds its own names present without adding them twice
        assert pack.bridge.register_scheduler(new_sched) == "present"
        assert comfy.samplers.KSampler.SCHEDULERS.count("lab_test_after_rebind") == 1
    finally:
        comfy.samplers.KSampler.SCHEDULERS, comfy.samplers.KSampler.SAMPLERS = old
        for lst in (comfy.samplers.SCHEDULER_NAMES, comfy.samplers.SAMPLER_NAMES, comfy.samplers.KSAMPLER_NAMES):
            for n in ("lab_test_after_rebind", "lab_test_after_rebind_s"):
                while n in lst:
                    lst.remove(n)
        comfy.samplers.SCHEDULER_HANDLERS.pop("lab_test_after_rebind", None)
        if hasattr(ks, "sample_lab_test_after_rebind_s"):
            delattr(ks, "sample_lab_test_after_rebind_s")
