"""The step sweep's shift and boundary axes in the real ComfyUI runtime (in-process, CPU, no mocks).

Expected values come from core's own nodes, never from the sweep: a shift cell must be a plain
KSampler run on the model patched by core's ModelSamplingSD3 node with that shift (Lab Net flow);
a boundary cell must be the Two-Model Sampler's run and the stock wiring (Split Sigmas at Boundary,
then SamplerCustom on each model, the second adding no noise) at that boundary; a boundary at the
schedule's end must be the unsplit KSampler run of the first model. Cell latents are read back from
the sweep folder (sweep/cache.py) and compared bit for bit."""
import json

import pytest
import torch

import comfy_runtime
import sweep

SEED = 4
# Errors are the pack's SweepAxisError, a ValueError; the pack runs under ComfyUI's module name, so
# the tests match ValueError and the class name rather than the class imported here.


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with comfy_runtime.sweep_output(tmp_path_factory, "sweep_shift_boundary") as (node, out):
        yield {"node": node, "out": out}


def core(name):
    """A core node (an instance for V1 nodes; V3 nodes' execute is a classmethod, called on it too)."""
    import nodes
    return nodes.NODE_CLASS_MAPPINGS[name]()


def v3(name, *args):
    return core(name).execute(*args).result


def labnet_flow():
    model = comfy_runtime.node("SamplerLabNetLoader").load("flow", 3.0)[0]
    pos, neg = comfy_runtime.node("SamplerLabNetConditioning").encode(3, -1)
    latent = comfy_runtime.node("SamplerLabNetEmptyLatent").make(16, 16, 1)[0]
    return model, pos, neg, latent


def mixture(seed, parameterization="flow"):
    """Two different exact lab models (mixture seeds) as the two experts of a hand-off."""
    return comfy_runtime.node("SamplerLabModel").build(parameterization, 3.0, 6, 3, 0.15, seed, "float32")[0]


def run(env, prefix, model, pos, neg, latent, **over):
    kw = dict(model=model, latent_image=latent, seed=SEED, steps=5, cfg=2.0, sampler_name="euler",
              scheduler="simple", denoise=1.0, x_axis="steps", x_values="5", y_axis="none", y_values="",
              z_axis="none", z_values="", equal_cost=False, reference_sampler="none", reference_steps=8,
              tolerance=0.02, cell_limit=64, cell_size=64, filename_prefix=prefix, positive=pos, negative=neg)
    kw.update(over)
    out = env["node"]().sweep(**kw)
    return json.loads(out["result"][3])


def cell_latent(rep, cell):
    got = sweep.SweepCache(rep["folder"]).load_cell(cell["key"])      # (record, image, latent) of a batch cell
    assert got is not None and got[2] is not None, cell
    return got[2]


def ksampler(model, pos, neg, latent, sampler, steps, cfg=2.0, scheduler="simple"):
    return core("KSampler").sample(model, SEED, steps, cfg, sampler, scheduler, pos, neg, latent)[0]["samples"]


# ---- shift -------------------------------------------------------------------------------------------

def test_shift_cells_are_ksampler_runs_on_core_model_sampling_sd3(env):
    model, pos, neg, latent = labnet_flow()
    rep = run(env, "sb/shift", model, pos, neg, latent, x_axis="shift", x_values="1.5, 6", y_axis="sampler",
              y_values="euler, dpmpp_2m")
    assert rep["grid"]["columns"] == ["shift 1.5", "shift 6"] and rep["grid"]["rows"] == ["euler", "dpmpp_2m"]
    latents = {}
    for c in rep["cells"]:
        p = c["params"]
        assert c["status"] == "ok" and c["labels"]["shift"] == f"shift {p['shift']:g}"
        shifted = core("ModelSamplingSD3").patch(model, p["shift"])[0]
        expected = ksampler(shifted, pos, neg, latent, p["sampler"], 5)
        got = cell_latent(rep, c)
        assert got.shape == expected.shape and torch.equal(got, expected), (p, (got - expected).abs().max())
        latents[(p["sampler"], p["shift"])] = got
    # the shift matters: the schedule is recomputed from each shifted model sampling
    assert (latents[("euler", 1.5)] - latents[("euler", 6.0)]).abs().max() > 1e-3
    # the connected model is left as it was (the shift lives on clones)
    assert model.get_model_object("model_sampling").shift == 3.0
    # the answer names its shift (its outputs are sampler, scheduler and steps only)
    ans = rep["recommendation"]
    assert set(ans["other_axes"]) == {"shift"} and ans["other_axes"]["shift"] in (1.5, 6.0)


