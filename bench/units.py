"""The two benchmark models as 'units' (one parameterisation and cfg each), both run through ComfyUI's
CFGGuider exactly as a KSampler runs them, with every guided model evaluation counted:

- MixtureUnit: the exact Gaussian-mixture Lab Model; reference = its exact PF-ODE solution (float64 RK4,
  lab.reference_solution) from the latent ComfyUI hands the sampler; mode = nearest mixture component.
- LabNetUnit: the learned Lab Net; reference = the guided learned model's own PF-ODE solution through
  ComfyUI, to the model's sigma_min, then its denoised; mode = the digit scorer's class. eps: ComfyUI feeds
  the network the NEAREST of its 1000 timesteps, so the denoiser jumps in sigma: Heun's rule restarted at
  every jump (lab.reference.piecewise_reference_solution, one step per timestep). flow: the timestep is
  continuous (sigma x 1000): RK4 uniform in log sigma. Self-error = RMSE to one with twice the steps.
"""
import time

import torch

from bench import common

MIXTURES = (  # different seeds, component counts and spreads: nothing is tuned to one
    {"components": 6, "classes": 3, "spread": 0.15, "seed": 0},
    {"components": 4, "classes": 2, "spread": 0.30, "seed": 1},
    {"components": 12, "classes": 4, "spread": 0.08, "seed": 2},
)
MIXTURE_CLASS = 1
FLOW_SHIFT = 3.0


class GuidedUnit:
    """Shared: run a SAMPLER object on this unit's noise with counted evaluations."""
    patcher = pos = neg = cfg = noise = model_sampling = None

    def run(self, sampler, sigmas, noise=None):
        """(output latent, counted guided evaluations, seconds, first model input)."""
        import comfy.samplers
        box = {"n": 0, "first": None}

        def count(args):
            box["n"] += 1
            if box["first"] is None:
                box["first"] = args["input"].detach().clone()
            return args["denoised"]
        patcher = self.patcher.clone()
        patcher.set_model_sampler_post_cfg_function(count)
        guider = comfy.samplers.CFGGuider(patcher)
        guider.set_conds(self.pos, self.neg)
        guider.set_cfg(self.cfg)
        noise = self.noise if noise is None else noise
        t0 = time.perf_counter()
        with torch.no_grad():   # as ComfyUI executes prompts; not every sampler function disables autograd itself
            out = guider.sample(noise, torch.zeros_like(noise), sampler, sigmas, disable_pbar=True, seed=0)
        return out, box["n"], time.perf_counter() - t0, box["first"]

    def optimizer_conds(self):
        """(positive, negative) with one row: what a user wires into the Schedule Optimizer node."""
        return [[self.pos[0][0][:1], dict(self.pos[0][1])]], [[self.neg[0][0][:1], dict(self.neg[0][1])]]


class LabNetUnit(GuidedUnit):
    family = "labnet"
    REFERENCE_STEPS = 320        # flow: RK4 steps in log sigma (4 calls each); eps: one Heun step per timestep

    def __init__(self, parameterization, cfg, batch, seed=0, quick=False):
        from lab import labnet
        self.parameterization, self.cfg, self.batch = parameterization, cfg, batch
        self.piecewise = parameterization == "eps" and not quick   # smoke runs: the cheap log-sigma RK4
        self.log_steps = 160 if quick else self.REFERENCE_STEPS
        self.patcher, _ = common.node("SamplerLabNetLoader").load(parameterization, labnet.FLOW_SHIFT)
        self.model_sampling = self.patcher.get_model_object("model_sampling")
        self.digits = [k % 10 for k in range(batch)] if cfg != 1.0 else [-1] * batch
        self.pos = [[labnet.class_context(self.digits), {}]]
        self.neg = [[labnet.class_context([-1] * batch), {}]]
        gen = torch.Generator().manual_seed(7000 + 100 * seed + 10 * ("eps", "flow").index(parameterization) + int(cfg))
        self.noise = torch.randn((batch, labnet.LATENT_CHANNELS, labnet.LATENT_SIZE, labnet.LATENT_SIZE), generator=gen)
        self._refs = {}

    def reference(self, sigmas, fine=False):
        """The reference from this schedule's first sigma; fine=True: twice the steps (self-error)."""
        import comfy.samplers
        key = (round(float(sigmas[0]), 6), fine)
        if key not in self._refs:
            stop = float(self.model_sampling.sigma_min)
            if self.piecewise:
                from lab.reference import nearest_timestep_breakpoints
                fn = piecewise_heun(nearest_timestep_breakpoints(self.model_sampling.log_sigmas), 2 if fine else 1, stop)
            else:
                fn = log_sigma_rk4(self.log_steps * (2 if fine else 1), stop)
            out, _, _, _ = self.run(comfy.samplers.KSAMPLER(fn), sigmas)
            self._refs[key] = out.to(torch.float64)
        return self._refs[key]

    def reference_label(self):
        if self.piecewise:
            return "Heun restarted at each of the 1000 timestep jumps, 1 step (2 calls) per timestep"
        return f"RK4 in log sigma, {self.log_steps} steps"

    def modes(self, latent):
        from lab import labnet
        from lab.digit_scorer import load_scorer
        scorer = _SCORER.setdefault("s", load_scorer())
        with torch.no_grad():
            return scorer(labnet.latent_to_pixels(latent.float()).clamp(-1, 1)).argmax(1)


