"""Adaptive step-size Runge-Kutta samplers with embedded error control (FSAL pairs).

Pairs (tableaus.EMBEDDED): Fehlberg 1(2) (order 1 propagated, as Fehlberg designed it),
Bogacki-Shampine 2(3) and Dormand-Prince 4(5) (higher order propagated: local extrapolation).
Steps are taken in the data-prediction variable of rk_explicit.py (s = e^lambda = alpha/beta,
u = x/beta, u' = D), with rk_explicit.rk_step.

Error control (Hairer-Norsett-Wanner I, Sec. II.4, eqs. (4.10)-(4.13)): the local error of a step
sigma -> sigma' is estimated in x-space, err = beta' ds sum_i (b_i - b_err_i) K_i, and measured as
    E = max over the batch of RMS( err / (atol + rtol * max(|x|, |x_new|)) ).
E <= 1 accepts. The step is controlled in h = log(sigma / sigma') of the model's sigma: for VE that
is the lambda step (ds/s = e^h - 1, so the local error is ~h^(q+1) at every noise level); for flow it
is log(1 + s), uniform in s near sigma = 1 where lambda = -inf. h is rescaled by
min(5, max(0.2, 0.9 E^(-1/(q+1)))), q = min(order, err_order), with no growth right after a rejection,
and capped at max_step (default 1.0: sigma shrinks at most e-fold per step) because embedded
estimates are unreliable far outside the asymptotic range: on the lab model they under-estimate the
true local error 5-10x once h >= 1.5 (the step then spans the whole "which mode" decision).
In half precision, tolerances below the dtype's resolution simply spend the budget.

The schedule: sigmas[0] and sigmas[-1] are honoured exactly; the interior sigmas only give the first
step guess h0 = log(sigmas[0] / sigmas[1]). A schedule ending at 0 is integrated adaptively down to
its last positive sigma, then returns D there, which the FSAL stage already holds (0 extra calls;
the same final step as every fixed-step sampler). A one-step schedule [sigma, 0] is one call: D.

Budget: never more than max_nfe model calls (default: model_calls * steps + 1, the spec's nfe(steps),
i.e. what `steps` accepted FSAL steps cost). Each attempt costs stages - 1 calls (the first stage is
the previous step's FSAL stage; the very first D costs 1). Before each attempt the controller checks
that the attempts left in the budget can still reach the end at the proposed pace; if not, the rest of
the run is taken in equal log-sigma steps of the same pair, each accepted whatever its error estimate
("forced", counted in stats; max_step no longer applies), so the budget is spent on full-order steps
and the end sigma is reached. If the budget cannot pay even one attempt (max_nfe < stages), the r
calls left finish the run with r + 1 first-order DDIM steps (Euler in s), log-spaced to the end,
the first using the D already at hand. Either way the count never exceeds max_nfe.

Reporting: the callback runs once per accepted (or fallback) step. Pass `stats={}` to get, after
the run, stats["nfe"], ["budget"], ["accepted"], ["rejected"], ["forced"] (accepted over budget,
error estimate > 1), ["fallback_steps"] (DDIM) and ["sigmas"]
(the accepted sigma grid, from sigmas[0] to sigmas[-1]).

CFG++ (the <name>_cfg_pp entries; Chung et al. 2024, arXiv:2406.08070, Alg. 1). The generic
construction (samplers/cfgpp.py) substitutes D' for the next SCHEDULE sigma, which an adaptive step
does not land on. Here each attempted step cur -> nxt is known before its stages are evaluated, so
every stage's denoised gets D' for the step end nxt, as the generic construction does for a
fixed-step RK on a schedule through these sigmas: the first stage's first-order part is exactly the
CFG++ step. A stage evaluated AT the step end (c = 1: the FSAL stage, and Dormand-Prince's 6th) would
need the NEXT step's end, not chosen yet; it is substituted for a next step of the same log-sigma size
(the controller's neutral proposal; the end sigma bounds it; 0 after the last step, i.e. D itself).
On acceptance the FSAL stage's raw (D, D_u) is kept and substituted again for the step it starts.
On a grid of equal log-sigma steps the result equals the generic CFG++ form of the same tableau at
fixed steps on that grid (tested).
The error estimate uses the stages' guided D (at the CFG++ stage states), not D'. D' - D =
c_i (D_i - D_u,i) with c_i ~ 1 / ((1 - c) h): the CFG++ shift is a per-step guidance move of size
O(|D - D_u|) that does not shrink with the step, so an estimate built on D' stays O(|D - D_u|) as
h -> 0 and the controller never gets below the tolerance. Measured on the class-conditional lab
mixture (bosh3, rtol = atol = 0.005, cfg 0.4-1): 180-200 accepted steps, most forced, samples far off
the data (normalised distance 2.4-4.0) with D'; 7 steps, as the base sampler takes, with D.
Note that CFG++ guidance accumulates per step, so its strength at a given cfg grows with the number
of steps the controller takes (tighter rtol / atol: stronger guidance), as it grows with the step
count of any fixed-step CFG++ sampler.
Fallback DDIM steps are CFG++ DDIM steps. With D_u = D every substitution is the identity: equal to
the base entry bit for bit. No extra model calls.
"""
import math

