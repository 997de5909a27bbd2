"""The ComfyUI names the pack uses, recorded as data (tests/data/comfy_api_record.json) with the newest
source they were read from, and checked three ways:
- the record covers every comfy.* name in the shipped code (a new use must be recorded);
- each recorded name exists in the running ComfyUI and takes the parameters the pack relies on;
- each recorded name read in the newest source takes those parameters there too.
Plus the rules that follow the running core: no pack name shadows a name of the newest core, and
CFG++ forms of core samplers exist only for core samplers the running ComfyUI has."""
import importlib
import inspect
import json
import os
import re

import pytest

import comfy_runtime
from conftest import ROOT

RECORD = json.load(open(os.path.join(ROOT, "tests", "data", "comfy_api_record.json")))
NAMES = RECORD["names"]
NEWEST = RECORD["newest_source"]
USE = re.compile(r"(?<![\w.])((?:comfy_api|comfy|folder_paths|latent_preview)(?:\.[A-Za-z_]\w*)+)")
ALIASES = {"k_sampling.": "comfy.k_diffusion.sampling.", "comfy_args.": "comfy.cli_args.args.",
           "feature_flags.": "comfy_api.feature_flags."}


def shipped_sources():
    paths = [os.path.join(ROOT, f) for f in ("__init__.py", "bridge.py", "prestartup_script.py")]
    nodes_dir = os.path.join(ROOT, "nodes")
    paths += [os.path.join(nodes_dir, f) for f in sorted(os.listdir(nodes_dir)) if f.endswith(".py")]
    return [p for p in paths if os.path.isfile(p)]


def used_names():
    """Dotted ComfyUI names in the shipped code (aliases such as k_sampling. expanded)."""
    found = {}
    for path in shipped_sources():
        for line in open(path, encoding="utf-8"):
            code = line.split("#", 1)[0]
            for alias, full in ALIASES.items():
                code = re.sub(r"(?<![\w.])" + re.escape(alias), full, code)
            for m in USE.finditer(code):
                found.setdefault(m.group(1), os.path.relpath(path, ROOT))
    return found


def covered(name):
    """A use is covered by its own entry, or by an entry it extends (e.g. SAMPLER_NAMES.append)
    that is not a module (a module entry covers the module itself, not everything in it)."""
    if name in NAMES:
        return True
    parts = name.split(".")
    for i in range(len(parts) - 1, 1, -1):
        key = ".".join(parts[:i])
        if key in NAMES:
            return NAMES[key]["kind"] != "module"
    return False


def test_record_covers_every_comfy_name_the_pack_uses():
    missing = {n: f for n, f in used_names().items() if not covered(n)}
    assert not missing, ("add these to tests/data/comfy_api_record.json (with what the newest ComfyUI source "
                         f"says about them): {missing}")


def resolve(name):
    """The object a dotted name names in the running ComfyUI (longest importable module, then getattr)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(name)


def parameters(obj):
    return list(inspect.signature(obj).parameters)


@pytest.mark.parametrize("name", sorted(NAMES))
def test_recorded_name_exists_in_the_running_comfyui(name):
    comfy_runtime.load()
    entry = NAMES[name]
    try:
        obj = resolve(name)
    except (ImportError, AttributeError):
        if entry.get("optional"):
            pytest.skip(f"absent in this ComfyUI; {entry['optional']}")
        raise
    if entry.get("params") is not None:
        have = parameters(obj)
        missing = [p for p in entry["params"] if p not in have]
        assert not missing, f"{name} takes {have} in this ComfyUI; the pack relies on {missing}"


@pytest.mark.parametrize("name", sorted(n for n, e in NAMES.items() if e.get("newest")))
def test_recorded_name_matches_the_newest_source(name):
    entry, newest = NAMES[name], NAMES[name]["newest"]
    assert newest["file"] in NEWEST["files"], f"{name}: {newest['file']} has no recorded commit"
    if entry.get("params") is not None:
        missing = [p for p in entry["params"] if p not in newest.get("params", [])]
        assert not missing, f"{name} in the newest source takes {newest.get('params')}; the pack relies on {missing}"


def test_every_name_is_read_in_the_newest_source_or_its_file_is_unavailable():
    """Each name is read in the newest source, or names the file it lives in and that file is recorded
    as not readable here, with the reason. The registration and sampling entry points are all read."""
    unavailable = NEWEST["files_unavailable"]
    for name, entry in sorted(NAMES.items()):
        if entry.get("newest"):
            continue
        assert entry.get("unread_file") in unavailable, f"{name}: read it, or record why its file cannot be read"
        assert not name.startswith(("comfy.samplers", "comfy.model_patcher")), name
    assert not set(unavailable) & set(NEWEST["files"])


def test_each_file_read_names_its_commit():
    assert NEWEST["files"]
    for path, commit in NEWEST["files"].items():
        assert re.fullmatch(r"[0-9a-f]{40}", commit), (path, commit)


def test_no_pack_name_shadows_a_newer_core_name():
    pack = comfy_runtime.load()
    samplers, schedulers = pack.bridge.registered_names()
    every_sampler = {s.name for s in pack.bridge.pack_specs()[0]}
    assert not (set(samplers) | every_sampler) & set(NEWEST["sampler_names"])
    assert not set(schedulers) & set(NEWEST["scheduler_names"])
    for name in ("exp_heun_2_x0", "exp_heun_2_x0_sde", "cfgpp_ud10_ab"):
        assert name in NEWEST["sampler_names"]
        assert name + "_cfg_pp" not in every_sampler     # no CFG++ form of a core sampler this core lacks


def test_cfg_pp_forms_only_for_core_samplers_of_the_running_core():
    pack = comfy_runtime.load()
    import comfy.samplers
    own = {s.name for s in pack.bridge.pack_specs()[0]}
    pure = set(pack.samplers.SAMPLERS)
    core = set(pack.bridge.CORE_SAMPLER_NAMES)
    for name in sorted(own - pure):
        assert name.endswith("_cfg_pp"), name
        base = name[:-len("_cfg_pp")]
        assert base in pure or base in core, f"{name}: {base} is neither a pack sampler nor in this ComfyUI"
    assert core <= set(comfy.samplers.SAMPLER_NAMES)
