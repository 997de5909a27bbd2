"""Accuracy benchmark (issue #9): every pack and every ComfyUI built-in sampler x scheduler, run the
way ComfyUI runs them (CFGGuider on the lab MODEL, sampler_object(name), custom sigmas), scored
against the near-exact PF-ODE solution from the same start latent, at equal model calls (NFE).

    .labenv/venv/bin/python bench/accuracy.py            # full run (minutes on 2 cores)
    .labenv/venv/bin/python bench/accuracy.py --quick    # smoke-sized run (seconds)

Writes bench/results/accuracy.{json,md,png}. NFE = guided denoiser evaluations (cond and uncond
of one CFG step count once), counted during every run with a sampler_post_cfg_function.
"""
import argparse
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
import warnings

import torch

if __package__ in (None, ""):
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import common  # noqa: E402

MIXTURES = (  # different seeds, component counts and spreads: nothing is tuned to one
    {"components": 6, "classes": 3, "spread": 0.15, "seed": 0},
    {"components": 4, "classes": 2, "spread": 0.30, "seed": 1},
    {"components": 12, "classes": 4, "spread": 0.08, "seed": 2},
)
PARAMETERIZATIONS = ("eps", "v", "flow")
CFGS = (1.0, 3.0)           # cfg 1: unconditional model; cfg 3: class CLASS_ID against unconditional
CLASS_ID = 1
NFES = (4, 5, 6, 8, 10, 15, 20)
STOCHASTIC_NFES = (10, 20)
CORE_SCHEDULERS = ("karras", "exponential", "simple", "beta")
FLOW_SHIFT = 3.0
REFERENCE_STEPS = 1024      # RK4 steps in log sigma: error ~1e-8, far below every sampler here

# Model calls of ComfyUI 0.3.75's deterministic samplers for n steps on a schedule ending at 0,
# read from comfy/k_diffusion/sampling.py (the last step to 0 is an Euler step for the 2- and
# 3-stage ones). Every run recounts them; a mismatch is reported and the run is not ranked.
# Left out: ddim (sampler_object("ddim") is euler), dpm_adaptive (chooses its own NFE), *_gpu (same
# maths as the CPU forms), *_cfg_pp (they change the target ODE).
CORE_ODE = {
    "euler": lambda n: n, "heun": lambda n: 2 * n - 1, "dpm_2": lambda n: 2 * n - 1,
    "heunpp2": lambda n: 1 if n == 1 else 3 * n - 3, "lms": lambda n: n, "dpm_fast": lambda n: n,
    "dpmpp_2m": lambda n: n, "ipndm": lambda n: n, "ipndm_v": lambda n: n, "deis": lambda n: n,
    "res_multistep": lambda n: n, "gradient_estimation": lambda n: n, "uni_pc": lambda n: n,
    "uni_pc_bh2": lambda n: n,
}
CORE_SDE = {
    "euler_ancestral": lambda n: n, "dpm_2_ancestral": lambda n: 2 * n - 1,
    "dpmpp_2s_ancestral": lambda n: 2 * n - 1, "dpmpp_sde": lambda n: 2 * n - 1, "dpmpp_2m_sde": lambda n: n,
    "dpmpp_2m_sde_heun": lambda n: n, "dpmpp_3m_sde": lambda n: n, "ddpm": lambda n: n, "lcm": lambda n: n,
    "res_multistep_ancestral": lambda n: n, "er_sde": lambda n: n, "seeds_2": lambda n: 2 * n - 1,
    "seeds_3": lambda n: 3 * n - 2, "sa_solver": lambda n: n, "sa_solver_pece": lambda n: 2 * n - 1,
}


