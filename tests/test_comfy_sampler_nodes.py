"""SAMPLER nodes in the real ComfyUI runtime: each runs on the lab model and equals the pure
sampler with the same options; bad options give clear errors."""
import pytest
import torch

import comfy_runtime
import samplers as pure
from lab import LabKModel, default_mixture

CASES = [
    ("SamplerLabRungeKutta", {"tableau": "bosh3", "cfg_pp": False}, "lab_rk_bosh3", {"tableau": "bosh3"}),
    ("SamplerLabImplicitRK", {"tableau": "radau_iia2", "iterations": 1, "cfg_pp": False}, "lab_radau_iia2",
     {"tableau": "radau_iia2", "iterations": 1}),
    ("SamplerLabAdaptiveRK", {"pair": "bosh3", "rtol": 0.01, "atol": 0.01, "max_nfe": 20}, "lab_adaptive_bosh23",
     {"tableau": "bosh3", "rtol": 0.01, "atol": 0.01, "max_nfe": 20}),
    ("SamplerLabRestart", {"segments": "0.2-0.6:1x3"}, "lab_restart", {"segments": "0.2-0.6:1x3"}),
    ("SamplerLabTCD", {"gamma": 0.5}, "lab_tcd", {"gamma": 0.5}),
    ("SamplerLabPLMS", {"warmup": "pndm", "order": 3, "cfg_pp": False}, "lab_pndm", {"order": 3}),
    ("SamplerLabStochastic", {"method": "sde_dpmpp_2m", "eta": 0.5, "s_noise": 1.0}, "lab_sde_dpmpp_2m",
     {"eta": 0.5, "s_noise": 1.0, "solver_type": "midpoint"}),
]


def run_sampler(sampler, parameterization, sigmas, seed=3):
    import comfy.sample
    import comfy.samplers
    model = comfy_runtime.node("SamplerLabModel").build(parameterization, 3.0, 6, 3, 0.15, 0, "float32")[0]
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(2)
    latent = torch.zeros(2, 4, 8, 8)
    noise = comfy.sample.prepare_noise(latent, seed)
    g = comfy.samplers.CFGGuider(model)
    g.set_conds(pos, neg)
    g.set_cfg(1.0)
    return noise, g.sample(noise, latent, sampler, sigmas, disable_pbar=True, seed=seed)


@pytest.mark.parametrize("parameterization", ["eps", "flow"])
@pytest.mark.parametrize("node_id, inputs, name, options", CASES, ids=[c[0] for c in CASES])
def test_sampler_node_equals_pure_call(node_id, inputs, name, options, parameterization):
    comfy_runtime.load()
    sampler = comfy_runtime.node(node_id).get_sampler(**inputs)[0]
    sigmas = torch.tensor([0.9, 0.7, 0.5, 0.3, 0.15, 0.0]) if parameterization == "flow" else \
        torch.tensor([10.0, 4.0, 1.5, 0.6, 0.2, 0.0])
    noise, out = run_sampler(sampler, parameterization, sigmas)
    model = LabKModel(default_mixture((4, 8, 8)), parameterization, class_weights=torch.tensor([[0.0, 0.0, 1.0]] * 2))
    spec = pure.SAMPLERS[name]
    direct = spec.fn(model, noise * float(sigmas[0]), sigmas, extra_args={"seed": 3}, model_kind=model.model_kind,
                     **{**spec.options, **options})
    assert (out - direct).abs().max().item() < 2e-3 * max(1.0, float(direct.abs().max())), node_id


def test_unic_node_wraps_core_euler_without_extra_calls():
    comfy_runtime.load()
    import comfy.samplers
    calls = {"n": 0}
    base = comfy.samplers.sampler_object("euler")
    inner = base.sampler_function

    def counting(model, x, sigmas, extra_args=None, callback=None, disable=None):
        def counted(*a, **k):
            calls["n"] += 1
            return model(*a, **k)
        counted.inner_model = model.inner_model  # the UniC wrapper forwards it, as core samplers need
        return inner(counted, x, sigmas, extra_args=extra_args, callback=callback, disable=disable)
    base.sampler_function = counting
    wrapped = comfy_runtime.node("SamplerLabUniC").get_sampler(base, 2, "bh2", "stream")[0]
    sigmas = torch.tensor([10.0, 5.0, 2.5, 1.2, 0.6, 0.3, 0.0])
    noise, out = run_sampler(wrapped, "eps", sigmas)
    assert calls["n"] == 6 and torch.isfinite(out).all()
    # more accurate than plain euler against the exact ODE solution from the same start
    from lab import reference_solution
    model = LabKModel(default_mixture((4, 8, 8)), "eps", class_weights=torch.tensor([[0.0, 0.0, 1.0]] * 2))
    ref = reference_solution(model.denoise, noise.double() * 10.0, 10.0, 0.0, steps=512)
    _, plain = run_sampler(comfy.samplers.sampler_object("euler"), "eps", sigmas)
    assert (out.double() - ref).pow(2).mean() < (plain.double() - ref).pow(2).mean()


def test_bad_restart_segments_name_the_token():
    comfy_runtime.load()
    with pytest.raises(ValueError, match="0.1-x"):
        comfy_runtime.node("SamplerLabRestart").get_sampler("0.1-x:2x3")
