"""Install the pack the way ComfyUI Manager does, into a FRESH ComfyUI (issue 10, compatibility):
copy the project's ComfyUI without anything in custom_nodes/, `git clone` this repository into
custom_nodes/, `pip install -r requirements.txt` with the venv's pip, start main.py and check the
nodes and names appear with no import failure. Then load the pack beside another pack that
registered a same-named sampler and scheduler first: theirs stay exactly as they were.

The clone takes the repository's committed HEAD (what users get), not uncommitted edits."""
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

import samplers
import schedulers
from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "scripts"))
from comfy_server import COMFY, PY, ComfyServer  # noqa: E402
import workflow_tools as wt  # noqa: E402

PACK_NAME = "comfyui-sampler-lab"
TAKEN_SAMPLER, TAKEN_SCHEDULER = "lab_rk4", "lab_beta57"
THEIR_FIRST_SIGMA = 7.0

# A second pack that got there first: its sampler returns its first sigma everywhere, its
# scheduler starts at 7.0, so an output of all 7.0 proves both of its entries are the ones used.
# Our names are registered when comfy.samplers is first imported (prestartup_script.py), so a pack
# can only take one of them first from its own prestartup script, listed before ours: this one does.
FAKE_PACK = f'''
import torch
import comfy.k_diffusion.sampling as ks
import comfy.samplers

def sample_{TAKEN_SAMPLER}(model, x, sigmas, extra_args=None, callback=None, disable=None):
    return torch.full_like(x, float(sigmas[0]))

def their_schedule(model_sampling, steps):
    return torch.linspace({THEIR_FIRST_SIGMA}, 0.0, steps + 1)

ks.sample_{TAKEN_SAMPLER} = sample_{TAKEN_SAMPLER}
for names in {{id(l): l for l in (comfy.samplers.KSAMPLER_NAMES, comfy.samplers.SAMPLER_NAMES)}}.values():
    names.append("{TAKEN_SAMPLER}")
comfy.samplers.SCHEDULER_HANDLERS["{TAKEN_SCHEDULER}"] = comfy.samplers.SchedulerHandler(their_schedule, use_ms=True)
comfy.samplers.SCHEDULER_NAMES.append("{TAKEN_SCHEDULER}")
print("FAKE PACK registered {TAKEN_SAMPLER} and {TAKEN_SCHEDULER}", flush=True)
'''


def _run(args, cwd=None, timeout=300):
    res = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(args)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
    return res


@pytest.fixture(scope="module")
def fresh_comfy(tmp_path_factory):
    if not os.path.isfile(os.path.join(COMFY, "main.py")):
        pytest.fail("ComfyUI runtime missing: run scripts/setup_labenv.sh")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path_factory.mktemp("fresh")
    comfy = str(root / "ComfyUI")

    def skip(src, names):   # a fresh ComfyUI: nothing in custom_nodes/, no outputs or user data
        rel = os.path.relpath(src, COMFY)
        if rel == "custom_nodes":
            return list(names)
        if rel == ".":
            return [n for n in names if n in ("output", "temp", "user", "input", ".git")]
        return [n for n in names if n == "__pycache__"]
    shutil.copytree(COMFY, comfy, symlinks=True, ignore=skip)
    assert os.listdir(os.path.join(comfy, "custom_nodes")) == []
    pack = os.path.join(comfy, "custom_nodes", PACK_NAME)
    _run(["git", "clone", "--quiet", ROOT, pack])
    t = time.time()
    pip = _run([PY, "-m", "pip", "install", "--disable-pip-version-check", "-r", "requirements.txt"], cwd=pack)
    pip_s = time.time() - t
    return {"comfy": comfy, "pack": pack, "pip": pip, "pip_s": pip_s, "root": root}


def test_requirements_install_is_a_no_op(fresh_comfy):
    pip = fresh_comfy["pip"]
    assert "Successfully installed" not in pip.stdout and "Collecting" not in pip.stdout, pip.stdout
    assert fresh_comfy["pip_s"] < 60


