"""The lab mixture's denoiser against independent exact facts (pure torch, no ComfyUI)."""
import math

import pytest
import torch

from lab import default_mixture, reference_solution
from lab.mixture import GaussianMixture, LabMixtureError


def log_marginal(mix, x, alpha, beta, class_weights=None):
    """log p(x) of x = alpha x0 + beta n written out directly (independent of mixture.denoise)."""
    d = mix.dim
    out = []
    for b in range(x.shape[0]):
        terms = []
        for k in range(mix.num_components):
            w = math.exp(float(mix.log_weights[k]))
            if class_weights is not None:
                w *= float(class_weights[b, mix.classes[k]])
                if w == 0:
                    continue
            v = alpha ** 2 * float(mix.stds[k]) ** 2 + beta ** 2
            r2 = ((x[b] - alpha * mix.means[k]) ** 2).sum()
            terms.append(math.log(w) - 0.5 * d * math.log(2 * math.pi * v) - 0.5 * r2 / v)
        out.append(torch.logsumexp(torch.stack(terms), 0))
    return torch.stack(out)


@pytest.mark.parametrize("alpha, beta", [(1.0, 0.05), (1.0, 0.7), (1.0, 12.0), (0.6, 0.4), (0.05, 0.95)])
def test_tweedie(alpha, beta):
    """E[x0|x] = (x + beta^2 grad log p(x)) / alpha (Tweedie's formula), score by autograd."""
    mix = default_mixture((3, 5, 4))
    gen = torch.Generator().manual_seed(0)
    x0, _ = mix.sample(3, gen)
    x = (alpha * x0 + beta * torch.randn(x0.shape, generator=gen, dtype=torch.float64)).requires_grad_(True)
    cw = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.2, 0.8, 0.0]], dtype=torch.float64)
    cw_eff = torch.where(cw.sum(1, keepdim=True) == 0, torch.ones_like(cw), cw)
    score = torch.autograd.grad(log_marginal(mix, x, alpha, beta, cw_eff).sum(), x)[0]
    want = (x.detach() + beta ** 2 * score) / alpha
    got = mix.denoise(x.detach(), torch.tensor(alpha), torch.tensor(beta), cw)
    assert (got - want).abs().max() < 1e-7


def test_limits():
    mix = default_mixture((4, 6, 6))
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    assert torch.allclose(mix.denoise(x, torch.tensor(1.0), torch.tensor(1e-9)), x, atol=1e-12)
    far = mix.denoise(x * 1e4, torch.tensor(1.0), torch.tensor(1e4))
    assert torch.allclose(far, mix.means.mean(0).expand_as(far), atol=1e-2)


def test_float32_and_video_shapes_stay_finite():
    mix = default_mixture((4, 3, 6, 6))
    x = torch.randn(2, 4, 3, 6, 6) * 14.6
    out = mix.denoise(x, torch.tensor(1.0), torch.tensor(14.6))
    assert out.dtype == torch.float32 and out.shape == x.shape and torch.isfinite(out).all()


def test_reference_solution_converges_and_lands_on_the_data():
    mix = default_mixture((4, 8, 8))
    gen = torch.Generator().manual_seed(5)
    for param, smax in (("eps", 14.6), ("flow", 1.0)):
        noise = torch.randn(16, 4, 8, 8, generator=gen, dtype=torch.float64)
        den = mix.denoiser(param)
        a = reference_solution(den, noise * smax, smax, steps=1024)
        b = reference_solution(den, noise * smax, smax, steps=2048)
        assert (a - b).abs().max() < 1e-6, param
        _, dist = mix.nearest(b)
        # an ODE sample of an isotropic mixture lands at a typical distance from its component mean
        assert 0.8 < float(dist.mean()) < 1.1, (param, dist)


def test_bad_settings_name_the_input():
    with pytest.raises(LabMixtureError, match="spread"):
        GaussianMixture(torch.zeros(2, 1, 2, 2), -1.0)
    with pytest.raises(LabMixtureError, match="components"):
        GaussianMixture(torch.zeros(0, 1, 2, 2), 0.1)
    with pytest.raises(LabMixtureError, match="parameterization"):
        default_mixture((1, 2, 2)).denoiser("x0")(torch.zeros(1, 1, 2, 2), 0.5)