_SCORER = {}


def piecewise_heun(breakpoints, steps_per_piece, sigma_stop):
    """A KSAMPLER function: lab.reference.piecewise_reference_solution with Heun's rule (order 2, 2 calls per
    step) restarted at each breakpoint, from sigmas[0] down to sigma_stop; returns D(x, sigma_stop). Ignores
    the inner sigmas. Heun, not RK4: the pieces are ~0.006 wide in log sigma, where Heun per piece is within
    6e-6 (max of 10 samples, cfg 3) of RK4 per piece (itself within 9e-7 of two RK4 steps per piece), at
    half the calls."""
    from lab.reference import heun_step, piecewise_reference_solution
    return _reference_sampler(lambda denoise, x, start: piecewise_reference_solution(
        denoise, x, start, sigma_stop, breakpoints, steps_per_piece, step=heun_step), sigma_stop)


def _reference_sampler(solve, sigma_stop):
    @torch.no_grad()
    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None):
        extra_args = extra_args or {}
        s_in = x.new_ones([x.shape[0]])

        def denoise(xx, sigma):
            return model(xx.float(), s_in * sigma, **extra_args).to(torch.float64)
        x = solve(denoise, x, float(sigmas[0]))
        return model(x.float(), s_in * sigma_stop, **extra_args)
    return sample


def log_sigma_rk4(steps, sigma_stop):
    """A KSAMPLER function: lab.reference_solution's RK4 in log sigma (order 4, 4 calls per step) on the
    model ComfyUI hands a sampler, from sigmas[0] down to sigma_stop; returns D(x, sigma_stop). Ignores
    the inner sigmas."""
    from lab import reference_solution
    return _reference_sampler(lambda denoise, x, start: reference_solution(
        denoise, x, start, sigma_stop, steps=steps), sigma_stop)


class MixtureUnit(GuidedUnit):
    family = "mixture"
    REFERENCE_STEPS = 1024       # float64 RK4 on the exact denoiser: error ~1e-8

    def __init__(self, parameterization, cfg, batch, mix_index=0, seed=0):
        from lab import default_mixture
        self.parameterization, self.cfg, self.batch, self.mix_index = parameterization, cfg, batch, mix_index
        m = MIXTURES[mix_index]
        self.patcher = common.node("SamplerLabModel").build(
            parameterization, FLOW_SHIFT, m["components"], m["classes"], m["spread"], m["seed"], "float32")[0]
        self.model_sampling = self.patcher.get_model_object("model_sampling")
        self.pos, self.neg = common.node("SamplerLabConditioning").encode(MIXTURE_CLASS if cfg != 1.0 else -1)
        self.mixture = default_mixture((4, 8, 8), m["components"], m["classes"], m["spread"], m["seed"])
        cw = None
        if cfg != 1.0:
            cw = torch.nn.functional.one_hot(torch.full((batch,), MIXTURE_CLASS), m["classes"]).to(torch.float64)
        self.denoise = self.mixture.denoiser(parameterization, class_weights=cw, cfg=cfg)
        gen = torch.Generator().manual_seed(1000 * seed + 17 * mix_index + 1)
        self.noise = torch.randn((batch, 4, 8, 8), generator=gen)
        self._refs = {}

    def x_start(self, sigmas):
        """The latent ComfyUI's KSAMPLER hands the sampler (its own noise_scaling and max_denoise)."""
        import comfy.samplers
        from types import SimpleNamespace
        wrap = SimpleNamespace(inner_model=SimpleNamespace(model_sampling=self.model_sampling))
        max_denoise = comfy.samplers.KSAMPLER(None).max_denoise(wrap, sigmas)
        return self.model_sampling.noise_scaling(sigmas[0], self.noise, torch.zeros_like(self.noise), max_denoise)

    def reference(self, sigmas, fine=False):
        """The reference from this schedule's first sigma; fine=True: twice the steps (self-error)."""
        from lab import reference_solution
        key = (round(float(sigmas[0]), 6), fine)
        if key not in self._refs:
            self._refs[key] = reference_solution(self.denoise, self.x_start(sigmas), float(sigmas[0]), 0.0,
                                                 steps=self.REFERENCE_STEPS * (2 if fine else 1))
        return self._refs[key]

    def reference_label(self):
        return f"exact denoiser, float64 RK4 in log sigma, {self.REFERENCE_STEPS} steps"

    def modes(self, latent):
        return self.mixture.nearest(latent.to(torch.float64))[0]


def make_units(family, parameterization, cfg, batch, quick=False):
    if family == "labnet":
        return [LabNetUnit(parameterization, cfg, batch, quick=quick)]
    mixes = range(len(MIXTURES)) if not quick else range(1)
    return [MixtureUnit(parameterization, cfg, batch, i) for i in mixes]
