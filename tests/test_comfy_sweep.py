"""The step sweep node in the real ComfyUI runtime on the lab model (no mocks): grid and labels,
counted model calls, equal-cost mode, recommended steps checked against the exact ODE solution,
interrupt + resume, a failing cell, bad axis text, report round trip, video latents, ControlNet
end percent."""
import json
import os
from importlib import import_module

import pytest
import torch

import comfy_runtime
import sweep
from lab import LabKModel, default_mixture, reference_solution


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with comfy_runtime.sweep_output(tmp_path_factory, "sweep_out") as (node, out):
        yield {"node": node, "out": out}


def lab_model(spread=0.15):
    return comfy_runtime.node("SamplerLabModel").build("eps", 3.0, 6, 3, spread, 0, "float32")[0]


def run(env, prefix, model=None, **over):
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(0)
    kw = dict(model=model or lab_model(), latent_image={"samples": torch.zeros(1, 4, 8, 8)}, seed=3, steps=6, cfg=3.0,
              sampler_name="euler", scheduler="karras", denoise=1.0, x_axis="steps", x_values="3,6",
              y_axis="none", y_values="", z_axis="none", z_values="", equal_cost=False, reference_sampler="none",
              reference_steps=8, tolerance=0.02, cell_limit=64, cell_size=128, filename_prefix=prefix,
              positive=pos, negative=neg)
    kw.update(over)
    out = env["node"]().sweep(**kw)
    return out, json.loads(out["result"][3])


def test_grid_shape_labels_and_cells(env):
    out, rep = run(env, "t/grid", x_values="4,8", y_axis="sampler", y_values="euler, dpmpp_2m",
                   reference_sampler="lab_rk4", reference_steps=6)
    grid, images, chart, text, rec = out["result"][:5]
    assert images.shape == (4, 128, 128, 3)              # 64 px lab images, enlarged to the 128 px minimum
    assert grid.shape == (1, rep["grid"]["size"][1], rep["grid"]["size"][0], 3)
    assert rep["grid"]["columns"] == ["steps 4", "steps 8"] and rep["grid"]["rows"] == ["euler", "dpmpp_2m"]
    assert [c["params"]["sampler"] for c in rep["cells"]] == ["euler", "euler", "dpmpp_2m", "dpmpp_2m"]
    for i, (x0, y0, x1, y1) in enumerate(rep["grid"]["cell_boxes"]):
        assert torch.equal(grid[0, y0:y1, x0:x1], images[i])          # every cell sits in its box
    x0, y0, x1, _ = rep["grid"]["cell_boxes"][0]
    assert (grid[0, :y0, x0:x1] < 0.4).any()                          # a column header is drawn
    assert chart.ndim == 4 and chart.shape[-1] == 3
    assert all(c["status"] == "ok" and c["rel_rmse"] is not None and c["psnr"] is not None for c in rep["cells"])
    assert os.path.isfile(os.path.join(rep["folder"], "grid.png")) and out["ui"]["images"][0]["type"] == "output"


def test_counts_model_calls_for_one_and_two_call_samplers(env):
    _, rep = run(env, "t/nfe", x_values="3,5", y_axis="sampler", y_values="euler,heun,lab_rk4", cfg=3.0)
    nfe = {(c["params"]["sampler"], c["params"]["steps"]): c["nfe"] for c in rep["cells"]}
    # euler: 1 call per step; heun (Karras Alg. 2): 2 per step but an Euler last step to sigma 0;
    # classic RK4: 4 per step, the last step to sigma 0 takes the denoised value (1 call). cfg 3:
    # cond and uncond share one evaluation, which counts once.
    assert nfe == {("euler", 3): 3, ("euler", 5): 5, ("heun", 3): 5, ("heun", 5): 9,
                   ("lab_rk4", 3): 9, ("lab_rk4", 5): 17}


def test_equal_cost_mode(env):
    _, rep = run(env, "t/equal", equal_cost=True, x_values="8,12", y_axis="sampler", y_values="euler,heun,lab_rk4")
    got = {(c["params"]["sampler"], c["nfe_budget"]): (c["params"]["steps"], c["nfe"], c["calls_source"])
           for c in rep["cells"]}
    assert got == {("euler", 8): (8, 8, "probe"), ("euler", 12): (12, 12, "probe"),   # core: counted probe
                   ("heun", 8): (4, 7, "probe"), ("heun", 12): (6, 11, "probe"),
                   ("lab_rk4", 8): (2, 5, "spec"), ("lab_rk4", 12): (3, 9, "spec")}
    assert all(c["nfe"] <= c["nfe_budget"] for c in rep["cells"])


