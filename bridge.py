"""The one module (besides nodes/) that touches ComfyUI internals.

Owns: registering the pack's samplers and schedulers into ComfyUI's lists (in place,
additively, idempotently), model_sampling lookups, and adapting pure pack code to ComfyUI.
Every entry point here is public and stable across ComfyUI 0.3.x .. 0.38.x
(see README "What the pack touches").
"""
import dataclasses
import functools
import logging

import torch

import comfy.k_diffusion.sampling as k_sampling
import comfy.model_patcher
import comfy.model_sampling
import comfy.samplers

from .samplers.cfgpp import cfg_pp_variant
from .samplers.noise_scale import model_sampling_of
from .samplers.spec import SamplerSpec
from .schedulers.spec import ModelSigmas

log = logging.getLogger("sampler_lab")
PREFIX = "[Sampler Lab]"

# Functions we install carry this attribute, so a second import of the pack (another module
# instance) recognises its own entries and leaves them alone instead of reporting a clash.
MARK = "sampler_lab_spec"


def model_kind(model_sampling):
    """'flow' for CONST (rectified-flow) models, 've' otherwise."""
    return "flow" if isinstance(model_sampling, comfy.model_sampling.CONST) else "ve"


def model_sigmas(model_sampling):
    """A pure ModelSigmas from ComfyUI's model_sampling (schedulers never see ComfyUI objects)."""
    return ModelSigmas(
        sigmas=model_sampling.sigmas.detach().to("cpu", dtype=comfy.samplers.torch.float32),
        kind=model_kind(model_sampling),
        percent_to_sigma=model_sampling.percent_to_sigma,
        shift=float(getattr(model_sampling, "shift", 1.0)),
    )


def capture_uncond(extra_args):
    """extra_args whose model options record each call's unconditional denoised (CFG++ needs it),
    and a getter for it. Falls back to the conditional one when no uncond was computed
    (e.g. BasicGuider). Does not modify the caller's dicts."""
    box = {}

    def post_cfg(args):
        u = args.get("uncond_denoised")
        box["uncond"] = args["cond_denoised"] if u is None else u
        return args["denoised"]
    extra_args = dict(extra_args or {})
    options = dict(extra_args.get("model_options", {}))
    extra_args["model_options"] = comfy.model_patcher.set_model_options_post_cfg_function(
        options, post_cfg, disable_cfg1_optimization=True)
    return extra_args, lambda: box["uncond"]


def checked_sigmas(sigmas):
    """The schedule a pack sampler runs, validated once per run (one small host copy).

    Raises ValueError naming `sigmas` when it is empty, not 1-D, holds NaN / inf or negative values,
    or increases anywhere. Documented behaviours: a schedule that does not end at 0 is a split
    schedule (the sampler stops at its last sigma); repeated neighbours (a zero-length step, which
    very long schedules on a discrete model produce) are dropped, since such a step changes nothing.
    """
    if not torch.is_tensor(sigmas) or sigmas.ndim != 1 or sigmas.numel() == 0:
        raise ValueError("sigmas is empty (or not a 1-D list of noise levels): connect a scheduler node's "
                         "SIGMAS output with steps >= 1 (denoise 0 gives an empty SIGMAS and skips sampling)")
    values = sigmas.detach().to("cpu", torch.float64)
    bad = (~torch.isfinite(values)).nonzero().flatten().tolist()
    if bad:
        raise ValueError(f"sigmas contains NaN or inf at position(s) {bad[:5]}: the schedule upstream is broken; "
                         "check the scheduler node's parameters (e.g. a shift or rho that overflows)")
    if bool((values < 0).any()):
        raise ValueError("sigmas contains negative noise levels: a schedule runs from sigma_max down to 0; "
                         "check the scheduler node or the SIGMAS arithmetic upstream")
    steps = values[1:] - values[:-1]
    up = (steps > 0).nonzero().flatten().tolist()
    if up:
        i = up[0]
        raise ValueError(f"sigmas must not increase, but sigmas[{i}]={values[i]:.6g} < sigmas[{i + 1}]="
                         f"{values[i + 1]:.6g}: samplers only remove noise; use a scheduler node's output "
                         "(or Flip Sigmas on a reversed one)")
    keep = torch.cat([torch.ones(1, dtype=torch.bool), steps != 0])
    return sigmas if bool(keep.all()) else sigmas[keep.to(sigmas.device)]