def test_shift_axis_shifts_a_connected_guiders_model(env):
    model, pos, neg, latent = labnet_flow()
    guider = v3("CFGGuider", model, pos, neg, 2.0)[0]
    rep = run(env, "sb/shift_guider", model, None, None, latent, guider=guider, x_axis="shift", x_values="4.5")
    (cell,) = rep["cells"]
    expected = ksampler(core("ModelSamplingSD3").patch(model, 4.5)[0], pos, neg, latent, "euler", 5)
    assert rep["inputs"]["guider"] is True and torch.equal(cell_latent(rep, cell), expected)


def test_shift_on_a_flux_style_model_is_core_model_sampling_flux(env):
    """A model whose sampling is ModelSamplingFlux (here the lab mixture after core's ModelSamplingFlux
    node) is shifted in its own family: the axis value is ModelSamplingFlux's shift, which core's node
    computes from the resolution; with max_shift = base_shift = v the node's shift is exactly v."""
    flux = core("ModelSamplingFlux").patch(mixture(0), 1.15, 1.15, 1024, 1024)[0]
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(2)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    rep = run(env, "sb/shift_flux", flux, pos, neg, latent, x_axis="shift", x_values="0.5, 2")
    for c in rep["cells"]:
        v = c["params"]["shift"]
        expected = ksampler(core("ModelSamplingFlux").patch(flux, v, v, 1024, 1024)[0], pos, neg, latent, "euler", 5)
        assert torch.equal(cell_latent(rep, c), expected), v


def test_shift_axis_refuses_a_model_without_shift(env):
    eps = mixture(0, "eps")
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(0)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    with pytest.raises(ValueError, match=r"shift axis: .*has no shift.*flow models") as err:
        run(env, "sb/shift_eps", eps, pos, neg, latent, x_axis="shift", x_values="3")
    assert type(err.value).__name__ == "SweepAxisError"


# ---- boundary ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def experts():
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(1)
    return mixture(0), mixture(7), pos, neg, {"samples": torch.zeros(1, 4, 8, 8)}


def two_model_sampler(high, low, pos, neg, latent, sampler, sigmas, mode, boundary):
    return comfy_runtime.node("SamplerLabTwoModelSampler").sample(high, low, pos, neg, 2.0, 2.0, sampler, sigmas,
                                                                  SEED, True, latent, mode, boundary, "custom")[0]["samples"]


def stock_wiring(high, low, pos, neg, latent, sampler, sigmas, boundary):
    """Split Sigmas at Boundary, then core's SamplerCustom: the first adds the seed's noise, the second none."""
    hi, lo, _ = comfy_runtime.node("SamplerLabSplitAtBoundary").split(sigmas, "sigma", boundary, "custom")
    mid = v3("SamplerCustom", high, True, SEED, 2.0, pos, neg, sampler, hi, latent)[0]
    return v3("SamplerCustom", low, False, SEED, 2.0, pos, neg, sampler, lo, mid)[0]["samples"]


def test_boundary_cells_are_the_two_model_sampler_and_the_stock_wiring(env, experts):
    high, low, pos, neg, latent = experts
    rep = run(env, "sb/boundary", high, pos, neg, latent, model_low=low, x_axis="boundary",
              x_values="0.5, t850, 20%", y_axis="sampler", y_values="euler, dpmpp_2m", reference_sampler="lab_rk4",
              reference_steps=6)
    assert rep["grid"]["columns"] == ["boundary 0.5", "boundary t850", "boundary 20%"]
    assert rep["inputs"]["model_low"] is True and rep["reference"]["runs"]
    sigmas = v3("BasicScheduler", high, "simple", 5, 1.0)[0]
    modes = {"0.5": ("sigma", 0.5), "t850": ("timestep", 850.0), "20%": ("fraction", 0.2)}
    by = {}
    for c in rep["cells"]:
        p = c["params"]
        assert c["status"] == "ok" and c["rel_rmse"] is not None, c
        sampler = v3("KSamplerSelect", p["sampler"])[0]
        expected = two_model_sampler(high, low, pos, neg, latent, sampler, sigmas, *modes[p["boundary"]])
        got = cell_latent(rep, c)
        assert torch.equal(got, expected), (p, (got - expected).abs().max())
        by[(p["sampler"], p["boundary"])] = got
    # a sigma boundary, wired with stock nodes: the same latent (euler: no noise of its own)
    stock = stock_wiring(high, low, pos, neg, latent, v3("KSamplerSelect", "euler")[0], sigmas, 0.5)
    assert (by[("euler", "0.5")] - stock).abs().max() <= 1e-6
    # t850 on a flow model is sigma 0.85: the steps starting at >= 0.85 (2 of them: the shift-3 simple
    # schedule starts 1, 0.923, 0.818) run on the first model; 20 % of 5 steps is 1 step
    assert [round(float(v), 3) for v in sigmas[:3]] == [1.0, 0.923, 0.818]
    assert not torch.equal(by[("euler", "t850")], by[("euler", "20%")])


