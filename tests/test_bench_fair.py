"""bench/fair.py's statistics and NFE planning against exact answers (no ComfyUI)."""
import math
import random

import pytest

from bench import fair


def test_steps_for_hits_the_nfe_exactly_or_refuses():
    assert fair.steps_for(lambda n: n, 7) == 7
    assert fair.steps_for(lambda n: 2 * n - 1, 9) == 5
    assert fair.steps_for(lambda n: 2 * n - 1, 8) is None       # heun cannot make 8 calls on a schedule to 0
    assert fair.steps_for(fair.CORE_ODE["heunpp2"], 1) == 1


def test_quantile_matches_linear_interpolation():
    vals = [4.0, 1.0, 3.0, 2.0]
    assert fair.quantile(vals, 0.0) == 1.0 and fair.quantile(vals, 1.0) == 4.0
    assert fair.quantile(vals, 0.5) == 2.5
    assert fair.quantile(vals, 0.9) == pytest.approx(3.7)


def test_bootstrap_interval_of_a_constant_is_the_constant():
    assert fair.bootstrap_ci([2.5] * 10) == (2.5, 2.5)
    assert fair.bootstrap_ci([2.5] * 10, "median") == (2.5, 2.5)


def test_bootstrap_interval_covers_the_mean_at_about_its_level():
    """90% percentile intervals of the mean of 40 normal samples cover the true mean ~90% of the time
    (200 repeats: the count of hits is binomial(200, 0.9): 165..193 holds with probability > 0.999)."""
    rng = random.Random(0)
    hits = 0
    for k in range(200):
        vals = [rng.gauss(1.0, 1.0) for _ in range(40)]
        lo, hi = fair.bootstrap_ci(vals, boot=400, seed=k)
        hits += lo <= 1.0 <= hi
    assert 165 <= hits <= 193, hits


def test_summary_and_clearing_rule():
    a = fair.summarise([1.0, 1.1, 0.9, 1.0] * 5, [True] * 20)
    b = fair.summarise([2.0, 2.1, 1.9, 2.0] * 5, [True] * 19 + [False])
    assert a["mean"] == pytest.approx(1.0) and a["median"] == pytest.approx(1.0) and b["agreement"] == 0.95
    assert fair.clears(a, b) and not fair.clears(b, a)
    c = fair.summarise([1.0, 1.1, 0.9, 1.0] * 5, [True] * 20)
    assert not fair.clears(a, c)        # equal samples: no difference is claimed
    assert fair.best_by_mean([b, a, {"mean": math.nan}]) is a