def check_latent(x):
    """A NaN / inf in the incoming latent would silently give a wrong image: refuse it by name."""
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        rows = (~finite).reshape(x.shape[0], -1).any(1).nonzero().flatten().tolist()
        raise ValueError(f"the latent has NaN or inf values (batch item(s) {rows[:8]}): fix the node that made "
                         "the LATENT (e.g. a VAE Encode of a broken image, or an upstream sampler that diverged)")


def adapt_sampler(spec):
    """ComfyUI-facing sampler function: validates sigmas and the latent (clear errors, see
    checked_sigmas), passes model_kind, the spec's fixed options and, for CFG++ entries, the
    unconditional-prediction getter. A single sigma means zero steps: x comes back unchanged."""
    @functools.wraps(spec.fn)
    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, **options):
        sigmas = checked_sigmas(sigmas)
        check_latent(x)
        if sigmas.numel() == 1:
            return x
        ms = model_sampling_of(model)
        kind = model_kind(ms) if ms is not None else "ve"
        merged = {**spec.options, **options}
        if spec.cfg_pp:
            extra_args, merged["uncond"] = capture_uncond(extra_args)
        core_name = spec.name[:-len("_cfg_pp")] if spec.cfg_pp else None
        if core_name in CORE_STOCHASTIC_NOISE:   # a core stochastic sampler's CFG++ form: core's noise
            if merged.get("noise_sampler") is None:
                merged["noise_sampler"] = core_noise_sampler(CORE_STOCHASTIC_NOISE[core_name], x, sigmas, extra_args)
            if kind == "flow" and core_name in CORE_FLOW_START_OFFSET and float(sigmas[0]) >= 1.0:
                sigmas = sigmas.clone()
                sigmas[0] = float(ms.percent_to_sigma(1e-4))
        return spec.fn(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable,
                       model_kind=kind, **merged)
    setattr(sample, MARK, spec)
    return sample


def adapt_scheduler(spec):
    """SchedulerHandler function (use_ms=True): fn(model_sampling, steps) -> sigmas."""
    def schedule(model_sampling, steps):
        return spec.fn(model_sigmas(model_sampling), int(steps))
    setattr(schedule, MARK, spec)
    return schedule


# Deterministic core samplers without a CFG++ form in ComfyUI 0.3.75 (order, calls per step).
# dpm_2_cfg_pp runs on the schedule it is given: KSampler drops dpm_2's penultimate sigma by name only.
# uni_pc(_bh2) are UniPC with data prediction (Zhao et al. 2023): their first-order part is the
# x-space Euler step, so the substitution makes it the CFG++ step like for the others.
CORE_WITHOUT_CFG_PP = {"heun": (2, 2), "heunpp2": (3, 3), "dpm_2": (2, 2), "lms": (4, 1), "ipndm": (4, 1),
                       "ipndm_v": (4, 1), "deis": (3, 1), "uni_pc": (3, 1), "uni_pc_bh2": (3, 1)}

# Core's calls for `steps` steps to sigma = 0 where its last steps save calls (the step to 0 is Euler; heunpp2's
# step before it is Heun), for SamplerSpec.nfe; the others take `calls` per step.
CORE_LAST_STEP_CALLS = {"heun": lambda n: max(2 * n - 1, 0), "dpm_2": lambda n: max(2 * n - 1, 0),
                        "heunpp2": lambda n: 1 if n == 1 else max(3 * n - 3, 0)}

# Core samplers that get no _cfg_pp from the pack, and why (tests/test_comfy_cfgpp.py checks that every
# other core sampler has one after registration).
CORE_CFG_PP_EXCLUDED = {
    "ddim": "ComfyUI runs ddim as euler: use euler_cfg_pp",
    "dpm_fast": "core's DPMSolver picks its own time grid inside the call: use lab_dpmpp2m_cfg_pp or an "
                "adaptive lab_*_cfg_pp sampler",
    "dpm_adaptive": "core's DPMSolver picks its own steps inside the call: use an adaptive lab_*_cfg_pp sampler",
}


