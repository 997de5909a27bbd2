"""The lab model: a Gaussian-mixture data distribution whose denoiser is exact.

Pure torch (no ComfyUI). `nodes/lab_model.py` wraps it as a real ComfyUI MODEL.
"""
from .mixture import GaussianMixture, LabMixtureError
from .means import component_means
from .reference import reference_solution, Parameterization, to_ve, from_ve
from .decode import latent_to_rgb
from .kdiff import LabKModel, default_mixture
from .simple_solvers import euler, karras_sigmas  # noqa: F401  (references for tests and benchmarks)

__all__ = [
    "GaussianMixture", "LabMixtureError", "component_means", "reference_solution",
    "Parameterization", "to_ve", "from_ve", "latent_to_rgb", "LabKModel", "default_mixture",
]
