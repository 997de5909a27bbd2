"""The step sweep's optional inputs in the real ComfyUI runtime (no mocks): VAE, GUIDER, SIGMAS and
SAMPLER. Every cell must be what ComfyUI's own SamplerCustomAdvanced gives for the same guider,
sampler, sigmas and noise seed: the sweep's saved reference latent (on the lab model its ODE solution,
run as a SAMPLER through the same node) is compared bit for bit, and each
cell's latent distance to it (float64, from the very latents) must equal the distance between the
SamplerCustomAdvanced results. The VAE is a real comfy.sd.VAE: a tiny TAESD (4 latent channels,
like the lab model's latent) built from a state dict made here, decoding 8x8 latents to 64x64."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import comfy_runtime
import sweep

SEED, CFG, LATENT = 3, 3.0, {"samples": torch.zeros(1, 4, 8, 8)}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with comfy_runtime.sweep_output(tmp_path_factory, "sweep_inputs") as (node, out):
        model = comfy_runtime.node("SamplerLabModel").build("eps", 3.0, 6, 3, 0.15, 0, "float32")[0]
        pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(0)
        yield {"node": node, "out": out, "model": model, "pos": pos, "neg": neg}


def core(name):
    import nodes
    return nodes.NODE_CLASS_MAPPINGS[name]


def run(env, prefix, **over):
    kw = dict(model=env["model"], latent_image=LATENT, seed=SEED, steps=6, cfg=CFG, sampler_name="euler",
              scheduler="karras", denoise=1.0, x_axis="steps", x_values="3,5", y_axis="none", y_values="",
              z_axis="none", z_values="", equal_cost=False, reference_sampler="lab_rk4", reference_steps=8,
              tolerance=0.02, cell_limit=64, cell_size=128, filename_prefix=prefix,
              positive=env["pos"], negative=env["neg"])
    kw.update(over)
    out = env["node"]().sweep(**kw)
    return out, json.loads(out["result"][3])


def custom_advanced(guider, sampler, sigmas):
    """ComfyUI's SamplerCustomAdvanced (RandomNoise with the sweep's seed) -> final latent."""
    noise = core("RandomNoise").execute(SEED).result[0]
    return core("SamplerCustomAdvanced").execute(noise, guider, sampler, sigmas, LATENT).result[0]["samples"]


def cfg_guider(env):
    return core("CFGGuider").execute(env["model"], env["pos"], env["neg"], CFG).result[0]


def select(name):
    return core("KSamplerSelect").execute(name).result[0]


def lab_reference(steps=8):
    """The sweep's reference on the lab model: its ODE solved to high accuracy (RK4 in log sigma,
    reference_steps steps) as a SAMPLER, whatever reference_sampler says (issue 17: no row is
    scored against its own method)."""
    from importlib import import_module
    return import_module(comfy_runtime.load().__name__ + ".nodes.sweep_runtime").ode_reference_sampler(steps)


def karras(env, steps):
    return core("BasicScheduler").execute(env["model"], "karras", steps, 1.0).result[0]


def saved_reference(rep):
    folder = os.path.join(rep["folder"], "references")
    names = [f for f in os.listdir(folder) if f.endswith(".latent.npy")]
    assert len(names) == 1
    return torch.from_numpy(np.load(os.path.join(folder, names[0])))


def rms(a, b):
    return float((a.to(torch.float64) - b.to(torch.float64)).pow(2).mean().sqrt())


def check_cells_match(rep, ref, cell_latent):
    """The sweep's reference latent is SamplerCustomAdvanced's, bit for bit; every cell's distance to
    it equals that of SamplerCustomAdvanced's cell latent (so the cell latents are the same)."""
    assert torch.equal(saved_reference(rep), ref)
    assert rep["cells"] and all(c["status"] == "ok" for c in rep["cells"])
    for c in rep["cells"]:
        expected = cell_latent(c["params"]["steps"])
        assert c["rmse"] == pytest.approx(rms(expected, ref), rel=1e-12, abs=0)
        assert c["rmse"] > 0


# ---- GUIDER ---------------------------------------------------------------------------------------

def test_core_cfg_guider_drives_the_cells(env):
    g = cfg_guider(env)
    _, rep = run(env, "in/cfgguider", guider=g)
    assert rep["inputs"]["guider"] is True
    ref = custom_advanced(g, lab_reference(), karras(env, 8))
    check_cells_match(rep, ref, lambda n: custom_advanced(g, select("euler"), karras(env, n)))
    assert [c["nfe"] for c in rep["cells"]] == [3, 5]          # counted through the connected guider


def test_pack_guider_drives_the_cells(env):
    g = comfy_runtime.node("SamplerLabGuidanceInterval").guide(env["model"], env["pos"], env["neg"], CFG, "cfg",
                                                               5.42, 0.28, "constant")[0]
    _, rep = run(env, "in/labguider", guider=g, y_axis="sampler", y_values="euler,dpmpp_2m")
    ref = custom_advanced(g, lab_reference(), karras(env, 8))
    assert torch.equal(saved_reference(rep), ref)
    for c in rep["cells"]:
        got = custom_advanced(g, select(c["params"]["sampler"]), karras(env, c["params"]["steps"]))
        assert c["status"] == "ok" and c["rmse"] == pytest.approx(rms(got, ref), rel=1e-12, abs=0)
    # the interval guider differs from plain CFG (it is really the pack guider that ran)
    plain = custom_advanced(cfg_guider(env), lab_reference(), karras(env, 8))
    assert not torch.allclose(plain, ref)