def test_fresh_install_loads_and_lists_the_nodes(fresh_comfy):
    with ComfyServer(str(fresh_comfy["root"] / "run1"), comfy_dir=fresh_comfy["comfy"]) as srv:
        info = wt.http_json(srv.url + "/object_info", timeout=60)
        log = srv.log_text()
        latent = _run_prompt(srv, "lab_rk_midpoint", "lab_polyexp")
    assert "IMPORT FAILED" not in log and "[Sampler Lab] failed" not in log, log[-3000:]
    assert os.path.join("custom_nodes", PACK_NAME) in log              # loaded from the clone
    for node_id in ("SamplerLabModel", "SamplerLabConditioning", "SamplerLabEmptyLatent", "SamplerLabDecode"):
        assert node_id in info and info[node_id]["display_name"].endswith("(Sampler Lab)"), node_id
    ks = info["KSampler"]["input"]["required"]
    assert set(samplers.SAMPLERS) <= set(wt.combo_options(ks["sampler_name"]))
    assert set(schedulers.SCHEDULERS) <= set(wt.combo_options(ks["scheduler"]))
    assert latent.shape == (1, 4, 8, 8) and torch.isfinite(latent).all()


def test_beside_a_pack_that_took_a_name_first_theirs_is_unchanged(fresh_comfy):
    custom = os.path.join(fresh_comfy["comfy"], "custom_nodes")
    # ComfyUI imports custom_nodes/ in os.listdir order: give the other pack a name listed first.
    for i in range(100):
        fake = os.path.join(custom, f"other_pack_{i}")
        os.makedirs(fake)
        if os.listdir(custom).index(os.path.basename(fake)) < os.listdir(custom).index(PACK_NAME):
            break
        os.rmdir(fake)
    else:
        pytest.skip("could not order the fake pack before ours")
    with open(os.path.join(fake, "prestartup_script.py"), "w") as f:
        f.write(FAKE_PACK)
    with open(os.path.join(fake, "__init__.py"), "w") as f:
        f.write("NODE_CLASS_MAPPINGS = {}\n")
    try:
        with ComfyServer(str(fresh_comfy["root"] / "run2"), comfy_dir=fresh_comfy["comfy"]) as srv:
            info = wt.http_json(srv.url + "/object_info", timeout=60)
            theirs = _run_prompt(srv, TAKEN_SAMPLER, TAKEN_SCHEDULER)
            ours = _run_prompt(srv, "lab_rk_midpoint", "lab_polyexp")
            log = srv.log_text()
    finally:
        shutil.rmtree(fake)
    assert "IMPORT FAILED" not in log, log[-3000:]
    assert log.index("FAKE PACK registered") < log.index(f"sampler '{TAKEN_SAMPLER}' already exists")
    assert f"scheduler '{TAKEN_SCHEDULER}' already exists" in log
    ks = info["KSampler"]["input"]["required"]
    names, scheds = wt.combo_options(ks["sampler_name"]), wt.combo_options(ks["scheduler"])
    assert names.count(TAKEN_SAMPLER) == 1 and scheds.count(TAKEN_SCHEDULER) == 1
    assert set(samplers.SAMPLERS) - {TAKEN_SAMPLER} <= set(names)       # ours are all there otherwise
    assert set(schedulers.SCHEDULERS) - {TAKEN_SCHEDULER} <= set(scheds)
    assert torch.equal(theirs, torch.full_like(theirs, THEIR_FIRST_SIGMA))   # their fn, their schedule
    assert torch.isfinite(ours).all() and not torch.equal(ours, torch.full_like(ours, THEIR_FIRST_SIGMA))


def _run_prompt(srv, sampler, scheduler):
    from safetensors.torch import load_file
    prompt = {
        "1": {"class_type": "SamplerLabModel", "inputs": {"parameterization": "eps", "flow_shift": 3.0,
              "components": 6, "classes": 3, "spread": 0.05, "mixture_seed": 0, "dtype": "float32"}},
        "2": {"class_type": "SamplerLabConditioning", "inputs": {"class_id": 0}},
        "3": {"class_type": "SamplerLabEmptyLatent", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                                "frames": 1}},
        "4": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 3, "steps": 4, "cfg": 1.0,
              "sampler_name": sampler, "scheduler": scheduler, "positive": ["2", 0], "negative": ["2", 1],
              "latent_image": ["3", 0], "denoise": 1.0}},
        "5": {"class_type": "SaveLatent", "inputs": {"samples": ["4", 0], "filename_prefix": "latents/compat"}},
    }
    entry = wt.wait(srv.url, wt.queue(srv.url, prompt), timeout=120)
    f = entry["outputs"]["5"]["latents"][0]
    return load_file(os.path.join(srv.out_dir, "output", f["subfolder"], f["filename"]))["latent_tensor"]
