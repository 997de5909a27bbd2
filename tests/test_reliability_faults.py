"""Faults (issue 10): an interrupt during a pack sampler surfaces as ComfyUI's own
InterruptProcessingException and the next run is normal; a failing registration or a failing
prompt stays contained; 50 queued prompts on the real server grow neither memory nor the pack's
caches and carry no state from one prompt to the next."""
import json
import logging
import os
import sys
import time
import urllib.request

import pytest
import torch

import comfy_runtime
import samplers as pure
from conftest import ROOT
from samplers.spec import SamplerSpec

INTERRUPTED = ["lab_rk_dopri5", "lab_adaptive_dopri45", "lab_gauss_legendre2", "lab_plms", "lab_dpmpp2m_unic",
               "lab_sde_dpmpp_2m", "lab_restart", "lab_tcd", "lab_rk_midpoint_cfg_pp"]


@pytest.fixture(scope="module")
def pack():
    return comfy_runtime.load()


def lab_model(classes=3):
    return comfy_runtime.node("SamplerLabModel").build("eps", 3.0, 6, classes, 0.15, 0, "float32")[0]


def guided_run(model, name, callback=None, seed=4, shape=(2, 4, 8, 8), cfg=2.0):
    import comfy.sample
    import comfy.samplers
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(1)
    latent = torch.zeros(shape)
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(pos, neg)
    guider.set_cfg(cfg)
    sigmas = torch.tensor([14.6, 8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.0])
    return guider.sample(comfy.sample.prepare_noise(latent, seed), latent, comfy.samplers.sampler_object(name),
                         sigmas, callback=callback, disable_pbar=True, seed=seed)


@pytest.mark.parametrize("name", INTERRUPTED)
def test_interrupt_during_a_pack_sampler(pack, name):
    import comfy.model_management as mm
    model = lab_model()
    seen = []

    def press_cancel(step, x0, x, total):   # the user presses Cancel while step 1 is shown
        seen.append(step)
        if step == 1:
            mm.interrupt_current_processing()
    with pytest.raises(mm.InterruptProcessingException):
        guided_run(model, name, callback=press_cancel)
    assert seen[-1] == 1 and not mm.processing_interrupted()   # stopped at once; the flag is consumed
    again = guided_run(model, name)                              # the next run is normal ...
    assert torch.equal(again, guided_run(lab_model(), name))     # ... and equals one on a fresh model


def test_interrupt_flag_set_before_a_prompt_stops_it_at_the_first_model_call(pack):
    import comfy.model_management as mm
    mm.interrupt_current_processing()
    with pytest.raises(mm.InterruptProcessingException):
        guided_run(lab_model(), "lab_rk4")
    assert torch.isfinite(guided_run(lab_model(), "lab_rk4")).all()


def _fake_spec(name):
    return SamplerSpec(name=name, fn=pure.SAMPLERS["lab_rk_midpoint"].fn, family="test", order=2, model_calls=2,
                       options=dict(pure.SAMPLERS["lab_rk_midpoint"].options))


def test_exception_in_one_registration_stays_contained(pack, caplog):
    import comfy.k_diffusion.sampling as ks
    import comfy.samplers
    bridge = pack.bridge
    names = ["lab_test_contained_a", "lab_test_contained_b"]
    before = (list(comfy.samplers.SAMPLER_NAMES), list(comfy.samplers.SCHEDULER_NAMES),
              dict(comfy.samplers.SCHEDULER_HANDLERS))
    broken = _fake_spec(None)                                  # "sample_" + None raises TypeError
    broken_scheduler = pure.SAMPLERS["lab_rk4"].__class__      # not a SchedulerSpec: no .name / .fn
    try:
        with caplog.at_level(logging.ERROR):
            counts = bridge.register_all([_fake_spec(names[0]), broken, _fake_spec(names[1])], [broken_scheduler])
        assert counts["samplers"] == {"added": 2, "present": 0, "skipped": 0, "failed": 1}
        assert counts["schedulers"]["failed"] == 1
        assert sum("could not register" in r.getMessage() for r in caplog.records) == 2
        assert comfy.samplers.SAMPLER_NAMES[-2:] == names            # the good ones still arrived
        assert comfy.samplers.SCHEDULER_NAMES == before[1] and dict(comfy.samplers.SCHEDULER_HANDLERS) == before[2]
        assert torch.isfinite(guided_run(lab_model(), names[1])).all()
    finally:
        for n in names:
            for lst in {id(comfy.samplers.SAMPLER_NAMES): comfy.samplers.SAMPLER_NAMES,
                        id(comfy.samplers.KSAMPLER_NAMES): comfy.samplers.KSAMPLER_NAMES}.values():
                while n in lst:
                    lst.remove(n)
            if hasattr(ks, "sample_" + n):
                delattr(ks, "sample_" + n)
    assert comfy.samplers.SAMPLER_NAMES == before[0]


def test_a_failing_run_leaves_no_state_on_the_model(pack):
    """CFG++ entries add a post-CFG hook for their run only; a run that raises leaves nothing either."""
    model = lab_model()
    snapshot = json.dumps(model.model_options, sort_keys=True, default=repr)
    for name in ("lab_rk_midpoint_cfg_pp", "lab_plms_cfg_pp", "heun_cfg_pp", "lab_rk4"):
        guided_run(model, name)
    bad = lab_model(classes=2)   # a 2-class model asked for class 2: the model raises mid-run
    with pytest.raises(Exception, match="class"):
        import comfy.samplers
        pos = [[torch.nn.functional.one_hot(torch.tensor([[2]]), 8).float(), {}]]
        guider = comfy.samplers.CFGGuider(bad)
        guider.set_conds(pos, pos)
        guider.set_cfg(1.0)
        guider.sample(torch.randn(1, 4, 8, 8), torch.zeros(1, 4, 8, 8), comfy.samplers.sampler_object("lab_rk4"),
                      torch.tensor([5.0, 1.0, 0.0]), disable_pbar=True, seed=1)
    assert json.dumps(model.model_options, sort_keys=True, default=repr) == snapshot
    assert json.dumps(bad.model_options, sort_keys=True, default=repr) == snapshot


