"""Bad and unusual input through the real ComfyUI (issue 10): each case gives a clear error naming
the input and the fix, or a documented sensible behaviour, checked against exact answers.

Documented behaviours (bridge.checked_sigmas / adapt_sampler, ComfyUI's own KSampler):
- denoise 0 gives an empty SIGMAS and ComfyUI returns the input latent untouched;
  a tiny denoise runs the last `steps` steps of a very long schedule (a light final denoise).
- a single sigma is zero steps: the (noised) input comes back unchanged.
- a SIGMAS that does not end at 0 is a split schedule: the sampler stops at its last sigma.
- repeated neighbouring sigmas (a zero-length step) are skipped: a step that changes nothing.
- empty / NaN / inf / negative / increasing SIGMAS and a latent with NaN raise ValueError.
"""
import math
import os
import sys
import urllib.error

import pytest
import torch

import comfy_runtime
import samplers as pure
import schedulers as pure_schedulers
from conftest import ROOT
from lab import LabKModel, default_mixture
from numerics import reference, rms

PACK = sorted(pure.SAMPLERS)
SIGMAS = torch.tensor([10.0, 4.0, 1.5, 0.6, 0.2, 0.0])
CLASS = 1


@pytest.fixture(scope="module", autouse=True)
def runtime():
    return comfy_runtime.load()


def lab_model(parameterization="eps", dtype="float32"):
    return comfy_runtime.node("SamplerLabModel").build(parameterization, 3.0, 6, 3, 0.15, 0, dtype)[0]


def pure_model(shape, batch, parameterization="eps"):
    """The same mixture as lab_model() outside ComfyUI, conditioned on CLASS."""
    weights = torch.nn.functional.one_hot(torch.tensor([CLASS] * batch), 3).to(torch.float64)
    return LabKModel(default_mixture(tuple(shape)), parameterization, class_weights=weights)


def ksampler(model, sampler, scheduler, steps, latent, denoise=1.0, seed=1, cfg=1.0):
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(CLASS)
    out = comfy_runtime.node("KSampler").sample(model, seed, steps, cfg, sampler, scheduler, pos, neg,
                                                {"samples": latent}, denoise=denoise)
    return out[0]["samples"]


def sampler_custom(model, sampler, sigmas, latent, seed=1, add_noise=True):
    import nodes
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(CLASS)
    ksampler_obj = nodes.NODE_CLASS_MAPPINGS["KSamplerSelect"].execute(sampler).result[0]
    out = nodes.NODE_CLASS_MAPPINGS["SamplerCustom"].execute(model, add_noise, seed, 1.0, pos, neg, ksampler_obj,
                                                             sigmas, {"samples": latent})
    return out.result[0]["samples"]


def noise_for(latent, seed=1):
    import comfy.sample
    return comfy.sample.prepare_noise(latent, seed)


def registered(name):
    import comfy.k_diffusion.sampling as ks
    return getattr(ks, "sample_" + name)


# ---- steps ---------------------------------------------------------------------------------

@pytest.mark.parametrize("scheduler", sorted(pure_schedulers.SCHEDULERS))
def test_steps_zero_is_a_clear_error(scheduler):
    with pytest.raises(ValueError, match="steps"):
        ksampler(lab_model(), "lab_rk_midpoint", scheduler, 0, torch.zeros(1, 4, 8, 8))


@pytest.mark.parametrize("name", PACK)
def test_one_step_runs_and_moves_toward_the_exact_answer(name):
    import comfy.samplers
    model = lab_model()
    latent = torch.zeros(2, 4, 8, 8)
    out = ksampler(model, name, "lab_beta57", 1, latent)
    ms = model.get_model_object("model_sampling")
    s0 = float(comfy.samplers.calculate_sigmas(ms, "lab_beta57", 1)[0])
    x0 = ms.noise_scaling(torch.tensor(s0), noise_for(latent), latent, max_denoise=True)
    exact = reference(pure_model((4, 8, 8), 2), x0.double(), s0, 0.0, steps=256)
    assert out.shape == latent.shape and torch.isfinite(out).all()
    assert rms(out, exact) < 0.5 * rms(x0, exact), name   # one step removes most of the noise


