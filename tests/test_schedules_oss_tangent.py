"""OSS tables (schedulers/oss.py, data/oss.json) and the tangent schedule (schedulers/tangent.py).

Expected values: the published OSS tables (typed here from the paper's repository / ComfyUI's node,
independently of the JSON file), core's log-linear interpolation rule written with numpy, and the arctan
curve in closed form with math.atan.
"""
import math

import numpy as np
import pytest
import torch

import schedulers
from schedulers.model_sigmas import flow_model_sigmas, sd_model_sigmas
from schedulers.oss import oss
from schedulers.tangent import tangent, tangent_fractions

PUBLISHED = {  # Pei, Hu, Gu 2025 (arXiv:2503.21774) via ComfyUI nodes_optimalsteps.py NOISE_LEVELS
    "flux": [0.9968, 0.9886, 0.9819, 0.975, 0.966, 0.9471, 0.9158, 0.8287, 0.5512, 0.2808, 0.001],
    "wan": [1.0, 0.997, 0.995, 0.993, 0.991, 0.989, 0.987, 0.985, 0.98, 0.975, 0.973, 0.968, 0.96, 0.946,
            0.927, 0.902, 0.864, 0.776, 0.539, 0.208, 0.001],
}
FLOW3, FLOW1, SD = flow_model_sigmas(3.0), flow_model_sigmas(1.0), sd_model_sigmas()


def _core_loglinear(table, n):
    """ComfyUI nodes_optimalsteps.loglinear_interp, written out with numpy."""
    xs = np.linspace(0, 1, len(table))
    ys = np.log(np.array(table)[::-1])
    return np.exp(np.interp(np.linspace(0, 1, n), xs, ys))[::-1]


@pytest.mark.parametrize("model_type", sorted(PUBLISHED))
def test_oss_native_steps_reproduce_the_table(model_type):
    table = PUBLISHED[model_type]
    n = len(table) - 1
    got = oss(FLOW3, n, model_type=model_type, mapping="table")
    assert got.tolist() == torch.tensor(table[:-1] + [0.0], dtype=torch.float32).tolist()
    pinned = oss(FLOW3, n, model_type=model_type)   # the dropdown's mapping: interior untouched
    assert pinned[1:-1].tolist() == got[1:-1].tolist() and float(pinned[0]) == 1.0


@pytest.mark.parametrize("steps", [4, 7, 15, 30])
@pytest.mark.parametrize("model_type", sorted(PUBLISHED))
def test_oss_other_step_counts_follow_core_rule(model_type, steps):
    expect = _core_loglinear(PUBLISHED[model_type], steps + 1)
    expect[-1] = 0.0
    got = oss(FLOW3, steps, model_type=model_type, mapping="table")
    assert np.allclose(got.numpy(), expect, rtol=1e-6, atol=0)


def test_oss_chroma_table_and_ve_models():
    chroma = oss(FLOW3, 40, model_type="chroma", mapping="table")
    assert abs(float(chroma[0]) - 0.992) < 1e-7 and abs(float(chroma[-2]) - 0.048) < 1e-7
    sd = oss(SD, 10, model_type="flux")
    assert float(sd[0]) == float(np.float32(SD.sigma_max)) and bool((sd[1:] < sd[:-1]).all())


def test_oss_bad_input():
    with pytest.raises(ValueError, match="model_type"):
        oss(FLOW3, 10, model_type="sdxl")
    with pytest.raises(ValueError, match="mapping"):
        oss(FLOW3, 10, mapping="sigma")


@pytest.mark.parametrize("pivot,slope", [(0.6, 6.0), (0.3, 2.0), (0.8, 20.0)])
def test_tangent_closed_form(pivot, slope):
    steps = 12
    g = [0.5 - math.atan(slope * (i / steps - pivot)) / math.pi for i in range(steps + 1)]
    f = [(v - g[-1]) / (g[0] - g[-1]) for v in g[:-1]]
    assert np.allclose(tangent_fractions(steps, pivot, slope).numpy(), f, rtol=0, atol=1e-15)
    # unshifted flow table t_i = (i + 1)/1000: fraction f sits at index 999 f, sigma = (1 + 999 f)/1000
    # (up to the log-linear reading between neighbouring entries: < 1e-4 relative above sigma 0.03)
    got = tangent(FLOW1, steps, pivot, slope)
    exp = [1.0] + [(1 + 999 * v) / 1000 for v in f[1:]]
    assert np.allclose(got.numpy()[:-1], exp, rtol=1e-4, atol=0) and float(got[-1]) == 0.0


def test_tangent_shape():
    drops = -np.diff(tangent(FLOW1, 20, pivot=0.6, slope=12.0).numpy()[:-1])
    assert abs(int(drops.argmax()) - 0.6 * 20) <= 1          # steepest where the pivot says
    near_simple = tangent(FLOW1, 10, pivot=0.5, slope=1e-3).numpy()[:-1]
    assert np.allclose(near_simple, [(1 + 999 * (1 - i / 10)) / 1000 for i in range(10)], rtol=1e-3)
    assert schedulers.SCHEDULERS["lab_bong_tangent"].options == {"pivot": 0.6, "slope": 6.0}


@pytest.mark.parametrize("kwargs,word", [({"pivot": 0.0}, "pivot"), ({"pivot": 1.2}, "pivot"),
                                         ({"slope": 0.0}, "slope"), ({"slope": -1.0}, "slope"),
                                         ({"slope": float("nan")}, "slope")])
def test_tangent_bad_input(kwargs, word):
    with pytest.raises(ValueError, match=word):
        tangent(FLOW3, 10, **kwargs)