import torch

from .cfgpp import PlannedCFGPPModel, step_denoised
from .common import report
from .registry import register
from .rk_explicit import check_sigmas, check_unknown, combine, denoise, resolve, rk_step, sigma_at, snr_time
from .spec import SamplerSpec
from .tableaus import EMBEDDED

_OPTIONS = ("tableau", "rtol", "atol", "max_nfe", "max_step", "stats")
_CFG_PP_CITATION = "Chung et al. 2024 (CFG++, arXiv:2406.08070) Alg. 1"


def _ddim(x, sigma, sigma_next, d, model_kind):
    """First-order data-prediction step (DDIM; Euler in s): exact when D is constant. 0 calls."""
    if sigma_next == 0.0:
        return d
    ds = snr_time(model_kind, sigma_next) - snr_time(model_kind, sigma)
    return combine(x, sigma_next / sigma, sigma_next * ds, (1.0,), (d,))


def _error_norm(err, x, x_new, rtol, atol):
    """max over the batch of the RMS of err / (atol + rtol max(|x|, |x_new|)), as a float (inf if NaN)."""
    scale = torch.maximum(x.abs(), x_new.abs()).float().mul_(rtol).add_(atol)
    e = float((err.float() / scale).square().flatten(1).mean(1).sqrt().max())
    return e if math.isfinite(e) else math.inf


def _check(tableau, rtol, atol, max_nfe, max_step, stats, name):
    tab = resolve(EMBEDDED, tableau, name)
    for opt, v in (("rtol", rtol), ("atol", atol)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name}: {opt} must be a finite number >= 0 (e.g. 0.01), got {v!r}")
    if rtol == 0 and atol == 0:
        raise ValueError(f"{name}: rtol and atol cannot both be 0; set rtol (e.g. 0.01)")
    if max_nfe is not None and (isinstance(max_nfe, bool) or not isinstance(max_nfe, int) or max_nfe < 1):
        raise ValueError(f"{name}: max_nfe must be an integer >= 1 or None (then model_calls * steps + 1), "
                         f"got {max_nfe!r}")
    if isinstance(max_step, bool) or not isinstance(max_step, (int, float)) or not 0 < max_step < math.inf:
        raise ValueError(f"{name}: max_step (the largest log-sigma step) must be a number > 0, e.g. 1.0, "
                         f"got {max_step!r}")
    if stats is not None and not isinstance(stats, dict):
        raise ValueError(f"{name}: stats must be a dict to fill (or None), got {type(stats).__name__}")
    return tab


