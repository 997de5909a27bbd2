"""What a fair accuracy comparison needs, shared by both benchmark models (issue #16):

- the COMPLETE built-in side: every ComfyUI sampler x every core dropdown scheduler, plus every core
  SIGMAS node at its defaults for the model family (`schedule_sources`);
- the pack side: every pack sampler and scheduler, and core samplers on pack schedulers;
- samplers that choose their own steps in a table of their own (`sampler_sources`, kind 'adaptive');
- per pair: mean and median per-sample error with bootstrap 90% intervals, the worst decile (90th
  percentile), and the share of samples that keep the reference's mode (mixture component or digit class);
- ranking by the MEAN; a pair is called better than another only when the intervals clear (`clears`).
"""
import math
import statistics

import torch

# Model calls of ComfyUI 0.3.75's deterministic samplers for n steps on a schedule ending at 0, read from
# comfy/k_diffusion/sampling.py (the last step to 0 is an Euler step for the 2- and 3-stage ones). Every
# run recounts them; a mismatch is reported and not ranked. ddim is euler (sampler_object), *_gpu are the
# same maths as the CPU forms, *_cfg_pp change the target ODE: left out.
CORE_ODE = {
    "euler": lambda n: n, "heun": lambda n: 2 * n - 1, "dpm_2": lambda n: 2 * n - 1,
    "heunpp2": lambda n: 1 if n == 1 else 3 * n - 3, "lms": lambda n: n,
    "dpmpp_2m": lambda n: n, "ipndm": lambda n: n, "ipndm_v": lambda n: n, "deis": lambda n: n,
    "res_multistep": lambda n: n, "gradient_estimation": lambda n: n, "uni_pc": lambda n: n,
    "uni_pc_bh2": lambda n: n,
}
# dpm_fast takes its own inner steps between sigma_max and sigma_min (k-diffusion's DPM-Solver-fast:
# NFE = steps, the schedule's intermediate sigmas are ignored); dpm_adaptive chooses its own NFE.
CORE_ADAPTIVE = {"dpm_fast": lambda n: n, "dpm_adaptive": None}
CORE_SDE = {
    "euler_ancestral": lambda n: n, "dpm_2_ancestral": lambda n: 2 * n - 1,
    "dpmpp_2s_ancestral": lambda n: 2 * n - 1, "dpmpp_sde": lambda n: 2 * n - 1, "dpmpp_2m_sde": lambda n: n,
    "dpmpp_2m_sde_heun": lambda n: n, "dpmpp_3m_sde": lambda n: n, "ddpm": lambda n: n, "lcm": lambda n: n,
    "res_multistep_ancestral": lambda n: n, "er_sde": lambda n: n, "seeds_2": lambda n: 2 * n - 1,
    "seeds_3": lambda n: 3 * n - 2, "sa_solver": lambda n: n, "sa_solver_pece": lambda n: 2 * n - 1,
}
CORE_SCHEDULERS = ("simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
                   "linear_quadratic", "kl_optimal")


def steps_for(nfe_of, nfe):
    """Smallest step count whose planned model calls equal nfe exactly (None if none does)."""
    for n in range(1, nfe + 1):
        if nfe_of(n) == nfe:
            return n
    return None


def sampler_sources(pack, names_now, quick=False):
    """[(name, origin 'pack'/'core', kind 'ode'/'sde'/'adaptive', nfe_of(steps) or None)] in ComfyUI now."""
    out = []
    for spec in pack.samplers.SAMPLERS.values():
        if spec.cfg_pp or spec.name not in names_now:
            continue
        kind = "adaptive" if not spec.follows_schedule else ("sde" if spec.stochastic else "ode")
        out.append((spec.name, "pack", kind, spec.nfe))
    for table, kind in ((CORE_ODE, "ode"), (CORE_SDE, "sde"), (CORE_ADAPTIVE, "adaptive")):
        out += [(n, "core", kind, f) for n, f in table.items() if n in names_now]
    if quick:
        keep = {"euler", "dpmpp_2m", "heun", "uni_pc", "ipndm", "lab_rk4", "lab_dpmpp2m_unic", "lab_plms", "dpm_fast"}
        out = [c for c in out if c[0] in keep]
    return out


def _node_sigmas(node_id, *args):
    """A core SIGMAS node's output, called as ComfyUI calls it (V3 execute, or the V1 function)."""
    import nodes
    cls = nodes.NODE_CLASS_MAPPINGS[node_id]
    if hasattr(cls, "execute") and not hasattr(cls, "FUNCTION"):
        return cls.execute(*args).result[0]
    return getattr(cls(), cls.FUNCTION)(*args)[0]


def _ending_at_zero(sigmas):
    """Core's LaplaceScheduler returns `steps` values ending at sigma_min, with no final 0 (k-diffusion's
    get_sigmas_laplace does not append one, unlike its karras / exponential / polyexponential / VP
    schedules): sampled as given, its `steps - 1` steps end on a latent still noisy at sigma_min. Scored
    here like every other schedule, ending at 0: its `steps` values and a 0 appended make `steps` steps,
    the last from sigma_min to 0 as in core's other schedules (KSampler's own always end at 0)."""
    import torch
    return torch.cat([sigmas, sigmas.new_zeros([1])]) if float(sigmas[-1]) != 0.0 else sigmas


