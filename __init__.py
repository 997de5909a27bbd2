"""Sampler Lab: samplers, schedulers, CFG++ and a step sweep for ComfyUI.

ComfyUI imports this package from custom_nodes/. Registration is additive and idempotent:
names ComfyUI or another pack already has are skipped with one log line.
"""
import logging

WEB_DIRECTORY = "./web"
NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

try:
    from .samplers import SAMPLERS
    from .schedulers import SCHEDULERS
    from . import bridge

    _pack = list(SAMPLERS.values())
    bridge.register_all(_pack + bridge.cfg_pp_specs(_pack), list(SCHEDULERS.values()))
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: F811
except Exception:  # never take ComfyUI start-up down; report once in its log
    logging.getLogger("sampler_lab").exception("[Sampler Lab] failed to load; ComfyUI continues without it")

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
