"""Issue 19's nodes and names in the real ComfyUI runtime (in-process, CPU, lab model): the exponential RK
family and the new schedules in the stock dropdowns, their SAMPLER / SIGMAS nodes, the split-at-boundary
node, the two-model sampler and the sampler chain.

Expected values: core's own samplers and nodes (dpmpp_2s_ancestral at eta 0 is DPM-Solver++(2S);
OptimalStepsScheduler's tables), and the unsplit runs the splits must equal."""
import pytest
import torch

import comfy_runtime
import samplers as pure
from lab import LabKModel, default_mixture

NEW_NODES = ("SamplerLabExponentialRK", "SamplerLabOptimalSteps", "SamplerLabTangentSchedule",
             "SamplerLabSplitAtBoundary", "SamplerLabTwoModelSampler", "SamplerLabSamplerChain")
EXP_RK = ("lab_res_2s", "lab_res_3s", "lab_res_5s", "lab_dpmpp_2s", "lab_dpmpp_3s", "lab_etdrk2", "lab_etdrk3",
          "lab_etdrk4")
FLOW_SIGMAS = torch.tensor([1.0, 0.93, 0.85, 0.7, 0.5, 0.3, 0.12, 0.0])


@pytest.fixture(scope="module")
def comfy():
    comfy_runtime.load()
    import comfy.samplers
    return comfy


def lab(parameterization="flow"):
    model = comfy_runtime.node("SamplerLabModel").build(parameterization, 3.0, 6, 3, 0.15, 0, "float32")[0]
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(2)
    return model, pos, neg


def sample(sampler, sigmas, parameterization="flow", seed=3, cfg=1.0, no_op_guidance=False, shape=(2, 4, 8, 8)):
    import comfy.sample
    import comfy.samplers
    model, pos, neg = lab(parameterization)
    latent = torch.zeros(shape)
    noise = comfy.sample.prepare_noise(latent, seed)
    g = comfy.samplers.CFGGuider(model)
    g.set_conds(pos, pos if no_op_guidance else neg)
    g.set_cfg(cfg)
    return noise, g.sample(noise, latent, sampler, sigmas, disable_pbar=True, seed=seed)


def test_names_in_the_stock_dropdowns_and_tooltips(comfy):
    import comfy.samplers
    for name in EXP_RK:
        assert name in comfy.samplers.KSampler.SAMPLERS and name + "_cfg_pp" in comfy.samplers.KSampler.SAMPLERS
    for name in ("lab_bong_tangent", "lab_oss_flux", "lab_oss_wan", "lab_oss_chroma"):
        assert name in comfy.samplers.KSampler.SCHEDULERS
    for node_id in NEW_NODES:
        cls = comfy_runtime._STATE["nodes"].NODE_CLASS_MAPPINGS[node_id]
        spec = cls.INPUT_TYPES()
        for group in spec.values():
            for name, (_, opts) in group.items():
                assert opts.get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_dpmpp_2s_equals_core_dpmpp_2s_ancestral_at_eta_0(comfy):
    """DPM-Solver++(2S) (Lu et al. 2022, Alg. 1) through ComfyUI equals core's implementation of it."""
    import comfy.samplers
    sigmas = torch.tensor([10.0, 4.0, 1.5, 0.6, 0.2, 0.0])
    _, ours = sample(comfy.samplers.sampler_object("lab_dpmpp_2s"), sigmas, "eps")
    _, core = sample(comfy.samplers.ksampler("dpmpp_2s_ancestral", {"eta": 0.0}), sigmas, "eps")
    assert (ours - core).abs().max().item() < 1e-4


@pytest.mark.parametrize("parameterization", ["eps", "flow"])
def test_exponential_rk_node_equals_pure_call(comfy, parameterization):
    sampler = comfy_runtime.node("SamplerLabExponentialRK").get_sampler("etdrk4", False)[0]
    sigmas = FLOW_SIGMAS if parameterization == "flow" else torch.tensor([10.0, 4.0, 1.5, 0.6, 0.2, 0.0])
    noise, out = sample(sampler, sigmas, parameterization)
    model = LabKModel(default_mixture((4, 8, 8)), parameterization, class_weights=torch.tensor([[0.0, 0.0, 1.0]] * 2))
    direct = pure.SAMPLERS["lab_etdrk4"].fn(model, noise * float(sigmas[0]), sigmas, model_kind=model.model_kind,
                                            tableau="etdrk4")
    assert (out - direct).abs().max().item() < 2e-3 * max(1.0, float(direct.abs().max()))