def test_ten_thousand_steps_match_the_exact_solution():
    import comfy.samplers
    model = lab_model()
    latent = torch.zeros(1, 4, 8, 8)
    out = ksampler(model, "lab_plms", "lab_polyexp", 10000, latent)
    ms = model.get_model_object("model_sampling")
    s0 = float(comfy.samplers.calculate_sigmas(ms, "lab_polyexp", 10000)[0])
    x0 = ms.noise_scaling(torch.tensor(s0), noise_for(latent), latent, max_denoise=True)
    exact = reference(pure_model((4, 8, 8), 1), x0.double(), s0, 0.0, steps=1024)
    # 10k float32 steps do not drift: what is left is the last step, from sigma_min (0.029) to 0 in
    # one go, whose error is O(sigma_min^2) ~ 1e-3 at any step count
    assert rms(out, exact) < 6e-3


@pytest.mark.parametrize("parameterization", ["eps", "flow"])
@pytest.mark.parametrize("scheduler", sorted(pure_schedulers.SCHEDULERS))
def test_every_scheduler_at_ten_thousand_steps_is_valid_or_says_steps(scheduler, parameterization):
    import comfy.samplers
    ms = lab_model(parameterization).get_model_object("model_sampling")
    try:
        s = comfy.samplers.calculate_sigmas(ms, scheduler, 10000)
    except ValueError as e:
        assert "steps" in str(e) and "fewer steps" in str(e)   # diffusers spacings: at most 1000
        return
    assert s.shape == (10001,) and torch.isfinite(s).all() and float(s[-1]) == 0.0
    assert bool((s[1:] <= s[:-1]).all())


# ---- denoise -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lab_plms", "lab_rk_bosh3", "lab_sde_dpmpp_2m"])
def test_denoise_zero_returns_the_input(name):
    latent = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5)) * 0.3
    out = ksampler(lab_model(), name, "lab_polyexp", 20, latent, denoise=0.0)
    assert torch.equal(out, latent)


def _denoise_start(model, latent, steps, denoise):
    """The sigmas KSampler runs for `denoise` and the noised latent it starts from."""
    import comfy.samplers
    sigmas = comfy.samplers.KSampler(model, steps, "cpu", "lab_rk_bosh3", "lab_polyexp", denoise).sigmas
    assert sigmas.shape == (steps + 1,) and float(sigmas[-1]) == 0.0
    ms = model.get_model_object("model_sampling")
    s0 = float(sigmas[0])
    full = math.isclose(s0, float(ms.sigma_max), rel_tol=1e-5)
    return sigmas, ms.noise_scaling(torch.tensor(s0), noise_for(latent), latent, max_denoise=full).double()


def test_full_denoise_follows_the_exact_solution():
    model = lab_model()
    latent = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5)) * 0.3
    out = ksampler(model, "lab_rk_bosh3", "lab_polyexp", 8, latent, denoise=1.0)
    sigmas, x0 = _denoise_start(model, latent, 8, 1.0)
    exact = reference(pure_model((4, 8, 8), 2), x0, float(sigmas[0]), 0.0, steps=512)
    assert rms(out, exact) < 0.02 * rms(x0, exact)


def test_tiny_denoise_is_one_final_denoise_near_the_input():
    """denoise 1e-6 runs the last `steps` sigmas of a steps/1e-6 schedule: all of them (but the
    final 0) are the model's sigma_min in float32, so after dropping the repeats it is one step from
    sigma_min to 0, which every sampler makes as x -> D(x): the exact denoiser at sigma_min."""
    model = lab_model()
    latent = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5)) * 0.3
    out = ksampler(model, "lab_rk_bosh3", "lab_polyexp", 4, latent, denoise=1e-6)
    sigmas, x0 = _denoise_start(model, latent, 4, 1e-6)
    s0 = float(sigmas[0])
    ms = model.get_model_object("model_sampling")
    assert math.isclose(s0, float(ms.sigma_min), rel_tol=1e-3)
    denoised = pure_model((4, 8, 8), 2)(x0, torch.full((2,), s0, dtype=torch.float64))
    assert rms(out, denoised) < 1e-4
    assert rms(out, latent) < 0.05   # a light touch: sigma_min of noise removed


