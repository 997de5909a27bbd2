"""Thin ComfyUI node classes. Each module exports NODE_CLASS_MAPPINGS and NODE_DISPLAY_NAME_MAPPINGS;
a module that fails to import is reported once and the others still load."""
import importlib
import logging

_MODULES = ("lab_nodes", "labnet_nodes", "schedule_nodes", "guidance_nodes", "sampler_nodes", "optimizer_nodes", "sigma_tools", "sweep_nodes", "plot_nodes", "preview_routes",
            "exp_rk_nodes", "oss_tangent_nodes", "handoff_nodes", "chain_nodes")

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

for _name in _MODULES:
    try:
        _mod = importlib.import_module(f".{_name}", __name__)
    except Exception:  # one broken node module must not hide the rest of the pack
        logging.getLogger("sampler_lab").exception("[Sampler Lab] node module %s failed to load", _name)
        continue
    NODE_CLASS_MAPPINGS.update(_mod.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_mod.NODE_DISPLAY_NAME_MAPPINGS)
