"""Restart sampling (Xu et al. 2023) on a 2nd-order Heun ODE solver.

Xu, Deng, Ziming, Tian, Jaakkola, "Restart Sampling for Improving Generative Processes",
NeurIPS 2023, arXiv:2306.14878, Algorithm 1. The main pass is Heun's method in sigma (Karras et
al. 2022, Algorithm 1 without churn): 2 calls per step, Euler (1 call) on a last step to 0.
When the main pass reaches t_min of a restart segment (t_min snapped to the nearest schedule
sigma), it repeats `repeats` times: jump forward to t_max with fresh noise, then solve back to
t_min with `steps` Heun steps on a Karras (rho = 7) grid, the paper's discretisation.

Forward jump (exact marginal of the forward process, x = alpha x0 + beta n):
    x_max = (alpha_max / alpha_min) x_min + sqrt(beta_max^2 - (alpha_max beta_min / alpha_min)^2) n
VE: x + sqrt(t_max^2 - t_min^2) n. Flow: alpha = 1 - sigma, beta = sigma.

NFE = main Heun calls + sum over segments of repeats * 2 * steps (see restart_nfe).
Segments are given in the schedule's own sigma units, as a string "t_min-t_max:repeats x steps"
(e.g. "0.1-2.0:2x4", several separated by commas) or a list of RestartSegment.

CFG++ (lab_restart_cfg_pp; Chung et al. 2024, arXiv:2406.08070, Alg. 1): restart's steps leave the
schedule, so the generic construction (samplers/cfgpp.py: D' for the next SCHEDULE sigma) would
target the wrong sigma inside a segment. Here every Heun step s -> t gets D' for the sigmas it
actually steps on: its stage at s for the step s -> t (the first-order part is exactly the CFG++
step), its stage at t for the next step of the same pass (the segment's next grid sigma, then the
schedule's). With D_u = D every substitution is the identity: equal to lab_restart bit for bit.
"""
import math
import re
from dataclasses import dataclass

import torch

from .cfgpp import step_denoised
from .common import alpha_beta, report, to_d
from .noise_scale import noise_scale
from .registry import register
from .spec import SamplerSpec

_CITATION = "Xu et al. 2023, Restart Sampling for Improving Generative Processes, arXiv:2306.14878, Alg. 1"
_NUM = r"(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
_TOKEN = re.compile(rf"^{_NUM}-{_NUM}:(\d+)[xX](\d+)$")
DEFAULT_RANGE_VE = (0.1, 2.0)   # the paper's / reference Stable Diffusion setting, in VE sigma


@dataclass(frozen=True)
class RestartSegment:
    t_min: float
    t_max: float
    repeats: int
    steps: int


def validate_segment(seg, where="segment"):
    """Check one segment; ValueError names `where` and the fix."""
    if not (seg.t_min > 0 and seg.t_max > seg.t_min and math.isfinite(seg.t_max)):
        raise ValueError(f"restart {where}: need 0 < t_min < t_max, got {seg.t_min}-{seg.t_max}")
    if not (1 <= seg.repeats <= 100 and 1 <= seg.steps <= 1000):
        raise ValueError(f"restart {where}: repeats must be 1..100 and steps 1..1000, "
                         f"got {seg.repeats}x{seg.steps}")
    return seg


def parse_segments(text):
    """Parse "0.1-2.0:2x4, 0.5-1.0:1x3" -> [RestartSegment]; "" or "none" -> []. ValueError names the token."""
    if text is None:
        return []
    out = []
    for token in (t for t in re.split(r"[,;\s]+", str(text).strip()) if t):
        if token.lower() == "none":
            continue
        m = _TOKEN.match(token)
        if m is None:
            raise ValueError(f"restart segment {token!r} is not 't_min-t_max:REPEATSxSTEPS' (e.g. 0.1-2.0:2x4)")
        seg = RestartSegment(float(m.group(1)), float(m.group(2)), int(m.group(3)), int(m.group(4)))
        out.append(validate_segment(seg, f"segment {token!r}"))
    return out


