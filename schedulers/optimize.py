"""Schedule optimisation for the user's own model (dynamic programming over a fine sigma grid).

GITS (Chen et al. 2024, "On the Trajectory Regularity of ODE-based Diffusion Sampling", Sec. 4):
trace the exact probability-flow trajectory on a fine grid sigma_0 > ... > sigma_G = 0 for a few
calibration noises, define the cost of jumping from grid point g to h with one first-order step,
and pick the N jumps from sigma_0 to 0 that minimise the summed cost -- exactly, by dynamic
programming, in O(N G^2) tensor operations and no model calls beyond the tracing.

Step cost (first-order step, DDIM = Euler in ComfyUI's x-space, VE and flow alike):
    x_hat = r X_g + (alpha_h - r alpha_g) D_g,  r = beta_h / beta_g
    c[g, h] = RMS(x_hat - X_h) over the calibration batch,
where X_g are reference states and D_g = D(X_g, sigma_g). The sum of local errors bounds the global
error of the sampler to first order (errors propagate with factor ~1 along the PF-ODE), so the DP
minimises an upper estimate of the final error. Higher-order samplers share the first-order part of
each step, so the schedule transfers; the optimizer node reports the measured error of the user's
own sampler on separate evaluation noises (calibration and evaluation seeds differ).

Refinement: local costs add up only approximately (errors made at high noise are partly forgotten,
guided ODEs can switch modes), so the DP gives starting points -- the plain and a contraction-weighted
local cost (weight s / sqrt(s^2 + sigma^2), s the data scale, the factor by which a Gaussian's PF-ODE
shrinks an error made at sigma) and Karras snapped to the grid -- and `refine` then does coordinate
descent on the grid indices with the TRUE final error of the user's own sampler on the calibration
noises (`evaluate(path)`), so the result never does worse than its best start on those noises.

Tracing: Heun (order 2, 2 calls per substep; its first stage is D(X_g, sigma_g), reused for the
cost) with `substeps` log-uniform substeps between grid points; the last grid point 0 is
D(X_{G-1}, sigma_{G-1}) as in every k-diffusion sampler. Pure torch.
"""
import math

import torch

from .common import finish


