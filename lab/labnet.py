"""Lab Net: a small learned diffusion model that ships with the pack (pure parts, no ComfyUI).

What it is (the model card, lab/labnet_weights/MODEL_CARD.md, has the measurements):
- data: scikit-learn's bundled handwritten digits (1,797 images, 8x8, 10 classes), upscaled
  bilinearly to 16x16 grey images in [-1, 1];
- latent: an exact, invertible space-to-depth map, 16x16x1 <-> 4x8x8 (`pixels_to_latent` /
  `latent_to_pixels`), so the "VAE" loses nothing and a latent behaves like SD's 4-channel one;
- network: ComfyUI's own SD-family `UNetModel` at the tiny configuration `UNET_CONFIG`,
  built by `comfy.model_base.BaseModel` exactly as for an SD1.5 checkpoint;
- conditioning: one cross-attention token, a one-hot of the digit (0-9) or of the null class
  (index 10), the null class trained with dropout so that CFG has an unconditional branch;
- two weight files: eps prediction on SD1.5's discrete schedule (scaled-linear betas
  0.00085..0.012, 1000 steps) and rectified flow (CONST, shift `FLOW_SHIFT` as SD3).
"""
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
WEIGHTS_DIR = os.path.join(HERE, "labnet_weights")
WEIGHT_FILES = {"eps": "labnet_eps.safetensors", "flow": "labnet_flow.safetensors"}
SCORER_FILE = "digit_scorer.safetensors"
PARAMETERIZATIONS = tuple(WEIGHT_FILES)

IMAGE_SIZE = 16            # pixels per side of a Lab Net image
PATCH = 2                  # space-to-depth factor: latent is (PATCH^2, 16/PATCH, 16/PATCH)
LATENT_CHANNELS = PATCH * PATCH
LATENT_SIZE = IMAGE_SIZE // PATCH
DIGITS = 10
NULL_CLASS = DIGITS        # index of the unconditional token
CONTEXT_DIM = 16           # width of the conditioning token (one-hot in the first 11 entries)
FLOW_SHIFT = 3.0           # SD3's shift; the flow model's sampling_settings

# ComfyUI UNetModel keyword arguments (comfy/ldm/modules/diffusionmodules/openaimodel.py), in the
# form comfy/model_detection.py gives an SD1.5 checkpoint: one transformer depth per res block.
UNET_CONFIG = {
    "image_size": LATENT_SIZE,
    "in_channels": LATENT_CHANNELS,
    "out_channels": LATENT_CHANNELS,
    "model_channels": 32,
    "num_res_blocks": [1, 1],
    "channel_mult": [1, 2],
    "transformer_depth": [0, 1],
    "transformer_depth_output": [1, 1, 0, 0],
    "transformer_depth_middle": 1,
    "context_dim": CONTEXT_DIM,
    "use_spatial_transformer": True,
    "use_linear_in_transformer": True,
    "num_heads": -1,
    "num_head_channels": 32,
    "legacy": False,
    "adm_in_channels": None,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
    "dtype": torch.float32,
}


class LabNetError(ValueError):
    """Bad Lab Net input; the message names the input and the fix."""


def weight_path(parameterization):
    if parameterization not in WEIGHT_FILES:
        raise LabNetError(f"parameterization {parameterization!r} is unknown: Lab Net ships "
                          f"{', '.join(PARAMETERIZATIONS)}")
    return os.path.join(WEIGHTS_DIR, WEIGHT_FILES[parameterization])


def class_context(class_ids, dtype=torch.float32, device=None):
    """(B,) digit ids (-1 or NULL_CLASS = unconditional) -> (B, 1, CONTEXT_DIM) one-hot tokens."""
    ids = torch.as_tensor(class_ids, device=device).reshape(-1).long()
    bad = (ids < -1) | (ids > NULL_CLASS)
    if bool(bad.any()):
        raise LabNetError(f"digit must be 0..{DIGITS - 1} (or -1 for unconditional), got {ids[bad][0].item()}")
    ids = torch.where(ids < 0, torch.full_like(ids, NULL_CLASS), ids)
    ctx = torch.zeros(ids.shape[0], 1, CONTEXT_DIM, dtype=dtype, device=device)
    ctx[torch.arange(ids.shape[0], device=device), 0, ids] = 1
    return ctx


def pixels_to_latent(pixels):
    """Grey images (B, 1, 16k, 16k) in [-1, 1] -> latents (B, 4, 8k, 8k): exact space-to-depth."""
    return torch.nn.functional.pixel_unshuffle(pixels, PATCH)


def latent_to_pixels(latent):
    """Inverse of `pixels_to_latent`: (B, 4, H, W) -> (B, 1, 2H, 2W); 5-D (B, 4, T, H, W) -> (B, 1, T, 2H, 2W)."""
    if latent.ndim == 5:
        b, c, t, h, w = latent.shape
        flat = latent.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        pix = torch.nn.functional.pixel_shuffle(flat, PATCH)
        return pix.reshape(b, t, 1, h * PATCH, w * PATCH).permute(0, 2, 1, 3, 4)
    if latent.ndim != 4:
        raise LabNetError(f"a Lab Net latent is 4-D (B, 4, H, W) or 5-D (B, 4, T, H, W), got {latent.ndim}-D")
    return torch.nn.functional.pixel_shuffle(latent, PATCH)


def digits_to_pixels(images8):
    """scikit-learn digits (N, 8, 8) with values 0..16 -> (N, 1, 16, 16) in [-1, 1], bilinear upscale."""
    x = torch.as_tensor(images8, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    x = torch.nn.functional.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    return x.clamp(0, 1) * 2 - 1
