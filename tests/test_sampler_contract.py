"""Every registered pack sampler against the common contract (pure torch, exact lab denoiser):
callback keys every step, dtype/shape kept for 4-D and 5-D latents and fp16/bf16 input, one step,
schedules not ending at 0 or starting below sigma_max, batch rows independent of each other for
deterministic samplers, seeded reproducibility, and counted model calls equal to the spec."""
import pytest
import torch

import samplers
from lab import LabKModel, default_mixture
from samplers.restart import restart_nfe

NAMES = sorted(samplers.SAMPLERS)
KEYS = {"x", "i", "sigma", "sigma_hat", "denoised"}


def run(name, kind, shape=(2, 4, 6, 6), sigmas=None, dtype=torch.float32, seed=0):
    spec = samplers.SAMPLERS[name]
    param = "flow" if kind == "flow" else "eps"
    model = LabKModel(default_mixture(shape[1:]), param)
    if sigmas is None:
        sigmas = torch.tensor([0.9, 0.6, 0.35, 0.15, 0.0]) if kind == "flow" else torch.tensor([8.0, 3.0, 1.0, 0.3, 0.0])
    x = (torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * float(sigmas[0])).to(dtype)
    seen = []
    out = spec.fn(model, x, sigmas.to(dtype), extra_args={"seed": seed}, callback=seen.append, disable=True,
                  model_kind=kind, **spec.options)
    return out, seen, model.calls, x


@pytest.mark.parametrize("kind", ["ve", "flow"])
@pytest.mark.parametrize("name", NAMES)
def test_contract(name, kind):
    spec = samplers.SAMPLERS[name]
    out, seen, calls, x = run(name, kind)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    assert seen and all(KEYS <= set(d) for d in seen), "callback must get ComfyUI's five keys"
    if spec.follows_schedule and name != "lab_restart":
        assert calls == spec.nfe(4), (calls, spec.nfe(4))
    elif name == "lab_restart":
        sig = torch.tensor([0.9, 0.6, 0.35, 0.15, 0.0]) if kind == "flow" else torch.tensor([8.0, 3.0, 1.0, 0.3, 0.0])
        assert calls == restart_nfe(sig, None, kind)
    else:
        assert calls <= spec.nfe(4)


@pytest.mark.parametrize("name", NAMES)
def test_spec_nfe_at_every_step_count(name):
    """Counted calls equal SamplerSpec.nfe(steps) for 1..6 steps ending at 0 (restart: below the
    10 steps where its default segments start; adaptive: within the budget)."""
    spec = samplers.SAMPLERS[name]
    for steps in range(1, 7):
        sig = torch.cat([torch.exp(torch.linspace(2.0, -2.5, steps)), torch.zeros(1)])
        _, _, calls, _ = run(name, "ve", sigmas=sig)
        if spec.follows_schedule:
            assert calls == spec.nfe(steps), (steps, calls, spec.nfe(steps))
        else:
            assert calls <= spec.nfe(steps)


@pytest.mark.parametrize("name", NAMES)
def test_video_latents_low_precision_and_odd_schedules(name):
    out, _, _, x = run(name, "flow", shape=(1, 4, 3, 5, 7), dtype=torch.bfloat16)
    assert out.shape == x.shape and out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    out, _, _, x = run(name, "ve", dtype=torch.float16, sigmas=torch.tensor([5.0, 2.0, 0.7, 0.2]))  # ends above 0
    assert out.dtype == torch.float16 and torch.isfinite(out.float()).all()
    out, _, _, _ = run(name, "ve", sigmas=torch.tensor([2.0, 0.0]))  # one step, below sigma_max
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_seeded_and_batch_independent(name):
    a, _, _, _ = run(name, "ve", seed=3)
    b, _, _, _ = run(name, "ve", seed=3)
    assert torch.equal(a, b), "same seed must give the same result"
    if not samplers.SAMPLERS[name].stochastic and samplers.SAMPLERS[name].follows_schedule:
        full, _, _, x = run(name, "ve", shape=(3, 4, 6, 6), seed=4)
        spec = samplers.SAMPLERS[name]
        model = LabKModel(default_mixture((4, 6, 6)), "eps")
        sig = torch.tensor([8.0, 3.0, 1.0, 0.3, 0.0])
        alone = spec.fn(model, x[1:2], sig, extra_args={"seed": 4}, disable=True, model_kind="ve", **spec.options)
        assert (alone - full[1:2]).abs().max().item() < 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_flow_start_at_sigma_one_and_single_steps(name):
    """Issue 17: a step from the flow start sigma = 1 (alpha = 0, lambda = -inf), alone ([1, 0]) or first,
    and single steps to 0 on VE: finite, with the documented calls (SamplerSpec.nfe_on)."""
    spec = samplers.SAMPLERS[name]
    cases = [("flow", [1.0, 0.0]), ("flow", [1.0, 0.5, 0.0]), ("flow", [1.0, 0.999, 0.3, 0.0]),
             ("flow", [0.002, 0.0]), ("ve", [14.6, 0.0]), ("ve", [0.03, 0.0])]
    for kind, sig in cases:
        out, _, calls, _ = run(name, kind, sigmas=torch.tensor(sig))
        assert torch.isfinite(out).all(), (kind, sig)
        expected = spec.nfe_on(sig, kind)
        assert calls == expected if spec.follows_schedule else calls <= expected, (kind, sig, calls, expected)
