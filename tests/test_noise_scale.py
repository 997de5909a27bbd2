"""Newer ComfyUI's model_sampling.noise_scale, followed by the pack's stochastic samplers
(samplers/noise_scale.py). Expected values come from the core's formulas:
- stochastic samplers: s_noise_effective = s_noise * noise_scale (comfy/k_diffusion/sampling.py), so a
  one-step ancestral Euler move is x + (sigma_down - sigma) (x - D) / sigma + s_noise * s * sigma_up * z
  with core's get_ancestral_step sigma_up / sigma_down;
- LCM re-noising: CONST.noise_scaling(sigma, z, D) = sigma * (s * z) + (1 - sigma) * D
  (comfy/model_sampling.py @ 2fd20839);
and with no noise_scale attribute (ComfyUI 0.3.75) every sampler gives the same bits as before."""
import inspect

import pytest
import torch

import samplers
from samplers.noise_scale import noise_scale
from samplers.restart import sample_lab_restart
from samplers.stochastic import sample_lab_ancestral_euler
from samplers.tcd import sample_lab_tcd

SCALE = 1.7
SHAPE = (2, 3, 4, 4)


class _Sampling:
    """A model_sampling with (or, scale=None, without) newer core's noise_scale."""

    def __init__(self, scale):
        if scale is not None:
            self.noise_scale = scale


class _Patcher:
    def __init__(self, ms):
        self.ms = ms

    def get_model_object(self, name):
        assert name == "model_sampling"
        return self.ms


class _Wrapper:
    def __init__(self, ms):
        self.model_patcher = _Patcher(ms)


class Model:
    """The object ComfyUI hands a sampler (KSamplerX0Inpaint): inner_model.model_patcher holds
    model_sampling. Denoiser D(x, sigma) = x / (1 + sigma^2) (exact for unit Gaussian data, VE)."""

    def __init__(self, scale):
        self.inner_model = _Wrapper(_Sampling(scale))

    def __call__(self, x, sigma, **kwargs):
        return x / (1.0 + sigma.reshape(-1, *[1] * (x.ndim - 1)) ** 2)


def plain_model(x, sigma, **kwargs):
    """Today's callers (pure tests, lab models): no inner_model at all."""
    return x / (1.0 + sigma.reshape(-1, *[1] * (x.ndim - 1)) ** 2)


def _x(sigma0, seed=0):
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * sigma0


def _fixed(z):
    return lambda sigma, sigma_next: z


def test_noise_scale_is_read_the_way_core_reads_it():
    assert noise_scale(Model(SCALE)) == SCALE
    assert noise_scale(Model(None)) == 1.0          # 0.3.75: no attribute
    assert noise_scale(plain_model) == 1.0          # no ComfyUI model around it


def test_ancestral_euler_step_injects_core_scaled_noise_ve():
    s0, s1, s_noise = 2.0, 0.7, 0.8
    x = _x(s0)
    z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    sigmas = torch.tensor([s0, s1], dtype=torch.float64)
    # core's get_ancestral_step (eta = 1) and sample_euler_ancestral, s_noise times noise_scale
    sigma_up = min(s1, (s1 ** 2 * (s0 ** 2 - s1 ** 2) / s0 ** 2) ** 0.5)
    sigma_down = (s1 ** 2 - sigma_up ** 2) ** 0.5
    d = (x - x / (1 + s0 ** 2)) / s0
    expected = x + d * (sigma_down - s0) + z * (s_noise * SCALE) * sigma_up
    got = sample_lab_ancestral_euler(Model(SCALE), x, sigmas, model_kind="ve", s_noise=s_noise,
                                     noise_sampler=_fixed(z))
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)
    unscaled = sample_lab_ancestral_euler(Model(None), x, sigmas, model_kind="ve", s_noise=s_noise,
                                          noise_sampler=_fixed(z))
    assert not torch.allclose(got, unscaled)


def test_lcm_form_renoises_like_core_const_noise_scaling():
    """TCD at gamma 1 is LCM: x_next = CONST.noise_scaling(sigma_next, z, D) of the newest core."""
    s0, s1 = 0.9, 0.4
    x = _x(s0)
    z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    denoised = x / (1 + s0 ** 2)
    expected = s1 * (SCALE * z) + (1 - s1) * denoised
    got = sample_lab_tcd(Model(SCALE), x, torch.tensor([s0, s1], dtype=torch.float64), model_kind="flow",
                         gamma=1.0, noise_sampler=_fixed(z))
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)


def _stochastic_specs(with_s_noise):
    for name, spec in sorted(samplers.SAMPLERS.items()):
        if spec.stochastic and ("s_noise" in inspect.signature(spec.fn).parameters) == with_s_noise:
            yield pytest.param(spec, id=name)


def _run(spec, model, kind, seed=3, **options):
    sigmas = torch.tensor([0.95, 0.8, 0.6, 0.4, 0.2, 0.0] if kind == "flow" else [8.0, 3.0, 1.2, 0.5, 0.2, 0.0],
                          dtype=torch.float64)
    x = _x(float(sigmas[0]), seed=seed)
    uncond = (lambda: torch.zeros(SHAPE, dtype=torch.float64)) if spec.cfg_pp else None
    opts = {**spec.options, **options}
    if "segments" in inspect.signature(spec.fn).parameters:   # restart: one restart that draws noise
        opts.setdefault("segments", "0.4-0.8:1x2" if kind == "flow" else "0.5-3.0:1x2")
    if uncond is not None:
        opts["uncond"] = uncond
    return spec.fn(model, x, sigmas, extra_args={"seed": seed}, model_kind=kind, **opts)


@pytest.mark.parametrize("kind", ["ve", "flow"])
@pytest.mark.parametrize("spec", list(_stochastic_specs(True)))
def test_noise_scale_multiplies_s_noise(spec, kind):
    """Core's rule: noise_scale s with s_noise a is the sampler run with s_noise a * s."""
    a = 0.9
    scaled = _run(spec, Model(SCALE), kind, s_noise=a)
    by_hand = _run(spec, Model(None), kind, s_noise=a * SCALE)
    assert torch.allclose(scaled, by_hand, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(scaled, _run(spec, Model(None), kind, s_noise=a))


@pytest.mark.parametrize("kind", ["ve", "flow"])
@pytest.mark.parametrize("spec", [pytest.param(s, id=s.name) for s in samplers.SAMPLERS.values() if s.stochastic])
def test_absent_noise_scale_changes_nothing_bit_for_bit(spec, kind):
    """0.3.75 (no attribute) and a model with no ComfyUI wrapper give identical bits."""
    assert torch.equal(_run(spec, Model(None), kind), _run(spec, plain_model, kind))


def test_restart_jumps_add_noise_at_the_model_scale():
    """Restart's forward jumps draw fresh noise: s times the unit draw, as core's noise_scaling does."""
    z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    sigmas = torch.tensor([8.0, 3.0, 1.2, 0.5, 0.2, 0.0], dtype=torch.float64)
    x = _x(8.0)
    run = lambda model, noise: sample_lab_restart(model, x, sigmas, model_kind="ve",  # noqa: E731
                                                  segments="0.5-3.0:1x2", noise_sampler=_fixed(noise))
    scaled = run(Model(SCALE), z)
    assert torch.allclose(scaled, run(Model(None), SCALE * z), rtol=0, atol=1e-12)
    assert not torch.allclose(scaled, run(Model(None), z))