def _exact_errors(steps_list, seed, sigmas_for):
    """Relative latent RMSE of Euler (eps lab model, cfg 1, class 0) to the exact PF-ODE solution.
    (Karras sigmas end at the model's sigma_min for every step count, then 0.)"""
    import comfy.sample
    mix = default_mixture((4, 8, 8))
    model = LabKModel(mix, "eps", class_weights=torch.tensor([[1.0, 0.0, 0.0]]))
    noise = comfy.sample.prepare_noise(torch.zeros(1, 4, 8, 8), seed).double()
    errors = {}
    for n in steps_list:
        sig = sigmas_for(n).double()
        x = noise * torch.sqrt(1.0 + sig[0] ** 2)
        # every ComfyUI sampler ends with the denoised value at the schedule's last nonzero sigma, so the
        # exact answer of this discretised problem is D(ODE solution at sigma_min, sigma_min)
        s_min = float(sig[-2])
        exact = model.denoise(reference_solution(model.denoise, x, float(sig[0]), s_min, steps=400), s_min)
        for i in range(n):                                  # Euler steps on the exact denoiser
            d = (x - model(x, sig[i])) / sig[i]
            x = x + d * (sig[i + 1] - sig[i])
        errors[n] = sweep.relative_rmse(x, exact)
    return errors


def test_recommended_steps_match_the_exact_solution(env):
    import comfy.samplers
    steps_list = [2, 4, 8, 16, 32]
    model = lab_model()
    ms = model.model.model_sampling
    errors = _exact_errors(steps_list, 5, lambda n: comfy.samplers.calculate_sigmas(ms, "karras", n))
    errs = [errors[n] for n in steps_list]
    assert all(a > b for a, b in zip(errs, errs[1:]))            # Euler converges on this case
    k = 2                                                         # tolerance between the 8- and 16-step errors
    tol = (errs[k] * errs[k + 1]) ** 0.5
    expected = steps_list[k + 1]
    out, rep = run(env, "t/recommend", model=model, seed=5, cfg=1.0, x_values="2,4,8,16,32",
                   reference_sampler="lab_rk4", reference_steps=40, tolerance=tol)
    assert out["result"][4] == expected == rep["recommended_steps"]
    for c in rep["cells"]:                                       # the node's distances agree with the exact ones
        assert c["rel_rmse"] == pytest.approx(errors[c["params"]["steps"]], rel=0.01, abs=1e-5)


def test_interrupt_keeps_finished_cells_and_rerun_resumes(env):
    import comfy.model_management as mm
    import comfy.model_patcher
    model = lab_model().clone()
    state = {"armed": True, "calls": 0}

    def stop_in_third_cell(args):          # warm-up 2 calls, cells 2 + 3 calls, then the third cell
        state["calls"] += 1
        if state["armed"] and state["calls"] == 2 + 2 + 3 + 2:
            mm.interrupt_current_processing()
        return args["denoised"]
    model.model_options = comfy.model_patcher.set_model_options_post_cfg_function(model.model_options,
                                                                                stop_in_third_cell)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            run(env, "t/interrupt", model=model, x_values="2,3,4,5")
    finally:
        mm.interrupt_current_processing(False)
    folders = [d for d in os.listdir(os.path.join(env["out"], "t")) if d.startswith("interrupt_")]
    assert len(folders) == 1
    folder = os.path.join(env["out"], "t", folders[0])
    with open(os.path.join(folder, "report.json")) as f:
        partial = json.load(f)
    assert partial["status"] == "interrupted" and [c["params"]["steps"] for c in partial["cells"]] == [2, 3]
    state.update(armed=False, calls=0)
    out, rep = run(env, "t/interrupt", model=model, x_values="2,3,4,5")
    assert [c["source"] for c in rep["cells"]] == ["cache", "cache", "run", "run"]
    assert state["calls"] == 2 + 4 + 5                    # warm-up + only the two missing cells ran
    assert rep["counts"]["resumed"] == 2 and rep["status"] == "complete"
    state["calls"] = 0
    run(env, "t/interrupt", model=model, x_values="2,3,4,5")
    assert state["calls"] == 0                            # everything resumed: the model is not called at all


