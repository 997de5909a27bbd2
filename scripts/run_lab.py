"""The README's main job (dev tool, not shipped): run the lab example workflows through a real
ComfyUI server started headless on a loopback port, and print the paths of what they made."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from comfy_server import ROOT, ComfyServer  # noqa: E402
import workflow_tools as wt  # noqa: E402

MAIN_WORKFLOWS = ["lab_step_sweep.json", "lab_first_run.json"]


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
            files = wt.output_files(entry)
            print(f"{name}: {len(files)} files in {time.time() - t1:.1f} s")
            for typ, sub, fn in files:
                path = os.path.join(out_dir, "output" if typ == "output" else typ, sub, fn)
                print("  " + path)
                report = os.path.join(os.path.dirname(path), "report.json")
                if fn.startswith("grid") and os.path.isfile(report):
                    print("  " + report)
                    print("  " + os.path.join(os.path.dirname(path), "report.csv"))


if __name__ == "__main__":
    main()