def test_boundary_reference_hands_off_too(env, experts):
    """The lab reference (its ODE solved by RK4 in log sigma) runs each side on its own model: it is
    the Two-Model Sampler with the reference as its SAMPLER, on the reference's schedule."""
    import numpy as np
    import os
    from importlib import import_module
    high, low, pos, neg, latent = experts
    rep = run(env, "sb/boundary_ref", high, pos, neg, latent, model_low=low, x_axis="boundary", x_values="0.6",
              reference_sampler="lab_rk4", reference_steps=6)
    folder = os.path.join(rep["folder"], "references")
    saved = [np.load(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(".latent.npy")]
    ode = import_module(comfy_runtime.load().__name__ + ".nodes.sweep_runtime").ode_reference_sampler(6)
    sigmas = v3("BasicScheduler", high, "simple", 6, 1.0)[0]
    expected = two_model_sampler(high, low, pos, neg, latent, ode, sigmas, "sigma", 0.6)
    assert len(saved) == 1 and torch.equal(torch.from_numpy(saved[0]), expected)


def test_boundary_on_a_video_latent(env, experts):
    """5-D latents (B, C, T, H, W) hand off the same way."""
    high, low, pos, neg, _ = experts
    video = comfy_runtime.node("SamplerLabEmptyLatent").make(64, 64, 1, 3)[0]
    assert video["samples"].ndim == 5
    rep = run(env, "sb/boundary_video", high, pos, neg, video, model_low=low, x_axis="boundary", x_values="0.6")
    sigmas = v3("BasicScheduler", high, "simple", 5, 1.0)[0]
    expected = two_model_sampler(high, low, pos, neg, video, v3("KSamplerSelect", "euler")[0], sigmas, "sigma", 0.6)
    got = cell_latent(rep, rep["cells"][0])
    assert got.shape == expected.shape == (1, 4, 3, 8, 8) and torch.equal(got, expected)


def test_boundary_at_the_schedules_end_is_the_unsplit_run(env, experts):
    high, low, pos, neg, latent = experts
    rep = run(env, "sb/boundary_end", high, pos, neg, latent, model_low=low, x_axis="boundary", x_values="0, 100%")
    expected = ksampler(high, pos, neg, latent, "euler", 5)
    assert len(rep["cells"]) == 2
    for c in rep["cells"]:
        assert torch.equal(cell_latent(rep, c), expected), c["params"]


@pytest.mark.parametrize("over, words", [
    ({"x_values": "1.5"}, ["boundary axis", "'1.5'", "outside", "from sigma 1 to 0", "75%"]),
    ({"x_values": "0.9", "denoise": 0.4}, ["boundary axis", "'0.9'", "outside", "denoise 0.4"]),
    ({"x_values": "t1500"}, ["boundary axis", "'t1500'", "outside this model's timesteps"]),
    ({"x_values": "0.5", "model_low": None}, ["boundary axis", "connect model_low"]),
    ({"x_axis": "steps", "x_values": "3"}, ["model_low is connected", "no axis is boundary"]),
])
def test_boundary_bad_input_names_the_value_and_the_fix(env, experts, over, words):
    high, low, pos, neg, latent = experts
    kw = dict(model_low=low, x_axis="boundary")
    kw.update(over)
    with pytest.raises(ValueError) as err:        # the pack's SweepAxisError (loaded under ComfyUI's module name)
        run(env, "sb/bad", high, pos, neg, latent, **kw)
    assert type(err.value).__name__ == "SweepAxisError"
    for w in words:
        assert w in str(err.value), (w, str(err.value))