NOTES = """Notes (what the numbers say, issue #9):
- eps and v give the same numbers: in ComfyUI's x-space both are x = x0 + sigma n with the same exact denoiser.
- The last step. Every k-diffusion sampler ends with x = D(x, sigma_min): for data of spread s that is off by
  ~ sigma_min^2 / (2 s^2) relative (~3e-3 RMSE here), a floor no higher order removes. lab_plms, lab_pndm,
  lab_plms_unic and lab_dpmpp2m_unic now take that step as Adams-Bashforth in rho = sigma / alpha on eps
  (samplers/plms.py final_step, no extra call; the order drops where the last steps are too close to
  extrapolate stably): lab_plms / exponential, eps cfg 1, NFE 20: 0.0031 -> 0.00056.
- lab_dpmpp2m_unic ("order 3" mid-trajectory) converged slowly over whole runs at NFE <= 10 because the
  UniC samplers lost their last correction in that step (the model was evaluated at the uncorrected
  point x~ and the step only had D(x~)). UniC-1/2 now hand the final step D(x~) + (x_corr - x~) / alpha
  (samplers/unic.py): lab_dpmpp2m_unic / exponential at NFE 10, eps cfg 1: 0.0046 -> 0.0011, without any
  optimised schedule. UniC-3 (lab_plms_unic) keeps the old final step: with it, a half-precision model's
  rounding reached the output 4x past core's fixed-step samplers.
- lab_plms vs ipndm at NFE 4-6 (same Adams-Bashforth family): not the warm-up. lab_plms extrapolates the
  denoised D in lambda = log(alpha / sigma); at NFE <= 6 the steps are 1.5-2 in lambda, and at high noise
  D - mean moves like e^lambda, which no low-degree polynomial follows over such steps (order 2 and 3 beat
  order 4 there). ipndm extrapolates eps in sigma, and eps is nearly constant at high noise. Inherent to
  the data-prediction form (which in turn is the robust one under strong guidance); the optimised schedule
  and UniC are what close that gap.
- Optimised schedules are fitted on calibration noises and scored on others: the gap between the two is
  reported per pair in accuracy.json (calibration_rmse)."""


OPTIMIZED_SCHEDULER = "lab_optimizer"   # = bench.optimized.SCHEDULER (kept here for --from-json re-renders)


def steps_for(nfe_of, nfe):
    """Smallest step count whose planned model calls equal nfe exactly (None if none does)."""
    for n in range(1, nfe + 1):
        if nfe_of(n) == nfe:
            return n
    return None


def candidates(pack, quick=False):
    """[(name, origin 'pack'/'core', kind 'ode'/'sde', nfe_of(steps), exact_nfe)] present in ComfyUI now."""
    import comfy.samplers
    names = set(comfy.samplers.SAMPLER_NAMES)
    out = []
    for spec in pack.samplers.SAMPLERS.values():
        if spec.cfg_pp or spec.name not in names:
            continue
        out.append((spec.name, "pack", "sde" if spec.stochastic else "ode", spec.nfe, spec.follows_schedule))
    for table, kind in ((CORE_ODE, "ode"), (CORE_SDE, "sde")):
        out += [(n, "core", kind, f, True) for n, f in table.items() if n in names]
    if quick:
        keep = {"euler", "dpmpp_2m", "heun", "uni_pc", "lab_rk4", "lab_dpmpp2m_unic", "lab_plms", "lab_rk_bosh3",
                "euler_ancestral", "lab_ancestral_euler"}
        out = [c for c in out if c[0] in keep]
    return out


def schedulers_for(pack, quick=False):
    if quick:
        return ["karras", "simple", "lab_ays_sd15"]
    return list(CORE_SCHEDULERS) + sorted(pack.schedulers.SCHEDULERS)


