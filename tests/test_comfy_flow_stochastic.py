"""Issue 4 item 8: every core ancestral/SDE sampler and every pack stochastic sampler, measured on the
lab model's flow (CONST) and eps parameterisations through ComfyUI's stock KSampler path.

Measure: unconditional samples from 256 seeds-worth of noise; mean normalised distance to the nearest
mixture component (exact samples: ~1) and a chi-square of the component counts against the weights
(5 dof; 20.5 is the 0.1% point). The pack's samplers must pass on both; so must core's on eps. On flow
models the README's claim is asserted: core's ddpm and res_multistep_ancestral sample the wrong
distribution there (chi-square above the limit and a distance outside the band: measured 48 / 50 and
1.09 / 1.14), and core's other stochastic samplers pass there too (test output, -s, prints them all).
Distance band: |distance - 1| < 0.08. Exact samples give 1 +- 0.003 (256 samples of 256 dims); 100 steps
of a first-order ancestral sampler blur to ~0.94; core's ddpm on flow measured 1.09, outside."""
import pytest
import torch

import comfy_runtime
import samplers as pure
from distribution import chi_square, distribution_check, flow_sigmas, karras_sigmas
from lab import default_mixture

CORE_STOCHASTIC = ["euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde",
                   "dpmpp_3m_sde", "er_sde", "sa_solver", "res_multistep_ancestral", "ddpm", "seeds_2"]
PACK_STOCHASTIC = sorted(n for n, s in pure.SAMPLERS.items() if s.stochastic and s.family != "tcd")  # TCD: see test_tcd.py
N, STEPS, CHI2_LIMIT, DIST_TOL = 256, 100, 20.5, 0.08
CORE_WRONG_ON_FLOW = ("ddpm", "res_multistep_ancestral")
_RESULTS = {}


def measure(name, parameterization):
    """Same noise levels for both kinds (Karras VE sigmas down to 0.0292; flow: mapped by s / (1 + s)),
    so the final denoising step removes the same residual noise and only the sampler differs."""
    import comfy.sample
    import comfy.samplers
    model = comfy_runtime.node("SamplerLabModel").build(parameterization, 3.0, 6, 3, 0.15, 0, "float32")[0]
    uncond = comfy_runtime.node("SamplerLabConditioning").encode(-1)[0]
    latent = torch.zeros(N, 4, 8, 8)
    sigmas = (flow_sigmas(STEPS) if parameterization == "flow" else karras_sigmas(STEPS)).float()
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(uncond, uncond)
    guider.set_cfg(1.0)
    out = guider.sample(comfy.sample.prepare_noise(latent, 7), latent, comfy.samplers.sampler_object(name), sigmas,
                        disable_pbar=True, seed=7)
    mix = default_mixture((4, 8, 8))
    dist, fractions = distribution_check(mix, out)
    chi2 = chi_square(mix, fractions, N)
    _RESULTS[(name, parameterization)] = (dist, chi2)
    print(f"\n{parameterization:4s} {name:26s} distance {dist:.3f} chi2 {chi2:7.1f}")
    return dist, chi2


@pytest.fixture(scope="module", autouse=True)
def runtime():
    comfy_runtime.load()


@pytest.mark.parametrize("parameterization", ["flow", "eps"])
@pytest.mark.parametrize("name", PACK_STOCHASTIC)
def test_pack_stochastic_samplers_sample_the_right_distribution(name, parameterization):
    dist, chi2 = measure(name, parameterization)
    assert abs(dist - 1.0) < DIST_TOL and chi2 < CHI2_LIMIT, (name, parameterization, dist, chi2)


@pytest.mark.parametrize("parameterization", ["flow", "eps"])
@pytest.mark.parametrize("name", CORE_STOCHASTIC)
def test_core_stochastic_samplers_measured(name, parameterization):
    """The measurement the README quotes: core's ddpm and res_multistep_ancestral are wrong on flow models
    (both criteria fail); every other case passes like the pack's samplers."""
    dist, chi2 = measure(name, parameterization)
    if parameterization == "flow" and name in CORE_WRONG_ON_FLOW:
        assert chi2 > CHI2_LIMIT and abs(dist - 1.0) >= DIST_TOL, (name, dist, chi2)
    else:
        assert abs(dist - 1.0) < DIST_TOL and chi2 < CHI2_LIMIT, (name, dist, chi2)
