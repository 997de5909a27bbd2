"""The lab model inside the real ComfyUI runtime: exact denoiser through ComfyUI's own model
machinery, for eps, v and flow; CFG; KSampler end to end; bad settings."""
import pytest
import torch

import comfy_runtime
from lab import default_mixture


@pytest.fixture(scope="module")
def comfy():
    comfy_runtime.load()
    import comfy.samplers
    import comfy.sample
    return comfy


def lab_model(parameterization, **kw):
    return comfy_runtime.node("SamplerLabModel").build(parameterization, kw.get("flow_shift", 3.0), 6, 3, 0.15, 0,
                                                       kw.get("dtype", "float32"))[0]


@pytest.mark.parametrize("parameterization", ["eps", "v", "flow"])
def test_comfy_denoised_is_exact_posterior_mean(comfy, parameterization):
    patcher = lab_model(parameterization)
    base = patcher.model
    mix = default_mixture((4, 8, 8))
    gen = torch.Generator().manual_seed(1)
    x0, _ = mix.sample(2, gen)
    ms = base.model_sampling
    for sigma in [float(ms.sigma_max) * 0.999, 1.0 if parameterization != "flow" else 0.5, 0.1, float(ms.sigma_min) * 1.5]:
        s = torch.tensor([sigma, sigma])
        noise = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
        a, b = (1 - sigma, sigma) if parameterization == "flow" else (1.0, sigma)
        x = (a * x0 + b * noise).float()
        ctx = torch.zeros(2, 1, 8)
        out = base.apply_model(x, s, c_crossattn=ctx, transformer_options={"sigmas": s})
        exact = mix.denoise(x.double(), torch.tensor(a), torch.tensor(b))
        err = (out.double() - exact).abs().max().item()
        assert err < 2e-4 * max(1.0, sigma), (parameterization, sigma, err)


def test_ksampler_euler_matches_direct_euler_on_exact_denoiser(comfy):
    """ComfyUI's stock KSampler (euler, karras) on the lab MODEL equals Euler steps on the exact
    mixture denoiser from the same start: the MODEL is exactly the lab model."""
    import comfy.k_diffusion.sampling as ks
    from lab import LabKModel
    patcher = lab_model("eps")
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(1)
    latent = torch.zeros(1, 4, 8, 8)
    steps, seed = 12, 7
    out = comfy.sample.sample(patcher, comfy.sample.prepare_noise(latent, seed), steps, 1.0, "euler", "karras",
                              pos, neg, latent, denoise=1.0, disable_pbar=True, seed=seed)
    ms = patcher.model.model_sampling
    sigmas = comfy.samplers.calculate_sigmas(ms, "karras", steps).double()
    noise = comfy.sample.prepare_noise(latent, seed).double()
    x = noise * torch.sqrt(1.0 + sigmas[0] ** 2)          # EPS noise_scaling with max_denoise
    mix = default_mixture((4, 8, 8))
    direct = ks.sample_euler(LabKModel(mix, "eps", class_weights=torch.tensor([[0.0, 1.0, 0.0]])), x, sigmas, disable=True)
    assert (out.double() - direct).abs().max().item() < 1e-3


def test_cfg_matches_guidance_formula(comfy):
    patcher = lab_model("flow")
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(2)
    latent = torch.zeros(1, 4, 8, 8)
    sigmas = torch.tensor([1.0, 0.6])       # one Euler step of a flow model: x1 = x0_hat + 0.6 * (x - x0_hat)
    noise = comfy.sample.prepare_noise(latent, 3)
    sampler = comfy.samplers.sampler_object("euler")
    guider = comfy.samplers.CFGGuider(patcher)
    guider.set_conds(pos, neg)
    guider.set_cfg(3.0)
    out = guider.sample(noise, latent, sampler, sigmas, disable_pbar=True, seed=3)
    mix = default_mixture((4, 8, 8))
    x = noise.double()
    c = mix.denoise(x, torch.tensor(0.0), torch.tensor(1.0), torch.tensor([[0.0, 0.0, 1.0]]))
    u = mix.denoise(x, torch.tensor(0.0), torch.tensor(1.0), None)
    d = u + 3.0 * (c - u)
    expected = (d + 0.6 * (x - d)) / (1.0 - 0.6)   # CONST.inverse_noise_scaling divides by 1 - sigma_last
    assert (out.double() - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_lab_model_runs(comfy, dtype):
    patcher = lab_model("eps", dtype=dtype)
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(0)
    latent = torch.zeros(2, 4, 8, 8)
    out = comfy.sample.sample(patcher, comfy.sample.prepare_noise(latent, 1), 8, 4.0, "euler", "karras",
                              pos, neg, latent, disable_pbar=True, seed=1)
    assert torch.isfinite(out).all() and out.dtype == torch.float32


def test_video_latent_runs(comfy):
    patcher = lab_model("flow")
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(0)
    latent = comfy_runtime.node("SamplerLabEmptyLatent").make(64, 48, 1, 3)[0]["samples"]
    assert latent.shape == (1, 4, 3, 6, 8)
    out = comfy.sample.sample(patcher, comfy.sample.prepare_noise(latent, 1), 6, 2.0, "euler", "simple",
                              pos, neg, latent, disable_pbar=True, seed=1)
    img = comfy_runtime.node("SamplerLabDecode").decode({"samples": out})[0]
    assert out.shape == latent.shape and img.shape == (3, 48, 64, 3)
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0


@pytest.mark.parametrize("kwargs, word", [
    ({"components": 0}, "components"), ({"spread": -1.0}, "spread"),
    ({"parameterization": "x0"}, "parameterization"), ({"classes": 0}, "classes"),
])
def test_bad_lab_settings_name_the_input(comfy, kwargs, word):
    from importlib import import_module
    pack = comfy_runtime.load()
    build = import_module(pack.__name__ + ".nodes.lab_model").build_lab_model
    with pytest.raises(ValueError, match=word):
        build(**kwargs)


def test_class_outside_model_is_a_clear_error(comfy):
    patcher = comfy_runtime.node("SamplerLabModel").build("eps", 3.0, 4, 2, 0.15, 0, "float32")[0]
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(5)
    latent = torch.zeros(1, 4, 8, 8)
    with pytest.raises(ValueError, match="class"):
        comfy.sample.sample(patcher, comfy.sample.prepare_noise(latent, 1), 2, 1.0, "euler", "karras",
                            pos, neg, latent, disable_pbar=True, seed=1)