# ---- SIGMAS ---------------------------------------------------------------------------------------

def test_sigmas_input_equals_sampler_custom_advanced(env):
    sigmas = core("BasicScheduler").execute(env["model"], "exponential", 5, 1.0).result[0]
    _, rep = run(env, "in/sigmas", sigmas=sigmas, x_values="3,5")
    assert [c["params"]["scheduler"] for c in rep["cells"]] == ["input", "input"]
    g = cfg_guider(env)
    ref = custom_advanced(g, lab_reference(), sweep.resample_sigmas(sigmas, 8))
    # 5 steps: the connected schedule as it is; 3 steps: resampled (log-linear) like the reference
    check_cells_match(rep, ref, lambda n: custom_advanced(g, select("euler"),
                                                          sigmas if n == 5 else sweep.resample_sigmas(sigmas, n)))


# ---- SAMPLER --------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["pack_rk_node", "core_ksamplerselect"])
def test_sampler_input_equals_sampler_custom_advanced(env, which):
    if which == "pack_rk_node":
        sampler = comfy_runtime.node("SamplerLabRungeKutta").get_sampler("bosh3", False)[0]
    else:
        sampler = select("dpmpp_2m")
    _, rep = run(env, f"in/sampler_{which}", sampler=sampler)
    assert [c["params"]["sampler"] for c in rep["cells"]] == ["input", "input"]
    g = cfg_guider(env)
    ref = custom_advanced(g, lab_reference(), karras(env, 8))
    check_cells_match(rep, ref, lambda n: custom_advanced(g, sampler, karras(env, n)))


# ---- VAE --------------------------------------------------------------------------------------------

def tiny_vae():
    """A real comfy.sd.VAE: ComfyUI recognises a TAESD state dict by 'taesd_decoder.1.weight'. The
    weights are made here (He-scaled normal convolutions, zero biases; ComfyUI's own TAESD layers
    skip initialisation, so its state_dict only gives the names and shapes)."""
    import comfy.sd
    import comfy.taesd.taesd
    gen = torch.Generator().manual_seed(0)
    sd = {}
    for k, v in comfy.taesd.taesd.TAESD(latent_channels=4).state_dict().items():
        if v.ndim == 4:
            sd[k] = torch.randn(v.shape, generator=gen) * (2.0 / (v.shape[1] * v.shape[2] * v.shape[3])) ** 0.5
        else:
            sd[k] = torch.zeros(v.shape)
    sd["vae_scale"], sd["vae_shift"] = torch.tensor(1.0), torch.tensor(0.0)
    return comfy.sd.VAE(sd=sd)


def to_u8(images):
    return np.round(np.clip(images.detach().float().numpy(), 0, 1) * 255).astype(np.uint8)


def test_vae_image_metrics_and_grid(env):
    vae = tiny_vae()
    out, rep = run(env, "in/vae", vae=vae)
    assert rep["decoder"] == "vae" and rep["inputs"]["vae"] is True
    g = cfg_guider(env)
    ref = custom_advanced(g, lab_reference(), karras(env, 8))
    assert torch.equal(saved_reference(rep), ref)
    ref_img = to_u8(vae.decode(ref))
    assert ref_img.shape == (1, 64, 64, 3) and ref_img.std() > 5          # a real picture, not a flat one
    grid, images = out["result"][0], out["result"][1]
    for i, c in enumerate(rep["cells"]):
        img = to_u8(vae.decode(custom_advanced(g, select("euler"), karras(env, c["params"]["steps"]))))
        mse = np.mean((img.astype(np.float64) / 255 - ref_img.astype(np.float64) / 255) ** 2)
        assert c["psnr"] == pytest.approx(10 * np.log10(1.0 / mse), rel=1e-9)        # image space, not latent
        assert c["ssim"] == pytest.approx(sweep.ssim(torch.from_numpy(img).float() / 255,
                                                     torch.from_numpy(ref_img).float() / 255), rel=1e-9)
        assert 0 < c["ssim"] < 1
        with Image.open(os.path.join(rep["folder"], c["image"])) as im:   # the full-size decoded image on disk
            assert np.array_equal(np.asarray(im.convert("RGB")), img[0])
        # the grid cell: the decoded 64 px image enlarged x2 (nearest) to the 128 px minimum
        big = img[0].repeat(2, axis=0).repeat(2, axis=1)
        assert np.array_equal(np.round(images[i].numpy() * 255).astype(np.uint8), big)
        x0, y0, x1, y1 = rep["grid"]["cell_boxes"][i]
        assert torch.equal(grid[0, y0:y1, x0:x1], images[i])
