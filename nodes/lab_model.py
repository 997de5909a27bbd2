"""The lab model as a real ComfyUI MODEL: a comfy.model_base.BaseModel under a ModelPatcher,
so ComfyUI's samplers, CFG, model patches and model_sampling all run on it unchanged.

Its "diffusion model" is the exact posterior mean of a Gaussian mixture (lab/mixture.py),
returned in the model's own parameterisation (eps, v or flow velocity).
"""
from collections import OrderedDict

import torch

import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.supported_models_base

from ..lab.decode import rgb_factors
from ..lab.kdiff import default_mixture
from ..lab.mixture import LabMixtureError, PARAMETERIZATIONS

MAX_CLASSES = 8          # width of the lab conditioning vector
CONTEXT_SHAPE = (1, 1, MAX_CLASSES)
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_MODEL_TYPES = {
    "eps": comfy.model_base.ModelType.EPS,
    "v": comfy.model_base.ModelType.V_PREDICTION,
    "flow": comfy.model_base.ModelType.FLOW,
}


def lab_latent_format(channels):
    class LabLatentFormat(comfy.latent_formats.LatentFormat):
        latent_channels = channels
        scale_factor = 1.0

        def __init__(self):
            self.latent_rgb_factors = rgb_factors(channels).tolist()
            self.latent_rgb_factors_bias = None
    return LabLatentFormat


class LabDenoiser(torch.nn.Module):
    """Returns the model output (eps, v or velocity) whose denoised value is the exact E[x0 | x]."""

    def __init__(self, parameterization, settings, dtype):
        super().__init__()
        self.parameterization = parameterization
        self.settings = settings
        self.dtype = dtype
        self._mixtures = OrderedDict()   # latent shape -> mixture; bounded (a few shapes at most)

    def mixture(self, shape):
        key = tuple(shape)
        if key not in self._mixtures:
            s = self.settings
            self._mixtures[key] = default_mixture(key, s["components"], s["classes"], s["spread"], s["mixture_seed"])
            while len(self._mixtures) > 4:
                self._mixtures.popitem(last=False)
        self._mixtures.move_to_end(key)
        return self._mixtures[key]

    def class_weights(self, context, batch):
        if context is None:
            return None
        cw = context.reshape(context.shape[0], -1)[:, :MAX_CLASSES].to(torch.float64)
        n = self.settings["classes"]
        outside = cw[:, n:].abs().sum(1) > 0
        if bool(outside.any()):
            raise LabMixtureError(f"Lab Conditioning asks for a class the lab model does not have: the model has "
                                  f"classes 0..{n - 1}; lower class_id or raise the model's classes")
        return cw[:, :n].repeat(max(1, batch // cw.shape[0]), 1)[:batch]

    def forward(self, xc, t, context=None, transformer_options=None, **kwargs):
        # Real checkpoints check for Cancel in every comfy.ops layer; the lab model has none, so check here.
        comfy.model_management.throw_exception_if_processing_interrupted()
        sigma = (transformer_options or {}).get("sigmas")
        if sigma is None:
            raise RuntimeError("the lab model needs ComfyUI's transformer_options['sigmas'] (ComfyUI >= 0.3)")
        b = xc.shape[0]
        sig = sigma.to(device=xc.device, dtype=torch.float64).reshape(-1)
        sig = sig.repeat(max(1, b // sig.shape[0]))[:b].reshape((b,) + (1,) * (xc.ndim - 1))
        xf = xc.to(torch.float64)
        p = self.parameterization
        x = xf if p == "flow" else xf * (sig ** 2 + 1).sqrt()      # undo calculate_input (sigma_data = 1)
        a, beta = (1 - sig, sig) if p == "flow" else (torch.ones_like(sig), sig)
        x0 = self.mixture(x.shape[1:]).denoise(x, a.reshape(-1), beta.reshape(-1), self.class_weights(context, b))
        if p == "v":   # V_PREDICTION.calculate_denoised: x/(s^2+1) - v s/sqrt(s^2+1)
            out = (x / (sig ** 2 + 1) - x0) * (sig ** 2 + 1).sqrt() / sig
        else:          # EPS and CONST: denoised = x - out * sigma
            out = (x - x0) / sig
        return out.to(self.dtype)


def build_lab_model(parameterization="eps", flow_shift=3.0, components=6, classes=3, spread=0.15,
                    mixture_seed=0, channels=4, dtype="float32"):
    """A ModelPatcher around the lab BaseModel. Bad settings raise LabMixtureError naming the input."""
    if parameterization not in PARAMETERIZATIONS:
        raise LabMixtureError(f"parameterization {parameterization!r} is unknown: use one of {', '.join(PARAMETERIZATIONS)}")
    if components < 1:
        raise LabMixtureError("components must be at least 1")
    if not 1 <= classes <= MAX_CLASSES:
        raise LabMixtureError(f"classes must be between 1 and {MAX_CLASSES}")
    if not spread > 0:
        raise LabMixtureError("spread (component std) must be positive, e.g. 0.15")
    if not flow_shift > 0:
        raise LabMixtureError("flow_shift must be positive, e.g. 3.0")
    if dtype not in DTYPES:
        raise LabMixtureError(f"dtype must be one of {', '.join(DTYPES)}")

    class LabConfig(comfy.supported_models_base.BASE):
        unet_config = {"disable_unet_model_creation": True}
        unet_extra_config = {}
        latent_format = lab_latent_format(channels)
        memory_usage_factor = 0.01
        sampling_settings = {"shift": flow_shift} if parameterization == "flow" else {}

    config = LabConfig({"disable_unet_model_creation": True})
    device = comfy.model_management.get_torch_device()
    model = comfy.model_base.BaseModel(config, model_type=_MODEL_TYPES[parameterization], device=device)
    settings = {"components": components, "classes": classes, "spread": spread, "mixture_seed": mixture_seed}
    model.diffusion_model = LabDenoiser(parameterization, settings, DTYPES[dtype])
    model.lab_settings = dict(settings, parameterization=parameterization, flow_shift=flow_shift, channels=channels)
    return comfy.model_patcher.ModelPatcher(model, load_device=device,
                                            offload_device=comfy.model_management.unet_offload_device())


def class_conditioning(class_id):
    """CONDITIONING selecting one class (class_id < 0: unconditional, all classes)."""
    ctx = torch.zeros(CONTEXT_SHAPE)
    if class_id >= 0:
        ctx[0, 0, class_id] = 1.0
    return [[ctx, {}]]
