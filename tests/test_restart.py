"""Restart sampling (samplers/restart.py): spec parser, exact forward jump, Heun order, NFE, distribution."""
import math

import pytest
import torch

from numerics import fit_slope, lab_problem, reference, rms
from samplers.registry import SAMPLERS
from samplers.restart import (RestartSegment, default_segments, parse_segments, plan, renoise,
                              restart_nfe, sample_lab_restart)


def ve_schedule(smax, n, end=0.0):
    sig = torch.linspace(math.log(smax), math.log(0.03), n, dtype=torch.float64).exp()
    return torch.cat([sig, torch.tensor([end], dtype=torch.float64)])


def test_parse_segments():
    assert parse_segments("0.1-2.0:2x4") == [RestartSegment(0.1, 2.0, 2, 4)]
    assert parse_segments(" 0.1-2:1x3, 1e-1-5e-1:3X2 ") == [RestartSegment(0.1, 2.0, 1, 3),
                                                             RestartSegment(0.1, 0.5, 3, 2)]
    assert parse_segments("") == [] and parse_segments("none") == []
    for bad in ("0.1-2.0", "2.0-0.1:1x2", "0.1-2.0:0x3", "a-b:1x1", "0.1-2.0:1x2x3"):
        with pytest.raises(ValueError, match=re_escape(bad.split(",")[0])):
            parse_segments("0.3-0.9:1x1," + bad)


def re_escape(s):
    import re
    return re.escape(s)


@pytest.mark.parametrize("kind, lo, hi", [("ve", 0.3, 2.0), ("flow", 0.2, 0.7), ("flow", 0.3, 1.0)])
def test_renoise_gives_the_exact_forward_marginal(kind, lo, hi):
    """x_lo = a_lo x0 + b_lo n  ->  renoise  ->  x_hi - a_hi x0 must be N(0, b_hi^2) noise."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(64, 4, 8, 8, generator=g, dtype=torch.float64)
    n1, n2 = (torch.randn(64, 4, 8, 8, generator=g, dtype=torch.float64) for _ in range(2))
    a = (lambda s: 1.0) if kind == "ve" else (lambda s: 1.0 - s)
    x_hi = renoise(a(lo) * x0 + lo * n1, lo, hi, n2, kind)
    resid = x_hi - a(hi) * x0
    assert float(resid.pow(2).mean()) / hi ** 2 == pytest.approx(1.0, abs=0.04)
    assert float(resid.mean()) == pytest.approx(0.0, abs=0.02 * hi)


def test_without_segments_equals_heun_and_is_second_order():
    model, x, smax = lab_problem("eps")
    s0, s1 = 3.0, 0.05
    x = reference(model, x, smax, s0, steps=32)   # any start point will do
    ref = reference(model, x, s0, s1, steps=192)
    steps, errs = [16, 24, 32, 48], []
    for n in steps:
        sig = torch.linspace(math.log(s0), math.log(s1), n + 1, dtype=torch.float64).exp()
        model.calls = 0
        errs.append(rms(sample_lab_restart(model, x, sig, segments=""), ref))
        assert model.calls == 2 * n
    assert abs(-fit_slope(steps, errs) - 2.0) < 0.3


@pytest.mark.parametrize("param", ["eps", "flow"])
@pytest.mark.parametrize("segments", [None, "", "0.05-0.6:3x6"])
def test_nfe_matches_formula(param, segments):
    model, x, smax = lab_problem(param)
    kind = model.model_kind
    sig = ve_schedule(smax, 20) if kind == "ve" else torch.linspace(1.0, 0.0, 21, dtype=torch.float64)
    model.calls = 0
    sample_lab_restart(model, x, sig, extra_args={"seed": 5}, model_kind=kind, segments=segments)
    main = 2 * 20 - 1
    lo, hi = (0.1, 2.0) if kind == "ve" else (0.1 / 1.1, 2.0 / 3.0)   # the paper's SD range, flow-mapped
    inside = int(((sig[1:] >= lo) & (sig[1:] <= hi)).sum())            # main steps spent in the range
    extra = {None: 2 * 1 * max(2, 20 // 4, inside), "": 0, "0.05-0.6:3x6": 2 * 3 * 6}[segments]
    assert model.calls == restart_nfe(sig, segments, kind) == main + extra
    assert SAMPLERS["lab_restart"].model_calls == 2


@pytest.mark.parametrize("param, segments", [("eps", "0.05-1.5:3x10"), ("flow", "0.05-0.6:3x10")])
def test_restart_keeps_the_data_distribution(param, segments):
    """Samples land at normalised distance ~1 from their nearest component, as exact samples do
    (a VE-form jump on the flow model gives ~1.05; noise 1.3x too strong gives ~1.3)."""
    model, x, smax = lab_problem(param, batch=32, seed=3)
    kind = model.model_kind
    sig = ve_schedule(smax, 30) if kind == "ve" else torch.linspace(1.0, 0.0, 31, dtype=torch.float64)
    out = sample_lab_restart(model, x, sig, extra_args={"seed": 1}, model_kind=kind, segments=segments)
    exact, _ = model.mixture.sample(256, generator=torch.Generator().manual_seed(0))
    target = float(model.mixture.nearest(exact)[1].mean())
    got = float(model.mixture.nearest(out)[1].mean())
    assert abs(got - target) < 0.03, (got, target)
    plain = sample_lab_restart(model, x, sig, model_kind=kind, segments="")
    assert rms(out, plain) > 1e-3          # the restarts did change the samples


def test_seed_determinism_and_options():
    model, x, smax = lab_problem("flow")
    sig = torch.linspace(1.0, 0.0, 13, dtype=torch.float64)
    run = lambda seed: sample_lab_restart(model, x, sig, extra_args={"seed": seed},  # noqa: E731
                                          model_kind="flow", segments="0.1-0.5:2x3")
    assert torch.equal(run(7), run(7)) and not torch.equal(run(7), run(8))
    with pytest.raises(ValueError, match="t_max must be <= 1"):
        sample_lab_restart(model, x, sig, model_kind="flow", segments="0.1-1.5:1x2")
    with pytest.raises(ValueError, match="t_max must be above"):
        plan(sig, "0.55-0.57:1x2", "flow")    # t_min snaps to 0.583


def test_default_segments_scale_to_the_schedule():
    sig = ve_schedule(14.6, 40)
    inside = int(((sig[1:] >= 0.1) & (sig[1:] <= 2.0)).sum())
    assert inside > 10   # Karras spends most steps at low noise: the restart pass is as fine as that
    assert default_segments(sig, "ve") == [RestartSegment(0.1, 2.0, 2, inside)]
    coarse = default_segments(torch.cat([torch.linspace(14.6, 2.5, 37, dtype=torch.float64),
                                         torch.tensor([1.0, 0.3, 0.05, 0.0], dtype=torch.float64)]), "ve")
    assert coarse == [RestartSegment(0.1, 2.0, 2, 10)]   # few steps in the range: 40 // 4
    flow = default_segments(torch.linspace(1.0, 0.0, 21), "flow")
    assert flow[0].t_min == pytest.approx(0.1 / 1.1) and flow[0].t_max == pytest.approx(2.0 / 3.0)
    assert default_segments(ve_schedule(14.6, 6), "ve") == []         # too few steps
    assert default_segments(ve_schedule(1.0, 20), "ve") == []         # split schedule below t_max
