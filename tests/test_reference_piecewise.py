"""lab.reference.piecewise_reference_solution: RK4 restarted at the denoiser's jumps.

Exact answer: with D(x, sigma) = c(sigma) x and c piecewise constant, dx/dlog(sigma) = (1 - c) x, so
x(sigma_stop) = x0 * exp(sum_k (1 - c_k) * dtau_k) over the pieces - computed here independently of
the solver. That is the shape of a ComfyUI eps model's denoiser in sigma (nearest of 1000 timesteps).
"""
import math

import pytest
import torch

from lab.mixture import LabMixtureError
from lab.reference import nearest_timestep_breakpoints, piecewise_reference_solution, reference_solution

JUMPS = [8.0, 3.0, 1.2, 0.5, 0.11]          # sigmas where c changes
LEVELS = [0.9, 0.2, 1.7, 0.4, 1.1, 0.6]     # c on each piece, from high sigma to low


def c_of(sigma):
    return LEVELS[sum(1 for j in JUMPS if sigma < j)]


def denoiser(seen=None):
    def d(x, sigma):
        if seen is not None:
            seen.append(sigma)
        return c_of(sigma) * x
    return d


def exact(x0, start, stop):
    edges = [start] + [j for j in JUMPS if stop < j < start] + [stop]
    total = sum((1 - c_of(math.sqrt(hi * lo))) * (math.log(lo) - math.log(hi)) for hi, lo in zip(edges, edges[1:]))
    return x0 * math.exp(total)


def test_piecewise_matches_the_exact_solution_where_plain_rk4_does_not():
    x0 = torch.randn(2, 4, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    want = exact(x0, 14.0, 0.03)
    got = piecewise_reference_solution(denoiser(), x0, 14.0, 0.03, JUMPS, steps_per_piece=32)
    assert (got - want).abs().max() / want.abs().max() < 1e-8
    plain = reference_solution(denoiser(), x0, 14.0, 0.03, steps=160, sigma_floor=1e-9)  # no final denoise: sigma_end > 0
    assert (plain - want).abs().max() / want.abs().max() > 1e-4   # the jumps cost plain RK4 its order


def test_order_four_inside_pieces():
    """Halving the step inside each piece divides the error by about 2^4 (smooth part: c also varies in sigma)."""
    def d(x, sigma):
        return (c_of(sigma) + 0.3 * math.sin(sigma)) * x
    x0 = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    ref = piecewise_reference_solution(d, x0, 14.0, 0.03, JUMPS, steps_per_piece=256, max_step=10.0)
    e1 = (piecewise_reference_solution(d, x0, 14.0, 0.03, JUMPS, 8, max_step=10.0) - ref).abs().item()
    e2 = (piecewise_reference_solution(d, x0, 14.0, 0.03, JUMPS, 16, max_step=10.0) - ref).abs().item()
    assert 3.5 < math.log2(e1 / e2) < 4.5


def test_evaluations_stay_inside_their_piece():
    seen = []
    piecewise_reference_solution(denoiser(seen), torch.ones(1, 4, 2, 2), 14.0, 0.03, JUMPS, max_step=10.0)
    assert len(seen) == 4 * (len(JUMPS) + 1)
    assert not any(any(abs(s - j) < 1e-9 * j for j in JUMPS) for s in seen)
    for k in range(len(JUMPS) + 1):   # 4 calls per piece, each on the piece's own level
        assert {c_of(s) for s in seen[4 * k:4 * k + 4]} == {LEVELS[k]}


def test_wide_pieces_get_more_steps():
    """One RK4 step across a wide smooth piece is not enough; max_step splits it (error ~ h^4)."""
    def d(x, sigma):
        return (0.5 + 0.3 * math.sin(3 * math.log(sigma))) * x
    x0 = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    fine = reference_solution(d, x0, 150.0, 14.0, steps=4096)
    one = piecewise_reference_solution(d, x0, 150.0, 14.0, [], max_step=10.0)
    split = piecewise_reference_solution(d, x0, 150.0, 14.0, [], max_step=0.05)
    assert (one - fine).abs().item() > 1e-2
    assert (split - fine).abs().item() < 1e-7


def test_bad_range_is_refused():
    with pytest.raises(LabMixtureError, match="sigma_stop"):
        piecewise_reference_solution(denoiser(), torch.ones(1), 1.0, 0.0, JUMPS)


def test_breakpoints_are_log_midpoints():
    got = nearest_timestep_breakpoints(torch.tensor([2.0, 0.0, 1.0]))
    assert got == pytest.approx([math.exp(0.5), math.exp(1.5)])


def test_heun_step_is_second_order_inside_pieces():
    from lab.reference import heun_step

    def d(x, sigma):
        return (c_of(sigma) + 0.3 * math.sin(sigma)) * x
    x0 = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    ref = piecewise_reference_solution(d, x0, 14.0, 0.03, JUMPS, steps_per_piece=256, max_step=10.0)
    e1, e2 = ((piecewise_reference_solution(d, x0, 14.0, 0.03, JUMPS, n, max_step=10.0, step=heun_step) - ref).abs().item()
              for n in (32, 64))
    assert 1.8 < math.log2(e1 / e2) < 2.2