def test_mixture_cache_is_bounded_and_rebuilds_identically(pack):
    model = lab_model()
    denoiser = model.model.diffusion_model
    shapes = [(1, 4, 8, 8), (1, 4, 5, 7), (1, 4, 9, 3), (1, 4, 2, 2), (1, 4, 6, 6), (1, 4, 4, 11)]
    first = guided_run(model, "lab_rk_bosh3", shape=shapes[0])
    for shape in shapes[1:]:
        guided_run(model, "lab_rk_bosh3", shape=shape)
        assert len(denoiser._mixtures) <= 4
    assert (4, 8, 8) not in denoiser._mixtures                       # evicted ...
    assert torch.equal(guided_run(model, "lab_rk_bosh3", shape=shapes[0]), first)   # ... rebuilt the same


# ---- 50 queued prompts on the real server -------------------------------------------------

SIZES = [(64, 64), (72, 64), (64, 80), (88, 56), (40, 40), (96, 32)]
ROTATION = ["lab_rk_midpoint_cfg_pp", "lab_sde_dpmpp_2m", "lab_plms", "lab_restart", "lab_dpmpp2m_unic",
            "lab_rk_bosh3", "heun_cfg_pp", "lab_tcd", "lab_adaptive_bosh23"]


def _prompt(i, sampler, size, seed, steps=6, class_id=1, classes=3):
    w, h = size
    return {
        "1": {"class_type": "SamplerLabModel", "inputs": {"parameterization": "eps", "flow_shift": 3.0,
              "components": 6, "classes": classes, "spread": 0.05, "mixture_seed": 0, "dtype": "float32"}},
        "2": {"class_type": "SamplerLabConditioning", "inputs": {"class_id": class_id}},
        "3": {"class_type": "SamplerLabEmptyLatent", "inputs": {"width": w, "height": h, "batch_size": 2,
                                                                "frames": 1}},
        "4": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": seed, "steps": steps, "cfg": 3.0,
              "sampler_name": sampler, "scheduler": "lab_beta57", "positive": ["2", 0], "negative": ["2", 1],
              "latent_image": ["3", 0], "denoise": 1.0}},
        "5": {"class_type": "SaveLatent", "inputs": {"samples": ["4", 0], "filename_prefix": f"latents/p{i:02d}"}},
    }


def _rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _latent(srv, entry):
    from safetensors.torch import load_file
    (out,) = [o for o in entry["outputs"].values() if "latents" in o]
    f = out["latents"][0]
    return load_file(os.path.join(srv.out_dir, "output", f["subfolder"], f["filename"]))["latent_tensor"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from comfy_server import ComfyServer
    with ComfyServer(str(tmp_path_factory.mktemp("faults"))) as srv:
        yield srv


def test_interrupt_through_the_server_then_the_next_prompt_runs(server):
    import workflow_tools as wt
    long_id = wt.queue(server.url, _prompt(0, "lab_plms", SIZES[0], 7, steps=10000))
    end = time.time() + 60
    while not wt.http_json(server.url + "/queue")["queue_running"] and time.time() < end:
        time.sleep(0.1)
    time.sleep(0.5)
    urllib.request.urlopen(urllib.request.Request(server.url + "/interrupt", data=b"{}", method="POST"), timeout=10)
    with pytest.raises(RuntimeError, match="execution_interrupted"):
        wt.wait(server.url, long_id, timeout=60)
    entry = wt.wait(server.url, wt.queue(server.url, _prompt(0, "lab_plms", SIZES[0], 7)), timeout=60)
    assert torch.isfinite(_latent(server, entry)).all()


def test_fifty_queued_prompts_no_growth_no_carried_state(server):
    import workflow_tools as wt
    plan = [(ROTATION[i % len(ROTATION)], SIZES[i % len(SIZES)], 100 + i) for i in range(50)]
    plan[49] = plan[0]                                  # prompt 50 repeats prompt 1 exactly
    ids = []
    for i, (sampler, size, seed) in enumerate(plan):
        if i == 25:   # a prompt that fails inside a pack sampler's run (class 5 of a 3-class model)
            ids.append(wt.queue(server.url, _prompt(i, "lab_rk4", SIZES[0], 1, class_id=5)))
        else:
            ids.append(wt.queue(server.url, _prompt(i, sampler, size, seed)))
    entries = {}
    rss = {}
    for i, pid in enumerate(ids):
        if i == 25:
            with pytest.raises(RuntimeError, match="class"):
                wt.wait(server.url, pid, timeout=120)
            continue
        entries[i] = wt.wait(server.url, pid, timeout=120)
        if i in (9, 49):
            rss[i] = _rss_mib(server.proc.pid)
    first, last = _latent(server, entries[0]), _latent(server, entries[49])
    assert first.shape == (2, 4, 8, 8) and torch.equal(first, last)
    assert not torch.equal(first, _latent(server, entries[9]))      # the others really differed
    assert rss[49] - rss[9] < 64, rss                                # MiB
    log = server.log_text()
    assert "IMPORT FAILED" not in log and "Exception during processing" in log   # the failure was reported ...
    assert server.proc.poll() is None                               # ... and the server lives on
