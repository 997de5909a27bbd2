"""Living beside other packs, through a real main.py server with a deterministic import order.

custom_nodes folders, in the order ComfyUI loads them:
  1. the base directory's custom_nodes/ (--base-directory): fixture packs that COPY the dropdown lists
     and that REBIND KSampler.SCHEDULERS at their import, imported BEFORE the pack;
  2. the pack itself (a folder named by --extra-model-paths-config, key custom_nodes);
  3. the same fixture packs again, imported AFTER the pack.
Every fixture node must list every name of the stock KSampler (ours included), the stock nodes must
list ours, and prompts using lab_ names through the fixtures and the stock nodes must validate and run.
"""
import json
import os
import sys
import urllib.error

import pytest

from conftest import ROOT
import samplers
import schedulers

sys.path.insert(0, os.path.join(ROOT, "scripts"))
from comfy_server import ComfyServer, comfy_dir_for_tests  # noqa: E402
import workflow_tools as wt  # noqa: E402

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "list_packs")
LAB_SAMPLER = "lab_dpmpp2m_unic"
LAB_SCHEDULER = "lab_gits"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    comfy_dir = comfy_dir_for_tests()
    tmp = tmp_path_factory.mktemp("other_packs")
    before, ours, after = (tmp / "base" / "custom_nodes"), (tmp / "ours"), (tmp / "after")
    for d in (before, ours, after):
        d.mkdir(parents=True)
    for name in ("copy_lists", "rebind_lists"):
        os.symlink(os.path.join(FIXTURES, name), before / (name + "_before"))
        os.symlink(os.path.join(FIXTURES, name), after / (name + "_after"))
    os.symlink(ROOT, ours / "comfyui-sampler-lab")
    config = tmp / "extra_paths.yaml"
    config.write_text(f"sampler_lab_order:\n  custom_nodes: |\n    {ours}\n    {after}\n")
    args = ["--base-directory", str(tmp / "base"), "--extra-model-paths-config", str(config)]
    with ComfyServer(str(tmp / "run"), extra_args=args, comfy_dir=comfy_dir) as srv:
        srv.object_info = wt.http_json(srv.url + "/object_info", timeout=60)
        yield srv


def options(info, node, name):
    spec = info[node]["input"]["required"][name]
    return wt.combo_options(spec)


def run(srv, prompt):
    """Queue and wait. Any validation error fails with ComfyUI's own message: a refused prompt (HTTP
    400), and also node errors ComfyUI reports while it still runs the prompt's other outputs."""
    try:
        res = wt.http_json(srv.url + "/prompt", {"prompt": prompt, "client_id": "sampler-lab-tests"})
    except urllib.error.HTTPError as e:
        pytest.fail(f"ComfyUI refused the prompt: {e.read().decode()[:3000]}")
    assert not res.get("node_errors"), json.dumps(res["node_errors"])[:3000]
    return wt.wait(srv.url, res["prompt_id"], timeout=300)


def test_loads_in_the_intended_order_without_errors(server):
    log = server.log_text()
    assert "IMPORT FAILED" not in log and "PRESTARTUP FAILED" not in log
    assert "[Sampler Lab] failed" not in log and "early registration failed" not in log
    assert "could not register" not in log
    assert "at start-up, before custom nodes load" in log      # the prestartup hook registered the names
    assert "Torch already imported" not in log                  # ... without importing torch early
    # the order is fixed by folder_paths (base folder, then the config's folders in order): check it
    seen = [log.index("[fixture] imported " + tag) for tag in
            ("copy_lists_before", "rebind_lists_before", "copy_lists_after", "rebind_lists_after")]
    assert max(seen[:2]) < min(seen[2:])


def test_stock_nodes_list_every_pack_name(server):
    info = server.object_info
    ks_samplers = options(info, "KSampler", "sampler_name")
    ks_schedulers = options(info, "KSampler", "scheduler")
    assert set(samplers.SAMPLERS) <= set(ks_samplers)
    assert set(schedulers.SCHEDULERS) <= set(ks_schedulers), "the stock KSampler lost our schedulers"
    assert {"fixture_rebind_rebind_lists_before", "fixture_rebind_rebind_lists_after"} <= set(ks_schedulers)
    assert set(samplers.SAMPLERS) <= set(options(info, "KSamplerSelect", "sampler_name"))
    assert set(schedulers.SCHEDULERS) <= set(options(info, "BasicScheduler", "scheduler"))


