"""The digit scorer: a small CNN classifier for Lab Net's 16x16 digits, used to score samples.

Two scores (pure torch; the trained weights ship in lab/labnet_weights/digit_scorer.safetensors,
made by scripts/train_labnet.py, with the held-out digits' feature statistics stored beside them):
- class accuracy: the share of class-conditional samples the classifier recognises as their class;
- FD-digits: the Frechet distance (Heusel et al. 2017, eq. 6, as FID) between Gaussians fitted to
  the classifier's 32-d penultimate features of the samples and of held-out real digits.
"""
import os

import torch
from torch import nn

from .labnet import DIGITS, LabNetError, SCORER_FILE, WEIGHTS_DIR

FEATURES = 32


class DigitScorer(nn.Module):
    """(B, 1, 16, 16) pixels in [-1, 1] -> logits (B, 10); `features` gives the 32-d embedding."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.GELU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.GELU(), nn.AvgPool2d(2),       # 8x8
            nn.Conv2d(32, 64, 3, padding=1), nn.GELU(), nn.AvgPool2d(2),       # 4x4
            nn.Flatten(), nn.Linear(64 * 16, FEATURES), nn.GELU())
        self.head = nn.Linear(FEATURES, DIGITS)
        # held-out digits' feature statistics (FD-digits reference), filled by the training script
        self.register_buffer("ref_mean", torch.zeros(FEATURES, dtype=torch.float64))
        self.register_buffer("ref_cov", torch.eye(FEATURES, dtype=torch.float64))

    def features(self, pixels):
        return self.body(pixels.to(self.head.weight.dtype))

    def forward(self, pixels):
        return self.head(self.features(pixels))


def load_scorer(path=None, device=None):
    from safetensors.torch import load_file
    path = path or os.path.join(WEIGHTS_DIR, SCORER_FILE)
    if not os.path.isfile(path):
        raise LabNetError(f"digit scorer weights missing at {path}: reinstall the pack "
                          f"(or run scripts/train_labnet.py to make them)")
    scorer = DigitScorer()
    scorer.load_state_dict(load_file(path))
    return scorer.to(device).eval()


def gaussian_stats(features):
    f = features.to(torch.float64)
    return f.mean(0), torch.cov(f.T)


def _sqrtm_psd(m):
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(mean1, cov1, mean2, cov2):
    """|m1 - m2|^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2): the symmetric form of FID's trace term."""
    s1 = _sqrtm_psd(cov1)
    cross = _sqrtm_psd(s1 @ cov2 @ s1)
    return float(((mean1 - mean2) ** 2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * torch.trace(cross))


@torch.no_grad()
def score_digits(scorer, pixels, labels=None):
    """{'accuracy': share recognised as `labels` (None if no labels), 'fd_digits': FD to held-out digits}."""
    if pixels.ndim != 4 or pixels.shape[1:] != (1, 16, 16):
        raise LabNetError(f"score_digits needs (B, 1, 16, 16) pixels in [-1, 1], got {tuple(pixels.shape)}")
    if pixels.shape[0] < 2:
        raise LabNetError("score_digits needs at least 2 images for a Frechet distance")
    feats = scorer.features(pixels.to(scorer.head.weight.device))
    acc = None
    if labels is not None:
        pred = scorer.head(feats).argmax(1).cpu()
        acc = float((pred == torch.as_tensor(labels).reshape(-1)).double().mean())
    m, c = gaussian_stats(feats)
    return {"accuracy": acc, "fd_digits": frechet_distance(m, c, scorer.ref_mean.to(m), scorer.ref_cov.to(c))}
