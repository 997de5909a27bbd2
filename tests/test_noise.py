"""samplers.noise: seeded Gaussian stream and virtual Brownian tree (checked against theory)."""
import math

import pytest
import torch

from samplers.noise import (BrownianNoise, GaussianNoise, StepBrownianNoise, brownian_time, mix_seed,
                            noise_sampler_for)

X = torch.zeros(16, 4, 32, 32, dtype=torch.float64)   # 65536 numbers per draw


def _var(t):
    return float(t.to(torch.float64).pow(2).mean())


def test_gaussian_same_seed_same_noise_and_different_seeds_differ():
    a, b, c = GaussianNoise(X, 7), GaussianNoise(X, 7), GaussianNoise(X, 8)
    za, zb, zc = a(1.0, 0.5), b(1.0, 0.5), c(1.0, 0.5)
    assert torch.equal(za, zb)
    assert not torch.allclose(za, zc)
    assert not torch.equal(a(0.5, 0.1), za)          # a stream: each call is fresh
    assert za.shape == X.shape and za.dtype == X.dtype and za.device == X.device


def test_gaussian_is_standard_normal():
    z = GaussianNoise(X, 3)()
    assert abs(float(z.mean())) < 0.02                # SE 1/256
    assert abs(_var(z) - 1.0) < 0.03                  # SE sqrt(2/65536) = 0.0055


def test_gaussian_is_not_comfyui_initial_noise_stream():
    """ComfyUI's initial latent is torch.manual_seed(seed) on the CPU: the injected noise must differ."""
    x = torch.zeros(2, 4, 8, 8)
    initial = torch.randn(x.shape, generator=torch.Generator().manual_seed(11))
    assert not torch.allclose(GaussianNoise(x, 11)(), initial)


def test_noise_keeps_low_precision_dtype():
    x = torch.zeros(2, 4, 8, 8, dtype=torch.float16)
    assert GaussianNoise(x, 1)().dtype == torch.float16
    assert BrownianNoise(x, 1)(0.9, 0.5).dtype == torch.float16
    assert GaussianNoise(x, 1, rng_device=None)().shape == x.shape


def test_seed_none_is_reproducible_under_torch_manual_seed():
    torch.manual_seed(0)
    a = GaussianNoise(X, None)()
    torch.manual_seed(0)
    assert torch.equal(a, GaussianNoise(X, None)())
    with pytest.raises(ValueError, match="seed"):
        GaussianNoise(X, "abc")


def test_brownian_increment_variance_equals_interval_length():
    bn = BrownianNoise(X, 5, model_kind="flow")
    for a, b in [(0.0, 1.0), (0.1, 0.35), (0.5, 0.51), (0.3, 0.3003)]:
        dw, du = bn.increment(a, b)
        assert du == pytest.approx(b - a)
        assert _var(dw) / (b - a) == pytest.approx(1.0, abs=0.03)


def test_brownian_adjacent_increments_add_up_and_are_independent():
    bn = BrownianNoise(X, 9, model_kind="flow")
    a, b, c = 0.8, 0.45, 0.2
    w_ac, _ = bn.increment(a, c)
    w_ab, _ = bn.increment(a, b)
    w_bc, _ = bn.increment(b, c)
    assert torch.allclose(w_ac, w_ab + w_bc, atol=1e-12)
    corr = float((w_ab * w_bc).mean()) / math.sqrt(_var(w_ab) * _var(w_bc))
    assert abs(corr) < 0.02                            # SE 1/256


def test_brownian_path_does_not_depend_on_step_count_or_query_order():
    """A coarse step's noise equals the sqrt(du)-weighted sum of the fine steps' noises,
    each from a FRESH sampler with the same seed (VE times, queried in a different order)."""
    x = torch.zeros(2, 4, 8, 8, dtype=torch.float64)
    sig = [14.6, 6.0, 2.0, 0.7, 0.1]
    u = [brownian_time("ve", s) for s in sig]
    coarse = BrownianNoise(x, 4, model_kind="ve")(sig[0], sig[-1]) * math.sqrt(u[0] - u[-1])
    fine = BrownianNoise(x, 4, model_kind="ve")
    parts = [fine(sig[i], sig[i + 1]) * math.sqrt(u[i] - u[i + 1]) for i in reversed(range(4))]
    assert torch.allclose(coarse, sum(parts), atol=1e-12)


def test_brownian_same_seed_same_noise_different_seeds_differ():
    a = BrownianNoise(X, 1, model_kind="ve")(3.0, 1.0)
    b = BrownianNoise(X, 1, model_kind="ve")(3.0, 1.0)
    c = BrownianNoise(X, 2, model_kind="ve")(3.0, 1.0)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert abs(_var(a) - 1.0) < 0.03                    # normalised increment is N(0, 1)


def test_brownian_zero_interval_is_zero_and_bad_arguments_raise():
    x = torch.zeros(1, 4, 4, 4)
    assert torch.count_nonzero(BrownianNoise(x, 1)(0.5, 0.5)) == 0
    with pytest.raises(ValueError, match="model_kind"):
        BrownianNoise(x, 1, model_kind="vp")
    with pytest.raises(ValueError, match="depth"):
        BrownianNoise(x, 1, depth=0)
    with pytest.raises(ValueError, match="noise kind"):
        noise_sampler_for("pink", x, {})


