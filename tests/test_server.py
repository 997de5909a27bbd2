"""The real ComfyUI server (main.py) with the pack in custom_nodes/: loads cleanly, lists the
pack's nodes and dropdown names in /object_info, and runs the lab workflows through /prompt."""
import glob
import json
import os
import sys

import pytest

from conftest import ROOT
import samplers
import schedulers

sys.path.insert(0, os.path.join(ROOT, "scripts"))
from comfy_server import ComfyServer, comfy_dir_for_tests  # noqa: E402
import workflow_tools as wt  # noqa: E402

LAB_WORKFLOWS = sorted(glob.glob(os.path.join(ROOT, "workflows", "lab_*.json")))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    comfy_dir = comfy_dir_for_tests()     # SAMPLER_LAB_COMFYUI picks another core (e.g. the oldest supported)
    with ComfyServer(str(tmp_path_factory.mktemp("comfy")), comfy_dir=comfy_dir) as srv:
        srv.object_info = wt.http_json(srv.url + "/object_info", timeout=60)
        yield srv


def test_pack_loads_without_errors(server):
    log = server.log_text()
    assert "IMPORT FAILED" not in log
    assert "[Sampler Lab] failed" not in log and "could not register" not in log
    assert "comfyui-sampler-lab" in log
    # prestartup_script.py registered the names when comfy.samplers was first imported, without torch
    assert "at start-up, before custom nodes load" in log and "early registration failed" not in log
    assert "Torch already imported" not in log


def test_object_info_lists_nodes_and_dropdown_names(server):
    info = server.object_info
    for node_id in ("SamplerLabModel", "SamplerLabConditioning", "SamplerLabEmptyLatent", "SamplerLabDecode"):
        assert node_id in info, node_id
        assert info[node_id]["display_name"].endswith("(Sampler Lab)")
    ks = info["KSampler"]["input"]["required"]
    select = info["KSamplerSelect"]["input"]["required"]
    assert set(samplers.SAMPLERS) <= set(wt.combo_options(ks["sampler_name"]))
    assert set(samplers.SAMPLERS) <= set(wt.combo_options(select["sampler_name"]))
    assert set(schedulers.SCHEDULERS) <= set(wt.combo_options(ks["scheduler"]))


def test_workflow_dropdown_values_are_valid(server):
    assert LAB_WORKFLOWS
    for path in LAB_WORKFLOWS:
        with open(path) as f:
            prompt = wt.ui_to_api(json.load(f), server.object_info)
        for node in prompt.values():
            spec = server.object_info[node["class_type"]]["input"]
            for name, value in node["inputs"].items():
                opts = {**spec.get("required", {}), **spec.get("optional", {})}.get(name)
                if opts and wt.combo_options(opts) is not None:
                    assert value in wt.combo_options(opts), (os.path.basename(path), name, value)


@pytest.mark.parametrize("path", LAB_WORKFLOWS, ids=os.path.basename)
def test_lab_workflow_runs_through_the_api(server, path):
    with open(path) as f:
        prompt = wt.ui_to_api(json.load(f), server.object_info)
    entry = wt.wait(server.url, wt.queue(server.url, prompt), timeout=300)
    files = wt.output_files(entry)
    assert files, "the workflow saved no images"
    for typ, sub, name in files:
        assert os.path.isfile(os.path.join(server.out_dir, "output" if typ == "output" else typ, sub, name))


def test_workflows_listed_in_the_templates_browser(server):
    """ComfyUI lists the pack's workflows/ under the pack and serves each file."""
    import urllib.request
    listing = wt.http_json(server.url + "/workflow_templates")
    names = listing.get("comfyui-sampler-lab")
    expected = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(ROOT, "workflows", "*.json")))
    assert names is not None and sorted(names) == expected
    with urllib.request.urlopen(server.url + "/api/workflow_templates/comfyui-sampler-lab/lab_step_sweep.json") as r:
        assert json.loads(r.read())["nodes"]
