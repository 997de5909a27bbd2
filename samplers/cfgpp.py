"""CFG++ (Chung et al. 2024, "CFG++: Manifold-constrained Classifier Free Guidance", arXiv:2406.08070).

A CFG++ step moves to the next noise level with the GUIDED data estimate D but re-noises with the
UNCONDITIONAL noise estimate eps_u = (x - alpha D_u) / beta (paper Alg. 1, eq. 9 in DDIM form):
    x_next = alpha_next D + beta_next eps_u.
ComfyUI's scale convention is kept: D = D_u + cfg (D_c - D_u) with the user's cfg (as in core's
*_cfg_pp samplers), so one cfg value means the same in core and in the pack.

Generic construction (no change to the base sampler): every first-order step of the samplers here
(Euler / DDIM in ComfyUI's x-space, VE and flow alike) is x_next = r x + (alpha_next - r alpha) D'
with r = beta_next / beta. Handing the sampler the substituted denoised
    D' = D + r alpha (D - D_u) / (alpha_next - r alpha)
makes that step exactly the CFG++ step above (solve the two expressions for D'). "next" is the
next lower sigma of the schedule. For higher-order and multistep samplers the same D' is what
their stages and history see: the first-order part of each step is exactly CFG++, the higher-order
corrections act on D' differences (measured in tests/test_cfgpp.py). At cfg = 1 (D = D_u) D' = D
bit for bit, so every _cfg_pp variant equals its base sampler. No extra model calls.
"""
import torch

from .common import alpha_beta


def next_sigma(sigmas, sigma):
    """The first schedule value strictly below sigma (0 if none)."""
    below = sigmas[sigmas < sigma * (1 - 1e-6)]
    return below[0] if below.numel() else sigmas.new_zeros(())


def substituted_denoised(denoised, uncond, sigma, sigma_next, model_kind):
    """D' for one step sigma -> sigma_next (see module docstring); D itself for the final step to 0."""
    if float(sigma_next) <= 0.0:
        return denoised
    a, b = alpha_beta(model_kind, sigma)
    an, bn = alpha_beta(model_kind, sigma_next)
    r = bn / b
    return denoised + (r * a / (an - r * a)) * (denoised - uncond)


class CFGPPModel:
    """Wraps a k-diffusion model so that any sampler steps in CFG++ form.

    uncond() returns the unconditional denoised of the last call (the bridge captures it with a
    sampler_post_cfg_function). Same call signature as the wrapped model; no extra model calls.
    """

    def __init__(self, model, uncond, sigmas, model_kind):
        self.model, self.uncond, self.model_kind = model, uncond, model_kind
        self.sigmas = sigmas
        self.inner_model = getattr(model, "inner_model", None)

    def __call__(self, x, sigma, **extra_args):
        denoised = self.model(x, sigma, **extra_args)
        s = sigma.reshape(-1)[0] if torch.is_tensor(sigma) else torch.as_tensor(sigma)
        s_next = next_sigma(self.sigmas.to(s.device), s)
        return substituted_denoised(denoised, self.uncond(), s.to(denoised.dtype), s_next.to(denoised.dtype), self.model_kind)


def cfg_pp_variant(fn):
    """A sampler function running fn in CFG++ form; needs the `uncond` getter the bridge passes."""
    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve", uncond=None, **options):
        if uncond is None:
            raise ValueError("a _cfg_pp sampler needs the unconditional prediction (uncond); run it through ComfyUI")
        wrapped = CFGPPModel(model, uncond, sigmas, model_kind)
        return fn(wrapped, x, sigmas, extra_args=extra_args, callback=callback, disable=disable,
                  model_kind=model_kind, **options)
    sample.__doc__ = f"CFG++ form of {getattr(fn, '__name__', 'a sampler')} (samplers/cfgpp.py). Same model calls."
    return sample


def step_denoised(denoised, uncond, sigma, target, model_kind):
    """D' of substituted_denoised for a step from sigma to `target` given as floats, for samplers whose
    steps do not land on the schedule (restart segments, adaptive steps). D itself when the step is
    not a move down (target <= 0 is the exact final step; target >= sigma is a zero-length step)."""
    if not 0.0 < target < sigma:
        return denoised
    return substituted_denoised(denoised, uncond, sigma, target, model_kind).to(denoised.dtype)


class PlannedCFGPPModel:
    """Model wrapper for samplers that choose their own steps (adaptive step control).

    Before the model calls of an attempted step the sampler queues one (sigma, target) pair of floats
    per call: the call's sigma and the sigma that call's step ends at. Each call's denoised is then
    substituted (step_denoised), so every stage of the step sees the CFG++ D'. A call with nothing
    queued returns the guided D unchanged. `raw` holds the last call's unsubstituted (D, D_u), so a
    stage reused by a later step (an FSAL stage) can be substituted again for that step's target;
    `raws` those of every call since the last plan(). No extra model calls.
    """

    def __init__(self, model, uncond, model_kind):
        self.model, self.uncond, self.model_kind = model, uncond, model_kind
        self.inner_model = getattr(model, "inner_model", None)
        self.queue, self.raw, self.raws = [], None, []

    def plan(self, pairs):
        """Queue (sigma, target) for the next calls, in call order."""
        self.queue, self.raws = list(pairs), []

    def __call__(self, x, sigma, **extra_args):
        denoised = self.model(x, sigma, **extra_args)
        self.raw = (denoised, self.uncond())
        self.raws.append(self.raw)
        if not self.queue:
            return denoised
        s, target = self.queue.pop(0)
        return step_denoised(denoised, self.raw[1], s, target, self.model_kind)
