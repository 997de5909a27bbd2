"""The step sweep's shift and boundary axes through a real ComfyUI server (main.py, /prompt): a shift
sweep on Lab Net flow, and a boundary sweep handing off from one lab model to another (model_low). Each
prompt runs, and its report.json lists every cell, done, under the headers the axis syntax promises."""
import json
import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "scripts"))
from comfy_server import ComfyServer, comfy_dir_for_tests  # noqa: E402
import workflow_tools as wt  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # one torch thread in the server, as conftest.py sets in-process: the lab models' tensors are tiny, and
    # two threads on a busy 2-core machine made Lab Net's calls ~10x slower (6 s each, measured)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        with ComfyServer(str(tmp_path_factory.mktemp("comfy")), comfy_dir=comfy_dir_for_tests()) as srv:
            yield srv


def sweep_node(model, pos, neg, latent, prefix, **over):
    inputs = {"model": model, "positive": pos, "negative": neg, "latent_image": latent, "seed": 2, "steps": 6,
              "cfg": 2.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0, "x_axis": "steps",
              "x_values": "6", "y_axis": "none", "y_values": "", "z_axis": "none", "z_values": "",
              "equal_cost": False, "reference_sampler": "lab_rk4", "reference_steps": 8, "tolerance": 0.02,
              "cell_limit": 64, "cell_size": 64, "filename_prefix": prefix}
    inputs.update(over)
    return {"class_type": "SamplerLabStepSweep", "inputs": inputs}


def report(server, prompt):
    entry = wt.wait(server.url, wt.queue(server.url, prompt), timeout=300)
    subs = {sub for typ, sub, _ in wt.output_files(entry) if typ == "output"}
    assert len(subs) == 1, subs
    with open(os.path.join(server.out_dir, "output", subs.pop(), "report.json"), encoding="utf-8") as f:
        return json.load(f)


def test_shift_sweep_on_labnet_flow(server):
    prompt = {
        "1": {"class_type": "SamplerLabNetLoader", "inputs": {"parameterization": "flow", "flow_shift": 3.0}},
        "2": {"class_type": "SamplerLabNetConditioning", "inputs": {"digit": 5, "negative_digit": -1}},
        "3": {"class_type": "SamplerLabNetEmptyLatent", "inputs": {"width": 16, "height": 16, "batch_size": 1}},
        # Lab Net is a real network: few calls (no reference, 3 steps), so a busy 2-core machine runs it in time
        "4": sweep_node(["1", 0], ["2", 0], ["2", 1], ["3", 0], "server/shift", x_axis="shift", x_values="1, 6",
                        y_axis="sampler", y_values="euler, lab_res_2s", steps=3,
                        reference_sampler="none"),
    }
    rep = report(server, prompt)
    assert rep["status"] == "complete" and rep["counts"]["ok"] == 4
    assert rep["grid"]["columns"] == ["shift 1", "shift 6"]
    assert rep["grid"]["rows"] == ["euler", "lab_res_2s"]
    assert [(c["labels"]["shift"], c["params"]["sampler"]) for c in rep["cells"]] == [
        ("shift 1", "euler"), ("shift 6", "euler"), ("shift 1", "lab_res_2s"), ("shift 6", "lab_res_2s")]
    assert [c["params"]["shift"] for c in rep["cells"]] == [1.0, 6.0, 1.0, 6.0]


def test_boundary_sweep_hands_off_to_model_low(server):
    def lab(seed):
        return {"class_type": "SamplerLabModel", "inputs": {"parameterization": "flow", "flow_shift": 3.0,
                                                            "components": 6, "classes": 3, "spread": 0.15,
                                                            "mixture_seed": seed, "dtype": "float32"}}
    prompt = {
        "1": lab(0), "5": lab(9),
        "2": {"class_type": "SamplerLabConditioning", "inputs": {"class_id": 1}},
        "3": {"class_type": "SamplerLabEmptyLatent", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                                "frames": 1}},
        "4": sweep_node(["1", 0], ["2", 0], ["2", 1], ["3", 0], "server/boundary", model_low=["5", 0],
                        x_axis="boundary", x_values="0.875, t500, 50%", y_axis="steps", y_values="4, 8"),
    }
    rep = report(server, prompt)
    assert rep["status"] == "complete" and rep["counts"]["ok"] == 6 and rep["inputs"]["model_low"] is True
    assert rep["grid"]["columns"] == ["boundary 0.875", "boundary t500", "boundary 50%"]
    assert rep["grid"]["rows"] == ["steps 4", "steps 8"]
    assert [c["labels"]["boundary"] for c in rep["cells"]] == ["boundary 0.875", "boundary t500", "boundary 50%"] * 2
    assert all(c["rel_rmse"] is not None for c in rep["cells"])   # measured against each boundary's reference
