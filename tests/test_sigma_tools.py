"""Sigma tools (pure) against exact expectations."""
import math

import pytest
import torch

from schedulers.tools import blend, parse_sigmas, rescale


def test_parse():
    s = parse_sigmas("[14.6, 7.0; 3.1 1.2, 0]")
    assert s.tolist() == pytest.approx([14.6, 7.0, 3.1, 1.2, 0.0])
    for bad, word in (("1, x, 0", "'x'"), ("1, 2, 0", "'2'"), ("1, -1", "'-1'"), ("1, nan", "'nan'"), ("5", "two")):
        with pytest.raises(ValueError, match=word):
            parse_sigmas(bad)


def test_rescale_keeps_shape_and_ends():
    s = torch.tensor([10.0, 5.0, 2.5, 1.25, 0.0])           # geometric: log-linear in position
    assert torch.equal(rescale(s, 4), s)
    r = rescale(s, 8)
    assert r.shape == (9,) and float(r[0]) == 10.0 and float(r[-2]) == pytest.approx(1.25) and float(r[-1]) == 0.0
    ratios = r[1:-1] / r[:-2]
    assert torch.allclose(ratios, torch.full_like(ratios, (1.25 / 10.0) ** (1 / 7)), atol=1e-6)  # 8 values, 7 equal log gaps
    split = rescale(torch.tensor([8.0, 4.0, 2.0]), 4)         # not ending at 0: stays so
    assert split.shape == (5,) and float(split[-1]) == pytest.approx(2.0)


def test_blend_is_geometric_mean_at_half():
    a = torch.tensor([8.0, 2.0, 0.5, 0.0])
    b = torch.tensor([2.0, 1.0, 0.125, 0.0])
    m = blend(a, b, 0.5)
    assert m.tolist() == pytest.approx([4.0, math.sqrt(2.0), 0.25, 0.0])
    assert torch.equal(blend(a, b, 0.0), a)
    with pytest.raises(ValueError, match="weight"):
        blend(a, b, 1.5)
    with pytest.raises(ValueError, match="both end at 0"):
        blend(a, torch.tensor([2.0, 1.0]), 0.5)
