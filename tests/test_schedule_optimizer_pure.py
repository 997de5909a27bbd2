"""The schedule optimizer's DP against brute force, and its schedule against standard ones on the
lab model's exact denoiser (pure torch; evaluation noises differ from calibration noises)."""
import itertools
import math

import torch

from lab import LabKModel, default_mixture, reference_solution
from lab.simple_solvers import euler as _euler, karras_sigmas
from schedulers.optimize import best_path, candidate_grid, optimal_schedule, step_costs, trace


def test_dp_equals_brute_force():
    gen = torch.Generator().manual_seed(0)
    n = 8
    cost = torch.rand(n, n, generator=gen, dtype=torch.float64)
    cost = torch.where(torch.arange(n).unsqueeze(1) < torch.arange(n).unsqueeze(0), cost, torch.full_like(cost, math.inf))
    for steps in range(1, n):
        path, total = best_path(cost, steps)
        brute = min(sum(float(cost[p[i], p[i + 1]]) for i in range(steps))
                    for mid in itertools.combinations(range(1, n - 1), steps - 1) for p in [(0,) + mid + (n - 1,)])
        assert math.isclose(total, brute, rel_tol=1e-12) and len(path) == steps + 1 and path[0] == 0






def test_optimised_schedule_beats_karras_on_new_noise():
    mix = default_mixture((4, 8, 8))
    model = LabKModel(mix, "eps")
    smax, smin = 14.614642, 0.0292
    grid = candidate_grid(smax, smin, 48)
    calib = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * smax
    states, denoised = trace(model.denoise, calib, grid)
    assert torch.isfinite(states[-1]).all() and len(states) == len(grid) and len(denoised) == len(grid) - 1
    evals = torch.randn(8, 4, 8, 8, generator=torch.Generator().manual_seed(99), dtype=torch.float64) * smax
    exact = reference_solution(model.denoise, evals, smax, 0.0, steps=1024)
    for steps in (6, 10):
        sig, _ = optimal_schedule(grid, states, denoised, steps)
        assert sig.shape == (steps + 1,) and float(sig[-1]) == 0.0 and bool((sig[:-1] > sig[1:]).all())
        err_opt = (euler(model, evals, sig.double()) - exact).pow(2).mean().sqrt()
        err_k = (euler(model, evals, karras(smax, smin, steps)) - exact).pow(2).mean().sqrt()
        print(f"euler {steps} steps: optimised {float(err_opt):.4f} vs karras {float(err_k):.4f}")
        assert err_opt < err_k


def test_flow_grid_and_costs():
    grid = candidate_grid(1.0, 0.02, 16, kind="flow")
    assert float(grid[0]) == 1.0 and float(grid[-1]) == 0.0 and bool((grid[:-1] > grid[1:]).all())
    mix = default_mixture((4, 4, 4))
    model = LabKModel(mix, "flow")
    x = torch.randn(2, 4, 4, 4, dtype=torch.float64)
    states, denoised = trace(model.denoise, x, grid, kind="flow")
    cost = step_costs(grid, states, denoised, kind="flow")
    assert torch.isfinite(cost[0, 1:]).all() and bool(torch.isinf(cost[1, :2]).all())


def test_refined_schedule_with_guidance_beats_karras_on_new_noise():
    """cfg 3 (mode switches make local costs unreliable): the refined schedule, fitted on 16
    calibration noises, has lower median error than Karras on 8 other noises."""
    mix = default_mixture((4, 8, 8))
    smax, smin = 14.614642, 0.0292

    def guided(n):
        return LabKModel(mix, "eps", class_weights=torch.tensor([[0.0, 1.0, 0.0]] * n, dtype=torch.float64), cfg=3.0)

    def med(a, b):
        return float((a - b).pow(2).flatten(1).mean(1).sqrt().median())
    calib = torch.randn(16, 4, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * smax
    evals = torch.randn(8, 4, 8, 8, generator=torch.Generator().manual_seed(99), dtype=torch.float64) * smax
    grid = candidate_grid(smax, smin, 48)
    states, denoised = trace(guided(16).denoise, calib, grid)
    seen = []

    def evaluate(path):
        err = med(euler(guided(16), calib, grid[path].double()), states[-1])
        seen.append(err)
        return err
    sig, calib_err = optimal_schedule(grid, states, denoised, 8, evaluate=evaluate, baseline=karras(smax, smin, 8))
    assert calib_err == min(seen)  # refinement keeps the best it evaluated
    exact = reference_solution(guided(8).denoise, evals, smax, 0.0, steps=1024)
    ratio = med(euler(guided(8), evals, sig.double()), exact) / med(euler(guided(8), evals, karras(smax, smin, 8)), exact)
    print(f"cfg 3, euler 8 steps: optimised / karras median error on evaluation noises = {ratio:.2f}")
    assert ratio < 0.9


def euler(model, x, sigmas):
    return _euler(model.denoise, x, sigmas)


def karras(smax, smin, n):
    return karras_sigmas(n, smax, smin)
