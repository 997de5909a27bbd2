"""Latent -> RGB for the lab model: a fixed linear colour map and a smooth upscale."""
import torch

# Rows: latent channels 0..3; columns: R, G, B. Channels beyond 4 cycle.
_RGB = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.1, 0.2, 0.9], [0.3, 0.3, 0.3]], dtype=torch.float32)


def rgb_factors(channels):
    """A (channels, 3) matrix mapping latent channels to colour (also used for previews)."""
    idx = torch.arange(channels) % _RGB.shape[0]
    return _RGB[idx] * (4.0 / max(channels, 4)) ** 0.5


def latent_to_rgb(latent, upscale=8):
    """(B, C, H, W) or (B, C, T, H, W) -> images (B*T, H*upscale, W*upscale, 3) in [0, 1]."""
    if latent.ndim == 5:
        b, c, t, h, w = latent.shape
        latent = latent.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    lat = latent.to(torch.float32)
    rgb = torch.einsum("bchw,cr->brhw", lat, rgb_factors(lat.shape[1]).to(lat.device))
    rgb = (0.5 + 0.5 * rgb).clamp(0, 1)
    if upscale > 1:
        rgb = torch.nn.functional.interpolate(rgb, scale_factor=upscale, mode="bilinear", align_corners=False)
    return rgb.permute(0, 2, 3, 1).contiguous()
