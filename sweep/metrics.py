"""Convergence metrics (pure torch) and the recommended step count.

- latent RMSE and RMSE relative to the reference's RMS (scale-free across models);
- PSNR (dB) and SSIM (Wang et al. 2004, "Image quality assessment: from error visibility to
  structural similarity", eq. 13: Gaussian window 11x11, sigma 1.5, K1 = 0.01, K2 = 0.03)
  on images in [0, 1] shaped (N, H, W, C).
"""
import math

import torch


def latent_rmse(a, b):
    """Root mean square difference (float64)."""
    d = a.detach().to(torch.float64) - b.detach().to(b.device, torch.float64).to(a.device)
    return float(d.pow(2).mean().sqrt())


def latent_distances(latents, reference):
    """(rmse, rmse relative to the reference's RMS) of each of K latents stacked as (K, *ref.shape),
    in one pass (float64): two lists of K floats. The sweep measures a whole batch of cells at once."""
    ref = reference.detach().to(latents.device, torch.float64)
    d = latents.detach().to(torch.float64) - ref
    rmse = d.pow(2).flatten(1).mean(1).sqrt()
    rel = rmse / ref.pow(2).mean().sqrt().clamp(min=1e-12)
    return rmse.tolist(), rel.tolist()


def relative_rmse(a, reference):
    """RMSE(a, reference) / RMS(reference); 0 means identical."""
    ref = reference.detach().to(torch.float64)
    scale = float(ref.pow(2).mean().sqrt())
    return latent_rmse(a, ref) / max(scale, 1e-12)


def psnr(img, ref, peak=1.0):
    """Peak signal-to-noise ratio in dB (inf when identical)."""
    mse = float((img.to(torch.float64) - ref.to(torch.float64)).pow(2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def psnr_groups(img, ref, groups, peak=1.0):
    """PSNR (dB) of consecutive groups of images: img (G*n, H, W, C) against ref (n, H, W, C),
    groups = G. One value per group, over all of its images (inf when identical)."""
    x = img.to(torch.float64).reshape(groups, -1, *img.shape[1:])
    mse = (x - ref.to(torch.float64).to(x.device)).pow(2).reshape(groups, -1).mean(1).tolist()
    return [math.inf if m == 0 else 10.0 * math.log10(peak * peak / m) for m in mse]


def _gauss_window(size=11, sigma=1.5, dtype=torch.float64):
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return g / g.sum()


def _blur_valid(t, taps):
    """Separable filter, 'valid' region, as weighted sums of shifted views (much faster than a
    grouped conv2d on CPU, no large temporaries)."""
    size = len(taps)
    h = t.shape[-2] - size + 1
    a = t[..., 0:h, :] * taps[0]
    for k in range(1, size):
        a.add_(t[..., k:k + h, :], alpha=taps[k])
    w = t.shape[-1] - size + 1
    b = a[..., 0:w] * taps[0]
    for k in range(1, size):
        b.add_(a[..., k:k + w], alpha=taps[k])
    return b


def ssim(img, ref, peak=1.0, window=11, sigma=1.5):
    """Mean SSIM over pixels, channels and images. img, ref: (N, H, W, C) in [0, peak]."""
    return float(ssim_each(img, ref, peak, window, sigma).mean())


def ssim_each(img, ref, peak=1.0, window=11, sigma=1.5):
    """Mean SSIM of each image (float64 tensor (N,)); ref broadcasts over img's leading dimension
    when it holds one image set for several (the sweep measures many cells against one reference).

    Computed in float32 (plenty for values in [0, 1]) with one separable Gaussian filter pass (shifted sums)
    over all five local statistics at once. Images smaller than the window use a window that
    fits (SSIM is then less local)."""
    x = img.to(torch.float32).movedim(-1, 1).contiguous()
    ref = ref.to(torch.float32).to(x.device)
    if ref.shape[0] != img.shape[0]:                 # one reference image set for several cells
        ref = ref.repeat(img.shape[0] // ref.shape[0], *([1] * (ref.ndim - 1)))
    y = ref.movedim(-1, 1).contiguous()
    n, c, h, w = x.shape
    size = max(1, min(window, h, w))
    if size % 2 == 0:
        size -= 1
    g = _gauss_window(size, sigma, torch.float64)
    maps = _blur_valid(torch.cat([x, y, x * x, y * y, x * y], dim=1), [float(v) for v in g])   # (N, 5C, H', W')
    mx, my, exx, eyy, exy = maps.split(c, dim=1)                      # 'valid' region, as in the paper's code
    sxx, syy, sxy = exx - mx * mx, eyy - my * my, exy - mx * my
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    return (num / den).to(torch.float64).flatten(1).mean(1)


def recommended_steps(points, tolerance):
    """Smallest step count from which every larger swept count stays within tolerance.

    points: [(steps, error)] with error None for failed cells (ignored). Returns None when
    no count qualifies (the largest one is still above tolerance)."""
    pts = sorted((s, e) for s, e in points if e is not None and not math.isnan(e))
    best = None
    for steps, err in reversed(pts):
        if err <= tolerance:
            best = steps
        else:
            break
    return best
