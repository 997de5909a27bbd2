"""Benchmark (dev tool, not a test): the Step Sweep's own work beside its cells' sampling time.

The one target (issue 20): the sweep's own work is at most 1 % of its cells' sampling time when a
model step costs 50 ms or more, where users are (a GPU model step is 50-500 ms). It is judged only
when the measured step really is >= 50 ms; a faster model is printed, not judged.

Measured paired, in one process, alternating, a fresh output folder for every sweep (no resume):
  plain  = the sweep's cells one after another through ComfyUI's own KSampler function
           (nodes.common_ksampler: noise, its progress callback, comfy.sample.sample; the console
           progress bar off, as the node has it), timed as a whole: "the cells' sampling time";
  sweep  = the node's wall time, everything included (planning, warm-up, reference, the cells,
           measuring, the files, the grid, the chart, the report);
  own work = sweep - the node's warm-up - the node's reference - plain.
The warm-up (euler, 2 steps) and the reference are sampling runs the node makes on purpose; they are
timed by the node around the sampling call alone (report.json timing) and taken out, not counted
as the sweep's work. Each sweep is paired with the plain pass just before it; the verdict is the
median of own work / plain over the pairs (slow drifts and one disturbed run of a shared machine
do not move it). Also printed: the node's own accounting (total - warm-up - reference - the cells'
own call time), which needs no pairing, the paired difference of the cells alone (do the node's
cells sample slower than KSampler's?), and the writer thread's busy time (report timing writer_s:
measuring and writing cells, compressing PNGs, beside the sampling thread).

Run: .labenv/venv/bin/python bench/sweep_overhead.py [--pairs N] [--threads T] [--device cpu|cuda] [--out DIR]
Writes DIR/sweep_overhead.md (default bench/results/).
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

TARGET, MIN_STEP_S = 0.01, 0.050
# label, lab components, image px, batch, steps axis, samplers axis, reference steps
CASES = [
    ("lab workflow (workflows/lab_step_sweep.json's model, a 1 ms step: not judged; 6 components, 128 px, "
     "16 cells)", 6, 128, 1, "4,8,16,32", "euler, dpmpp_2m, heun, lab_rk4", 48),
    ("model step >= 50 ms (the node's default grid, steps 8,12,16-32:8 x euler, dpmpp_2m, heun = 15 cells, on a "
     "lab model with 320 components, 1024 px, batch 2, sized for 50 ms or more a call on one CPU thread: the run's "
     "measured cost is the 'ms per model call' column)", 320, 1024, 2, "8,12,16-32:8", "euler, dpmpp_2m, heun", 16),
]


def _median(v):
    v = sorted(v)
    return v[len(v) // 2]


def median_interval(v, level=0.95):
    """Distribution-free interval for the median: order statistics x_(k) .. x_(n+1-k) with k the
    largest rank whose binomial tail P(Bin(n, 1/2) < k) stays <= (1 - level) / 2 (the sign-test
    interval; e.g. n = 12 gives ranks 3 .. 10, coverage 96.1 %). Too few values: their whole range."""
    v, n = sorted(v), len(v)
    tail, k = 0.0, 0
    while k < n // 2:
        tail += math.comb(n, k) / 2 ** n          # P(Bin(n, 1/2) = k), summed: P(Bin < k + 1)
        if tail > (1 - level) / 2:
            break
        k += 1
    k = max(k, 1)
    return v[k - 1], v[n - k]


def run_case(case, pairs, tmp, pos, neg):
    import comfy.utils
    import folder_paths
    import nodes
    from importlib import import_module
    from sweep.axes import parse_axis
    label, components, px, batch, steps, samplers, ref_steps = case
    sweep_node = import_module(common.load_comfy().__name__ + ".nodes.sweep_nodes").SamplerLabStepSweep
    model = common.node("SamplerLabModel").build("eps", 3.0, components, 3, 0.05, 0, "float32")[0]
    latent = common.node("SamplerLabEmptyLatent").make(px, px, batch, 1)[0]
    kw = dict(model=model, latent_image=latent, seed=7, steps=20, cfg=3.0, sampler_name="euler",
              scheduler="karras", denoise=1.0, x_axis="steps", x_values=steps, y_axis="sampler",
              y_values=samplers, z_axis="none", z_values="", equal_cost=False, reference_sampler="lab_rk4",
              reference_steps=ref_steps, tolerance=0.02, cell_limit=64, cell_size=256,
              filename_prefix="bench/sweep", positive=pos, negative=neg)
    cells = [(s.strip(), int(n)) for s in samplers.split(",") for n in parse_axis("steps", steps)]
    comfy.utils.PROGRESS_BAR_ENABLED = False      # no tqdm bar in the console for plain (the node has none)

    def plain():
        t0 = time.perf_counter()
        for name, n in cells:
            nodes.common_ksampler(model, 7, n, 3.0, name, "karras", pos, neg, latent)
        return time.perf_counter() - t0

    def swept(i):
        folder_paths.set_output_directory(os.path.join(tmp, f"case{CASES.index(case)}_{i}"))
        t0 = time.perf_counter()
        out = sweep_node().sweep(**kw)
        return time.perf_counter() - t0, json.loads(out["result"][3])

    plain()                                   # load / first-call effects out of the way
    swept("w")
    rows = []
    for i in range(pairs):
        p = plain()
        s, rep = swept(i)
        tm = rep["timing"]
        nfe = sum(c["nfe"] for c in rep["cells"])
        own = s - tm["warmup_s"] - tm["reference_s"] - p
        rows.append({"plain": p, "sweep": s, "own": own, "timing": tm,
                     "own_accounting": tm["total_s"] - tm["warmup_s"] - tm["reference_s"] - tm["cells_call_s"],
                     "cells_diff": tm["cells_call_s"] - p, "nfe": nfe})
    ratios = [r["own"] / r["plain"] for r in rows]
    step_s = _median([r["timing"]["cells_sample_s"] / r["nfe"] for r in rows])
    med = _median(ratios)
    judged = step_s >= MIN_STEP_S and "not judged" not in label

    def part(f):
        return _median([f(r) / r["plain"] for r in rows])
    parts = {"warm-up": part(lambda r: r["timing"]["warmup_s"]),
             "reference": part(lambda r: r["timing"]["reference_s"]),
             "cells": part(lambda r: r["cells_diff"]), "the rest": part(lambda r: r["own_accounting"])}
    return {"label": label, "cells": len(cells), "nfe": rows[0]["nfe"], "pairs": pairs, "ms_per_call": 1000 * step_s,
            "parts": parts,
            "plain_s": _median([r["plain"] for r in rows]), "sweep_s": _median([r["sweep"] for r in rows]),
            "warmup_s": _median([r["timing"]["warmup_s"] for r in rows]),
            "reference_s": _median([r["timing"]["reference_s"] for r in rows]),
            "own_s": _median([r["own"] for r in rows]), "paired_median": med, "paired_interval": median_interval(ratios),
            "own_accounting_s": _median([r["own_accounting"] for r in rows]),
            "own_accounting": _median([r["own_accounting"] / r["timing"]["cells_call_s"] for r in rows]),
            "cells_diff": _median([r["cells_diff"] / r["plain"] for r in rows]),
            "writer_s": _median([r["timing"].get("writer_s", 0.0) for r in rows]),
            "judged": judged, "holds": judged and med <= TARGET}


def markdown(rows, meta):
    lines = [f"Step sweep overhead: {meta['machine']}; ComfyUI {meta['comfyui']}; {meta['date']}; "
             f"{meta['seconds']:.0f} s; "
             f"1-minute load average before/after each case: {meta['load']}. Own work = sweep node wall time - the "
             "node's warm-up - the node's reference - plain, where plain = the same cells through "
             "nodes.common_ksampler (KSampler's function) one after another, the pass just before each sweep; "
             "medians over the pairs. Target: own work <= 1 % of the cells' sampling time at a model step >= 50 ms.",
             "", ""]
    head = ["case", "cells", "model calls", "pairs", "ms per model call", "plain cells (s)", "node warm-up (s)",
            "node reference (s)",
            "sweep node (s)", "own work (s)", "own work / cells, paired median (95 % interval)", "target", "holds",
            "node's own accounting", "cells: node - plain", "writer thread busy (beside the sampling)"]
    body = []
    for r in rows:
        verdict = ("yes" if r["holds"] else "**no**") if r["judged"] else "not judged"
        body.append([r["label"], r["cells"], r["nfe"], r["pairs"], f"{r['ms_per_call']:.1f}", f"{r['plain_s']:.3f}",
                     f"{r['warmup_s']:.3f}", f"{r['reference_s']:.3f}", f"{r['sweep_s']:.3f}", f"{r['own_s']:+.3f}",
                     f"{100 * r['paired_median']:+.2f} % ({100 * r['paired_interval'][0]:+.2f} .. "
                     f"{100 * r['paired_interval'][1]:+.2f} %)", f"<= {100 * TARGET:g} %", verdict,
                     f"{100 * r['own_accounting']:+.2f} % ({r['own_accounting_s']:.3f} s)",
                     f"{100 * r['cells_diff']:+.2f} %", f"{r['writer_s']:.3f} s"])
    busy = max(float(v) for v in meta["load"].split(", ")) > (os.cpu_count() or 1)
    if busy:
        lines.insert(1, "\n**The machine was busy** (a 1-minute load average above its core count): other work's "
                        "noise is in the paired figures; re-run on an otherwise idle machine before judging.\n")
    by_part = "; ".join(f"{r['label'].split(' (')[0]}: " + ", ".join(f"{k} {100 * v:+.2f} %" for k, v in
                                                                   r["parts"].items()) for r in rows)
    tail = ["", "", "Paired, by part (over plain cells, medians over the pairs; warm-up and reference are taken out of "
            "own work, cells = the node's cells minus plain's, the rest = the node's own accounting): " + by_part]
    return "\n".join(lines) + common.md_table(head, body) + "\n".join(tail) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", "--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--cases", default="1", help="all, or comma-separated case numbers (0: the lab workflow's "
                    "model, not judged; 1: a model step >= 50 ms, judged)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (1 is steadier on a busy machine)")
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
            r = run_case(case, a.pairs, tmp, pos, neg)
            rows.append(r)
            load.append(os.getloadavg()[0])
            verdict = ("holds" if r["holds"] else "MISSED") if r["judged"] else "not judged"
            print(f"{r['label']}: {r['ms_per_call']:.1f} ms per model call, {r['pairs']} pairs")
            print(f"  plain cells {r['plain_s']:.3f} s; sweep {r['sweep_s']:.3f} s (warm-up {r['warmup_s']:.3f} s, "
                  f"reference {r['reference_s']:.3f} s); own work {r['own_s']:+.3f} s = paired median "
                  f"{100 * r['paired_median']:+.2f} % (95 % interval {100 * r['paired_interval'][0]:+.2f} .. "
                  f"{100 * r['paired_interval'][1]:+.2f} %) of the cells: target <= {100 * TARGET:g} % {verdict}")
            print(f"  node's own accounting {100 * r['own_accounting']:+.2f} % ({r['own_accounting_s']:.3f} s); "
                  f"cells node - plain {100 * r['cells_diff']:+.2f} %; writer thread busy {r['writer_s']:.3f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    meta = {"machine": common.machine(a.device), "comfyui": common.comfy_version(), "date": common.today(),
            "seconds": time.perf_counter() - t0, "load": ", ".join(f"{v:.1f}" for v in load)}
    tag = "" if a.device == "cpu" else "_" + a.device
    path = common.write_text(os.path.join(a.out, f"sweep_overhead{tag}.md"), markdown(rows, meta))
    print(f"written: {path}")
    return 0 if all(r["holds"] or not r["judged"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