def default_segments(sigmas, model_kind="ve"):
    """The paper's SD setting [0.1, 2.0] (VE sigma; flow: s / (1 + s)) scaled to the schedule:
    1 repeat (2 from 36 steps) of max(2, steps // 4) Heun steps, and never fewer than the main
    schedule spends inside the range (a coarser restart pass adds more error than the restart
    contracts: at 10 Karras steps, cfg 2, 2 steps left samples 1.5x too far from the data); none
    below 10 steps or when the schedule does not span the range."""
    sig = [float(v) for v in sigmas.tolist()]
    n = len(sig) - 1
    lo, hi = DEFAULT_RANGE_VE
    if model_kind == "flow":
        lo, hi = lo / (1 + lo), hi / (1 + hi)
    if n < 10 or sig[0] < hi or min(s for s in sig if s > 0) > lo * 1.5:
        return []
    inside = sum(1 for s in sig[1:] if lo <= s <= hi)
    return [RestartSegment(lo, hi, 1 if n < 36 else 2, max(2, n // 4, inside))]


def _karras(s_max, s_min, steps, rho=7.0):
    """EDM grid (Karras et al. 2022, eq. 5) from s_max down to s_min, steps + 1 values."""
    a, b = s_max ** (1 / rho), s_min ** (1 / rho)
    return [(a + i / steps * (b - a)) ** rho for i in range(steps)] + [s_min]


def plan(sigmas, segments=None, model_kind="ve"):
    """{main step index k: [restart grids]}: after the main step ending at sigmas[k] run each grid."""
    sig = [float(v) for v in sigmas.tolist()]
    explicit = segments is not None
    if segments is None:
        segments = default_segments(sigmas, model_kind)
    elif isinstance(segments, str):
        segments = parse_segments(segments)
    else:
        segments = [validate_segment(RestartSegment(*s) if not isinstance(s, RestartSegment) else s)
                    for s in segments]
    out = {}
    positive = [k for k in range(1, len(sig)) if sig[k] > 0]
    for seg in segments:
        if model_kind == "flow" and seg.t_max > 1.0:
            raise ValueError(f"restart segment {seg.t_min}-{seg.t_max}: t_max must be <= 1 for flow models")
        if not positive:
            continue
        k = min(positive, key=lambda j: abs(math.log(sig[j] / seg.t_min)))
        if seg.t_max <= sig[k]:
            if explicit:
                raise ValueError(f"restart segment {seg.t_min}-{seg.t_max}: t_max must be above the schedule "
                                 f"sigma {sig[k]:.4g} nearest to t_min")
            continue
        grid = _karras(seg.t_max, sig[k], seg.steps)
        out.setdefault(k, []).extend([grid] * seg.repeats)
    return out


def restart_nfe(sigmas, segments=None, model_kind="ve"):
    """Model calls of sample_lab_restart: 2 per main step (1 if it ends at 0) + 2 per restart step."""
    sig = [float(v) for v in sigmas.tolist()]
    main = sum(1 if sig[i + 1] <= 0 else 2 for i in range(len(sig) - 1))
    return main + sum(2 * (len(g) - 1) for grids in plan(sigmas, segments, model_kind).values() for g in grids)


def renoise(x, s_min, s_max, noise, model_kind):
    """Forward-noise x from sigma s_min to s_max (exact marginal: Xu et al. 2023, Alg. 1 line 7)."""
    a_lo, b_lo = alpha_beta(model_kind, s_min)
    a_hi, b_hi = alpha_beta(model_kind, s_max)
    ratio = float(a_hi) / float(a_lo)
    return x * ratio + noise * math.sqrt(max(b_hi ** 2 - (ratio * b_lo) ** 2, 0.0))


def heun_step(model, x, s, t, s_in, extra_args, uncond=None, after=0.0, model_kind="ve"):
    """Heun (Karras et al. 2022, Alg. 1) from sigma s to t: returns (x_t, denoised at s).

    CFG++ (uncond given): the stage at s is substituted for the step s -> t (its Euler part is then
    exactly the CFG++ step of Chung et al. 2024, Alg. 1), the stage at t for the step t -> `after`,
    the next sigma the pass steps to below t (what the generic construction, samplers/cfgpp.py, does
    with the next schedule sigma). The returned denoised is the guided D (for previews)."""
    denoised = model(x, s_in * s, **extra_args)
    d_step = denoised if uncond is None else step_denoised(denoised, uncond(), s, t, model_kind)
    d = to_d(x, s, d_step)
    x_e = x + d * (t - s)
    if t <= 0:
        return x_e, denoised
    d_end = model(x_e, s_in * t, **extra_args)
    if uncond is not None:
        d_end = step_denoised(d_end, uncond(), t, after, model_kind)
    d2 = to_d(x_e, t, d_end)
    return x + (d + d2) * (0.5 * (t - s)), denoised


def _below(values, sigma):
    """The first of `values` strictly below sigma (0.0 if none): the end of the next step from sigma."""
    return next((v for v in values if v < sigma), 0.0)


@torch.no_grad()
def sample_lab_restart(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve",
                       segments=None, noise_sampler=None, uncond=None):
    """Restart sampling (Xu et al. 2023, Alg. 1) with Heun (order 2, 2 calls per step).

    segments: None = default_segments; "" = plain Heun; a spec string or RestartSegment list.
    Noise from extra_args["seed"] (0 if absent), or noise_sampler(t_min, t_max) -> N(0, I) like x
    for the jump t_min -> t_max. NFE: restart_nfe(sigmas, segments).
    uncond (the bridge passes it for lab_restart_cfg_pp): CFG++ (Chung et al. 2024, Alg. 1) on every
    Heun step, main pass and segments alike, each for the sigmas that pass actually steps on (see
    heun_step); the forward jumps add fresh noise and have no model term, so they are unchanged.
    """
    extra_args = {} if extra_args is None else extra_args
    if model_kind not in ("ve", "flow"):
        raise ValueError(f"model_kind must be 've' or 'flow', got {model_kind!r}")
    if noise_sampler is not None and not callable(noise_sampler):
        raise ValueError(f"noise_sampler must be a function noise(sigma, sigma_next) or None, got {noise_sampler!r}")
    restarts = plan(sigmas, segments, model_kind)
    scale = noise_scale(model)   # fresh noise at the model's noise scale (samplers/noise_scale.py)
    sig = [float(v) for v in sigmas.tolist()]
    s_in = x.new_ones([x.shape[0]])
    gen = None
    for i in range(len(sig) - 1):
        x, denoised = heun_step(model, x, sig[i], sig[i + 1], s_in, extra_args, uncond,
                                _below(sig[i + 2:], sig[i + 1]), model_kind)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        for grid in restarts.get(i + 1, []):
            if noise_sampler is not None:
                noise = noise_sampler(grid[-1], grid[0])
            else:
                if gen is None:
                    gen = torch.Generator(device=x.device).manual_seed(int(extra_args.get("seed", 0) or 0))
                noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            x = renoise(x, grid[-1], grid[0], noise * scale, model_kind)
            for j, (s, t) in enumerate(zip(grid[:-1], grid[1:])):
                # after the segment's last step (t = t_min = sigmas[i + 1]) the pass goes on down the schedule
                after = _below(grid[j + 2:] + sig[i + 2:], t)
                x, denoised = heun_step(model, x, s, t, s_in, extra_args, uncond, after, model_kind)
                report(callback, x, i, s_in[0] * s, s_in[0] * s, denoised)
    return x


def _restart_calls(sig, model_kind, options):
    return restart_nfe(torch.tensor(sig, dtype=torch.float64), options.get("segments"), model_kind)


register(SamplerSpec(
    name="lab_restart", fn=sample_lab_restart, family="restart", order=2, model_calls=2,
    stochastic=True, warmup_calls=-1,  # the step to 0 is Euler; restart segments add restart_nfe()
    nfe_schedule=_restart_calls,
    summary="Restart: Heun ODE + noise jumps t_min -> t_max re-solved (default [0.1, 2] VE sigma)",
    citation=_CITATION))
register(SamplerSpec(
    name="lab_restart_cfg_pp", fn=sample_lab_restart, family="restart", order=2, model_calls=2,
    stochastic=True, warmup_calls=-1, cfg_pp=True, follows_schedule=False, nfe_schedule=_restart_calls,
    summary="CFG++ Restart: every Heun step (main pass and restart segments) in CFG++ form "
            "(guided x0, unconditional noise; cfg 0.5-2), noise jumps unchanged",
    citation=_CITATION + "; Chung et al. 2024 (CFG++) Alg. 1"))