class Unit:
    """One (mixture, parameterisation, cfg): the lab MODEL, its conds, noise and exact references."""

    def __init__(self, mix_index, parameterization, cfg, batch, seed=0):
        from lab import default_mixture
        self.mix_index, self.parameterization, self.cfg = mix_index, parameterization, cfg
        m = MIXTURES[mix_index]
        self.patcher = common.node("SamplerLabModel").build(
            parameterization, FLOW_SHIFT, m["components"], m["classes"], m["spread"], m["seed"], "float32")[0]
        self.model_sampling = self.patcher.get_model_object("model_sampling")
        pos, neg = common.node("SamplerLabConditioning").encode(CLASS_ID if cfg != 1.0 else -1)
        self.pos, self.neg = pos, neg
        self.mixture = default_mixture((4, 8, 8), m["components"], m["classes"], m["spread"], m["seed"])
        cw = None
        if cfg != 1.0:
            cw = torch.nn.functional.one_hot(torch.full((batch,), CLASS_ID), m["classes"]).to(torch.float64)
        self.denoise = self.mixture.denoiser(parameterization, class_weights=cw, cfg=cfg)
        gen = torch.Generator().manual_seed(1000 * seed + 17 * mix_index + 1)
        self.noise = torch.randn((batch, 4, 8, 8), generator=gen)
        self.latent = torch.zeros_like(self.noise)
        self._refs = {}
        self._cal_weights = None if cfg == 1.0 else CLASS_ID

    def calibration_denoise(self, batch):
        """The exact (guided) denoiser for a calibration batch of `batch` samples (float64)."""
        cw = None
        if self._cal_weights is not None:
            cw = torch.nn.functional.one_hot(torch.full((batch,), CLASS_ID), self.mixture.num_classes)
            cw = cw.to(torch.float64)
        return self.mixture.denoiser(self.parameterization, class_weights=cw, cfg=self.cfg)

    def x_start(self, sigmas):
        """The latent ComfyUI's KSAMPLER hands the sampler (its own noise_scaling and max_denoise)."""
        import comfy.samplers
        from types import SimpleNamespace
        wrap = SimpleNamespace(inner_model=SimpleNamespace(model_sampling=self.model_sampling))
        max_denoise = comfy.samplers.KSAMPLER(None).max_denoise(wrap, sigmas)
        return self.model_sampling.noise_scaling(sigmas[0], self.noise, self.latent, max_denoise)

    def reference(self, sigmas):
        from lab import reference_solution
        x = self.x_start(sigmas)
        key = (float(sigmas[0]), float(x.abs().sum()))
        if key not in self._refs:
            ref = reference_solution(self.denoise, x, float(sigmas[0]), 0.0, steps=REFERENCE_STEPS)
            self._refs[key] = (x, ref, self.mixture.nearest(ref)[0])
        return self._refs[key]

    def run(self, sampler_name, sigmas, seed=0):
        """(output latent, counted NFE, first model input) for one ComfyUI run."""
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
        out = guider.sample(self.noise, self.latent, comfy.samplers.sampler_object(sampler_name), sigmas,
                            disable_pbar=True, seed=seed)
        return out, box["n"], box["first"]


def per_sample_rmse(a, b):
    d = a.to(torch.float64) - b.to(torch.float64)
    return d.reshape(d.shape[0], -1).pow(2).mean(1).sqrt()


def data_distance(mixture, x0):
    """|normalised distance to the nearest component - 1| per sample (0 for a typical exact sample)."""
    _, dist = mixture.nearest(x0)
    return (dist - 1.0).abs()