# ---- SIGMAS through SamplerCustom ---------------------------------------------------------

@pytest.mark.parametrize("name", PACK)
def test_empty_sigmas(name):
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(sampler_custom(lab_model(), name, torch.tensor([]), latent), latent)  # ComfyUI skips
    with pytest.raises(ValueError, match="sigmas is empty"):   # called directly, the pack says so
        registered(name)(None, latent, torch.tensor([]))


@pytest.mark.parametrize("name", PACK)
def test_single_sigma_is_zero_steps(name):
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2)) * 0.2
    out = sampler_custom(lab_model(), name, torch.tensor([3.0]), latent)
    assert torch.allclose(out, latent + 3.0 * noise_for(latent), atol=1e-6)


BAD_SIGMAS = {
    "increasing": (torch.tensor([0.0, 1.0, 5.0]), "must not increase"),
    "nan": (torch.tensor([5.0, float("nan"), 0.0]), "NaN or inf"),
    "inf": (torch.tensor([float("inf"), 1.0, 0.0]), "NaN or inf"),
    "negative": (torch.tensor([5.0, 1.0, -0.5]), "negative"),
}


@pytest.mark.parametrize("case", sorted(BAD_SIGMAS))
@pytest.mark.parametrize("name", PACK)
def test_bad_sigmas_name_the_input(name, case):
    sigmas, message = BAD_SIGMAS[case]
    with pytest.raises(ValueError, match="sigmas") as err:
        sampler_custom(lab_model(), name, sigmas, torch.zeros(1, 4, 8, 8))
    assert message in str(err.value)


@pytest.mark.parametrize("name", PACK)
def test_split_schedule_stops_at_its_last_sigma(name):
    latent = torch.zeros(2, 4, 8, 8)
    split = torch.tensor([10.0, 4.0, 2.0, 1.0, 0.6])
    out = sampler_custom(lab_model(), name, split, latent)
    x0 = 10.0 * noise_for(latent)
    exact = reference(pure_model((4, 8, 8), 2), x0.double(), 10.0, 0.6, steps=256)
    assert torch.isfinite(out).all()
    # deterministic: on the exact trajectory; stochastic: noise is re-injected along the way, but the
    # result still sits near noise level 0.6 around it
    bound = 0.5 if pure.SAMPLERS[name].stochastic else 0.1
    assert rms(out, exact) < bound * rms(x0, exact), name


@pytest.mark.parametrize("name", PACK)
def test_repeated_sigma_is_a_step_that_changes_nothing(name):
    latent = torch.zeros(2, 4, 8, 8)
    once = sampler_custom(lab_model(), name, SIGMAS, latent)
    twice = sampler_custom(lab_model(), name, torch.tensor([10.0, 4.0, 4.0, 1.5, 0.6, 0.6, 0.2, 0.0]), latent)
    assert torch.equal(once, twice)


# ---- the latent ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lab_rk_midpoint", "lab_plms", "lab_sde_dpmpp_2m", "lab_rk_midpoint_cfg_pp"])
def test_latent_with_nan_is_a_clear_error(name):
    latent = torch.zeros(3, 4, 8, 8)
    latent[1, 2, 3, 4] = float("nan")
    with pytest.raises(ValueError, match=r"latent has NaN or inf values \(batch item\(s\) \[1\]\)"):
        ksampler(lab_model(), name, "lab_beta57", 4, latent)


@pytest.mark.parametrize("batch", range(1, 9))
def test_batch_sizes_one_to_eight(batch):
    model = lab_model()
    latent = torch.zeros(batch, 4, 8, 8)
    out = sampler_custom(model, "lab_rk_bosh3", SIGMAS, latent)
    spec = pure.SAMPLERS["lab_rk_bosh3"]
    direct = spec.fn(pure_model((4, 8, 8), batch), 10.0 * noise_for(latent).double(), SIGMAS.double(),
                     model_kind="ve", **spec.options)
    assert out.shape == latent.shape and rms(out, direct) < 1e-4
    noisy = sampler_custom(model, "lab_sde_dpmpp_2m", SIGMAS, latent)
    assert noisy.shape == latent.shape and torch.isfinite(noisy).all()


