"""Optimised schedules for the accuracy benchmark (issue #9): the pack's Schedule Optimizer
(schedulers/optimize.py, the same trace -> DP starts -> coordinate-descent refinement the
SamplerLabScheduleOptimizer node runs) fitted per (mixture, parameterisation, cfg, NFE, sampler)
on CALIBRATION noises -- seeds disjoint from the benchmark's evaluation noise -- then handed to the
benchmark, which runs the sampler with that schedule through ComfyUI on its own noise.

The fit calls the sampler functions directly on the lab model's exact (guided) denoiser in float32
(pure torch: ~100x cheaper than a ComfyUI round trip per call) and scores each candidate schedule by
the median per-sample RMSE against the exact ODE solution (lab.reference_solution) of the calibration
noises. Cheap optimizer settings (GRID points, PASSES, SPAN); results are cached in
bench/results/optimized_schedules.json keyed by every setting that changes them.
"""
import json
import os

import torch

from bench import common

SAMPLERS = ("lab_dpmpp2m_unic", "lab_plms", "lab_plms_unic", "ipndm", "ipndm_v")   # strongest pack and core samplers
SCHEDULER = "lab_optimizer"      # name under which the pairs appear (a pack scheduler: lab_ prefix);
#                                  bench/accuracy.py OPTIMIZED_SCHEDULER repeats it
GRID = {"ve": 64, "flow": 96}     # candidate sigmas (log-uniform in the VE-equivalent sigma) + the 0;
#                                  flow spans ~15 e-folds of VE sigma (eps ~6), hence more points
PASSES, SPAN = 2, 3              # coordinate-descent passes and index span per move
CAL_BATCH = 24                    # calibration noises per mixture
CAL_SEED = 5000                  # calibration noise seed base (evaluation noise uses 1000 * seed + ...)
VERSION = 4                      # bump when the procedure changes (invalidates the cache)
QUICK = {"SAMPLERS": ("lab_dpmpp2m_unic",), "GRID": {"ve": 24, "flow": 32}, "PASSES": 1, "SPAN": 2,
         "CAL_BATCH": 4}               # smoke-test settings (--quick)


def configure(quick):
    """Switch to the smoke-test settings (before the worker processes fork)."""
    if quick:
        globals().update(QUICK)


CACHE_NAME = "optimized_schedules.json"   # in the output folder (bench/results by default)


class _Model:
    """k-diffusion model on the exact denoiser; exposes model_sampling like ComfyUI's wrapper."""

    def __init__(self, denoise, model_sampling):
        self.denoise = denoise
        self.inner_model = type("Inner", (), {"model_sampling": model_sampling,
                                              "inner_model": type("M", (), {"model_sampling": model_sampling})()})()

    def __call__(self, x, sigma, **extra_args):
        s = sigma.reshape(-1)[0] if torch.is_tensor(sigma) else sigma
        return self.denoise(x, float(s)).to(x.dtype)


def _sampler_fn(name, kind):
    """(fn(model, x, sigmas) -> x) calling the pack sampler or ComfyUI's own function directly."""
    import comfy.samplers
    spec = common.load_comfy().samplers.SAMPLERS.get(name)
    if spec is not None:
        return lambda m, x, s: spec.fn(m, x, s, extra_args={}, callback=None, disable=True,
                                       model_kind=kind, **spec.options)
    ks = comfy.samplers.sampler_object(name)
    return lambda m, x, s: ks.sampler_function(m, x, s, extra_args={}, callback=None, disable=True,
                                               **ks.extra_options)


def load_cache(out):
    try:
        with open(os.path.join(out, CACHE_NAME), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def cache_key(mix_index, param, cfg, nfe, sampler, steps):
    grid = GRID["flow" if param == "flow" else "ve"]
    return f"v{VERSION}|mix{mix_index}|{param}|cfg{cfg:g}|nfe{nfe}|{sampler}|steps{steps}|grid{grid}|" \
           f"p{PASSES}s{SPAN}|cal{CAL_SEED}x{CAL_BATCH}"


def save_cache(out, entries):
    """Merge new entries into the cache file (each worker returns its entries; the parent saves)."""
    data = {k: v for k, v in load_cache(out).items() if k.startswith(f"v{VERSION}|")}   # drop stale versions
    data.update(entries)
    common.write_json(os.path.join(out, CACHE_NAME), data)


class Calibration:
    """One unit's calibration problem: noises, exact references and the traced grid."""

    def __init__(self, unit, kind):
        from lab import reference_solution
        opt = common.load_comfy().schedulers.optimize
        candidate_grid, trace = opt.candidate_grid, opt.trace
        ms = unit.model_sampling
        self.kind = kind
        self.grid = candidate_grid(float(ms.sigma_max), float(ms.sigma_min), GRID[kind], kind)
        gen = torch.Generator().manual_seed(CAL_SEED + 17 * unit.mix_index + 1)
        noise = torch.randn((CAL_BATCH,) + tuple(unit.noise.shape[1:]), generator=gen, dtype=torch.float64)
        s0 = float(self.grid[0])
        x = noise * s0 if kind == "ve" else noise      # flow: sigma_max = 1 starts at pure noise
        self.x = x
        self.denoise = unit.calibration_denoise(CAL_BATCH)
        self.ref = reference_solution(self.denoise, x, s0, 0.0, steps=512).to(torch.float32)
        self.states, self.denoised = trace(self.denoise, x, self.grid, kind, substeps=2)
        self.model = _Model(self.denoise, ms)
        self.x32 = x.to(torch.float32)

    def error(self, fn, sigmas):
        out = fn(self.model, self.x32.clone(), sigmas.to(torch.float32))
        d = (out.to(torch.float64) - self.ref.to(torch.float64)).flatten(1).pow(2).mean(1).sqrt()
        return float(d.median()) if bool(torch.isfinite(d).all()) else float("inf")


def optimise(cal, sampler, steps, baseline=None):
    """(sigmas float32 with steps + 1 values ending at 0, calibration median RMSE)."""
    pack = common.load_comfy()
    refine, start_paths = pack.schedulers.optimize.refine, pack.schedulers.optimize.start_paths
    finish = pack.schedulers.common.finish
    fn = _sampler_fn(sampler, cal.kind)
    memo = {}

    def evaluate(path):
        key = tuple(path)
        if key not in memo:
            memo[key] = cal.error(fn, cal.grid[list(path)])
        return memo[key]
    starts = start_paths(cal.grid, cal.states, cal.denoised, steps, cal.kind, baseline)
    scored = sorted((evaluate(p), p) for p in starts)
    path, err = refine(scored[0][1], evaluate, passes=PASSES, span=SPAN)
    return finish(cal.grid[path].to(torch.float64)[:-1]), err


def settings():
    """What the output states about the optimised pairs."""
    return {"scheduler": SCHEDULER, "samplers": list(SAMPLERS), "grid_points": GRID, "passes": PASSES,
            "span": SPAN, "calibration_noises_per_mixture": CAL_BATCH, "calibration_seed": CAL_SEED,
            "version": VERSION}