@pytest.mark.parametrize("when", ["before", "after"])
def test_fixture_nodes_list_every_pack_name(server, when):
    info = server.object_info
    ks_samplers = set(options(info, "KSampler", "sampler_name"))
    ours = (set(samplers.SAMPLERS) | {n for n in ks_samplers if n.endswith("_cfg_pp")}, set(schedulers.SCHEDULERS))
    copy_node, rebind_node = "FixtureCopyUses_copy_lists_" + when, "FixtureRebindUses_rebind_lists_" + when
    assert ours[0] <= set(options(info, copy_node, "sampler_name"))
    assert ours[1] <= set(options(info, copy_node, "scheduler"))
    assert ours[1] | {"fixture_copy_extra"} <= set(options(info, copy_node, "scheduler_plus"))
    assert ours[1] <= set(options(info, "FixtureCopySelector_copy_lists_" + when, "scheduler"))
    assert ks_samplers == set(options(info, rebind_node, "sampler_name"))
    assert ours[1] <= set(options(info, rebind_node, "scheduler"))


@pytest.mark.parametrize("when", ["before", "after"])
def test_lab_names_validate_and_run_through_fixture_nodes(server, when):
    tag = "_lists_" + when
    prompt = {
        "1": {"class_type": "FixtureCopySelector_copy" + tag, "inputs": {"scheduler": LAB_SCHEDULER}},
        "2": {"class_type": "FixtureCopyUses_copy" + tag,
              "inputs": {"sampler_name": LAB_SAMPLER, "scheduler": ["1", 0], "scheduler_plus": LAB_SCHEDULER}},
        "3": {"class_type": "FixtureRebindUses_rebind" + tag,
              "inputs": {"sampler_name": LAB_SAMPLER, "scheduler": LAB_SCHEDULER}},
    }
    outputs = run(server, prompt)["outputs"]
    assert outputs["2"]["text"] == [LAB_SAMPLER, LAB_SCHEDULER, LAB_SCHEDULER]
    assert outputs["3"]["text"] == [LAB_SAMPLER, LAB_SCHEDULER]


def test_stock_samplers_run_lab_names_beside_rebinding_packs(server):
    """KSampler, and SamplerCustom fed by KSamplerSelect + BasicScheduler, with lab_ names."""
    with open(os.path.join(ROOT, "workflows", "lab_first_run.json")) as f:
        prompt = wt.ui_to_api(json.load(f), server.object_info)
    ks = [k for k, n in prompt.items() if n["class_type"] == "KSampler"]
    assert ks
    for k in ks:
        prompt[k]["inputs"].update(sampler_name=LAB_SAMPLER, scheduler=LAB_SCHEDULER, steps=4)
    src = prompt[ks[0]]["inputs"]
    prompt["90"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": LAB_SAMPLER}}
    prompt["91"] = {"class_type": "BasicScheduler",
                    "inputs": {"model": src["model"], "scheduler": LAB_SCHEDULER, "steps": 4, "denoise": 1.0}}
    prompt["92"] = {"class_type": "SamplerCustom",
                    "inputs": {"model": src["model"], "add_noise": True, "noise_seed": 1, "cfg": 3.0,
                               "positive": src["positive"], "negative": src["negative"],
                               "sampler": ["90", 0], "sigmas": ["91", 0], "latent_image": src["latent_image"]}}
    # whatever decodes the first KSampler's latent in the workflow (VAE Decode or the lab decoder)
    decode = next(k for k, n in prompt.items() if n["inputs"].get("samples") == [ks[0], 0])
    prompt["93"] = dict(prompt[decode], inputs={**prompt[decode]["inputs"], "samples": ["92", 0]})
    prompt["94"] = {"class_type": "SaveImage", "inputs": {"images": ["93", 0], "filename_prefix": "other_packs"}}
    entry = run(server, prompt)
    assert wt.output_files(entry)
    assert entry["outputs"]["94"]["images"]
