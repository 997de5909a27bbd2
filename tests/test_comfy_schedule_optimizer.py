"""Schedule Optimizer node in the real ComfyUI runtime on the lab model."""
import json

import pytest
import torch

import comfy_runtime


@pytest.fixture()
def env(tmp_path):
    comfy_runtime.load()
    import folder_paths
    old = folder_paths.get_user_directory()
    folder_paths.set_user_directory(str(tmp_path))
    yield tmp_path
    folder_paths.set_user_directory(old)


def setup(parameterization="eps"):
    import comfy.samplers
    model = comfy_runtime.node("SamplerLabModel").build(parameterization, 3.0, 6, 3, 0.15, 0, "float32")[0]
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(1)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    return model, pos, neg, latent, comfy.samplers.sampler_object("euler")


@pytest.mark.parametrize("parameterization", ["eps", "flow"])
def test_optimizer_beats_karras_on_evaluation_noises_and_saves(env, parameterization):
    import comfy.samplers
    model, pos, neg, latent, euler = setup(parameterization)
    node = comfy_runtime.node("SamplerLabScheduleOptimizer")
    sigmas, report = node.optimize(model, pos, neg, latent, euler, 3.0, 8, 40, 8, 8, 0, "mine_" + parameterization)
    rep = json.loads(report)
    print(f"\n{parameterization}: {rep['rmse_optimised']:.4f} optimised vs {rep['rmse_karras']:.4f} karras (8 steps)")
    assert sigmas.shape == (9,) and float(sigmas[-1]) == 0.0 and bool((sigmas[:-1] > sigmas[1:]).all())
    assert rep["counted_nfe_optimised"] == 8 == rep["counted_nfe_karras"]
    assert rep["evaluation_seed"] != rep["calibration_seed"]
    assert rep["rmse_optimised"] < rep["rmse_karras"]
    name = "lab_opt_mine_" + parameterization
    assert name in comfy.samplers.SCHEDULER_NAMES
    ms = model.get_model_object("model_sampling")
    assert torch.allclose(comfy.samplers.calculate_sigmas(ms, name, 8), sigmas)
    assert comfy.samplers.calculate_sigmas(ms, name, 12).shape == (13,)
    assert (env / "sampler_lab" / "schedules.json").is_file()
    # the same settings again: reused, not recomputed
    again, report2 = node.optimize(model, pos, neg, latent, euler, 3.0, 8, 40, 8, 8, 0, "")
    assert json.loads(report2)["cached"] and torch.equal(again, sigmas)


def test_budget_below_minimum_and_bad_name(env):
    import comfy.samplers
    model, pos, neg, latent, _ = setup()
    node = comfy_runtime.node("SamplerLabScheduleOptimizer")
    with pytest.raises(ValueError, match="nfe"):
        node.optimize(model, pos, neg, latent, comfy.samplers.sampler_object("heun"), 3.0, 1, 40, 2, 0, 0, "")
    with pytest.raises(ValueError, match="save_as"):
        node.optimize(model, pos, neg, latent, comfy.samplers.sampler_object("euler"), 3.0, 4, 40, 2, 0, 0, "bad name!")


def test_interrupt_during_optimizer_then_next_run_works(env):
    import comfy.model_management as mm
    model, pos, neg, latent, euler = setup()
    calls = {"n": 0}

    def interrupt_after_some_calls(args):
        calls["n"] += 1
        if calls["n"] == 20:
            mm.interrupt_current_processing(True)
        return args["denoised"]
    interrupted = model.clone()
    interrupted.set_model_sampler_post_cfg_function(interrupt_after_some_calls)
    node = comfy_runtime.node("SamplerLabScheduleOptimizer")
    with pytest.raises(mm.InterruptProcessingException):
        node.optimize(interrupted, pos, neg, latent, euler, 3.0, 6, 24, 2, 2, 5, "")
    assert not mm.processing_interrupted()          # the exception consumed the flag
    assert not (env / "sampler_lab" / "schedules.json").exists()   # nothing half-done was saved
    sigmas, report = node.optimize(model, pos, neg, latent, euler, 3.0, 6, 24, 2, 2, 5, "")
    assert sigmas.shape == (7,) and not json.loads(report)["cached"]