def _ours(name):
    return hasattr(getattr(k_sampling, "sample_" + name, None), MARK)


# The sampler names present when the pack loads (ComfyUI's own, plus any pack loaded earlier).
CORE_SAMPLER_NAMES = tuple(n for n in comfy.samplers.SAMPLER_NAMES if not _ours(n))


# Core stochastic samplers without a CFG++ form, served by the pack's own flow-correct solver of the
# same method in CFG++ form (same algorithm). The noise is core's own (CORE_STOCHASTIC_NOISE), so that
# with nothing to guide X_cfg_pp reproduces X for the same seed.
CORE_STOCHASTIC_CFG_PP = {
    "dpmpp_2m_sde": ("lab_sde_dpmpp_2m_cfg_pp", {}),
    "dpmpp_2m_sde_heun": ("lab_sde_dpmpp_2m_heun_cfg_pp", {}),
    "dpmpp_3m_sde": ("lab_sde_dpmpp_3m_cfg_pp", {"third_order_form": "reference"}),  # core's 3M weights
    "ddpm": ("lab_ancestral_euler_cfg_pp", {"eta": 1.0}),
    "lcm": ("lab_tcd_cfg_pp", {"gamma": 1.0}),   # LCM multistep = TCD with gamma 1
    "dpm_2_ancestral": ("lab_ancestral_dpm2_cfg_pp", {"flow_rule": "rf"}),   # core's flow re-noising
    "dpmpp_sde": ("lab_sde_dpmpp_2s_cfg_pp", {}),
    "seeds_2": ("lab_seeds_2_cfg_pp", {}),
    "seeds_3": ("lab_seeds_3_cfg_pp", {}),
    "er_sde": ("lab_er_sde_cfg_pp", {}),
    "sa_solver": ("lab_sa_solver_cfg_pp", {}),
    "sa_solver_pece": ("lab_sa_solver_pece_cfg_pp", {}),
}
# core's *_gpu samplers are the same methods with the Brownian tree on the GPU
CORE_STOCHASTIC_CFG_PP.update({k + "_gpu": v for k, v in list(CORE_STOCHASTIC_CFG_PP.items())
                               if k + "_gpu" in CORE_SAMPLER_NAMES})

# The noise sampler each of those core samplers builds (ComfyUI 0.3.75, k_diffusion/sampling.py): its
# Brownian tree over [min positive sigma, max sigma] seeded with extra_args["seed"] (on the CPU, or on x's
# device for the _gpu twins), or default_noise_sampler(x, seed): one seeded randn like x per draw.
CORE_STOCHASTIC_NOISE = {name: ("brownian_gpu" if name.endswith("_gpu") else
                                "brownian" if name.startswith(("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"))
                                else "gaussian") for name in CORE_STOCHASTIC_CFG_PP}

# Those of them that move a flow schedule's first sigma 1 to percent_to_sigma(1e-4) (core's
# offset_first_sigma_for_snr); their CFG++ forms do the same, for the same result.
CORE_FLOW_START_OFFSET = {name for name in CORE_STOCHASTIC_CFG_PP
                          if name.startswith(("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde", "er_sde", "seeds_",
                                              "sa_solver"))}


def core_noise_sampler(kind, x, sigmas, extra_args):
    """Core's noise sampler of `kind` (CORE_STOCHASTIC_NOISE) for x, sigmas and extra_args["seed"], built as
    core builds it; the pack solvers pass float sigmas, core's tree takes them as tensors on sigmas' device."""
    seed = (extra_args or {}).get("seed")
    if kind == "gaussian":
        return k_sampling.default_noise_sampler(x, seed=seed)
    tree = k_sampling.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=seed,
                                               cpu=kind == "brownian")

    def noise(sigma, sigma_next):   # in x's dtype (the tree answers in the sigmas' dtype)
        return tree(torch.as_tensor(sigma, dtype=sigmas.dtype, device=sigmas.device),
                    torch.as_tensor(sigma_next, dtype=sigmas.dtype, device=sigmas.device)).to(x.dtype)
    return noise


