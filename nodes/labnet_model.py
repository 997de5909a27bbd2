"""Lab Net as real ComfyUI objects: the SD-family UNetModel built by comfy.model_base.BaseModel from
a supported-model config (as a loaded SD1.5 checkpoint is), under a ModelPatcher; and its exact
space-to-depth "VAE" as a comfy.sd.VAE, so the stock VAE Decode / VAE Encode nodes work on it.

The architecture and latent maps are pure (lab/labnet.py); this file only adapts them to ComfyUI.
"""
import os

import torch

import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.supported_models_base

from ..lab import labnet

_MODEL_TYPES = {"eps": comfy.model_base.ModelType.EPS, "flow": comfy.model_base.ModelType.FLOW}


class LabNetLatentFormat(comfy.latent_formats.LatentFormat):
    """Latent = exact space-to-depth of a grey image in [-1, 1]: scale 1, previews average the 4 pixels."""
    scale_factor = 1.0
    latent_channels = labnet.LATENT_CHANNELS

    def __init__(self):
        self.latent_rgb_factors = [[0.25, 0.25, 0.25]] * labnet.LATENT_CHANNELS
        self.latent_rgb_factors_bias = None


def labnet_config(parameterization, flow_shift=labnet.FLOW_SHIFT):
    """A comfy.supported_models_base.BASE config for one parameterisation (shift only for flow)."""
    class LabNetConfig(comfy.supported_models_base.BASE):
        unet_config = dict(labnet.UNET_CONFIG)
        unet_extra_config = {}
        latent_format = LabNetLatentFormat
        memory_usage_factor = 0.05
        supported_inference_dtypes = [torch.float32, torch.bfloat16, torch.float16]
        sampling_settings = {"shift": flow_shift, "multiplier": 1000} if parameterization == "flow" else {}
    return LabNetConfig(dict(labnet.UNET_CONFIG))


def build_labnet_base(parameterization, flow_shift=labnet.FLOW_SHIFT, device=None):
    """The BaseModel with ComfyUI's UNetModel inside, weights not loaded (training starts here)."""
    if parameterization not in _MODEL_TYPES:
        raise labnet.LabNetError(f"parameterization {parameterization!r} is unknown: Lab Net ships "
                                 f"{', '.join(_MODEL_TYPES)}")
    if not flow_shift > 0:
        raise labnet.LabNetError(f"flow_shift must be positive (SD3 uses 3.0), got {flow_shift}")
    device = device or comfy.model_management.get_torch_device()
    return comfy.model_base.BaseModel(labnet_config(parameterization, flow_shift),
                                      model_type=_MODEL_TYPES[parameterization], device=device)


def load_labnet(parameterization="eps", flow_shift=labnet.FLOW_SHIFT):
    """MODEL (ModelPatcher) with the shipped weights: what the Lab Net Loader node returns."""
    from safetensors.torch import load_file
    path = labnet.weight_path(parameterization)
    if not os.path.isfile(path):
        raise labnet.LabNetError(f"Lab Net weights missing at {path}: reinstall the pack "
                                 f"(or run scripts/train_labnet.py to make them)")
    load_device = comfy.model_management.get_torch_device()
    offload_device = comfy.model_management.unet_offload_device()
    model = build_labnet_base(parameterization, flow_shift, device=offload_device)
    missing, unexpected = model.diffusion_model.load_state_dict(load_file(path), strict=False)
    if missing or unexpected:
        raise labnet.LabNetError(f"Lab Net weights at {path} do not fit the architecture "
                                 f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}): reinstall the pack")
    model.lab_settings = {"labnet": True, "parameterization": parameterization, "flow_shift": flow_shift}
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)


class _SpaceToDepth(torch.nn.Module):
    """The 'autoencoder': exact pixel (un)shuffle between (B, 1, 2H, 2W) pixels and (B, 4, H, W) latents.
    Decoded images are grey repeated to 3 channels (ComfyUI's IMAGE is RGB)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("one", torch.ones(()))   # a parameter-free module still needs a dtype/device

    def decode(self, latent, **_):
        return labnet.latent_to_pixels(latent).repeat_interleave(3, dim=1)

    def encode(self, pixels, **_):
        if pixels.ndim == 5:
            raise labnet.LabNetError("Lab Net's VAE encodes images, not video: pass a 4-D IMAGE batch")
        return labnet.pixels_to_latent(pixels.mean(1, keepdim=True))


class LabNetVAE(comfy.sd.VAE):
    """comfy.sd.VAE with the exact space-to-depth map: VAE Decode gives (B, 2H, 2W, 3) in [0, 1].
    The attributes are the ones comfy.sd.VAE.__init__ sets (0.3.52-0.3.75 and the newest source)."""

    def __init__(self):   # noqa: super().__init__ would try to detect weights from a state dict
        self.memory_used_encode = lambda shape, dtype: 64 * shape[0] * shape[-2] * shape[-1] * 4
        self.memory_used_decode = lambda shape, dtype: 64 * shape[0] * shape[-2] * shape[-1] * 16
        self.downscale_ratio = labnet.PATCH
        self.upscale_ratio = labnet.PATCH
        self.latent_channels = labnet.LATENT_CHANNELS
        self.latent_dim = 2
        self.output_channels = 3
        self.process_input = lambda image: image * 2.0 - 1.0
        self.process_output = lambda image: torch.clamp((image + 1.0) / 2.0, min=0.0, max=1.0)
        self.working_dtypes = [torch.float32]
        self.disable_offload = True
        self.not_video = True
        self.size = None
        self.downscale_index_formula = None
        self.upscale_index_formula = None
        self.extra_1d_channel = None
        self.crop_input = True
        self.first_stage_model = _SpaceToDepth().eval()
        self.device = comfy.model_management.vae_device()
        self.vae_dtype = torch.float32
        self.output_device = comfy.model_management.intermediate_device()
        self.patcher = comfy.model_patcher.ModelPatcher(self.first_stage_model, load_device=self.device,
                                                        offload_device=comfy.model_management.vae_offload_device())