def test_brownian_time_maps_both_kinds_to_unit_interval():
    assert brownian_time("flow", 0.25) == 0.25
    assert brownian_time("ve", 1.0) == 0.5                # same SNR as flow sigma 0.5
    assert brownian_time("ve", 0.0) == 0.0 and brownian_time("ve", math.inf) == 1.0


def test_mix_seed_is_a_fixed_function():
    # splitmix64 (Vigna, prng.di.unimi.it/splitmix64.c) seeded with 0 first outputs 0xE220A8397B1DCDAF: one
    # value folded in from the golden-ratio start is exactly that output, cut to 63 bits (platform independent)
    assert mix_seed(0) == 0xE220A8397B1DCDAF & (2 ** 63 - 1)
    assert mix_seed(1, 2) != mix_seed(2, 1)
    assert 0 <= mix_seed(2 ** 70, -5) < 2 ** 63


# ---- StepBrownianNoise: the samplers' default Brownian source (~2 draws per step) ----

def _karras_u(n, kind="ve"):
    from lab.simple_solvers import karras_sigmas
    return [float(s) for s in karras_sigmas(n)[:-1]]


def test_step_brownian_run_gives_independent_standard_normals():
    """Along a run (any schedule, steps shrinking or not) every normalised increment is N(0, I) and
    different steps are uncorrelated: the bridge draws keep the exact Brownian law."""
    sig = _karras_u(12)
    for kind, s in (("ve", sig), ("flow", [1.0, 0.97, 0.9, 0.7, 0.69, 0.5, 0.2, 0.19, 0.05, 0.01])):
        bn = StepBrownianNoise(X, 11, model_kind=kind)
        zs = [bn(s[i], s[i + 1]) for i in range(len(s) - 1)]
        for z in zs:
            assert abs(_var(z) - 1.0) < 0.03, kind
        for a, b in zip(zs, zs[1:]):
            assert abs(float((a * b).mean())) < 0.02, kind          # SE 1/256


def test_step_brownian_same_seed_same_noise_and_costs_about_two_draws_per_step():
    sig = _karras_u(10)
    a, b, c = (StepBrownianNoise(X, sd, model_kind="ve") for sd in (4, 4, 5))
    calls = {"n": 0}
    orig = a._draws.normal

    def counted(seed=None):
        calls["n"] += 1
        return orig(seed)
    a._draws.normal = counted
    za = [a(sig[i], sig[i + 1]) for i in range(len(sig) - 1)]
    zb = [b(sig[i], sig[i + 1]) for i in range(len(sig) - 1)]
    zc = [c(sig[i], sig[i + 1]) for i in range(len(sig) - 1)]
    assert all(torch.equal(p, q) for p, q in zip(za, zb))
    assert not any(torch.allclose(p, q) for p, q in zip(za, zc))
    assert calls["n"] <= 2.5 * (len(sig) - 1), calls          # the tree costs `depth` (18) per step


def test_step_brownian_path_is_shared_across_step_counts():
    """Same seed, 8 vs 32 steps on nested grids: the total increment over the run (the unnormalised
    sum) agrees up to the bridges at the run's ends (small), unlike two seeds (fully different)."""
    x = torch.zeros(4, 4, 16, 16, dtype=torch.float64)
    def total(n, seed):
        u = torch.linspace(0.9, 0.1, n + 1, dtype=torch.float64).tolist()
        bn = StepBrownianNoise(x, seed, model_kind="flow")
        return sum(bn(u[i], u[i + 1]) * math.sqrt(u[i] - u[i + 1]) for i in range(n))
    coarse, fine, other = total(8, 2), total(32, 2), total(32, 3)
    rel = lambda p, q: math.sqrt(_var(p - q) / _var(q))   # noqa: E731
    assert rel(coarse, fine) < 0.5, rel(coarse, fine)
    assert rel(other, fine) > 1.2, rel(other, fine)          # independent paths: sqrt(2)


def test_noise_sampler_for_kinds():
    x = torch.zeros(1, 4, 4, 4)
    assert isinstance(noise_sampler_for("brownian", x, {"seed": 1}), StepBrownianNoise)
    assert isinstance(noise_sampler_for("brownian_tree", x, {"seed": 1}), BrownianNoise)
    with pytest.raises(ValueError, match="width_factor"):
        StepBrownianNoise(x, 1, width_factor=0)


def test_step_brownian_stage_queries_share_one_path():
    """A two-stage SDE step asks (s, s_1) then (s, s_n): both increments start from the same W(s), so
    the long one contains the short one exactly (their unnormalised covariance is the overlap)."""
    bn = StepBrownianNoise(X, 6, model_kind="flow")
    a, b, c = 0.8, 0.6, 0.3
    w_ab, _ = bn.increment(a, b)
    w_ac, _ = bn.increment(a, c)
    w_bc, _ = bn.increment(b, c)
    assert torch.allclose(w_ac, w_ab + w_bc, atol=1e-12)
    assert float((w_ab * w_ac).mean()) / (a - b) == pytest.approx(1.0, abs=0.05)
