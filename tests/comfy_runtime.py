"""The real ComfyUI runtime for integration tests (no mocks): the project-local one set up by
scripts/setup_labenv.sh, imported in-process on CPU, with the pack loaded the way ComfyUI loads
custom nodes (nodes.load_custom_node on custom_nodes/comfyui-sampler-lab)."""
import asyncio
import contextlib
import importlib
import os
import sys

import pytest

from conftest import ROOT

COMFY_DIR = os.environ.get("SAMPLER_LAB_COMFYUI", os.path.join(ROOT, ".labenv", "ComfyUI"))
PACK_DIR = os.path.join(COMFY_DIR, "custom_nodes", "comfyui-sampler-lab")
_STATE = {}


def comfy_available():
    return os.path.isfile(os.path.join(COMFY_DIR, "main.py"))


def load():
    """Import ComfyUI (CPU) and the pack once per test process; returns the pack module."""
    if "pack" in _STATE:
        return _STATE["pack"]
    if not comfy_available():
        if os.environ.get("CI"):
            raise RuntimeError(f"ComfyUI runtime missing at {COMFY_DIR}: run scripts/setup_labenv.sh")
        pytest.skip("ComfyUI runtime not set up (run scripts/setup_labenv.sh)")
    if COMFY_DIR not in sys.path:
        sys.path.insert(0, COMFY_DIR)
    argv = sys.argv
    sys.argv = [argv[0], "--cpu"]
    try:
        import comfy.options
        comfy.options.enable_args_parsing()
        import comfy.cli_args  # noqa: F401  (parses --cpu)
        import nodes
    finally:
        sys.argv = argv
    assert os.path.dirname(os.path.abspath(nodes.__file__)) == os.path.abspath(COMFY_DIR), nodes.__file__
    before = set(nodes.NODE_CLASS_MAPPINGS)
    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    ok = asyncio.run(nodes.load_custom_node(PACK_DIR))
    assert ok, "the pack failed to load in ComfyUI"
    pack = sys.modules[PACK_DIR.replace(".", "_x_")]
    _STATE.update(pack=pack, nodes=nodes, core_nodes=before)
    return pack


def node(name):
    load()
    return _STATE["nodes"].NODE_CLASS_MAPPINGS[name]()


@contextlib.contextmanager
def sweep_output(tmp_path_factory, name):
    """(Step Sweep node class, a fresh ComfyUI output folder) for a test module; the old output
    folder comes back afterwards."""
    pack = load()
    import folder_paths
    old = folder_paths.get_output_directory()
    out = str(tmp_path_factory.mktemp(name))
    folder_paths.set_output_directory(out)
    try:
        yield importlib.import_module(pack.__name__ + ".nodes.sweep_nodes").SamplerLabStepSweep, out
    finally:
        folder_paths.set_output_directory(old)
