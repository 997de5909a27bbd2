"""Helpers shared by the pack's schedulers (pure torch, float64 inside, float32 out).

- loglinear_interp: the Align Your Steps rule for re-sampling a published table to any step
  count (Sabour et al. 2024, Sec. 3.3 / NVIDIA's AYS how-to page): interpolate log-sigma
  linearly over the normalised step position. Written once here; AYS and GITS use it.
- table_sigma: the model's own discrete sigma table read at fractional indices.
- fraction_* / fraction_to_model: map a schedule made for one model family onto another.
- log_ve_to_model / model_to_base_ve: base (VE-equivalent, unshifted) noise <-> model sigma.
- finish: append the final 0, cast to float32, check the contract.
"""
import functools
import json
import math
import os

import torch

from .model_sigmas import discrete_vp_sigmas

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
F64 = torch.float64


def check_steps(steps):
    """steps must be a positive int (ComfyUI passes ints; bools and floats are rejected)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    return steps


def load_table(filename):
    """A published table from schedulers/data/ (JSON, with its citation inside)."""
    with open(os.path.join(DATA_DIR, filename), "r", encoding="utf-8") as f:
        return json.load(f)


def interp(x, xp, fp):
    """Piecewise-linear interpolation like numpy.interp (xp ascending; clamps outside)."""
    x, xp, fp = (torch.as_tensor(v, dtype=F64) for v in (x, xp, fp))
    if xp.numel() == 1:
        return fp.expand_as(x).clone()
    x = x.clamp(xp[0], xp[-1])
    hi = torch.searchsorted(xp, x, right=False).clamp(1, xp.numel() - 1)
    lo = hi - 1
    w = (x - xp[lo]) / (xp[hi] - xp[lo])
    return fp[lo] + w * (fp[hi] - fp[lo])


def loglinear_interp(table, num_points):
    """Re-sample a descending, positive table to num_points values.

    The AYS rule: with positions u_i = i / (len - 1) for the table and v_j = j / (num_points - 1)
    for the output, log sigma(v) is the piecewise-linear interpolant of log sigma(u). At the
    native count (num_points == len(table)) the table is returned unchanged (bit-exact).
    """
    table = torch.as_tensor(table, dtype=F64)
    if num_points == table.numel():
        return table.clone()
    if num_points == 1:
        return table[:1].clone()
    xs = torch.linspace(0.0, 1.0, table.numel(), dtype=F64)
    new_xs = torch.linspace(0.0, 1.0, num_points, dtype=F64)
    return torch.exp(interp(new_xs, xs, table.log()))


def _bracket(index, n):
    """Lower neighbour and weight of fractional indices clamped to [0, n - 1]."""
    idx = torch.as_tensor(index, dtype=F64).clamp(0, n - 1)
    lo = idx.floor().long().clamp(max=max(n - 2, 0))
    return lo, idx - lo


def table_sigma(model_sigmas, index, log_space=True):
    """The model's ascending sigma table read at fractional indices (clamped to [0, N-1]).

    log_space=True interpolates log sigma between neighbouring entries (smooth for VE
    tables spanning decades); False interpolates sigma linearly (diffusers' Euler rule).
    Only the neighbouring entries are touched, so long tables (Flux: 10000) cost nothing.
    """
    table = model_sigmas.sigmas.to(F64).cpu()
    n = table.numel()
    if n == 1:
        return table[0].expand_as(torch.as_tensor(index, dtype=F64)).clone()
    lo, w = _bracket(index, n)
    a, b = table[lo], table[lo + 1]
    if log_space:
        return torch.exp((1.0 - w) * a.log() + w * b.log())
    return a + w * (b - a)


def fraction_to_model(model_sigmas, fraction):
    """Position in [0, 1] of the model's table (1 = sigma_max, 0 = sigma_min) -> model sigma."""
    n = model_sigmas.sigmas.numel()
    return table_sigma(model_sigmas, torch.as_tensor(fraction, dtype=F64) * (n - 1))


def fraction_in_table(sigmas, ascending_table):
    """Inverse of table reading: fractional position in [0, 1] of each sigma inside an ascending
    reference table (log-linear between entries, clamped at the ends)."""
    ref = torch.as_tensor(ascending_table, dtype=F64)
    n = ref.numel()
    s = torch.as_tensor(sigmas, dtype=F64).clamp(ref[0], ref[-1])
    hi = torch.searchsorted(ref, s).clamp(1, n - 1)
    lo = hi - 1
    w = (s.log() - ref[lo].log()) / (ref[hi].log() - ref[lo].log())
    return (lo + w) / (n - 1)


def pin_table_ends(sigmas, table, new_max, new_min):
    """Move a published table's end values onto exact ones, leaving its interior knots alone.

    Published tables give their family's sigma_max / sigma_min rounded (AYS: 14.615 and 0.029
    for SD's 14.6146 and 0.029167). sigmas interpolated from `table` (descending) are re-mapped
    by the piecewise log-linear map that fixes every interior knot and sends table[0] ->
    new_max, table[-1] -> new_min, so no point clamps onto an end of the reference range.
    """
    knots = torch.as_tensor(table, dtype=F64).flip(0).log()
    target = knots.clone()
    target[0], target[-1] = math.log(new_min), math.log(new_max)
    return torch.exp(interp(torch.as_tensor(sigmas, dtype=F64).log(), knots, target))


@functools.lru_cache(maxsize=1)
def sd_reference_sigmas():
    """The SD1.x / SDXL discrete sigma table (ascending, float64) the AYS / GITS tables were made
    for; cached, never modified by callers."""
    return discrete_vp_sigmas()


def fraction_log_uniform(sigmas, sigma_min, sigma_max):
    """Fractional position of sigmas in a log-uniform range (continuous EDM-style models)."""
    s = torch.as_tensor(sigmas, dtype=F64).clamp(sigma_min, sigma_max)
    return (s.log() - math.log(sigma_min)) / (math.log(sigma_max) - math.log(sigma_min))


def flow_log_shift(model_sigmas):
    """log k of a flow model's time shift, read from its own table (0 for "ve" models).

    ComfyUI's flow tables hold s_i = shift(t_i), t_i = (i + 1) / N, and every shift in use
    (SD3/Wan time_snr_shift, Flux's exp(mu) form) satisfies logit(s) = log k + logit(t);
    the median over 65 table entries recovers log k without trusting a "shift" attribute.
    """
    if model_sigmas.kind != "flow":
        return 0.0
    table = model_sigmas.sigmas.to(F64).cpu()
    n = table.numel()
    pick = torch.linspace(0, n - 1, min(n, 65), dtype=F64).round().long()
    s = table[pick]
    t = (pick + 1).to(F64) / n
    ok = (s > 0) & (s < 1) & (t < 1)
    if not bool(ok.any()):
        return 0.0
    s, t = s[ok], t[ok]
    return float((torch.log(s) - torch.log1p(-s) - torch.log(t) + torch.log1p(-t)).median())


def log_ve_to_model(model_sigmas, log_sigma_base):
    """Base noise level (log sigma of the VE-equivalent, unshifted process) -> model sigma.

    ve: sigma = exp(log sigma). flow: x = (1 - s) x0 + s n is the VE state scaled by 1 - s with
    sigma_ve = s / (1 - s) (same PF-ODE, same log-SNR), and the model's time shift k multiplies
    sigma_ve, so s = sigmoid(log sigma_base + log k): shift honoured as ComfyUI's own
    time-based schedules honour it.
    """
    log_sigma_base = torch.as_tensor(log_sigma_base, dtype=F64)
    if model_sigmas.kind == "flow":
        return torch.sigmoid(log_sigma_base + flow_log_shift(model_sigmas))
    return torch.exp(log_sigma_base)


def model_to_base_ve(model_sigmas, sigma):
    """Inverse of log_ve_to_model, as sigma_base (flow sigma 1 -> inf)."""
    sigma = torch.as_tensor(sigma, dtype=F64)
    if model_sigmas.kind == "flow":
        return sigma / (1.0 - sigma) / math.exp(flow_log_shift(model_sigmas))
    return sigma


def finish(sigmas):
    """Append the final 0 and return float32 sigmas (steps + 1 values).

    Checks the contract on the way out: finite, non-increasing, positive before the 0.
    """
    s = torch.as_tensor(sigmas, dtype=F64).reshape(-1)
    out = torch.cat([s, s.new_zeros(1)]).to(torch.float32)
    if not bool(torch.isfinite(out).all()) or bool((out[:-1] <= 0).any()):
        raise ValueError("schedule produced non-finite or non-positive sigmas; check the options")
    if bool((out[1:] > out[:-1]).any()):
        raise ValueError("schedule is not non-increasing; check the options")
    return out
