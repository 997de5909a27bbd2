"""Speed benchmark (issue #9): per-step sampler overhead (everything outside the model call) of each
pack sampler next to the matching ComfyUI sampler, in one run, at SD1.5 (4x64x64), SDXL (4x128x128)
and Flux (16x128x128) latent sizes, with a stand-in model of known cost (bench/standin.py).

    .labenv/venv/bin/python bench/overhead.py [--quick] [--device cuda]

overhead = (sampler wall time - time inside the model) / steps, median of --repeats runs; reported in
ms per step, ms per model call, as a fraction of a model step of stated cost MEASURED ON THE SAME DEVICE
(a stand-in call sized to take about --step-ms, 50 ms by default: where users are) and as a ratio to the
matching core sampler (per model call: equal cost). GPU figures only come from --device cuda.
Writes bench/results/overhead.{json,md}.
"""
import argparse
import os
import statistics
import sys
import time

import torch

if __package__ in (None, ""):
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import common  # noqa: E402
from bench.standin import StandInModel  # noqa: E402

SIZES = {"SD1.5": ((1, 4, 64, 64), "eps"), "SDXL": ((1, 4, 128, 128), "eps"), "Flux": ((1, 16, 128, 128), "flow")}
STEP_MS = 50.0   # the model step the fraction is taken of: a stand-in call of about this cost, measured here


def calibrated_step_ms(ms, flow, device, target_ms, calls=5):
    """(measured ms per call, work) of a stand-in model whose call costs about target_ms on this device."""
    work = 256
    while True:
        model = StandInModel(ms, flow, device, work=work)
        x = torch.zeros(1, 4, 8, 8, device=device)
        for _ in range(calls + 1):
            model(x, torch.tensor([1.0], device=device))
        per_call = 1e3 * model.model_seconds / model.calls
        if per_call >= 0.9 * target_ms or work >= 8192:
            return per_call, work
        work = int(work * min(2.0, max(1.15, (target_ms / per_call) ** (1 / 3))))


# Pack sampler -> the ComfyUI sampler that does the same job (same family / same stage count).
MATCH = {
    "lab_plms": "ipndm", "lab_pndm": "ipndm", "lab_plms_unic": "uni_pc", "lab_euler_unic": "uni_pc",
    "lab_dpmpp2m_unic": "uni_pc", "lab_restart": "heun", "lab_rk_midpoint": "dpm_2", "lab_rk_ralston": "heun",
    "lab_rk_bosh3": "heunpp2", "lab_rk_ssprk3": "heunpp2", "lab_rk4": "heunpp2", "lab_rk4_38": "heunpp2",
    "lab_rk_dopri5": "heunpp2", "lab_gauss_legendre2": "heunpp2", "lab_gauss_legendre3": "heunpp2",
    "lab_radau_iia2": "heunpp2", "lab_radau_iia3": "heunpp2", "lab_adaptive_fehlberg12": "dpm_adaptive",
    "lab_adaptive_bosh23": "dpm_adaptive", "lab_adaptive_dopri45": "dpm_adaptive",
    "lab_ancestral_euler": "euler_ancestral", "lab_sde_dpmpp_2m": "dpmpp_2m_sde",
    "lab_sde_dpmpp_2m_heun": "dpmpp_2m_sde_heun", "lab_sde_dpmpp_3m": "dpmpp_3m_sde", "lab_tcd": "lcm",
    "lab_ancestral_dpm2": "dpm_2_ancestral", "lab_sde_dpmpp_2s": "dpmpp_sde", "lab_seeds_2": "seeds_2",
    "lab_seeds_3": "seeds_3", "lab_er_sde": "er_sde", "lab_sa_solver": "sa_solver",
    "lab_sa_solver_pece": "sa_solver_pece",
}
QUICK = ("lab_dpmpp2m_unic", "lab_rk4", "lab_ancestral_euler")


def model_sampling(parameterization):
    return common.node("SamplerLabModel").build(parameterization, 3.0, 6, 3, 0.15, 0, "float32")[0] \
        .get_model_object("model_sampling")


def run_once(name, model, x, sigmas):
    """(wall seconds, model seconds, calls) of one sampler call, the way KSAMPLER calls it."""
    import comfy.samplers
    ks = comfy.samplers.sampler_object(name)
    model.reset()
    model._sync()
    t = time.perf_counter()
    out = ks.sampler_function(model, x.clone(), sigmas.clone(), extra_args={"seed": 0}, callback=None,
                              disable=True, **ks.extra_options)
    model._sync()
    wall = time.perf_counter() - t
    if not torch.isfinite(out).all():
        raise FloatingPointError(f"{name} returned non-finite values")
    return wall, model.model_seconds, model.calls