def core_node_schedules(family, model, model_sampling):
    """{'node:<id>': fn(steps) -> sigmas}: core's SIGMAS nodes at their defaults for the model family.

    eps (SD1.5 family): every node at its UI defaults (which are SD1.5's sigma range), AYS and GITS
    with their SD1 tables. flow: the nodes whose defaults are SD1.5 sigmas get the model's own range
    (the defaults would be meaningless), AYS/GITS (SD-only tables) are not offered, OptimalSteps gets
    its FLUX table (the flow family it was fitted on)."""
    smax, smin = float(model_sampling.sigma_max), float(model_sampling.sigma_min)
    rng = (14.614642, 0.0291675) if family == "eps" else (smax, smin)
    out = {
        "node:KarrasScheduler": lambda n: _node_sigmas("KarrasScheduler", n, rng[0], rng[1], 7.0),
        "node:ExponentialScheduler": lambda n: _node_sigmas("ExponentialScheduler", n, rng[0], rng[1]),
        "node:PolyexponentialScheduler": lambda n: _node_sigmas("PolyexponentialScheduler", n, rng[0], rng[1], 1.0),
        "node:LaplaceScheduler": lambda n: _ending_at_zero(_node_sigmas("LaplaceScheduler", n, rng[0], rng[1], 0.0, 0.5)),
        "node:BetaSamplingScheduler": lambda n: _node_sigmas("BetaSamplingScheduler", model, n, 0.6, 0.6),
    }
    if family == "eps":
        out["node:VPScheduler"] = lambda n: _node_sigmas("VPScheduler", n, 19.9, 0.1, 0.001)
        out["node:AlignYourStepsScheduler"] = lambda n: _node_sigmas("AlignYourStepsScheduler", "SD1", n, 1.0)
        out["node:GITSScheduler"] = lambda n: _node_sigmas("GITSScheduler", 1.20, n, 1.0)
        if "SDTurboScheduler" in __import__("nodes").NODE_CLASS_MAPPINGS:
            out["node:SDTurboScheduler"] = lambda n: _node_sigmas("SDTurboScheduler", model, n, 1.0) if n <= 10 else None
    else:
        out["node:OptimalStepsScheduler"] = lambda n: _node_sigmas("OptimalStepsScheduler", "FLUX", n, 1.0) if n >= 3 else None
    return out


def schedule_sources(pack, family, model, model_sampling, quick=False):
    """[(name, origin, fn(steps) -> sigmas or None)]: core dropdown schedulers and SIGMAS nodes (origin
    'core'), the pack's dropdown schedulers (origin 'pack')."""
    import comfy.samplers
    now = list(comfy.samplers.SCHEDULER_NAMES)
    out = [(s, "core", (lambda n, s=s: comfy.samplers.calculate_sigmas(model_sampling, s, n))) for s in CORE_SCHEDULERS
           if s in now]
    out += [(k, "core", f) for k, f in core_node_schedules(family, model, model_sampling).items()]
    out += [(s, "pack", (lambda n, s=s: comfy.samplers.calculate_sigmas(model_sampling, s, n)))
            for s in sorted(pack.schedulers.SCHEDULERS) if s in now]
    if quick:
        keep = {"karras", "simple", "normal", "node:AlignYourStepsScheduler", "node:OptimalStepsScheduler",
                "lab_gits", "lab_ays_sd15"}
        out = [o for o in out if o[0] in keep]
    return out


# --- statistics ---------------------------------------------------------------------------------------
BOOT = 2000
LEVEL = 0.90


def bootstrap_ci(values, stat="mean", boot=BOOT, level=LEVEL, seed=0):
    """Percentile bootstrap interval of the mean or median of values (Efron & Tibshirani 1993, ch. 13)."""
    v = torch.as_tensor(list(values), dtype=torch.float64)
    if v.numel() < 2:
        return (float("nan"), float("nan"))
    idx = torch.randint(0, v.numel(), (boot, v.numel()), generator=torch.Generator().manual_seed(seed))
    draws = v[idx].mean(1) if stat == "mean" else v[idx].median(1).values
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    lo, hi = torch.quantile(draws, q).tolist()
    return (lo, hi)


def quantile(values, q):
    vals = sorted(values)
    if not vals:
        return float("nan")
    pos = q * (len(vals) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


def summarise(errors, agree):
    """Per-pair metrics from per-sample errors and mode/class agreement flags."""
    return {"n": len(errors), "mean": statistics.fmean(errors), "mean_ci": bootstrap_ci(errors),
            "median": statistics.median(errors), "median_ci": bootstrap_ci(errors, "median"),
            "p90": quantile(errors, 0.9), "agreement": sum(agree) / len(agree) if agree else None}


def clears(better, worse):
    """True when better's mean interval lies wholly below worse's: a difference the samples support."""
    return better["mean_ci"][1] < worse["mean_ci"][0]


def best_by_mean(rows):
    rows = [r for r in rows if r.get("mean") is not None and math.isfinite(r["mean"])]
    return min(rows, key=lambda r: r["mean"]) if rows else None