def test_cells_are_written_while_later_cells_sample(env, monkeypatch):
    """A slow model's cells (here: FLUSH_SECONDS 0) are measured and on disk as each finishes, not
    only at the end: the files of cells 1 and 2 exist while cell 3 samples."""
    import glob
    import time
    import comfy.model_patcher
    pics = import_module(comfy_runtime.load().__name__ + ".sweep.pictures")
    monkeypatch.setattr(pics, "FLUSH_SECONDS", 0.0)
    model = lab_model().clone()
    state, seen = {"calls": 0}, []

    def in_third_cell(args):               # warm-up 2 calls, cells of 2 and 3 calls, then the third cell
        state["calls"] += 1
        if state["calls"] == 2 + 2 + 3 + 1:
            pattern = os.path.join(env["out"], "t", "written_*", "cells", "*.json")      # a batch's last file
            deadline = time.monotonic() + 10
            while len(glob.glob(pattern)) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)           # the writer thread may still be busy with them
            seen.append(sorted(os.path.basename(p) for p in glob.glob(pattern)))
        return args["denoised"]
    model.model_options = comfy.model_patcher.set_model_options_post_cfg_function(model.model_options, in_third_cell)
    _, rep = run(env, "t/written", model=model, x_values="2,3,4")
    assert seen == [sorted(f"{c['key']}.json" for c in rep["cells"][:2])]


def test_slow_cells_measured_on_the_writer_match_batched_ones(env, monkeypatch):
    """Cells of a slow model (here: SLOW_CELL_S 0) are measured one by one on the writer thread,
    a fast model's together on the sampling thread: the same numbers and pictures either way."""
    pics = import_module(comfy_runtime.load().__name__ + ".sweep.pictures")
    kw = dict(x_values="2,4", y_axis="sampler", y_values="euler,heun", reference_sampler="lab_rk4", reference_steps=6)
    out_batch, rep_batch = run(env, "t/batched", **kw)
    monkeypatch.setattr(pics, "SLOW_CELL_S", 0.0)
    out_slow, rep_slow = run(env, "t/one_by_one", **kw)
    for a, b in zip(rep_batch["cells"], rep_slow["cells"]):
        assert a["status"] == b["status"] == "ok"
        for k in ("rmse", "rel_rmse", "psnr", "ssim"):
            assert a[k] == pytest.approx(b[k], rel=1e-12)
    assert torch.equal(out_batch["result"][1], out_slow["result"][1])
    def batches(rep):
        return [f for f in os.listdir(os.path.join(rep["folder"], "cells")) if f.endswith(".json")]
    assert len(batches(rep_slow)) == 4 and len(batches(rep_batch)) == 1     # one by one / all together


@pytest.mark.parametrize("slow", [False, True])
def test_other_models_without_a_vae_get_latent_previews(env, monkeypatch, slow):
    """A model the node does not know (here the lab model taken for one) and no VAE: latent-preview
    pictures, latent distances, no image metrics; 4-D and 5-D latents, batched or one by one."""
    pack = comfy_runtime.load()
    rt = import_module(pack.__name__ + ".nodes.sweep_runtime")
    monkeypatch.setattr(rt, "is_lab_model", lambda patcher: False)
    if slow:
        monkeypatch.setattr(import_module(pack.__name__ + ".sweep.pictures"), "SLOW_CELL_S", 0.0)
    for lat, shape in (({"samples": torch.zeros(2, 4, 8, 8)}, (64, 64)),
                       (comfy_runtime.node("SamplerLabEmptyLatent").make(64, 48, 1, 2)[0], (48, 64))):
        out, rep = run(env, f"t/preview_{slow}", latent_image=lat, y_axis="sampler", y_values="euler,heun",
                       reference_sampler="lab_rk4", reference_steps=6)
        assert rep["decoder"] == "preview"
        assert all(c["status"] == "ok" and c["rel_rmse"] is not None and c.get("psnr") is None for c in rep["cells"])
        images = out["result"][1]
        assert images.shape[0] == 4 and images.shape[-1] == 3 and max(images.shape[1:3]) >= 128
        h, w = shape                                   # aspect ratio of the latent kept (8x, longer side enlarged to 128+)
        assert images.shape[1] * w == images.shape[2] * h
        assert float(images.std()) > 0.01              # a picture, not a blank tile


