"""Cell planning: the grid of runs from up to three axes, equal-cost (equal NFE) step counts,
the order cells run in (grouped by reference), and stable keys for the resume cache."""
import hashlib
import json
import math
from dataclasses import dataclass, field

import torch

from .axes import SweepAxisError, check_axes, format_value

PARAMS = ("sampler", "scheduler", "steps", "cfg", "denoise", "seed", "controlnet_end", "shift", "boundary")
OPTIONAL_PARAMS = ("shift", "boundary")     # None unless an axis sets them: the model's own shift, one model
AXIS_PARAM = {"steps": "steps", "sampler": "sampler", "scheduler": "scheduler", "cfg": "cfg",
              "denoise": "denoise", "seed": "seed", "controlnet_end": "controlnet_end", "shift": "shift",
              "boundary": "boundary"}
# What the exact answer depends on. shift: the ODE of a flow model does not change with it, but the
# schedule's last sigma does, and that is where every sampler's answer is read; boundary: which model
# solves which part of the ODE.
REFERENCE_PARAMS = ("cfg", "denoise", "seed", "controlnet_end", "shift", "boundary")


@dataclass
class Cell:
    index: int                      # position in the flat list (grid-major, row, column)
    grid: int                       # z index
    row: int                        # y index
    col: int                        # x index
    params: dict                    # PARAMS: sampler, scheduler, steps, cfg, ..., shift, boundary
    nfe_budget: int = None          # equal-cost mode: model calls allowed
    labels: dict = field(default_factory=dict)   # axis -> header text
    planned_calls: int = None       # equal-cost mode: calls the plan expects
    calls_source: str = None        # where calls per step came from: "spec" or "probe"

    def reference_key(self):
        return tuple(self.params[k] for k in REFERENCE_PARAMS)

    def group_key(self):
        """Everything except the step count: one convergence curve per group."""
        return tuple((k, self.params[k]) for k in PARAMS if k != "steps")


def plan_cells(axes, base, equal_cost=False, cell_limit=64):
    """axes: [(axis, values)] for x, y, z ('none' axes have [None]). base: default params.

    Returns (cells, shape) with shape = (grids, rows, cols). In equal-cost mode the steps axis
    holds NFE budgets and cells get steps later (resolve_equal_cost)."""
    axes = list(axes) + [("none", [None])] * (3 - len(axes))
    check_axes(axes)
    missing = [k for k in PARAMS if k not in base and k not in OPTIONAL_PARAMS]
    if missing:
        raise SweepAxisError(f"base settings miss {', '.join(missing)}")
    base = dict({k: None for k in OPTIONAL_PARAMS}, **base)
    if equal_cost and not any(a == "steps" for a, _ in axes):
        raise SweepAxisError("equal_cost needs a steps axis: its values are read as model-call budgets (NFE), "
                             "e.g. steps axis \"12,24,48\"")
    (xa, xv), (ya, yv), (za, zv) = axes
    total = len(xv) * len(yv) * len(zv)
    if total > cell_limit:
        raise SweepAxisError(f"this sweep has {total} cells ({len(xv)} x {len(yv)} x {len(zv)}), above cell_limit "
                             f"{cell_limit}; remove values from an axis or raise cell_limit")
    cells = []
    for g, z in enumerate(zv):
        for r, y in enumerate(yv):
            for c, x in enumerate(xv):
                params, labels, budget = dict((k, base[k]) for k in PARAMS), {}, None
                for axis, value in ((za, z), (ya, y), (xa, x)):
                    if axis == "none":
                        continue
                    if axis == "steps" and equal_cost:
                        budget, params["steps"] = int(value), None
                        labels[axis] = f"NFE {value}"
                    else:
                        params[AXIS_PARAM[axis]] = value
                        labels[axis] = format_value(axis, value)
                cells.append(Cell(len(cells), g, r, c, params, budget, labels))
    return cells, (len(zv), len(yv), len(xv))


def steps_for_budget(budget, calls_per_step, extra_calls=0):
    """Largest step count whose model calls (calls_per_step * steps + extra_calls) fit the budget.

    Returns (steps, calls). At least one step, even if one step is over budget."""
    if not calls_per_step or calls_per_step <= 0:
        return 1, None
    steps = int(math.floor((budget - extra_calls) / calls_per_step + 1e-9))
    steps = max(1, steps)
    return steps, int(round(calls_per_step * steps + extra_calls))


def calls_from_probe(steps_a, calls_a, steps_b, calls_b):
    """Calls per step and the fixed extra calls from two counted runs (a line through two points)."""
    if steps_a == steps_b:
        raise ValueError("the probe needs two different step counts")
    per_step = (calls_b - calls_a) / (steps_b - steps_a)
    return per_step, calls_a - per_step * steps_a


def resolve_equal_cost(cells, calls_for):
    """Fill params['steps'] of equal-cost cells. calls_for(cell) -> (calls_per_step, extra_calls, source)."""
    for cell in cells:
        if cell.nfe_budget is None:
            continue
        per_step, extra, source = calls_for(cell)
        steps, calls = steps_for_budget(cell.nfe_budget, per_step, extra)
        cell.params["steps"] = steps
        cell.planned_calls = calls
        cell.calls_source = source


def run_order(cells):
    """Cells grouped by reference (one reference in memory at a time), first appearance first."""
    order, seen = [], {}
    for cell in cells:
        seen.setdefault(cell.reference_key(), []).append(cell)
    for group in seen.values():
        order.extend(group)
    return order


def stable_hash(obj, length=16):
    """Hex digest of a JSON-able description (sorted keys), stable across runs and machines."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:length]


def tensor_digest(t):
    """Stable digest of a tensor's shape, dtype and values (for the resume key)."""
    if t is None:
        return None
    t = t.detach().to("cpu").contiguous()
    h = hashlib.sha1(f"{tuple(t.shape)}|{t.dtype}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def resample_sigmas(sigmas, steps):
    """A connected SIGMAS schedule resampled to `steps` steps by log-linear interpolation
    (keeps the first sigma and a final zero). Returns a float tensor of steps + 1 values."""
    s = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    if s.numel() < 2:
        raise SweepAxisError("the connected SIGMAS has fewer than 2 values; connect a real schedule")
    if steps == s.numel() - 1:
        return s.to(torch.float32)
    zero_end = float(s[-1]) == 0.0
    body = s[:-1] if zero_end else s
    if bool((body <= 0).any()):
        raise SweepAxisError("the connected SIGMAS has zero or negative values before its end; the steps axis "
                             "cannot resample it (disconnect sigmas or use the scheduler input)")
    points = steps if zero_end else steps + 1
    pos = torch.linspace(0, body.numel() - 1, points, dtype=torch.float64)
    lo = pos.floor().long().clamp(max=body.numel() - 1)
    hi = (lo + 1).clamp(max=body.numel() - 1)
    w = pos - lo
    logs = body.log()
    out = (logs[lo] * (1 - w) + logs[hi] * w).exp()
    if zero_end:
        out = torch.cat([out, out.new_zeros(1)])
    return out.to(torch.float32)
