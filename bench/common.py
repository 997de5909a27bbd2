"""Shared helpers for the benchmarks: load the real ComfyUI in-process (CPU unless --device cuda),
load the pack the way ComfyUI loads custom nodes, machine description, JSON/markdown output."""
import asyncio
import datetime
import json
import os
import platform
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMFY_DIR = os.environ.get("SAMPLER_LAB_COMFYUI", os.path.join(ROOT, ".labenv", "ComfyUI"))
PACK_DIR = os.path.join(COMFY_DIR, "custom_nodes", "comfyui-sampler-lab")
RESULTS = os.path.join(ROOT, "bench", "results")
_STATE = {}


def load_comfy(device="cpu"):
    """Import ComfyUI and the pack once per process; returns the pack module. Reuses a runtime that
    tests/comfy_runtime.py already loaded in this process."""
    key = PACK_DIR.replace(".", "_x_")
    if key in sys.modules and "nodes" in sys.modules:
        return sys.modules[key]
    if not os.path.isfile(os.path.join(COMFY_DIR, "main.py")):
        raise SystemExit(f"ComfyUI runtime missing at {COMFY_DIR}: run scripts/setup_labenv.sh")
    if COMFY_DIR not in sys.path:
        sys.path.insert(0, COMFY_DIR)
    if ROOT not in sys.path:
        sys.path.append(ROOT)   # at the end: ComfyUI's top-level modules win
    argv = sys.argv
    sys.argv = [argv[0]] + (["--cpu"] if device == "cpu" else [])
    try:
        import comfy.options
        comfy.options.enable_args_parsing()
        import comfy.cli_args  # noqa: F401  (parses --cpu)
        import nodes
    finally:
        sys.argv = argv
    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    if not asyncio.run(nodes.load_custom_node(PACK_DIR)):
        raise SystemExit("the pack failed to load in ComfyUI")
    return sys.modules[key]


def node(name):
    import nodes
    return nodes.NODE_CLASS_MAPPINGS[name]()


def machine(device="cpu"):
    """One line describing where the numbers were measured."""
    if device == "cuda" and torch.cuda.is_available():
        where = torch.cuda.get_device_name(0)
    else:
        where = f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
                f"{torch.get_num_threads()} torch thread(s)"
    return f"{where}; torch {torch.__version__}; Python {platform.python_version()}"


def today():
    return datetime.date.today().isoformat()


def comfy_version():
    try:
        import comfyui_version
        return comfyui_version.__version__
    except ImportError:
        return "unknown"


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True, default=float)
    return path


def write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def md_table(header, rows):
    """A markdown table from a header list and rows of cells (already formatted)."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)
