"""The lab mixture as a k-diffusion style model, for calling samplers directly (tests, benchmarks).

LabKModel(x, sigma_batch, **extra_args) returns the exact denoised x0 in ComfyUI's x-space,
in x's dtype, and counts its calls (one call = one evaluation per conditioning)."""
import torch

from .mixture import GaussianMixture
from .means import component_means


class LabKModel:
    def __init__(self, mixture: GaussianMixture, parameterization="eps", class_weights=None, cfg=1.0):
        self.mixture = mixture
        self.parameterization = parameterization
        self.model_kind = "flow" if parameterization == "flow" else "ve"
        self.denoise = mixture.denoiser(parameterization, class_weights=class_weights, cfg=cfg)
        self.calls = 0

    def __call__(self, x, sigma, **extra_args):
        self.calls += 1
        s = sigma.reshape(-1)[0] if torch.is_tensor(sigma) else sigma
        return self.denoise(x, s)


def default_mixture(shape=(4, 16, 16), components=6, classes=3, spread=0.15, seed=0):
    """The lab model's default mixture for a latent shape (C, H, W) or (C, T, H, W)."""
    means = component_means(components, classes, shape[0], shape[1:], seed=seed)
    return GaussianMixture(means, spread, classes=torch.arange(components) % classes, num_classes=classes)
