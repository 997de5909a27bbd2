"""Lab model nodes: MODEL, CONDITIONING, empty LATENT and decode to IMAGE (no checkpoint needed)."""
import torch

from ..lab.decode import latent_to_rgb
from ..lab.mixture import PARAMETERIZATIONS
from .lab_model import DTYPES, MAX_CLASSES, build_lab_model, class_conditioning

CATEGORY = "sampling/Sampler Lab/lab model"


class SamplerLabModel:
    DESCRIPTION = ("A tiny exact diffusion model: a mixture of Gaussians over small image-like latents whose "
                   "denoiser is known in closed form. A real ComfyUI MODEL: KSampler, CFG, CFG++ and the step "
                   "sweep run on it in seconds on any machine, and every sampler can be scored against the exact answer.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "parameterization": (list(PARAMETERIZATIONS), {"default": "eps", "tooltip":
                "What the model predicts: eps (SD1.5/SDXL style), v (SD2-768 style) or flow (SD3/Flux/Wan style)."}),
            "flow_shift": ("FLOAT", {"default": 3.0, "min": 0.01, "max": 100.0, "step": 0.1, "tooltip":
                "Timestep shift for the flow parameterisation (SD3 uses 3.0). Ignored for eps and v."}),
            "components": ("INT", {"default": 6, "min": 1, "max": 64, "tooltip":
                "Number of Gaussian components (distinct images) in the data distribution."}),
            "classes": ("INT", {"default": 3, "min": 1, "max": MAX_CLASSES, "tooltip":
                "Number of classes; component k belongs to class k mod classes. Lab Conditioning picks one."}),
            "spread": ("FLOAT", {"default": 0.05, "min": 0.001, "max": 2.0, "step": 0.01, "tooltip":
                "Standard deviation of each component around its mean image (latent units)."}),
            "mixture_seed": ("INT", {"default": 0, "min": 0, "max": 2 ** 31 - 1, "tooltip":
                "Seed of the mixture itself (positions and colours of the component images)."}),
            "dtype": (list(DTYPES), {"default": "float32", "tooltip":
                "Precision at the model's interface, to mimic fp16/bf16 checkpoints."}),
        }}

    def build(self, parameterization, flow_shift, components, classes, spread, mixture_seed, dtype):
        return (build_lab_model(parameterization, flow_shift, components, classes, spread, mixture_seed, 4, dtype),)


class SamplerLabConditioning:
    DESCRIPTION = ("Class-conditional prompts for the lab model: positive selects one class, negative is the "
                   "unconditional model (all classes), so CFG and CFG++ behave as with a text prompt.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "class_id": ("INT", {"default": 0, "min": -1, "max": MAX_CLASSES - 1, "tooltip":
                "Class for the positive conditioning (must be below the lab model's classes); -1 = unconditional."}),
        }}

    def encode(self, class_id):
        return (class_conditioning(class_id), class_conditioning(-1))


class SamplerLabEmptyLatent:
    DESCRIPTION = "An empty latent for the lab model: 4 channels at 1/8 of the image size; frames > 1 gives a 5-D video latent."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "width": ("INT", {"default": 128, "min": 8, "max": 2048, "step": 8, "tooltip": "Image width in pixels (latent is width/8)."}),
            "height": ("INT", {"default": 128, "min": 8, "max": 2048, "step": 8, "tooltip": "Image height in pixels (latent is height/8)."}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 64, "tooltip": "Images per batch."}),
            "frames": ("INT", {"default": 1, "min": 1, "max": 64, "tooltip": "1 = image latent (B,C,H,W); more = video latent (B,C,T,H,W)."}),
        }}

    def make(self, width, height, batch_size, frames):
        shape = (batch_size, 4) + ((frames,) if frames > 1 else ()) + (height // 8, width // 8)
        return ({"samples": torch.zeros(shape)},)


class SamplerLabDecode:
    DESCRIPTION = "Turns a lab-model latent into a picture (fixed colour map, 8x smooth upscale). Video latents give one image per frame."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT", {"tooltip": "Latent from a sampler run on the lab model."})}}

    def decode(self, samples):
        return (latent_to_rgb(samples["samples"]).cpu(),)


NODE_CLASS_MAPPINGS = {
    "SamplerLabModel": SamplerLabModel,
    "SamplerLabConditioning": SamplerLabConditioning,
    "SamplerLabEmptyLatent": SamplerLabEmptyLatent,
    "SamplerLabDecode": SamplerLabDecode,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "SamplerLabModel": "Lab Model (Sampler Lab)",
    "SamplerLabConditioning": "Lab Conditioning (Sampler Lab)",
    "SamplerLabEmptyLatent": "Empty Lab Latent (Sampler Lab)",
    "SamplerLabDecode": "Lab Decode (Sampler Lab)",
}
