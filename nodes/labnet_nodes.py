"""Lab Net nodes: loader (MODEL + VAE), digit conditioning, empty latent. No checkpoint, no GPU needed."""
import torch

from ..lab import labnet
from .labnet_model import LabNetVAE, load_labnet

CATEGORY = "sampling/Sampler Lab/lab net"
_MODELS = {}    # (parameterization, shift) -> ModelPatcher: the weights load once per process, as a checkpoint cache would


class SamplerLabNetLoader:
    DESCRIPTION = ("Lab Net: a small learned diffusion model of handwritten digits that ships with the pack (ComfyUI's "
                   "own SD-family UNet, trained on scikit-learn's digits). Samples with the stock KSampler, CFG, CFG++ "
                   "and the Step Sweep in seconds on any CPU; its VAE turns latents into 16x16 digit pictures.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL", "VAE")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "parameterization": (list(labnet.PARAMETERIZATIONS), {"default": "eps", "tooltip":
                "eps: predicts noise on SD1.5's schedule (like SD1.5/SDXL). flow: rectified flow (like SD3/Flux/Wan)."}),
            "flow_shift": ("FLOAT", {"default": labnet.FLOW_SHIFT, "min": 0.01, "max": 100.0, "step": 0.1, "tooltip":
                "Timestep shift of the flow model (trained at 3.0, as SD3). Ignored for eps."}),
        }}

    def load(self, parameterization, flow_shift):
        shift = float(flow_shift) if parameterization == "flow" else labnet.FLOW_SHIFT
        key = (parameterization, shift)
        if key not in _MODELS:
            _MODELS[key] = load_labnet(parameterization, shift)
        return (_MODELS[key].clone(), LabNetVAE())


class SamplerLabNetConditioning:
    DESCRIPTION = ("Prompts for Lab Net: positive asks for one digit; negative is the unconditional model (as an "
                   "empty negative prompt) or a digit to steer away from. CFG and CFG++ then work as with text.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "digit": ("INT", {"default": 3, "min": -1, "max": labnet.DIGITS - 1, "tooltip":
                "The digit to draw (0-9); -1 = unconditional (any digit)."}),
            "negative_digit": ("INT", {"default": -1, "min": -1, "max": labnet.DIGITS - 1, "tooltip":
                "Negative prompt: -1 = unconditional (the usual empty negative), or a digit to steer away from."}),
        }}

    def encode(self, digit, negative_digit):
        return ([[labnet.class_context([digit]), {}]], [[labnet.class_context([negative_digit]), {}]])


class SamplerLabNetEmptyLatent:
    DESCRIPTION = ("An empty latent for Lab Net: 4 channels at half the image size (its VAE is an exact 2x2 "
                   "space-to-depth map). 16x16 pixels is what it was trained on.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "width": ("INT", {"default": labnet.IMAGE_SIZE, "min": 2, "max": 512, "step": 2, "tooltip":
                "Image width in pixels (latent is width/2). Lab Net was trained at 16."}),
            "height": ("INT", {"default": labnet.IMAGE_SIZE, "min": 2, "max": 512, "step": 2, "tooltip":
                "Image height in pixels (latent is height/2). Lab Net was trained at 16."}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 256, "tooltip": "Images per batch."}),
        }}

    def make(self, width, height, batch_size):
        if width % 2 or height % 2:
            raise labnet.LabNetError(f"width and height must be even (the latent is half the image size), "
                                     f"got {width}x{height}")
        return ({"samples": torch.zeros(batch_size, labnet.LATENT_CHANNELS, height // 2, width // 2)},)


NODE_CLASS_MAPPINGS = {
    "SamplerLabNetLoader": SamplerLabNetLoader,
    "SamplerLabNetConditioning": SamplerLabNetConditioning,
    "SamplerLabNetEmptyLatent": SamplerLabNetEmptyLatent,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "SamplerLabNetLoader": "Lab Net Loader (Sampler Lab)",
    "SamplerLabNetConditioning": "Lab Net Digit (Sampler Lab)",
    "SamplerLabNetEmptyLatent": "Empty Lab Net Latent (Sampler Lab)",
}
