"""Issue 17: every dropdown sampler the pack registers (its own and the `_cfg_pp` forms of core's)
x {eps, v, flow shift 1, flow shift 3} lab models x 1, 2, 3, 4 steps x every dropdown scheduler, through
the real ComfyUI runtime (CFGGuider.sample with the sigmas KSampler computes): finite output and the
documented number of model calls (SamplerSpec.nfe_on; an upper bound for adaptive samplers).

Cost: a model call through ComfyUI costs ~10 ms here, and running each of the ~380 (model, steps,
scheduler) schedules for each of the ~100 samplers would take over half an hour. The schedules are
therefore grouped by what a sampler's control flow can tell apart: the model, the step count, and per
sigma whether it is exactly 0, exactly 1 (the flow start: alpha = 0, lambda = -inf), at sigma_max, at
sigma_min, another value, non-finite, or equal to its neighbour. One schedule of each group runs (52
groups); every (model, steps, scheduler) cell is in exactly one group (checked). The crash of issue 17
(one step from sigma = 1 on a flow model) is the group ('flow', ('1', '0')).
"""
import math

import pytest
import torch

import comfy_runtime
import samplers as pure

MODELS = (("eps", 3.0), ("v", 3.0), ("flow", 1.0), ("flow", 3.0))
STEPS = (1, 2, 3, 4)
_GRID = {}


def _position_class(v, prev, sigma_max, sigma_min):
    if not math.isfinite(v):
        c = "nonfinite"
    elif v == 0.0:
        c = "0"
    elif v == 1.0:
        c = "1"
    elif v >= sigma_max * (1 - 1e-6):
        c = "max"
    elif v <= sigma_min * (1 + 1e-6):
        c = "min"
    else:
        c = "mid"
    return c + ("=" if prev is not None and v == prev else "")


def structure(sigmas, sigma_max, sigma_min):
    out, prev = [], None
    for v in sigmas.tolist():
        out.append(_position_class(v, prev, sigma_max, sigma_min))
        prev = v
    return tuple(out)


def grid():
    """{(parameterization, shift, structure): (patcher, sigmas, [(steps, scheduler)])} for every cell."""
    if _GRID:
        return _GRID
    comfy_runtime.load()
    import comfy.samplers
    for parameterization, shift in MODELS:
        patcher = comfy_runtime.node("SamplerLabModel").build(parameterization, shift, 6, 3, 0.15, 0, "float32")[0]
        ms = patcher.get_model_object("model_sampling")
        for steps in STEPS:
            for scheduler in comfy.samplers.SCHEDULER_NAMES:
                sigmas = comfy.samplers.calculate_sigmas(ms, scheduler, steps)
                key = (parameterization, shift, structure(sigmas, float(ms.sigma_max), float(ms.sigma_min)))
                _GRID.setdefault(key, (patcher, sigmas, []))[2].append((steps, scheduler))
    return _GRID


def dropdown_specs(pack):
    """Every sampler the pack put into the dropdown, with its spec."""
    specs = {s.name: s for s in list(pack.samplers.SAMPLERS.values())
             + pack.bridge.cfg_pp_specs(list(pack.samplers.SAMPLERS.values()))}
    return {name: specs[name] for name in pack.bridge.registered_names()[0]}


# One test per base name: the base (when the pack registers it) and its _cfg_pp form run together.
CORE_BASES = ("heun", "heunpp2", "dpm_2", "lms", "ipndm", "ipndm_v", "deis", "uni_pc", "uni_pc_bh2", "dpmpp_sde",
              "dpmpp_sde_gpu", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu",
              "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "dpm_2_ancestral", "er_sde", "seeds_2", "seeds_3", "sa_solver",
              "sa_solver_pece", "ddpm", "lcm")
BASES = sorted({n[:-len("_cfg_pp")] if n.endswith("_cfg_pp") else n for n in pure.SAMPLERS}) + list(CORE_BASES)


def test_the_bases_cover_every_registered_name(pack):
    covered = {n for b in BASES for n in (b, b + "_cfg_pp")}
    assert set(dropdown_specs(pack)) <= covered, sorted(set(dropdown_specs(pack)) - covered)


@pytest.fixture(scope="module")
def pack():
    return comfy_runtime.load()


def test_every_cell_is_in_one_group(pack):
    import comfy.samplers
    cells = [(p, sh, cell) for (p, sh, _), (_, _, cs) in grid().items() for cell in cs]
    assert len(cells) == len(set(cells)) == len(MODELS) * len(STEPS) * len(comfy.samplers.SCHEDULER_NAMES)
    per_model = {}
    for (parameterization, shift, _), (_, _, cells) in grid().items():
        per_model.setdefault((parameterization, shift), []).extend(cells)
    for model, cells in per_model.items():
        assert sorted(cells) == sorted((st, sc) for st in STEPS for sc in comfy.samplers.SCHEDULER_NAMES), model
    assert ("flow", 1.0, ("1", "0")) in grid()


def run(patcher, name, sigmas, latent, seed=3):
    """(output, model calls) of one sampler run the way KSampler runs it (CFGGuider.sample)."""
    import comfy.sample
    import comfy.samplers
    calls = []
    model = patcher.clone()

    def count(args):
        calls.append(1)
        return args["denoised"]
    model.set_model_sampler_post_cfg_function(count)
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(1)
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(pos, neg)
    guider.set_cfg(1.0)
    # a fresh copy each run: core's UniPC writes over the last sigma of the tensor it is given
    out = guider.sample(comfy.sample.prepare_noise(latent, seed), latent, comfy.samplers.sampler_object(name),
                        sigmas.clone(), disable_pbar=True, seed=seed)
    return out, len(calls)


def distinct(sigmas):
    sig = [float(v) for v in sigmas.tolist()]
    return sig[:1] + [b for a, b in zip(sig, sig[1:]) if b != a]


@pytest.mark.parametrize("base", BASES)
def test_dropdown_sampler_on_every_schedule(pack, base):
    specs = dropdown_specs(pack)
    names = [n for n in (base, base + "_cfg_pp") if n in specs]
    latent = torch.zeros(1, 4, 2, 2)
    failures = []
    for name_ in names:
        spec = specs[name_]
        for (parameterization, shift, shape), (patcher, sigmas, cells) in grid().items():
            where = (name_, parameterization, shift, shape, cells[0])
            if "nonfinite" in shape:
                # core's kl_optimal at 1 step divides 0 by 0 (ComfyUI 0.3.75): refused by name, no call
                with pytest.raises(ValueError, match="NaN"):
                    run(patcher, name_, sigmas, latent)
                continue
            try:
                out, calls = run(patcher, name_, sigmas, latent)
            except Exception as e:  # noqa: BLE001  (collect every failure, report them together)
                failures.append(where + (f"{type(e).__name__}: {e}",))
                continue
            kind = "flow" if parameterization == "flow" else "ve"
            expected = spec.nfe_on(distinct(sigmas), kind)
            if not bool(torch.isfinite(out).all()):
                failures.append(where + ("non-finite output",))
            elif (calls != expected) if spec.follows_schedule else (calls > expected):
                failures.append(where + (f"{calls} model calls, documented {expected}",))
    assert not failures, "\n".join(map(str, failures))