def score_run(unit, rec, name, sigmas, kind, exact):
    """Run one (sampler, sigmas) through ComfyUI on the unit's noise and fill rec in place."""
    try:
        if float(sigmas[-1]) != 0.0 or len(sigmas) != rec["steps"] + 1:
            raise ValueError(f"schedule has {len(sigmas)} values ending at {float(sigmas[-1])}")
        rec["sigma0"], rec["sigma_max"] = float(sigmas[0]), float(unit.model_sampling.sigma_max)
        x0, ref, ref_mode = unit.reference(sigmas)
        t = time.perf_counter()
        out, counted, first = unit.run(name, sigmas)
        rec["seconds"] = time.perf_counter() - t
    except Exception as e:  # a pair that cannot run is reported, not fatal
        rec.update(status="error", error=f"{type(e).__name__}: {e}"[:200])
        return rec
    rec["counted_nfe"] = counted
    rec["start_error"] = float((first - x0).abs().max()) if first is not None else None
    ok = counted == rec["nfe"] if exact else counted <= rec["nfe"]
    rec["status"] = "ok" if ok else "nfe_mismatch"
    if not torch.isfinite(out).all():
        rec["status"] = "nonfinite"
    elif kind == "ode":
        rec["rmse"] = per_sample_rmse(out, ref).tolist()
        rec["mode_agree"] = (unit.mixture.nearest(out)[0] == ref_mode).tolist()
    else:
        rec["data_distance"] = data_distance(unit.mixture, out).tolist()
    return rec


def optimized_runs(unit, cands, nfes, cache):
    """Pairs with a schedule from the pack's Schedule Optimizer, fitted on calibration noises (other seeds
    than the evaluation noise) for each sampler in bench.optimized.SAMPLERS and NFE; (records, new cache)."""
    import comfy.samplers
    from bench import optimized
    kind = "flow" if unit.parameterization == "flow" else "ve"
    cal, records, new = None, [], {}
    for nfe in nfes:
        for sname in optimized.SAMPLERS:
            cand = next((c for c in cands if c[0] == sname and c[2] == "ode"), None)
            steps = steps_for(cand[3], nfe) if cand else None
            if steps is None:
                continue
            key = optimized.cache_key(unit.mix_index, unit.parameterization, unit.cfg, nfe, sname, steps)
            hit = cache.get(key)
            t = time.perf_counter()
            if hit is None:
                if cal is None:
                    cal = optimized.Calibration(unit, kind)
                base = comfy.samplers.calculate_sigmas(unit.model_sampling, "karras", steps)
                sig, err = optimized.optimise(cal, sname, steps, baseline=base)
                hit = {"sigmas": [float(v) for v in sig], "calibration_rmse": err,
                       "seconds": time.perf_counter() - t}
                new[key] = hit
            rec = {"mixture": unit.mix_index, "param": unit.parameterization, "cfg": unit.cfg, "sampler": sname,
                   "origin": cand[1], "kind": "ode", "scheduler": optimized.SCHEDULER, "nfe": nfe, "steps": steps,
                   "exact_nfe": cand[4], "calibration_rmse": hit["calibration_rmse"],
                   "optimize_seconds": hit.get("seconds")}
            records.append(score_run(unit, rec, sname, torch.tensor(hit["sigmas"], dtype=torch.float32), "ode",
                                     cand[4]))
    return records, new


def run_unit(args):
    """All runs of one unit; returns (raw records, new optimizer cache entries)."""
    mix_index, parameterization, cfg, batch, nfes, sde_nfes, quick, optimize, cache = args
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)   # torchsde's float-rounding chatter
    pack = common.load_comfy()
    import comfy.samplers
    unit = Unit(mix_index, parameterization, cfg, batch)
    cands = candidates(pack, quick)
    records, new = [], {}
    if optimize:
        records, new = optimized_runs(unit, cands, nfes, cache)
    for sched in ([] if optimize == "only" else schedulers_for(pack, quick)):
        for name, origin, kind, nfe_of, exact in cands:
            if kind == "sde" and cfg != 1.0:
                continue   # the guided target distribution is not the data: scored at cfg 1 only
            for nfe in (nfes if kind == "ode" else sde_nfes):
                steps = steps_for(nfe_of, nfe)
                if steps is None:
                    continue
                rec = {"mixture": mix_index, "param": parameterization, "cfg": cfg, "sampler": name,
                       "origin": origin, "kind": kind, "scheduler": sched, "nfe": nfe, "steps": steps,
                       "exact_nfe": exact}
                try:
                    sigmas = comfy.samplers.calculate_sigmas(unit.model_sampling, sched, steps).to(torch.float32)
                except Exception as e:
                    rec.update(status="error", error=f"{type(e).__name__}: {e}"[:200])
                    records.append(rec)
                    continue
                records.append(score_run(unit, rec, name, sigmas, kind, exact))
    print(f"  unit mixture {mix_index} {parameterization} cfg {cfg:g}: {len(records)} runs", file=sys.stderr, flush=True)
    return records, new


