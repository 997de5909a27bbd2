"""Pure-torch schedulers: fn(model_sigmas, steps) -> steps + 1 sigmas, descending, last 0.

No ComfyUI imports here. Every module except the infrastructure ones registers its
SchedulerSpecs at import. Published tables live in data files (schedulers/data/).
"""
import pkgutil
from importlib import import_module

from .registry import SCHEDULERS, register
from .spec import ModelSigmas, SchedulerSpec

_INFRASTRUCTURE = {"spec", "registry", "model_sigmas", "common", "optimize", "tools"}

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _mod not in _INFRASTRUCTURE and not _mod.startswith("_"):
        import_module(f".{_mod}", __name__)

__all__ = ["SCHEDULERS", "SchedulerSpec", "ModelSigmas", "register"]
