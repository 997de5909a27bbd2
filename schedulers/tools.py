"""Pure sigma tools: SIGMAS from text, blending two schedules, resampling to a new step count.
Shapes are kept in log sigma (the variable schedules are designed in); a final 0 is kept as 0."""
import re

import torch

from .common import loglinear_interp

F64 = torch.float64


def parse_sigmas(text):
    """'14.6, 7.0, 3.1 1.2; 0' -> tensor. Errors name the bad token; values must be finite,
    >= 0 and non-increasing (a split schedule may end above 0)."""
    tokens = [t for t in re.split(r"[,;\s\[\]]+", str(text).strip()) if t]
    if len(tokens) < 2:
        raise ValueError("sigmas: give at least two values, e.g. '14.6, 3.0, 0.5, 0'")
    values = []
    for t in tokens:
        try:
            v = float(t)
        except ValueError:
            raise ValueError(f"sigmas: {t!r} is not a number") from None
        if not (v == v and abs(v) != float("inf")) or v < 0:
            raise ValueError(f"sigmas: {t!r} must be a finite number >= 0")
        if values and v > values[-1]:
            raise ValueError(f"sigmas: {t!r} is larger than the value before it; sigmas must not increase")
        values.append(v)
    return torch.tensor(values, dtype=torch.float32)


def _split(sigmas):
    s = torch.as_tensor(sigmas, dtype=F64).reshape(-1)
    if s.numel() < 2:
        raise ValueError("sigmas: need at least 2 values (1 step)")
    if not bool(torch.isfinite(s).all()) or bool((s[1:] > s[:-1]).any()):
        raise ValueError("sigmas: must be finite and non-increasing")
    zero = bool(s[-1] == 0)
    return (s[:-1] if zero else s), zero


def rescale(sigmas, steps):
    """The same shape with `steps` steps: log-linear resampling of the positive part (AYS rule)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    pos, zero = _split(sigmas)
    if bool((pos <= 0).any()):
        raise ValueError("sigmas: only the last value may be 0")
    out = loglinear_interp(pos, steps if zero else steps + 1)
    if zero:
        out = torch.cat([out, out.new_zeros(1)])
    return out.to(torch.float32)


def blend(a, b, weight):
    """(1 - weight) a + weight b in log sigma, step by step; b is resampled to a's length first."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be between 0 and 1, got {weight}")
    pa, za = _split(a)
    pb, zb = _split(b)
    if za != zb:
        raise ValueError("sigmas_a and sigmas_b must both end at 0 or both not")
    steps = pa.numel() if za else pa.numel() - 1
    pb = _split(rescale(b, steps))[0]
    out = torch.exp((1 - weight) * pa.log() + weight * pb.log())
    if za:
        out = torch.cat([out, out.new_zeros(1)])
    return out.to(torch.float32)