def exact_floor(batch, quick):
    """Median data distance of exact samples (same count as one sampler's pooled samples)."""
    from lab import default_mixture
    vals = []
    for i, m in enumerate(MIXTURES):
        mix = default_mixture((4, 8, 8), m["components"], m["classes"], m["spread"], m["seed"])
        x0, _ = mix.sample(batch, generator=torch.Generator().manual_seed(99 + i))
        vals += data_distance(mix, x0).tolist()
    return statistics.median(vals)


def is_builtin(row):
    return row["origin"] == "core" and not row["scheduler"].startswith("lab_")


def full_start(r):
    """The schedule starts at the model's sigma_max (full denoise). A schedule that starts lower solves
    an easier problem (less noise to remove), so it is scored but not ranked against full-start pairs."""
    return abs(r["sigma0"] - r["sigma_max"]) <= 1e-3 * r["sigma_max"] or r["sigma0"] > r["sigma_max"]


def aggregate(records):
    """Pool the mixtures: one row per (param, cfg, sampler, scheduler, nfe)."""
    groups = {}
    for r in records:
        groups.setdefault((r["param"], r["cfg"], r["sampler"], r["scheduler"], r["nfe"]), []).append(r)
    rows = []
    for (param, cfg, sampler, sched, nfe), rs in sorted(groups.items()):
        row = {"param": param, "cfg": cfg, "sampler": sampler, "scheduler": sched, "nfe": nfe,
               "origin": rs[0]["origin"], "kind": rs[0]["kind"], "steps": rs[0]["steps"],
               "counted_nfe": sorted({r.get("counted_nfe") for r in rs if r.get("counted_nfe") is not None}),
               "status": "ok" if all(r["status"] == "ok" for r in rs) else
               next(r["status"] for r in rs if r["status"] != "ok"),
               "errors": sorted({r["error"] for r in rs if "error" in r})[:2],
               "max_start_error": max((r.get("start_error") or 0.0) for r in rs), "exact_nfe": rs[0]["exact_nfe"],
               "full_start": all(full_start(r) for r in rs if "sigma0" in r)}
        if row["status"] == "ok" and row["kind"] == "ode":
            errs = [e for r in rs for e in r["rmse"]]
            row["median_rmse"] = statistics.median(errs)
            row["mode_agreement"] = sum(a for r in rs for a in r["mode_agree"]) / len(errs)
        elif row["status"] == "ok":
            row["median_data_distance"] = statistics.median(d for r in rs for d in r["data_distance"])
        rows.append(row)
    return rows


def best(rows, param, cfg, nfe, builtin, key="median_rmse", kind="ode", exclude_scheduler=None):
    pool = [r for r in rows if r["param"] == param and r["cfg"] == cfg and r["nfe"] == nfe and r["kind"] == kind
            and r["status"] == "ok" and key in r and is_builtin(r) == builtin and math.isfinite(r[key])
            and r.get("full_start", True) and r["scheduler"] != exclude_scheduler]
    return min(pool, key=lambda r: r[key]) if pool else None


