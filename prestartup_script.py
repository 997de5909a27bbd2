"""Sampler Lab start-up hook: our sampler and scheduler names reach every pack, whatever the import order.

ComfyUI's main.py runs each custom-node folder's prestartup_script.py before it imports torch or any
comfy.* module; it loads the packs themselves much later, one folder after another. Many packs copy
comfy.samplers.KSampler.SAMPLERS / SCHEDULERS into their own lists when they are imported (or rebind
KSampler.SCHEDULERS to a new list), so a name appended after that import never reaches their nodes.

This script imports nothing heavy (no torch, no comfy): it only puts a one-shot finder at the front of
sys.meta_path. When comfy.samplers is first imported (by ComfyUI itself, before any pack), the finder
lets Python load it as usual and then registers the pack's samplers and schedulers into its lists,
through bridge.register_pack: additive, never overwriting a name, idempotent (the pack's own import
later finds every name present). Any failure here is logged and swallowed: ComfyUI then starts as
if this script did not exist, and the pack registers at its own import as before.
"""
import importlib.util
import logging
import os
import sys

TARGET = "comfy.samplers"
# The folder as ComfyUI joined it (custom_nodes path + folder name): ComfyUI names the pack's module
# after this path, and using the same name lets the pack's later import reuse the submodules loaded here.
PACK_PATH = os.path.dirname(__file__)
PACK_MODULE = PACK_PATH.replace(".", "_x_")
log = logging.getLogger("sampler_lab")


def register_now():
    """Import the pack's registration code (bridge, samplers, schedulers; not its nodes) and register."""
    try:
        if PACK_MODULE not in sys.modules:
            # the package object without running its __init__ (ComfyUI runs that later, as usual)
            spec = importlib.util.spec_from_file_location(
                PACK_MODULE, os.path.join(os.path.abspath(PACK_PATH), "__init__.py"),
                submodule_search_locations=[os.path.abspath(PACK_PATH)])
            sys.modules[PACK_MODULE] = importlib.util.module_from_spec(spec)
        bridge = importlib.import_module(PACK_MODULE + ".bridge")
        bridge.register_pack(at_start_up=True)
    except Exception:  # never take ComfyUI start-up down: the pack's import registers again
        log.exception("[Sampler Lab] early registration failed; the pack registers when ComfyUI imports it")


class _RegisterAfterLoad:
    """Loader wrapper: runs the real loader, then register_now (errors in ours never reach the import)."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        # Python binds comfy.samplers on its parent package only after this returns; bridge reads
        # it as an attribute, so bind it now (the same object Python binds a moment later)
        parent, _, child = module.__name__.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, module)
        register_now()

    def __getattr__(self, name):   # get_source, get_filename, ... for tracebacks and inspect
        return getattr(self.loader, name)


class SamplerListsFinder:
    """One-shot meta-path finder for comfy.samplers; removes itself the first time it is asked."""
    sampler_lab = True

    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        uninstall()
        try:
            spec = importlib.util.find_spec(fullname)
        except Exception:
            return None   # let the normal import machinery report it
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _RegisterAfterLoad(spec.loader)
        return spec

    def invalidate_caches(self):
        pass


def uninstall():
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "sampler_lab", False)]


def install():
    if TARGET in sys.modules:          # another pack's prestartup script imported it already
        register_now()
    elif not any(getattr(f, "sampler_lab", False) for f in sys.meta_path):
        sys.meta_path.insert(0, SamplerListsFinder())


try:
    install()
except Exception:
    log.exception("[Sampler Lab] start-up hook not installed; the pack registers when ComfyUI imports it")