def test_lab_pictures_are_latent_pixels_as_blocks_at_grid_size(env):
    """The lab picture is the colour map its metrics use, each latent pixel a block: 8x8 when that
    fits cell_size, smaller blocks when it would not (64 px latent, 128 px cells: 2x2)."""
    out, rep = run(env, "t/blocks", latent_image={"samples": torch.zeros(1, 4, 64, 64)}, cell_size=128,
                   reference_sampler="lab_rk4", reference_steps=6)
    images = out["result"][1]
    assert images.shape == (2, 128, 128, 3)
    assert torch.equal(images[:, ::2, ::2], images[:, 1::2, 1::2]) and torch.equal(images[:, ::2], images[:, 1::2])
    assert float(images[:, ::2, ::2].std()) > 0.01            # 64 x 64 latent pixels, not one colour


def test_failing_cell_does_not_stop_the_sweep(env):
    import comfy.model_patcher
    model = lab_model().clone()

    def fail_at_cfg5(args):
        if args["cond_scale"] == 5.0:
            raise RuntimeError("this model patch fails at cfg 5")
        return args["denoised"]
    model.model_options = comfy.model_patcher.set_model_options_post_cfg_function(model.model_options, fail_at_cfg5)
    out, rep = run(env, "t/fail", model=model, x_values="3,4", y_axis="cfg", y_values="2,5")
    status = {(c["params"]["cfg"], c["params"]["steps"]): c["status"] for c in rep["cells"]}
    assert status == {(2.0, 3): "ok", (2.0, 4): "ok", (5.0, 3): "failed", (5.0, 4): "failed"}
    assert all("fails at cfg 5" in c["error"] for c in rep["cells"] if c["status"] == "failed")
    assert rep["counts"]["failed"] == 2 and out["result"][0].shape[0] == 1


def test_bad_axis_text_and_limits_are_clear_errors(env):
    with pytest.raises(ValueError, match="'x'"):
        run(env, "t/bad", x_values="8,x,16")
    with pytest.raises(ValueError, match="did you mean"):
        run(env, "t/bad", x_axis="sampler", x_values="eulr")
    with pytest.raises(ValueError, match="cell_limit"):
        run(env, "t/bad", x_values="1-20", y_axis="seed", y_values="1-5", cell_limit=64)
    with pytest.raises(ValueError, match="no ControlNet"):
        run(env, "t/bad", y_axis="controlnet_end", y_values="0.5,1")


def test_report_round_trips(env):
    out, rep = run(env, "t/report", y_axis="sampler", y_values="euler,dpmpp_2m", reference_sampler="lab_rk4",
                   reference_steps=6)
    with open(os.path.join(rep["folder"], "report.json")) as f:
        assert json.load(f) == rep
    with open(os.path.join(rep["folder"], "report.csv")) as f:
        rows = sweep.load_csv(f.read())
    assert len(rows) == len(rep["cells"]) == 4
    for row, cell in zip(rows, rep["cells"]):
        assert row["sampler"] == cell["params"]["sampler"] and row["steps"] == cell["params"]["steps"]
        assert row["nfe"] == cell["nfe"] and row["rel_rmse"] == cell["rel_rmse"] and row["psnr"] == cell["psnr"]
    assert out["result"][4] == rep["recommended_steps"]
    assert rep["settings"]["x_values"] == "3,6" and rep["axes"][0] == {"axis": "steps", "values": [3, 6]}


def test_video_latent(env):
    lat = comfy_runtime.node("SamplerLabEmptyLatent").make(64, 48, 1, 2)[0]
    out, rep = run(env, "t/video", latent_image=lat, reference_sampler="lab_rk4", reference_steps=6)
    images = out["result"][1]
    assert images.shape == (2, 96, 128, 3)                # first frame of each cell (48x64, enlarged x2)
    assert rep["latent_shape"] == [1, 4, 2, 6, 8] and all(c["status"] == "ok" for c in rep["cells"])
    assert all(c["psnr"] is not None for c in rep["cells"])