@pytest.mark.parametrize("shape", [(1, 4, 1, 1), (3, 4, 7, 9), (1, 4, 2, 33), (2, 4, 3, 5, 7)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", ["lab_rk_bosh3", "lab_pndm", "lab_dpmpp2m_unic", "lab_sde_dpmpp_3m"])
def test_odd_latent_sizes(shape, name):
    latent = torch.zeros(shape)
    out = sampler_custom(lab_model(), name, SIGMAS, latent)
    assert out.shape == latent.shape and torch.isfinite(out).all()
    spec = pure.SAMPLERS[name]
    # same float32 x and sigmas as ComfyUI passes, so stochastic samplers draw the same seeded noise
    direct = spec.fn(pure_model(shape[1:], shape[0]), 10.0 * noise_for(latent), SIGMAS,
                     extra_args={"seed": 1}, model_kind="ve", **spec.options)
    assert rms(out, direct) < 1e-4 * max(1.0, float(direct.abs().max()))


# ---- model precision -----------------------------------------------------------------------

@pytest.mark.parametrize("dtype, tol", [("float16", 5e-3), ("bfloat16", 3e-2)])
def test_half_precision_lab_model(dtype, tol):
    latent = torch.zeros(2, 4, 8, 8)
    for name in PACK:
        low = ksampler(lab_model(dtype=dtype), name, "lab_beta57", 5, latent)
        full = ksampler(lab_model(), name, "lab_beta57", 5, latent)
        assert low.dtype == latent.dtype and torch.isfinite(low).all(), name
        assert float((low - full).abs().max()) < tol, name


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_pure_samplers_keep_a_half_precision_latent(dtype):
    model = pure_model((4, 8, 8), 2)
    x = (torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 10.0).to(dtype)
    for name in PACK:
        spec = pure.SAMPLERS[name]
        out = spec.fn(model, x, SIGMAS.to(dtype), extra_args={"seed": 1}, model_kind="ve", **spec.options)
        assert out.dtype == dtype and torch.isfinite(out).all(), name


# ---- schedule nodes ------------------------------------------------------------------------

BAD_PARAMS = [
    ("SamplerLabPolyexponential", {"rho": 0.0}, "rho"),
    ("SamplerLabPolyexponential", {"rho": float("nan")}, "rho"),
    ("SamplerLabLaplace", {"mu": 0.0, "beta": 0.0}, "beta"),
    ("SamplerLabVP", {"beta_d": 0.0, "beta_min": 0.0, "eps_s": 0.001}, "beta_d"),
    ("SamplerLabVP", {"beta_d": 19.9, "beta_min": 0.1, "eps_s": 0.0}, "eps_s"),
    ("SamplerLabVP", {"beta_d": 19.9, "beta_min": 0.1, "eps_s": 2.0}, "eps_s"),
    ("SamplerLabVP", {"beta_d": 100.0, "beta_min": 10.0, "eps_s": 0.5}, "lower eps_s"),   # inside the widget
    ("SamplerLabBetaSchedule", {"alpha": 0.0, "beta": 0.7}, "alpha"),
    ("SamplerLabBetaSchedule", {"alpha": 0.5, "beta": -1.0}, "beta"),
    ("SamplerLabAlignYourSteps", {"model_type": "sd3"}, "model_type"),
    ("SamplerLabGITS", {"coeff": 5.0}, "coeff"),
    ("SamplerLabDiffusersSpacing", {"spacing": "middle", "steps_offset": 0}, "spacing"),
    ("SamplerLabScheduler", {"scheduler": "lab_not_installed"}, "scheduler"),
]


@pytest.mark.parametrize("node_id, params, word", BAD_PARAMS, ids=[f"{n}-{w}" for n, _, w in BAD_PARAMS])
def test_schedule_node_bad_params_name_the_input(node_id, params, word):
    node = comfy_runtime.node(node_id)
    with pytest.raises(ValueError, match=word):
        node.schedule(lab_model(), 10, 1.0, **params)
    assert node.schedule(lab_model(), 10, 0.0, **params)[0].numel() == 0   # denoise 0: empty, like core


@pytest.mark.parametrize("node_id", sorted({n for n, _, _ in BAD_PARAMS}))
def test_schedule_node_steps_zero_names_steps(node_id):
    node = comfy_runtime.node(node_id)
    defaults = {k: (v[0][0] if isinstance(v[0], list) else v[1]["default"])
                for k, v in node.INPUT_TYPES()["required"].items() if k not in ("model", "steps", "denoise")}
    assert node.schedule(lab_model(), 10, 1.0, **defaults)[0].numel() == 11
    with pytest.raises(ValueError, match="steps"):
        node.schedule(lab_model(), 0, 1.0, **defaults)


EXTREMES = [   # widget limits (nodes/schedule_nodes.py): still a schedule every pack sampler accepts
    ("SamplerLabPolyexponential", {"rho": 100.0}),
    ("SamplerLabPolyexponential", {"rho": 0.05}),
    ("SamplerLabLaplace", {"mu": 10.0, "beta": 0.01}),
    ("SamplerLabLaplace", {"mu": -10.0, "beta": 10.0}),
    ("SamplerLabVP", {"beta_d": 100.0, "beta_min": 10.0, "eps_s": 1e-5}),
    ("SamplerLabBetaSchedule", {"alpha": 10.0, "beta": 0.01}),
    ("SamplerLabDiffusersSpacing", {"spacing": "leading", "steps_offset": 100}),
    ("SamplerLabGITS", {"coeff": 1.5}),
]


@pytest.mark.parametrize("parameterization", ["eps", "flow"])
@pytest.mark.parametrize("node_id, params", EXTREMES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(EXTREMES)])
def test_schedule_node_extremes_give_a_runnable_schedule(node_id, params, parameterization, runtime):
    model = lab_model(parameterization)
    sigmas = comfy_runtime.node(node_id).schedule(model, 20, 1.0, **params)[0]
    checked = runtime.bridge.checked_sigmas(sigmas)   # finite, >= 0, never increasing
    assert float(checked[-1]) == 0.0 and checked.numel() >= 2
    out = sampler_custom(model, "lab_dpmpp2m_unic", sigmas, torch.zeros(1, 4, 8, 8))
    assert torch.isfinite(out).all()


# ---- a workflow naming a sampler / scheduler that is not installed (real server) -------------

def _prompt(sampler, scheduler):
    return {
        "1": {"class_type": "SamplerLabModel", "inputs": {"parameterization": "eps", "flow_shift": 3.0,
              "components": 6, "classes": 3, "spread": 0.05, "mixture_seed": 0, "dtype": "float32"}},
        "2": {"class_type": "SamplerLabConditioning", "inputs": {"class_id": 0}},
        "3": {"class_type": "SamplerLabEmptyLatent", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                                "frames": 1}},
        "4": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 1, "steps": 3, "cfg": 1.0,
              "sampler_name": sampler, "scheduler": scheduler, "positive": ["2", 0], "negative": ["2", 1],
              "latent_image": ["3", 0], "denoise": 1.0}},
        "5": {"class_type": "SaveLatent", "inputs": {"samples": ["4", 0], "filename_prefix": "latents/rel"}},
    }


def test_unknown_sampler_or_scheduler_is_a_validation_error_and_the_server_stays_up(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from comfy_server import ComfyServer
    import workflow_tools as wt
    with ComfyServer(str(tmp_path)) as srv:
        for field, prompt in (("sampler_name", _prompt("lab_not_installed", "lab_beta57")),
                              ("scheduler", _prompt("lab_rk_midpoint", "lab_not_installed"))):
            with pytest.raises(urllib.error.HTTPError) as err:
                wt.queue(srv.url, prompt)
            body = err.value.read().decode()
            assert err.value.code == 400 and field in body and "lab_not_installed" in body, body[:500]
        entry = wt.wait(srv.url, wt.queue(srv.url, _prompt("lab_rk_midpoint", "lab_beta57")), timeout=120)
        assert entry["status"]["status_str"] == "success"
        assert srv.proc.poll() is None
