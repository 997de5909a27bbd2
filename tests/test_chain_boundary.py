"""The hand-off split rule (schedulers/boundary.py) and the sampler chain (samplers/chain.py), pure torch.

Expected values: the split rule as Wan 2.2 states it (high-noise model while t >= boundary), counted
by hand on small schedules; a chain equals its parts run one after the other, and the one sampler when
both parts are the same."""
import functools

import pytest
import torch

import samplers
from numerics import lab_problem, rms
from samplers.chain import chain
from schedulers.boundary import PRESETS, split, split_index_at_fraction, split_index_at_sigma

SIG = torch.tensor([1.0, 0.95, 0.9, 0.875, 0.8, 0.5, 0.2, 0.0])


@pytest.mark.parametrize("boundary,k", [(1.0, 1), (0.9, 3), (0.875, 4), (0.87, 4), (0.5, 6), (0.2, 7), (0.0, 7)])
def test_split_at_sigma_counts_steps_starting_at_or_above(boundary, k):
    assert split_index_at_sigma(SIG, boundary) == k
    high, low = split(SIG, k)
    assert torch.equal(torch.cat([high, low[1:]]), SIG) and high[-1] == low[0]


@pytest.mark.parametrize("fraction,k", [(0.0, 0), (0.5, 4), (0.3, 2), (1.0, 7)])
def test_split_at_fraction_of_steps(fraction, k):
    assert split_index_at_fraction(SIG, fraction) == k


def test_presets_are_the_published_wan_boundaries():
    assert PRESETS["Wan 2.2 T2V A14B (sigma 0.875)"] == 0.875 and PRESETS["Wan 2.2 I2V A14B (sigma 0.900)"] == 0.9


@pytest.mark.parametrize("fn,value,words", [
    (split_index_at_sigma, 1.2, ["boundary", "outside the schedule", "1.2"]),
    (split_index_at_sigma, -0.1, ["boundary", "outside"]),
    (split_index_at_sigma, float("nan"), ["boundary", "finite"]),
    (split_index_at_fraction, 1.5, ["boundary", "fraction", "[0, 1]"]),
])
def test_bad_boundary_names_the_input_and_the_fix(fn, value, words):
    with pytest.raises(ValueError) as err:
        fn(SIG, value)
    assert all(w in str(err.value) for w in words), str(err.value)
    with pytest.raises(ValueError, match="sigmas"):
        fn(torch.tensor([1.0]), 0.5)


# ---- chain ------------------------------------------------------------------------------------

def _fn(name):
    spec = samplers.SAMPLERS[name]
    return functools.partial(spec.fn, model_kind="flow", **spec.options)


def _flow_problem(shape):
    model, x, _ = lab_problem("flow", shape=shape, batch=2)
    return model, x, torch.cat([torch.linspace(1.0, 0.05, 9, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])


@pytest.mark.parametrize("shape", [(4, 8, 8), (2, 3, 4, 4)])   # image and video latents
def test_chain_equals_its_parts_in_sequence(shape):
    model, x, sig = _flow_problem(shape)
    k = 4
    run = chain(_fn("lab_plms"), _fn("lab_res_2s"), lambda s: k)
    seen = []
    out = run(model, x, sig, callback=seen.append)
    expect = _fn("lab_res_2s")(model, _fn("lab_plms")(model, x, sig[:k + 1]), sig[k:])
    assert torch.equal(out, expect) and out.shape == x.shape
    assert [d["i"] for d in seen] == list(range(9))         # progress continues across the switch


def test_chain_of_one_sampler_equals_that_sampler():
    """Multistep history carries: a chain of PLMS with itself is PLMS over the whole schedule."""
    model, x, sig = _flow_problem((4, 8, 8))
    whole = _fn("lab_plms")(model, x, sig)
    assert torch.equal(chain(_fn("lab_plms"), _fn("lab_plms"), lambda s: 4, same=True)(model, x, sig), whole)
    parts = chain(_fn("lab_plms"), _fn("lab_plms"), lambda s: 4)(model, x, sig)
    assert rms(parts, whole) > 1e-6   # not `same`: part two restarts its history (first-order warm-up step)


@pytest.mark.parametrize("k", [0, 9])
def test_chain_switch_at_the_ends_is_one_sampler(k):
    model, x, sig = _flow_problem((4, 8, 8))
    only = _fn("lab_res_2s") if k == 0 else _fn("lab_plms")
    out = chain(_fn("lab_plms"), _fn("lab_res_2s"), lambda s: k)(model, x, sig, extra_args={"seed": 3})
    assert torch.equal(out, only(model, x, sig))


def test_chain_part_two_gets_a_new_seed_unless_it_shares_a_noise_source():
    got = []

    def part(model, x, sigmas, extra_args=None, callback=None, disable=None, **opts):
        got.append((extra_args["seed"], sorted(opts)))
        return x
    sig = torch.tensor([1.0, 0.5, 0.0])
    chain(part, part, lambda s: 1)(None, torch.zeros(1), sig, extra_args={"seed": 7})
    chain(part, part, lambda s: 1, run_options=lambda x, s, e: ({"noise_sampler": 1}, {"noise_sampler": 1}))(
        None, torch.zeros(1), sig, extra_args={"seed": 7})
    assert got == [(7, []), (8, []), (7, ["noise_sampler"]), (7, ["noise_sampler"])]