def alpha_beta(kind, sigma):
    """x = alpha x0 + beta n in ComfyUI's x-space: VE (eps/v) alpha = 1; flow alpha = 1 - sigma."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    return (1.0 - sigma if kind == "flow" else torch.ones_like(sigma)), sigma


def candidate_grid(sigma_max, sigma_min, points, kind="ve"):
    """points sigmas log-uniform in the VE-equivalent sigma from sigma_max to sigma_min, then 0."""
    if points < 2:
        raise ValueError(f"grid points must be at least 2, got {points}")
    to_ve = (lambda s: s / (1 - s)) if kind == "flow" else (lambda s: s)
    hi = to_ve(min(sigma_max, 1 - 1e-4)) if kind == "flow" else sigma_max
    lo = to_ve(sigma_min)
    g = torch.exp(torch.linspace(math.log(hi), math.log(lo), points, dtype=torch.float64))
    if kind == "flow":
        g = g / (1 + g)
        g[0] = sigma_max
    return torch.cat([g, g.new_zeros(1)])


@torch.no_grad()
def trace(denoise, x, grid, kind="ve", substeps=2, on_point=None):
    """Reference states X[g] and denoised D[g] on the grid (lists of tensors, len G+1 / G).

    denoise(x, sigma) -> x0 estimate. on_point(g) is called after each grid point (progress,
    interrupts). Model calls: 2 * substeps * (G - 1) + 1.
    """
    states, denoised = [x], []
    for g in range(len(grid) - 2):
        s0, s1 = float(grid[g]), float(grid[g + 1])
        subs = torch.exp(torch.linspace(math.log(s0), math.log(s1), substeps + 1, dtype=torch.float64))
        for k in range(substeps):
            a, b = float(subs[k]), float(subs[k + 1])
            d1 = denoise(x, a)
            if k == 0:
                denoised.append(d1)
            k1 = (x - d1) / a
            x_e = x + (b - a) * k1
            k2 = (x_e - denoise(x_e, b)) / b
            x = x + (b - a) * 0.5 * (k1 + k2)
        states.append(x)
        if on_point is not None:
            on_point(g)
    last = denoise(x, float(grid[-2]))
    denoised.append(last)
    states.append(last)
    return states, denoised


def step_costs(grid, states, denoised, kind="ve"):
    """c[g, h] for all g < h (inf elsewhere): RMS error of one first-order step g -> h."""
    n = len(grid)
    cost = torch.full((n, n), math.inf, dtype=torch.float64)
    target = torch.stack([s.to(torch.float64) for s in states])          # (n, B, ...)
    for g in range(n - 1):
        a_g, b_g = alpha_beta(kind, grid[g])
        hs = grid[g + 1:]
        a_h, b_h = alpha_beta(kind, hs)
        r = b_h / b_g
        shape = (-1,) + (1,) * states[g].ndim
        x_hat = r.view(shape) * states[g].to(torch.float64) + \
            (a_h - r * a_g).view(shape) * denoised[g].to(torch.float64)
        err = (x_hat - target[g + 1:]).pow(2).flatten(1).mean(1).sqrt()
        cost[g, g + 1:] = err
    return cost


def best_path(cost, steps):
    """Indices 0 = i_0 < i_1 < ... < i_steps = n-1 minimising the summed cost (exact DP)."""
    n = cost.shape[0]
    if not 1 <= steps <= n - 1:
        raise ValueError(f"steps must be between 1 and {n - 1} (grid points); got {steps}: "
                         f"raise grid_points or lower the budget")
    best = torch.full((n,), math.inf, dtype=torch.float64)
    best[0] = 0.0
    back = []
    for _ in range(steps):
        total = best.unsqueeze(1) + cost                                   # (from, to)
        best, arg = total.min(0)
        back.append(arg)
    path = [n - 1]
    for arg in reversed(back):
        path.append(int(arg[path[-1]]))
    path.reverse()
    return path, float(best[n - 1])


def contraction_weights(grid, states, kind="ve"):
    """s / sqrt(s^2 + sigma_ve^2) per grid point, s = RMS spread of the traced final samples."""
    final = states[-1].to(torch.float64)
    s = float(final.std()) or 1.0
    _, beta = alpha_beta(kind, grid)
    alpha, _ = alpha_beta(kind, grid)
    sigma_ve = beta / alpha.clamp(min=1e-8)
    return s / torch.sqrt(s ** 2 + sigma_ve ** 2)


def snapped(grid, sigmas):
    """Grid indices nearest (in log sigma) to a schedule, made strictly increasing; last = the 0."""
    g = grid[:-1].to(torch.float64).clamp(min=1e-12).log()
    idx = []
    for s in sigmas[:-1]:
        i = int((g - torch.log(torch.as_tensor(float(s), dtype=torch.float64).clamp(min=1e-12))).abs().argmin())
        idx.append(max(i, idx[-1] + 1) if idx else 0)
    idx = [min(i, len(grid) - 2 - (len(idx) - 1 - k)) for k, i in enumerate(idx)]
    return idx + [len(grid) - 1]


def start_paths(grid, states, denoised, steps, kind="ve", baseline=None):
    """Candidate index paths: DP on the plain and the contraction-weighted cost, and the baseline."""
    cost = step_costs(grid, states, denoised, kind)
    paths = [best_path(cost, steps)[0],
             best_path(cost * contraction_weights(grid, states, kind).unsqueeze(0), steps)[0]]
    if baseline is not None:
        paths.append(snapped(grid, baseline))
    return [p for i, p in enumerate(paths) if p not in paths[:i]]


def refine(path, evaluate, passes=2, span=2, on_eval=None):
    """Coordinate descent over interior grid indices with evaluate(path) -> error. Returns (path, error)."""
    path = list(path)
    best = evaluate(path)
    for _ in range(passes):
        improved = False
        for k in range(1, len(path) - 1):
            for d in [v for v in range(-span, span + 1) if v]:
                cand = path[k] + d
                if not path[k - 1] < cand < path[k + 1]:
                    continue
                trial = path[:k] + [cand] + path[k + 1:]
                err = evaluate(trial)
                if on_eval is not None:
                    on_eval()
                if err < best:
                    best, path, improved = err, trial, True
        if not improved:
            break
    return path, best


def optimal_schedule(grid, states, denoised, steps, kind="ve", evaluate=None, baseline=None, on_eval=None):
    """(sigmas with steps + 1 values ending at 0, calibration error or summed local cost).

    Without `evaluate`: the DP on the plain local cost. With it: the best start path by evaluate,
    refined by coordinate descent."""
    if evaluate is None:
        path, total = best_path(step_costs(grid, states, denoised, kind), steps)
    else:
        starts = start_paths(grid, states, denoised, steps, kind, baseline)
        scored = sorted((evaluate(p), p) for p in starts)
        path, total = refine(scored[0][1], evaluate, on_eval=on_eval)
    return finish(grid[path].to(torch.float64)[:-1]), total