def measure(name, model, x, sigmas, repeats):
    run_once(name, model, x, sigmas)   # warm-up (lazy imports, caches)
    runs = [run_once(name, model, x, sigmas) for _ in range(repeats)]
    steps = len(sigmas) - 1
    over = [max(w - m, 0.0) for w, m, _ in runs]
    calls = runs[0][2]
    return {"sampler": name, "steps": steps, "calls": calls,
            "overhead_ms_per_step": 1e3 * statistics.median(over) / steps,
            "overhead_ms_per_call": 1e3 * statistics.median(over) / max(calls, 1),
            "model_ms_per_call": 1e3 * statistics.median(m for _, m, _ in runs) / max(calls, 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke-sized: SD1.5 only, 3 pairs, 2 repeats")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--step-ms", type=float, default=STEP_MS, help="cost (ms) of the stand-in model step the "
                    "overhead is a fraction of, measured on this device")
    ap.add_argument("--out", default=common.RESULTS)
    ap.add_argument("--samplers", default=None, help="only these pack samplers (comma list), e.g. the SDE rows")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    pack = common.load_comfy(a.device)
    import comfy.samplers
    names = set(comfy.samplers.SAMPLER_NAMES)
    pairs = [(p, c) for p, c in MATCH.items() if p in names and c in names and (not a.quick or p in QUICK)]
    if a.samplers:
        pairs = [(p, c) for p, c in pairs if p in a.samplers.split(",")]
    sizes = {"SD1.5": SIZES["SD1.5"]} if a.quick else SIZES
    repeats, steps = (2, 4) if a.quick else (a.repeats, a.steps)
    dtype = torch.float16 if a.device == "cuda" else torch.float32
    t0, rows = time.perf_counter(), []
    step_ms, work = calibrated_step_ms(model_sampling("eps"), False, a.device, a.step_ms if not a.quick else 5.0)
    for size, (shape, param) in sizes.items():
        ms = model_sampling(param)
        model = StandInModel(ms, param == "flow", a.device)
        sigmas = comfy.samplers.calculate_sigmas(ms, "karras", steps).to(a.device)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(a.device, dtype) * float(sigmas[0])
        cache = {}
        for p, c in pairs:
            for n in (p, c):
                if n not in cache:
                    cache[n] = measure(n, model, x, sigmas, repeats)
            rp, rc = cache[p], cache[c]
            rows.append({"size": size, "shape": list(shape), "pack": rp, "core": rc, "step_ms": step_ms,
                         "fraction": rp["overhead_ms_per_call"] / step_ms,
                         "ratio": rp["overhead_ms_per_call"] / max(rc["overhead_ms_per_call"], 1e-9)})
    meta = {"machine": common.machine(a.device), "device": a.device, "dtype": str(dtype), "date": common.today(),
            "comfyui": common.comfy_version(), "seconds": time.perf_counter() - t0, "steps": steps,
            "repeats": repeats, "schedule": "karras", "step_ms": step_ms, "step_work": work}
    md = markdown(rows, meta)
    tag = "" if a.device == "cpu" else "_" + a.device
    common.write_text(os.path.join(a.out, f"overhead{tag}.md"), md + "\n")
    common.write_json(os.path.join(a.out, f"overhead{tag}.json"), {"meta": meta, "rows": rows})
    print(md)
    return 0


def markdown(rows, meta):
    f = common.fmt
    body = [[r["size"], r["pack"]["sampler"], f(r["pack"]["overhead_ms_per_call"]), r["core"]["sampler"],
             f(r["core"]["overhead_ms_per_call"]), f(r["ratio"], 3), f"{100 * r['fraction']:.3f}%",
             "yes" if r["fraction"] <= 0.01 else "**no**", "yes" if r["ratio"] <= 1.2 else "**no**"]
            for r in rows]
    model_ms = {r["size"]: r["pack"]["model_ms_per_call"] for r in rows}
    head = (f"Sampler overhead: {meta['machine']}, {meta['dtype']}; ComfyUI {meta['comfyui']}; {meta['date']}; "
            f"{meta['steps']} karras steps, median of {meta['repeats']} runs, {meta['seconds']:.0f} s. Overhead = "
            "sampler wall time minus time inside the stand-in model, per model call (ms). Fraction = that / the "
            f"measured cost of one stand-in model step on this same device, {meta['step_ms']:.1f} ms (a "
            f"{meta['step_work']}x{meta['step_work']} matmul workload sized to about 50 ms: a model step where users "
            "are; CPU overhead against a CPU step, never against an assumed GPU time). The stand-in used while "
            "timing the samplers costs per call: "
            + ", ".join(f"{k} {v:.2f} ms" for k, v in model_ms.items()) + ".")
    return head + "\n\n" + common.md_table(
        ["size", "pack sampler", "ms/call", "core match", "ms/call", "pack / core", "of a model step",
         "<= 1%", "<= 1.2x core"], body)


if __name__ == "__main__":
    sys.exit(main())