def headline(rows, nfes, cfgs=CFGS, params=PARAMETERIZATIONS):
    """Best pack pair vs best built-in pair per (param, cfg, nfe), and the targets."""
    out, targets = [], []
    for param in params:
        for cfg in cfgs:
            for nfe in nfes:
                p, c = best(rows, param, cfg, nfe, False), best(rows, param, cfg, nfe, True)
                ratio = c["median_rmse"] / p["median_rmse"] if p and c and p["median_rmse"] > 0 else None
                fixed = best(rows, param, cfg, nfe, False, exclude_scheduler=OPTIMIZED_SCHEDULER)
                out.append({"param": param, "cfg": cfg, "nfe": nfe, "pack": p, "builtin": c, "ratio": ratio,
                            "pack_fixed": fixed, "ratio_fixed": c["median_rmse"] / fixed["median_rmse"]
                            if fixed and c and fixed["median_rmse"] > 0 else None})
            for nfe in (5, 8, 10):
                h = next((o for o in out if o["param"] == param and o["cfg"] == cfg and o["nfe"] == nfe), None)
                if h and h["ratio"] is not None:
                    targets.append({"target": f"NFE {nfe}: pack best <= 1/2 built-in best", "param": param, "cfg": cfg,
                                    "value": 1.0 / h["ratio"], "holds": h["ratio"] >= 2.0})
            p10, c20 = best(rows, param, cfg, 10, False), best(rows, param, cfg, 20, True)
            if p10 and c20:
                targets.append({"target": "pack best at NFE 10 <= built-in best at NFE 20", "param": param, "cfg": cfg,
                                "value": p10["median_rmse"] / c20["median_rmse"],
                                "holds": p10["median_rmse"] <= c20["median_rmse"]})
    return out, targets


def pair(r):
    return f"{r['sampler']} / {r['scheduler']}" if r else "-"


def markdown(rows, head, targets, floor, meta):
    f = common.fmt
    lines = [f"Accuracy benchmark: {meta['machine']}; ComfyUI {meta['comfyui']}; {meta['date']}; "
             f"{meta['seconds']:.0f} s. Median per-sample RMSE against the exact PF-ODE solution from the same "
             f"start latent, pooled over {meta['mixtures']} mixtures x batch {meta['batch']}; mode = fraction of "
             "samples ending in the same mixture component as the reference. \"pack\" = the best pair using a "
             "Sampler Lab sampler or scheduler; \"built-in\" = the best pair of a ComfyUI sampler and scheduler.", ""]
    opt = meta.get("optimizer")
    if opt:
        lines += [f"Scheduler `{opt['scheduler']}` = the pack's Schedule Optimizer (schedulers/optimize.py: trace, "
                  f"DP starts, coordinate descent on the sampler's own error) fitted per mixture, parameterisation, "
                  f"cfg, "
                  f"NFE and sampler ({', '.join(opt['samplers'])}) on {opt['calibration_noises_per_mixture']} "
                  f"CALIBRATION noises per mixture (seeds {opt['calibration_seed']} + 17 m + 1; the scored noise "
                  f"uses seeds 17 m + 1, so the schedules never saw it); grid {opt['grid_points']}, "
                  f"{opt['passes']} passes, span {opt['span']}. Fitted in this run: "
                  f"{meta.get('optimizer_fitted_now', 0)}; the rest came from the cache "
                  f"(bench/results/optimized_schedules.json, keyed by these settings).",
                  ""]
    body = []
    for h in head:
        p, c = h["pack"], h["builtin"]
        q = h.get("pack_fixed")
        body.append([h["param"], f(h["cfg"]), h["nfe"], pair(p), f(p and p["median_rmse"]),
                     f(p and p["mode_agreement"], 2), pair(c), f(c and c["median_rmse"]),
                     f(c and c["mode_agreement"], 2), f(h["ratio"], 3), pair(q), f(q and q["median_rmse"]),
                     f(h.get("ratio_fixed"), 3)])
    lines += [common.md_table(["param", "cfg", "NFE", "best pack pair", "RMSE", "mode", "best built-in pair",
                               "RMSE", "mode", "built-in / pack", "best pack pair without the optimizer", "RMSE",
                               "built-in / it"], body), ""]
    lines += ["Targets:", "", common.md_table(
        ["target", "param", "cfg", "value", "holds"],
        [[t["target"], t["param"], f(t["cfg"]), f(t["value"], 3), "yes" if t["holds"] else "**no**"] for t in targets]), ""]
    sde = []
    for param in PARAMETERIZATIONS:
        for nfe in sorted({r["nfe"] for r in rows if r["kind"] == "sde"}):
            p = best(rows, param, 1.0, nfe, False, "median_data_distance", "sde")
            c = best(rows, param, 1.0, nfe, True, "median_data_distance", "sde")
            if p or c:
                sde.append([param, nfe, pair(p), f(p and p["median_data_distance"]), pair(c),
                            f(c and c["median_data_distance"])])
    if sde:
        lines += [f"Stochastic samplers (cfg 1; they do not follow the ODE): median |d - 1|, d = distance to the "
                  f"nearest component / (std sqrt(dim)); exact samples give {f(floor)}.", "",
                  common.md_table(["param", "NFE", "best pack pair", "data dist.", "best built-in pair", "data dist."],
                                  sde), ""]
    lines += [NOTES, ""]
    low = sorted({r["scheduler"] for r in rows if r["status"] == "ok" and not r.get("full_start", True)})
    if low:
        lines += ["Scored but not ranked (schedule starts below the model's sigma_max, an easier problem): "
                  + ", ".join(low) + ".", ""]
    bad = [r for r in rows if r["status"] != "ok"]
    if bad:
        kinds = {}
        for r in bad:
            kinds.setdefault(r["status"], set()).add(f"{r['sampler']}/{r['scheduler']}")
        lines += ["Not ranked: " + "; ".join(f"{k}: {len(v)} pairs (e.g. {', '.join(sorted(v)[:4])})"
                                             for k, v in kinds.items()), ""]
    return "\n".join(lines)


