"""Closed-form posterior mean of an isotropic Gaussian mixture.

Data x0 ~ sum_k w_k N(mu_k, s_k^2 I), corrupted as x = alpha * x0 + beta * n, n ~ N(0, I).
Per component, x | k ~ N(alpha mu_k, v_k I) with v_k = alpha^2 s_k^2 + beta^2, and
  E[x0 | x, k] = mu_k + (alpha s_k^2 / v_k) (x - alpha mu_k)
               = (beta^2 / v_k) mu_k + (alpha s_k^2 / v_k) x.
Responsibilities r_k(x) are a softmax of log w_k - d/2 log v_k - |x - alpha mu_k|^2 / (2 v_k)
(log-sum-exp, float64), so the denoiser is exact and stable from beta ~ 0 to any sigma_max.
VE (eps and v models in ComfyUI's x-space): alpha = 1, beta = sigma.
Flow / CONST (SD3, Flux, Wan): alpha = 1 - sigma, beta = sigma.
"""
import torch


class LabMixtureError(ValueError):
    """Bad lab-model settings; the message names the input and the fix."""


PARAMETERIZATIONS = ("eps", "v", "flow")


def alpha_beta(parameterization, sigma):
    """Signal and noise scales of ComfyUI's x-space for a model parameterisation."""
    if parameterization in ("eps", "v"):
        return torch.ones_like(sigma), sigma
    if parameterization == "flow":
        return 1.0 - sigma, sigma
    raise LabMixtureError(
        f"parameterization {parameterization!r} is unknown: use one of {', '.join(PARAMETERIZATIONS)}")


class GaussianMixture:
    """K isotropic Gaussians over latents of one shape, each tagged with a class."""

    def __init__(self, means, stds, weights=None, classes=None, num_classes=None):
        if means.ndim < 2 or means.shape[0] == 0:
            raise LabMixtureError("components must be at least 1 (means has no components)")
        k = means.shape[0]
        self.means = means.to(torch.float64)
        self.shape = tuple(means.shape[1:])
        self.dim = self.means[0].numel()
        self.stds = torch.as_tensor(stds, dtype=torch.float64).expand(k).clone()
        if not torch.all(torch.isfinite(self.stds)) or torch.any(self.stds <= 0):
            raise LabMixtureError("spread (component std) must be a positive finite number, e.g. 0.15")
        w = torch.ones(k, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (k,) or torch.any(w <= 0):
            raise LabMixtureError("weights must be one positive number per component")
        self.log_weights = (w / w.sum()).log()
        self.classes = torch.zeros(k, dtype=torch.long) if classes is None else torch.as_tensor(classes, dtype=torch.long)
        self.num_classes = int(num_classes if num_classes is not None else int(self.classes.max()) + 1)
        if self.num_classes < 1:
            raise LabMixtureError("classes must be at least 1")
        self._flat = self.means.reshape(k, -1)
        self._sq = (self._flat ** 2).sum(1)

    @property
    def num_components(self):
        return self.means.shape[0]

    def _class_log_mask(self, class_weights, batch, device):
        """log of per-sample component weight multipliers; rows of zeros mean unconditional."""
        if class_weights is None:
            return torch.zeros(batch, self.num_components, dtype=torch.float64, device=device)
        cw = class_weights.to(device=device, dtype=torch.float64).reshape(batch, -1)[:, : self.num_classes]
        if cw.shape[1] < self.num_classes:
            cw = torch.nn.functional.pad(cw, (0, self.num_classes - cw.shape[1]))
        uncond = cw.abs().sum(1, keepdim=True) == 0
        cw = torch.where(uncond, torch.ones_like(cw), cw.clamp(min=0))
        per_comp = cw[:, self.classes.to(device)]
        return per_comp.log()

    def denoise(self, x, alpha, beta, class_weights=None):
        """E[x0 | x] for a batch x of shape (B, *shape); alpha, beta: scalars or (B,)."""
        b = x.shape[0]
        if tuple(x.shape[1:]) != self.shape:
            raise LabMixtureError(f"latent shape {tuple(x.shape[1:])} does not match the mixture's {self.shape}")
        dev = x.device
        xf = x.reshape(b, -1).to(torch.float64)
        a = torch.as_tensor(alpha, dtype=torch.float64, device=dev).reshape(-1, 1).expand(b, 1)
        bt = torch.as_tensor(beta, dtype=torch.float64, device=dev).reshape(-1, 1).expand(b, 1)
        mu, sq = self._flat.to(dev), self._sq.to(dev)
        s2 = (self.stds.to(dev) ** 2).unsqueeze(0)                # (1, K)
        v = a ** 2 * s2 + bt ** 2                                 # (B, K)
        dist2 = (xf ** 2).sum(1, keepdim=True) - 2 * a * (xf @ mu.T) + a ** 2 * sq.unsqueeze(0)
        logits = self.log_weights.to(dev) + self._class_log_mask(class_weights, b, dev) \
            - 0.5 * self.dim * v.log() - 0.5 * dist2.clamp(min=0) / v
        r = torch.softmax(logits, dim=1)                          # (B, K)
        out = (r * bt ** 2 / v) @ mu + (r * a * s2 / v).sum(1, keepdim=True) * xf
        return out.reshape(x.shape).to(x.dtype)

    def denoiser(self, parameterization, class_weights=None, cfg=1.0, uncond_weights=None):
        """D(x, sigma) in ComfyUI's x-space, optionally with classifier-free guidance
        D_u + cfg (D_c - D_u) (uncond_weights None = the unconditional mixture)."""
        def d(x, sigma):
            sig = torch.as_tensor(sigma, dtype=torch.float64, device=x.device)
            a, b = alpha_beta(parameterization, sig)
            cond = self.denoise(x, a, b, class_weights)
            if cfg == 1.0:
                return cond
            unc = self.denoise(x, a, b, uncond_weights)
            return unc + cfg * (cond - unc)
        return d

    def sample(self, n, generator=None, class_id=None):
        """Draw n exact samples x0 (float64), optionally from one class."""
        logw = self.log_weights.clone()
        if class_id is not None:
            logw = torch.where(self.classes == class_id, logw, torch.full_like(logw, -torch.inf))
        idx = torch.multinomial(torch.softmax(logw, 0), n, replacement=True, generator=generator)
        eps = torch.randn((n,) + self.shape, generator=generator, dtype=torch.float64)
        return self.means[idx] + self.stds[idx].view((n,) + (1,) * len(self.shape)) * eps, idx

    def nearest(self, x0):
        """(component index, distance / (s_k sqrt(d))) of the nearest component, per sample;
        a typical exact sample has normalised distance close to 1."""
        xf = x0.reshape(x0.shape[0], -1).to(torch.float64).cpu()
        d = torch.cdist(xf, self._flat) / (self.stds.unsqueeze(0) * self.dim ** 0.5)
        best = d.argmin(1)
        return best, d.gather(1, best.unsqueeze(1)).squeeze(1)
