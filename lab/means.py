"""Procedural, smooth, recognisable component means for the lab mixture.

Each class has its own motif (disc, stripes, ring, diagonal, checker, cross ...);
components of one class share the motif and differ in position and colour.
The means are functions of normalised coordinates, so one mixture is defined for
any latent size, image (C, H, W) or video (C, T, H, W): the motif drifts smoothly
with the frame index.
"""
import math

import torch

MOTIFS = ("disc", "stripes", "ring", "diagonal", "checker", "cross", "blob2", "gradient")


def _grid(spatial, dtype):
    """Coordinates in [-1, 1] for each spatial axis; the time axis (if any) in [0, 1]."""
    axes = []
    for n in spatial:
        axes.append(torch.linspace(-1.0, 1.0, n, dtype=dtype) if n > 1 else torch.zeros(1, dtype=dtype))
    if len(spatial) == 3:
        t = torch.linspace(0.0, 1.0, spatial[0], dtype=dtype) if spatial[0] > 1 else torch.zeros(1, dtype=dtype)
        tt, yy, xx = torch.meshgrid(t, axes[1], axes[2], indexing="ij")
        return tt, yy, xx
    yy, xx = torch.meshgrid(axes[0], axes[1], indexing="ij")
    return torch.zeros_like(yy), yy, xx


def _motif(name, yy, xx, phase):
    """A smooth pattern in [0, 1] (soft edges: the means stay smooth at every size)."""
    r = torch.sqrt(xx ** 2 + yy ** 2)
    soft = lambda z: torch.sigmoid(6.0 * z)  # noqa: E731 - soft step, keeps patterns smooth
    if name == "disc":
        return soft(0.55 - r)
    if name == "stripes":
        return 0.5 + 0.5 * torch.cos(math.pi * 2.5 * yy + phase)
    if name == "ring":
        return soft(0.25 - (r - 0.55).abs())
    if name == "diagonal":
        return soft((xx + yy) * 1.5)
    if name == "checker":
        return 0.5 + 0.5 * torch.cos(math.pi * 1.5 * xx + phase) * torch.cos(math.pi * 1.5 * yy)
    if name == "cross":
        return torch.maximum(soft(0.25 - xx.abs()), soft(0.25 - yy.abs()))
    if name == "blob2":
        return soft(0.35 - torch.sqrt((xx - 0.45) ** 2 + yy ** 2)) + soft(0.35 - torch.sqrt((xx + 0.45) ** 2 + yy ** 2))
    return 0.5 + 0.5 * xx  # gradient


def component_means(num_components, num_classes, channels, spatial, seed=0, dtype=torch.float64):
    """Means of shape (K, C, *spatial) with values in about [-1, 1].

    Component k belongs to class k % num_classes and uses that class's motif.
    """
    gen = torch.Generator().manual_seed(int(seed))
    tt, yy, xx = _grid(tuple(spatial), dtype)
    means = []
    for k in range(num_components):
        cls = k % num_classes
        shift = (torch.rand(2, generator=gen, dtype=dtype) - 0.5) * 0.5
        phase = float(torch.rand(1, generator=gen, dtype=dtype)) * math.pi
        drift = 0.3 * tt  # the motif moves with the frame index in video latents
        pattern = _motif(MOTIFS[cls % len(MOTIFS)], yy - shift[0] - drift, xx - shift[1] + drift, phase)
        fg = torch.rand(channels, generator=gen, dtype=dtype) * 1.6 - 0.8
        bg = -0.7 * fg + (torch.rand(channels, generator=gen, dtype=dtype) - 0.5) * 0.4  # contrasting background
        view = (channels,) + (1,) * pattern.ndim
        img = bg.view(view) + (fg - bg).view(view) * pattern.unsqueeze(0)
        means.append(img)
    return torch.stack(means)