def plot(head, path, nfes):
    from bench.plot import loglog_panels
    panels = []
    for param in PARAMETERIZATIONS:
        series = []
        for cfg, dashed in ((1.0, False), (3.0, True)):
            for who, ci in (("pack", 0), ("builtin", 1)):
                pts = [(h["nfe"], h[who]["median_rmse"]) for h in head
                       if h["param"] == param and h["cfg"] == cfg and h[who]]
                if pts:
                    series.append((f"best {'pack' if ci == 0 else 'built-in'} cfg {cfg:g}", dashed, ci, pts))
        if series:
            panels.append((f"{param}: best pair per NFE", series))
    return loglog_panels(panels, path) if panels else None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke-sized run: 1 mixture, batch 2, few pairs")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes (default 2)")
    ap.add_argument("--batch", type=int, default=None, help="samples per mixture (default 8; quick 2)")
    ap.add_argument("--out", default=common.RESULTS, help="output folder (default bench/results)")
    ap.add_argument("--from-json", default=None, help="re-rank and re-render a saved accuracy.json (no runs)")
    ap.add_argument("--params", default=",".join(PARAMETERIZATIONS), help="subset, e.g. eps (development)")
    ap.add_argument("--cfgs", default=",".join(f"{c:g}" for c in CFGS), help="subset, e.g. 1 (development)")
    ap.add_argument("--nfes", default=None, help="subset, e.g. 5,10 (development)")
    ap.add_argument("--no-optimize", action="store_true", help="skip the Schedule Optimizer pairs")
    ap.add_argument("--only-optimized", action="store_true",
                    help="run only the Schedule Optimizer pairs (development)")
    a = ap.parse_args(argv)
    if a.from_json:
        return rerender(a.from_json, a.out)
    batch = a.batch or (2 if a.quick else 8)
    mixtures = (0,) if a.quick else tuple(range(len(MIXTURES)))
    nfes = (5, 10, 20) if a.quick else NFES
    if a.nfes:
        nfes = tuple(int(v) for v in a.nfes.split(","))
    sde_nfes = (10,) if a.quick else STOCHASTIC_NFES
    params = tuple(a.params.split(","))
    cfgs = tuple(float(v) for v in a.cfgs.split(","))
    optimize = not a.no_optimize
    from bench import optimized
    optimized.configure(a.quick)
    cache = optimized.load_cache(a.out) if optimize else {}
    units = [(m, p, c, batch, nfes, sde_nfes, a.quick, "only" if a.only_optimized else optimize, cache)
             for p in params for c in cfgs for m in mixtures]
    t = time.perf_counter()
    if a.workers > 1:
        with multiprocessing.get_context("fork").Pool(a.workers) as pool:
            chunks = pool.map(run_unit, units, chunksize=1)
    else:
        chunks = [run_unit(u) for u in units]
    records = [r for c, _ in chunks for r in c]
    new_entries = {k: v for _, n in chunks for k, v in n.items()}
    if new_entries:
        optimized.save_cache(a.out, new_entries)
    rows = aggregate(records)
    common.load_comfy()
    meta = {"machine": common.machine(), "comfyui": common.comfy_version(), "date": common.today(),
            "seconds": time.perf_counter() - t, "mixtures": len(mixtures), "batch": batch, "quick": a.quick,
            "nfes": list(nfes), "reference_steps": REFERENCE_STEPS, "class_id": CLASS_ID, "cfgs": list(cfgs),
            "params": list(params), "optimizer": optimized.settings() if optimize else None,
            "optimizer_fitted_now": len(new_entries)}
    return publish(rows, meta, exact_floor(batch, a.quick), a.out)


