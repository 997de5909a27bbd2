"""Benchmark (dev tool, not a test): the Step Sweep node's overhead beyond its cells' sampling time.

What is measured, side by side in one process, alternating, a fresh output folder for every sweep
(no resume), best of N repeats on both sides (the node's best wall time; plain's best whole pass,
split into its parts):
  plain = what a user pays without the node: the same runs one after another through ComfyUI's own
          KSampler function (nodes.common_ksampler: noise, its progress callback, comfy.sample.sample;
          the console progress bar off, as the node has it), each timed alone:
            warm-up   (euler, 2 steps: the node's untimed first run),
            reference (the node's reference run: reference_sampler x reference_steps),
            cells     (every cell of the grid)  <- "the sum of its cells' sampling time"
  sweep = the node's wall time, everything included: planning, warm-up, reference, the cells,
          decoding, metrics, the per-cell PNG/JSON files, the grid, the chart, the report.
  overhead = (sweep - plain warm-up - plain reference - plain cells) / plain cells
So sampling means a whole KSampler-style run of a cell (sigmas, guider, conds, sampler, result to
the intermediate device); the warm-up and the reference are extra runs the node makes on purpose and
are reported apart, not counted as overhead and not as sampling. Work the node moves to its writer
thread is not hidden: it shows up in the node's wall time (and if it slows the sampling down, in
that too). Also shown: the overhead against plain runs each at their own best time (the
strictest baseline; on a busy machine it charges the node with the noise of its longer run).
The node's own accounting (report.json timing: total minus warm-up, reference and the
cells' measured run time) is printed as a cross-check only, and so is the paired difference by part
(warm-up, reference, cells, the rest), which tells whether the node's cells sample slower than
KSampler's or its own work is what costs.
Targets (issue 7): overhead < 5 % on the lab model (the shipped lab workflow's sweep) and < 2 % with a
model step >= 50 ms (checked: the measured ms per model call is printed and the target is only
judged when it really is >= 50 ms). Judged on the paired median: on this 2-core shared machine the
best-of-N of a 0.4 s run moves by several percent from one invocation to the next, in both
directions; pairing each sweep with the plain pass just before it and taking the median does not.

Run: .labenv/venv/bin/python bench/sweep_overhead.py [--repeats N] [--threads T] [--device cpu|cuda] [--out DIR]
Writes DIR/sweep_overhead.md (default bench/results/).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

# label, lab components, image px, batch, steps axis, samplers axis, reference sampler, reference steps, target
CASES = [
    ("lab workflow (workflows/lab_step_sweep.json: 6 components, 128 px, 16 cells)", 6, 128, 1,
     "4,8,16,32", "euler, dpmpp_2m, heun, lab_rk4", "lab_rk4", 48, 0.05, 0.0),
    ("heavy model step (lab model with 200 components, 1024 px, batch 8, 8 cells)", 200, 1024, 8,
     "4,8", "euler, dpmpp_2m, heun, lab_rk4", "dpmpp_2m", 16, 0.02, 0.050),
]


def run_case(case, repeats, tmp, pos, neg):
    import comfy.utils
    import folder_paths
    import nodes
    from importlib import import_module
    label, components, px, batch, steps, samplers, ref_name, ref_steps, target, min_step_s = case
    sweep_node = import_module(common.load_comfy().__name__ + ".nodes.sweep_nodes").SamplerLabStepSweep
    model = common.node("SamplerLabModel").build("eps", 3.0, components, 3, 0.05, 0, "float32")[0]
    latent = common.node("SamplerLabEmptyLatent").make(px, px, batch, 1)[0]
    kw = dict(model=model, latent_image=latent, seed=7, steps=20, cfg=3.0, sampler_name="euler",
              scheduler="karras", denoise=1.0, x_axis="steps", x_values=steps, y_axis="sampler",
              y_values=samplers, z_axis="none", z_values="", equal_cost=False, reference_sampler=ref_name,
              reference_steps=ref_steps, tolerance=0.02, cell_limit=64, cell_size=256,
              filename_prefix="bench/sweep", positive=pos, negative=neg)
    cells = [(s.strip(), int(n)) for s in samplers.split(",") for n in steps.split(",")]
    comfy.utils.PROGRESS_BAR_ENABLED = False      # no tqdm bar in the console for plain (the node has none)

    def plain():
        times, cpu = [], []
        for name, n in [("euler", 2), (ref_name, ref_steps)] + cells:
            t0, c0 = time.perf_counter(), time.process_time()
            nodes.common_ksampler(model, 7, n, 3.0, name, "karras", pos, neg, latent)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        plain_cpu.append(cpu)
        return times

    def swept(i):
        folder_paths.set_output_directory(os.path.join(tmp, f"case{CASES.index(case)}_{i}"))
        t0, c0 = time.perf_counter(), time.process_time()
        out = sweep_node().sweep(**kw)
        return time.perf_counter() - t0, json.loads(out["result"][3]), time.process_time() - c0

    plain_cpu = []
    plain()                                   # load / first-call effects out of the way
    swept("w")
    p_runs, s_runs = [], []
    for i in range(repeats):
        p_runs.append(plain())
        s_runs.append(swept(i))
    best = min(p_runs, key=sum)               # the best whole pass, as for the node
    p = {"warmup": best[0], "reference": best[1], "cells": sum(best[2:]),
         "cells_per_run_best": sum(min(t) for t in list(zip(*p_runs))[2:])}
    # paired: each sweep against the plain pass run just before it (slow drifts of a shared machine
    # cancel), the median over the repeats (robust to a run hit by another job)
    paired = sorted((s[0] - p[0] - p[1] - sum(p[2:])) / sum(p[2:]) for p, s in zip(p_runs, s_runs))

    def paired_part(node_part, plain_part):
        """Median over the pairs of (node's part - plain's part) / plain cells: where the difference is."""
        v = sorted((node_part(s[1]["timing"]) - plain_part(p)) / sum(p[2:]) for p, s in zip(p_runs, s_runs))
        return v[len(v) // 2]
    parts = {"warm-up": paired_part(lambda t: t["warmup_s"], lambda p: p[0]),
             "reference": paired_part(lambda t: t["reference_s"], lambda p: p[1]),
             "cells": paired_part(lambda t: t["cells_call_s"], lambda p: sum(p[2:])),
             "the rest": paired_part(lambda t: t["total_s"] - t["warmup_s"] - t["reference_s"] - t["cells_call_s"],
                                     lambda p: 0.0)}
    # CPU time of the whole process (every thread): what the work costs, whatever else the host runs
    # (time stolen by other guests does not count); conservative, as work the node overlaps on its
    # other threads counts in full
    cpu = sorted((s[2] - c[0] - c[1] - sum(c[2:])) / sum(c[2:]) for c, s in zip(plain_cpu[1:], s_runs))
    s_wall, rep = min(s_runs, key=lambda r: r[0])[:2]
    tm = rep["timing"]
    nfe = sum(c["nfe"] for c in rep["cells"])
    step_s = tm["cells_sample_s"] / max(1, nfe)
    extra = s_wall - p["warmup"] - p["reference"] - p["cells"]
    own = tm["total_s"] - tm["warmup_s"] - tm["reference_s"] - tm["cells_call_s"]
    return {"label": label, "cells": len(cells), "nfe": nfe, "ms_per_call": 1000 * step_s,
            "plain": p, "sweep_s": s_wall, "overhead_s": extra, "overhead": extra / p["cells"],
            "overhead_vs_best_runs": (s_wall - p["warmup"] - p["reference"] - p["cells_per_run_best"])
            / p["cells_per_run_best"],
            "paired_parts": parts, "paired_median": paired[len(paired) // 2],
            "paired_quartiles": (paired[len(paired) // 4], paired[(3 * len(paired)) // 4]),
            "cpu_median": cpu[len(cpu) // 2], "cpu_quartiles": (cpu[len(cpu) // 4], cpu[(3 * len(cpu)) // 4]),
            "node_rest_s": own, "node_overhead": own / max(1e-9, tm["cells_call_s"]),
            "node_timing": tm, "target": target, "min_step_s": min_step_s,
            "judged": step_s >= min_step_s, "holds": step_s >= min_step_s and paired[len(paired) // 2] < target}


def torch_threads():
    import torch
    return torch.get_num_threads()


def markdown(rows, meta):
    lines = [f"Step sweep overhead: {meta['machine']}; ComfyUI {meta['comfyui']}; {meta['date']}; best of "
             f"{meta['repeats']} repeats each, {meta['seconds']:.0f} s; 1-minute load average before/after each case: "
             f"{meta['load']} (other jobs on the machine make CPU timings noisy). "
             "Overhead = (sweep node wall time - plain "
             "warm-up - plain reference - plain cells) / plain cells, where plain = the same runs through "
             "nodes.common_ksampler (KSampler's function, with its progress callback) one after another. "
             "Warm-up and reference are extra runs the node makes on purpose: shown apart, counted neither "
             "as overhead nor as sampling. The headline compares the best sweep with the best plain pass; "
             "the verdict uses the paired median (each sweep against the plain pass run just before it, "
             "median over the repeats), which a slow drift or one disturbed run of a shared machine does "
             "not move.", "", ""]
    head = ["case", "cells", "model calls", "ms per call", "plain cells (s)", "plain warm-up (s)",
            "plain reference (s)", "sweep node (s)", "overhead (s)", "overhead", "target", "holds",
            "vs plain runs each at their best", "paired median (quartiles)", "CPU time, paired median (quartiles)",
            "node's own accounting"]
    body = []
    for r in rows:
        verdict = ("yes" if r["holds"] else "**no**") if r["judged"] else \
            f"not judged (model step {r['ms_per_call']:.0f} ms < {1000 * r['min_step_s']:.0f} ms)"
        body.append([r["label"], r["cells"], r["nfe"], f"{r['ms_per_call']:.1f}", f"{r['plain']['cells']:.3f}",
                     f"{r['plain']['warmup']:.3f}", f"{r['plain']['reference']:.3f}", f"{r['sweep_s']:.3f}",
                     f"{r['overhead_s']:+.3f}", f"{100 * r['overhead']:+.1f} %", f"< {100 * r['target']:g} %",
                     verdict, f"{100 * r['overhead_vs_best_runs']:+.1f} %",
                     f"{100 * r['paired_median']:+.1f} % ({100 * r['paired_quartiles'][0]:+.1f} .. "
                     f"{100 * r['paired_quartiles'][1]:+.1f} %)",
                     f"{100 * r['cpu_median']:+.1f} % ({100 * r['cpu_quartiles'][0]:+.1f} .. "
                     f"{100 * r['cpu_quartiles'][1]:+.1f} %)",
                     f"{100 * r['node_overhead']:+.1f} % ({r['node_rest_s']:.3f} s)"])
    by_part = "; ".join(f"{r['label'].split(' (')[0]}: " +
                        ", ".join(f"{k} {100 * v:+.1f} %" for k, v in r["paired_parts"].items()) for r in rows)
    parts = ["", "", "Paired, by part (the node's part minus plain's, over plain cells; medians over the pairs, so "
             "they need not add up to the paired median): " + by_part]
    return "\n".join(lines) + common.md_table(head, body) + "\n".join(parts) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--cases", default="all", help="all, or comma-separated case numbers (0, 1)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's; 1 is steadier on a "
                    "busy machine, where spinning OpenMP threads make timings erratic)")
    ap.add_argument("--out", default=common.RESULTS)
    a = ap.parse_args(argv)
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    common.load_comfy(a.device)
    pos, neg = common.node("SamplerLabConditioning").encode(0)
    cases = CASES if a.cases == "all" else [CASES[int(i)] for i in a.cases.split(",")]
    t0, rows, load = time.perf_counter(), [], [os.getloadavg()[0]]
    tmp = tempfile.mkdtemp(prefix="sweep_bench_")
    try:
        for case in cases:
            r = run_case(case, a.repeats, tmp, pos, neg)
            rows.append(r)
            load.append(os.getloadavg()[0])
            print(f"{r['label']}: {r['cells']} cells, {r['nfe']} model calls in the cells, "
                  f"{r['ms_per_call']:.1f} ms per model call")
            print(f"  plain: cells {r['plain']['cells']:.3f} s (+ warm-up {r['plain']['warmup']:.3f} s, reference "
                  f"{r['plain']['reference']:.3f} s)   sweep node: {r['sweep_s']:.3f} s   -> overhead "
                  f"{r['overhead_s']:+.3f} s = {100 * r['overhead']:+.1f} % of the cells' sampling "
                  f"(target < {100 * r['target']:g} %: "
                  f"{('holds' if r['holds'] else 'MISSED') if r['judged'] else 'not judged, model step too fast'})")
            tm = r["node_timing"]
            print(f"  (plain cells with every run at its own best: {r['plain']['cells_per_run_best']:.3f} s -> "
                  f"overhead {100 * r['overhead_vs_best_runs']:+.1f} %; paired, each sweep against the plain pass "
                  f"before it: median {100 * r['paired_median']:+.1f} %, quartiles "
                  f"{100 * r['paired_quartiles'][0]:+.1f} .. {100 * r['paired_quartiles'][1]:+.1f} %)")
            print(f"  CPU time of the process, paired: median {100 * r['cpu_median']:+.1f} %, quartiles "
                  f"{100 * r['cpu_quartiles'][0]:+.1f} .. {100 * r['cpu_quartiles'][1]:+.1f} %")
            print("  paired, by part (node's minus plain's, median over the pairs): " +
                  ", ".join(f"{k} {100 * v:+.1f} %" for k, v in r["paired_parts"].items()))
            print(f"  node's own accounting: total {tm['total_s']:.3f} s = warm-up {tm['warmup_s']:.3f} + reference "
                  f"{tm['reference_s']:.3f} + cells {tm['cells_call_s']:.3f} (sampler alone {tm['cells_sample_s']:.3f})"
                  f" + rest {r['node_rest_s']:.3f} s ({100 * r['node_overhead']:+.1f} %)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    meta = {"machine": common.machine(a.device), "comfyui": common.comfy_version(), "date": common.today(),
            "repeats": a.repeats, "seconds": time.perf_counter() - t0, "threads": torch_threads(),
            "load": ", ".join(f"{v:.1f}" for v in load)}
    tag = "" if a.device == "cpu" else "_" + a.device
    path = common.write_text(os.path.join(a.out, f"sweep_overhead{tag}.md"), markdown(rows, meta))
    print(f"written: {path}")
    return 0 if all(r["holds"] or not r["judged"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
