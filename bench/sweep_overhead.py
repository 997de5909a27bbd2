"""Benchmark (dev tool, not a test): step-sweep overhead beyond its cells' sampling, on the lab model.

Side by side in one process, alternating, fresh output folder each time (no resume):
  plain  = the same cells run one after another through ComfyUI's own comfy.sample.sample
           (what a user would run with KSampler), plus the sweep's warm-up and reference runs;
  sweep  = the Step Sweep node's wall time (warm-up, reference, cells, decode, metrics,
           per-cell files, grid, chart, report).
overhead = sweep / plain - 1 (best of N repeats each). Also prints the node's own accounting
(total minus warm-up, reference and the cells' measured sampling time).
Targets: < 5 % on the lab model; < 2 % with a model step >= 50 ms.

Run: .labenv/venv/bin/python bench/sweep_overhead.py [repeats]
"""
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import comfy_runtime  # noqa: E402

CASES = [  # (label, lab components, image px, batch, steps axis, samplers)
    ("lab model, workflow size (6 components, 128 px)", 6, 128, 1, "8,16,32", "euler, dpmpp_2m, heun"),
    ("lab model, heavy step (64 components, 1024 px, batch 4)", 64, 1024, 4, "4,8", "euler, dpmpp_2m"),
]


def main(repeats=3):
    pack = comfy_runtime.load()
    import comfy.sample
    import folder_paths
    from importlib import import_module
    node = import_module(pack.__name__ + ".nodes.sweep_nodes").SamplerLabStepSweep
    pos, neg = comfy_runtime.node("SamplerLabConditioning").encode(0)
    tmp = tempfile.mkdtemp(prefix="sweep_bench_")
    try:
        for label, components, px, batch, steps, samplers in CASES:
            model = comfy_runtime.node("SamplerLabModel").build("eps", 3.0, components, 3, 0.05, 0, "float32")[0]
            latent = comfy_runtime.node("SamplerLabEmptyLatent").make(px, px, batch, 1)[0]
            kw = dict(model=model, latent_image=latent, seed=7, steps=20, cfg=3.0, sampler_name="euler",
                      scheduler="karras", denoise=1.0, x_axis="steps", x_values=steps, y_axis="sampler",
                      y_values=samplers, z_axis="none", z_values="", equal_cost=False, reference_sampler="dpmpp_2m",
                      reference_steps=32, tolerance=0.02, cell_limit=64, cell_size=256,
                      filename_prefix="bench/sweep", positive=pos, negative=neg)
            cells = [(s.strip(), int(n)) for s in samplers.split(",") for n in steps.split(",")]

            def plain():
                t0 = time.perf_counter()
                img = latent["samples"]
                noise = comfy.sample.prepare_noise(img, 7)
                runs = [("euler", 2), ("dpmpp_2m", 32)] + cells          # warm-up, reference, cells
                for name, n in runs:
                    comfy.sample.sample(model, noise, n, 3.0, name, "karras", pos, neg, img, disable_pbar=True, seed=7)
                return time.perf_counter() - t0

            def swept(i):
                folder_paths.set_output_directory(os.path.join(tmp, f"{label}_{i}".replace(" ", "_")))
                t0 = time.perf_counter()
                out = node().sweep(**kw)
                return time.perf_counter() - t0, json.loads(out["result"][3])

            plain()                                   # load / first-call effects out of the way
            p_times, s_times, reports = [], [], []
            for i in range(repeats):
                p_times.append(plain())
                t, rep = swept(i)
                s_times.append(t)
                reports.append(rep)
            rep = reports[s_times.index(min(s_times))]
            tm = rep["timing"]
            calls = sum(c["nfe"] for c in rep["cells"]) + sum(r["nfe"] for r in rep["reference"]["runs"]) + 2
            own = tm["total_s"] - tm["warmup_s"] - tm["reference_s"] - tm["cells_call_s"]
            print(f"{label}: {len(cells)} cells, {calls} model calls, "
                  f"{1000 * (tm['cells_sample_s'] / max(1, sum(c['nfe'] for c in rep['cells']))):.1f} ms per call")
            print(f"  plain KSampler loop (best of {repeats}): {min(p_times):.3f} s   sweep node: {min(s_times):.3f} s"
                  f"   -> overhead {100 * (min(s_times) / min(p_times) - 1):+.1f} %")
            print(f"  node accounting: total {tm['total_s']:.3f} s = warm-up {tm['warmup_s']:.3f} + reference "
                  f"{tm['reference_s']:.3f} + cells {tm['cells_call_s']:.3f} (sampling alone {tm['cells_sample_s']:.3f})"
                  f" + rest {own:.3f} s -> {100 * own / (tm['cells_call_s'] + tm['reference_s']):.1f} % of sampling")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
