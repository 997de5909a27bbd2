"""Sampler Lab: samplers, schedulers, CFG++ and a step sweep for ComfyUI.

ComfyUI imports this package from custom_nodes/. Registration is additive and idempotent:
names ComfyUI or another pack already has are skipped with one log line. Under main.py the names are
usually registered earlier, by prestartup_script.py, before any pack is imported. Imported by plain
Python (no ComfyUI on the path), it registers nothing and stays quiet.
"""
import importlib.util
import logging

WEB_DIRECTORY = "./web"
NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}


def _load():
    # prestartup_script.py may have imported bridge, samplers and schedulers under this very module
    # name already (and registered everything before other packs load): binding them by name here
    # reuses those modules, and register_pack then finds every name present.
    global bridge, samplers, schedulers
    from . import bridge, samplers, schedulers
    from . import nodes

    bridge.register_pack()
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