def fill_full_start(rows):
    """Rows saved before full_start was recorded: recompute sigmas[0] from ComfyUI's schedule."""
    common.load_comfy()
    import comfy.samplers
    ms = {}
    for r in rows:
        if "full_start" in r or r["status"] != "ok":
            continue
        if r["param"] not in ms:
            ms[r["param"]] = common.node("SamplerLabModel").build(r["param"], FLOW_SHIFT, 6, 3, 0.15, 0, "float32")[0] \
                .get_model_object("model_sampling")
        m = ms[r["param"]]
        sig = comfy.samplers.calculate_sigmas(m, r["scheduler"], r["steps"])
        r["full_start"] = full_start({"sigma0": float(sig[0]), "sigma_max": float(m.sigma_max)})


def rerender(path, out):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    fill_full_start(data["rows"])
    return publish(data["rows"], data["meta"], data["exact_data_distance"], out)


def publish(rows, meta, floor, out):
    nfes = tuple(meta["nfes"])
    head, targets = headline(rows, nfes, tuple(meta.get("cfgs", CFGS)),
                             tuple(meta.get("params", PARAMETERIZATIONS)))
    md = markdown(rows, head, targets, floor, meta)
    os.makedirs(out, exist_ok=True)
    common.write_text(os.path.join(out, "accuracy.md"), md + "\n")
    png = plot(head, os.path.join(out, "accuracy.png"), nfes)
    summary = {"meta": meta, "targets": targets, "exact_data_distance": floor,
               "headline": [{"param": h["param"], "cfg": h["cfg"], "nfe": h["nfe"], "ratio": h["ratio"],
                             "pack": h["pack"], "builtin": h["builtin"], "pack_fixed": h["pack_fixed"],
                             "ratio_fixed": h["ratio_fixed"]} for h in head]}
    # accuracy.json: every pair at every NFE (megabytes); accuracy_summary.json: the headline and
    # targets only (what bench/published keeps under version control)
    common.write_json(os.path.join(out, "accuracy.json"), {**summary, "rows": rows})
    common.write_json(os.path.join(out, "accuracy_summary.json"), summary)
    print(md)
    print(f"wrote {out}/accuracy.md, accuracy.json, accuracy_summary.json, {os.path.basename(png or '-')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
