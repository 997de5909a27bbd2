"""Lab Net speed (issue #15): one model call at several batch sizes on this CPU, and the default Lab Net
step sweep (workflows/lab_step_sweep.json: 16 cells up to 32 steps + its reference) through a real ComfyUI
server, wall time from queue to finish. Every number in the written table is measured by this run.

    .labenv/venv/bin/python bench/labnet_speed.py [--runs 3] [--quick] [--out DIR]
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.append(ROOT)
sys.path.append(os.path.join(ROOT, "scripts"))
from bench.common import load_comfy, machine, md_table, today, write_text  # noqa: E402

BATCHES = (1, 2, 16, 32)


def time_calls(parameterization, batch, repeats):
    import nodes
    from lab import labnet
    model, _ = nodes.NODE_CLASS_MAPPINGS["SamplerLabNetLoader"]().load(parameterization, labnet.FLOW_SHIFT)
    base = model.model
    x = torch.randn(batch, labnet.LATENT_CHANNELS, labnet.LATENT_SIZE, labnet.LATENT_SIZE)
    sigma = torch.full((batch,), 1.0 if parameterization == "eps" else 0.5)
    ctx = labnet.class_context(list(range(batch)) if batch <= 10 else [k % 10 for k in range(batch)])
    times = []
    with torch.no_grad():
        for k in range(repeats + 3):
            t0 = time.perf_counter()
            base.apply_model(x, sigma, c_crossattn=ctx)
            if k >= 3:
                times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def time_sweep(runs):
    import workflow_tools as wt
    from comfy_server import ComfyServer
    out_dir = os.path.join(ROOT, "bench", "results", "labnet_speed_server")
    with open(os.path.join(ROOT, "workflows", "lab_step_sweep.json")) as f:
        ui = json.load(f)
    results = []
    with ComfyServer(out_dir) as srv:
        info = wt.http_json(srv.url + "/object_info")
        prompt = wt.ui_to_api(ui, info)
        sweep_id = next(k for k, v in prompt.items() if v["class_type"] == "SamplerLabStepSweep")
        for r in range(runs):
            prompt[sweep_id]["inputs"]["seed"] = 1000 + r + int(time.time()) % 100000 * 10   # fresh cells, no reuse
            t0 = time.perf_counter()
            wt.wait(srv.url, wt.queue(srv.url, prompt))
            results.append(time.perf_counter() - t0)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="sweep runs through the server")
    ap.add_argument("--repeats", type=int, default=50, help="timed model calls per batch size")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="a few calls, one sweep run (smoke test)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()
    if args.quick:
        args.runs, args.repeats = 1, 3
    torch.set_num_threads(args.threads)
    load_comfy()
    rows = []
    for p in ("eps", "flow"):
        for b in BATCHES:
            med, best = time_calls(p, b, args.repeats)
            rows.append([p, b, f"{med * 1000:.1f}", f"{best * 1000:.1f}"])
            print(f"{p} batch {b}: median {med * 1000:.1f} ms, best {best * 1000:.1f} ms", flush=True)
    sweeps = time_sweep(args.runs)
    print("sweep runs (s):", ", ".join(f"{s:.1f}" for s in sweeps), flush=True)
    text = "\n".join([
        "# Lab Net speed",
        "",
        f"Run {today()} on {machine()}, {args.threads} torch thread(s) for the model calls (the server uses",
        "ComfyUI's defaults). Written by `bench/labnet_speed.py`; every number below is measured by that run.",
        "",
        "## One model call (ComfyUI's BaseModel.apply_model, UNetModel inside, float32)",
        f"{args.repeats} timed calls per row after 3 warm-up calls. With cfg != 1 ComfyUI batches cond and",
        "uncond, so a batch-16 sample costs a batch-32 call per step.",
        "",
        md_table(["model", "batch", "median ms", "best ms"], rows),
        "",
        "## The default Lab Net step sweep through a real server",
        "workflows/lab_step_sweep.json (16 cells: steps 4/8/16/32 x euler, dpmpp_2m, heun, lab_rk4; reference:",
        "the model's ODE by RK4 in log sigma, 48 steps; VAE-decoded cells with PSNR/SSIM), over HTTP, a new seed each run so no",
        "cell is reused; wall time from queue to finish, server already started.",
        "",
        md_table(["runs", "median s", "min s", "max s", "target"],
                 [[len(sweeps), f"{statistics.median(sweeps):.1f}", f"{min(sweeps):.1f}", f"{max(sweeps):.1f}",
                   "about 30 s or less: " + ("held" if statistics.median(sweeps) <= 30 else "missed")]]),
        "",
    ])
    name = "labnet_speed_quick.md" if args.quick else "labnet_speed.md"
    write_text(os.path.join(args.out, name), text)
    print(text)


if __name__ == "__main__":
    main()