def test_cfg_pp_form_equals_base_when_guidance_is_a_no_op(comfy):
    import comfy.samplers
    _, base = sample(comfy.samplers.sampler_object("lab_res_3s"), FLOW_SIGMAS, cfg=2.0, no_op_guidance=True)
    _, pp = sample(comfy.samplers.sampler_object("lab_res_3s_cfg_pp"), FLOW_SIGMAS, cfg=2.0, no_op_guidance=True)
    assert torch.equal(base, pp)


def test_oss_node_table_mapping_equals_core_node(comfy):
    core = comfy_runtime._STATE["nodes"].NODE_CLASS_MAPPINGS["OptimalStepsScheduler"]
    model, _, _ = lab("flow")
    for model_type, core_type in (("flux", "FLUX"), ("wan", "Wan"), ("chroma", "Chroma")):
        for steps in (7, 10, 20):
            ours = comfy_runtime.node("SamplerLabOptimalSteps").schedule(model, steps, 1.0, model_type=model_type,
                                                                        mapping="table")[0]
            run = core.execute if hasattr(core, "execute") else getattr(core(), core.FUNCTION)  # V3 / V1 (0.3.52)
            theirs = run(core_type, steps, 1.0)[0]
            assert torch.allclose(ours, theirs.float(), rtol=1e-6, atol=0), (model_type, steps)


def test_tangent_node_and_dropdown_entry(comfy):
    import comfy.samplers
    model, _, _ = lab("flow")
    ms = model.get_model_object("model_sampling")
    dropdown = comfy.samplers.calculate_sigmas(ms, "lab_bong_tangent", 12)
    node = comfy_runtime.node("SamplerLabTangentSchedule").schedule(model, 12, 1.0, pivot=0.6, slope=6.0)[0]
    assert torch.equal(dropdown.float(), node.float()) and node.shape == (13,) and float(node[-1]) == 0.0


# ---- hand-off ----------------------------------------------------------------------------------

def test_split_node_modes_and_presets(comfy):
    split = comfy_runtime.node("SamplerLabSplitAtBoundary")
    model, _, _ = lab("flow")
    high, low, k = split.split(FLOW_SIGMAS, "sigma", 0.0, "Wan 2.2 T2V A14B (sigma 0.875)")
    assert k == 2 and torch.equal(high, FLOW_SIGMAS[:3]) and torch.equal(low, FLOW_SIGMAS[2:])
    assert split.split(FLOW_SIGMAS, "sigma", 0.0, "Wan 2.2 I2V A14B (sigma 0.900)")[2] == 2
    assert split.split(FLOW_SIGMAS, "fraction", 0.5, "custom")[2] == 4
    # the lab flow model's timestep is 1000 x sigma (as Wan's): timestep 700 is sigma 0.7
    assert split.split(FLOW_SIGMAS, "timestep", 700.0, "custom", model)[2] == 4


@pytest.mark.parametrize("args,words", [
    (("sigma", 1.5, "custom"), ["boundary", "outside the schedule"]),
    (("fraction", 2.0, "custom"), ["boundary", "[0, 1]"]),
    (("timestep", 500.0, "custom"), ["timestep", "model input"]),
])
def test_split_node_bad_boundary(comfy, args, words):
    with pytest.raises(ValueError) as err:
        comfy_runtime.node("SamplerLabSplitAtBoundary").split(FLOW_SIGMAS, *args)
    assert all(w in str(err.value) for w in words), str(err.value)


