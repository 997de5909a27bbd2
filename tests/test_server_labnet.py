"""Lab Net through a real ComfyUI server (main.py): the loader, digit conditioning and empty latent
with the stock KSamplerSelect / SamplerCustom / VAE Decode / SaveImage and the Schedule Optimizer; the
saved PNGs are read back and recognised by the shipped digit scorer. The Lab Net workflows themselves
(first run, step sweep, CFG vs CFG++) run in tests/test_server.py with every lab_*.json."""
import json
import os
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT
from lab import labnet
from lab.digit_scorer import load_scorer

sys.path.insert(0, os.path.join(ROOT, "scripts"))
from comfy_server import ComfyServer, comfy_dir_for_tests  # noqa: E402
import workflow_tools as wt  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ComfyServer(str(tmp_path_factory.mktemp("comfy")), comfy_dir=comfy_dir_for_tests()) as srv:
        yield srv


def prompt(parameterization, digit):
    return {
        "1": {"class_type": "SamplerLabNetLoader", "inputs": {"parameterization": parameterization, "flow_shift": 3.0}},
        "2": {"class_type": "SamplerLabNetConditioning", "inputs": {"digit": digit, "negative_digit": -1}},
        "3": {"class_type": "SamplerLabNetEmptyLatent", "inputs": {"width": 16, "height": 16, "batch_size": 4}},
        "4": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m"}},
        "5": {"class_type": "SamplerLabScheduleOptimizer", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["2", 1], "latent_image": ["3", 0],
            "sampler": ["4", 0], "cfg": 3.0, "nfe": 8, "grid_points": 24, "calibration_noises": 2,
            "evaluation_noises": 2, "seed": 0, "save_as": ""}},
        "6": {"class_type": "SamplerCustom", "inputs": {
            "model": ["1", 0], "add_noise": True, "noise_seed": 11, "cfg": 3.0, "positive": ["2", 0],
            "negative": ["2", 1], "sampler": ["4", 0], "sigmas": ["5", 0], "latent_image": ["3", 0]}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 1]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": f"labnet_{parameterization}"}},
        "9": {"class_type": "PreviewAny", "inputs": {"source": ["5", 1]}},
    }


@pytest.mark.parametrize("parameterization,digit", [("eps", 7), ("flow", 2)])
def test_optimizer_and_stock_nodes_draw_the_digit_asked_for(server, parameterization, digit):
    entry = wt.wait(server.url, wt.queue(server.url, prompt(parameterization, digit)), timeout=300)
    files = [f for f in wt.output_files(entry) if f[0] == "output"]
    assert len(files) == 4
    from PIL import Image
    pix = []
    for typ, sub, name in files:
        with Image.open(os.path.join(server.out_dir, "output", sub, name)) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        assert arr.shape == (16, 16, 3)
        pix.append(torch.from_numpy(arr[..., 0]) * 2 - 1)
    logits = load_scorer()(torch.stack(pix)[:, None])
    assert (logits.argmax(1) == digit).sum().item() >= 3, logits.argmax(1)
    report = json.loads(entry["outputs"]["9"]["text"][0]) if "9" in entry.get("outputs", {}) else None
    if report is not None:
        assert report["steps"] == 8 and report["counted_nfe_optimised"] == 8