def test_controlnet_end_percent_axis(env):
    import comfy.controlnet

    class RecordingControl(comfy.controlnet.ControlBase):
        """A ControlNet-like object (as another pack would add) that records when it is active."""
        active = []

        def copy(self):
            c = RecordingControl()
            self.copy_to(c)
            return c

        def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
            prev = self.previous_controlnet.get_control(x_noisy, t, cond, batched_number, transformer_options) \
                if self.previous_controlnet is not None else None
            if self.timestep_range is not None and (t[0] > self.timestep_range[0] or t[0] < self.timestep_range[1]):
                return prev
            RecordingControl.active.append(self.timestep_percent_range[1])
            return prev

    ctl = RecordingControl().set_cond_hint(torch.zeros(1, 3, 64, 64), 1.0, (0.0, 1.0))
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(0)
    pos = [[pos[0][0], dict(pos[0][1], control=ctl)]]
    _, rep = run(env, "t/cn", positive=pos, x_values="8", y_axis="controlnet_end", y_values="0.3,1", cfg=1.0)
    assert [c["status"] for c in rep["cells"]] == ["ok", "ok"]
    counts = {end: RecordingControl.active.count(end) for end in (0.3, 1.0)}
    assert counts[1.0] >= 8 and 0 < counts[0.3] < counts[1.0]       # ends early at 0.3, full run at 1.0
    assert ctl.timestep_percent_range == (0.0, 1.0)                   # the user's ControlNet is untouched


def test_ui_payload_for_the_sweep_viewer_matches_the_report(env):
    import comfy.model_patcher
    model = lab_model().clone()

    def fail_at_cfg5(args):                 # one failed row: the viewer must get it as a failed cell
        if args["cond_scale"] == 5.0:
            raise RuntimeError("fails at cfg 5")
        return args["denoised"]
    model.model_options = comfy.model_patcher.set_model_options_post_cfg_function(model.model_options, fail_at_cfg5)
    out, rep = run(env, "t/viewer", model=model, x_values="3,5", y_axis="cfg", y_values="2,5", z_axis="sampler",
                   z_values="euler,heun", reference_sampler="lab_rk4", reference_steps=6)
    assert set(out["ui"]) == {"images", "sampler_lab_sweep"} and len(out["ui"]["sampler_lab_sweep"]) == 1
    ui = out["ui"]["sampler_lab_sweep"][0]
    json.dumps(ui, allow_nan=False)                              # goes over the websocket / into history
    assert ui["images"] == out["ui"]["images"][:2] and [i["filename"] for i in ui["images"]] == ["grid_1.png", "grid_2.png"]
    for img in ui["images"]:                                     # /view?filename=..&subfolder=..&type=output
        assert os.path.isfile(os.path.join(env["out"], img["subfolder"], img["filename"]))
    assert ui["shape"] == rep["shape"] == [2, 2, 2] and ui["cell_boxes"] == rep["grid"]["cell_boxes"]
    assert ui["columns"] == ["steps 3", "steps 5"] and ui["axes"] == ["steps", "cfg", "sampler"]
    assert ui["reference"] == {"sampler": "lab_rk4", "steps": 6} and ui["recommended_steps"] == rep["recommended_steps"]
    assert len(ui["cells"]) == len(rep["cells"]) == 8
    for cell, rec in zip(ui["cells"], rep["cells"]):
        p = rec["params"]
        assert (cell["index"], cell["grid"], cell["row"], cell["col"]) == (rec["index"], rec["grid"], rec["row"], rec["col"])
        assert cell["settings"] == {"sampler_name": p["sampler"], "scheduler": "karras", "steps": p["steps"],
                                    "cfg": p["cfg"], "denoise": 1.0, "seed": 3}
        assert cell["status"] == rec["status"] == ("failed" if p["cfg"] == 5.0 else "ok")
        if cell["status"] == "ok":
            for k in ("nfe", "sample_s", "rel_rmse", "rmse", "psnr", "ssim"):
                assert cell[k] == rec[k] and cell[k] is not None
        else:
            assert "fails at cfg 5" in cell["error"] and cell["nfe"] is None
    assert {c["grid"] for c in ui["cells"] if c["settings"]["sampler_name"] == "heun"} == {1}


def test_ui_payload_leaves_input_sampler_settings_out(env):
    import comfy.samplers
    model = lab_model()
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "karras", 4)
    out, _ = run(env, "t/viewer_input", model=model, sampler=comfy.samplers.ksampler("euler"), sigmas=sigmas,
                 x_values="2,4")
    cells = out["ui"]["sampler_lab_sweep"][0]["cells"]
    assert [c["settings"] for c in cells] == [{"steps": 2, "cfg": 3.0, "denoise": 1.0, "seed": 3},
                                              {"steps": 4, "cfg": 3.0, "denoise": 1.0, "seed": 3}]