def _two_model(k_mode, boundary, sampler_name="lab_res_2s", cfg=(1.0, 1.0), second=None, shape=(2, 4, 8, 8)):
    import comfy.samplers
    model, pos, neg = lab("flow")
    latent = {"samples": torch.zeros(shape)}
    return comfy_runtime.node("SamplerLabTwoModelSampler").sample(
        model, second or model, pos, neg, cfg[0], cfg[1], comfy.samplers.sampler_object(sampler_name), FLOW_SIGMAS,
        5, True, latent, k_mode, boundary, "custom")[0]["samples"]


@pytest.mark.parametrize("shape", [(2, 4, 8, 8), (2, 4, 3, 8, 8)])   # image and video latents
def test_two_model_split_at_the_end_equals_the_unsplit_run(comfy, shape):
    import comfy.samplers
    _, whole = sample(comfy.samplers.sampler_object("lab_res_2s"), FLOW_SIGMAS, seed=5, shape=shape)
    assert torch.equal(_two_model("fraction", 1.0, shape=shape), whole)
    assert torch.equal(_two_model("sigma", 0.0, shape=shape), whole)
    halves = _two_model("sigma", 0.7, shape=shape)   # same model both sides: the same steps, handed over once
    assert (halves - whole).abs().max().item() < 1e-5


def test_two_model_uses_each_model_on_its_side(comfy):
    """Low side on a model with another cfg: differs from the single model, and only below the boundary."""
    base = _two_model("fraction", 1.0, cfg=(1.0, 1.0))
    changed = _two_model("fraction", 0.5, cfg=(1.0, 3.0))
    high_changed = _two_model("fraction", 0.5, cfg=(3.0, 1.0))
    assert (changed - base).abs().max().item() > 1e-4 and (high_changed - changed).abs().max().item() > 1e-3


# ---- chain -------------------------------------------------------------------------------------

def test_chain_of_the_same_core_multistep_sampler_equals_it(comfy):
    import comfy.samplers
    s = comfy.samplers.sampler_object("dpmpp_2m")
    chained = comfy_runtime.node("SamplerLabSamplerChain").get_sampler(s, s, "fraction", 0.5)[0]
    _, a = sample(chained, FLOW_SIGMAS)
    _, b = sample(s, FLOW_SIGMAS)
    assert torch.equal(a, b)


def test_chain_carries_the_noise_path_across_the_switch(comfy):
    """Two parts of core's dpmpp_sde (options differ only in form, so not merged) draw from one Brownian path
    over the whole schedule: the chain equals one dpmpp_sde run with the same seed."""
    import comfy.samplers
    a = comfy.samplers.ksampler("dpmpp_sde")
    b = comfy.samplers.ksampler("dpmpp_sde", {"s_noise": 1.0})
    chained = comfy_runtime.node("SamplerLabSamplerChain").get_sampler(a, b, "sigma", 0.7)[0]
    _, got = sample(chained, FLOW_SIGMAS)
    _, whole = sample(a, FLOW_SIGMAS)
    assert (got - whole).abs().max().item() < 1e-5


def test_chain_mixes_core_and_pack_samplers(comfy):
    import comfy.samplers
    chained = comfy_runtime.node("SamplerLabSamplerChain").get_sampler(
        comfy.samplers.sampler_object("euler_ancestral"), comfy.samplers.sampler_object("lab_res_3s"),
        "fraction", 0.4)[0]
    _, one = sample(chained, FLOW_SIGMAS, seed=9)
    _, two = sample(chained, FLOW_SIGMAS, seed=9)
    assert torch.equal(one, two) and torch.isfinite(one).all()


def test_chain_bad_switch(comfy):
    import comfy.samplers
    s = comfy.samplers.sampler_object("euler")
    with pytest.raises(ValueError, match="switch"):
        comfy_runtime.node("SamplerLabSamplerChain").get_sampler(s, s, "fraction", 1.5)
    chained = comfy_runtime.node("SamplerLabSamplerChain").get_sampler(s, comfy.samplers.sampler_object("heun"),
                                                                       "sigma", 3.0)[0]
    with pytest.raises(ValueError, match="switch sigma 3 is outside the schedule"):
        sample(chained, FLOW_SIGMAS)
