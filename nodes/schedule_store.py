"""Optimised schedules saved in ComfyUI's user directory (sampler_lab/schedules.json): named ones
appear in the scheduler dropdown as lab_opt_<name>; the cache keyed by model and settings lets the
optimizer reuse a result without recomputing. Bounded; never touches the network."""
import json
import logging
import os
import re
import threading

import folder_paths

from .. import bridge
from ..schedulers.common import finish, loglinear_interp
from ..schedulers.spec import SchedulerSpec

PREFIX = "lab_opt_"
MAX_CACHE = 32
_LOCK = threading.Lock()
log = logging.getLogger("sampler_lab")


def store_path():
    return os.path.join(folder_paths.get_user_directory(), "sampler_lab", "schedules.json")


def load():
    try:
        with open(store_path(), encoding="utf-8") as f:
            data = json.load(f)
        return {"saved": dict(data.get("saved", {})), "cache": dict(data.get("cache", {}))}
    except (OSError, ValueError):
        return {"saved": {}, "cache": {}}


def _write(data):
    path = store_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def cached(key):
    return load()["cache"].get(key)


def remember(key, entry, save_as=""):
    """Cache the result (oldest dropped beyond MAX_CACHE) and, with save_as, save it by name."""
    with _LOCK:
        data = load()
        data["cache"][key] = entry
        while len(data["cache"]) > MAX_CACHE:
            data["cache"].pop(next(iter(data["cache"])))
        if save_as:
            data["saved"][save_as] = entry
        _write(data)
    if save_as:
        register(save_as, entry)


def check_name(save_as):
    name = save_as.strip()
    if name and not re.fullmatch(r"[A-Za-z0-9_]{1,40}", name):
        raise ValueError(f"save_as {save_as!r}: use 1-40 letters, digits or underscores (it becomes the "
                         f"scheduler name {PREFIX}<save_as>)")
    return name.lower()


def scheduler_fn(name, entry):
    saved = entry["sigmas"]

    def schedule(model_sigmas, steps):
        if model_sigmas.kind != entry["kind"]:
            raise ValueError(f"scheduler {PREFIX}{name} was optimised for a {entry['kind']} model; this model is "
                             f"{model_sigmas.kind}: run the Schedule Optimizer for it")
        positive = [s for s in saved if s > 0]
        if steps == len(positive):
            return finish(positive)
        return finish(loglinear_interp(positive, steps))
    return schedule


def register(name, entry):
    spec = SchedulerSpec(name=PREFIX + name, fn=scheduler_fn(name, entry),
                         summary=f"optimised for {entry.get('model', 'a model')} ({entry['steps']} steps)")
    return bridge.register_scheduler(spec, update_own=True)


def register_saved():
    """At pack load: every saved schedule into the dropdown."""
    for name, entry in load()["saved"].items():
        try:
            register(name, entry)
        except Exception:
            log.exception("[Sampler Lab] saved schedule %r could not be registered", name)