@torch.no_grad()
def sample_rk_adaptive(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve",
                       tableau="dopri5", rtol=0.005, atol=0.002, max_nfe=None, max_step=1.0, stats=None, uncond=None,
                       **unknown):
    """Adaptive embedded Runge-Kutta (Fehlberg 1(2), Bogacki-Shampine 2(3), Dormand-Prince 4(5)) in the
    data-prediction variable e^lambda (DPM-Solver++ eq. (9), Lu et al. 2022); step-size control of
    Hairer-Norsett-Wanner I, II.4. Order: the propagated solution's (1, 3, 5). Model calls: variable,
    stages - 1 per attempted step (FSAL) + 1, never more than max_nfe (see the module docstring).
    uncond (the bridge passes it for the _cfg_pp entries): CFG++ steps (module docstring, "CFG++").
    """
    name = f"lab_adaptive ({tableau})"
    check_unknown(unknown, name, _OPTIONS)
    tab = _check(tableau, rtol, atol, max_nfe, max_step, stats, name)
    extra_args = {} if extra_args is None else extra_args
    sig = check_sigmas(sigmas, model_kind, name)
    n = len(sig) - 1
    info = {"nfe": 0, "budget": 0, "accepted": 0, "rejected": 0, "forced": 0, "fallback_steps": 0,
            "sigmas": sig[:1]}
    if n >= 1 and not sig[-1] < sig[0]:
        raise ValueError(f"{name}: sigmas must decrease from the first to the last")
    if n >= 1:
        budget = (tab.stages - 1) * n + 1 if max_nfe is None else max_nfe
        guide = None if uncond is None else PlannedCFGPPModel(model, uncond, model_kind)
        x = _integrate(guide or model, x, sig, sigmas, tab, rtol, atol, max_step, budget, info, callback, model_kind,
                       extra_args, guide)
    if stats is not None:
        stats.clear()
        stats.update(info)
    return x


def _stage_plan(tab, cur, nxt, after, model_kind):
    """CFG++ (sigma, target) of the stages 2..s of an attempted step cur -> nxt (see the module docstring)."""
    s0 = snr_time(model_kind, cur)
    ds = snr_time(model_kind, nxt) - s0
    return [(sigma_at(model_kind, s0 + c * ds), nxt) if c < 1.0 else (nxt, after) for c in tab.c[1:]]


def _cast(t, x):
    return t if t.dtype == x.dtype else t.to(x.dtype)


def _raw(guide, x):
    """The unsubstituted (D, D_u) of the guide's last call, in x's dtype."""
    return tuple(_cast(t, x) for t in guide.raw)


def _integrate(model, x, sig, sigmas, tab, rtol, atol, max_step, budget, info, callback, model_kind, extra_args,
               guide=None):
    """The accept/reject loop from sig[0] to sig[-1]; fills info. See the module docstring.
    guide: the PlannedCFGPPModel that `model` is, for CFG++ (None: plain)."""
    start, end = sig[0], sig[-1]
    target = end if end > 0.0 else (sig[-2] if len(sig) > 2 else start)   # last positive sigma
    q = min(tab.order, tab.err_order)
    k1 = denoise(model, x, start, extra_args)
    k1u = None if guide is None else _raw(guide, x)[1]
    info.update(budget=budget, nfe=1)
    cur, h, facmax, i = start, math.log(start / sig[1]) if sig[1] > 0.0 else max_step, 5.0, 0
    while cur > target:
        remaining = math.log(cur / target)
        steps_left = (budget - info["nfe"]) // (tab.stages - 1)   # attempts the budget still pays for
        if steps_left == 0:
            return _fallback(x, cur, (k1, k1u), sig, target, budget - info["nfe"], info, i, sigmas, model, callback,
                             model_kind, extra_args)
        h = min(h, max_step)
        # too slow to finish in budget (or the last affordable attempt): equal steps, no rejection
        forced = steps_left == 1 or h * steps_left < remaining * (1.0 - 1e-12)
        if forced:
            h = remaining / steps_left
        if h >= 0.9 * remaining and (remaining <= max_step or forced):  # no sliver of a last step
            h = remaining
        nxt = target if h == remaining else cur * math.exp(-h)
        k1_step = k1
        if guide is not None:  # stages at the step end target the next step, guessed of the same size h
            guide.plan(_stage_plan(tab, cur, nxt, 0.0 if nxt == target else max(nxt * math.exp(-h), target),
                                   model_kind))
            k1_step = step_denoised(k1, k1u, cur, nxt, model_kind)
        x_new, ks = rk_step(model, x, cur, nxt, tab, tab.stages, k1_step, model_kind, extra_args)
        info["nfe"] += tab.stages - 1
        ds = snr_time(model_kind, nxt) - snr_time(model_kind, cur)
        # CFG++: the estimate uses the stages' guided D, not D' (see the module docstring, "CFG++")
        k_err = ks if guide is None else [k1] + [_cast(r[0], x) for r in guide.raws]
        err = combine(x, 0.0, nxt * ds, [b - be for b, be in zip(tab.b, tab.b_err)], k_err)
        e = _error_norm(err, x, x_new, rtol, atol)
        fac = 0.9 * e ** (-1.0 / (q + 1)) if e > 0 else 5.0
        if e <= 1.0 or forced:
            s_cur = sigmas.new_tensor(cur)
            report(callback, x, i, s_cur, s_cur, k1)
            x, k1, cur, i = x_new, ks[-1], nxt, i + 1          # FSAL: K_s = D(x_new, sigma')
            if guide is not None:
                k1, k1u = _raw(guide, x)                        # the FSAL stage, to re-target for the next step
            info["accepted"] += 1
            info["forced"] += int(forced and e > 1.0)
            info["sigmas"].append(nxt)
            h *= min(facmax, max(0.2, fac))
            facmax = 5.0
        else:
            info["rejected"] += 1
            h *= min(1.0, max(0.2, fac))
            facmax = 1.0
    if end == 0.0:  # final step to 0: D at the last positive sigma, held by the FSAL stage (0 calls)
        s_cur = sigmas.new_tensor(cur)
        report(callback, x, i, s_cur, s_cur, k1)
        x = k1
        info["sigmas"].append(0.0)
    return x


