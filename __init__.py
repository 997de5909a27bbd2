"""Sampler Lab: samplers, schedulers, CFG++ and a step sweep for ComfyUI.

ComfyUI imports this package from custom_nodes/. Registration is additive and idempotent:
names ComfyUI or another pack already has are skipped with one log line. Imported by plain
Python (no ComfyUI on the path), it registers nothing and stays quiet.
"""
import importlib.util
import logging

WEB_DIRECTORY = "./web"
NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}


def _load():
    from .samplers import SAMPLERS
    from .schedulers import SCHEDULERS
    from . import bridge
    from . import nodes

    pack = list(SAMPLERS.values())
    bridge.register_all(pack + bridge.cfg_pp_specs(pack), list(SCHEDULERS.values()))
    from .nodes import schedule_store
    schedule_store.register_saved()
    NODE_CLASS_MAPPINGS.update(nodes.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(nodes.NODE_DISPLAY_NAME_MAPPINGS)


if importlib.util.find_spec("comfy") is not None:
    try:
        _load()
    except Exception:  # never take ComfyUI start-up down; report once in its log
        logging.getLogger("sampler_lab").exception("[Sampler Lab] failed to load; ComfyUI continues without it")

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
