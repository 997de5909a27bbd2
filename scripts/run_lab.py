"""The README's main job (dev tool, not shipped): run the Lab Net example workflows through a real
ComfyUI server started headless on a loopback port, then print a short summary: the step sweep's
recommendation, the best cell per row, whether cells were reused from an earlier run, and where
every file is."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from comfy_server import ROOT, ComfyServer  # noqa: E402
import workflow_tools as wt  # noqa: E402

MAIN_WORKFLOWS = ["lab_step_sweep.json", "lab_first_run.json", "lab_cfg_vs_cfgpp.json"]


def fmt(v, digits=3):
    return "-" if v is None else (f"{v:.{digits}g}" if isinstance(v, float) else str(v))


def sweep_summary(report):
    """Lines about a sweep's answer, read from its report.json."""
    lines = []
    rec = report.get("recommendation") or report.get("recommended_best")
    if isinstance(rec, dict) and rec:
        group = rec.get("group", {})
        sampler = rec.get("sampler") or group.get("sampler") or report.get("settings", {}).get("sampler_name")
        scheduler = rec.get("scheduler") or group.get("scheduler") or report.get("settings", {}).get("scheduler")
        lines.append(f"  recommendation: {sampler} / {scheduler}, {fmt(rec.get('steps'))} steps, "
                     f"{fmt(rec.get('model_calls', rec.get('nfe')))} model calls (within tolerance "
                     f"{report.get('settings', {}).get('tolerance')} of the reference)")
    else:
        lines.append("  recommendation: none of the swept settings reached the tolerance; sweep more steps")
    rows = {}
    for cell in report.get("cells", []):
        if cell.get("status") == "ok":
            rows.setdefault(cell.get("row"), []).append(cell)
    for row, cells in sorted(rows.items(), key=lambda kv: (kv[0] is None, kv[0])):
        best = min(cells, key=lambda c: (c.get("rel_rmse") is None, c.get("rel_rmse") or 0, c.get("nfe") or 0))
        p = best.get("params", {})
        lines.append(f"  best in row {row}: {p.get('sampler', p.get('sampler_name'))} {p.get('steps')} steps, {best.get('nfe')} calls, "
                     f"relative error {fmt(best.get('rel_rmse'))}, PSNR {fmt(best.get('psnr'))} dB")
    counts = report.get("counts", {})
    if counts.get("resumed"):
        lines.append(f"  {counts['resumed']} of {counts.get('cells')} cells were reused from an earlier run "
                     "(same model, prompt, latent and settings): delete the sweep folder to sample them again")
    else:
        lines.append(f"  all {counts.get('cells')} cells sampled in this run")
    return lines


def main():
    out_dir = os.path.join(ROOT, "out")
    t0 = time.time()
    with ComfyServer(out_dir) as srv:
        print(f"ComfyUI ready at {srv.url} in {time.time() - t0:.1f} s (log: {srv.log_path})")
        info = wt.http_json(srv.url + "/object_info")
        if "IMPORT FAILED" in srv.log_text() or "[Sampler Lab] failed" in srv.log_text():
            sys.exit(f"the pack failed to load; see {srv.log_path}")
        for name in MAIN_WORKFLOWS:
            with open(os.path.join(ROOT, "workflows", name)) as f:
                prompt = wt.ui_to_api(json.load(f), info)
            t1 = time.time()
            entry = wt.wait(srv.url, wt.queue(srv.url, prompt))
            paths = []
            for typ, sub, fn in wt.output_files(entry):
                paths.append(os.path.join(out_dir, "output" if typ == "output" else typ, sub, fn))
            reports = sorted({os.path.join(os.path.dirname(p), "report.json") for p in paths
                              if os.path.isfile(os.path.join(os.path.dirname(p), "report.json"))})
            for rep in reports:
                paths += [rep, os.path.join(os.path.dirname(rep), "report.csv")]
            print(f"\n{name}: finished in {time.time() - t1:.1f} s, {len(paths)} files")
            for rep in reports:
                with open(rep) as f:
                    print("\n".join(sweep_summary(json.load(f))))
            for p in paths:
                print("  " + p)
    print("\nImages are saved with ComfyUI's SaveImage, which numbers files (_00001_, _00002_, ...) and never "
          f"overwrites: earlier runs' images stay beside them in {os.path.join(out_dir, 'output')}. "
          "Delete that folder to start afresh.")


if __name__ == "__main__":
    main()
