"""Pure-torch samplers (k-diffusion signature). No ComfyUI imports here.

Every module in this package except the infrastructure ones registers its SamplerSpecs
at import (one family per file), so adding a file adds its samplers.
"""
import pkgutil
from importlib import import_module

from .registry import SAMPLERS, register
from .spec import SamplerSpec

_INFRASTRUCTURE = {"spec", "registry", "common", "noise", "cfgpp"}

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _mod not in _INFRASTRUCTURE and not _mod.startswith("_"):
        import_module(f".{_mod}", __name__)

__all__ = ["SAMPLERS", "SamplerSpec", "register"]