def _core_as_pure(core_fn):
    def fn(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve", **options):
        return core_fn(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable, **options)
    return fn


def core_sampler_function(name):
    """The pure function of a core sampler (k-diffusion's sample_<name>, or UniPC), None if absent."""
    if name in ("uni_pc", "uni_pc_bh2"):
        unipc = getattr(comfy.samplers, "uni_pc", None)
        core_fn = getattr(unipc, "sample_unipc" if name == "uni_pc" else "sample_unipc_bh2", None)
        # UniPC writes 0.001 over a final sigma of 0 in the very tensor it gets (as for plain uni_pc);
        # the CFG++ wrapper holds that tensor, so it targets the step UniPC really takes.
        return None if core_fn is None else _core_as_pure(core_fn)
    core_fn = getattr(k_sampling, "sample_" + name, None)
    return None if core_fn is None or hasattr(core_fn, MARK) else _core_as_pure(core_fn)


def cfg_pp_specs(pack_specs):
    """_cfg_pp variants: every deterministic pack sampler that steps on the schedule, and the core
    samplers that lack one. (Ancestral/SDE samplers step to sigma_down and adaptive ones choose their
    own steps, so the substitution would not be the CFG++ step: no variant for those.)"""
    out = []
    for spec in pack_specs:
        if spec.stochastic or spec.cfg_pp or not spec.follows_schedule:
            continue  # CFG++ substitution needs the next schedule sigma and a deterministic step
        out.append(dataclasses.replace(spec, name=spec.name + "_cfg_pp", fn=cfg_pp_variant(spec.fn), cfg_pp=True,
                                       summary="CFG++ form of " + spec.name, citation="arXiv:2406.08070"))
    by_name = {spec.name: spec for spec in pack_specs}
    for name, (pack_name, options) in CORE_STOCHASTIC_CFG_PP.items():
        base = by_name.get(pack_name)
        if base is not None and name in CORE_SAMPLER_NAMES:   # only for core samplers this ComfyUI has
            out.append(dataclasses.replace(base, name=name + "_cfg_pp", options={**base.options, **options},
                                           summary=f"CFG++ form of ComfyUI's {name} (pack solver {pack_name})"))
    for name, (order, calls) in CORE_WITHOUT_CFG_PP.items():
        pure = core_sampler_function(name) if name in CORE_SAMPLER_NAMES else None
        if pure is None:
            continue
        out.append(SamplerSpec(name=name + "_cfg_pp", fn=cfg_pp_variant(pure), family="core_cfg_pp",
                               order=order, model_calls=calls, cfg_pp=True, nfe_rule=CORE_LAST_STEP_CALLS.get(name),
                               summary=f"CFG++ form of ComfyUI's {name}", citation="arXiv:2406.08070"))
    return out


def _sampler_taken(name):
    return name in comfy.samplers.SAMPLER_NAMES or hasattr(k_sampling, "sample_" + name)


def register_sampler(spec):
    """Add one sampler to ComfyUI's dropdown lists in place. Returns 'added', 'present' or 'skipped'."""
    name = spec.name
    if _ours(name) and name in comfy.samplers.SAMPLER_NAMES:
        _also_in_ksampler_list("SAMPLERS", name)
        return "present"
    if _sampler_taken(name):
        log.warning("%s sampler %r already exists in ComfyUI (core or another pack); keeping theirs, "
                    "skipping ours", PREFIX, name)
        return "skipped"
    setattr(k_sampling, "sample_" + name, adapt_sampler(spec))
    comfy.samplers.SAMPLER_NAMES.append(name)          # same list object as KSampler.SAMPLERS
    if comfy.samplers.KSAMPLER_NAMES is not comfy.samplers.SAMPLER_NAMES:
        comfy.samplers.KSAMPLER_NAMES.append(name)     # sampler_object() resolves via ksampler()
    _also_in_ksampler_list("SAMPLERS", name)
    return "added"


def _also_in_ksampler_list(attr, name):
    """Another pack may have rebound KSampler.SAMPLERS / SCHEDULERS to a new list (e.g.
    `KSampler.SCHEDULERS = KSampler.SCHEDULERS + [...]`): the stock KSampler reads that list, so our
    name goes into it as well, in place. A non-list (a tuple) is left alone with one warning."""
    names = getattr(comfy.samplers.KSampler, attr, None)
    module_list = comfy.samplers.SAMPLER_NAMES if attr == "SAMPLERS" else comfy.samplers.SCHEDULER_NAMES
    if names is module_list or names is None or name in names:
        return
    if isinstance(names, list):
        names.append(name)
    elif attr not in _WARNED:
        _WARNED.add(attr)
        log.warning("%s comfy.samplers.KSampler.%s was replaced by a %s (by another pack); the stock KSampler "
                    "cannot list the pack's names", PREFIX, attr, type(names).__name__)


_WARNED = set()


def register_scheduler(spec, update_own=False):
    """Add one scheduler to SCHEDULER_HANDLERS / SCHEDULER_NAMES in place. An entry the pack itself
    registered earlier is left as it is, or replaced by this spec with update_own (saved schedules)."""
    name = spec.name
    existing = comfy.samplers.SCHEDULER_HANDLERS.get(name)
    if existing is not None and hasattr(existing.handler, MARK) and name in comfy.samplers.SCHEDULER_NAMES:
        _also_in_ksampler_list("SCHEDULERS", name)
        if update_own:
            comfy.samplers.SCHEDULER_HANDLERS[name] = comfy.samplers.SchedulerHandler(adapt_scheduler(spec), use_ms=True)
            return "updated"
        return "present"
    if name in comfy.samplers.SCHEDULER_HANDLERS or name in comfy.samplers.SCHEDULER_NAMES:
        log.warning("%s scheduler %r already exists in ComfyUI (core or another pack); keeping theirs, "
                    "skipping ours", PREFIX, name)
        return "skipped"
    comfy.samplers.SCHEDULER_HANDLERS[name] = comfy.samplers.SchedulerHandler(adapt_scheduler(spec), use_ms=True)
    comfy.samplers.SCHEDULER_NAMES.append(name)        # same list object as KSampler.SCHEDULERS
    _also_in_ksampler_list("SCHEDULERS", name)
    return "added"


def _register_all(kind, specs, register_one):
    counts = {"added": 0, "present": 0, "skipped": 0, "failed": 0}
    for spec in specs:
        try:
            counts[register_one(spec)] += 1
        except Exception:  # one bad entry must never break ComfyUI start-up or the others
            counts["failed"] += 1
            log.exception("%s could not register %s %r; the others are unaffected",
                          PREFIX, kind, getattr(spec, "name", spec))
    return counts


def register_all(sampler_specs, scheduler_specs, when="at its import"):
    """Register every pack sampler and scheduler; returns counts per kind."""
    result = {
        "samplers": _register_all("sampler", sampler_specs, register_sampler),
        "schedulers": _register_all("scheduler", scheduler_specs, register_scheduler),
    }
    if result["samplers"]["added"] or result["schedulers"]["added"]:
        log.info("%s registered %d samplers and %d schedulers %s", PREFIX,
                 result["samplers"]["added"], result["schedulers"]["added"], when)
    return result


def pack_specs():
    """(sampler specs with their _cfg_pp forms, scheduler specs): everything the pack registers."""
    from .samplers import SAMPLERS
    from .schedulers import SCHEDULERS
    pack = list(SAMPLERS.values())
    return pack + cfg_pp_specs(pack), list(SCHEDULERS.values())


def register_pack(at_start_up=False):
    """Register all of the pack's samplers and schedulers. prestartup_script.py calls this the moment
    comfy.samplers is first imported (before any pack imports, so packs that copy the lists see our
    names); the pack's __init__ calls it again at its import, which then finds every name present."""
    when = "at start-up, before custom nodes load" if at_start_up else "at its import"
    return register_all(*pack_specs(), when=when)


def registered_names():
    """Pack names live in ComfyUI's dropdowns now (sorted), for tests and the help pages."""
    samplers = [n for n in comfy.samplers.SAMPLER_NAMES if _ours(n)]
    schedulers = [n for n, h in comfy.samplers.SCHEDULER_HANDLERS.items() if hasattr(h.handler, MARK)]
    return sorted(samplers), sorted(schedulers)