def _fallback(x, cur, held, sig, target, r, info, i, sigmas, model, callback, model_kind, extra_args):
    """Budget below one attempt: r remaining calls -> r + 1 DDIM steps, log-spaced from cur to the end.
    held: (D, D_u) at cur (D_u None: plain; else CFG++ DDIM steps, `model` being a PlannedCFGPPModel)."""
    end = sig[-1]
    n_pos = r + 2 if end > 0.0 else r + 1          # positive grid points, cur first, target last
    grid = [cur]
    if n_pos > 1:
        grid = torch.logspace(math.log10(cur), math.log10(target), n_pos, dtype=torch.float64).tolist()
        grid[0], grid[-1] = cur, target
    if end == 0.0:
        grid.append(0.0)
    d, du = held
    for j in range(len(grid) - 1):
        if j > 0:
            d = denoise(model, x, grid[j], extra_args)
            du = None if du is None else _raw(model, x)[1]
            info["nfe"] += 1
        s_j = sigmas.new_tensor(grid[j])
        report(callback, x, i + j, s_j, s_j, d)
        x = _ddim(x, grid[j], grid[j + 1], d if du is None else step_denoised(d, du, grid[j], grid[j + 1], model_kind),
                  model_kind)
        info["sigmas"].append(grid[j + 1])
        info["fallback_steps"] += 1
    return x


_ENTRIES = (
    ("lab_adaptive_fehlberg12", "fehlberg12", "Fehlberg 1(2) adaptive (order 1, error from order 2)"),
    ("lab_adaptive_bosh23", "bosh3", "Bogacki-Shampine 2(3) adaptive (order 3)"),
    ("lab_adaptive_dopri45", "dopri5", "Dormand-Prince 4(5) adaptive (order 5)"),
)

for _name, _tab_name, _summary in _ENTRIES:
    _t = EMBEDDED[_tab_name]
    _common = dict(fn=sample_rk_adaptive, family="rk_adaptive", order=_t.order, model_calls=_t.stages - 1,
                   warmup_calls=1, follows_schedule=False,
                   options={"tableau": _tab_name, "rtol": 0.005, "atol": 0.002, "max_step": 1.0})
    register(SamplerSpec(
        name=_name, **_common,
        summary=f"{_summary}; steps only set the first step guess and the call budget "
                f"({_t.stages - 1} x steps + 1, an upper bound: nfe(steps) is the budget)",
        citation=_t.citation + "; control: Hairer-Norsett-Wanner I, II.4"))
    register(SamplerSpec(
        name=_name + "_cfg_pp", cfg_pp=True, **_common,
        summary=f"CFG++ {_summary} (guided x0, unconditional noise in every stage; cfg 0.5-2); "
                f"budget {_t.stages - 1} x steps + 1",
        citation=_t.citation + "; control: Hairer-Norsett-Wanner I, II.4; " + _CFG_PP_CITATION))
